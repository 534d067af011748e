//! The host side of the backend world's imports (API 0.2.5), one file per WIT interface.
//!
//! A backend's run is given a [`HostServices`]: the run's capabilities (its meter, results
//! folder, environment, and the grant of models, datasets and endpoints its plan declared).
//! Each interface is implemented on a narrow view of it ([`LogView`], [`MeterView`], ...), as
//! wasmtime-wasi implements `wasi:clocks` on `WasiClocksCtxView`: an interface can reach only
//! what it needs. The 0.1.0 imports (`crate::wit::v0_1_0`) forward to these.
//!
//! The guest's compute budget restarts whenever a host call returns (the store's call hook,
//! `crate::runtime`), so no implementation here has to remember to do it.

pub mod carbon;
pub mod clock;
pub mod datasets;
pub mod inference;
pub mod log;
pub mod machine;
pub mod meter;
pub mod results;
pub mod tasks;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use energy_star_carbon::CarbonSettings;
use energy_star_machine::MachineDescription;
use energy_star_meter::{SharedMeter, WindowReading};
use energy_star_results::records::{ChatTemplateUse, RunPlan};
use wasmtime::component::ResourceTable;

use crate::wit::latest::backend::energy_star::plugin::types::Error;

/// Set by the Ctrl-C handler: host calls then answer `interrupted`, so a backend stops at its
/// next call and writes what it has.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Asks every running backend to stop at its next host call.
pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Whether the user asked to stop.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

/// How the host's capabilities read the environment (HF_HOME, HF_HUB_OFFLINE, API keys);
/// plugins never see it.
pub type Env = std::sync::Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// What a plugin may open: the models, datasets and endpoints of its run plan.
#[derive(Debug, Clone, Default)]
pub struct Grant {
    pub models: Vec<String>,
    pub datasets: Vec<String>,
    pub endpoints: Vec<String>,
    /// Whether the backend declared the plan itself (API 0.2.0); a 0.1.0 backend's grant is
    /// what the run's config names, and refusals say so.
    pub declared: bool,
}

impl Grant {
    /// What the plan allows.
    pub fn of_plan(plan: &RunPlan, declared: bool) -> Self {
        Self {
            models: plan.models.clone(),
            datasets: plan.datasets.clone(),
            endpoints: plan.endpoints.clone(),
            declared,
        }
    }

    fn check(&self, list: &[String], what: &str, name: &str) -> Result<(), Error> {
        if list.iter().any(|a| a.trim() == name.trim()) {
            return Ok(());
        }
        let named = if list.is_empty() { "none".to_string() } else { list.join(", ") };
        Err(Error::Denied(if self.declared {
            format!(
                "{what} {name:?} is not in the run plan ({named}); a backend may open only what its `prepare` declared"
            )
        } else {
            format!(
                "{what} {name:?} is not named in the run's config ({named}); a plugin may open only the model and dataset the config names"
            )
        }))
    }

    pub fn model(&self, name: &str) -> Result<(), Error> {
        self.check(&self.models, "model", name)
    }

    pub fn dataset(&self, name: &str) -> Result<(), Error> {
        self.check(&self.datasets, "dataset", name)
    }

    /// The endpoint as the user set it (the plan's copy), when granted.
    pub fn endpoint(&self, name: &str) -> Result<String, Error> {
        self.check(&self.endpoints, "endpoint", name)?;
        Ok(name.trim().to_string())
    }
}

/// The host clock plugins see: the meter's when there is one, so that request times and
/// window edges share one time base.
#[derive(Clone)]
pub struct HostClock {
    meter: Option<SharedMeter>,
    origin: Instant,
}

impl HostClock {
    pub fn now_ns(&self) -> u64 {
        match self.meter.as_ref().and_then(|m| m.lock().ok().map(|m| m.now_ns())) {
            Some(t) => t,
            None => energy_star_types::ns_since(self.origin, Instant::now()),
        }
    }

    /// The instant the clock counts from, for code that times with `Instant`.
    pub fn origin_instant(&self) -> Instant {
        let ns = self.now_ns();
        let now = Instant::now();
        now.checked_sub(std::time::Duration::from_nanos(ns)).unwrap_or(now)
    }
}

/// The results folder and what a plugin did with it.
#[derive(Debug, Default)]
pub struct ResultsCtx {
    pub dir: PathBuf,
    /// Files written through `results.write-file`, relative to `dir`.
    pub written: Vec<String>,
    /// Reasons given through `results.mark-incomplete`.
    pub incomplete: Vec<String>,
}

/// Progress lines on a terminal.
#[derive(Debug, Default)]
pub struct Progress {
    pub to_terminal: bool,
    pub started: std::collections::HashMap<String, Instant>,
}

/// What a backend's imports act on: one per run.
pub struct HostServices {
    /// Plugin name, shown with its log lines.
    pub plugin: String,
    pub results: ResultsCtx,
    /// The run's meter; none answers `unavailable`.
    pub meter: Option<SharedMeter>,
    /// Every reading the plugin took (closed windows, cut intervals, dropped windows), for
    /// the results folder.
    pub readings: Vec<WindowReading>,
    /// What the plugin may open; none allows anything (library use and tests, never `run`).
    pub grant: Option<Grant>,
    pub env: Env,
    pub progress: Progress,
    /// End-to-end latency of each successful request the host timed, ms.
    pub request_latencies_ms: Vec<f64>,
    /// The chat templates prompts went through (`apply-chat-template`).
    pub chat_templates: Vec<ChatTemplateUse>,
    /// The grid carbon intensity and PUE the run resolved before it started (`carbon`).
    pub carbon: CarbonSettings,
    /// The machine, described before the run (`machine`).
    pub machine: MachineDescription,
    clock_origin: Instant,
}

impl HostServices {
    pub fn new(plugin: &str, results_dir: PathBuf) -> Self {
        use std::io::IsTerminal;
        Self {
            plugin: plugin.to_string(),
            results: ResultsCtx { dir: results_dir, ..Default::default() },
            meter: None,
            readings: Vec::new(),
            grant: None,
            env: std::sync::Arc::new(|k: &str| std::env::var(k).ok()),
            progress: Progress { to_terminal: std::io::stderr().is_terminal(), started: Default::default() },
            request_latencies_ms: Vec::new(),
            chat_templates: Vec::new(),
            carbon: CarbonSettings {
                intensity: None,
                unknown_reason: Some("no carbon settings were given to this call (library use)".into()),
                pue: 1.0,
            },
            machine: MachineDescription::default(),
            clock_origin: Instant::now(),
        }
    }

    pub fn clock(&self) -> HostClock {
        HostClock { meter: self.meter.clone(), origin: self.clock_origin }
    }
}

/// `log`'s view: the plugin's name, the progress state, the meter for "energy so far".
pub struct LogView<'a> {
    pub plugin: &'a str,
    pub progress: &'a mut Progress,
    pub meter: Option<&'a SharedMeter>,
}

/// `clock`'s view.
pub struct ClockView {
    pub clock: HostClock,
}

/// `meter`'s view: the meter, where readings are kept, and the resource table for windows.
pub struct MeterView<'a> {
    pub meter: Option<&'a SharedMeter>,
    pub readings: &'a mut Vec<WindowReading>,
    pub table: &'a mut ResourceTable,
}

/// `inference`'s view: the grant, the environment, the clock and the table for engines.
pub struct InferenceView<'a> {
    pub grant: Option<&'a Grant>,
    pub env: &'a Env,
    pub clock: HostClock,
    pub table: &'a mut ResourceTable,
    pub request_latencies_ms: &'a mut Vec<f64>,
    pub chat_templates: &'a mut Vec<ChatTemplateUse>,
}

/// `datasets`' view: the grant, the environment and the table for tables.
pub struct DatasetsView<'a> {
    pub grant: Option<&'a Grant>,
    pub env: &'a Env,
    pub table: &'a mut ResourceTable,
}

/// `tasks`' view: the grant, the environment, the clock and the table for processors,
/// prepared rows and models (and the tables they read).
pub struct TasksView<'a> {
    pub grant: Option<&'a Grant>,
    pub env: &'a Env,
    pub clock: HostClock,
    pub table: &'a mut ResourceTable,
}

/// `results`' view.
pub struct ResultsView<'a> {
    pub results: &'a mut ResultsCtx,
}

/// `carbon`'s view: the run's resolved settings, read only.
pub struct CarbonView<'a> {
    pub settings: &'a CarbonSettings,
}

/// `machine`'s view: the run's machine description, read only.
pub struct MachineView<'a> {
    pub machine: &'a MachineDescription,
}

/// `interrupted` when the user stopped the run.
fn check_interrupted() -> Result<(), Error> {
    if interrupted() { Err(Error::Interrupted) } else { Ok(()) }
}
