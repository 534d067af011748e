//! `energy-star run`: select the backend plugin (`BENCHMARK_BACKEND`), check the settings it
//! requires, compose the config, run it, write the report and the run status, and summarize.
//!
//! Nothing measured is lost: the run status is written before the backend starts and again at
//! the end, files the backend wrote stay when it fails, and the report is written atomically.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use thiserror::Error;

use std::process::ExitCode;

use energy_star_config::{self as config, Config, ConfigError, ConfigSource};
use energy_star_meter::{self as meter, MAX_IDLE_S, Meter, MeterOptions, Sampler, SharedMeter};
use energy_star_plugin_host::{HostServices, Plugin, PluginError, PluginKind, PluginRuntime, PluginSet};
use energy_star_results::{self as results, ResultsError, write_atomic};

use crate::cli::{PluginOptions, RunArgs};
use crate::summarize::{self as summary, SummaryError};

/// `energy-star run`.
pub fn command(opts: &PluginOptions, args: RunArgs) -> anyhow::Result<ExitCode> {
    let (rt, set) = crate::plugins::load(opts)?;
    // First Ctrl-C: the backend stops at its next host call and the run is written as
    // incomplete; a second one quits at once.
    let presses = std::sync::atomic::AtomicU32::new(0);
    let _ = ctrlc::set_handler(move || {
        if presses.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
            eprintln!("\nenergy-star: stopping at the backend's next host call; Ctrl-C again to quit now");
            energy_star_plugin_host::interrupt();
        } else {
            std::process::exit(130);
        }
    });
    let plan = RunPlan {
        config_dir: args.config_dir,
        config_name: args.config_name,
        overrides: args.overrides,
        results_dir: args.results_dir,
        results_dir_env: crate::env_path("RESULTS_DIR"),
        backend: std::env::var("BENCHMARK_BACKEND").ok(),
    };
    let done = run(&rt, &set, &plan, |k| std::env::var(k).ok())?;
    out!("{}", summary::banner(&done.summary))?;
    outln!("results: {}", done.results_dir.display())?;
    if !done.complete {
        eprintln!("warning: the run is incomplete; see {}", done.results_dir.join("run_status.json").display());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// The backend used when `BENCHMARK_BACKEND` is unset or empty.
pub const DEFAULT_BACKEND: &str = "optimum";

#[derive(Debug, Error)]
pub enum RunError {
    /// The wording matches AI Energy Score's entrypoint, which scripts look for.
    #[error("Unknown BENCHMARK_BACKEND={name}\nValid options: {valid}")]
    UnknownBackend { name: String, valid: String },
    #[error("BENCHMARK_BACKEND={name} names a backend whose plugin file is broken: {files}")]
    BrokenBackend { name: String, files: String },
    #[error("{message}")]
    MissingSetting { message: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Results(#[from] ResultsError),
    #[error("backend run stopped: {source}\nthe run is marked {state} in {status}; files written before that are kept")]
    Backend { source: Box<PluginError>, status: PathBuf, state: &'static str },
    #[error("{0}")]
    Metering(String),
    #[error("the report was written to {report} but could not be summarized: {source}")]
    Summary { report: PathBuf, source: Box<SummaryError> },
}

/// Picks the backend plugin by name (`BENCHMARK_BACKEND`, default `optimum`).
pub fn select_backend<'a>(plugins: &'a PluginSet, requested: Option<&str>) -> Result<&'a Plugin, RunError> {
    let name = requested.map(str::trim).filter(|s| !s.is_empty()).unwrap_or(DEFAULT_BACKEND);
    let broken: Vec<String> = plugins.broken_candidates(PluginKind::Backend, name).map(|b| b.describe()).collect();
    if !broken.is_empty() && plugins.find(PluginKind::Backend, name).is_none() {
        return Err(RunError::BrokenBackend { name: name.to_string(), files: broken.join("; ") });
    }
    plugins.find(PluginKind::Backend, name).ok_or_else(|| RunError::UnknownBackend {
        name: name.to_string(),
        valid: plugins.of_kind(PluginKind::Backend).map(|p| p.meta.name.clone()).collect::<Vec<_>>().join(", "),
    })
}

/// Reads every setting the backend requires; the first missing one is an error in the
/// backend's own words.
pub fn required_settings(
    plugin: &Plugin,
    env: impl Fn(&str) -> Option<String>,
) -> Result<Vec<(String, String)>, RunError> {
    plugin
        .meta
        .required_settings
        .iter()
        .map(|s| match env(&s.name).filter(|v| !v.trim().is_empty()) {
            Some(v) => Ok((s.name.clone(), v)),
            None => Err(RunError::MissingSetting {
                message: if s.missing_message.trim().is_empty() {
                    format!("{} environment variable must be set for the {} backend", s.name, plugin.meta.name)
                } else {
                    s.missing_message.clone()
                },
            }),
        })
        .collect()
}

/// Everything `run` needs, resolved from the command line and environment.
pub struct RunPlan {
    pub config_dir: Option<PathBuf>,
    pub config_name: String,
    pub overrides: Vec<String>,
    /// `--results-dir`, if given.
    pub results_dir: Option<PathBuf>,
    /// `RESULTS_DIR`, if set.
    pub results_dir_env: Option<PathBuf>,
    pub backend: Option<String>,
}

/// Where results go: `--results-dir`, else an explicit `hydra.run.dir=` override (the original
/// entrypoint appends `hydra.run.dir=/results`), else `RESULTS_DIR`, else `./results`.
pub fn results_dir(plan: &RunPlan) -> PathBuf {
    if let Some(d) = &plan.results_dir {
        return d.clone();
    }
    let from_override = plan.overrides.iter().rev().find_map(|o| {
        let o = o.trim_start_matches('+');
        o.strip_prefix("hydra.run.dir=").map(|v| PathBuf::from(v.trim_matches(['\'', '"'])))
    });
    from_override.or_else(|| plan.results_dir_env.clone()).unwrap_or_else(|| PathBuf::from("results"))
}

fn now_s() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn write_status(dir: &Path, status: &serde_json::Value) -> Result<PathBuf, ResultsError> {
    let path = dir.join("run_status.json");
    let mut text = serde_json::to_string_pretty(status).unwrap_or_default();
    text.push('\n');
    write_atomic(&path, text.as_bytes())?;
    Ok(path)
}

/// The file with every window's figures, the devices and the sampler's cost.
pub const ENERGY_RECORD: &str = "energy_meter.json";

/// Meter settings from the config: GPUs from `backend.device`/`backend.device_ids` through
/// `CUDA_VISIBLE_DEVICES`, and `metering.*`.
pub fn meter_options(cfg: &Config, env: &impl Fn(&str) -> Option<String>) -> Result<MeterOptions, RunError> {
    use serde_json::Value;
    let mut o = MeterOptions::default();
    let num = |k: &str| -> Result<Option<f64>, RunError> {
        match cfg.get(k) {
            None | Some(Value::Null) => Ok(None),
            Some(Value::Number(n)) => n
                .as_f64()
                .filter(|v| v.is_finite() && *v >= 0.0)
                .map(Some)
                .ok_or_else(|| RunError::Metering(format!("{k} = {n} must be a non-negative number"))),
            Some(v) => Err(RunError::Metering(format!("{k} = {v} must be a number"))),
        }
    };
    if let Some(ms) = num("metering.interval_ms")? {
        if !(1.0..=60_000.0).contains(&ms) {
            return Err(RunError::Metering(format!("metering.interval_ms = {ms} must be between 1 and 60000")));
        }
        o.interval = std::time::Duration::from_secs_f64(ms / 1000.0);
    }
    if let Some(w) = num("metering.cpu_tdp_w")? {
        o.estimates.cpu_tdp_w = w;
    }
    if let Some(w) = num("metering.ram_watts_per_dimm")? {
        o.estimates.watts_per_dimm = w;
    }
    o.estimates.ram_power_w = num("metering.ram_power_w")?;
    if cfg.get("metering.rapl") == Some(&Value::Bool(false)) {
        o.rapl_root = None;
    }
    let device = cfg.get("backend.device").and_then(Value::as_str).unwrap_or("cuda");
    if device.starts_with("cuda") {
        let ids = parse_device_ids(cfg.get("backend.device_ids")).map_err(RunError::Metering)?;
        let visible = env("CUDA_VISIBLE_DEVICES");
        let indices = meter::nvml_indices(&ids, visible.as_deref(), meter::gpu::NvmlGpus::index_of_uuid)
            .map_err(RunError::Metering)?;
        o.gpu_indices = Some(indices);
    } else {
        o.gpu_indices = Some(Vec::new());
    }
    Ok(o)
}

/// Parses `backend.device_ids` as configs write it: `0`, `"0, 1, 2"`, `[0, 1]`, or null.
pub fn parse_device_ids(value: Option<&serde_json::Value>) -> Result<Vec<u32>, String> {
    use serde_json::Value;
    let bad = |v: &Value| format!("backend.device_ids = {v}: expected a GPU index, a comma-separated list or a list");
    match value {
        None | Some(Value::Null) => Ok(vec![0]),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|i| u32::try_from(i).ok())
            .map(|i| vec![i])
            .ok_or_else(|| bad(&Value::Number(n.clone()))),
        Some(v @ Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<u32>().map_err(|_| bad(v)))
            .collect(),
        Some(v @ Value::Array(items)) => {
            items.iter().map(|i| i.as_u64().and_then(|i| u32::try_from(i).ok()).ok_or_else(|| bad(v))).collect()
        }
        Some(v) => Err(bad(v)),
    }
}

/// Opens the meter; a CPU-only run meters no GPU and says so.
fn open_meter(options: MeterOptions) -> SharedMeter {
    let m = if options.gpu_indices.as_ref().is_some_and(Vec::is_empty) {
        let clock = meter::sampler::monotonic_clock();
        Meter::with_sources(options, Err("backend.device is not cuda: no GPU is metered".into()), clock)
    } else {
        Meter::open(options)
    };
    std::sync::Arc::new(std::sync::Mutex::new(m))
}

/// Measures the idle baseline: a window over `seconds` (bounded by [`MAX_IDLE_S`]) with
/// nothing running.
fn measure_idle(shared: &SharedMeter, seconds: f64) -> Result<(), RunError> {
    let lock_err = || RunError::Metering("the meter's lock is poisoned".into());
    eprintln!("energy-star: measuring idle power for {seconds} s");
    let id =
        shared.lock().map_err(|_| lock_err())?.begin_window("idle").map_err(|e| RunError::Metering(e.to_string()))?;
    std::thread::sleep(std::time::Duration::from_secs_f64(seconds.clamp(0.0, MAX_IDLE_S)));
    let mut m = shared.lock().map_err(|_| lock_err())?;
    let r = m.end_window(id).map_err(|e| RunError::Metering(e.to_string()))?;
    m.set_idle_baseline(&r);
    Ok(())
}

/// Writes the timeline, the window boundaries and `energy_meter.json`.
pub fn write_meter_record(shared: &SharedMeter, windows: &[meter::WindowReading], dir: &Path) -> Result<(), RunError> {
    let m = shared.lock().map_err(|_| RunError::Metering("the meter's lock is poisoned".into()))?;
    meter::timeline::write(&m, dir)?;
    let hours = m.sampler_wall_s / 3600.0;
    let record = json!({
        "devices": m.devices().iter().map(|d| json!({"device": d.label(), "name": d.name, "source": d.source.as_str(), "measured": d.source.is_measurement()})).collect::<Vec<_>>(),
        "notices": m.notices(),
        "sampler": {
            "interval_ms": m.interval().as_secs_f64() * 1000.0,
            "cpu_s": m.sampler_cpu_s,
            "wall_s": m.sampler_wall_s,
            "cpu_s_per_hour": if hours > 0.0 { Some(m.sampler_cpu_s / hours) } else { None },
            "busy_s": m.sampler_busy_s,
            "busy_s_per_hour": if hours > 0.0 { Some(m.sampler_busy_s / hours) } else { None },
        },
        "idle_baseline": m.idle_baseline().map(|b| json!({"duration_s": b.duration.as_secs_f64(), "power_w": b.power_w})),
        "windows": windows.iter().map(meter::WindowReading::record).collect::<Vec<_>>(),
        "open_windows": m.open_windows().iter().map(|(_, n)| n.clone()).collect::<Vec<_>>(),
    });
    let mut text = serde_json::to_string_pretty(&record).unwrap_or_default();
    text.push('\n');
    write_atomic(&dir.join(ENERGY_RECORD), text.as_bytes())?;
    Ok(())
}

/// What a finished run produced.
pub struct RunReport {
    pub results_dir: PathBuf,
    pub complete: bool,
    pub summary: summary::Summarized,
}

/// Runs the plan: backend chosen and settings checked before anything is written.
pub fn run(
    rt: &PluginRuntime,
    plugins: &PluginSet,
    plan: &RunPlan,
    env: impl Fn(&str) -> Option<String>,
) -> Result<RunReport, RunError> {
    let backend = select_backend(plugins, plan.backend.as_deref())?;
    let settings = required_settings(backend, &env)?;
    let source = ConfigSource::new(plan.config_dir.clone())?;
    let cfg = config::compose(&source, &plan.config_name, &plan.overrides)?;
    // Everything that can be refused is checked before anything is written.
    let options = meter_options(&cfg, &env)?;
    let idle_s = cfg.get("metering.idle_seconds").and_then(serde_json::Value::as_f64).unwrap_or(0.0);
    if !(0.0..=MAX_IDLE_S).contains(&idle_s) {
        return Err(RunError::Metering(format!("metering.idle_seconds = {idle_s} must be between 0 and {MAX_IDLE_S}")));
    }
    let dir = results_dir(plan);
    results::ensure_dir(&dir)?;
    // Compiled plugins are loaded from the cache as machine code; a backend writes into the
    // results folder, so the two must never overlap.
    if let (Some(cache), Ok(results)) = (rt.cache_dir(), dir.canonicalize())
        && let Ok(cache) = cache.canonicalize()
        && (results.starts_with(&cache) || cache.starts_with(&results))
    {
        return Err(RunError::Metering(format!(
            "the results folder {} overlaps the plugin compile cache {}; choose another --results-dir or ENERGY_STAR_CACHE_DIR",
            results.display(),
            cache.display()
        )));
    }
    let set_aside = results::set_aside_earlier_run(&dir)?;
    if let Some(to) = &set_aside.moved_to {
        eprintln!("energy-star: the earlier run in {} was moved to {}", dir.display(), to.display());
    }
    if !set_aside.left_in_place.is_empty() {
        eprintln!(
            "energy-star: warning: {} holds files that no run wrote ({}); they are left in place",
            dir.display(),
            set_aside.left_in_place.join(", ")
        );
    }
    write_atomic(&dir.join("effective_config.yaml"), cfg.to_yaml().as_bytes())?;
    let started = now_s();
    let mut status = json!({
        "complete": false,
        "state": "running",
        "backend": backend.meta.label(),
        "config_name": cfg.name,
        "config_source": cfg.source,
        "started_unix_s": started,
        "earlier_run_moved_to": set_aside.moved_to.as_ref().and_then(|p| p.strip_prefix(&dir).ok()).map(|p| p.display().to_string()),
    });
    write_status(&dir, &status)?;

    let shared = open_meter(options);
    if let Ok(m) = shared.lock() {
        for n in m.notices() {
            eprintln!("energy-star: {n}");
        }
    }
    let sampler = Sampler::start(shared.clone());
    let idle = if idle_s > 0.0 { measure_idle(&shared, idle_s) } else { Ok(()) };

    let outcome = match idle {
        Ok(()) => {
            let mut services = HostServices::new(&backend.meta.name, dir.clone());
            services.meter = Some(shared.clone());
            services.allowed = Some(allowed_names(&cfg));
            // A remote engine may reach only an endpoint the user set (VLLM_ENDPOINT and the
            // like): the values of the backend's required settings.
            services.endpoints = settings.iter().map(|(_, v)| v.clone()).collect();
            let config_json = serde_json::to_string(&cfg.tree).unwrap_or_default();
            backend.run_backend(rt, services, &config_json, settings)
        }
        Err(e) => energy_star_plugin_host::BackendOutcome {
            result: Err(PluginError::Guest { plugin: "host".into(), message: e.to_string() }),
            incomplete: Vec::new(),
            written: Vec::new(),
            windows: Vec::new(),
        },
    };
    sampler.stop();
    // From here on nothing returns early: the meter's record, the report and the status are
    // each written whatever happened to the others, and failures are recorded in the status.
    let mut problems: Vec<String> = Vec::new();
    if let Err(e) = write_meter_record(&shared, &outcome.windows, &dir) {
        problems.push(format!("energy record: {e}"));
    }
    status["finished_unix_s"] = json!(now_s());
    status["energy_files"] = json!([meter::timeline::TIMELINE_CSV, meter::timeline::WINDOWS_CSV, ENERGY_RECORD]);
    status["files_written_by_backend"] = json!(outcome.written);
    status["incomplete_reasons"] = json!(outcome.incomplete);
    let interrupted = energy_star_plugin_host::interrupted();
    let output = match outcome.result {
        Ok(o) => o,
        Err(source) => {
            // Stopped by Ctrl-C: incomplete, not failed; the backend's error says where it was.
            status["state"] = json!(if interrupted { "incomplete" } else { "failed" });
            if interrupted {
                status["incomplete_reasons"] = json!(["interrupted by the user (Ctrl-C)"]);
            }
            status["error"] = json!(source.to_string());
            status["problems"] = json!(problems);
            let status = write_status(&dir, &status)?;
            return Err(RunError::Backend {
                source: Box::new(source),
                status,
                state: if interrupted { "incomplete" } else { "failed" },
            });
        }
    };
    let report_path = dir.join("benchmark_report.json");
    let report_written = write_atomic(&report_path, output.report_json.as_bytes());
    if let Err(e) = &report_written {
        problems.push(format!("report: {e}"));
    }
    let complete = output.complete && outcome.incomplete.is_empty() && problems.is_empty();
    status["complete"] = json!(complete);
    status["state"] = json!(if complete { "complete" } else { "incomplete" });
    status["problems"] = json!(problems);
    write_status(&dir, &status)?;
    report_written?;
    let summary = summary::summarize(rt, plugins, &dir)
        .map_err(|source| RunError::Summary { report: report_path, source: Box::new(source) })?;
    Ok(RunReport { results_dir: dir, complete, summary })
}

/// The model, processor and dataset the config names: the only ones a backend may open.
fn allowed_names(cfg: &Config) -> Vec<String> {
    ["backend.model", "backend.processor", "scenario.dataset_name"]
        .iter()
        .filter_map(|k| cfg.get(k).and_then(serde_json::Value::as_str).map(str::to_string))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn device_ids_parse_as_configs_write_them() {
        assert_eq!(parse_device_ids(None), Ok(vec![0]));
        assert_eq!(parse_device_ids(Some(&json!(3))), Ok(vec![3]));
        assert_eq!(parse_device_ids(Some(&json!("0, 1, 2, 3"))), Ok(vec![0, 1, 2, 3]));
        assert_eq!(parse_device_ids(Some(&json!([1, 2]))), Ok(vec![1, 2]));
        assert!(parse_device_ids(Some(&json!("0, x"))).is_err());
        assert!(parse_device_ids(Some(&json!(-1))).is_err());
    }
}
