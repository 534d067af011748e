//! `meter`: windows as resources, readings kept for the results folder.

use energy_star_meter::{self as meter, DeviceKind, EnergySource, ValidityFlag};
use wasmtime::component::Resource;

use crate::wit::latest::backend::energy_star::plugin::meter::{
    DeviceEnergy, DeviceInfo, Host, HostWindow, WindowReading,
};
use crate::wit::latest::backend::energy_star::plugin::types::{self as wit, Error};

use super::{MeterView, check_interrupted};

/// An open (or ended) measurement window: the meter's window id.
#[derive(Debug)]
pub struct MeterWindow {
    id: u64,
    ended: bool,
}

pub(crate) fn source(s: EnergySource) -> wit::EnergySource {
    match s {
        EnergySource::NvmlEnergyCounter => wit::EnergySource::NvmlEnergyCounter,
        EnergySource::NvmlPowerIntegration => wit::EnergySource::NvmlPowerIntegration,
        EnergySource::Rapl => wit::EnergySource::Rapl,
        EnergySource::EstimateTdp => wit::EnergySource::EstimateTdp,
        EnergySource::EstimateDimm => wit::EnergySource::EstimateDimm,
        EnergySource::Unavailable => wit::EnergySource::Unavailable,
    }
}

fn kind(k: DeviceKind) -> wit::DeviceKind {
    match k {
        DeviceKind::Gpu => wit::DeviceKind::Gpu,
        DeviceKind::Cpu => wit::DeviceKind::Cpu,
        DeviceKind::Ram => wit::DeviceKind::Ram,
    }
}

fn flag(f: ValidityFlag) -> wit::ValidityFlag {
    match f {
        ValidityFlag::TooShort => wit::ValidityFlag::TooShort,
        ValidityFlag::ZeroReading => wit::ValidityFlag::ZeroReading,
        ValidityFlag::CounterReset => wit::ValidityFlag::CounterReset,
        ValidityFlag::MigWholeGpu => wit::ValidityFlag::MigWholeGpu,
        ValidityFlag::GapInSamples => wit::ValidityFlag::GapInSamples,
    }
}

pub(crate) fn device(d: &meter::DeviceInfo) -> DeviceInfo {
    DeviceInfo { kind: kind(d.kind), index: d.index, name: d.name.clone(), source: source(d.source) }
}

pub(crate) fn reading(r: &meter::WindowReading) -> WindowReading {
    WindowReading {
        id: u32::try_from(r.id).unwrap_or(u32::MAX),
        name: r.name.clone(),
        start_ns: r.start_ns,
        end_ns: r.end_ns,
        devices: r
            .devices
            .iter()
            .map(|d| DeviceEnergy {
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

fn unavailable() -> Error {
    Error::Unavailable("no energy meter was opened for this run".into())
}

fn failed(e: meter::MeterError) -> Error {
    match e {
        meter::MeterError::EmptyName => Error::Invalid(e.to_string()),
        other => Error::Failed(other.to_string()),
    }
}

impl MeterView<'_> {
    fn with_meter<T>(&mut self, f: impl FnOnce(&mut meter::Meter) -> Result<T, Error>) -> Result<T, Error> {
        let m = self.meter.ok_or_else(unavailable)?;
        let mut m = m.lock().map_err(|_| Error::Failed("the meter's lock is poisoned".into()))?;
        f(&mut m)
    }

    /// A reading the meter gave: kept for the results folder, returned to the plugin.
    fn keep(&mut self, r: meter::WindowReading) -> WindowReading {
        let w = reading(&r);
        self.readings.push(r);
        w
    }

    /// Closes the meter's window `id` and keeps its reading.
    fn close(&mut self, id: u64) -> Result<WindowReading, Error> {
        let r = self.with_meter(|m| m.end_window(id).map_err(failed))?;
        Ok(self.keep(r))
    }
}

impl Host for MeterView<'_> {
    fn devices(&mut self) -> Result<Vec<DeviceInfo>, Error> {
        self.with_meter(|m| Ok(m.devices().iter().map(device).collect()))
    }

    fn begin_window(&mut self, name: String) -> Result<Resource<MeterWindow>, Error> {
        check_interrupted()?;
        let id = self.with_meter(|m| m.begin_window(&name).map_err(failed))?;
        self.table.push(MeterWindow { id, ended: false }).map_err(|e| Error::Failed(format!("window table: {e}")))
    }

    fn reading_between(&mut self, name: String, start_ns: u64, end_ns: u64) -> Result<WindowReading, Error> {
        let r = self.with_meter(|m| m.reading_between(&name, start_ns, end_ns).map_err(failed))?;
        Ok(self.keep(r))
    }
}

impl HostWindow for MeterView<'_> {
    fn end(&mut self, window: Resource<MeterWindow>) -> Result<WindowReading, Error> {
        let w = self.table.get_mut(&window).map_err(|e| Error::Invalid(format!("window: {e}")))?;
        if w.ended {
            return Err(Error::Invalid("this window was ended already".into()));
        }
        w.ended = true;
        let id = w.id;
        self.close(id)
    }

    fn drop(&mut self, window: Resource<MeterWindow>) -> wasmtime::Result<()> {
        let w = self.table.delete(window)?;
        // A window the plugin dropped unclosed (a panic, an early return) is closed here:
        // its reading is kept all the same.
        if !w.ended {
            let _ = self.close(w.id);
        }
        Ok(())
    }
}
