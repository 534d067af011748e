use crate::plugins::bindings::backend::energy_star::plugin::meter::{DeviceInfo, Host, MeterError, WindowReading};
use crate::plugins::state::PluginState;

use super::not_in_this_build;

fn unavailable() -> MeterError {
    MeterError::Unavailable(not_in_this_build("energy metering (NVML, RAPL)"))
}

impl Host for PluginState {
    fn devices(&mut self) -> Result<Vec<DeviceInfo>, MeterError> {
        self.host_returned();
        Err(unavailable())
    }

    fn begin_window(&mut self, _name: String) -> Result<u64, MeterError> {
        self.host_returned();
        Err(unavailable())
    }

    fn end_window(&mut self, id: u64) -> Result<WindowReading, MeterError> {
        self.host_returned();
        // No window can have been opened, so any id is unknown; say why.
        let _ = id;
        Err(unavailable())
    }
}
