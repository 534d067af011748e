//! `log`: lines and progress on the host's terminal.

use std::io::Write;

use crate::wit::latest::backend::energy_star::plugin::log::{Host, Level};

use super::LogView;

/// The marker of one level in a log line.
fn level_name(level: Level) -> &'static str {
    match level {
        Level::Trace => "trace",
        Level::Debug => "debug",
        Level::Info => "info",
        Level::Warn => "warn",
        Level::Error => "error",
    }
}

impl LogView<'_> {
    /// One log line on stderr, tagged with the plugin's name.
    pub fn line(&self, level: &str, message: &str) {
        eprintln!("[{}] {level}: {message}", self.plugin);
    }

    /// A progress line, on a terminal only: done/total, the rate, and the energy so far.
    pub fn show_progress(&mut self, phase: &str, done: u64, total: Option<u64>, unit: &str) {
        if !self.progress.to_terminal {
            return;
        }
        if done == 0 {
            self.progress.started.insert(phase.to_string(), std::time::Instant::now());
        }
        let started = *self.progress.started.entry(phase.to_string()).or_insert_with(std::time::Instant::now);
        let secs = started.elapsed().as_secs_f64();
        let rate = if secs > 0.0 { format!(", {:.1} {unit}/s", done as f64 / secs) } else { String::new() };
        let energy = self
            .meter
            .and_then(|m| m.lock().ok().map(|m| m.energy_so_far_j()))
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(label, source, j)| {
                let est = if source.is_measurement() { "" } else { " est." };
                j.map(|j| format!("{label} {:.4} Wh{est}", energy_star_types::units::j_to_wh(j)))
            })
            .collect::<Vec<_>>();
        let energy = if energy.is_empty() { String::new() } else { format!("; energy so far: {}", energy.join(", ")) };
        let of = total.map(|t| format!("/{t}")).unwrap_or_default();
        let mut err = std::io::stderr().lock();
        let _ = write!(err, "\r[{}] {phase}: {done}{of} {unit}{rate}{energy}\x1b[K", self.plugin);
        if total.is_some_and(|t| done >= t) {
            let _ = writeln!(err);
        }
    }
}

impl Host for LogView<'_> {
    fn log(&mut self, level: Level, message: String) {
        self.line(level_name(level), &message);
    }

    fn progress(&mut self, phase: String, done: u64, total: Option<u64>, unit: String) {
        self.show_progress(&phase, done, total, &unit);
    }
}

/// `types` has no functions; its (empty) host trait is on the log view.
impl crate::wit::latest::backend::energy_star::plugin::types::Host for LogView<'_> {}
