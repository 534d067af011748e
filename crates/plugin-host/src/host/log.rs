use std::io::Write;

use crate::bindings::backend::energy_star::plugin::log::{Host, Level};
use crate::state::PluginState;

impl Host for PluginState {
    fn log(&mut self, level: Level, message: String) {
        let plugin = self.services().plugin.clone();
        let level = match level {
            Level::Trace => "trace",
            Level::Debug => "debug",
            Level::Info => "info",
            Level::Warn => "warn",
            Level::Error => "error",
        };
        eprintln!("[{plugin}] {level}: {message}");
        self.host_returned();
    }

    fn progress(&mut self, phase: String, done: u64, total: u64, unit: String) {
        let s = self.services();
        if s.progress_to_terminal {
            if done == 0 {
                s.progress_started.insert(phase.clone(), std::time::Instant::now());
            }
            let started = *s.progress_started.entry(phase.clone()).or_insert_with(std::time::Instant::now);
            let secs = started.elapsed().as_secs_f64();
            let rate = if secs > 0.0 { format!(", {:.1} {unit}/s", done as f64 / secs) } else { String::new() };
            let energy = s
                .meter
                .as_ref()
                .and_then(|m| m.lock().ok().map(|m| m.energy_so_far_j()))
                .unwrap_or_default()
                .into_iter()
                .filter_map(|(label, source, j)| {
                    let est = if source.is_measurement() { "" } else { " est." };
                    j.map(|j| format!("{label} {:.4} Wh{est}", j / 3600.0))
                })
                .collect::<Vec<_>>();
            let energy =
                if energy.is_empty() { String::new() } else { format!("; energy so far: {}", energy.join(", ")) };
            let of = if total > 0 { format!("/{total}") } else { String::new() };
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r[{}] {phase}: {done}{of} {unit}{rate}{energy}\x1b[K", s.plugin);
            if total > 0 && done >= total {
                let _ = writeln!(err);
            }
        }
        self.host_returned();
    }
}
