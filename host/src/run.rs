//! `energy-star run`: the run's life cycle.
//!
//! 1. Select the backend (`BENCHMARK_BACKEND`), read the settings it requires, compose the
//!    config.
//! 2. `prepare`: the backend checks the config and declares the run plan (models, datasets,
//!    endpoints, GPUs, report format). The host checks the plan: the files exist, endpoints
//!    are settings the user gave, a summarizer reads the format, the results folder is usable.
//!    A refusal here touches nothing.
//! 3. Set the earlier run aside, write the config and the status, open the meter on the
//!    plan's GPUs, run the backend with a grant of exactly what the plan named.
//! 4. Whatever happened: close the windows the backend left open, write the energy record,
//!    the run record (plan and facts, typed), the report, the status; summarize.
//!
//! Nothing measured is lost: the status is written before the backend starts and at the end,
//! files the backend wrote stay when it fails, and every file is written atomically.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{SystemTime, UNIX_EPOCH};

use energy_star_config::{self as config, Config, ConfigError, ConfigSource};
use energy_star_meter::{self as meter, MAX_IDLE_S, Meter, MeterOptions, Sampler, SharedMeter};
use energy_star_plugin_host::{
    BackendOutcome, Grant, HostServices, Plugin, PluginError, PluginKind, PluginRuntime, PluginSet, PrepareError,
    RunRequest,
};
use energy_star_results::records::{
    self, ENERGY_RECORD, EnergyRecord, GpuUse, IdleRecord, RUN_RECORD, RUN_STATUS, RunPlan, RunRecord, RunState,
    RunStatus, SamplerRecord, SourceRecord,
};
use energy_star_results::{self as results, ResultsError, write_atomic};
use thiserror::Error;

use crate::cli::{PluginOptions, RunArgs};
use crate::summarize::{self as summary, SummaryError};

/// The backend used when `BENCHMARK_BACKEND` is unset or empty.
pub const DEFAULT_BACKEND: &str = "optimum";

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
    let plan = RunArgsResolved {
        config_dir: args.config_dir,
        config_name: args.config_name,
        overrides: args.overrides,
        results_dir: args.results_dir,
        results_dir_env: crate::env_path("RESULTS_DIR"),
        backend: std::env::var("BENCHMARK_BACKEND").ok(),
    };
    let done = run(&rt, &set, &plan, |k| std::env::var(k).ok())?;
    if let Some(s) = &done.summary {
        out!("{}", summary::banner(s))?;
    }
    outln!("results: {}", done.results_dir.display())?;
    if !done.complete {
        eprintln!("warning: the run is incomplete; see {}", done.results_dir.join(RUN_STATUS).display());
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

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
    #[error("the {backend} backend refused the config: {source}")]
    Refused { backend: String, source: Box<PrepareError> },
    #[error("the run plan of the {backend} backend cannot run here: {why}")]
    Plan { backend: String, why: String },
    #[error("before the run: {0}")]
    Fetch(energy_star_hub::HubError),
    #[error("results folder {path}: {why}")]
    ResultsFolder { path: PathBuf, why: String },
    #[error(transparent)]
    Results(#[from] ResultsError),
    #[error("backend run stopped: {source}\nthe run is marked {state} in {status}; files written before that are kept")]
    Backend { source: Box<PluginError>, status: PathBuf, state: &'static str },
    #[error("{0}")]
    Metering(String),
    #[error("carbon settings: {0}")]
    Carbon(#[from] energy_star_carbon::CarbonError),
    #[error("the report was written to {report} but could not be summarized: {source}")]
    Summary { report: PathBuf, source: Box<SummaryError> },
}

/// Picks the backend plugin by name (`BENCHMARK_BACKEND`, default `optimum`).
pub fn select_backend<'a>(plugins: &'a PluginSet, requested: Option<&str>) -> Result<&'a Plugin, RunError> {
    let name = requested.map(str::trim).filter(|s| !s.is_empty()).unwrap_or(DEFAULT_BACKEND);
    if let Some(p) = plugins.find(PluginKind::Backend, name) {
        return Ok(p);
    }
    let broken: Vec<String> = plugins.broken_candidates(PluginKind::Backend, name).map(|b| b.describe()).collect();
    if !broken.is_empty() {
        return Err(RunError::BrokenBackend { name: name.to_string(), files: broken.join("; ") });
    }
    Err(RunError::UnknownBackend {
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
pub struct RunArgsResolved {
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
pub fn results_dir(args: &RunArgsResolved) -> PathBuf {
    if let Some(d) = &args.results_dir {
        return d.clone();
    }
    let from_override = args.overrides.iter().rev().find_map(|o| {
        let o = o.trim_start_matches('+');
        o.strip_prefix("hydra.run.dir=").map(|v| PathBuf::from(v.trim_matches(['\'', '"'])))
    });
    from_override.or_else(|| args.results_dir_env.clone()).unwrap_or_else(|| PathBuf::from("results"))
}

fn now_s() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

/// `metering.*` from the config, and the plan's GPUs as NVML indices (through
/// `CUDA_VISIBLE_DEVICES`).
pub fn meter_options(
    cfg: &Config,
    gpus: &GpuUse,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<MeterOptions, RunError> {
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
    o.gpu_indices = Some(match gpus {
        GpuUse::Gpus(ids) => {
            let visible = env("CUDA_VISIBLE_DEVICES");
            meter::nvml_indices(ids, visible.as_deref(), meter::gpu::NvmlGpus::index_of_uuid)
                .map_err(RunError::Metering)?
        }
        GpuUse::None(_) => Vec::new(),
    });
    Ok(o)
}

/// AI Energy Score's grid for its own task configs: its `run_ai_energy_benchmark.py` gives
/// CodeCarbon `country_iso_code="USA"`, `region="california"`.
const AI_ENERGY_SCORE_LOCATION: (&str, &str) = ("USA", "california");

/// The run's grid carbon intensity and PUE (`metering.carbon_intensity_g_per_kwh`,
/// `metering.country_iso_code`, `metering.region`, `metering.pue`, `COUNTRY_ISO_CODE`), checked
/// before anything is touched. AI Energy Score's task configs (every built-in config but the
/// offline default) default to its location; any other config without a location has no factor.
pub fn carbon_settings(
    cfg: &Config,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<energy_star_carbon::CarbonSettings, RunError> {
    use energy_star_carbon::{CarbonInputs, GridLocation};
    let aes_task = cfg.name != "text_generation_offline" && config::embedded_names().contains(&cfg.name.as_str());
    let (country, region) = AI_ENERGY_SCORE_LOCATION;
    let default_location = aes_task.then(|| {
        (
            GridLocation::new(country, Some(region)),
            format!(
                "AI Energy Score's default location for its task configs ({country}/{region}, as its run_ai_energy_benchmark.py gives CodeCarbon); set metering.country_iso_code for your grid"
            ),
        )
    });
    let inputs = CarbonInputs {
        intensity: cfg.get(energy_star_carbon::INTENSITY_KEY),
        country: cfg.get(energy_star_carbon::COUNTRY_KEY),
        region: cfg.get(energy_star_carbon::REGION_KEY),
        pue: cfg.get(energy_star_carbon::PUE_KEY),
        env_country: env("COUNTRY_ISO_CODE"),
        default_location,
        no_default_reason: format!(
            "no grid location for config {:?}: set metering.country_iso_code (ISO 3166-1 alpha-3, e.g. USA; metering.region for a US state) or metering.carbon_intensity_g_per_kwh",
            cfg.name
        ),
    };
    Ok(energy_star_carbon::resolve(inputs)?)
}

/// Checks a run plan before anything is touched: every model and dataset is there (fetched
/// into the Hugging Face cache first when the plan names a Hub id, so no download is ever
/// metered; a model's weights only when they are read), every endpoint is a setting the user gave, and a summarizer reads the report
/// format. Says where each model and dataset came from.
fn check_plan(
    plan: &RunPlan,
    backend: &Plugin,
    plugins: &PluginSet,
    settings: &[(String, String)],
    weights: bool,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<SourceRecord>, RunError> {
    let refuse = |why: String| RunError::Plan { backend: backend.meta.name.clone(), why };
    for e in &plan.endpoints {
        if !settings.iter().any(|(_, v)| v.trim() == e.trim()) {
            return Err(refuse(format!(
                "endpoint {e:?} is not the value of any setting the user gave ({}); a backend may reach only what the user set",
                settings.iter().map(|(k, _)| k.as_str()).collect::<Vec<_>>().join(", ")
            )));
        }
    }
    let readers = plugins.of_kind(PluginKind::Summarizer).any(|s| s.meta.formats.contains(&plan.report_format));
    // A 0.1.0 backend was never held to its declared format (reports were detected).
    if !readers && backend.declares_its_plan() {
        return Err(refuse(format!(
            "it writes reports in format {:?}, which no installed summarizer reads ({}); add a summarizer plugin for it",
            plan.report_format,
            plugins.of_kind(PluginKind::Summarizer).flat_map(|p| p.meta.formats.clone()).collect::<Vec<_>>().join(", ")
        )));
    }
    // A 0.1.0 backend's plan is derived from config keys, a guess at what it opens: nothing is
    // fetched or checked for it (its models are found in the cache when it loads them).
    if !backend.declares_its_plan() {
        return Ok(Vec::new());
    }
    let sources = crate::fetch::plan_sources(plan, weights, env).map_err(RunError::Fetch)?;
    for m in &plan.models {
        // A GGUF file is a file (by path, or `ORG/NAME/FILE.gguf` in the cache), not a folder.
        if energy_star_engine_local::resolve::is_gguf(m) {
            let path =
                energy_star_engine_local::resolve::locate_gguf(m, env).map_err(|why| refuse(format!("{m} {why}")))?;
            if !path.is_file() {
                return Err(refuse(format!("GGUF model {m} is not a file")));
            }
            continue;
        }
        energy_star_engine_local::resolve::check_model_folder(m, weights, env).map_err(refuse)?;
    }
    for d in &plan.datasets {
        energy_star_datasets::locate_root(d, env).map_err(|e| refuse(e.to_string()))?;
    }
    Ok(sources)
}

/// The results folder must be a folder this process can write, apart from the plugin compile
/// cache (compiled plugins are loaded from it as machine code; a backend writes into results).
fn check_results_folder(dir: &Path, rt: &PluginRuntime) -> Result<(), RunError> {
    let bad = |why: String| RunError::ResultsFolder { path: dir.to_path_buf(), why };
    if dir.exists() && !dir.is_dir() {
        return Err(bad("it exists and is not a folder".into()));
    }
    let absolute = |p: &Path| {
        let p = if p.is_absolute() { p.to_path_buf() } else { std::env::current_dir().unwrap_or_default().join(p) };
        // The deepest part that exists, resolved; the rest as given.
        let mut existing = p.clone();
        let mut rest = Vec::new();
        while !existing.exists() {
            match (existing.file_name().map(|n| n.to_os_string()), existing.parent().map(Path::to_path_buf)) {
                (Some(n), Some(parent)) => {
                    rest.push(n);
                    existing = parent;
                }
                _ => break,
            }
        }
        let mut resolved = existing.canonicalize().unwrap_or(existing);
        resolved.extend(rest.iter().rev());
        resolved
    };
    if let Some(cache) = rt.cache_dir() {
        let (results, cache) = (absolute(dir), absolute(cache));
        if results.starts_with(&cache) || cache.starts_with(&results) {
            return Err(bad(format!(
                "it overlaps the plugin compile cache {}; choose another --results-dir or ENERGY_STAR_CACHE_DIR",
                cache.display()
            )));
        }
    }
    Ok(())
}

/// Opens the meter; a run without GPUs meters none and says why.
fn open_meter(options: MeterOptions, gpus: &GpuUse) -> SharedMeter {
    let m = match gpus {
        GpuUse::None(why) => {
            let clock = meter::monotonic_clock();
            Meter::with_sources(options, Err(format!("{why}: no GPU is metered")), clock)
        }
        GpuUse::Gpus(_) => Meter::open(options),
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

/// Closes the windows a backend left open (a trap, an early return), so their readings are
/// kept: nothing measured is lost.
fn close_abandoned_windows(shared: &SharedMeter, readings: &mut Vec<meter::WindowReading>) {
    let Ok(mut m) = shared.lock() else { return };
    for (id, name) in m.open_windows() {
        if let Ok(mut r) = m.end_window(id) {
            r.warnings
                .push(format!("window {name} was left open by the backend and closed by the host at the run's end"));
            readings.push(r);
        }
    }
}

/// Writes the timeline, the window boundaries and `energy_meter.json`.
pub fn write_meter_record(shared: &SharedMeter, readings: &[meter::WindowReading], dir: &Path) -> Result<(), RunError> {
    let m = shared.lock().map_err(|_| RunError::Metering("the meter's lock is poisoned".into()))?;
    meter::timeline::write(&m, dir)?;
    let hours = m.sampler_wall_s / 3600.0;
    let per_hour = |v: f64| (hours > 0.0).then(|| v / hours);
    let record = EnergyRecord {
        devices: m.devices().iter().map(meter::DeviceInfo::record).collect(),
        notices: m.notices().to_vec(),
        sampler: SamplerRecord {
            interval_ms: m.interval().as_secs_f64() * 1000.0,
            cpu_s: m.sampler_cpu_s,
            wall_s: m.sampler_wall_s,
            cpu_s_per_hour: per_hour(m.sampler_cpu_s),
            busy_s: m.sampler_busy_s,
            busy_s_per_hour: per_hour(m.sampler_busy_s),
        },
        idle_baseline: m
            .idle_baseline()
            .map(|b| IdleRecord { duration_s: b.duration.as_secs_f64(), power_w: b.power_w.clone() }),
        windows: readings.iter().map(meter::WindowReading::record).collect(),
        open_windows: m.open_windows().into_iter().map(|(_, n)| n).collect(),
    };
    records::write_record(&dir.join(ENERGY_RECORD), &record)?;
    Ok(())
}

/// What a finished run produced.
pub struct RunReport {
    pub results_dir: PathBuf,
    pub complete: bool,
    /// None for an incomplete run whose report no summary can be made of.
    pub summary: Option<summary::Summarized>,
}

/// Runs: backend chosen, settings read, config composed and the plan checked before anything
/// is written.
pub fn run(
    rt: &PluginRuntime,
    plugins: &PluginSet,
    args: &RunArgsResolved,
    env: impl Fn(&str) -> Option<String> + Send + Sync + 'static,
) -> Result<RunReport, RunError> {
    let backend = select_backend(plugins, args.backend.as_deref())?;
    let settings = required_settings(backend, &env)?;
    let source = ConfigSource::new(args.config_dir.clone())?;
    let cfg = config::compose(&source, &args.config_name, &args.overrides)?;
    let config_json = serde_json::to_string(&cfg.tree).unwrap_or_default();
    let plan = backend
        .prepare(rt, &config_json, &settings)
        .map_err(|source| RunError::Refused { backend: backend.meta.name.clone(), source: Box::new(source) })?;
    let options = meter_options(&cfg, &plan.gpus, &env)?;
    let carbon = carbon_settings(&cfg, &env)?;
    let idle_s = cfg.get("metering.idle_seconds").and_then(serde_json::Value::as_f64).unwrap_or(0.0);
    if !(0.0..=MAX_IDLE_S).contains(&idle_s) {
        return Err(RunError::Metering(format!("metering.idle_seconds = {idle_s} must be between 0 and {MAX_IDLE_S}")));
    }
    let dir = results_dir(args);
    check_results_folder(&dir, rt)?;
    // Last of the checks: it may download (into the Hub cache, never the results folder).
    // `backend.no_weights` (random weights from the config) needs no weights fetched: the
    // upstream task configs set it, and many of their models store only pickled weights.
    let weights = cfg.get("backend.no_weights").and_then(serde_json::Value::as_bool) != Some(true);
    let sources = check_plan(&plan, backend, plugins, &settings, weights, &env)?;

    // From here on the results folder is touched.
    results::ensure_dir(&dir)?;
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
    let mut status = RunStatus {
        complete: false,
        state: RunState::Running,
        backend: backend.meta.label(),
        config_name: cfg.name.clone(),
        config_source: cfg.source.clone(),
        started_unix_s: now_s(),
        earlier_run_moved_to: set_aside
            .moved_to
            .as_ref()
            .and_then(|p| p.strip_prefix(&dir).ok())
            .map(|p| p.display().to_string()),
        finished_unix_s: None,
        energy_files: Vec::new(),
        files_written_by_backend: Vec::new(),
        incomplete_reasons: Vec::new(),
        error: None,
        problems: Vec::new(),
    };
    let status_path = dir.join(RUN_STATUS);
    records::write_record(&status_path, &status)?;

    // Described once, before the meter opens: the record keeps it, backends read it (`machine`).
    let machine = energy_star_machine::describe();
    let shared = open_meter(options, &plan.gpus);
    if let Ok(m) = shared.lock() {
        for n in m.notices() {
            eprintln!("energy-star: {n}");
        }
    }
    let sampler = Sampler::start(shared.clone());
    let idle = if idle_s > 0.0 { measure_idle(&shared, idle_s) } else { Ok(()) };
    let mut services = HostServices::new(&backend.meta.name, dir.clone());
    services.meter = Some(shared.clone());
    services.grant = Some(Grant::of_plan(&plan, backend.declares_its_plan()));
    services.env = std::sync::Arc::new(env);
    services.carbon = carbon.clone();
    services.machine = machine.clone();
    let request = RunRequest { config_json, settings, plan: plan.clone() };
    let BackendOutcome { result, mut services } = match idle {
        Ok(()) => backend.run_backend(rt, services, &request),
        Err(e) => BackendOutcome {
            result: Err(PluginError::Guest { plugin: "host".into(), message: e.to_string() }),
            services,
        },
    };
    sampler.stop();

    // From here on nothing returns early: the meter's record, the run record, the report and
    // the status are each written whatever happened to the others, and failures are recorded
    // in the status.
    close_abandoned_windows(&shared, &mut services.readings);
    let mut problems: Vec<String> = Vec::new();
    if let Err(e) = write_meter_record(&shared, &services.readings, &dir) {
        problems.push(format!("energy record: {e}"));
    }
    let record = RunRecord {
        backend: backend.meta.label(),
        api_version: backend.meta.api_version.clone(),
        backend_sha256: Some(backend.meta.sha256.clone()),
        plan,
        facts: result.as_ref().ok().map(|o| o.facts.clone()),
        request_latencies_ms: std::mem::take(&mut services.request_latencies_ms),
        chat_templates: std::mem::take(&mut services.chat_templates),
        sources,
        carbon: Some(carbon),
        machine: Some(machine),
    };
    if let Err(e) = records::write_record(&dir.join(RUN_RECORD), &record) {
        problems.push(format!("run record: {e}"));
    }
    status.finished_unix_s = Some(now_s());
    status.energy_files = vec![
        meter::timeline::TIMELINE_CSV.to_string(),
        meter::timeline::WINDOWS_CSV.to_string(),
        ENERGY_RECORD.to_string(),
        RUN_RECORD.to_string(),
    ];
    status.files_written_by_backend = services.results.written.clone();
    status.incomplete_reasons = services.results.incomplete.clone();
    let interrupted = energy_star_plugin_host::interrupted();
    let output = match result {
        Ok(o) => o,
        Err(source) => {
            // Stopped by Ctrl-C: incomplete, not failed; the backend's error says where it was.
            let state = if interrupted { RunState::Incomplete } else { RunState::Failed };
            status.state = state;
            if interrupted {
                status.incomplete_reasons.push("interrupted by the user (Ctrl-C)".into());
            }
            status.error = Some(source.to_string());
            status.problems = problems;
            records::write_record(&status_path, &status)?;
            return Err(RunError::Backend { source: Box::new(source), status: status_path, state: state.as_str() });
        }
    };
    for why in &output.facts.incomplete_reasons {
        if !status.incomplete_reasons.contains(why) {
            status.incomplete_reasons.push(why.clone());
        }
    }
    let report_path = dir.join("benchmark_report.json");
    let report_written = write_atomic(&report_path, output.report_json.as_bytes());
    if let Err(e) = &report_written {
        problems.push(format!("report: {e}"));
    }
    let complete = status.incomplete_reasons.is_empty() && problems.is_empty();
    status.complete = complete;
    status.state = if complete { RunState::Complete } else { RunState::Incomplete };
    status.problems = problems;
    records::write_record(&status_path, &status)?;
    report_written?;
    let summary = match summary::summarize(rt, plugins, &dir) {
        Ok(s) => Some(s),
        // An incomplete run may have none of the phases a summary counts: say so, keep the
        // report, and let the status say the rest.
        Err(e) if !complete => {
            eprintln!("energy-star: no summary of this incomplete run: {e}");
            None
        }
        Err(source) => return Err(RunError::Summary { report: report_path, source: Box::new(source) }),
    };
    Ok(RunReport { results_dir: dir, complete, summary })
}
