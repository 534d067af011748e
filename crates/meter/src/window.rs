//! Window arithmetic: from the readings of one device inside a window to its energy, power and
//! flags. Pure functions over recorded points, so replayed traces and NVML take the same path.

use super::{EnergySource, ValidityFlag};

/// Windows shorter than this are flagged (ML.ENERGY measured them unreliable).
pub const MIN_RELIABLE_NS: u64 = 2_000_000_000;
/// NVML's energy counter updates about every 100 ms.
pub const NVML_COUNTER_PERIOD_NS: u64 = 100_000_000;

/// One reading inside a window.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Point {
    pub t_ns: u64,
    /// A cumulative counter in joules: NVML's raw counter (which may reset), or RAPL's and the
    /// estimates' accumulated totals (which never decrease).
    pub counter_j: Option<f64>,
    pub power_w: Option<f64>,
}

/// What a window's figures are.
#[derive(Debug, Clone, PartialEq)]
pub struct WindowEnergy {
    pub energy_j: Option<f64>,
    pub mean_power_w: Option<f64>,
    pub peak_power_w: Option<f64>,
    pub source: EnergySource,
    pub flags: Vec<ValidityFlag>,
    pub notes: Vec<String>,
    /// For counter readings: the same window's energy from integrated power samples, as a
    /// cross-check of the counter (they differ by the power sensor's sampling; see
    /// docs/metering.md).
    pub cross_check_j: Option<f64>,
}

/// How to read a GPU window.
#[derive(Debug, Clone, Copy)]
pub struct GpuWindowSpec {
    pub has_counter: bool,
    pub mig: bool,
    /// The sampler's interval; gaps over 3× it are flagged.
    pub sample_interval_ns: u64,
}

/// Trapezoidal integral of power over consecutive points that have it, J; None with fewer than
/// two such points.
fn integrate(points: &[&Point]) -> Option<f64> {
    let with_power: Vec<(u64, f64)> = points.iter().filter_map(|p| p.power_w.map(|w| (p.t_ns, w))).collect();
    if with_power.len() < 2 {
        return None;
    }
    Some(with_power.windows(2).map(|w| (w[1].0 - w[0].0) as f64 / 1e9 * (w[0].1 + w[1].1) / 2.0).sum())
}

fn common_flags(
    points: &[&Point],
    start_ns: u64,
    end_ns: u64,
    period_ns: u64,
    interval_ns: u64,
    flags: &mut Vec<ValidityFlag>,
) {
    let dur = end_ns.saturating_sub(start_ns);
    if dur < MIN_RELIABLE_NS || dur < period_ns {
        flags.push(ValidityFlag::TooShort);
    }
    if interval_ns > 0 && points.windows(2).any(|w| w[1].t_ns.saturating_sub(w[0].t_ns) > 3 * interval_ns) {
        flags.push(ValidityFlag::GapInSamples);
    }
}

fn finish(
    energy_j: Option<f64>,
    points: &[&Point],
    start_ns: u64,
    end_ns: u64,
    source: EnergySource,
    mut flags: Vec<ValidityFlag>,
    notes: Vec<String>,
) -> WindowEnergy {
    let dur_s = end_ns.saturating_sub(start_ns) as f64 / 1e9;
    flags.sort();
    flags.dedup();
    WindowEnergy {
        energy_j,
        mean_power_w: energy_j.filter(|_| dur_s > 0.0).map(|e| e / dur_s),
        peak_power_w: points
            .iter()
            .filter_map(|p| p.power_w)
            .fold(None, |m: Option<f64>, w| Some(m.map_or(w, |m| m.max(w)))),
        source,
        flags,
        notes,
        cross_check_j: None,
    }
}

/// A GPU window. `points` are the readings from the window's begin to its end, inclusive, in
/// time order (edge readings are taken at begin and end, samples in between).
pub fn gpu_window(points: &[Point], start_ns: u64, end_ns: u64, spec: GpuWindowSpec) -> WindowEnergy {
    let pts: Vec<&Point> = points.iter().filter(|p| p.t_ns >= start_ns && p.t_ns <= end_ns).collect();
    let mut flags = Vec::new();
    let mut notes = Vec::new();
    if spec.mig {
        flags.push(ValidityFlag::MigWholeGpu);
        notes.push("MIG is enabled: NVML's energy is the whole GPU's, not one slice's".into());
    }
    common_flags(
        &pts,
        start_ns,
        end_ns,
        if spec.has_counter { NVML_COUNTER_PERIOD_NS } else { 0 },
        spec.sample_interval_ns,
        &mut flags,
    );
    let drew_power = pts.iter().any(|p| p.power_w.is_some_and(|w| w > 1.0));

    if spec.has_counter {
        let with_counter: Vec<&Point> = pts.iter().copied().filter(|p| p.counter_j.is_some()).collect();
        if with_counter.len() >= 2 {
            let mut energy = 0.0;
            let mut reset = false;
            for w in with_counter.windows(2) {
                let (a, b) = (w[0].counter_j.unwrap_or(0.0), w[1].counter_j.unwrap_or(0.0));
                if b >= a {
                    energy += b - a;
                } else {
                    // The counter went backwards: the driver reloaded. The interval's energy is
                    // unknown from the counter; use its power where both ends have it.
                    reset = true;
                    if let (Some(pa), Some(pb)) = (w[0].power_w, w[1].power_w) {
                        energy += (w[1].t_ns - w[0].t_ns) as f64 / 1e9 * (pa + pb) / 2.0;
                    }
                }
            }
            if reset {
                flags.push(ValidityFlag::CounterReset);
                notes.push("the GPU's energy counter went backwards (driver reload); that interval is counted from power where it was sampled".into());
            }
            if energy == 0.0 && drew_power {
                flags.push(ValidityFlag::ZeroReading);
                return match integrate(&pts) {
                    Some(e) => {
                        notes.push(format!("the energy counter did not advance although the GPU drew power; {e:.3} J from integrated power instead"));
                        finish(Some(e), &pts, start_ns, end_ns, EnergySource::NvmlPowerIntegration, flags, notes)
                    }
                    None => {
                        notes.push("the energy counter did not advance although the GPU drew power, and too few power samples exist to integrate; energy unknown".into());
                        finish(None, &pts, start_ns, end_ns, EnergySource::NvmlEnergyCounter, flags, notes)
                    }
                };
            }
            if energy == 0.0 && start_ns < end_ns && end_ns - start_ns < NVML_COUNTER_PERIOD_NS {
                flags.push(ValidityFlag::ZeroReading);
                notes.push("window shorter than the energy counter's update period; a 0 J reading here means unmeasured, reported as unknown".into());
                return finish(None, &pts, start_ns, end_ns, EnergySource::NvmlEnergyCounter, flags, notes);
            }
            let mut out = finish(Some(energy), &pts, start_ns, end_ns, EnergySource::NvmlEnergyCounter, flags, notes);
            out.cross_check_j = integrate(&pts);
            return out;
        }
        notes.push("energy counter readings missing at the window's edges; falling back to integrated power".into());
        flags.push(ValidityFlag::GapInSamples);
    }
    match integrate(&pts) {
        Some(e) => finish(Some(e), &pts, start_ns, end_ns, EnergySource::NvmlPowerIntegration, flags, notes),
        None => {
            flags.push(ValidityFlag::GapInSamples);
            let one = pts.iter().find_map(|p| p.power_w);
            match one {
                Some(w) if end_ns > start_ns => {
                    notes.push("one power sample in the window; energy is that power × the window's duration".into());
                    let e = w * (end_ns - start_ns) as f64 / 1e9;
                    finish(Some(e), &pts, start_ns, end_ns, EnergySource::NvmlPowerIntegration, flags, notes)
                }
                _ => {
                    notes.push("no power samples in the window; energy unknown".into());
                    finish(None, &pts, start_ns, end_ns, EnergySource::NvmlPowerIntegration, flags, notes)
                }
            }
        }
    }
}

/// A window over a monotonic accumulated counter (RAPL, estimates): the difference of its ends.
pub fn counter_window(
    points: &[Point],
    start_ns: u64,
    end_ns: u64,
    source: EnergySource,
    sample_interval_ns: u64,
) -> WindowEnergy {
    let pts: Vec<&Point> = points.iter().filter(|p| p.t_ns >= start_ns && p.t_ns <= end_ns).collect();
    let mut flags = Vec::new();
    let mut notes = Vec::new();
    common_flags(&pts, start_ns, end_ns, 0, sample_interval_ns, &mut flags);
    let counters: Vec<(u64, f64)> = pts.iter().filter_map(|p| p.counter_j.map(|c| (p.t_ns, c))).collect();
    let energy = match (counters.first(), counters.last()) {
        (Some(a), Some(b)) if counters.len() >= 2 => Some((b.1 - a.1).max(0.0)),
        _ => {
            notes.push("counter readings missing at the window's edges; energy unknown".into());
            flags.push(ValidityFlag::GapInSamples);
            None
        }
    };
    // Power between consecutive readings, for the peak.
    let derived: Vec<Point> = counters
        .windows(2)
        .filter(|w| w[1].0 > w[0].0)
        .map(|w| Point {
            t_ns: w[1].0,
            counter_j: None,
            power_w: Some((w[1].1 - w[0].1) / ((w[1].0 - w[0].0) as f64 / 1e9)),
        })
        .collect();
    let derived_refs: Vec<&Point> = derived.iter().collect();
    let mut out = finish(energy, &derived_refs, start_ns, end_ns, source, flags, notes);
    if derived.is_empty() {
        out.peak_power_w = None;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;
    const SPEC: GpuWindowSpec = GpuWindowSpec { has_counter: true, mig: false, sample_interval_ns: S / 10 };

    fn p(t_s: f64, counter_j: Option<f64>, power_w: Option<f64>) -> Point {
        Point { t_ns: (t_s * 1e9) as u64, counter_j, power_w }
    }

    /// A steady 300 W GPU sampled at 10 Hz for `secs`, counter starting at `c0` J.
    fn steady(secs: f64, c0: f64) -> Vec<Point> {
        (0..=(secs * 10.0) as usize)
            .map(|i| p(i as f64 / 10.0, Some(c0 + 300.0 * i as f64 / 10.0), Some(300.0)))
            .collect()
    }

    #[test]
    fn counter_window_is_the_counter_difference() {
        let pts = steady(10.0, 1.0e6);
        let w = gpu_window(&pts, 0, 10 * S, SPEC);
        assert!((w.energy_j.expect("energy") - 3000.0).abs() < 1e-6);
        assert_eq!(w.source, EnergySource::NvmlEnergyCounter);
        assert!((w.mean_power_w.expect("mean") - 300.0).abs() < 1e-6);
        assert_eq!(w.peak_power_w, Some(300.0));
        assert!(w.flags.is_empty(), "{:?}", w.flags);
        assert!((w.cross_check_j.expect("cross-check") - 3000.0).abs() < 1e-6);
        // A window inside the trace: only its own readings count.
        let w = gpu_window(&pts, 2 * S, 5 * S, SPEC);
        assert!((w.energy_j.expect("energy") - 900.0).abs() < 1e-6);
    }

    #[test]
    fn short_windows_are_flagged() {
        let pts = steady(1.0, 0.0);
        let w = gpu_window(&pts, 0, S, SPEC);
        assert!(w.flags.contains(&ValidityFlag::TooShort));
        assert!((w.energy_j.expect("energy") - 300.0).abs() < 1e-6);
    }

    #[test]
    fn a_counter_reset_is_reported_not_turned_into_negative_energy() {
        let mut pts = steady(10.0, 5.0e6);
        // Driver reload at t=5.05 s: the counter restarts near zero.
        for q in pts.iter_mut().filter(|q| q.t_ns > 5 * S) {
            q.counter_j = Some(q.counter_j.expect("c") - 5.0e6 - 1500.0);
        }
        let w = gpu_window(&pts, 0, 10 * S, SPEC);
        assert!(w.flags.contains(&ValidityFlag::CounterReset));
        let e = w.energy_j.expect("energy");
        assert!(e > 0.0, "negative energy {e}");
        // 9.9 s of counter deltas plus the reset interval from power: 3000 J in all.
        assert!((e - 3000.0).abs() < 1e-6, "{e}");
    }

    #[test]
    fn a_stalled_counter_is_flagged_and_power_used_instead() {
        let pts: Vec<Point> = (0..=50).map(|i| p(i as f64 / 10.0, Some(42.0), Some(200.0))).collect();
        let w = gpu_window(&pts, 0, 5 * S, SPEC);
        assert!(w.flags.contains(&ValidityFlag::ZeroReading));
        assert_eq!(w.source, EnergySource::NvmlPowerIntegration);
        assert!((w.energy_j.expect("energy") - 1000.0).abs() < 1e-6);
        // Stalled with no power samples: unknown, not zero.
        let pts: Vec<Point> = vec![p(0.0, Some(42.0), Some(200.0)), p(5.0, Some(42.0), None)];
        let w = gpu_window(&pts, 0, 5 * S, SPEC);
        assert!(w.flags.contains(&ValidityFlag::ZeroReading));
        assert_eq!(w.energy_j, None);
    }

    #[test]
    fn an_idle_gpu_reading_zero_over_a_window_shorter_than_the_update_period_is_unknown() {
        let pts = vec![p(0.0, Some(10.0), Some(0.5)), p(0.05, Some(10.0), Some(0.5))];
        let w = gpu_window(&pts, 0, S / 20, SPEC);
        assert_eq!(w.energy_j, None);
        assert!(w.flags.contains(&ValidityFlag::ZeroReading) && w.flags.contains(&ValidityFlag::TooShort));
    }

    #[test]
    fn without_a_counter_power_is_integrated_and_gaps_flagged() {
        let spec = GpuWindowSpec { has_counter: false, ..SPEC };
        let pts: Vec<Point> = (0..=30).map(|i| p(i as f64 / 10.0, None, Some(100.0 + i as f64))).collect();
        let w = gpu_window(&pts, 0, 3 * S, spec);
        assert_eq!(w.source, EnergySource::NvmlPowerIntegration);
        assert!((w.energy_j.expect("energy") - 345.0).abs() < 1e-6); // mean 115 W × 3 s
        assert_eq!(w.peak_power_w, Some(130.0));
        // A 1 s hole in the samples is flagged.
        let holed: Vec<Point> = pts.iter().copied().filter(|q| q.t_ns < S || q.t_ns > 2 * S).collect();
        assert!(gpu_window(&holed, 0, 3 * S, spec).flags.contains(&ValidityFlag::GapInSamples));
        // No samples at all: unknown.
        let w = gpu_window(&[], 0, 3 * S, spec);
        assert_eq!(w.energy_j, None);
    }

    #[test]
    fn mig_is_flagged() {
        let w = gpu_window(&steady(3.0, 0.0), 0, 3 * S, GpuWindowSpec { mig: true, ..SPEC });
        assert!(w.flags.contains(&ValidityFlag::MigWholeGpu));
    }

    #[test]
    fn accumulated_counters_give_energy_and_peak() {
        let pts: Vec<Point> = (0..=20)
            .map(|i| {
                p(i as f64 / 10.0, Some(if i < 10 { i as f64 * 5.0 } else { 50.0 + (i - 10) as f64 * 10.0 }), None)
            })
            .collect();
        let w = counter_window(&pts, 0, 2 * S, EnergySource::Rapl, S / 10);
        assert!((w.energy_j.expect("energy") - 150.0).abs() < 1e-9);
        assert!((w.peak_power_w.expect("peak") - 100.0).abs() < 1e-9);
        assert_eq!(w.source, EnergySource::Rapl);
        let w = counter_window(&pts[..1], 0, 2 * S, EnergySource::Rapl, S / 10);
        assert_eq!(w.energy_j, None);
    }
}
