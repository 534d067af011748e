use std::path::{Path, PathBuf};

use energy_star_tests::{energy_star, fixtures, folder_with, read_json};
use serde_json::{Value, json};

fn sample(rel: &str) -> PathBuf {
    fixtures().join("samples").join(rel)
}

/// Summarizes `report` (copied into a fresh results folder as benchmark_report.json).
fn summarize(report: &Path) -> (tempfile::TempDir, energy_star_tests::Run) {
    let dir = folder_with(&[(report, "benchmark_report.json")]);
    let run = energy_star(dir.path(), &["summarize", "."], &[]);
    (dir, run)
}

fn summary_of(dir: &Path) -> (String, Value) {
    let txt = std::fs::read_to_string(dir.join("GPU_ENERGY_WH.txt")).expect("GPU_ENERGY_WH.txt");
    (txt, read_json(&dir.join("GPU_ENERGY_SUMMARY.json")))
}

#[test]
fn energy_star_dev_report_matches_the_original_summarizer() {
    let (dir, run) = summarize(&sample("optimum/aienergyscore-results_benchmark_report.json"));
    run.success();
    let (txt, s) = summary_of(dir.path());
    // The original summarizer (v1 and v2) gives 133.71 with phases 0.16 / 72.01 / 61.54.
    assert_eq!(txt, "133.71\n");
    assert_eq!(s["units"], "Wh");
    assert_eq!(s["total"], json!(133.71));
    assert_eq!(s["format"], "optimum");
    assert_eq!(s["preprocess_wh"], json!(0.16));
    assert_eq!(s["prefill_wh"], json!(72.01));
    assert_eq!(s["decode_wh"], json!(61.54));
    let warnings = s["warnings"].to_string();
    // The sample's zero prefill measure and negative decode measure are flagged, not hidden.
    assert!(warnings.contains("measure 7 of 10 has 0 Wh"), "{warnings}");
    assert!(warnings.contains("measure 5 of 10 is negative"), "{warnings}");
    assert!(warnings.contains("per_token"), "{warnings}");
}

#[test]
fn main_report_counts_preprocess_dataset_and_reports_loading_apart() {
    let (dir, run) = summarize(&sample("optimum/benchlab-llama3_8B-benchmark_report.json"));
    run.success();
    let (txt, s) = summary_of(dir.path());
    // preprocess_dataset 0.0538 + prefill 74.6824 + decode 119.9452 Wh.
    assert_eq!(txt, "194.68\n");
    assert_eq!(s["preprocess_wh"], json!(0.05));
    assert_eq!(s["preprocess_dataset_wh"], json!(0.05));
    assert_eq!(s["prefill_wh"], json!(74.68));
    assert_eq!(s["decode_wh"], json!(119.95));
    assert_eq!(s["load_model_wh"], json!(0.61));
    assert_eq!(s["load_dataset_wh"], json!(0.04));
    assert_eq!(s["counted_phases"], json!(["preprocess_dataset", "prefill", "decode"]));
    assert!(s["warnings"].to_string().contains("load_dataset, load_model"));
}

#[test]
fn benchmark_json_wrapper_is_read() {
    let report = read_json(&sample("optimum/benchlab-llama3_8B-benchmark_report.json"));
    let config = read_json(&sample("optimum/benchlab-llama3_8B-benchmark_config.json"));
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("benchmark.json"), json!({"config": config, "report": report}).to_string())
        .expect("write");
    energy_star(dir.path(), &["summarize", "."], &[]).success();
    assert_eq!(std::fs::read_to_string(dir.path().join("GPU_ENERGY_WH.txt")).expect("txt"), "194.68\n");
}

#[test]
fn units_wh_and_joules_are_converted() {
    let report = read_json(&sample("optimum/benchlab-llama3_8B-benchmark_report.json"));
    for (unit, factor) in [("Wh", 1000.0), ("J", 3_600_000.0), ("kWh", 1.0)] {
        let mut r = report.clone();
        for phase in r.as_object_mut().expect("object").values_mut() {
            let e = &mut phase["energy"];
            for k in ["cpu", "gpu", "ram", "total"] {
                e[k] = json!(e[k].as_f64().expect("number") * factor);
            }
            e["unit"] = json!(unit);
        }
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("benchmark_report.json"), r.to_string()).expect("write");
        energy_star(dir.path(), &["summarize", "."], &[]).success();
        let s = read_json(&dir.path().join("GPU_ENERGY_SUMMARY.json"));
        assert_eq!(s["total"], json!(194.68), "unit {unit}");
    }
}

#[test]
fn unknown_energy_unit_is_an_error_naming_it() {
    let dir = tempfile::tempdir().expect("tmp");
    let r = json!({"prefill": {"energy": {"unit": "BTU", "gpu": 1.0}, "efficiency": null}});
    std::fs::write(dir.path().join("benchmark_report.json"), r.to_string()).expect("write");
    energy_star(dir.path(), &["summarize", "."], &[]).fails_with(1, &["BTU", "prefill"]);
}

#[test]
fn ai_energy_benchmarks_reports() {
    for (file, total) in
        [("SYNTHETIC_pytorch_benchmark_report.json", "55.12\n"), ("SYNTHETIC_vllm_benchmark_report.json", "5.98\n")]
    {
        let (dir, run) = summarize(&sample(&format!("ai_energy_benchmarks/{file}")));
        run.success();
        let (txt, s) = summary_of(dir.path());
        assert_eq!(txt, total, "{file}");
        assert_eq!(s["format"], "ai_energy_benchmarks");
        assert_eq!(s["preprocess_wh"], json!(0.0));
        assert_eq!(s["prefill_wh"], json!(0.0));
        assert_eq!(format!("{:.2}\n", s["decode_wh"].as_f64().expect("decode")), total);
    }
    // The original's own example: {"energy": {"gpu_energy_wh": 12.34567}} gives 12.35.
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(
        dir.path().join("benchmark_report.json"),
        json!({"energy": {"gpu_energy_wh": 12.34567}, "summary": {}, "metrics_metadata": {}}).to_string(),
    )
    .expect("write");
    energy_star(dir.path(), &["summarize", "."], &[]).success();
    assert_eq!(std::fs::read_to_string(dir.path().join("GPU_ENERGY_WH.txt")).expect("txt"), "12.35\n");
    // gpu_energy_kwh alone is converted.
    std::fs::write(dir.path().join("benchmark_report.json"), json!({"energy": {"gpu_energy_kwh": 0.5}}).to_string())
        .expect("write");
    energy_star(dir.path(), &["summarize", "."], &[]).success();
    assert_eq!(std::fs::read_to_string(dir.path().join("GPU_ENERGY_WH.txt")).expect("txt"), "500.00\n");
}

#[test]
fn metrics_disabled_report_is_an_error_that_says_so() {
    let (dir, run) = summarize(&sample("ai_energy_benchmarks/SYNTHETIC_metrics_disabled_benchmark_report.json"));
    run.fails_with(1, &["metrics disabled"]);
    assert!(!dir.path().join("GPU_ENERGY_WH.txt").exists(), "no summary may be written for an unmeasured run");
}

#[test]
fn report_without_energy_is_an_error_not_a_zero() {
    // optimum-benchmark's inference scenario with energy tracking off.
    let (dir, run) = summarize(&sample("optimum/optbench-83c4c9f5-benchmark.json"));
    run.fails_with(1, &["has no energy for preprocess", "load, forward"]);
    assert!(!dir.path().join("GPU_ENERGY_WH.txt").exists());
}

#[test]
fn unknown_format_lists_the_formats_read() {
    for file in
        ["optimum/benchlab-llama3_8B-benchmark_config.json", "optimum/benchlab-llama3_8B-prefill_codecarbon.json"]
    {
        let (_dir, run) = summarize(&sample(file));
        run.fails_with(1, &["in no format the installed summarizers read", "ai_energy_benchmarks, optimum"]);
    }
}

#[test]
fn malformed_and_truncated_json_are_clear_errors() {
    let full = std::fs::read_to_string(sample("optimum/benchlab-llama3_8B-benchmark_report.json")).expect("read");
    for body in [&full[..full.len() / 2], "{\"prefill\": ", "not json at all", ""] {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("benchmark_report.json"), body).expect("write");
        energy_star(dir.path(), &["summarize", "."], &[]).fails_with(1, &["is not valid JSON"]);
    }
}

#[test]
fn empty_or_missing_results_folder() {
    let dir = tempfile::tempdir().expect("tmp");
    energy_star(dir.path(), &["summarize", "."], &[]).fails_with(1, &["no benchmark_report.json"]);
    energy_star(dir.path(), &["summarize", "does-not-exist"], &[]).fails_with(1, &["does-not-exist does not exist"]);
}

#[test]
fn newest_report_below_the_folder_is_summarized_and_outputs_land_beside_it() {
    let old = sample("optimum/benchlab-llama3_8B-benchmark_report.json");
    let new = sample("optimum/aienergyscore-results_benchmark_report.json");
    let dir = folder_with(&[(&old, "run1/benchmark_report.json")]);
    std::thread::sleep(std::time::Duration::from_millis(50));
    std::fs::create_dir_all(dir.path().join("run2/nested")).expect("mkdir");
    std::fs::copy(&new, dir.path().join("run2/nested/benchmark_report.json")).expect("copy");
    energy_star(dir.path(), &["summarize", "."], &[]).success();
    let out = dir.path().join("run2/nested");
    assert_eq!(std::fs::read_to_string(out.join("GPU_ENERGY_WH.txt")).expect("txt"), "133.71\n");
    assert!(!dir.path().join("run1/GPU_ENERGY_WH.txt").exists());
    // Atomic writes leave no temporary files behind.
    let names: Vec<String> = std::fs::read_dir(&out)
        .expect("ls")
        .map(|e| e.expect("e").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(names.iter().all(|n| !n.starts_with('.')), "{names:?}");
}

#[test]
fn results_dir_env_is_the_default_target() {
    let dir = folder_with(&[(&sample("optimum/aienergyscore-results_benchmark_report.json"), "benchmark_report.json")]);
    let cwd = tempfile::tempdir().expect("tmp");
    let path = dir.path().to_str().expect("utf-8");
    energy_star(cwd.path(), &["summarize"], &[("RESULTS_DIR", path)]).success();
    assert!(dir.path().join("GPU_ENERGY_WH.txt").exists());
}

#[test]
fn a_real_upstream_cpu_run_is_told_from_a_failed_gpu_reading() {
    // optimum-benchmark 0.6.0 itself on CPU (tests/fixtures/samples/optimum-cpu): CodeCarbon
    // writes GPU 0.0 in every phase. Its benchmark.json says backend.device=cpu: no GPU figure,
    // said so, and no "failed reading" warning.
    let dir = folder_with(&[(&sample("optimum-cpu/benchmark.json"), "benchmark.json")]);
    energy_star(dir.path(), &["summarize", "."], &[]).success();
    let (txt, s) = summary_of(dir.path());
    assert_eq!(txt, "n/a\n");
    assert!(s["total"].is_null() && s["gpu_absent_reason"] == "backend.device=cpu: the run used no GPU", "{s}");
    assert!(!s["warnings"].to_string().contains("failed reading"), "{s}");
    // The bare report cannot say which: its zeros are summed as the original does, and the
    // warning names both readings and where to look.
    let (dir, run) = summarize(&sample("optimum-cpu/benchmark_report.json"));
    run.success();
    let (txt, s) = summary_of(dir.path());
    assert_eq!(txt, "0.00\n");
    let w = s["warnings"].to_string();
    assert!(w.contains("a run without a GPU") && w.contains("backend.device"), "{w}");
}

#[test]
fn an_upstream_folder_is_read_with_its_config_and_names_its_cpu_and_ram_source() {
    // The folder as optimum-benchmark 0.6.0 leaves it: report, config and benchmark.json. The
    // folder is summarized through benchmark.json, whose config says the run used no GPU.
    let files = ["benchmark_report.json", "benchmark_config.json", "benchmark.json"];
    let copied: Vec<(PathBuf, &str)> = files.iter().map(|f| (sample(&format!("optimum-cpu/{f}")), *f)).collect();
    let refs: Vec<(&Path, &str)> = copied.iter().map(|(p, n)| (p.as_path(), *n)).collect();
    let dir = folder_with(&refs);
    let run = energy_star(dir.path(), &["summarize", "."], &[]).success();
    let (txt, s) = summary_of(dir.path());
    assert_eq!(txt, "n/a\n", "{}", run.stdout());
    assert_eq!(s["gpu_absent_reason"], "backend.device=cpu: the run used no GPU", "{s}");
    assert!(s["report"].as_str().is_some_and(|r| r.ends_with("benchmark.json")), "{s}");
    let w = s["warnings"].to_string();
    assert!(!w.contains("failed reading"), "{w}");
    assert!(w.contains("CPU and RAM energy: CodeCarbon's, through optimum-benchmark 0.6.0's energy tracker"), "{w}");
    // Named on the command line, the bare report is read as named.
    energy_star(dir.path(), &["summarize", "benchmark_report.json"], &[]).success();
    let (txt, _) = summary_of(dir.path());
    assert_eq!(txt, "0.00\n");

    // A GPU run by its config (benchlab's H100 run) with a zero reading: a failed reading, said so.
    let config = read_json(&sample("optimum/benchlab-llama3_8B-benchmark_config.json"));
    let mut report = read_json(&sample("optimum/benchlab-llama3_8B-benchmark_report.json"));
    report["prefill"]["energy"]["gpu"] = json!(0.0);
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("benchmark.json"), json!({"config": config, "report": report}).to_string())
        .expect("write");
    energy_star(dir.path(), &["summarize", "."], &[]).success();
    let (_, s) = summary_of(dir.path());
    let w = s["warnings"].to_string();
    assert!(w.contains("phase \\\"prefill\\\": GPU energy is 0 Wh although backend.device=cuda"), "{w}");
    assert!(w.contains("optimum-benchmark 0.6.0.dev0"), "{w}");
}

#[test]
fn ai_energy_benchmarks_cpu_runs_and_failed_readings_are_told_apart_and_sources_named() {
    let base = read_json(&sample("ai_energy_benchmarks/SYNTHETIC_pytorch_benchmark_report.json"));
    let summarize_value = |v: &Value| {
        let dir = tempfile::tempdir().expect("tmp");
        std::fs::write(dir.path().join("benchmark_report.json"), v.to_string()).expect("write");
        energy_star(dir.path(), &["summarize", "."], &[]).success();
        let (txt, s) = summary_of(dir.path());
        (txt, s)
    };
    // As written: the source is the report's metrics_metadata.
    let (_, s) = summarize_value(&base);
    assert!(s["warnings"].to_string().contains("CPU and RAM energy: CodeCarbon 3.0.4's (metrics_metadata)"), "{s}");
    // A GPU run reading 0: a failed reading, by backend_info.device.
    let mut zero = base.clone();
    zero["energy"]["gpu_energy_wh"] = json!(0.0);
    zero["energy"]["gpu_energy_kwh"] = json!(0.0);
    let (txt, s) = summarize_value(&zero);
    assert_eq!(txt, "0.00\n");
    assert!(s["warnings"].to_string().contains("0 Wh although backend_info.device=cuda"), "{s}");
    // A CPU run: CodeCarbon's 0.0 is no GPU figure.
    let mut cpu = zero.clone();
    cpu["backend_info"]["device"] = json!("cpu");
    let (txt, s) = summarize_value(&cpu);
    assert_eq!(txt, "n/a\n");
    assert_eq!(s["gpu_absent_reason"], "backend_info.device=cpu: the run used no GPU", "{s}");
    // No device named, but no GPU watched either.
    let mut unwatched = zero;
    unwatched["backend_info"].as_object_mut().expect("info").remove("device");
    unwatched["gpu_stats"] = json!({});
    let (txt, s) = summarize_value(&unwatched);
    assert_eq!((txt.as_str(), &s["gpu_absent_reason"]), ("n/a\n", &json!("gpu_stats lists no GPU: the run used none")));
}

#[test]
fn a_real_ai_energy_benchmarks_cpu_run_is_told_from_a_failed_gpu_reading() {
    // ai_energy_benchmarks 0.0.7 itself on CPU (tests/fixtures/samples/ai_energy_benchmarks-cpu):
    // CodeCarbon's GPU 0.0, backend_info.device=cpu, an empty gpu_stats.
    let (dir, run) = summarize(&sample("ai_energy_benchmarks-cpu/benchmark_report.json"));
    run.success();
    let (txt, s) = summary_of(dir.path());
    assert_eq!(txt, "n/a\n");
    assert_eq!(s["gpu_absent_reason"], "backend_info.device=cpu: the run used no GPU", "{s}");
    let w = s["warnings"].to_string();
    assert!(!w.contains("failed reading"), "{w}");
    assert!(w.contains("CPU and RAM energy: CodeCarbon 3.3.2's (metrics_metadata)"), "{w}");
    assert!(s["cpu_wh"].as_f64().is_some_and(|c| c > 0.0) && s["ram_wh"].as_f64().is_some_and(|r| r > 0.0), "{s}");
}
