//! `scenario.reasoning=true` on the optimum backend: each prompt is one user message rendered
//! through the model's own chat template (gpt-oss' Harmony template on the tiny gpt-oss
//! fixture) with `enable_thinking` and `scenario.reasoning_params`, as optimum-benchmark's
//! preprocessing does; the run record names the template and its kwargs.

use energy_star_tests::{energy_star, read_json, root, small_offline_run};

/// transformers rendered the fixture's chat cases at this moment (2025-12-04T00:00:00Z).
const EPOCH: &str = "1764806400";

/// The optimum backend with reasoning on the tiny gpt-oss fixture (its Harmony template), 4
/// prompts of the offline default's dataset, `reasoning_effort` high.
#[test]
fn a_reasoning_run_renders_each_prompt_through_the_models_template_and_records_it() {
    let model = root().join("tests/fixtures/tiny-gpt-oss");
    let model_arg = format!("backend.model={}", model.display());
    let cwd = tempfile::tempdir().expect("tmp");
    let args = [
        "--config-name",
        "text_generation_offline",
        &model_arg,
        "scenario.num_samples=4",
        "scenario.generate_kwargs.max_new_tokens=4",
        "scenario.generate_kwargs.min_new_tokens=4",
        "scenario.warmup_runs=1",
        "++scenario.reasoning=true",
        "++scenario.reasoning_params.reasoning_effort=high",
    ];
    energy_star(cwd.path(), &args, &[("BENCHMARK_BACKEND", "optimum"), ("SOURCE_DATE_EPOCH", EPOCH)]).success();
    let r = cwd.path().join("results");
    assert_eq!(read_json(&r.join("run_status.json"))["state"], "complete");
    let record = read_json(&r.join("run_record.json"));
    // The template used, where it was found, with what: Harmony reads reasoning_effort and
    // never enable_thinking, which optimum-benchmark passes to every template.
    let uses = record["chat_templates"].as_array().expect("chat_templates");
    assert_eq!(uses.len(), 1, "{record}");
    let t = &uses[0];
    assert_eq!(t["sha256"], "a4c9919cbbd4acdd51ccffe22da049264b1b73e59055fa58811a99efbd7c8146");
    assert_eq!(t["origin"], "chat_template.jinja");
    assert_eq!(t["kwargs"], serde_json::json!({"reasoning_effort": "high", "enable_thinking": true}));
    assert_eq!(t["unused_kwargs"], serde_json::json!(["enable_thinking"]));
    assert_eq!(t["prompts"], 4);
    // The input tokens are the templated prompts' tokens: the same as `generate --chat` gives
    // for the dataset's first 4 rows with the same kwargs.
    let rows: Vec<String> = std::fs::read_to_string(root().join("crates/datasets/assets/prompts.jsonl"))
        .expect("prompts")
        .lines()
        .take(4)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            serde_json::json!({"prompt": v["text"]}).to_string()
        })
        .collect();
    std::fs::write(cwd.path().join("rows.jsonl"), rows.join("\n")).expect("write");
    let generated = energy_star(
        cwd.path(),
        &[
            "generate",
            "--model",
            model.to_str().expect("utf-8"),
            "--max-new-tokens",
            "1",
            "--prompts-file",
            "rows.jsonl",
            "--chat",
            "--template-kwarg",
            "reasoning_effort=high",
            "--template-kwarg",
            "enable_thinking=true",
            "--json",
        ],
        &[("SOURCE_DATE_EPOCH", EPOCH)],
    )
    .success();
    let templated: u64 = generated
        .stdout()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json")["input_ids"].as_array().expect("ids").len()
                as u64
        })
        .sum();
    assert_eq!(record["facts"]["tokens"]["input"], templated, "{record}");
    // Every prompt starts with the Harmony system turn: far more tokens than the rows alone.
    assert!(templated > 4 * 100, "{templated}");
    assert_eq!(record["facts"]["tokens"]["output"], 16);
    // The report keeps optimum's shape: the forward phases with their efficiency.
    let report = read_json(&r.join("benchmark_report.json"));
    for phase in ["preprocess_dataset", "prefill", "decode"] {
        assert!(report[phase]["efficiency"]["value"].as_f64().is_some_and(|v| v > 0.0), "{phase}: {report}");
    }
}

/// A model without a chat template cannot run reasoning: the run stops at preprocessing with
/// the reason, keeping the phases it measured, marked incomplete.
#[test]
fn reasoning_on_a_model_without_a_template_stops_at_preprocessing_and_keeps_what_it_measured() {
    let cwd = tempfile::tempdir().expect("tmp");
    let run = small_offline_run(cwd.path(), "optimum", 2, &[], &["++scenario.reasoning=true"]);
    let r = cwd.path().join("results");
    let status = read_json(&r.join("run_status.json"));
    assert_eq!(status["state"], "incomplete", "{status}\n{}", run.stderr());
    assert!(run.stderr().contains("has no chat template"), "{}", run.stderr());
    let report = read_json(&r.join("benchmark_report.json"));
    assert!(report["load_model"]["energy"].is_object(), "{report}");
    assert!(report.get("prefill").is_none_or(serde_json::Value::is_null), "{report}");
}

/// The run-level block of the additions file energy-star writes beside a backend's report.
fn additions(r: &std::path::Path) -> serde_json::Value {
    read_json(&r.join("energy_star_report.json"))["run"].clone()
}

/// The pytorch backend formats gpt-oss rows as ai_energy_benchmarks does: Harmony text written
/// by hand (not the model's template) with the configured effort, tokenized as text; the input
/// tokens are those texts' tokens.
#[test]
fn pytorch_writes_gpt_oss_rows_as_harmony_text_as_ai_energy_benchmarks_does() {
    let model = root().join("tests/fixtures/tiny-gpt-oss");
    let model_arg = format!("backend.model={}", model.display());
    let cwd = tempfile::tempdir().expect("tmp");
    let run = small_offline_run(
        cwd.path(),
        "pytorch",
        3,
        &[],
        &[&model_arg, "++scenario.reasoning=true", "++scenario.reasoning_params.reasoning_effort=low"],
    );
    let r = cwd.path().join("results");
    assert_eq!(read_json(&r.join("run_status.json"))["state"], "complete", "{}", run.stderr());
    let format = &additions(&r)["prompt_format"];
    assert_eq!(format["family"], "gpt-oss", "{format}");
    assert_eq!(format["formatter"], "harmony");
    assert_eq!(format["path"], "text");
    assert_eq!(format["reasoning_params_applied"], serde_json::json!({"reasoning_effort": "low"}));
    let record = read_json(&r.join("run_record.json"));
    assert!(record["chat_templates"].as_array().is_some_and(Vec::is_empty), "no template rendered: {record}");
    let rows: Vec<String> = std::fs::read_to_string(root().join("crates/datasets/assets/prompts.jsonl"))
        .expect("prompts")
        .lines()
        .take(4)
        .map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).expect("json");
            let row = v["text"].as_str().expect("text");
            let text = format!(
                "<|start|>system<|message|>You are a helpful AI assistant.\nReasoning: low\n# Valid channels: analysis, commentary, final<|end|>\n<|start|>user<|message|>{row}<|end|>"
            );
            serde_json::json!({ "prompt": text }).to_string()
        })
        .collect();
    std::fs::write(cwd.path().join("rows.jsonl"), rows.join("\n")).expect("write");
    let generated = energy_star(
        cwd.path(),
        &[
            "generate",
            "--model",
            model.to_str().expect("utf-8"),
            "--max-new-tokens",
            "1",
            "--prompts-file",
            "rows.jsonl",
            "--json",
        ],
        &[],
    )
    .success();
    let harmony_tokens: u64 = generated
        .stdout()
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).expect("json")["input_ids"].as_array().expect("ids").len()
                as u64
        })
        .sum();
    assert_eq!(record["facts"]["tokens"]["input"], harmony_tokens, "{record}");
    assert_eq!(record["facts"]["tokens"]["output"], 12);
}

/// A Qwen model with a chat template goes through it with `enable_thinking` (true by default,
/// as upstream), and a formatter-less model's `reasoning_effort` picks upstream's sampling.
#[test]
fn pytorch_puts_qwen_rows_through_the_template_with_enable_thinking() {
    let from = root().join("tests/fixtures/tiny-qwen3-moe");
    let home = tempfile::tempdir().expect("tmp");
    let model = home.path().join("tiny-qwen3-moe");
    std::fs::create_dir(&model).expect("mkdir");
    for entry in std::fs::read_dir(&from).expect("fixture") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::copy(&path, model.join(path.file_name().expect("name"))).expect("copy");
        }
    }
    std::fs::copy(
        root().join("tests/fixtures/chat-templates/Qwen-Qwen3-0.6B.jinja"),
        model.join("chat_template.jinja"),
    )
    .expect("template");
    let model_arg = format!("backend.model={}", model.display());
    for (overrides, kwargs, temperature) in [
        (vec![], serde_json::json!({"enable_thinking": true}), 0.7),
        (
            vec!["++scenario.reasoning=true", "++scenario.reasoning_params.reasoning_effort=high"],
            serde_json::json!({"enable_thinking": true}),
            0.5,
        ),
        (
            vec!["++scenario.reasoning=true", "++scenario.reasoning_params.enable_thinking=false"],
            serde_json::json!({"enable_thinking": false}),
            0.7,
        ),
    ] {
        let cwd = tempfile::tempdir().expect("tmp");
        let mut args = vec![model_arg.as_str()];
        args.extend(overrides.iter().copied());
        let run = small_offline_run(cwd.path(), "pytorch", 2, &[], &args);
        let r = cwd.path().join("results");
        assert_eq!(read_json(&r.join("run_status.json"))["state"], "complete", "{}", run.stderr());
        let record = read_json(&r.join("run_record.json"));
        let uses = record["chat_templates"].as_array().expect("chat_templates");
        assert_eq!(uses.len(), 1, "{record}");
        assert_eq!(uses[0]["kwargs"], kwargs, "{overrides:?}");
        assert_eq!(uses[0]["prompts"], 4);
        let a = additions(&r);
        assert_eq!(a["prompt_format"]["path"], "chat_template", "{a}");
        assert_eq!(a["prompt_format"]["family"], "qwen");
        let generation = &a["generation"];
        assert!(
            (generation["temperature"].as_f64().expect("t") - temperature).abs() < 1e-6,
            "{overrides:?}: {generation}"
        );
        assert_eq!(generation["top_k"], 50);
    }
}
