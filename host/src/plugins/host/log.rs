use std::io::Write;

use crate::plugins::bindings::backend::energy_star::plugin::log::{Host, Level};
use crate::plugins::state::PluginState;

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
            let of = if total > 0 { format!("/{total}") } else { String::new() };
            let mut err = std::io::stderr().lock();
            let _ = write!(err, "\r[{}] {phase}: {done}{of} {unit}\x1b[K", s.plugin);
            if total > 0 && done >= total {
                let _ = writeln!(err);
            }
        }
        self.host_returned();
    }
}
