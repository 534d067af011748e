use std::path::Path;
use std::time::Duration;

use energy_star_plugin_host::{Origin, PluginError, PluginRuntime, RuntimeOptions, SandboxLimits, load_plugin};
use energy_star_tests::{energy_star, folder_with, guests};

fn hostile_report(dir: &Path, mode: &str) {
    std::fs::write(dir.join("benchmark_report.json"), format!("{{\"hostile\": \"{mode}\"}}")).expect("write");
}

fn run_hostile(mode: &str, extra: &[&str]) -> energy_star_tests::Run {
    let plugins = folder_with(&[(&guests().hostile_summarizer, "hostile.wasm")]);
    let results = tempfile::tempdir().expect("tmp");
    hostile_report(results.path(), mode);
    let mut args = vec!["--plugin-dir", plugins.path().to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    args.extend_from_slice(&["summarize", results.path().to_str().expect("utf-8")]);
    energy_star(results.path(), &args, &[])
}

#[test]
fn a_panicking_plugin_is_named_with_its_message() {
    run_hostile("trap", &[])
        .fails_with(1, &["plugin summarizer hostile 6.6.6", "trapped in summarize", "summarize was asked to panic"]);
    run_hostile("trap-in-detect", &[]).fails_with(1, &["trapped in detect", "detect was asked to panic"]);
}

#[test]
fn an_endless_loop_is_stopped_at_the_time_limit() {
    run_hostile("spin", &["--plugin-time-limit-s", "0.5"])
        .fails_with(1, &["hostile", "computed for more than 0.5 s", "--plugin-time-limit-s"]);
}

#[test]
fn a_plugin_cannot_escape_the_time_limit_by_sleeping() {
    let started = std::time::Instant::now();
    run_hostile("sleep", &["--plugin-time-limit-s", "1"])
        .fails_with(1, &["hostile", "may not sleep or wait on timers"]);
    assert!(started.elapsed() < std::time::Duration::from_secs(30), "the sleep was not refused");
}

#[test]
fn memory_beyond_the_limit_traps_and_says_so() {
    run_hostile("hog", &["--plugin-memory-mib", "64"])
        .fails_with(1, &["hostile", "exceeded its memory limit of 64 MiB", "--plugin-memory-mib"]);
}

#[test]
fn malformed_results_are_refused() {
    run_hostile("nan", &[]).fails_with(1, &["returned malformed data from summarize", "not a finite number"]);
    run_hostile("lie", &[])
        .fails_with(1, &["returned malformed data from summarize", "not the sum of its counted phases"]);
    run_hostile("bad-confidence", &[]).fails_with(1, &["returned malformed data from detect", "outside 0..=1"]);
}

#[test]
fn a_plugin_reaches_no_files_environment_or_network() {
    // The guest reports what it could reach as its error message.
    let run = run_hostile("probe", &[]).fails_with(1, &["probe fs:denied", "env:0", "net:denied"]);
    assert!(!run.stderr().contains("fs:open") && !run.stderr().contains("net:open"));
}

/// One host process survives every failure, and the plugin works again afterwards: a trapped
/// instance is dropped and the next call gets a fresh one.
#[test]
fn the_host_stays_up_and_never_reuses_a_trapped_instance() {
    let rt = PluginRuntime::new(RuntimeOptions {
        limits: SandboxLimits { memory_bytes: 64 << 20, time_limit: Duration::from_millis(300) },
        cache_dir: None,
    })
    .expect("runtime");
    let bytes = std::fs::read(&guests().hostile_summarizer).expect("read guest");
    let plugin = load_plugin(&rt, &bytes, Origin::File("hostile.wasm".into())).expect("load");
    for (mode, check) in [
        ("trap", (|e: &PluginError| matches!(e, PluginError::Trap { .. })) as fn(&PluginError) -> bool),
        ("spin", |e| matches!(e, PluginError::TimeLimit { .. })),
        ("hog", |e| matches!(e, PluginError::OutOfMemory { .. })),
        ("nan", |e| matches!(e, PluginError::Malformed { .. })),
    ] {
        let err = plugin.summarize(&rt, &format!("{{\"hostile\": \"{mode}\"}}")).expect_err(mode);
        assert!(check(&err), "{mode}: unexpected error {err}");
        let ok = plugin.summarize(&rt, "{\"hostile\": \"ok\"}").unwrap_or_else(|e| panic!("after {mode}: {e}"));
        assert_eq!(ok.total_wh, Some(1.5));
    }
}
