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

/// A copy of the fixture `name` with `template` (a file of tests/fixtures/chat-templates) as
/// its chat_template.jinja.
fn with_template(name: &str, template: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    let from = root().join("tests/fixtures").join(name);
    for f in ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"] {
        std::fs::copy(from.join(f), dir.path().join(f)).expect("copy");
    }
    if !template.is_empty() {
        std::fs::copy(
            root().join("tests/fixtures/chat-templates").join(template),
            dir.path().join("chat_template.jinja"),
        )
        .expect("template");
    }
    dir
}

fn chat_case(name: &str) -> serde_json::Value {
    let refs: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(root().join("tests/fixtures/chat-templates/references.json")).expect("refs"),
    )
    .expect("json");
    refs["cases"].as_array().expect("cases").iter().find(|c| c["name"] == name).expect("case").clone()
}

/// `generate --chat`: a `messages` line goes through the model's own template and is tokenized
/// as transformers' apply_chat_template(tokenize=True) tokenizes it; a keyword argument the
/// template never reads is a warning.
#[test]
fn chat_input_ids_are_transformers_templated_ids() {
    let model = with_template("tiny-llama", "mistralai-Mistral-Nemo-Instruct-2407.jinja");
    let case = chat_case("mistral_nemo_system_multi_turn");
    let cwd = tempfile::tempdir().expect("tmp");
    std::fs::write(cwd.path().join("chat.jsonl"), serde_json::json!({"messages": case["messages"]}).to_string())
        .expect("write");
    let run = energy_star(
        cwd.path(),
        &[
            "generate",
            "--model",
            model.path().to_str().expect("utf-8"),
            "--max-new-tokens",
            "2",
            "--ignore-eos",
            "--prompts-file",
            "chat.jsonl",
            "--chat",
            "--template-kwarg",
            "reasoning_effort=high",
            "--json",
        ],
        &[],
    )
    .success();
    let out: serde_json::Value = serde_json::from_str(run.stdout().trim()).expect("json");
    assert_eq!(out["input_ids"], case["input_ids"], "{out}");
    assert_eq!(out["prompt"], case["messages"]);
    assert_eq!(out["output_ids"].as_array().map(Vec::len), Some(2));
    assert!(run.stderr().contains("never reads --template-kwarg reasoning_effort"), "{}", run.stderr());
}

#[test]
fn chat_errors_name_the_template_and_what_it_needs() {
    let cwd = tempfile::tempdir().expect("tmp");
    let generate = |model: &std::path::Path, extra: &[&str]| {
        let mut args = vec!["generate", "--model", model.to_str().expect("utf-8"), "--max-new-tokens", "2", "--chat"];
        args.extend_from_slice(extra);
        energy_star(cwd.path(), &args, &[])
    };
    // gpt-oss' Harmony template writes <|start|>, which tiny-llama's tokenizer splits into bytes.
    let harmony = with_template("tiny-llama", "openai-gpt-oss-120b.jinja");
    generate(harmony.path(), &["--prompt", "hi", "--template-kwarg", "reasoning_effort=low"])
        .fails_with(1, &["writes <|start|>, which tokenizer.json has no token for"]);
    // The template's own raise_exception message.
    let nemo = with_template("tiny-llama", "mistralai-Mistral-Nemo-Instruct-2407.jinja");
    std::fs::write(
        cwd.path().join("twice.jsonl"),
        r#"{"messages": [{"role": "user", "content": "a"}, {"role": "user", "content": "b"}]}"#,
    )
    .expect("write");
    generate(nemo.path(), &["--prompts-file", "twice.jsonl"])
        .fails_with(1, &["conversation roles must alternate user/assistant/user/assistant"]);
    generate(nemo.path(), &["--prompt", "a", "--template-kwarg", "novalue"]).fails_with(1, &["is not K=V"]);
    // No template at all, and one that does not parse.
    let plain = with_template("tiny-llama", "");
    generate(plain.path(), &["--prompt", "a"]).fails_with(1, &["has no chat template"]);
    std::fs::write(plain.path().join("chat_template.jinja"), "{% for m in messages %}{{ m.content }}").expect("write");
    generate(plain.path(), &["--prompt", "a"]).fails_with(1, &["chat_template.jinja", "does not parse"]);
    // `messages` lines need --chat.
    let run = energy_star(
        cwd.path(),
        &[
            "generate",
            "--model",
            nemo.path().to_str().expect("utf-8"),
            "--max-new-tokens",
            "2",
            "--prompts-file",
            "twice.jsonl",
        ],
        &[],
    );
    run.fails_with(1, &["`messages` needs --chat"]);
}
