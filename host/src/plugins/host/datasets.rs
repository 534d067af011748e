use crate::plugins::bindings::backend::energy_star::plugin::datasets::{DatasetRows, DatasetSpec, Host};
use crate::plugins::state::PluginState;

use super::not_in_this_build;

impl Host for PluginState {
    fn load(&mut self, spec: DatasetSpec) -> Result<DatasetRows, String> {
        self.host_returned();
        Err(format!("cannot load dataset {:?}: {}", spec.name, not_in_this_build("dataset loading")))
    }
}
