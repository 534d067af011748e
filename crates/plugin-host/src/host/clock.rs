use crate::bindings::backend::energy_star::plugin::clock::Host;
use crate::state::PluginState;

impl Host for PluginState {
    fn now_ns(&mut self) -> u64 {
        let ns = self.services().now_ns();
        self.host_returned();
        ns
    }
}
