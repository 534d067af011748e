//! The host side of the backend world's imports, one file per WIT interface. Each method ends
//! with `host_returned()`, which restarts the guest's compute budget.
//!

mod clock;
mod datasets;
mod inference;
mod log;
mod meter;
mod results;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use energy_star_meter::{SharedMeter, WindowReading};

use super::state::PluginState;

/// What a backend's imports act on: one per run.
pub struct HostServices {
    /// Plugin name, shown with its log lines.
    pub plugin: String,
    /// Where `results.write-file` writes.
    pub results_dir: PathBuf,
    /// Reasons given through `results.mark-incomplete`.
    pub incomplete: Vec<String>,
    /// Files the plugin wrote, relative to the results folder.
    pub written: Vec<String>,
    /// Origin of `clock.now-ns`.
    pub clock_origin: Instant,
    /// Whether progress lines go to a terminal.
    pub progress_to_terminal: bool,
    /// When each progress phase started, for rates.
    pub progress_started: std::collections::HashMap<String, Instant>,
    /// The run's meter; None answers `unavailable`.
    pub meter: Option<SharedMeter>,
    /// Every window the plugin closed, for the results folder.
    pub windows: Vec<WindowReading>,
    /// Models and datasets the plugin may open (those the run's config names); None allows
    /// any (only for direct library use, never for `run`).
    pub allowed: Option<Vec<String>>,
    /// Engines the plugin opened, by id.
    pub engines: std::collections::BTreeMap<u64, Engine>,
    /// Endpoints a remote engine may connect to: values the user set for the backend's
    /// required settings. A plugin cannot reach any other address.
    pub endpoints: Vec<String>,
    pub next_engine: u64,
    /// The environment the host's capabilities read (HF_HOME, HF_HUB_OFFLINE, ...); plugins
    /// never see it.
    pub env: Env,
}

/// An engine a plugin opened.
pub enum Engine {
    Local(Box<energy_star_engine_local::CandleEngine>),
    Remote(Box<energy_star_engine_remote::RemoteEngine>),
}

/// How the host's capabilities read the environment.
pub type Env = std::sync::Arc<dyn Fn(&str) -> Option<String> + Send + Sync>;

/// Set by the Ctrl-C handler: host calls then fail with "interrupted", so a backend stops at
/// its next call and the run is written as incomplete.
static INTERRUPTED: AtomicBool = AtomicBool::new(false);

/// Asks every running backend to stop at its next host call.
pub fn interrupt() {
    INTERRUPTED.store(true, Ordering::SeqCst);
}

/// Whether the user asked to stop.
pub fn interrupted() -> bool {
    INTERRUPTED.load(Ordering::SeqCst)
}

impl HostServices {
    pub fn new(plugin: &str, results_dir: PathBuf) -> Self {
        use std::io::IsTerminal;
        Self {
            plugin: plugin.to_string(),
            results_dir,
            incomplete: Vec::new(),
            written: Vec::new(),
            clock_origin: Instant::now(),
            progress_to_terminal: std::io::stderr().is_terminal(),
            progress_started: Default::default(),
            meter: None,
            windows: Vec::new(),
            allowed: None,
            engines: Default::default(),
            endpoints: Vec::new(),
            next_engine: 1,
            env: std::sync::Arc::new(|k: &str| std::env::var(k).ok()),
        }
    }
}

impl HostServices {
    /// The host clock plugins see: the meter's when there is one, so that request times and
    /// window edges share one time base.
    /// The instant the host clock counts from, for code that times with `Instant`.
    pub fn clock_instant(&self) -> Instant {
        let ns = self.now_ns();
        let now = Instant::now();
        now.checked_sub(std::time::Duration::from_nanos(ns)).unwrap_or(now)
    }

    pub fn now_ns(&self) -> u64 {
        match self.meter.as_ref().and_then(|m| m.lock().ok().map(|m| m.now_ns())) {
            Some(t) => t,
            None => energy_star_meter::since(self.clock_origin, Instant::now()),
        }
    }
}

impl HostServices {
    /// Refuses a model or dataset the run's config does not name: a plugin reads only what
    /// the user asked for, never an arbitrary file.
    pub fn check_allowed(&self, what: &str, name: &str) -> Result<(), String> {
        match &self.allowed {
            Some(list) if !list.iter().any(|a| a == name) => Err(format!(
                "{what} {name:?} is not named in the run's config ({}); a plugin may open only the model and dataset the config names",
                list.join(", ")
            )),
            _ => Ok(()),
        }
    }
}

impl PluginState {
    fn services(&mut self) -> &mut HostServices {
        self.services.as_mut().expect("backend stores are created with host services")
    }
}
