//! `scenario.reasoning=true` on the optimum backend: each prompt is one user message rendered
//! through the model's own chat template (gpt-oss' Harmony template on the tiny gpt-oss
//! fixture) with `enable_thinking` and `scenario.reasoning_params`, as optimum-benchmark's
//! preprocessing does; the run record names the template and its kwargs.

use energy_star_tests::{read_json, small_offline_run};

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
