use crate::bindings::backend::energy_star::plugin::meter as wit;
use crate::bindings::backend::energy_star::plugin::meter::{DeviceInfo, Host, MeterError, WindowReading};
use crate::state::PluginState;
use energy_star_meter::{self as meter, DeviceKind, EnergySource, ValidityFlag as Flag};

use super::interrupted;

fn source(s: EnergySource) -> wit::EnergySource {
    match s {
        EnergySource::NvmlEnergyCounter => wit::EnergySource::NvmlEnergyCounter,
        EnergySource::NvmlPowerIntegration => wit::EnergySource::NvmlPowerIntegration,
        EnergySource::Rapl => wit::EnergySource::Rapl,
        EnergySource::EstimateTdp => wit::EnergySource::EstimateTdp,
        EnergySource::EstimateDimm => wit::EnergySource::EstimateDimm,
        EnergySource::Unavailable => wit::EnergySource::Unavailable,
    }
}

fn device(d: &meter::DeviceInfo) -> DeviceInfo {
    DeviceInfo {
        kind: match d.kind {
            DeviceKind::Gpu => wit::DeviceKind::Gpu,
            DeviceKind::Cpu => wit::DeviceKind::Cpu,
            DeviceKind::Ram => wit::DeviceKind::Ram,
        },
        index: d.index,
        name: d.name.clone(),
        source: source(d.source),
    }
}

fn flag(f: Flag) -> wit::ValidityFlag {
    match f {
        Flag::TooShort => wit::ValidityFlag::TooShort,
        Flag::ZeroReading => wit::ValidityFlag::ZeroReading,
        Flag::CounterReset => wit::ValidityFlag::CounterReset,
        Flag::MigWholeGpu => wit::ValidityFlag::MigWholeGpu,
        Flag::GapInSamples => wit::ValidityFlag::GapInSamples,
    }
}

fn reading(r: &meter::WindowReading) -> WindowReading {
    WindowReading {
        name: r.name.clone(),
        start_ns: r.start_ns,
        end_ns: r.end_ns,
        devices: r
            .devices
            .iter()
            .map(|d| wit::DeviceEnergy {
                device: device(&d.device),
                energy_j: d.energy_j,
                mean_power_w: d.mean_power_w,
                peak_power_w: d.peak_power_w,
                source: source(d.source),
                validity: d.flags.iter().copied().map(flag).collect(),
                idle_power_w: d.idle_power_w,
                energy_above_idle_j: d.energy_above_idle_j,
            })
            .collect(),
        warnings: r.warnings.clone(),
    }
}

fn unavailable() -> MeterError {
    MeterError::Unavailable("no energy meter was opened for this run".into())
}

fn failed(e: meter::MeterError) -> MeterError {
    match e {
        meter::MeterError::UnknownWindow(id) => MeterError::UnknownWindow(id),
        other => MeterError::Failed(other.to_string()),
    }
}

impl Host for PluginState {
    fn devices(&mut self) -> Result<Vec<DeviceInfo>, MeterError> {
        let out = match &self.services().meter {
            Some(m) => match m.lock() {
                Ok(m) => Ok(m.devices().iter().map(device).collect()),
                Err(_) => Err(MeterError::Failed("the meter's lock is poisoned".into())),
            },
            None => Err(unavailable()),
        };
        self.host_returned();
        out
    }

    fn begin_window(&mut self, name: String) -> Result<u64, MeterError> {
        let out = if interrupted() {
            Err(MeterError::Failed("interrupted by the user (Ctrl-C)".into()))
        } else {
            match &self.services().meter {
                Some(m) => match m.lock() {
                    Ok(mut m) => m.begin_window(&name).map_err(failed),
                    Err(_) => Err(MeterError::Failed("the meter's lock is poisoned".into())),
                },
                None => Err(unavailable()),
            }
        };
        self.host_returned();
        out
    }

    fn end_window(&mut self, id: u64) -> Result<WindowReading, MeterError> {
        self.closed_reading(|m| m.end_window(id))
    }

    fn reading_between(&mut self, name: String, start_ns: u64, end_ns: u64) -> Result<WindowReading, MeterError> {
        self.closed_reading(|m| m.reading_between(&name, start_ns, end_ns))
    }
}

impl PluginState {
    /// A reading from the meter, kept for the results folder and returned to the plugin.
    fn closed_reading(
        &mut self,
        read: impl FnOnce(&mut meter::Meter) -> Result<meter::WindowReading, meter::MeterError>,
    ) -> Result<WindowReading, MeterError> {
        let s = self.services();
        let out = match &s.meter {
            Some(m) => match m.lock() {
                Ok(mut m) => read(&mut m).map_err(failed),
                Err(_) => Err(MeterError::Failed("the meter's lock is poisoned".into())),
            },
            None => Err(unavailable()),
        };
        let out = out.map(|r| {
            let w = reading(&r);
            s.windows.push(r);
            w
        });
        self.host_returned();
        out
    }
}
