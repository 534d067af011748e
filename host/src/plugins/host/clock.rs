use crate::plugins::bindings::backend::energy_star::plugin::clock::Host;
use crate::plugins::state::PluginState;

impl Host for PluginState {
    fn now_ns(&mut self) -> u64 {
        let ns = self.services().clock_origin.elapsed().as_nanos();
        self.host_returned();
        u64::try_from(ns).unwrap_or(u64::MAX)
    }
}
