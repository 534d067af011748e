use std::path::Path;

use energy_star_tests::{energy_star, fixtures, folder_with, guests, read_json};

fn echo_plugins() -> tempfile::TempDir {
    folder_with(&[(&guests().echo_backend, "echo.wasm")])
}

fn sample_text(rel: &str) -> String {
    std::fs::read_to_string(fixtures().join("samples").join(rel)).expect("sample")
}

#[test]
fn unknown_backend_lists_the_valid_ones_and_exits_1() {
    let cwd = tempfile::tempdir().expect("tmp");
    let run = energy_star(cwd.path(), &["--config-name", "text_generation"], &[("BENCHMARK_BACKEND", "tensorrt")])
        .fails_with(1, &["Error: Unknown BENCHMARK_BACKEND=tensorrt", "Valid options: optimum, pytorch, vllm"]);
    assert!(!cwd.path().join("results").exists(), "nothing may be written before the backend is known");
    drop(run);
    // A dropped-in backend becomes a valid option.
    let plugins = echo_plugins();
    energy_star(
        cwd.path(),
        &["--plugin-dir", plugins.path().to_str().expect("utf-8"), "--config-name", "text_generation"],
        &[("BENCHMARK_BACKEND", "nope")],
    )
    .fails_with(1, &["Valid options: echo, optimum, pytorch, vllm"]);
}

#[test]
fn vllm_without_endpoint_is_the_original_error() {
    let cwd = tempfile::tempdir().expect("tmp");
    let run = energy_star(cwd.path(), &["--config-name", "text_generation"], &[("BENCHMARK_BACKEND", "vllm")]);
    run.fails_with(1, &["Error: VLLM_ENDPOINT environment variable must be set for vLLM backend"]);
    assert!(!cwd.path().join("results").exists());
}

#[test]
fn a_run_that_cannot_start_touches_nothing_and_one_that_fails_keeps_what_it_measured() {
    let cwd = tempfile::tempdir().expect("tmp");
    // The real task config names a Hugging Face dataset that is not in the (empty) cache and
    // cannot be fetched (offline): the backend's plan is refused before the results folder is
    // created.
    let results = cwd.path().join("optimum");
    let home = cwd.path().to_str().expect("utf-8");
    let run = energy_star(
        cwd.path(),
        &[
            "--config-name",
            "text_generation",
            "backend.model=energy-star/toy-llama",
            "--results-dir",
            results.to_str().expect("utf-8"),
        ],
        &[("HF_HOME", home), ("HF_HUB_OFFLINE", "1")],
    );
    run.fails_with(1, &["EnergyStarAI/text_generation", "HF_HUB_OFFLINE=1 forbids downloading"]);
    assert!(!results.exists(), "a plan that cannot run touches nothing");
    // A model whose weights do not load fails half-way: what was measured before is kept in a
    // report marked incomplete, with the phase that failed named.
    let broken = cwd.path().join("broken-model");
    std::fs::create_dir_all(&broken).expect("mkdir");
    for f in ["config.json", "tokenizer.json", "tokenizer_config.json", "generation_config.json"] {
        std::fs::copy(energy_star_tests::root().join("tests/fixtures/tiny-llama").join(f), broken.join(f))
            .expect("copy");
    }
    std::fs::write(broken.join("model.safetensors"), b"not safetensors").expect("write");
    let model_arg = format!("backend.model={}", broken.display());
    let run = energy_star(
        cwd.path(),
        &["--config-name", "text_generation_offline", &model_arg, "--results-dir", results.to_str().expect("utf-8")],
        &[],
    );
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    let status = read_json(&results.join("run_status.json"));
    assert_eq!((status["complete"].as_bool(), status["state"].as_str()), (Some(false), Some("incomplete")));
    assert!(status["incomplete_reasons"][0].as_str().expect("why").contains("load_model failed"), "{status}");
    let report = read_json(&results.join("benchmark_report.json"));
    assert!(report["load_dataset"]["energy"].is_object(), "the finished phase is kept: {report}");
    assert!(report.get("prefill").is_none() && report.get("decode").is_none());
    let additions = read_json(&results.join("energy_star_report.json"));
    assert_eq!(additions["run"]["interrupted_phase"]["phase"], "load_model");
    // No phase the leaderboard counts was finished: no summary, and a clear word why.
    assert!(
        run.stderr().contains("no summary of this incomplete run")
            && run.stderr().contains("phases present: load_dataset"),
        "{}",
        run.stderr()
    );
    assert!(!results.join("GPU_ENERGY_SUMMARY.json").exists());
    // vLLM: nothing listens on the endpoint; the error says so before anything is metered.
    let results = cwd.path().join("vllm");
    let run = energy_star(
        cwd.path(),
        &[
            "--config-name",
            "text_generation",
            "--results-dir",
            results.to_str().expect("utf-8"),
            "scenario.dataset_name=energy-star/prompts",
            "scenario.num_samples=2",
        ],
        &[("BENCHMARK_BACKEND", "vllm"), ("VLLM_ENDPOINT", "http://127.0.0.1:9/v1")],
    );
    run.fails_with(1, &["cannot reach the server at http://127.0.0.1:9/v1"]);
    let windows = std::fs::read_to_string(results.join("energy_windows.csv")).unwrap_or_default();
    assert!(!windows.contains(",inference,"), "no request window was opened: {windows}");
}

fn offline(backend: &str, extra: &[&str]) -> (tempfile::TempDir, energy_star_tests::Run) {
    let cwd = tempfile::tempdir().expect("tmp");
    let mut args = vec![
        "--config-name",
        "text_generation_offline",
        "scenario.num_samples=8",
        "scenario.generate_kwargs.max_new_tokens=4",
        "scenario.generate_kwargs.min_new_tokens=4",
        "scenario.input_shapes.batch_size=4",
        "scenario.warmup_runs=1",
    ];
    args.extend_from_slice(extra);
    let run = energy_star(cwd.path(), &args, &[("BENCHMARK_BACKEND", backend)]);
    (cwd, run)
}

#[test]
fn the_offline_default_runs_the_optimum_scenario_end_to_end() {
    let (cwd, run) = offline("optimum", &["scenario.iterations=2"]);
    let run = run.success();
    assert!(run.stdout().contains("no GPU energy: backend.device=cpu"), "{}", run.stdout());
    let r = cwd.path().join("results");
    for f in [
        "benchmark_report.json",
        "benchmark_config.json",
        "benchmark.json",
        "GPU_ENERGY_WH.txt",
        "GPU_ENERGY_SUMMARY.json",
        "energy_meter.json",
        "energy_timeline.csv",
        "energy_windows.csv",
        "effective_config.yaml",
        "run_status.json",
    ] {
        assert!(r.join(f).exists(), "{f} missing");
    }
    let report = read_json(&r.join("benchmark_report.json"));
    let keys: Vec<&str> = report.as_object().expect("object").keys().map(String::as_str).collect();
    // Upstream's keys only (optimum-benchmark's TargetMeasurements takes no others); what
    // energy-star adds is in its own file beside.
    assert_eq!(keys, ["load_dataset", "preprocess_dataset", "load_model", "prefill", "decode"]);
    for (phase, v) in report.as_object().expect("object") {
        let phase_keys: Vec<&str> = v.as_object().expect("phase").keys().map(String::as_str).collect();
        assert_eq!(phase_keys, ["memory", "latency", "throughput", "energy", "efficiency"], "{phase}");
    }
    let additions = read_json(&r.join("energy_star_report.json"));
    let config = read_json(&r.join("benchmark_config.json"));
    assert!(config["scenario"].get("iterations").is_none(), "EnergyStarConfig has no iterations");
    assert_eq!(additions["run"]["iterations"], 2);
    // The machine keys as upstream writes them on this machine (the upstream suite checks them
    // against optimum-benchmark's own get_system_info()), from the host's description.
    let machine = &read_json(&r.join("run_record.json"))["machine"];
    let env = &config["environment"];
    assert!(env["cpu_count"].as_u64().is_some_and(|n| n > 0) && env["cpu_count"] == machine["cpu_count"], "{env}");
    assert_eq!(env["cpu_ram_mb"].as_f64(), machine["ram_bytes"].as_f64().map(|b| b / 1e6), "{env}");
    assert_eq!((&env["system"], &env["platform"]), (&machine["system"], &machine["platform"]), "{env}");
    for key in ["cpu", "machine", "processor", "python_version", "optimum_benchmark_version", "energy_star_version"] {
        assert!(env.get(key).is_some(), "environment.{key} missing: {env}");
    }
    // Upstream writes the GPU keys only on a machine with GPUs.
    let has_gpus = machine["gpus"].as_array().is_some_and(|g| !g.is_empty());
    for key in ["gpu", "gpu_count", "gpu_vram_mb"] {
        assert_eq!(env.get(key).is_some(), has_gpus, "environment.{key}: {env}");
    }
    // No GPU in the run: 0.0, as upstream (CodeCarbon) writes without one; energy-star's own
    // summary says "no GPU", not 0. CPU and RAM are labelled estimates in energy-star's file.
    for phase in ["prefill", "decode"] {
        let e = &report[phase]["energy"];
        assert!(e["gpu"] == 0.0 && e["unit"] == "kWh", "{phase}: {e}");
        // decode = generate − prefill can be negative on a tiny workload; it must be a number.
        let cpu = e["cpu"].as_f64().expect("cpu");
        assert!(phase == "decode" || cpu > 0.0, "{phase}: {e}");
        assert_eq!(additions["phases"][phase]["provenance"]["cpu_source"], "estimate-tdp");
        assert_eq!(additions["phases"][phase]["measures"].as_array().map(Vec::len), Some(2), "two iterations");
    }
    // The prefill windows of this tiny run are short and flagged so; decode, derived from the
    // seconds-long generate as well, inherits only what makes the difference doubtful.
    let flags = |phase: &str| -> Vec<String> {
        additions["phases"][phase]["provenance"]["flags"]
            .as_array()
            .expect("flags")
            .iter()
            .map(|f| f.to_string())
            .collect()
    };
    assert!(flags("prefill").iter().any(|f| f.contains("too-short")), "{:?}", flags("prefill"));
    assert!(flags("decode").iter().all(|f| !f.contains("too-short")), "{:?}", flags("decode"));
    assert_eq!(additions["phases"]["decode"]["provenance"]["derived"], "generate - prefill");
    // optimum's volumes: decode = samples × (new tokens − 1), per kWh of total energy.
    let total = report["decode"]["energy"]["total"].as_f64().expect("total");
    let eff = report["decode"]["efficiency"]["value"].as_f64().expect("eff");
    assert!((eff * total - 8.0 * 3.0).abs() < 1e-6, "{eff} × {total}");
    assert_eq!(report["decode"]["efficiency"]["unit"], "tokens/kWh");
    assert_eq!(additions["run"]["input_tokens"].as_u64().map(|t| t > 8), Some(true));
    let summary = read_json(&r.join("GPU_ENERGY_SUMMARY.json"));
    assert!(summary["total"].is_null());
    assert_eq!(summary["gpu_absent_reason"], "backend.device=cpu: the run used no GPU");
    assert!(summary["cpu_wh"].as_f64().expect("cpu") > 0.0);
    assert_eq!(std::fs::read_to_string(r.join("GPU_ENERGY_WH.txt")).expect("txt"), "n/a\n");
    assert_eq!(read_json(&r.join("run_status.json"))["state"], "complete");
    let windows = std::fs::read_to_string(r.join("energy_windows.csv")).expect("windows");
    for w in ["load_dataset", "preprocess_dataset", "load_model", "prefill_0", "generate_0", "prefill_1", "generate_1"]
    {
        assert!(windows.contains(&format!(",{w},")), "{w} missing from {windows}");
    }
    let wrapper = read_json(&r.join("benchmark.json"));
    assert_eq!(wrapper["report"]["decode"], report["decode"]);
}

#[test]
fn the_offline_default_runs_the_ai_energy_benchmarks_workload() {
    let (cwd, run) = offline("pytorch", &[]);
    run.success();
    let report = read_json(&cwd.path().join("results/benchmark_report.json"));
    // The keys AI Energy Score's tools read, in the sample's order.
    let sample = read_json(
        &energy_star_tests::fixtures().join("samples/ai_energy_benchmarks/SYNTHETIC_pytorch_benchmark_report.json"),
    );
    for (section, fields) in sample.as_object().expect("sample") {
        if section == "gpu_stats" {
            continue;
        }
        for key in fields.as_object().expect("section").keys() {
            assert!(report[section].get(key).is_some(), "{section}.{key} missing");
        }
    }
    assert_eq!(report["summary"]["successful_prompts"], 8);
    assert_eq!(report["summary"]["total_completion_tokens"], 32);
    assert_eq!(report["energy"]["gpu_energy_wh"], 0.0, "no GPU: 0.0 as upstream writes it");
    assert!(report["energy"]["cpu_energy_wh"].as_f64().expect("cpu") > 0.0);
    assert!(report["energy"]["emissions_g_co2eq"].is_null(), "no grid location for the offline default: none invented");
    assert!(report.get("energy_star").is_none(), "upstream's keys only");
    let additions = read_json(&cwd.path().join("results/energy_star_report.json"));
    assert_eq!(
        additions["run"]["phases"]["method"],
        "attributed by engine time within the one metered window, not metered apart"
    );
}

#[test]
fn the_pytorch_report_has_the_keys_and_types_of_a_real_ai_energy_benchmarks_cpu_run() {
    // ai_energy_benchmarks 0.0.7 itself on CPU (tests/fixtures/samples/ai_energy_benchmarks-cpu,
    // tests/fixtures/scripts/ai_energy_benchmarks_cpu_run.py says how): every section with the
    // same keys in the same order, each value of the same JSON type. With a grid location, as
    // CodeCarbon always has one, the emissions are numbers too.
    let (cwd, run) = offline("pytorch", &["++metering.country_iso_code=USA", "++metering.region=california"]);
    run.success();
    let ours = read_json(&cwd.path().join("results/benchmark_report.json"));
    let real = read_json(&energy_star_tests::fixtures().join("samples/ai_energy_benchmarks-cpu/benchmark_report.json"));
    let keys = |v: &serde_json::Value| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>());
    assert_eq!(keys(&ours), keys(&real));
    let kind = |v: &serde_json::Value| match v {
        serde_json::Value::Null => "null",
        serde_json::Value::Bool(_) => "bool",
        serde_json::Value::Number(_) => "number",
        serde_json::Value::String(_) => "string",
        serde_json::Value::Array(_) => "array",
        serde_json::Value::Object(_) => "object",
    };
    for (section, fields) in real.as_object().expect("report") {
        assert_eq!(keys(&ours[section]), keys(fields), "{section}");
        for (key, value) in fields.as_object().expect("section") {
            // energy-star writes no CodeCarbon files, so it names no folder of them.
            if (section.as_str(), key.as_str()) == ("metrics_metadata", "output_dir") {
                assert!(ours[section][key].is_null());
                continue;
            }
            assert_eq!(kind(&ours[section][key]), kind(value), "{section}.{key}: {} vs {value}", ours[section][key]);
        }
    }
    // Both on CPU: GPU 0.0 and no GPU watched, as the original writes it.
    assert_eq!(
        (&ours["energy"]["gpu_energy_wh"], &ours["gpu_stats"]),
        (&real["energy"]["gpu_energy_wh"], &real["gpu_stats"])
    );
}

#[test]
fn bad_scenario_settings_are_clear_errors() {
    // Everything the config decides is checked by the backend's `prepare`, before the results
    // folder is created or changed.
    for backend in ["optimum", "pytorch"] {
        // optimum runs the forward tasks on the local engine; the pytorch backend runs text
        // generation only, as ai_energy_benchmarks does.
        let task = match backend {
            "optimum" => (
                "backend.task=automatic-speech-recognition",
                "backend.task=automatic-speech-recognition is not supported",
            ),
            _ => (
                "backend.task=image-classification",
                "backend.task=image-classification is not supported by the pytorch backend",
            ),
        };
        let tokens = match backend {
            // optimum-benchmark refuses min and max that differ; ai_energy_benchmarks' path takes
            // a min below the max (AI Energy Score's reasoning rows: 8192 and 1), not above.
            "optimum" => {
                ("scenario.generate_kwargs.min_new_tokens=2", "min_new_tokens (2) and max_new_tokens (4) differ")
            }
            _ => ("scenario.generate_kwargs.min_new_tokens=9", "min_new_tokens (9) is above max_new_tokens (4)"),
        };
        for (bad, says) in [
            tokens,
            ("scenario.input_shapes.batch_size=0", "batch_size = 0"),
            task,
            ("scenario.num_samples=abc", "scenario.num_samples = \"abc\" must be an integer"),
            ("backend.torch_dtype=float8", "backend.torch_dtype = \"float8\""),
        ] {
            let (cwd, run) = offline(backend, &[bad]);
            run.fails_with(1, &[says, &format!("the {backend} backend refused the config")]);
            assert!(!cwd.path().join("results").exists(), "{backend} {bad}: the results folder was touched");
        }
    }
    // ai_energy_benchmarks hands a formatter-less model's unknown reasoning params to generate(),
    // which fails every prompt: refused before anything runs.
    let (cwd, run) = offline("pytorch", &["++scenario.reasoning=true", "++scenario.reasoning_params.depth=3"]);
    run.fails_with(1, &["scenario.reasoning_params.depth", "fails every prompt"]);
    assert!(!cwd.path().join("results").exists());
    let (_cwd, run) = offline("optimum", &["scenario.text_column_name=prompt"]);
    run.fails_with(1, &["no column \"prompt\""]);
    let (_cwd, run) = offline("optimum", &["scenario.num_samples=500"]);
    run.fails_with(1, &["500"]);
}

#[test]
fn a_dropped_in_backend_runs_and_its_report_is_summarized() {
    let plugins = echo_plugins();
    let cwd = tempfile::tempdir().expect("tmp");
    let report = sample_text("ai_energy_benchmarks/SYNTHETIC_pytorch_benchmark_report.json");
    let run = energy_star(
        cwd.path(),
        &[
            "--plugin-dir",
            plugins.path().to_str().expect("utf-8"),
            "--config-name",
            "text_generation",
            "scenario.num_samples=3",
            "backend.model=org/model",
        ],
        &[("BENCHMARK_BACKEND", "echo"), ("ECHO_REPORT", &report)],
    )
    .success();
    assert!(run.stdout().contains("GPU Energy (Wh): 55.12"), "{}", run.stdout());
    let results = cwd.path().join("results");
    assert_eq!(std::fs::read_to_string(results.join("GPU_ENERGY_WH.txt")).expect("txt"), "55.12\n");
    assert_eq!(std::fs::read_to_string(results.join("benchmark_report.json")).expect("report"), report);
    let status = read_json(&results.join("run_status.json"));
    assert_eq!(status["complete"], true);
    assert_eq!(status["files_written_by_backend"], serde_json::json!(["echo/notes.json"]));
    assert!(status["energy_files"].to_string().contains("energy_meter.json"));
    // The plugin saw the effective config and the meter's honest answer.
    let notes = read_json(&results.join("echo/notes.json"));
    assert_eq!(notes["num_samples"], 3);
    assert_eq!(notes["config_name"], "text_generation");
    // No GPU here: GPU 0 is reported unavailable (no figure), CPU and RAM are labelled estimates.
    assert_eq!(notes["meter"], "3 devices", "{notes}");
    let devices = notes["window"]["devices"].as_array().expect("devices");
    let gpu = devices.iter().find(|d| d["kind"] == "Gpu").expect("gpu");
    assert_eq!((gpu["source"].as_str(), gpu["energy_j"].is_null()), (Some("Unavailable"), true), "{notes}");
    let cpu = devices.iter().find(|d| d["kind"] == "Cpu").expect("cpu");
    assert_eq!(cpu["source"], "EstimateTdp");
    assert!(cpu["energy_j"].as_f64().expect("cpu energy") >= 0.0);
    assert!(notes["window"]["warnings"].to_string().contains("GPU energy unavailable"), "{notes}");
    // The host kept the meter's record: the window, the timeline, the sampler's cost.
    let record = read_json(&results.join("energy_meter.json"));
    assert_eq!(record["windows"][0]["name"], "echo");
    assert!(record["sampler"]["wall_s"].as_f64().expect("wall") > 0.0);
    let timeline = std::fs::read_to_string(results.join("energy_timeline.csv")).expect("timeline");
    assert!(timeline.starts_with("t_s,device,source,power_w,energy_counter_j"), "{timeline}");
    assert!(timeline.contains(",cpu,estimate-tdp,"), "{timeline}");
    let windows = std::fs::read_to_string(results.join("energy_windows.csv")).expect("windows");
    assert!(windows.lines().nth(1).is_some_and(|l| l.contains(",echo,")), "{windows}");
    assert_eq!(notes["clock_advanced"], true);
    assert!(notes["dataset_probe"].as_str().expect("probe").contains("not named in the run's config"), "{notes}");
    // The effective config is saved.
    let cfg = std::fs::read_to_string(results.join("effective_config.yaml")).expect("config");
    assert!(cfg.contains("model: org/model") && cfg.contains("num_samples: 3"), "{cfg}");
    // The plugin could not write outside the results folder.
    assert!(!cwd.path().join("escape.txt").exists());
}

#[test]
fn a_backend_missing_its_setting_gets_its_own_message() {
    let plugins = echo_plugins();
    let cwd = tempfile::tempdir().expect("tmp");
    energy_star(
        cwd.path(),
        &["--plugin-dir", plugins.path().to_str().expect("utf-8"), "--config-name", "text_generation"],
        &[("BENCHMARK_BACKEND", "echo")],
    )
    .fails_with(1, &["Error: ECHO_REPORT must be set for the echo backend"]);
}

#[test]
fn a_failed_run_keeps_what_it_wrote_and_is_marked_incomplete() {
    let plugins = echo_plugins();
    let cwd = tempfile::tempdir().expect("tmp");
    let dir = plugins.path().to_str().expect("utf-8");
    energy_star(
        cwd.path(),
        &["--plugin-dir", dir, "--config-name", "text_generation"],
        &[("BENCHMARK_BACKEND", "echo"), ("ECHO_REPORT", "{\"fail_after_write\": 1}")],
    )
    .fails_with(1, &["asked to fail after writing a file", "marked failed"]);
    let results = cwd.path().join("results");
    assert!(results.join("echo/notes.json").exists(), "files written before the failure must stay");
    assert!(!results.join("benchmark_report.json").exists());
    let status = read_json(&results.join("run_status.json"));
    assert_eq!(status["state"], "failed");
    assert!(status["error"].as_str().expect("error").contains("asked to fail"));

    // A run the backend itself marks incomplete: report kept, summary written, exit 1.
    let report = serde_json::json!({"incomplete": true, "energy": {"gpu_energy_wh": 1.0}}).to_string();
    let run = energy_star(
        cwd.path(),
        &["--plugin-dir", dir, "--config-name", "text_generation"],
        &[("BENCHMARK_BACKEND", "echo"), ("ECHO_REPORT", &report)],
    );
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    let status = read_json(&results.join("run_status.json"));
    assert_eq!(status["state"], "incomplete");
    assert_eq!(status["incomplete_reasons"], serde_json::json!(["asked to be incomplete"]));
    assert!(results.join("GPU_ENERGY_WH.txt").exists());

    // A rerun in the same folder moves everything of the earlier run (whoever wrote it) into its
    // own new folder under previous-runs/: nothing is deleted, however many reruns follow.
    let earlier_of = |results: &Path| -> Vec<std::path::PathBuf> {
        let mut v: Vec<_> = std::fs::read_dir(results.join("previous-runs"))
            .map(|rd| rd.map(|e| e.expect("entry").path()).collect())
            .unwrap_or_default();
        v.sort();
        v
    };
    std::fs::write(results.join("report.html"), "<html>made by `energy-star report`</html>").expect("write");
    energy_star(
        cwd.path(),
        &["--plugin-dir", dir, "--config-name", "text_generation"],
        &[("BENCHMARK_BACKEND", "echo"), ("ECHO_REPORT", "{\"fail_after_write\": 1}")],
    )
    .fails_with(1, &["marked failed", "the earlier run in"]);
    for gone in ["GPU_ENERGY_WH.txt", "GPU_ENERGY_SUMMARY.json", "benchmark_report.json", "report.html"] {
        assert!(!results.join(gone).exists(), "{gone} of the earlier run is still at the top level");
    }
    energy_star(
        cwd.path(),
        &["--plugin-dir", dir, "--config-name", "text_generation"],
        &[("BENCHMARK_BACKEND", "echo"), ("ECHO_REPORT", "{\"fail_after_write\": 1}")],
    )
    .fails_with(1, &["marked failed"]);
    let earlier = earlier_of(&results);
    assert_eq!(earlier.len(), 3, "three reruns, three folders: {earlier:?}");
    // The runs in order: failed, incomplete (with a report, summaries and the page), failed.
    let states: Vec<String> = earlier
        .iter()
        .map(|d| read_json(&d.join("run_status.json"))["state"].as_str().unwrap_or("?").to_string())
        .collect();
    assert_eq!(states, ["failed", "incomplete", "failed"]);
    let with_report = &earlier[1];
    for kept in ["benchmark_report.json", "GPU_ENERGY_WH.txt", "report.html", "energy_meter.json", "echo/notes.json"] {
        assert!(with_report.join(kept).exists(), "{kept} of the incomplete run was lost");
    }
    assert!(earlier[0].join("echo/notes.json").exists() && earlier[2].join("echo/notes.json").exists());
    // summarize never reads a set-aside run unless pointed at it.
    energy_star(cwd.path(), &["summarize", "results"], &[]).fails_with(1, &["no benchmark_report.json"]);
    energy_star(cwd.path(), &["summarize", with_report.to_str().expect("utf-8")], &[]).success();
}

#[test]
fn malformed_report_from_a_backend_is_refused() {
    let plugins = echo_plugins();
    let cwd = tempfile::tempdir().expect("tmp");
    energy_star(
        cwd.path(),
        &["--plugin-dir", plugins.path().to_str().expect("utf-8"), "--config-name", "text_generation"],
        &[("BENCHMARK_BACKEND", "echo"), ("ECHO_REPORT", "{\"truncated\": ")],
    )
    .fails_with(1, &["returned malformed data from run", "report is not valid JSON"]);
    assert!(!cwd.path().join("results/benchmark_report.json").exists());
}

fn echo_run(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> energy_star_tests::Run {
    let plugins = echo_plugins();
    let report = "{\"energy\": {\"gpu_energy_wh\": 2.0}}";
    let mut all = vec!["--plugin-dir", plugins.path().to_str().expect("utf-8")];
    all.extend_from_slice(args);
    let mut env = env.to_vec();
    env.push(("BENCHMARK_BACKEND", "echo"));
    env.push(("ECHO_REPORT", report));
    let run = energy_star(cwd, &all, &env);
    drop(plugins);
    run
}

#[test]
fn the_results_folder_may_not_overlap_the_compile_cache() {
    let cwd = tempfile::tempdir().expect("tmp");
    let cache = energy_star_tests::cache_dir().join("inside");
    let run = echo_run(
        cwd.path(),
        &["--config-name", "text_generation", "--results-dir", cache.to_str().expect("utf-8")],
        &[],
    );
    run.fails_with(1, &["overlaps the plugin compile cache"]);
}

#[test]
fn results_folder_precedence() {
    let cwd = tempfile::tempdir().expect("tmp");
    let p = |s: &str| cwd.path().join(s).to_str().expect("utf-8").to_string();
    // RESULTS_DIR, then an explicit hydra.run.dir override (the original entrypoint appends it), then --results-dir.
    echo_run(cwd.path(), &["--config-name", "text_generation"], &[("RESULTS_DIR", &p("env"))]).success();
    assert!(cwd.path().join("env/GPU_ENERGY_WH.txt").exists());
    echo_run(
        cwd.path(),
        &["--config-name", "text_generation", &format!("hydra.run.dir={}", p("hydra"))],
        &[("RESULTS_DIR", &p("env2"))],
    )
    .success();
    assert!(cwd.path().join("hydra/GPU_ENERGY_WH.txt").exists());
    echo_run(
        cwd.path(),
        &["--config-name", "text_generation", "--results-dir", &p("flag"), &format!("hydra.run.dir={}", p("hydra2"))],
        &[],
    )
    .success();
    assert!(cwd.path().join("flag/GPU_ENERGY_WH.txt").exists());
    assert!(!cwd.path().join("hydra2").exists() && !cwd.path().join("env2").exists());
    // `run` spelled out works the same.
    echo_run(cwd.path(), &["run", "--config-name=text_generation", "--results-dir", &p("explicit")], &[]).success();
    assert!(cwd.path().join("explicit/GPU_ENERGY_WH.txt").exists());
}

/// Starts `energy-star` and sends it SIGINT once its stderr shows `needle`; returns its output.
fn interrupt_when(cwd: &Path, args: &[&str], env: &[(&str, &str)], needle: &str) -> std::process::Output {
    use std::io::BufRead;
    let mut c = std::process::Command::new(energy_star_tests::bin());
    c.current_dir(cwd)
        .args(args)
        .env("ENERGY_STAR_CACHE_DIR", energy_star_tests::cache_dir())
        .env_remove("RESULTS_DIR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    for (k, v) in env {
        c.env(k, v);
    }
    let mut child = c.spawn().expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let pid = child.id().to_string();
    let needle = needle.to_string();
    let reader = std::thread::spawn(move || {
        let mut seen = String::new();
        let mut sent = false;
        for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
            if !sent && line.contains(&needle) {
                let ok = std::process::Command::new("kill").args(["-INT", &pid]).status().expect("kill");
                assert!(ok.success());
                sent = true;
            }
            seen.push_str(&line);
            seen.push('\n');
        }
        (seen, sent)
    });
    let out = child.wait_with_output().expect("wait");
    let (stderr, sent) = reader.join().expect("reader");
    assert!(sent, "never saw {:?}:\n{stderr}", "the phase");
    std::process::Output { stderr: stderr.into_bytes(), ..out }
}

/// Ctrl-C during an optimum run keeps what was measured: the phases finished, the one cut
/// short with its energy up to then (never counted as a phase), the report and a summary that
/// say the run is incomplete.
#[test]
fn ctrl_c_in_a_local_run_keeps_a_partial_report() {
    let cwd = tempfile::tempdir().expect("tmp");
    let args = [
        "--config-name",
        "text_generation_offline",
        "scenario.num_samples=48",
        "scenario.input_shapes.batch_size=1",
        "scenario.warmup_runs=0",
        "scenario.generate_kwargs.max_new_tokens=96",
        "scenario.generate_kwargs.min_new_tokens=96",
    ];
    let out = interrupt_when(cwd.path(), &args, &[("BENCHMARK_BACKEND", "optimum")], "phase generate");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let r = cwd.path().join("results");
    let status = read_json(&r.join("run_status.json"));
    assert_eq!(status["state"], "incomplete", "{status}");
    assert!(
        status["incomplete_reasons"].to_string().contains("interrupted by the user (Ctrl-C) during generate"),
        "{status}"
    );
    let report = read_json(&r.join("benchmark_report.json"));
    for finished in ["load_dataset", "preprocess_dataset", "load_model", "prefill"] {
        assert!(report[finished]["energy"].is_object(), "{finished} is kept: {report}");
    }
    assert!(report.get("decode").is_none(), "a cut-short generate gives no decode: {report}");
    let additions = read_json(&r.join("energy_star_report.json"));
    let cut = &additions["run"]["interrupted_phase"];
    assert_eq!((cut["phase"].as_str(), cut["flags"][0].as_str()), (Some("generate"), Some("interrupted")));
    assert!(cut["energy"]["cpu"].as_f64().is_some_and(|j| j > 0.0), "its energy up to the interruption: {cut}");
    assert_eq!(additions["run"]["complete"], false);
    let record = read_json(&r.join("run_record.json"));
    let generate =
        record["facts"]["phases"].as_array().expect("phases").iter().find(|p| p["name"] == "generate").cloned();
    assert_eq!(generate.map(|p| p["complete"].clone()), Some(serde_json::json!(false)), "{record}");
    let summary = read_json(&r.join("GPU_ENERGY_SUMMARY.json"));
    assert_eq!((summary["complete"].as_bool(), summary["total"].is_null()), (Some(false), true), "{summary}");
    assert_eq!(std::fs::read_to_string(r.join("GPU_ENERGY_WH.txt")).expect("txt"), "n/a\n");
    assert!(String::from_utf8_lossy(&out.stdout).contains("INCOMPLETE run"));

    // pytorch: the loop stops at the next batch; the report covers the prompts done.
    let cwd = tempfile::tempdir().expect("tmp");
    let out = interrupt_when(cwd.path(), &args, &[("BENCHMARK_BACKEND", "pytorch")], "phase inference");
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    let r = cwd.path().join("results");
    let report = read_json(&r.join("benchmark_report.json"));
    let done = report["summary"]["successful_prompts"].as_u64().expect("done");
    assert!(done < 48 && report["summary"]["failed_prompts"] == 0, "prompts not run are not failures: {report}");
    assert!(report["energy"]["cpu_energy_wh"].as_f64().is_some_and(|w| w > 0.0));
    assert_eq!(read_json(&r.join("run_status.json"))["state"], "incomplete");
    assert_eq!(read_json(&r.join("GPU_ENERGY_SUMMARY.json"))["complete"], false);
}
