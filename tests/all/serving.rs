//! The `vllm` backend against the mock OpenAI-compatible server: the report both tools read,
//! serving metrics, token counting without usage, faults by kind, an unreachable server or an
//! unserved model before any metering, and Ctrl-C mid-run.

use std::path::Path;
use std::time::Duration;

use energy_star_mock_openai::{MockConfig, MockServer, UsageMode};
use energy_star_tests::{energy_star, read_json};
use serde_json::Value;

fn mock(cfg: MockConfig) -> MockServer {
    MockServer::start(cfg).expect("mock server")
}

/// A JSONL dataset of `prompts` in `dir`.
fn dataset(dir: &Path, prompts: &[String]) -> String {
    let path = dir.join("prompts.jsonl");
    let text: String = prompts.iter().map(|p| format!("{}\n", serde_json::json!({"text": p}))).collect();
    std::fs::write(&path, text).expect("write dataset");
    path.to_str().expect("utf-8").to_string()
}

fn vllm(cwd: &Path, endpoint: &str, extra: &[&str]) -> energy_star_tests::Run {
    let mut args = vec![
        "--config-name",
        "text_generation_offline",
        "scenario.generate_kwargs.max_new_tokens=8",
        "scenario.generate_kwargs.min_new_tokens=8",
    ];
    args.extend_from_slice(extra);
    energy_star(cwd, &args, &[("BENCHMARK_BACKEND", "vllm"), ("VLLM_ENDPOINT", endpoint)])
}

fn lines(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path).expect("jsonl").lines().map(|l| serde_json::from_str(l).expect("json line")).collect()
}

#[test]
fn a_streamed_run_writes_the_ai_energy_benchmarks_report_with_serving_metrics() {
    // Keep-alive comments and events split into 7-byte pieces, as real servers and proxies do.
    let server = mock(MockConfig {
        ttft: Duration::from_millis(5),
        itl: Duration::from_millis(1),
        keepalive_every: 2,
        split_bytes: 7,
        ..MockConfig::default()
    });
    let cwd = tempfile::tempdir().expect("tmp");
    // The endpoint without /v1 is accepted.
    let endpoint = format!("http://{}", server.addr);
    vllm(
        cwd.path(),
        &endpoint,
        &[
            "backend.model=mock/model",
            "scenario.num_samples=12",
            "serving.profile=concurrency",
            "serving.concurrency=3",
        ],
    )
    .success();
    let r = cwd.path().join("results");
    let report = read_json(&r.join("benchmark_report.json"));
    let additions = read_json(&r.join("energy_star_report.json"));
    let sample = read_json(
        &energy_star_tests::fixtures().join("samples/ai_energy_benchmarks/SYNTHETIC_vllm_benchmark_report.json"),
    );
    for (section, fields) in sample.as_object().expect("sample") {
        if section == "gpu_stats" {
            continue;
        }
        for key in fields.as_object().expect("section").keys() {
            assert!(report[section].get(key).is_some(), "{section}.{key} missing");
        }
    }
    assert_eq!(report["summary"]["successful_prompts"], 12);
    assert_eq!(report["summary"]["total_completion_tokens"], 96, "fixed length: 12 × 8");
    let es = &additions["run"];
    let m = &es["serving"];
    assert_eq!((m["completed"].as_u64(), m["failed"].as_u64()), (Some(12), Some(0)));
    assert_eq!(m["max_concurrent_requests"], 3);
    assert!(m["mean_ttft_ms"].as_f64().expect("ttft") >= 5.0, "{m}");
    assert!(m["p99_itl_ms"].as_f64().is_some() && m["median_tpot_ms"].as_f64().is_some());
    assert_eq!(es["token_count_sources"]["server-usage"], 12);
    assert_eq!(es["load"]["profile"], "concurrency");
    // ML.ENERGY's steady state exists for 12 requests at concurrency 3, cut from the timeline.
    let steady = &es["energy"]["steady_state"];
    assert!(steady["duration_s"].as_f64().expect("steady state") > 0.0, "{steady}");
    assert!(steady["output_tokens"].as_f64().expect("tokens") > 0.0);
    assert!(std::fs::read_to_string(r.join("energy_windows.csv")).expect("windows").contains(",steady_state,"));
    // What the client asked for: fixed length and vLLM's usage options, on every request.
    let body = server.last_body().expect("a request");
    assert_eq!(
        (body["ignore_eos"].as_bool(), body["min_tokens"].as_u64(), body["max_tokens"].as_u64()),
        (Some(true), Some(8), Some(8))
    );
    assert_eq!(body["stream_options"]["continuous_usage_stats"], true);
    assert_eq!(server.counters().continuous_usage_requests.load(std::sync::atomic::Ordering::Relaxed), 12);
    // One record per request, joinable by request id.
    let recs = lines(&r.join("requests.jsonl"));
    assert_eq!(recs.len(), 12);
    assert!(
        recs.iter().all(|r| r["success"] == true
            && r["output_tokens"] == 8
            && r["itl_ms"].as_array().map(Vec::len) == Some(7))
    );
    // Request ids are UUIDs (servers built on starlette-context refuse others), the same for
    // the same seed and prompt, one per request, and what the server received.
    let ids: Vec<&str> = recs.iter().map(|r| r["request_id"].as_str().expect("id")).collect();
    assert!(
        ids.iter().all(|id| id.len() == 36 && id.split('-').map(str::len).collect::<Vec<_>>() == [8, 4, 4, 4, 12]),
        "{ids:?}"
    );
    assert_eq!(ids.iter().collect::<std::collections::BTreeSet<_>>().len(), 12);
    let seen = server.last_request_id().expect("an id reached the server");
    assert!(ids.contains(&seen.as_str()), "the server saw {seen}, not one of {ids:?}");
    // The summary the leaderboard reads: no GPU in this run, said so, not 0.
    assert_eq!(std::fs::read_to_string(r.join("GPU_ENERGY_WH.txt")).expect("txt"), "n/a\n");
    assert_eq!(read_json(&r.join("run_status.json"))["state"], "complete");
}

#[test]
fn faults_are_counted_by_kind_and_the_run_goes_on() {
    let server = mock(MockConfig::default());
    let cwd = tempfile::tempdir().expect("tmp");
    let mut prompts: Vec<String> = (0..4).map(|i| format!("fine prompt {i}")).collect();
    for d in [
        "status=503",
        "status=400",
        "drop_after=2",
        "truncate_after=3",
        "error_after=1",
        "malformed_after=1",
        "stall_ms=3000",
    ] {
        prompts.push(format!("faulty [mock:{d}]"));
    }
    let data = dataset(cwd.path(), &prompts);
    let data_arg = format!("scenario.dataset_name={data}");
    let run = vllm(
        cwd.path(),
        &server.url(),
        &["backend.model=mock/model", &data_arg, "scenario.num_samples=11", "serving.request_timeout_s=1"],
    );
    // Failures above serving.max_failed_fraction: incomplete (exit 1), everything written.
    run.fails_with(1, &["the run is incomplete"]);
    let r = cwd.path().join("results");
    let report = read_json(&r.join("benchmark_report.json"));
    let additions = read_json(&r.join("energy_star_report.json"));
    let es = &additions["run"];
    let kinds = &es["failures_by_kind"];
    for (kind, n) in [
        ("http-5xx", 1),
        ("http-4xx", 1),
        ("truncated-stream", 2),
        ("stream-error", 1),
        ("malformed-stream", 1),
        ("timeout", 1),
    ] {
        assert_eq!(kinds[kind], n, "{kind} in {kinds}");
    }
    assert_eq!(es["serving"]["completed"], 4);
    assert_eq!(report["summary"]["failed_prompts"], 7);
    assert!(es["incomplete"][0].as_str().expect("reason").contains("7 of 11 requests failed"));
    let recs = lines(&r.join("requests.jsonl"));
    let by_index = |i: usize| recs.iter().find(|r| r["index"] == i).expect("record");
    assert_eq!(by_index(4)["error"]["http_status"], 503);
    assert!(by_index(4)["error"]["message"].as_str().expect("msg").contains("mock status 503"));
    assert_eq!(by_index(6)["error"]["kind"], "truncated-stream");
    // A request that broke off keeps the tokens it got.
    assert_eq!(by_index(7)["output_tokens"], 3);
    let status = read_json(&r.join("run_status.json"));
    assert_eq!(status["complete"], false);
}

#[test]
fn without_usage_tokens_are_counted_by_a_local_tokenizer_or_by_chunks() {
    let server = mock(MockConfig {
        usage: UsageMode::Never,
        models: vec!["energy-star/toy-llama".into(), "other/model".into()],
        ..MockConfig::default()
    });
    for (model, source) in [("energy-star/toy-llama", "tokenizer"), ("other/model", "stream-chunks")] {
        let cwd = tempfile::tempdir().expect("tmp");
        let model_arg = format!("backend.model={model}");
        vllm(cwd.path(), &server.url(), &[&model_arg, "scenario.num_samples=3"]).success();
        let report = read_json(&cwd.path().join("results/benchmark_report.json"));
        assert!(report.get("energy_star").is_none(), "upstream's keys only in the report");
        let additions = read_json(&cwd.path().join("results/energy_star_report.json"));
        assert_eq!(
            additions["run"]["token_count_sources"][source], 3,
            "{model}: {}",
            additions["run"]["token_count_sources"]
        );
        let recs = lines(&cwd.path().join("results/requests.jsonl"));
        assert!(recs.iter().all(|r| r["token_count_source"] == source && r["output_tokens"].as_u64().expect("n") > 0));
    }
}

#[test]
fn an_unreachable_server_or_an_unserved_model_stops_before_metering() {
    let cwd = tempfile::tempdir().expect("tmp");
    // A port nothing listens on.
    let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
    let run = vllm(cwd.path(), &format!("http://{free}/v1"), &["scenario.num_samples=2"]);
    run.fails_with(1, &[&format!("cannot reach the server at http://{free}/v1")]);
    let server = mock(MockConfig { models: vec!["served/one".into(), "served/two".into()], ..MockConfig::default() });
    let run = vllm(cwd.path(), &server.url(), &["backend.model=absent/model", "scenario.num_samples=2"]);
    run.fails_with(1, &["does not serve model \"absent/model\"", "served/one, served/two"]);
    assert_eq!(
        server.counters().requests.load(std::sync::atomic::Ordering::Relaxed),
        0,
        "no completion request was sent"
    );
    let windows = std::fs::read_to_string(cwd.path().join("results/energy_windows.csv")).unwrap_or_default();
    assert!(!windows.contains(",inference,"), "{windows}");
    // Bad load settings are refused by name.
    let run = vllm(cwd.path(), &server.url(), &["backend.model=served/one", "serving.profile=burst"]);
    run.fails_with(1, &["serving.profile = \"burst\" must be sequential, concurrency or rate"]);
    // No model given: the first one the server lists.
    let results = cwd.path().join("auto");
    let dir_arg = format!("hydra.run.dir={}", results.display());
    vllm(cwd.path(), &server.url(), &["backend.model=null", "scenario.num_samples=2", &dir_arg]).success();
    let report = read_json(&results.join("benchmark_report.json"));
    let additions = read_json(&results.join("energy_star_report.json"));
    assert_eq!(report["config"]["model"], "served/one");
    assert!(
        additions["run"]["notes"]
            .as_array()
            .expect("notes")
            .iter()
            .any(|n| n.as_str().is_some_and(|n| n.contains("taken from")))
    );
}

#[test]
fn ctrl_c_stops_sending_and_keeps_a_partial_report() {
    // Slow streams: 20 tokens at 50 ms, one request at a time, 10 prompts.
    let server = mock(MockConfig { itl: Duration::from_millis(50), ..MockConfig::default() });
    let cwd = tempfile::tempdir().expect("tmp");
    let mut c = std::process::Command::new(energy_star_tests::bin());
    c.current_dir(cwd.path())
        .args([
            "--config-name",
            "text_generation_offline",
            "backend.model=mock/model",
            "scenario.num_samples=10",
            "scenario.generate_kwargs.max_new_tokens=20",
            "scenario.generate_kwargs.min_new_tokens=20",
        ])
        .env("BENCHMARK_BACKEND", "vllm")
        .env("VLLM_ENDPOINT", server.url())
        .env("ENERGY_STAR_CACHE_DIR", energy_star_tests::cache_dir())
        .env_remove("RESULTS_DIR")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let child = c.spawn().expect("spawn");
    // Wait until the first request is done (the server has counted two), then interrupt.
    let t0 = std::time::Instant::now();
    while server.counters().requests.load(std::sync::atomic::Ordering::Relaxed) < 2
        && t0.elapsed() < Duration::from_secs(60)
    {
        std::thread::sleep(Duration::from_millis(20));
    }
    let ok = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(ok.success());
    let out = child.wait_with_output().expect("wait");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let r = cwd.path().join("results");
    let report = read_json(&r.join("benchmark_report.json"));
    assert!(report.get("energy_star").is_none(), "upstream's keys only in the report");
    let additions = read_json(&r.join("energy_star_report.json"));
    let es = &additions["run"];
    assert!(es["stopped"].as_str().expect("stopped").contains("interrupted"), "{es}");
    let not_sent = es["not_sent"].as_u64().expect("not_sent");
    assert!((1..=8).contains(&not_sent), "{not_sent}");
    // What was in flight finished and is recorded; nothing sent is missing.
    let recs = lines(&r.join("requests.jsonl"));
    assert_eq!(recs.len() as u64 + not_sent, 10);
    assert!(recs.iter().all(|r| r["success"] == true), "in-flight requests finished within the drain time");
    assert_eq!(read_json(&r.join("run_status.json"))["complete"], false);
    assert!(r.join("GPU_ENERGY_SUMMARY.json").exists());
}

/// `scenario.reasoning` goes to the chat API with what vLLM accepts: `reasoning_effort` at the
/// top (gpt-oss) and `chat_template_kwargs` (`enable_thinking` and the other reasoning params).
/// The mock types them as vLLM's request model does, so a wrong value is a 400 there.
#[test]
fn reasoning_settings_reach_the_server_as_vllm_takes_them() {
    let server = mock(MockConfig::default());
    let cwd = tempfile::tempdir().expect("tmp");
    let on = [
        "backend.model=mock/model",
        "scenario.num_samples=2",
        "++scenario.reasoning=True",
        "++scenario.reasoning_params.reasoning_effort=high",
        "++scenario.reasoning_params.use_prompt_based_reasoning=true",
    ];
    vllm(cwd.path(), &server.url(), &on).success();
    let body = server.last_body().expect("a request");
    assert!(body.get("messages").is_some(), "reasoning uses the chat API: {body}");
    assert_eq!(body["reasoning_effort"], "high", "{body}");
    assert_eq!(
        body["chat_template_kwargs"],
        serde_json::json!({"enable_thinking": true, "use_prompt_based_reasoning": true})
    );
    let report = read_json(&cwd.path().join("results/benchmark_report.json"));
    assert!(report.get("energy_star").is_none(), "upstream's keys only in the report");
    let additions = read_json(&cwd.path().join("results/energy_star_report.json"));
    assert_eq!(additions["run"]["request_extra_fields"]["reasoning_effort"], "high");
    // Reasoning off on the chat API asks templates not to think; on completions nothing is added.
    vllm(
        cwd.path(),
        &server.url(),
        &["backend.model=mock/model", "scenario.num_samples=2", "serving.api=chat", "++scenario.reasoning=False"],
    )
    .success();
    let body = server.last_body().expect("a request");
    assert_eq!(body["chat_template_kwargs"], serde_json::json!({"enable_thinking": false}));
    assert!(body.get("reasoning_effort").is_none());
    vllm(
        cwd.path(),
        &server.url(),
        &["backend.model=mock/model", "scenario.num_samples=2", "++scenario.reasoning=False"],
    )
    .success();
    let body = server.last_body().expect("a request");
    assert!(body.get("prompt").is_some() && body.get("chat_template_kwargs").is_none(), "{body}");
    // A value the server refuses: every request fails with its error body quoted.
    let run = vllm(
        cwd.path(),
        &server.url(),
        &[
            "backend.model=mock/model",
            "scenario.num_samples=2",
            "++scenario.reasoning=True",
            "++scenario.reasoning_params.reasoning_effort=extreme",
        ],
    );
    assert_eq!(run.code(), Some(1), "{}", run.stderr());
    let recs = lines(&cwd.path().join("results/requests.jsonl"));
    let msg = recs[0]["error"]["message"].as_str().expect("message");
    assert!(msg.contains("HTTP 400") && msg.contains("reasoning_effort must be low, medium or high"), "{msg}");
}

/// A client machine benchmarking a remote server (or one with no NVML) meters no GPU: the run
/// ends as a run without a GPU does, exit 0, `n/a`, and the reason, with the serving metrics.
#[test]
fn a_server_whose_gpus_are_not_metered_here_is_not_a_failure() {
    let server = mock(MockConfig::default());
    let cwd = tempfile::tempdir().expect("tmp");
    let run = energy_star(
        cwd.path(),
        &[
            "--config-name",
            "text_generation",
            "backend.model=mock/model",
            "scenario.dataset_name=energy-star/prompts",
            "scenario.num_samples=3",
        ],
        &[("BENCHMARK_BACKEND", "vllm"), ("VLLM_ENDPOINT", &server.url())],
    )
    .success();
    assert!(run.stdout().contains("no GPU energy: no GPU of this machine could be metered"), "{}", run.stdout());
    let r = cwd.path().join("results");
    assert_eq!(std::fs::read_to_string(r.join("GPU_ENERGY_WH.txt")).expect("txt"), "n/a\n");
    let summary = read_json(&r.join("GPU_ENERGY_SUMMARY.json"));
    assert!(summary["gpu_absent_reason"].as_str().expect("why").contains("not on this machine"), "{summary}");
    let report = read_json(&r.join("benchmark_report.json"));
    assert!(report.get("energy_star").is_none(), "upstream's keys only in the report");
    let additions = read_json(&r.join("energy_star_report.json"));
    assert_eq!(additions["run"]["serving"]["completed"], 3);
    assert!(read_json(&r.join("run_record.json"))["facts"]["gpus"]["none"].is_string());
}
