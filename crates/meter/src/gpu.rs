//! GPU readings behind one small trait, so the sampler and the window arithmetic run the same
//! code on NVML and on a replayed trace.
//!
//! NVML is loaded at run time (nvml-wrapper opens `libnvidia-ml.so.1` with libloading), so every
//! build compiles and runs without a driver; opening fails with a message instead.

use nvml_wrapper::Nvml;

use super::Clock;
use nvml_wrapper::enum_wrappers::device::{Clock as NvmlClock, TemperatureSensor};
use nvml_wrapper::struct_wrappers::device::FieldValueSample;
use nvml_wrapper::structs::device::FieldId;

/// One reading of one GPU. Every field is optional: a GPU answers what it supports.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct GpuReading {
    /// NVML's total-energy counter, mJ since the driver was loaded.
    pub energy_mj: Option<u64>,
    /// Power in mW: the instantaneous field where the GPU has it (on Ampere and newer
    /// `nvmlDeviceGetPowerUsage` is a 1 s average), else the power usage call.
    pub power_mw: Option<u32>,
    pub temperature_c: Option<u32>,
    pub utilization_pct: Option<u32>,
    pub sm_clock_mhz: Option<u32>,
    pub memory_used_mib: Option<u64>,
}

/// A GPU being metered.
#[derive(Debug, Clone, PartialEq)]
pub struct GpuDevice {
    /// NVML index.
    pub index: u32,
    pub name: String,
    /// Whether the total-energy counter works (Volta and newer, not on all vGPUs).
    pub has_energy_counter: bool,
    pub mig_enabled: bool,
}

/// A source of GPU readings.
pub trait GpuSource: Send {
    fn devices(&self) -> &[GpuDevice];
    /// Reads GPU `index` (an NVML index from `devices()`) now.
    fn read(&mut self, index: u32) -> Result<GpuReading, String>;
}

/// NVML field id of instantaneous power (mW), `NVML_FI_DEV_POWER_INSTANT`.
const FIELD_POWER_INSTANT: u32 = 186;

/// GPUs read through NVML.
pub struct NvmlGpus {
    nvml: Nvml,
    devices: Vec<GpuDevice>,
    /// Whether the instantaneous-power field works, per device (probed once).
    instant_power: Vec<bool>,
}

impl NvmlGpus {
    /// Opens NVML and the GPUs with these NVML indices (all GPUs when `indices` is None).
    pub fn open(indices: Option<&[u32]>) -> Result<Self, String> {
        let nvml = energy_star_machine::init_nvml()?;
        let count = nvml.device_count().map_err(|e| format!("NVML could not count GPUs: {e}"))?;
        if count == 0 {
            return Err("NVML found no GPU".into());
        }
        let mut wanted: Vec<u32> = match indices {
            Some(list) => list.to_vec(),
            None => (0..count).collect(),
        };
        // A GPU named twice is metered once, never counted twice.
        let mut seen = Vec::new();
        wanted.retain(|i| {
            if seen.contains(i) {
                false
            } else {
                seen.push(*i);
                true
            }
        });
        let mut devices = Vec::new();
        let mut instant_power = Vec::new();
        for index in wanted {
            if index >= count {
                return Err(format!("GPU {index} does not exist: NVML sees {count} GPU(s) (0..{})", count - 1));
            }
            let d = nvml.device_by_index(index).map_err(|e| format!("GPU {index}: {e}"))?;
            let name = d.name().unwrap_or_else(|_| "unknown NVIDIA GPU".into());
            let has_energy_counter = d.total_energy_consumption().is_ok();
            let mig_enabled = d.mig_mode().map(|m| m.current == 1).unwrap_or(false);
            let instant = matches!(
                d.field_values_for(&[FieldId(FIELD_POWER_INSTANT)]).ok().and_then(|v| v.into_iter().next()),
                Some(Ok(FieldValueSample { value: Ok(_), .. }))
            );
            devices.push(GpuDevice { index, name, has_energy_counter, mig_enabled });
            instant_power.push(instant);
        }
        Ok(Self { nvml, devices, instant_power })
    }

    /// NVML index of the GPU with this UUID (for CUDA_VISIBLE_DEVICES=GPU-...).
    pub fn index_of_uuid(uuid: &str) -> Option<u32> {
        let nvml = Nvml::init().ok()?;
        let d = nvml.device_by_uuid(uuid).ok()?;
        d.index().ok()
    }
}

fn sample_u32(s: &FieldValueSample) -> Option<u32> {
    use nvml_wrapper::enums::device::SampleValue;
    match s.value.as_ref().ok()? {
        SampleValue::U32(v) => Some(*v),
        SampleValue::U64(v) => u32::try_from(*v).ok(),
        SampleValue::I64(v) => u32::try_from(*v).ok(),
        SampleValue::F64(v) => Some(*v as u32),
    }
}

impl GpuSource for NvmlGpus {
    fn devices(&self) -> &[GpuDevice] {
        &self.devices
    }

    fn read(&mut self, index: u32) -> Result<GpuReading, String> {
        let pos =
            self.devices.iter().position(|d| d.index == index).ok_or_else(|| format!("GPU {index} is not metered"))?;
        let d = self.nvml.device_by_index(index).map_err(|e| format!("GPU {index}: {e}"))?;
        let power_mw = if self.instant_power[pos] {
            d.field_values_for(&[FieldId(FIELD_POWER_INSTANT)])
                .ok()
                .and_then(|v| v.into_iter().next())
                .and_then(|s| s.ok())
                .and_then(|s| sample_u32(&s))
        } else {
            None
        }
        .or_else(|| d.power_usage().ok());
        Ok(GpuReading {
            energy_mj: if self.devices[pos].has_energy_counter { d.total_energy_consumption().ok() } else { None },
            power_mw,
            temperature_c: d.temperature(TemperatureSensor::Gpu).ok(),
            utilization_pct: d.utilization_rates().ok().map(|u| u.gpu),
            sm_clock_mhz: d.clock_info(NvmlClock::SM).ok(),
            memory_used_mib: d.memory_info().ok().map(|m| m.used >> 20),
        })
    }
}

/// One GPU's recorded readings: (t_ns, reading or the error the read gave), in time order.
pub type Trace = Vec<(u64, Result<GpuReading, String>)>;

/// A recorded series of GPU readings played back against the meter's clock: the reading in
/// effect at time t is the last one recorded at or before t. Used by tests (counter resets,
/// stalls, missing devices) and by `energy-star measure --replay` to check a recorded trace.
pub struct ReplayGpus {
    devices: Vec<GpuDevice>,
    /// Per device: (t_ns, reading), sorted by time; `Err` entries simulate failed reads.
    traces: Vec<Trace>,
    clock: Clock,
}

impl ReplayGpus {
    pub fn new(devices: Vec<GpuDevice>, traces: Vec<Trace>, clock: Clock) -> Self {
        Self { devices, traces, clock }
    }

    /// Parses a trace CSV: `t_s,gpu,energy_mj,power_w` (empty cells for missing values;
    /// `error` in energy_mj for a failed read).
    pub fn parse_csv(text: &str) -> Result<(Vec<GpuDevice>, Vec<Trace>), String> {
        let mut per_gpu: std::collections::BTreeMap<u32, Trace> = Default::default();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') || (n == 0 && line.starts_with("t_s")) {
                continue;
            }
            let cols: Vec<&str> = line.split(',').map(str::trim).collect();
            if cols.len() != 4 {
                return Err(format!(
                    "trace line {}: expected 4 columns t_s,gpu,energy_mj,power_w, found {}",
                    n + 1,
                    cols.len()
                ));
            }
            let err = |what: &str| format!("trace line {}: {what} is not a number: {line}", n + 1);
            let t_s: f64 = cols[0].parse().map_err(|_| err("t_s"))?;
            let gpu: u32 = cols[1].parse().map_err(|_| err("gpu"))?;
            let reading = if cols[2] == "error" {
                Err("replayed read failure".to_string())
            } else {
                Ok(GpuReading {
                    energy_mj: if cols[2].is_empty() {
                        None
                    } else {
                        Some(cols[2].parse().map_err(|_| err("energy_mj"))?)
                    },
                    power_mw: if cols[3].is_empty() {
                        None
                    } else {
                        Some((cols[3].parse::<f64>().map_err(|_| err("power_w"))? * 1000.0) as u32)
                    },
                    ..Default::default()
                })
            };
            per_gpu.entry(gpu).or_default().push(((t_s * 1e9) as u64, reading));
        }
        let devices = per_gpu
            .iter()
            .map(|(&index, trace)| GpuDevice {
                index,
                name: "replayed GPU".into(),
                has_energy_counter: trace.iter().any(|(_, r)| matches!(r, Ok(GpuReading { energy_mj: Some(_), .. }))),
                mig_enabled: false,
            })
            .collect();
        Ok((devices, per_gpu.into_values().collect()))
    }
}

impl GpuSource for ReplayGpus {
    fn devices(&self) -> &[GpuDevice] {
        &self.devices
    }

    fn read(&mut self, index: u32) -> Result<GpuReading, String> {
        let pos =
            self.devices.iter().position(|d| d.index == index).ok_or_else(|| format!("GPU {index} is not metered"))?;
        let now = (self.clock)();
        let trace = &self.traces[pos];
        match trace.iter().rev().find(|(t, _)| *t <= now) {
            Some((_, r)) => r.clone(),
            None => Err(format!("replayed GPU {index} has no reading before t={now} ns")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn without_a_driver_opening_nvml_says_so() {
        // On machines with a GPU this opens it instead; both are fine, a panic is not.
        match NvmlGpus::open(None) {
            Ok(g) => assert!(!g.devices().is_empty()),
            Err(e) => assert!(e.contains("NVML") || e.contains("driver"), "{e}"),
        }
    }

    #[test]
    #[ignore = "needs an NVIDIA GPU and driver (run by scripts/gpu-check.sh)"]
    fn nvml_reads_a_real_gpu() {
        let mut g = NvmlGpus::open(None).expect("NVML");
        let devices = g.devices().to_vec();
        for d in &devices {
            let r1 = g.read(d.index).expect("read");
            std::thread::sleep(std::time::Duration::from_millis(500));
            let r2 = g.read(d.index).expect("read");
            println!(
                "gpu {} {}: counter {:?} -> {:?} mJ, power {:?} mW, {:?} C, util {:?} %, SM {:?} MHz, mem {:?} MiB, MIG {}",
                d.index,
                d.name,
                r1.energy_mj,
                r2.energy_mj,
                r2.power_mw,
                r2.temperature_c,
                r2.utilization_pct,
                r2.sm_clock_mhz,
                r2.memory_used_mib,
                d.mig_enabled
            );
            assert!(r2.power_mw.is_some(), "no power reading");
            if d.has_energy_counter {
                assert!(r2.energy_mj >= r1.energy_mj, "counter went backwards");
            }
        }
    }
}
