use crate::bindings::backend::energy_star::plugin::results::Host;
use crate::state::PluginState;
use energy_star_results::{resolve_inside, write_atomic};

impl Host for PluginState {
    fn write_file(&mut self, name: String, contents: Vec<u8>) -> Result<(), String> {
        let s = self.services();
        let outcome = resolve_inside(&s.results_dir, &name)
            .and_then(|path| write_atomic(&path, &contents))
            .map(|()| s.written.push(name))
            .map_err(|e| e.to_string());
        self.host_returned();
        outcome
    }

    fn mark_incomplete(&mut self, reason: String) {
        self.services().incomplete.push(reason);
        self.host_returned();
    }
}
