//! The command line as a user meets it: closed pipes, options anywhere, clear errors.

use energy_star_tests::{energy_star, energy_star_with_closed_stdout, fixtures, folder_with, guests, read_json, root};

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

fn echo_env(report: &str) -> Vec<(&'static str, String)> {
    vec![("BENCHMARK_BACKEND", "echo".into()), ("ECHO_REPORT", report.into())]
}

/// Options may come anywhere among the overrides, as in Hydra's own command line.
#[test]
fn options_may_follow_the_overrides() {
    let cwd = tempfile::tempdir().expect("tmp");
    let plugins = folder_with(&[(&guests().echo_backend, "echo.wasm")]);
    let env = echo_env("{\"energy\": {\"gpu_energy_wh\": 2.0}}");
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    let p = plugins.path().to_str().expect("utf-8");
    energy_star(
        cwd.path(),
        &["--config-name", "text_generation", "scenario.num_samples=3", "--results-dir", "out", "--plugin-dir", p],
        &env,
    )
    .success();
    let notes = read_json(&cwd.path().join("out/echo/notes.json"));
    assert_eq!(notes["num_samples"], 3, "the override before the options still applies");
    energy_star(
        cwd.path(),
        &["--config-name", "text_generation", "scenario.num_samples=4", "--results-dir=out2", "--plugin-dir", p],
        &env,
    )
    .success();
    assert_eq!(read_json(&cwd.path().join("out2/echo/notes.json"))["num_samples"], 4);
}

/// Bad options and overrides say what is wrong with them, in the terms the user typed.
#[test]
fn bad_options_say_what_is_wrong() {
    let cwd = tempfile::tempdir().expect("tmp");
    energy_star(cwd.path(), &["--config-dir", "no-such-folder", "--config-name", "text_generation"], &[])
        .fails_with(1, &["--config-dir (or ENERGY_STAR_CONFIG_DIR) no-such-folder is not a folder"]);
    assert!(!cwd.path().join("results").exists(), "nothing is written for a bad option");
    energy_star(cwd.path(), &["--config-name", "text_generation"], &[("ENERGY_STAR_CONFIG_DIR", "/no/such/configs")])
        .fails_with(1, &["/no/such/configs is not a folder"]);
    energy_star(cwd.path(), &["--plugin-time-limit-s", "0", "plugins"], &[])
        .fails_with(1, &["more than 0 and at most 86400 seconds, got 0"]);
    let run = energy_star(cwd.path(), &["--config-name", "text_generation", "~scenario.no_such_key"], &[])
        .fails_with(1, &["no key scenario.no_such_key, so there is nothing to delete"]);
    assert!(!run.stderr().contains("+~"), "{}", run.stderr());
}
