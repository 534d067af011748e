//! Repeated measures of a run's phases, from the host's own records: each iteration's energy,
//! read back from the meter's windows the backend named in its facts, with what flags it, and
//! the statistics over them (mean as upstream computes it, standard deviation, a 95 % Student's
//! t interval, and the same over the unflagged measures, labelled).
//!
//! A phase `mean-of-windows` has one measure per window; a phase `difference-of-windows` names
//! its windows as two halves, the subtracted ones first (decode: `prefill_0 .. prefill_k-1,
//! generate_0 .. generate_k-1`), one measure per pair. A phase with one measure has no interval.

use energy_star_stats::{Describe, describe};
use energy_star_types::DeviceKind;
use serde::{Deserialize, Serialize};

use crate::records::{EnergyRecord, PhaseDerivation, PhaseFact, RunFacts, WindowRecord};

/// Flags that keep a measure out of the unflagged statistics: the figure is not the phase's
/// energy (a counter that did not move or went backwards, a difference below zero).
pub const EXCLUDING_FLAGS: &[&str] = &["zero-reading", "counter-reset", "negative-derived-value"];

/// One kind of device's repeated measures of a phase, Wh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindRepeats {
    pub kind: DeviceKind,
    /// One per iteration, in order; none where the window had no figure of this kind.
    pub measures_wh: Vec<Option<f64>>,
    /// What flags each measure (the windows' validity flags of this kind's devices, and
    /// `negative-derived-value`, `zero-value`).
    pub flags: Vec<Vec<String>>,
    /// Over every known measure: `mean` is the phase's figure as upstream computes it.
    pub all: Option<Describe>,
    /// Over the measures without an excluding flag ([`EXCLUDING_FLAGS`]).
    pub unflagged: Option<Describe>,
    /// Iterations (from 0) kept out of `unflagged`.
    pub excluded: Vec<usize>,
}

/// A phase measured more than once.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseRepeats {
    pub phase: String,
    pub derivation: PhaseDerivation,
    pub iterations: usize,
    pub kinds: Vec<KindRepeats>,
}

impl PhaseRepeats {
    pub fn kind(&self, kind: DeviceKind) -> Option<&KindRepeats> {
        self.kinds.iter().find(|k| k.kind == kind)
    }
}

/// The run's repeated measures: each phase measured more than once, and the counted phases'
/// total per iteration (a phase measured once counts the same in every iteration).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RepeatsRecord {
    pub phases: Vec<PhaseRepeats>,
    /// Over the counted phases; none when no counted phase repeats or their counts differ.
    pub total: Option<PhaseRepeats>,
}

impl RepeatsRecord {
    pub fn phase(&self, name: &str) -> Option<&PhaseRepeats> {
        self.phases.iter().find(|p| p.phase == name)
    }
}

const KINDS: [DeviceKind; 3] = [DeviceKind::Gpu, DeviceKind::Cpu, DeviceKind::Ram];

/// One iteration's energy of `kind` in a window (J summed over devices of the kind) and the
/// flags of those devices; none when the window has no device of the kind or one is unknown.
fn window_energy(w: &WindowRecord, kind: DeviceKind) -> (Option<f64>, Vec<String>) {
    let devices: Vec<_> = w.devices.iter().filter(|d| d.kind == kind).collect();
    let mut flags: Vec<String> = Vec::new();
    for f in devices.iter().flat_map(|d| d.flags.iter()) {
        let name = f.as_str().to_string();
        if !flags.contains(&name) {
            flags.push(name);
        }
    }
    if devices.is_empty() {
        return (None, flags);
    }
    (devices.iter().map(|d| d.energy_j).sum::<Option<f64>>().map(|j| j / 3600.0), flags)
}

/// Each iteration's (Wh, flags) of `kind` for a phase, from its windows.
fn phase_measures(p: &PhaseFact, meter: &EnergyRecord, kind: DeviceKind) -> Option<Vec<(Option<f64>, Vec<String>)>> {
    let window = |id: &u32| meter.window(*id).map(|w| window_energy(w, kind));
    let measures: Vec<(Option<f64>, Vec<String>)> = match p.derivation {
        PhaseDerivation::MeanOfWindows => p.windows.iter().map(window).collect::<Option<_>>()?,
        PhaseDerivation::DifferenceOfWindows => {
            if p.windows.len() < 2 || !p.windows.len().is_multiple_of(2) {
                return None;
            }
            let (minus, plus) = p.windows.split_at(p.windows.len() / 2);
            minus
                .iter()
                .zip(plus)
                .map(|(a, b)| {
                    let ((ea, mut fa), (eb, fb)) = (window(a)?, window(b)?);
                    for f in fb {
                        if !fa.contains(&f) {
                            fa.push(f);
                        }
                    }
                    let d = eb.zip(ea).map(|(b, a)| b - a);
                    if d.is_some_and(|d| d < 0.0) {
                        fa.push("negative-derived-value".into());
                    }
                    Some((d, fa))
                })
                .collect::<Option<_>>()?
        }
        PhaseDerivation::Measured | PhaseDerivation::Attributed => return None,
    };
    Some(measures)
}

/// Statistics of one kind's measures.
fn kind_repeats(kind: DeviceKind, measures: Vec<(Option<f64>, Vec<String>)>) -> Option<KindRepeats> {
    if measures.iter().all(|(v, _)| v.is_none()) {
        return None;
    }
    let (measures_wh, mut flags): (Vec<Option<f64>>, Vec<Vec<String>>) = measures.into_iter().unzip();
    if kind == DeviceKind::Gpu {
        for (v, f) in measures_wh.iter().zip(flags.iter_mut()) {
            if *v == Some(0.0) && !f.iter().any(|x| x == "zero-reading") {
                f.push("zero-value".into());
            }
        }
    }
    let known: Vec<f64> = measures_wh.iter().flatten().copied().collect();
    let excluded: Vec<usize> = flags
        .iter()
        .enumerate()
        .filter(|(_, f)| f.iter().any(|x| EXCLUDING_FLAGS.contains(&x.as_str()) || x == "zero-value"))
        .map(|(i, _)| i)
        .collect();
    let kept: Vec<f64> =
        measures_wh.iter().enumerate().filter(|(i, _)| !excluded.contains(i)).filter_map(|(_, v)| *v).collect();
    Some(KindRepeats { kind, all: describe(&known), unflagged: describe(&kept), measures_wh, flags, excluded })
}

/// The repeated measures of `facts`' phases, read from `meter`; `counted` names the phases the
/// summary's total counts.
pub fn repeats(facts: &RunFacts, meter: &EnergyRecord, counted: &[String]) -> RepeatsRecord {
    let mut phases = Vec::new();
    for p in &facts.phases {
        let kinds: Vec<KindRepeats> = KINDS
            .iter()
            .filter_map(|&k| phase_measures(p, meter, k).and_then(|m| kind_repeats(k, m)))
            .filter(|k| k.measures_wh.len() > 1)
            .collect();
        if let Some(n) = kinds.first().map(|k| k.measures_wh.len()) {
            phases.push(PhaseRepeats { phase: p.name.clone(), derivation: p.derivation, iterations: n, kinds });
        }
    }
    let total = total(facts, meter, counted, &phases);
    RepeatsRecord { phases, total }
}

/// The counted phases' sum per iteration; a counted phase measured once adds its one figure to
/// every iteration.
fn total(
    facts: &RunFacts,
    meter: &EnergyRecord,
    counted: &[String],
    repeated: &[PhaseRepeats],
) -> Option<PhaseRepeats> {
    let counted_repeats: Vec<&PhaseRepeats> = repeated.iter().filter(|r| counted.contains(&r.phase)).collect();
    let n = counted_repeats.first()?.iterations;
    if counted_repeats.iter().any(|r| r.iterations != n) {
        return None;
    }
    let mut kinds = Vec::new();
    for kind in KINDS {
        let mut sums: Vec<(Option<f64>, Vec<String>)> = vec![(Some(0.0), Vec::new()); n];
        for name in counted {
            let part: Vec<(Option<f64>, Vec<String>)> = match repeated.iter().find(|r| &r.phase == name) {
                Some(r) => match r.kind(kind) {
                    Some(k) => k.measures_wh.iter().copied().zip(k.flags.iter().cloned()).collect(),
                    None => vec![(None, Vec::new()); n],
                },
                None => {
                    let Some(p) = facts.phase(name) else { continue };
                    let once = p.windows.first().and_then(|id| meter.window(*id)).map(|w| window_energy(w, kind));
                    match once {
                        Some((v, f)) if p.derivation == PhaseDerivation::Measured => vec![(v, f); n],
                        _ => vec![(None, Vec::new()); n],
                    }
                }
            };
            for ((sum, flags), (v, f)) in sums.iter_mut().zip(part) {
                *sum = sum.zip(v).map(|(s, v)| s + v);
                for x in f {
                    if !flags.contains(&x) {
                        flags.push(x);
                    }
                }
            }
        }
        if let Some(k) = kind_repeats(kind, sums) {
            kinds.push(k);
        }
    }
    (!kinds.is_empty()).then(|| PhaseRepeats {
        phase: "total".into(),
        derivation: PhaseDerivation::MeanOfWindows,
        iterations: n,
        kinds,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{DeviceEnergyRecord, GpuUse, SamplerRecord};
    use energy_star_types::{EnergySource, ValidityFlag};

    fn window(id: u32, gpu_wh: f64, flags: Vec<ValidityFlag>) -> WindowRecord {
        let dev = |kind, name: &str, wh: f64, flags: Vec<ValidityFlag>| DeviceEnergyRecord {
            device: name.into(),
            kind,
            name: name.into(),
            energy_j: Some(wh * 3600.0),
            energy_wh: Some(wh),
            mean_power_w: None,
            peak_power_w: None,
            source: EnergySource::NvmlEnergyCounter,
            flags,
            idle_power_w: None,
            energy_above_idle_j: None,
            power_integrated_j: None,
        };
        WindowRecord {
            id,
            name: format!("w{id}"),
            start_s: 0.0,
            end_s: 1.0,
            duration_s: 1.0,
            devices: vec![dev(DeviceKind::Gpu, "gpu0", gpu_wh, flags), dev(DeviceKind::Cpu, "cpu", 1.0, vec![])],
            warnings: vec![],
        }
    }

    fn meter(windows: Vec<WindowRecord>) -> EnergyRecord {
        EnergyRecord {
            devices: vec![],
            notices: vec![],
            sampler: SamplerRecord {
                interval_ms: 100.0,
                cpu_s: 0.0,
                wall_s: 0.0,
                cpu_s_per_hour: None,
                busy_s: 0.0,
                busy_s_per_hour: None,
            },
            idle_baseline: None,
            windows,
            open_windows: vec![],
        }
    }

    fn phase(name: &str, windows: Vec<u32>, derivation: PhaseDerivation) -> PhaseFact {
        PhaseFact { name: name.into(), windows, derivation, definition: None, volume: None, complete: true }
    }

    fn facts(phases: Vec<PhaseFact>) -> RunFacts {
        RunFacts {
            gpus: GpuUse::Gpus(vec![0]),
            phases,
            requests: None,
            tokens: None,
            workload_ns: None,
            mean_e2e_ns: None,
            mean_ttft_ns: None,
            figures: vec![],
            request_gpu_energy_j: vec![],
            incomplete_reasons: vec![],
            warnings: vec![],
        }
    }

    #[test]
    fn phases_are_read_back_per_iteration_with_differences_paired_and_flags_kept() {
        // preprocess once (window 0); prefill ×3 (1, 2, 3); generate ×3 (4, 5, 6) with the
        // third prefill's counter reset; decode = generate − prefill.
        let m = meter(vec![
            window(0, 5.0, vec![]),
            window(1, 1.0, vec![]),
            window(2, 1.2, vec![]),
            window(3, 0.8, vec![ValidityFlag::CounterReset]),
            window(4, 3.0, vec![]),
            window(5, 3.4, vec![]),
            window(6, 0.5, vec![]),
        ]);
        let f = facts(vec![
            phase("preprocess_dataset", vec![0], PhaseDerivation::Measured),
            phase("prefill", vec![1, 2, 3], PhaseDerivation::MeanOfWindows),
            phase("decode", vec![1, 2, 3, 4, 5, 6], PhaseDerivation::DifferenceOfWindows),
        ]);
        let counted = vec!["preprocess_dataset".to_string(), "prefill".to_string(), "decode".to_string()];
        let r = repeats(&f, &m, &counted);
        assert_eq!(r.phases.len(), 2, "a phase measured once has no repeats: {r:?}");
        let prefill = r.phase("prefill").unwrap().kind(DeviceKind::Gpu).unwrap();
        assert_eq!(prefill.measures_wh.len(), 3);
        assert!((prefill.all.unwrap().mean - 1.0).abs() < 1e-12, "upstream's mean over all measures");
        assert_eq!(prefill.excluded, vec![2], "the reset counter's iteration");
        assert!((prefill.unflagged.unwrap().mean - 1.1).abs() < 1e-12);

        let decode = r.phase("decode").unwrap().kind(DeviceKind::Gpu).unwrap();
        let d: Vec<f64> = decode.measures_wh.iter().map(|v| v.unwrap()).collect();
        assert!((d[0] - 2.0).abs() < 1e-12 && (d[1] - 2.2).abs() < 1e-12 && (d[2] + 0.3).abs() < 1e-12, "{d:?}");
        assert!(decode.flags[2].contains(&"negative-derived-value".to_string()), "{:?}", decode.flags);
        assert!(decode.flags[2].contains(&"counter-reset".to_string()), "the subtracted window's flag carries over");
        assert_eq!(decode.excluded, vec![2]);

        // Total per iteration: 5 + prefill_i + decode_i = 5 + generate_i.
        let total = r.total.as_ref().unwrap().kind(DeviceKind::Gpu).unwrap();
        let t: Vec<f64> = total.measures_wh.iter().map(|v| v.unwrap()).collect();
        assert!((t[0] - 8.0).abs() < 1e-12 && (t[1] - 8.4).abs() < 1e-12 && (t[2] - 5.5).abs() < 1e-12, "{t:?}");
        assert_eq!(total.excluded, vec![2]);
        let cpu = r.phase("prefill").unwrap().kind(DeviceKind::Cpu).unwrap();
        assert_eq!(cpu.all.unwrap().sd, Some(0.0));
    }

    #[test]
    fn a_run_without_repeats_has_none() {
        let m = meter(vec![window(0, 1.0, vec![]), window(1, 2.0, vec![])]);
        let f = facts(vec![
            phase("prefill", vec![0], PhaseDerivation::Measured),
            phase("decode", vec![0, 1], PhaseDerivation::DifferenceOfWindows),
        ]);
        let r = repeats(&f, &m, &["prefill".into(), "decode".into()]);
        assert!(r.phases.is_empty() && r.total.is_none(), "{r:?}");
    }
}
