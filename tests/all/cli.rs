//! The command line as a user meets it: closed pipes, options anywhere, clear errors.

use energy_star_tests::{energy_star, energy_star_with_closed_stdout, fixtures, folder_with, root};

/// `energy-star ... | head` ends quietly with exit 0, as coreutils and ripgrep do, never a
/// "failed printing to stdout" panic.
#[test]
fn a_closed_stdout_ends_the_command_quietly() {
    let cwd = tempfile::tempdir().expect("tmp");
    let results = folder_with(&[(
        &fixtures().join("samples/optimum/benchlab-llama3_8B-benchmark_report.json"),
        "benchmark_report.json",
    )]);
    let prompts = cwd.path().join("prompts.jsonl");
    let lines: Vec<String> = (0..16).map(|i| format!("{{\"prompt\": \"prompt number {i}\"}}")).collect();
    std::fs::write(&prompts, lines.join("\n")).expect("write");
    let model = root().join("tests/fixtures/tiny-llama");
    let cases: Vec<Vec<&str>> = vec![
        vec!["plugins", "--json"],
        vec!["plugins"],
        vec!["summarize", results.path().to_str().expect("utf-8")],
        vec![
            "generate",
            "--model",
            model.to_str().expect("utf-8"),
            "--max-new-tokens",
            "4",
            "--prompts-file",
            prompts.to_str().expect("utf-8"),
            "--json",
        ],
    ];
    for args in cases {
        let run = energy_star_with_closed_stdout(cwd.path(), &args, &[]);
        let err = run.stderr();
        assert_eq!(run.code(), Some(0), "{args:?} exit {:?}\n{err}", run.code());
        assert!(!err.contains("panicked") && !err.contains("Broken pipe"), "{args:?}: {err}");
    }
    // A closed stdout is not a reason to lose a result: the summary files are still written.
    assert!(results.path().join("GPU_ENERGY_WH.txt").is_file());
    let _ = energy_star(cwd.path(), &["plugins"], &[]).success();
}
