//! The meter: devices, the timeline and the windows.
//!
//! Every reading, whether taken by the sampler thread or at a window's edge, goes into one
//! timeline; a window's figures are computed from the timeline's points between its edges, so
//! overlapping windows share readings and never disturb each other.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::estimate::{self, EstimateConstants};
use super::gpu::{GpuDevice, GpuSource, NvmlGpus};
use super::rapl::{RaplDomain, RaplReader};
use super::window::{self, GpuWindowSpec, Point};
use super::{Clock, DeviceEnergy, DeviceInfo, DeviceKind, EnergySource, IdleBaseline, MeterError, WindowReading};

/// Settings of a meter.
#[derive(Debug, Clone)]
pub struct MeterOptions {
    /// Sampler period (default 100 ms, i.e. 10 Hz).
    pub interval: Duration,
    /// NVML indices of the GPUs to meter; None for every GPU NVML sees.
    pub gpu_indices: Option<Vec<u32>>,
    /// Where RAPL lives (`/sys/class/powercap`); None disables RAPL.
    pub rapl_root: Option<PathBuf>,
    pub estimates: EstimateConstants,
}

impl Default for MeterOptions {
    fn default() -> Self {
        Self {
            interval: Duration::from_millis(100),
            gpu_indices: None,
            rapl_root: Some(PathBuf::from("/sys/class/powercap")),
            estimates: EstimateConstants::default(),
        }
    }
}

/// The CPU or RAM side: RAPL counters, or an estimate accumulated between readings.
enum HostPower {
    Rapl(RaplReader),
    CpuEstimate { tdp_w: f64, last_ticks: Option<(u64, u64)>, last_t_ns: u64, total_j: f64, last_load: f64 },
    RamEstimate { power_w: f64, last_t_ns: u64, total_j: f64 },
}

impl HostPower {
    fn source(&self) -> EnergySource {
        match self {
            HostPower::Rapl(_) => EnergySource::Rapl,
            HostPower::CpuEstimate { .. } => EnergySource::EstimateTdp,
            HostPower::RamEstimate { .. } => EnergySource::EstimateDimm,
        }
    }

    /// The accumulated energy at `t_ns`, J.
    fn read(&mut self, t_ns: u64) -> Result<f64, String> {
        match self {
            HostPower::Rapl(r) => r.read_total_j(),
            HostPower::CpuEstimate { tdp_w, last_ticks, last_t_ns, total_j, last_load } => {
                let ticks = estimate::cpu_ticks()?;
                if let Some((busy0, total0)) = *last_ticks {
                    let dt = t_ns.saturating_sub(*last_t_ns) as f64 / 1e9;
                    let dtotal = ticks.1.saturating_sub(total0);
                    // With no new ticks (two reads within one 10 ms tick), keep the last load.
                    if dtotal > 0 {
                        *last_load = ticks.0.saturating_sub(busy0) as f64 / dtotal as f64;
                    }
                    *total_j += estimate::cpu_power_w(*tdp_w, *last_load) * dt;
                    if dtotal == 0 {
                        // Keep the old tick counts so the next read spans a whole tick.
                        *last_t_ns = t_ns;
                        return Ok(*total_j);
                    }
                }
                *last_ticks = Some(ticks);
                *last_t_ns = t_ns;
                Ok(*total_j)
            }
            HostPower::RamEstimate { power_w, last_t_ns, total_j } => {
                if *last_t_ns > 0 {
                    *total_j += *power_w * t_ns.saturating_sub(*last_t_ns) as f64 / 1e9;
                }
                *last_t_ns = t_ns.max(1);
                Ok(*total_j)
            }
        }
    }
}

/// One row of the timeline.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Sample {
    pub t_ns: u64,
    /// Index into `Meter::devices()`.
    pub device: usize,
    pub counter_j: Option<f64>,
    pub power_w: Option<f64>,
    pub temperature_c: Option<u32>,
    pub utilization_pct: Option<u32>,
    pub sm_clock_mhz: Option<u32>,
    pub memory_used_mib: Option<u64>,
}

/// A closed window, kept for the timeline's window file.
#[derive(Debug, Clone, PartialEq)]
pub struct ClosedWindow {
    pub id: u64,
    pub name: String,
    pub start_ns: u64,
    pub end_ns: u64,
}

struct OpenWindow {
    name: String,
    start_ns: u64,
}

/// The meter. Shared as `Arc<Mutex<Meter>>` between the host's services and the sampler.
pub struct Meter {
    devices: Vec<DeviceInfo>,
    gpus: Option<Box<dyn GpuSource>>,
    gpu_devices: Vec<GpuDevice>,
    cpu: Option<HostPower>,
    ram: Option<HostPower>,
    clock: Clock,
    options: MeterOptions,
    timeline: Vec<Sample>,
    open: BTreeMap<u64, OpenWindow>,
    closed: Vec<ClosedWindow>,
    next_id: u64,
    /// Said once, carried into every window: why a device is unavailable or estimated.
    notices: Vec<String>,
    read_errors: BTreeMap<String, String>,
    idle: Option<IdleBaseline>,
    /// CPU time the sampler thread has used, seconds.
    pub sampler_cpu_s: f64,
    pub sampler_wall_s: f64,
    /// Wall time spent inside the sampler's readings, seconds: a finer measure of its cost
    /// than the thread's CPU time, which the kernel counts in 10 ms ticks.
    pub sampler_busy_s: f64,
}

/// The default clock: nanoseconds since the meter was made.
pub fn monotonic_clock() -> Clock {
    let origin = Instant::now();
    Arc::new(move || super::since(origin, Instant::now()))
}

impl Meter {
    /// A meter on this machine: NVML for GPUs, RAPL or estimates for CPU and RAM.
    pub fn open(options: MeterOptions) -> Self {
        let gpus: Result<Box<dyn GpuSource>, String> =
            NvmlGpus::open(options.gpu_indices.as_deref()).map(|g| Box::new(g) as Box<dyn GpuSource>);
        Self::with_sources(options, gpus, monotonic_clock())
    }

    /// A meter over given GPU sources and clock (tests replay traces through this).
    pub fn with_sources(options: MeterOptions, gpus: Result<Box<dyn GpuSource>, String>, clock: Clock) -> Self {
        let mut notices = Vec::new();
        let mut devices = Vec::new();
        let (gpus, gpu_devices) = match gpus {
            Ok(g) => {
                let list = g.devices().to_vec();
                for d in &list {
                    let source = if d.has_energy_counter {
                        EnergySource::NvmlEnergyCounter
                    } else {
                        EnergySource::NvmlPowerIntegration
                    };
                    if !d.has_energy_counter {
                        notices.push(format!("GPU {} ({}) has no energy counter; its energy is integrated from power sampled every {} ms", d.index, d.name, options.interval.as_millis()));
                    }
                    if d.mig_enabled {
                        notices.push(format!(
                            "GPU {} is in MIG mode: its energy is the whole GPU's, not one slice's",
                            d.index
                        ));
                    }
                    devices.push(DeviceInfo { kind: DeviceKind::Gpu, index: d.index, name: d.name.clone(), source });
                }
                (Some(g), list)
            }
            Err(why) => {
                notices.push(format!("GPU energy unavailable: {why}"));
                for index in options.gpu_indices.clone().unwrap_or_else(|| vec![0]) {
                    devices.push(DeviceInfo {
                        kind: DeviceKind::Gpu,
                        index,
                        name: "unavailable".into(),
                        source: EnergySource::Unavailable,
                    });
                }
                (None, Vec::new())
            }
        };
        let t0 = clock();
        let (cpu, ram) = host_power(&options, t0, &mut notices);
        devices.push(DeviceInfo {
            kind: DeviceKind::Cpu,
            index: 0,
            name: match &cpu {
                HostPower::Rapl(r) => format!("{} (RAPL {})", estimate::cpu_model(), r.zone_names().join(", ")),
                _ => format!("{} (estimate, TDP {} W)", estimate::cpu_model(), options.estimates.cpu_tdp_w),
            },
            source: cpu.source(),
        });
        devices.push(DeviceInfo {
            kind: DeviceKind::Ram,
            index: 0,
            name: match &ram {
                HostPower::Rapl(_) => "DRAM (RAPL)".into(),
                HostPower::RamEstimate { power_w, .. } => format!("RAM (estimate, {power_w:.1} W)"),
                HostPower::CpuEstimate { .. } => "RAM".into(),
            },
            source: ram.source(),
        });
        let mut meter = Self {
            devices,
            gpus,
            gpu_devices,
            cpu: Some(cpu),
            ram: Some(ram),
            clock,
            options,
            timeline: Vec::new(),
            open: BTreeMap::new(),
            closed: Vec::new(),
            next_id: 1,
            notices,
            read_errors: BTreeMap::new(),
            idle: None,
            sampler_cpu_s: 0.0,
            sampler_wall_s: 0.0,
            sampler_busy_s: 0.0,
        };
        meter.sample();
        meter
    }

    pub fn devices(&self) -> &[DeviceInfo] {
        &self.devices
    }

    /// What the meter said once about its devices (unavailable GPUs, estimates, MIG).
    pub fn notices(&self) -> &[String] {
        &self.notices
    }

    pub fn timeline(&self) -> &[Sample] {
        &self.timeline
    }

    pub fn closed_windows(&self) -> &[ClosedWindow] {
        &self.closed
    }

    pub fn interval(&self) -> Duration {
        self.options.interval
    }

    pub fn now_ns(&self) -> u64 {
        (self.clock)()
    }

    pub fn idle_baseline(&self) -> Option<&IdleBaseline> {
        self.idle.as_ref()
    }

    /// Reads every device now and appends the readings to the timeline.
    pub fn sample(&mut self) {
        let t_ns = (self.clock)();
        // Called every sampler tick: read each device's kind and index in place rather than
        // cloning the device list.
        for i in 0..self.devices.len() {
            let (kind, index) = (self.devices[i].kind, self.devices[i].index);
            let row = match kind {
                DeviceKind::Gpu => {
                    let Some(gpus) = self.gpus.as_mut() else { continue };
                    match gpus.read(index) {
                        Ok(r) => Sample {
                            t_ns,
                            device: i,
                            counter_j: r.energy_mj.map(|mj| mj as f64 / 1000.0),
                            power_w: r.power_mw.map(|mw| f64::from(mw) / 1000.0),
                            temperature_c: r.temperature_c,
                            utilization_pct: r.utilization_pct,
                            sm_clock_mhz: r.sm_clock_mhz,
                            memory_used_mib: r.memory_used_mib,
                        },
                        Err(e) => {
                            self.read_errors.entry(self.devices[i].label()).or_insert(e);
                            continue;
                        }
                    }
                }
                DeviceKind::Cpu | DeviceKind::Ram => {
                    let src = if kind == DeviceKind::Cpu { self.cpu.as_mut() } else { self.ram.as_mut() };
                    let Some(src) = src else { continue };
                    match src.read(t_ns) {
                        Ok(j) => Sample { t_ns, device: i, counter_j: Some(j), ..Default::default() },
                        Err(e) => {
                            self.read_errors.entry(self.devices[i].label()).or_insert(e);
                            continue;
                        }
                    }
                }
            };
            self.timeline.push(row);
        }
    }

    /// Opens a window; its start reading is taken now.
    pub fn begin_window(&mut self, name: &str) -> Result<u64, MeterError> {
        if name.trim().is_empty() {
            return Err(MeterError::EmptyName);
        }
        self.sample();
        let id = self.next_id;
        self.next_id += 1;
        let start_ns = self.timeline.last().map(|s| s.t_ns).unwrap_or_else(|| (self.clock)());
        self.open.insert(id, OpenWindow { name: name.to_string(), start_ns });
        Ok(id)
    }

    /// Closes a window; its end reading is taken now.
    pub fn end_window(&mut self, id: u64) -> Result<WindowReading, MeterError> {
        let w = self.open.remove(&id).ok_or(MeterError::UnknownWindow(id))?;
        self.sample();
        let end_ns = self.timeline.last().map(|s| s.t_ns).unwrap_or_else(|| (self.clock)());
        self.closed.push(ClosedWindow { id, name: w.name.clone(), start_ns: w.start_ns, end_ns });
        Ok(self.reading(id, &w.name, w.start_ns, end_ns))
    }

    /// A window over a past interval, cut from the timeline: for edges known only afterwards
    /// (a steady state found from request times). Kept with the closed windows.
    pub fn reading_between(&mut self, name: &str, start_ns: u64, end_ns: u64) -> Result<WindowReading, MeterError> {
        if name.trim().is_empty() {
            return Err(MeterError::EmptyName);
        }
        if start_ns >= end_ns {
            return Err(MeterError::Failed(format!(
                "window {name}: start {start_ns} ns is not before end {end_ns} ns"
            )));
        }
        self.sample();
        let now = self.timeline.last().map(|s| s.t_ns).unwrap_or_else(|| (self.clock)());
        if end_ns > now {
            return Err(MeterError::Failed(format!(
                "window {name}: its end ({end_ns} ns) is in the future (now {now} ns)"
            )));
        }
        let first = self.timeline.first().map(|s| s.t_ns).unwrap_or(now);
        if start_ns < first {
            return Err(MeterError::Failed(format!(
                "window {name}: its start ({start_ns} ns) is before the meter's first reading ({first} ns)"
            )));
        }
        let id = self.next_id;
        self.next_id += 1;
        self.closed.push(ClosedWindow { id, name: name.to_string(), start_ns, end_ns });
        Ok(self.reading(id, name, start_ns, end_ns))
    }

    /// Names of windows still open (a run that stops early reports them).
    pub fn open_windows(&self) -> Vec<(u64, String)> {
        self.open.iter().map(|(id, w)| (*id, w.name.clone())).collect()
    }

    /// Computes the figures of [start, end] from the timeline.
    fn reading(&self, id: u64, name: &str, start_ns: u64, end_ns: u64) -> WindowReading {
        let mut devices = Vec::new();
        let mut warnings = self.notices.clone();
        let interval_ns = u64::try_from(self.options.interval.as_nanos()).unwrap_or(u64::MAX);
        for (i, dev) in self.devices.iter().enumerate() {
            let points: Vec<Point> = self
                .timeline
                .iter()
                .filter(|s| s.device == i && s.t_ns >= start_ns && s.t_ns <= end_ns)
                .map(|s| Point { t_ns: s.t_ns, counter_j: s.counter_j, power_w: s.power_w })
                .collect();
            let we = match (dev.kind, dev.source) {
                (_, EnergySource::Unavailable) => window::WindowEnergy {
                    energy_j: None,
                    mean_power_w: None,
                    peak_power_w: None,
                    source: EnergySource::Unavailable,
                    flags: Vec::new(),
                    notes: Vec::new(),
                    cross_check_j: None,
                },
                (DeviceKind::Gpu, _) => {
                    let g = self.gpu_devices.iter().find(|g| g.index == dev.index);
                    window::gpu_window(
                        &points,
                        start_ns,
                        end_ns,
                        GpuWindowSpec {
                            has_counter: g.is_some_and(|g| g.has_energy_counter),
                            mig: g.is_some_and(|g| g.mig_enabled),
                            sample_interval_ns: interval_ns,
                        },
                    )
                }
                (_, source) => window::counter_window(&points, start_ns, end_ns, source, interval_ns),
            };
            for n in &we.notes {
                warnings.push(format!("{}: {n}", dev.label()));
            }
            if let Some(e) = self.read_errors.get(&dev.label()) {
                warnings.push(format!("{}: a reading failed: {e}", dev.label()));
            }
            let idle_power_w = self.idle.as_ref().and_then(|b| b.power_w.get(&dev.label()).copied());
            let dur_s = end_ns.saturating_sub(start_ns) as f64 / 1e9;
            devices.push(DeviceEnergy {
                device: dev.clone(),
                energy_j: we.energy_j,
                mean_power_w: we.mean_power_w,
                peak_power_w: we.peak_power_w,
                source: we.source,
                flags: we.flags,
                idle_power_w,
                energy_above_idle_j: we.energy_j.zip(idle_power_w).map(|(e, p)| e - p * dur_s),
                power_integrated_j: we.cross_check_j,
            });
        }
        WindowReading { id, name: name.to_string(), start_ns, end_ns, devices, warnings }
    }

    /// Energy per device since the meter opened, from the first and last counter readings:
    /// for progress lines only (resets are not handled here; windows handle them).
    pub fn energy_so_far_j(&self) -> Vec<(String, EnergySource, Option<f64>)> {
        self.devices
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let mut pts = self.timeline.iter().filter(|s| s.device == i).filter_map(|s| s.counter_j);
                let first = pts.next();
                let last = pts.next_back();
                (d.label(), d.source, first.zip(last).map(|(a, b)| (b - a).max(0.0)))
            })
            .collect()
    }

    /// Records an idle baseline from a window measured while nothing ran.
    pub fn set_idle_baseline(&mut self, idle: &WindowReading) {
        let power_w = idle.devices.iter().filter_map(|d| d.mean_power_w.map(|p| (d.device.label(), p))).collect();
        self.idle = Some(IdleBaseline { duration: Duration::from_nanos(idle.end_ns - idle.start_ns), power_w });
    }
}

fn host_power(options: &MeterOptions, t0: u64, notices: &mut Vec<String>) -> (HostPower, HostPower) {
    let rapl_cpu = options.rapl_root.as_deref().map(|root| RaplReader::open(root, RaplDomain::Package));
    let cpu = match rapl_cpu {
        Some(Ok(r)) => HostPower::Rapl(r),
        other => {
            let why = match other {
                Some(Err(e)) => e,
                _ => "RAPL disabled".into(),
            };
            notices.push(format!(
                "CPU energy is an estimate (CodeCarbon's TDP × load curve, TDP {} W; set metering.cpu_tdp_w), not a measurement: {why}",
                options.estimates.cpu_tdp_w
            ));
            HostPower::CpuEstimate {
                tdp_w: options.estimates.cpu_tdp_w,
                last_ticks: None,
                last_t_ns: t0,
                total_j: 0.0,
                last_load: 0.0,
            }
        }
    };
    let rapl_ram = options.rapl_root.as_deref().map(|root| RaplReader::open(root, RaplDomain::Dram));
    let ram = match rapl_ram {
        Some(Ok(r)) => HostPower::Rapl(r),
        _ => {
            let gib = estimate::total_memory_gib().unwrap_or(0.0);
            let power_w = estimate::ram_power_w(gib, &options.estimates);
            notices.push(format!(
                "RAM energy is an estimate (CodeCarbon 3's DIMM rule: {gib:.0} GiB → {} DIMMs → {power_w:.1} W; set metering.ram_power_w), not a measurement",
                estimate::dimm_count(gib)
            ));
            HostPower::RamEstimate { power_w, last_t_ns: t0.max(1), total_j: 0.0 }
        }
    };
    (cpu, ram)
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::ValidityFlag;
    use crate::gpu::{GpuReading, ReplayGpus};

    const S: u64 = 1_000_000_000;

    fn clock() -> (Arc<AtomicU64>, Clock) {
        let t = Arc::new(AtomicU64::new(0));
        let c = t.clone();
        (t, Arc::new(move || c.load(Ordering::SeqCst)))
    }

    fn options() -> MeterOptions {
        MeterOptions { rapl_root: None, ..Default::default() }
    }

    /// A trace file as `energy-star measure --replay` reads it: two GPUs, the second of which
    /// has its driver reloaded at 3.05 s and stalls from 6 s.
    const TRACE: &str = "t_s,gpu,energy_mj,power_w
0.0,0,1000000,300
0.0,1,5000000,200
";

    fn trace_meter() -> (Arc<AtomicU64>, Meter) {
        let mut text = String::from(TRACE);
        for i in 1..=100 {
            let t = i as f64 / 10.0;
            text.push_str(&format!("{t},0,{},300\n", 1_000_000 + 300 * i * 100));
            let gpu1 = if t <= 3.0 {
                5_000_000 + 200 * i * 100
            } else if t <= 6.0 {
                200 * (i - 30) * 100
            } else {
                200 * 30 * 100
            };
            text.push_str(&format!("{t},1,{gpu1},200\n"));
        }
        let (devices, traces) = ReplayGpus::parse_csv(&text).expect("trace");
        let (t, c) = clock();
        let gpus = ReplayGpus::new(devices, traces, c.clone());
        (t, Meter::with_sources(options(), Ok(Box::new(gpus)), c))
    }

    fn advance(t: &AtomicU64, meter: &mut Meter, to_s: f64) {
        // The sampler's 10 Hz readings, replayed.
        let mut now = t.load(Ordering::SeqCst);
        let end = (to_s * 1e9) as u64;
        while now < end {
            now = (now + S / 10).min(end);
            t.store(now, Ordering::SeqCst);
            meter.sample();
        }
    }

    #[test]
    fn overlapping_windows_over_a_replayed_trace() {
        let (t, mut m) = trace_meter();
        let whole = m.begin_window("whole").expect("begin");
        advance(&t, &mut m, 2.0);
        let inner = m.begin_window("inner").expect("begin");
        advance(&t, &mut m, 5.0);
        let r_inner = m.end_window(inner).expect("end");
        advance(&t, &mut m, 8.0);
        let r_whole = m.end_window(whole).expect("end");
        let gpu0 = |r: &WindowReading| r.devices.iter().find(|d| d.device.label() == "gpu0").cloned().expect("gpu0");
        let gpu1 = |r: &WindowReading| r.devices.iter().find(|d| d.device.label() == "gpu1").cloned().expect("gpu1");
        assert!((gpu0(&r_inner).energy_j.expect("e") - 900.0).abs() < 1e-6);
        assert!((gpu0(&r_whole).energy_j.expect("e") - 2400.0).abs() < 1e-6);
        assert_eq!(gpu0(&r_whole).source, EnergySource::NvmlEnergyCounter);
        // GPU 1: reset detected (never negative), then stalled while drawing power.
        let g1 = gpu1(&r_whole);
        assert!(g1.flags.contains(&ValidityFlag::CounterReset), "{:?}", g1.flags);
        assert!(g1.energy_j.expect("e") > 0.0);
        assert!(r_whole.warnings.iter().any(|w| w.contains("gpu1") && w.contains("backwards")));
        advance(&t, &mut m, 9.0);
        let stalled = m.begin_window("stalled").expect("begin");
        advance(&t, &mut m, 11.0);
        let r = m.end_window(stalled).expect("end");
        let g1 = gpu1(&r);
        assert!(g1.flags.contains(&ValidityFlag::ZeroReading), "{:?}", g1.flags);
        assert_eq!(g1.source, EnergySource::NvmlPowerIntegration);
        assert!((g1.energy_j.expect("e") - 400.0).abs() < 1e-6);
        assert_eq!(m.closed_windows().len(), 3);
        assert!(matches!(m.end_window(stalled), Err(MeterError::UnknownWindow(_))));
    }

    #[test]
    fn missing_gpus_are_unavailable_and_the_run_goes_on() {
        let (t, c) = clock();
        let mut m = Meter::with_sources(
            MeterOptions { gpu_indices: Some(vec![0, 1]), ..options() },
            Err("NVML could not be loaded (libnvidia-ml.so.1 not found)".into()),
            c,
        );
        assert_eq!(m.notices().iter().filter(|n| n.contains("GPU energy unavailable")).count(), 1);
        let w = m.begin_window("run").expect("begin");
        advance(&t, &mut m, 3.0);
        let r = m.end_window(w).expect("end");
        let gpus: Vec<_> = r.device(DeviceKind::Gpu).collect();
        assert_eq!(gpus.len(), 2);
        assert!(gpus.iter().all(|g| g.energy_j.is_none() && g.source == EnergySource::Unavailable));
        assert_eq!(r.gpu_energy_j(), None);
        // CPU and RAM are estimated, and say so.
        let cpu = r.device(DeviceKind::Cpu).next().expect("cpu");
        assert_eq!(cpu.source, EnergySource::EstimateTdp);
        assert!(cpu.energy_j.is_some());
        let ram = r.device(DeviceKind::Ram).next().expect("ram");
        assert_eq!(ram.source, EnergySource::EstimateDimm);
        let expected =
            estimate::ram_power_w(estimate::total_memory_gib().expect("meminfo"), &EstimateConstants::default()) * 3.0;
        assert!((ram.energy_j.expect("ram") - expected).abs() < 1e-6);
        assert!(r.warnings.iter().any(|w| w.contains("not a measurement")));
    }

    #[test]
    fn a_gpu_whose_reads_fail_mid_run_is_reported() {
        let (t, c) = clock();
        let devices = vec![GpuDevice { index: 0, name: "flaky".into(), has_energy_counter: true, mig_enabled: false }];
        let mut trace = vec![(0, Ok(GpuReading { energy_mj: Some(0), power_mw: Some(100_000), ..Default::default() }))];
        trace.push((S, Err("GPU is lost".to_string())));
        trace.push((4 * S, Ok(GpuReading { energy_mj: Some(400_000), power_mw: Some(100_000), ..Default::default() })));
        let gpus = ReplayGpus::new(devices, vec![trace], c.clone());
        let mut m = Meter::with_sources(options(), Ok(Box::new(gpus)), c);
        let w = m.begin_window("run").expect("begin");
        advance(&t, &mut m, 5.0);
        let r = m.end_window(w).expect("end");
        let g = r.device(DeviceKind::Gpu).next().expect("gpu");
        assert!(g.flags.contains(&ValidityFlag::GapInSamples), "{:?}", g.flags);
        assert!((g.energy_j.expect("e") - 400.0).abs() < 1e-6);
        assert!(r.warnings.iter().any(|w| w.contains("GPU is lost")));
    }

    #[test]
    fn idle_baseline_is_reported_beside_gross_figures() {
        let (t, mut m) = trace_meter();
        let idle = m.begin_window("idle").expect("begin");
        advance(&t, &mut m, 2.0);
        let r = m.end_window(idle).expect("end");
        m.set_idle_baseline(&r);
        let w = m.begin_window("run").expect("begin");
        advance(&t, &mut m, 3.0);
        let r = m.end_window(w).expect("end");
        let g = r.devices.iter().find(|d| d.device.label() == "gpu0").expect("gpu0");
        assert_eq!(g.idle_power_w.map(|p| p.round()), Some(300.0));
        assert!((g.energy_j.expect("gross") - 300.0).abs() < 1e-6, "gross figure untouched");
        assert!(g.energy_above_idle_j.expect("net").abs() < 1e-6);
    }
}
