use energy_star_tests::{energy_star, root};

fn fixture() -> String {
    root().join("tests/fixtures/tiny-llama").display().to_string()
}

/// `energy-star generate --json` reproduces transformers' greedy tokens for every reference
/// case, in input order, batched 4 at a time (left padding across very different lengths).
#[test]
fn generate_json_matches_the_reference_batched() {
    let dir = tempfile::tempdir().expect("tmp");
    let reference: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/tiny-llama/reference.json")).expect("ref"),
    )
    .expect("json");
    let cases = reference["cases"].as_array().expect("cases");
    let lines: Vec<String> = cases.iter().map(|c| serde_json::json!({"prompt": c["prompt"]}).to_string()).collect();
    std::fs::write(dir.path().join("prompts.jsonl"), lines.join("\n")).expect("write");
    let run = energy_star(
        dir.path(),
        &[
            "generate",
            "--model",
            &fixture(),
            "--max-new-tokens",
            "32",
            "--ignore-eos",
            "--batch-size",
            "4",
            "--prompts-file",
            "prompts.jsonl",
            "--json",
        ],
        &[],
    )
    .success();
    let out: Vec<serde_json::Value> =
        run.stdout().lines().map(|l| serde_json::from_str(l).expect("json line")).collect();
    assert_eq!(out.len(), cases.len());
    for (c, o) in cases.iter().zip(&out) {
        assert_eq!(o["prompt"], c["prompt"]);
        assert_eq!(o["input_ids"], c["input_ids"]);
        assert_eq!(o["output_ids"], c["greedy_output_ids"], "{}", c["prompt"]);
        assert_eq!(o["text"], c["greedy_text"]);
    }
}

#[test]
fn sampling_is_reproducible_with_a_seed() {
    let dir = tempfile::tempdir().expect("tmp");
    let args = [
        "generate",
        "--model",
        &fixture(),
        "--max-new-tokens",
        "16",
        "--prompt",
        "Energy is",
        "--sample",
        "--seed",
        "5",
        "--json",
    ];
    let a = energy_star(dir.path(), &args, &[]).success().stdout();
    let b = energy_star(dir.path(), &args, &[]).success().stdout();
    assert_eq!(a, b);
    let greedy = energy_star(
        dir.path(),
        &["generate", "--model", &fixture(), "--max-new-tokens", "16", "--prompt", "Energy is", "--json"],
        &[],
    )
    .success()
    .stdout();
    assert_ne!(a, greedy, "sampling at temperature 1 should leave the greedy path on this random model");
}

#[test]
fn generate_bad_input() {
    let dir = tempfile::tempdir().expect("tmp");
    energy_star(
        dir.path(),
        &["generate", "--model", "missing-folder/x/y", "--max-new-tokens", "4", "--prompt", "a"],
        &[],
    )
    .fails_with(1, &["missing-folder/x/y"]);
    energy_star(
        dir.path(),
        &["generate", "--model", &fixture(), "--max-new-tokens", "4", "--prompt", "a", "--batch-size", "0"],
        &[],
    )
    .fails_with(1, &["--batch-size must be at least 1"]);
    std::fs::write(dir.path().join("bad.jsonl"), "{\"prompt\": \"ok\"}\n{\"text\": \"no prompt\"}\n").expect("write");
    energy_star(
        dir.path(),
        &["generate", "--model", &fixture(), "--max-new-tokens", "4", "--prompts-file", "bad.jsonl"],
        &[],
    )
    .fails_with(1, &["line 2", "prompt"]);
    let long = "energy ".repeat(400);
    energy_star(dir.path(), &["generate", "--model", &fixture(), "--max-new-tokens", "4", "--prompt", &long], &[])
        .fails_with(1, &["context of 256"]);
    energy_star(
        dir.path(),
        &["generate", "--model", &fixture(), "--max-new-tokens", "4", "--prompt", "a", "--device", "cuda"],
        &[],
    )
    .fails_with(1, &["cuda"]);
}
