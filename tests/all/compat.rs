//! Plugins of older APIs keep working on this host (0.2.5): every built-in plugin as built at
//! 0.1.0 (`tests/fixtures/plugins-0.1.0`, built at efaa97b, the last commit of 0.1.0), at 0.2.0
//! (`tests/fixtures/plugins-0.2.0`, built at 68c2446), at 0.2.1
//! (`tests/fixtures/plugins-0.2.1`, built at 8cc9a68), at 0.2.2 (`tests/fixtures/plugins-0.2.2`,
//! built at 310a814), at 0.2.3 (`tests/fixtures/plugins-0.2.3`, built at 639d6ed) and at 0.2.4
//! (`tests/fixtures/plugins-0.2.4`, built at c6d4220), dropped into a plugin folder, replaces
//! today's built-in and gives the same figures; and a test guest built today from the frozen
//! 0.1.0 WIT (`tests/guests/echo-backend`) runs. 0.2.0 to 0.2.4 plugins load through 0.2.5's
//! bindings (wasmtime's semver-compatible names): nothing adapts them.

use std::path::{Path, PathBuf};

use energy_star_tests::{
    BUILTIN_PLUGINS, energy_star, fixtures, folder_with, listed, plugin_listing, read_json, small_offline_run,
};

fn v0_1_plugins() -> tempfile::TempDir {
    plugins_of("0.1.0")
}

fn plugins_of(api: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tmp");
    for entry in std::fs::read_dir(fixtures().join(format!("plugins-{api}"))).expect("fixtures") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "wasm") {
            std::fs::copy(&path, dir.path().join(path.file_name().expect("name"))).expect("copy");
        }
    }
    dir
}

/// `plugins --json` lists every built-in plugin from `dirs`, of API `api`, replacing today's.
fn assert_every_builtin_is_replaced(dirs: &str, api: &str) {
    let cwd = tempfile::tempdir().expect("tmp");
    let list = plugin_listing(cwd.path(), &["--strict-plugins", "--plugin-dir", dirs], &[]);
    for (kind, name) in BUILTIN_PLUGINS {
        let p = listed(&list, kind, name).expect("listed");
        assert_eq!(p["api_version"], api, "{p}");
        assert_eq!(p["replaces"], serde_json::json!(["built-in"]), "{p}");
    }
}

/// An offline run of `backend` with the plugins of `api` (which lack a later import) completes,
/// and the record names that API and the plugin folder; returns the run and its results folder.
fn old_backend_run(old: &Path, api: &str, backend: &str, extra: &[&str]) -> (tempfile::TempDir, PathBuf) {
    let dirs = old.to_str().expect("utf-8");
    let cwd = tempfile::tempdir().expect("tmp");
    small_offline_run(cwd.path(), backend, 3, &["--strict-plugins", "--plugin-dir", dirs], extra).success();
    let r = cwd.path().join("results");
    assert_eq!(read_json(&r.join("run_status.json"))["state"], "complete", "{backend}");
    let record = read_json(&r.join("run_record.json"));
    assert_eq!(record["api_version"], api, "{backend}");
    assert!(record["backend"].as_str().expect("label").contains(dirs), "{record}");
    (cwd, r)
}

fn sample(rel: &str) -> PathBuf {
    fixtures().join("samples").join(rel)
}

fn total_of(plugins: &Path, report: &Path) -> String {
    let dir = folder_with(&[(report, "benchmark_report.json")]);
    energy_star(
        dir.path(),
        &["--strict-plugins", "--plugin-dir", plugins.to_str().expect("utf-8"), "summarize", "."],
        &[],
    )
    .success();
    std::fs::read_to_string(dir.path().join("GPU_ENERGY_WH.txt")).expect("txt")
}

#[test]
fn the_0_1_0_builtins_load_replace_todays_and_give_the_same_figures() {
    let old = v0_1_plugins();
    let dirs = old.path().to_str().expect("utf-8");
    assert_every_builtin_is_replaced(dirs, "0.1.0");
    // The same totals as today's summarizers give (tests/all/summarize.rs).
    let empty = tempfile::tempdir().expect("tmp");
    for (report, total) in [
        ("optimum/aienergyscore-results_benchmark_report.json", "133.71\n"),
        ("optimum/benchlab-llama3_8B-benchmark_report.json", "194.68\n"),
        ("ai_energy_benchmarks/SYNTHETIC_pytorch_benchmark_report.json", "55.12\n"),
        ("ai_energy_benchmarks/SYNTHETIC_vllm_benchmark_report.json", "5.98\n"),
    ] {
        assert_eq!(total_of(old.path(), &sample(report)), total, "0.1.0 on {report}");
        assert_eq!(total_of(empty.path(), &sample(report)), total, "0.2.0 on {report}");
    }
}

#[test]
fn the_0_1_0_backends_run_the_offline_default() {
    let old = v0_1_plugins();
    let dirs = old.path().to_str().expect("utf-8");
    for backend in ["optimum", "pytorch"] {
        let cwd = tempfile::tempdir().expect("tmp");
        let run = small_offline_run(cwd.path(), backend, 3, &["--strict-plugins", "--plugin-dir", dirs], &[]).success();
        assert!(run.stdout().contains("no GPU energy: backend.device=cpu"), "{backend}: {}", run.stdout());
        let r = cwd.path().join("results");
        assert_eq!(read_json(&r.join("run_status.json"))["state"], "complete", "{backend}");
        let record = read_json(&r.join("run_record.json"));
        assert_eq!(record["api_version"], "0.1.0", "{backend}");
        assert!(record["backend"].as_str().expect("label").contains(dirs), "{record}");
        assert_eq!(record["plan"]["models"], serde_json::json!(["energy-star/toy-llama"]), "{backend}: {record}");
        // The host saw the windows it closed: they are the 0.1.0 run's phases.
        let phases = record["facts"]["phases"].as_array().expect("phases");
        assert!(!phases.is_empty(), "{record}");
        let summary = read_json(&r.join("GPU_ENERGY_SUMMARY.json"));
        assert!(summary["summarizer"].as_str().expect("by").contains("0.1.0"), "{summary}");
        assert!(summary["cpu_wh"].as_f64().is_some_and(|w| w > 0.0), "{summary}");
    }
}

#[test]
fn the_0_2_0_builtins_load_through_0_2_5s_bindings_and_give_the_same_figures() {
    let old = plugins_of("0.2.0");
    let dirs = old.path().to_str().expect("utf-8");
    assert_every_builtin_is_replaced(dirs, "0.2.0");
    for (report, total) in [
        ("optimum/aienergyscore-results_benchmark_report.json", "133.71\n"),
        ("ai_energy_benchmarks/SYNTHETIC_pytorch_benchmark_report.json", "55.12\n"),
    ] {
        assert_eq!(total_of(old.path(), &sample(report)), total, "0.2.0 on {report}");
    }
}

#[test]
fn the_0_2_0_backends_run_without_the_carbon_import_and_the_host_still_knows_the_emissions() {
    let old = plugins_of("0.2.0");
    for backend in ["optimum", "pytorch"] {
        let (_cwd, r) = old_backend_run(old.path(), "0.2.0", backend, &["++metering.country_iso_code=FRA"]);
        // A 0.2.0 backend cannot ask for the factor: its report keeps null emissions...
        if backend == "pytorch" {
            let report = read_json(&r.join("benchmark_report.json"));
            assert!(report["energy"]["emissions_g_co2eq"].is_null(), "{report}");
        }
        // ...and the host's summary has them from its own record.
        let summary = read_json(&r.join("GPU_ENERGY_SUMMARY.json"));
        assert_eq!(summary["emissions"]["g_co2eq_per_kwh"], 56.039, "{backend}: {summary}");
        assert!(summary["emissions"]["all_devices_g_co2eq"].as_f64().is_some_and(|g| g > 0.0), "{summary}");
    }
}

#[test]
fn the_0_2_1_builtins_load_through_0_2_5s_bindings_and_give_the_same_figures() {
    let old = plugins_of("0.2.1");
    let dirs = old.path().to_str().expect("utf-8");
    assert_every_builtin_is_replaced(dirs, "0.2.1");
    for (report, total) in [
        ("optimum/benchlab-llama3_8B-benchmark_report.json", "194.68\n"),
        ("ai_energy_benchmarks/SYNTHETIC_vllm_benchmark_report.json", "5.98\n"),
    ] {
        assert_eq!(total_of(old.path(), &sample(report)), total, "0.2.1 on {report}");
    }
}

#[test]
fn a_0_2_1_backend_runs_without_the_machine_import_and_the_record_still_describes_the_machine() {
    let old = plugins_of("0.2.1");
    let (_cwd, r) = old_backend_run(old.path(), "0.2.1", "optimum", &["++metering.country_iso_code=FRA"]);
    let record = read_json(&r.join("run_record.json"));
    // The host describes the machine whatever the backend's API...
    assert!(record["machine"]["cpu_count"].as_u64().is_some_and(|n| n > 0), "{record}");
    // ...a 0.2.1 backend cannot ask for it, so its environment keeps the machine keys null...
    let config = read_json(&r.join("benchmark_config.json"));
    assert!(config["environment"]["cpu_count"].is_null(), "{config}");
    // ...and the carbon import of 0.2.1 still works.
    let summary = read_json(&r.join("GPU_ENERGY_SUMMARY.json"));
    assert_eq!(summary["emissions"]["g_co2eq_per_kwh"], 56.039, "{summary}");
}

#[test]
fn the_0_2_2_builtins_load_through_0_2_5s_bindings_and_give_the_same_figures() {
    let old = plugins_of("0.2.2");
    let dirs = old.path().to_str().expect("utf-8");
    assert_every_builtin_is_replaced(dirs, "0.2.2");
    for (report, total) in [
        ("optimum/aienergyscore-results_benchmark_report.json", "133.71\n"),
        ("ai_energy_benchmarks/SYNTHETIC_vllm_benchmark_report.json", "5.98\n"),
    ] {
        assert_eq!(total_of(old.path(), &sample(report)), total, "0.2.2 on {report}");
    }
}

#[test]
fn a_0_2_2_backend_runs_without_the_chat_template_methods_and_still_describes_the_machine() {
    let old = plugins_of("0.2.2");
    let (_cwd, r) = old_backend_run(old.path(), "0.2.2", "optimum", &[]);
    let record = read_json(&r.join("run_record.json"));
    assert!(record["chat_templates"].as_array().is_some_and(Vec::is_empty), "{record}");
    // Its machine import still answers.
    let config = read_json(&r.join("benchmark_config.json"));
    assert!(config["environment"]["cpu_count"].as_u64().is_some_and(|n| n > 0), "{config}");
}

#[test]
fn the_0_2_3_builtins_load_through_0_2_5s_bindings_and_give_the_same_figures() {
    let old = plugins_of("0.2.3");
    let dirs = old.path().to_str().expect("utf-8");
    assert_every_builtin_is_replaced(dirs, "0.2.3");
    for (report, total) in [
        ("optimum/aienergyscore-results_benchmark_report.json", "133.71\n"),
        ("ai_energy_benchmarks/SYNTHETIC_vllm_benchmark_report.json", "5.98\n"),
    ] {
        assert_eq!(total_of(old.path(), &sample(report)), total, "0.2.3 on {report}");
    }
}

/// A 0.2.3 optimum backend still runs reasoning through apply-chat-template (its 0.2.3 methods).
#[test]
fn a_0_2_3_backend_runs_reasoning_through_its_chat_template_methods() {
    let old = plugins_of("0.2.3");
    let model = energy_star_tests::fixtures().join("tiny-gpt-oss").display().to_string();
    let (_cwd, r) = old_backend_run(
        old.path(),
        "0.2.3",
        "optimum",
        &[
            &format!("backend.model={model}"),
            "++scenario.reasoning=true",
            "++scenario.reasoning_params.reasoning_effort=low",
        ],
    );
    let record = read_json(&r.join("run_record.json"));
    assert_eq!(record["chat_templates"][0]["origin"], "chat_template.jinja", "{record}");
}

#[test]
fn the_0_2_4_builtins_load_through_0_2_5s_bindings_and_give_the_same_figures() {
    let old = plugins_of("0.2.4");
    let dirs = old.path().to_str().expect("utf-8");
    assert_every_builtin_is_replaced(dirs, "0.2.4");
    for (report, total) in [
        ("optimum/aienergyscore-results_benchmark_report.json", "133.71\n"),
        ("ai_energy_benchmarks/SYNTHETIC_vllm_benchmark_report.json", "5.98\n"),
    ] {
        assert_eq!(total_of(old.path(), &sample(report)), total, "0.2.4 on {report}");
    }
    // Its pytorch backend still formats prompts through the 0.2.4 methods.
    let (_cwd, r) = old_backend_run(old.path(), "0.2.4", "pytorch", &[]);
    let additions = read_json(&r.join("energy_star_report.json"));
    assert_eq!(additions["run"]["prompt_format"]["path"], "text", "{additions}");
}
