//! Energy metering: named windows that may overlap, per-device energy with its source, a
//! background power timeline, and honest flags for figures that deserve less trust.
//!
//! Devices and their sources, in order of preference:
//! - GPU: NVML's total-energy counter (mJ, Volta and newer); else NVML power sampled by the
//!   sampler and integrated (trapezoids). NVML is loaded at run time; without it the GPUs are
//!   reported `unavailable`, once and clearly, and the run goes on.
//! - CPU: RAPL package zones; else CodeCarbon's TDP-and-load estimate, labelled `estimate-tdp`.
//! - RAM: RAPL `dram` zones; else CodeCarbon 3's per-DIMM estimate, labelled `estimate-dimm`.
//!
//! Rooms: [`gpu`] (the GPU source trait, NVML, replayed traces), [`rapl`], [`estimate`]
//! (CodeCarbon's constants, in one place), [`window`] (the arithmetic, pure), [`meter`]
//! (devices, the timeline, windows), [`sampler`] (the background thread), [`timeline`] (CSV).

pub mod estimate;
pub mod gpu;
pub mod meter;
pub mod rapl;
pub mod sampler;
pub mod timeline;
pub mod window;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub use meter::{Meter, MeterOptions, monotonic_clock};
pub use sampler::Sampler;

pub use energy_star_types::{DeviceKind, EnergySource, ValidityFlag};

use energy_star_results::records::{DeviceEnergyRecord, DeviceRecord, WindowRecord};

/// A metered device.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceInfo {
    pub kind: DeviceKind,
    /// GPU: NVML index. CPU/RAM: 0 (the machine's package or DRAM zones together).
    pub index: u32,
    pub name: String,
    pub source: EnergySource,
}

impl DeviceInfo {
    /// The device as the host records it.
    pub fn record(&self) -> DeviceRecord {
        DeviceRecord {
            device: self.label(),
            kind: self.kind,
            name: self.name.clone(),
            source: self.source,
            measured: self.source.is_measurement(),
        }
    }

    /// `gpu0`, `cpu`, `ram`: the label used in the timeline and reports.
    pub fn label(&self) -> String {
        match self.kind {
            DeviceKind::Gpu => format!("gpu{}", self.index),
            k => k.as_str().to_string(),
        }
    }
}

/// The energy of one device over one window.
#[derive(Debug, Clone, PartialEq)]
pub struct DeviceEnergy {
    pub device: DeviceInfo,
    /// None when it could not be measured: never a default zero.
    pub energy_j: Option<f64>,
    pub mean_power_w: Option<f64>,
    pub peak_power_w: Option<f64>,
    pub source: EnergySource,
    pub flags: Vec<ValidityFlag>,
    /// Mean idle power of the device, when an idle baseline was measured.
    pub idle_power_w: Option<f64>,
    /// `energy_j` minus idle power × duration; reported beside the gross figure, never instead.
    pub energy_above_idle_j: Option<f64>,
    /// GPUs read from the counter: the energy from integrated power samples, as a cross-check.
    pub power_integrated_j: Option<f64>,
}

/// The reading of one window.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowReading {
    /// The window's number in this meter (ids are given in the order windows begin).
    pub id: u64,
    pub name: String,
    pub start_ns: u64,
    pub end_ns: u64,
    pub devices: Vec<DeviceEnergy>,
    pub warnings: Vec<String>,
}

impl WindowReading {
    /// The reading as the host records it in `energy_meter.json`.
    pub fn record(&self) -> WindowRecord {
        WindowRecord {
            id: u32::try_from(self.id).unwrap_or(u32::MAX),
            name: self.name.clone(),
            start_s: self.start_ns as f64 / 1e9,
            end_s: self.end_ns as f64 / 1e9,
            duration_s: self.duration_s(),
            devices: self
                .devices
                .iter()
                .map(|d| DeviceEnergyRecord {
                    device: d.device.label(),
                    kind: d.device.kind,
                    name: d.device.name.clone(),
                    energy_j: d.energy_j,
                    energy_wh: d.energy_j.map(energy_star_types::units::j_to_wh),
                    mean_power_w: d.mean_power_w,
                    peak_power_w: d.peak_power_w,
                    source: d.source,
                    flags: d.flags.clone(),
                    idle_power_w: d.idle_power_w,
                    energy_above_idle_j: d.energy_above_idle_j,
                    power_integrated_j: d.power_integrated_j,
                })
                .collect(),
            warnings: self.warnings.clone(),
        }
    }

    pub fn duration_s(&self) -> f64 {
        (self.end_ns.saturating_sub(self.start_ns)) as f64 / 1e9
    }

    /// Sum of the GPUs' energy, or None when any GPU's is unknown.
    pub fn gpu_energy_j(&self) -> Option<f64> {
        let gpus: Vec<_> = self.devices.iter().filter(|d| d.device.kind == DeviceKind::Gpu).collect();
        if gpus.is_empty() {
            return None;
        }
        gpus.iter().map(|d| d.energy_j).sum()
    }

    pub fn device(&self, kind: DeviceKind) -> impl Iterator<Item = &DeviceEnergy> {
        self.devices.iter().filter(move |d| d.device.kind == kind)
    }
}

/// Errors of the meter's API.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum MeterError {
    #[error("no open measurement window has id {0}")]
    UnknownWindow(u64),
    #[error("measurement window name must not be empty")]
    EmptyName,
    #[error("{0}")]
    Failed(String),
}

/// Longest idle baseline accepted, s (a day).
pub const MAX_IDLE_S: f64 = 86_400.0;

/// A monotonic clock in nanoseconds (the meter's own, or a test's).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The meter shared between the host's services and the sampler thread.
pub type SharedMeter = Arc<Mutex<Meter>>;

pub use energy_star_types::ns_since as since;

/// Maps device ids as CUDA numbers them to NVML indices through `CUDA_VISIBLE_DEVICES`
/// (integers or `GPU-` UUIDs); `uuid_to_index` resolves UUIDs. Without the variable, CUDA ids are
/// NVML indices (both then number GPUs in PCI bus order when CUDA_DEVICE_ORDER=PCI_BUS_ID,
/// which optimum-benchmark sets; otherwise CUDA orders fastest first, and mixed-model machines
/// need CUDA_DEVICE_ORDER=PCI_BUS_ID for the two to agree).
pub fn nvml_indices(
    device_ids: &[u32],
    visible: Option<&str>,
    uuid_to_index: impl Fn(&str) -> Option<u32>,
) -> Result<Vec<u32>, String> {
    let Some(visible) = visible.map(str::trim).filter(|v| !v.is_empty()) else {
        let mut ids = device_ids.to_vec();
        ids.sort_unstable();
        ids.dedup();
        return Ok(ids);
    };
    let entries: Vec<&str> = visible.split(',').map(str::trim).filter(|s| !s.is_empty()).collect();
    let mut out: Vec<u32> = device_ids
        .iter()
        .map(|&id| {
            let entry = entries.get(id as usize).ok_or_else(|| {
                format!("device id {id} is not visible: CUDA_VISIBLE_DEVICES={visible} has {} device(s)", entries.len())
            })?;
            match entry.parse::<u32>() {
                Ok(i) => Ok(i),
                Err(_) => uuid_to_index(entry)
                    .ok_or_else(|| format!("CUDA_VISIBLE_DEVICES entry {entry:?} names no GPU NVML knows")),
            }
        })
        .collect::<Result<_, _>>()?;
    out.dedup();
    Ok(out)
}

/// Mean of per-device idle power measured before a run, by device label.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct IdleBaseline {
    pub duration: Duration,
    pub power_w: BTreeMap<String, f64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cuda_visible_devices_maps_to_nvml_indices() {
        let none = |_: &str| None;
        assert_eq!(nvml_indices(&[0, 1], None, none), Ok(vec![0, 1]));
        assert_eq!(nvml_indices(&[0, 1], Some("2,3"), none), Ok(vec![2, 3]));
        assert_eq!(nvml_indices(&[1], Some("GPU-aaa,GPU-bbb"), |u| (u == "GPU-bbb").then_some(5)), Ok(vec![5]));
        assert!(nvml_indices(&[2], Some("0,1"), none).unwrap_err().contains("not visible"));
        assert!(nvml_indices(&[0], Some("GPU-x"), none).unwrap_err().contains("GPU-x"));
    }
}
