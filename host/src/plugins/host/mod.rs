//! The host side of the backend world's imports, one file per WIT interface. Each method ends
//! with `host_returned()`, which restarts the guest's compute budget.
//!
//! Local and remote inference and datasets are not built into this version: their calls answer
//! `unavailable` with a message saying so, and nothing pretends otherwise. The meter is real.

mod clock;
mod datasets;
mod inference;
mod log;
mod meter;
mod results;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use crate::meter::{SharedMeter, WindowReading};

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
    /// The run's meter; None answers `unavailable`.
    pub meter: Option<SharedMeter>,
    /// Every window the plugin closed, for the results folder.
    pub windows: Vec<WindowReading>,
}

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
            meter: None,
            windows: Vec::new(),
        }
    }
}

impl PluginState {
    fn services(&mut self) -> &mut HostServices {
        self.services.as_mut().expect("backend stores are created with host services")
    }
}

/// Text of every `unavailable` answer, naming the capability.
fn not_in_this_build(capability: &str) -> String {
    format!(
        "{capability} is not available in this build of energy-star {}",
        env!("CARGO_PKG_VERSION")
    )
}
