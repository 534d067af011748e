//! Plugin-host costs, printed as a Markdown table for docs/benchmarks.md:
//! cold start of a plugin with and without the compile cache, one host-to-guest call, one
//! guest-to-host call, and a whole `energy-star summarize` run.
//!
//! Run: `cargo bench -p energy-star-tests --bench plugin_host`

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use energy_star_meter::{Meter, MeterOptions};
use energy_star_plugin_host::{
    HostServices, Origin, PluginKind, PluginRuntime, PluginSet, RunRequest, RuntimeOptions, load_plugin,
};
use energy_star_tests::{bin, fixtures, folder_with, guests};

fn stats(mut xs: Vec<Duration>) -> (Duration, Duration, Duration) {
    xs.sort();
    let median = xs[xs.len() / 2];
    (xs[0], median, xs[xs.len() - 1])
}

fn fmt(d: Duration) -> String {
    let ns = d.as_nanos() as f64;
    if ns >= 1e6 {
        format!("{:.2} ms", ns / 1e6)
    } else if ns >= 1e3 {
        format!("{:.2} µs", ns / 1e3)
    } else {
        format!("{ns:.0} ns")
    }
}

fn row(what: &str, n: usize, xs: Vec<Duration>) {
    let (min, med, max) = stats(xs);
    println!("| {what} | {n} | {} | {} | {} |", fmt(min), fmt(med), fmt(max));
}

fn main() {
    let optimum = std::fs::read(
        std::env::current_exe()
            .expect("exe")
            .parent()
            .and_then(Path::parent)
            .and_then(Path::parent)
            .expect("target")
            .join("plugins/wasm32-wasip2/plugin/energy_star_summarizer_optimum.wasm"),
    )
    .expect("the built-in optimum summarizer (built by host/build.rs)");
    let report = std::fs::read_to_string(fixtures().join("samples/optimum/benchlab-llama3_8B-benchmark_report.json"))
        .expect("sample");
    println!("| what | runs | min | median | max |\n|---|---|---|---|---|");

    // Cold start: a fresh engine each time, then compile (or load from cache) + link + info().
    let n = 10;
    let mut no_cache = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let rt = PluginRuntime::new(RuntimeOptions { cache_dir: None, ..Default::default() }).expect("rt");
        load_plugin(&rt, &optimum, Origin::File("optimum.wasm".into())).expect("load");
        no_cache.push(t.elapsed());
    }
    row("cold start of one plugin, no compile cache (engine + compile + link + info)", n, no_cache);
    let cache = tempfile::tempdir().expect("tmp");
    {
        let rt =
            PluginRuntime::new(RuntimeOptions { cache_dir: Some(cache.path().to_path_buf()), ..Default::default() })
                .expect("rt");
        load_plugin(&rt, &optimum, Origin::File("optimum.wasm".into())).expect("fill cache");
    }
    let mut cached = Vec::new();
    for _ in 0..n {
        let t = Instant::now();
        let rt =
            PluginRuntime::new(RuntimeOptions { cache_dir: Some(cache.path().to_path_buf()), ..Default::default() })
                .expect("rt");
        load_plugin(&rt, &optimum, Origin::File("optimum.wasm".into())).expect("load");
        cached.push(t.elapsed());
    }
    row("cold start of one plugin, compile cache warm", n, cached);

    // Host-to-guest: detect() on a 2 KiB report; each call gets a fresh instance (by design).
    let rt = PluginRuntime::new(RuntimeOptions { cache_dir: Some(cache.path().to_path_buf()), ..Default::default() })
        .expect("rt");
    let plugin = load_plugin(&rt, &optimum, Origin::File("optimum.wasm".into())).expect("load");
    let calls = 2000;
    let mut xs = Vec::new();
    for _ in 0..calls {
        let t = Instant::now();
        std::hint::black_box(plugin.detect(&rt, &report).expect("detect"));
        xs.push(t.elapsed());
    }
    row("host-to-guest call: detect(report) incl. fresh instance", calls, xs);
    let mut xs = Vec::new();
    for _ in 0..200 {
        let t = Instant::now();
        std::hint::black_box(plugin.summarize(&rt, &report).expect("summarize"));
        xs.push(t.elapsed());
    }
    row("host-to-guest call: summarize(report) incl. fresh instance and checks", 200, xs);

    // Guest-to-host: the echo test backend calls clock.now-ns N times in a loop.
    let echo = std::fs::read(&guests().echo_backend).expect("echo guest");
    let backend = load_plugin(&rt, &echo, Origin::File("echo.wasm".into())).expect("load echo");
    assert_eq!(backend.meta.kind, PluginKind::Backend);
    let results = tempfile::tempdir().expect("tmp");
    let per_call: Vec<Duration> = (0..5)
        .map(|_| {
            let n_calls = 1_000_000u64;
            let report = format!("{{\"bench_host_calls\": {n_calls}}}");
            let settings = vec![("ECHO_REPORT".to_string(), report)];
            let plan = backend.prepare(&rt, "{}", &settings).expect("plan");
            let request = RunRequest { config_json: "{}".into(), settings, plan };
            // A backend's run always has a meter (the echo backend opens a window).
            let mut services = HostServices::new("echo", results.path().to_path_buf());
            services.meter = Some(Arc::new(Mutex::new(Meter::open(MeterOptions::default()))));
            let out = backend.run_backend(&rt, services, &request);
            out.result.expect("echo run");
            let notes: serde_json::Value =
                serde_json::from_str(&std::fs::read_to_string(results.path().join("echo/notes.json")).expect("notes"))
                    .expect("json");
            Duration::from_nanos(notes["bench_host_calls_ns"].as_u64().expect("ns") / n_calls)
        })
        .collect();
    row("guest-to-host call: clock.now-ns (mean of 1e6 per run)", 5, per_call);

    // A whole `energy-star summarize` process (release binary), warm cache and without it.
    let dir = folder_with(&[(
        &fixtures().join("samples/optimum/benchlab-llama3_8B-benchmark_report.json"),
        "benchmark_report.json",
    )]);
    for (label, extra) in [
        ("whole `energy-star summarize` run, compile cache warm", vec![]),
        ("whole `energy-star summarize` run, --no-compile-cache", vec!["--no-compile-cache"]),
    ] {
        let mut xs = Vec::new();
        for _ in 0..10 {
            let mut cmd = std::process::Command::new(bin());
            cmd.args(&extra)
                .args(["summarize", "."])
                .current_dir(dir.path())
                .env("ENERGY_STAR_CACHE_DIR", cache.path());
            let t = Instant::now();
            let out = cmd.output().expect("run");
            xs.push(t.elapsed());
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        }
        row(label, 10, xs);
    }
    let _ = PluginSet::discover;
}
