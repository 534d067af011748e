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
//! (CodeCarbon's constants, in one place), [`window`] (the arithmetic, pure), [`sampler`]
//! (the background thread and the timeline), [`timeline`] (CSV).

pub mod estimate;
pub mod gpu;
pub mod rapl;
pub mod sampler;
pub mod timeline;
pub mod window;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub use sampler::{Meter, MeterOptions, Sampler};

/// Where a figure comes from. Every energy figure carries one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum EnergySource {
    NvmlEnergyCounter,
    NvmlPowerIntegration,
    Rapl,
    EstimateTdp,
    EstimateDimm,
    Unavailable,
}

impl EnergySource {
    pub fn as_str(self) -> &'static str {
        match self {
            EnergySource::NvmlEnergyCounter => "nvml-energy-counter",
            EnergySource::NvmlPowerIntegration => "nvml-power-integration",
            EnergySource::Rapl => "rapl",
            EnergySource::EstimateTdp => "estimate-tdp",
            EnergySource::EstimateDimm => "estimate-dimm",
            EnergySource::Unavailable => "unavailable",
        }
    }

    /// Whether the figure is measured (as opposed to estimated or absent).
    pub fn is_measurement(self) -> bool {
        matches!(self, EnergySource::NvmlEnergyCounter | EnergySource::NvmlPowerIntegration | EnergySource::Rapl)
    }
}

impl fmt::Display for EnergySource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DeviceKind {
    Gpu,
    Cpu,
    Ram,
}

impl DeviceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            DeviceKind::Gpu => "gpu",
            DeviceKind::Cpu => "cpu",
            DeviceKind::Ram => "ram",
        }
    }
}

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
    /// `gpu0`, `cpu`, `ram`: the label used in the timeline and reports.
    pub fn label(&self) -> String {
        match self.kind {
            DeviceKind::Gpu => format!("gpu{}", self.index),
            k => k.as_str().to_string(),
        }
    }
}

/// Why a figure deserves less trust. Flags, never silent corrections.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Flag {
    /// Shorter than 2 s or than the counter's update period.
    TooShort,
    /// The counter did not advance over a window in which the device drew power.
    ZeroReading,
    /// The counter went backwards (driver reload).
    CounterReset,
    /// MIG is enabled; the figure is the whole GPU's.
    MigWholeGpu,
    /// Samples are missing for part of the window.
    GapInSamples,
}

impl Flag {
    pub fn as_str(self) -> &'static str {
        match self {
            Flag::TooShort => "too-short",
            Flag::ZeroReading => "zero-reading",
            Flag::CounterReset => "counter-reset",
            Flag::MigWholeGpu => "mig-whole-gpu",
            Flag::GapInSamples => "gap-in-samples",
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
    pub flags: Vec<Flag>,
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
    pub name: String,
    pub start_ns: u64,
    pub end_ns: u64,
    pub devices: Vec<DeviceEnergy>,
    pub warnings: Vec<String>,
}

impl WindowReading {
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

    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "name": self.name,
            "start_s": self.start_ns as f64 / 1e9,
            "end_s": self.end_ns as f64 / 1e9,
            "duration_s": self.duration_s(),
            "devices": self.devices.iter().map(|d| serde_json::json!({
                "device": d.device.label(),
                "name": d.device.name,
                "energy_j": d.energy_j,
                "energy_wh": d.energy_j.map(|j| j / 3600.0),
                "mean_power_w": d.mean_power_w,
                "peak_power_w": d.peak_power_w,
                "source": d.source.as_str(),
                "flags": d.flags.iter().map(|f| f.as_str()).collect::<Vec<_>>(),
                "idle_power_w": d.idle_power_w,
                "energy_above_idle_j": d.energy_above_idle_j,
                "power_integrated_j": d.power_integrated_j,
            })).collect::<Vec<_>>(),
            "warnings": self.warnings,
        })
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

/// A monotonic clock in nanoseconds (the meter's own, or a test's).
pub type Clock = Arc<dyn Fn() -> u64 + Send + Sync>;

/// The meter shared between the host's services and the sampler thread.
pub type SharedMeter = Arc<Mutex<Meter>>;

/// Nanoseconds since `origin`, saturating.
pub fn since(origin: Instant, t: Instant) -> u64 {
    u64::try_from(t.saturating_duration_since(origin).as_nanos()).unwrap_or(u64::MAX)
}

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

/// Parses `backend.device_ids` as configs write it: `0`, `"0, 1, 2"`, `[0, 1]`, or null.
pub fn parse_device_ids(value: Option<&serde_json::Value>) -> Result<Vec<u32>, String> {
    use serde_json::Value;
    let bad = |v: &Value| format!("backend.device_ids = {v}: expected a GPU index, a comma-separated list or a list");
    match value {
        None | Some(Value::Null) => Ok(vec![0]),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|i| u32::try_from(i).ok())
            .map(|i| vec![i])
            .ok_or_else(|| bad(&Value::Number(n.clone()))),
        Some(v @ Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<u32>().map_err(|_| bad(v)))
            .collect(),
        Some(v @ Value::Array(items)) => {
            items.iter().map(|i| i.as_u64().and_then(|i| u32::try_from(i).ok()).ok_or_else(|| bad(v))).collect()
        }
        Some(v) => Err(bad(v)),
    }
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
    use serde_json::json;

    #[test]
    fn device_ids_parse_as_configs_write_them() {
        assert_eq!(parse_device_ids(None), Ok(vec![0]));
        assert_eq!(parse_device_ids(Some(&json!(3))), Ok(vec![3]));
        assert_eq!(parse_device_ids(Some(&json!("0, 1, 2, 3"))), Ok(vec![0, 1, 2, 3]));
        assert_eq!(parse_device_ids(Some(&json!([1, 2]))), Ok(vec![1, 2]));
        assert!(parse_device_ids(Some(&json!("0, x"))).is_err());
        assert!(parse_device_ids(Some(&json!(-1))).is_err());
    }

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
