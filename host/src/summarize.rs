//! `energy-star summarize`: find a report, let every summarizer plugin say how sure it is of the
//! format, summarize with the most confident, and write `GPU_ENERGY_WH.txt` and
//! `GPU_ENERGY_SUMMARY.json` next to the report, atomically.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{Map, Value, json};
use thiserror::Error;

use std::process::ExitCode;

use energy_star_plugin_host::{LeaderboardPhase, Plugin, PluginError, PluginKind, PluginRuntime, PluginSet, Summary};
use energy_star_results::records::{
    self, ENERGY_RECORD, EmissionsRecord, EnergyRecord, RUN_RECORD, RUN_STATUS, RunRecord, RunState, RunStatus,
    SUMMARY, SUMMARY_WH, SummaryDetails, SummaryPhase, SummaryRecord,
};
use energy_star_results::repeats::RepeatsRecord;
use energy_star_results::{ResultsError, write_atomic};
use energy_star_types::DeviceKind;

use crate::cli::{PluginOptions, SummarizeArgs};

/// `energy-star summarize`.
pub fn command(opts: &PluginOptions, args: SummarizeArgs) -> anyhow::Result<ExitCode> {
    let (rt, set) = crate::plugins::load(opts)?;
    let done = summarize(&rt, &set, &crate::results_target(args.target))?;
    out!("{}", banner(&done))?;
    Ok(ExitCode::SUCCESS)
}

/// Report file names looked for, in order of preference.
pub const REPORT_NAMES: &[&str] = &["benchmark_report.json", "benchmark.json"];

/// A summarizer must be at least this sure to be used.
pub const MIN_CONFIDENCE: f32 = 0.5;

#[derive(Debug, Error)]
pub enum SummaryError {
    #[error("no benchmark_report.json (or benchmark.json) in {dir} or below; is this a results folder?")]
    NoReport { dir: PathBuf },
    #[error("{path} does not exist")]
    Missing { path: PathBuf },
    #[error("cannot read report {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("report {path} is not valid JSON ({why}); was the run interrupted while writing it?")]
    Json { path: PathBuf, why: String },
    #[error(
        "report {path} is in no format the installed summarizers read ({formats}); add a summarizer plugin for it (see docs/plugins.md){broken}"
    )]
    UnknownFormat { path: PathBuf, formats: String, broken: String },
    #[error("summarizing {path}: {source}")]
    Plugin { path: PathBuf, source: PluginError },
    #[error(
        "report {path} has no GPU energy figure, and nothing says the run used no GPU (no run record of energy-star's beside it, and the report does not say): a GPU reading that failed?"
    )]
    NoGpuFigure { path: PathBuf },
    #[error(transparent)]
    Write(#[from] ResultsError),
}

/// What the host's own records beside a report say about its run, when energy-star ran it.
#[derive(Debug, Default)]
pub struct RunContext {
    pub record: Option<RunRecord>,
    pub status: Option<RunStatus>,
    pub meter: Option<EnergyRecord>,
}

impl RunContext {
    pub fn read(dir: &Path) -> Result<Self, SummaryError> {
        Ok(Self {
            record: records::read_record(&dir.join(RUN_RECORD))?,
            status: records::read_record(&dir.join(RUN_STATUS))?,
            // Only the repeats' statistics come from it: an unreadable one leaves them out
            // rather than the summary.
            meter: records::read_record(&dir.join(ENERGY_RECORD)).ok().flatten(),
        })
    }

    /// The repeated measures of the run's phases, from its facts and the meter's windows.
    fn repeats(&self, counted: &[String]) -> Option<RepeatsRecord> {
        let facts = self.record.as_ref()?.facts.as_ref()?;
        let r = energy_star_results::repeats::repeats(facts, self.meter.as_ref()?, counted);
        (!r.phases.is_empty()).then_some(r)
    }

    /// Why no GPU took part, as the run's facts (or plan) say.
    fn gpu_absent_reason(&self) -> Option<String> {
        let r = self.record.as_ref()?;
        let gpus = r.facts.as_ref().map(|f| &f.gpus).unwrap_or(&r.plan.gpus);
        gpus.absent_reason().map(str::to_string)
    }

    /// Why the run is incomplete, when its status says it is.
    fn incomplete(&self) -> Option<Vec<String>> {
        let s = self.status.as_ref()?;
        if s.state == RunState::Complete {
            return None;
        }
        let mut why = s.incomplete_reasons.clone();
        why.extend(s.problems.iter().cloned());
        if let Some(e) = &s.error {
            why.push(e.clone());
        }
        if why.is_empty() {
            why.push(format!("the run is marked {}", s.state.as_str()));
        }
        Some(why)
    }
}

/// Finds the report: `target` itself if it is a file, else a report directly in `target`, else
/// the newest one anywhere below it, never inside a set-aside earlier run (`previous-runs/`):
/// those are read only when `target` points into one.
pub fn find_report(target: &Path) -> Result<PathBuf, SummaryError> {
    if target.is_file() {
        return Ok(target.to_path_buf());
    }
    if !target.exists() {
        return Err(SummaryError::Missing { path: target.to_path_buf() });
    }
    for name in REPORT_NAMES {
        let p = target.join(name);
        if p.is_file() {
            return Ok(p);
        }
    }
    for name in REPORT_NAMES {
        let mut newest: Option<(SystemTime, PathBuf)> = None;
        walk(target, name, &mut newest, 0);
        if let Some((_, p)) = newest {
            return Ok(p);
        }
    }
    Err(SummaryError::NoReport { dir: target.to_path_buf() })
}

/// A `benchmark_report.json` of a folder energy-star did not write, with optimum-benchmark's
/// `benchmark.json` beside it: that file instead, the same report with the run's config, which
/// says whether the run used a GPU (a CPU run's 0.0 is then no GPU, not a failed reading). In
/// energy-star's own folders the host's records say it, and the report is read as found.
fn with_its_config(report: PathBuf) -> PathBuf {
    let Some(dir) = report.parent() else { return report };
    let wrapper = dir.join("benchmark.json");
    let foreign = !dir.join(RUN_STATUS).exists() && !dir.join(RUN_RECORD).exists();
    if foreign && report.file_name().is_some_and(|n| n == "benchmark_report.json") && wrapper.is_file() {
        wrapper
    } else {
        report
    }
}

fn walk(dir: &Path, name: &str, newest: &mut Option<(SystemTime, PathBuf)>, depth: usize) {
    if depth > 32 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            let set_aside = e.file_name() == energy_star_results::PREVIOUS_RUNS
                || e.file_name() == energy_star_results::LEGACY_PREVIOUS_RUN;
            if !set_aside {
                walk(&p, name, newest, depth + 1);
            }
        } else if ft.is_file() && p.file_name().is_some_and(|n| n == name) {
            let t = e.metadata().and_then(|m| m.modified()).unwrap_or(SystemTime::UNIX_EPOCH);
            if newest.as_ref().is_none_or(|(nt, np)| t > *nt || (t == *nt && p > *np)) {
                *newest = Some((t, p));
            }
        }
    }
}

/// The outcome of summarizing one report.
#[derive(Debug)]
pub struct Summarized {
    pub report: PathBuf,
    pub summarizer: String,
    pub summary: Summary,
    /// The rounded total as written to `GPU_ENERGY_WH.txt`; none for a run without a GPU or an
    /// incomplete run.
    pub total_wh_rounded: Option<f64>,
    /// Why the run is incomplete, when it is: its figures cover only part of the workload.
    pub incomplete: Option<Vec<String>>,
    /// Emissions of the summarized energy (a complete run of energy-star's).
    pub emissions: Option<EmissionsRecord>,
    /// The phases measured more than once, with their statistics.
    pub repeats: Option<RepeatsRecord>,
}

/// What the host adds to a summary from its own records.
#[derive(Debug, Clone, Default)]
pub struct Extras {
    pub emissions: Option<EmissionsRecord>,
    pub repeats: Option<RepeatsRecord>,
    pub summarizer_sha256: Option<String>,
}

/// The summarizer of a declared format (the one the backend said it writes).
fn summarizer_for<'a>(plugins: &'a PluginSet, format: &str) -> Option<&'a Plugin> {
    plugins.of_kind(PluginKind::Summarizer).find(|p| p.meta.formats.iter().any(|f| f == format))
}

/// Picks the summarizer for `text`: the most confident at or above [`MIN_CONFIDENCE`].
pub fn choose<'a>(
    rt: &PluginRuntime,
    plugins: &'a PluginSet,
    text: &str,
    path: &Path,
) -> Result<&'a Plugin, SummaryError> {
    let mut best: Option<(f32, &Plugin)> = None;
    for p in plugins.of_kind(PluginKind::Summarizer) {
        // One broken summarizer must not stop every other format from being read.
        let c = match p.detect(rt, text) {
            Ok(c) => c,
            Err(e) => {
                eprintln!("warning: skipping a summarizer: {e}");
                continue;
            }
        };
        if c >= MIN_CONFIDENCE && best.is_none_or(|(bc, _)| c > bc) {
            best = Some((c, p));
        }
    }
    best.map(|(_, p)| p).ok_or_else(|| SummaryError::UnknownFormat {
        path: path.to_path_buf(),
        formats: plugins
            .of_kind(PluginKind::Summarizer)
            .flat_map(|p| p.meta.formats.clone())
            .collect::<Vec<_>>()
            .join(", "),
        broken: broken_summarizers(plugins),
    })
}

/// The broken plugin files that might have read a report no summarizer reads.
fn broken_summarizers(plugins: &PluginSet) -> String {
    let files: Vec<String> =
        plugins.broken.iter().filter(|b| b.may_be_kind(PluginKind::Summarizer)).map(|b| b.describe()).collect();
    if files.is_empty() {
        return String::new();
    }
    format!("; these plugin files might have read it but are broken: {}", files.join("; "))
}

/// Summarizes the report found at `target` and writes the two summary files beside it.
pub fn summarize(rt: &PluginRuntime, plugins: &PluginSet, target: &Path) -> Result<Summarized, SummaryError> {
    let found = find_report(target)?;
    // A report named on the command line is read as named.
    let report = if target.is_dir() { with_its_config(found) } else { found };
    let text =
        std::fs::read_to_string(&report).map_err(|source| SummaryError::Read { path: report.clone(), source })?;
    // The host checks JSON itself so that a truncated report gets one clear message, not a
    // "no summarizer" answer.
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&text) {
        return Err(SummaryError::Json { path: report.clone(), why: e.to_string() });
    }
    let dir = report.parent().unwrap_or(Path::new("."));
    let run = RunContext::read(dir)?;
    // energy-star's own runs name their report format; reports from elsewhere are detected.
    let declared = run.record.as_ref().and_then(|r| summarizer_for(plugins, &r.plan.report_format));
    let plugin = match declared {
        Some(p) => p,
        None => choose(rt, plugins, &text, &report)?,
    };
    let mut summary =
        plugin.summarize(rt, &text).map_err(|source| SummaryError::Plugin { path: report.clone(), source })?;
    // Whether a GPU took part is the host's to say when it ran the benchmark. Upstream's
    // formats write 0.0 for a run without a GPU (as CodeCarbon does); the summary says "no GPU".
    if let Some(why) = run.gpu_absent_reason() {
        summary.total_wh = None;
        for p in &mut summary.phases {
            p.gpu_wh = None;
        }
        // The summarizer could not know that its zeros were "no GPU"; the host does.
        summary.warnings.retain(|w| !(w.contains("GPU energy is 0 Wh") || w.contains("0 Wh GPU energy")));
        summary.gpu_absent_reason = Some(why);
    }
    if summary.total_wh.is_none() && summary.gpu_absent_reason.is_none() {
        return Err(SummaryError::NoGpuFigure { path: report.clone() });
    }
    let incomplete = run.incomplete();
    // Emissions of a complete run only: an incomplete run's energy is not the benchmark's.
    let emissions = run.record.as_ref().and_then(|r| r.carbon.as_ref()).filter(|_| incomplete.is_none()).map(|c| {
        EmissionsRecord::of(c, summary.total_wh, summary.gpu_absent_reason.is_some(), summary.cpu_wh, summary.ram_wh)
    });
    let counted: Vec<String> = summary.phases.iter().filter(|p| p.counted).map(|p| p.name.clone()).collect();
    let repeats = run.repeats(&counted);
    let (total_wh_rounded, summary_record) = render(
        &summary,
        &plugin.meta.label(),
        &report,
        incomplete.as_deref(),
        Extras {
            emissions: emissions.clone(),
            repeats: repeats.clone(),
            summarizer_sha256: Some(plugin.meta.sha256.clone()),
        },
    );
    // A run without a GPU has no GPU figure, and an incomplete run's is not the benchmark's:
    // "n/a" makes a reader that expects a number fail loudly instead of averaging it in.
    let txt = match (total_wh_rounded, &incomplete) {
        (Some(t), None) => format!("{t:.2}\n"),
        _ => "n/a\n".to_string(),
    };
    write_atomic(&dir.join(SUMMARY_WH), txt.as_bytes())?;
    records::write_record(&dir.join(SUMMARY), &summary_record)?;
    let total_wh_rounded = total_wh_rounded.filter(|_| incomplete.is_none());
    Ok(Summarized {
        report,
        summarizer: plugin.meta.label(),
        summary,
        total_wh_rounded,
        incomplete,
        emissions,
        repeats,
    })
}

/// Rounds as the original summarizer does: `round(x + 1e-12, 2)`.
pub fn round2(x: f64) -> f64 {
    let s = format!("{:.2}", x + 1e-12);
    s.parse().unwrap_or(x)
}

/// The summary JSON: the original summarizer's keys first (`units`, `total`, `format`,
/// `preprocess_wh`, `prefill_wh`, `decode_wh`), then every phase found, then what energy-star
/// adds (which phases were counted, warnings, provenance).
/// An incomplete run's total is written as `null`, with the figure of what was measured as
/// `partial_total_wh`.
pub fn render(
    summary: &Summary,
    summarizer: &str,
    report: &Path,
    incomplete: Option<&[String]>,
    extras: Extras,
) -> (Option<f64>, SummaryRecord) {
    let total = summary.total_wh.map(round2);
    let r2 = |v: Option<f64>| v.map(round2);
    let phase_sum = |phase: LeaderboardPhase| -> Option<f64> {
        let found: Vec<&energy_star_plugin_host::PhaseEnergy> =
            summary.phases.iter().filter(|p| p.leaderboard_phase == Some(phase)).collect();
        summary.total_wh?;
        // A phase that exists without a GPU figure is unknown, not 0; the original writes 0.0
        // only for a phase the format lacks, and so does this.
        found.iter().map(|p| p.gpu_wh).sum::<Option<f64>>()
    };
    // The leaderboard's three phases, as the summarizer identified them; then every other.
    let [preprocess_wh, prefill_wh, decode_wh] =
        [LeaderboardPhase::Preprocess, LeaderboardPhase::Prefill, LeaderboardPhase::Decode].map(|p| r2(phase_sum(p)));
    let mut extra = Map::new();
    for p in &summary.phases {
        let key = format!("{}_wh", p.name);
        if !matches!(key.as_str(), "preprocess_wh" | "prefill_wh" | "decode_wh") && !extra.contains_key(&key) {
            extra.insert(key, json!(r2(p.gpu_wh)));
        }
    }
    let details = SummaryDetails {
        total_unrounded_wh: summary.total_wh.filter(|_| incomplete.is_none()),
        complete: incomplete.is_none(),
        incomplete_reasons: incomplete.map(<[String]>::to_vec).unwrap_or_default(),
        partial_total_wh: summary.total_wh.filter(|_| incomplete.is_some()),
        gpu_absent_reason: summary.gpu_absent_reason.clone(),
        cpu_wh: summary.cpu_wh,
        ram_wh: summary.ram_wh,
        counted_phases: summary.phases.iter().filter(|p| p.counted).map(|p| p.name.clone()).collect(),
        phases: summary
            .phases
            .iter()
            .map(|p| SummaryPhase {
                name: p.name.clone(),
                gpu_wh: p.gpu_wh,
                cpu_wh: p.cpu_wh,
                ram_wh: p.ram_wh,
                counted: p.counted,
            })
            .collect(),
        warnings: summary.warnings.clone(),
        source:
            "energy as the report states it; the summary converts units and sums phases, and measures nothing itself"
                .into(),
        report: report.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default(),
        summarizer: summarizer.to_string(),
        summarizer_sha256: extras.summarizer_sha256,
        emissions: extras.emissions,
        repeats: extras.repeats,
    };
    if let Ok(Value::Object(d)) = serde_json::to_value(&details) {
        extra.extend(d);
    }
    let record = SummaryRecord {
        units: "Wh".into(),
        total: total.filter(|_| incomplete.is_none()),
        format: summary.format.clone(),
        preprocess_wh,
        prefill_wh,
        decode_wh,
        other_phases_wh: extra,
    };
    (total, record)
}

/// The banner the original summarizer prints.
pub fn banner(s: &Summarized) -> String {
    let fmt = |v: Option<f64>| v.map(|x| format!("{x:.2}")).unwrap_or_else(|| "n/a".into());
    let phases: Vec<String> =
        s.summary.phases.iter().filter(|p| p.counted).map(|p| format!("{}={} Wh", p.name, fmt(p.gpu_wh))).collect();
    let mut out = format!(
        "\n===============================\nGPU Energy (Wh): {}\n({})\n===============================\n",
        fmt(s.total_wh_rounded),
        phases.join(", ")
    );
    if let Some(why) = &s.incomplete {
        let partial = s.summary.total_wh.map(|t| format!(" ({t:.2} Wh over what was measured)")).unwrap_or_default();
        out.push_str(&format!("INCOMPLETE run: no total{partial}: {}\n", why.join("; ")));
    }
    if let Some(reason) = &s.summary.gpu_absent_reason {
        out.push_str(&format!("no GPU energy: {reason}\n"));
    }
    if s.summary.cpu_wh.is_some() || s.summary.ram_wh.is_some() {
        let fmt4 = |v: Option<f64>| v.map(|x| format!("{x:.4}")).unwrap_or_else(|| "n/a".into());
        out.push_str(&format!(
            "CPU energy (Wh): {}, RAM energy (Wh): {} (sources: energy_meter.json for a run of energy-star, else the warnings)\n",
            fmt4(s.summary.cpu_wh),
            fmt4(s.summary.ram_wh)
        ));
    }
    if let Some(e) = &s.emissions {
        out.push_str(&emissions_line(e));
    }
    if let Some(r) = &s.repeats {
        out.push_str(&repeats_lines(r));
    }
    out.push_str(&format!("format: {} (read by {})\nreport: {}\n", s.summary.format, s.summarizer, s.report.display()));
    for w in &s.summary.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
}

/// A line per repeated phase: mean, spread and interval of the kind the run's energy is about
/// (GPU, else CPU), and the unflagged mean when some measures are flagged.
fn repeats_lines(r: &RepeatsRecord) -> String {
    let mut out = String::new();
    for p in r.phases.iter().chain(r.total.as_ref()) {
        let Some(k) = p.kind(DeviceKind::Gpu).or_else(|| p.kind(DeviceKind::Cpu)) else { continue };
        let Some(d) = k.all else { continue };
        let kind = if k.kind == DeviceKind::Gpu { "GPU" } else { "CPU" };
        let ci = d.ci95.map(|[lo, hi]| format!(", 95% CI {lo:.4}–{hi:.4}")).unwrap_or_default();
        let sd = d.sd.map(|s| format!(" ± {s:.4} (sd)")).unwrap_or_default();
        out.push_str(&format!("{}: {kind} {:.4} Wh{sd}{ci}, n={}", p.phase, d.mean, d.n));
        if !k.excluded.is_empty() {
            let unflagged =
                k.unflagged.map(|u| format!("{:.4} Wh (n={})", u.mean, u.n)).unwrap_or_else(|| "n/a".into());
            out.push_str(&format!("; without flagged iterations {:?}: {unflagged}", k.excluded));
        }
        out.push('\n');
    }
    out
}

/// One line on the run's emissions: the figures and the factor's source, or why there are none.
fn emissions_line(e: &EmissionsRecord) -> String {
    let Some(i) = &e.intensity else {
        return format!("emissions: n/a: {}\n", e.unknown_reason.as_deref().unwrap_or("no grid carbon intensity"));
    };
    let g = |v: Option<f64>| v.map(|x| format!("{x:.3}")).unwrap_or_else(|| "n/a".into());
    let place = i.location.as_ref().map(|l| format!(" ({l})")).unwrap_or_default();
    let facility = if e.pue != 1.0 {
        format!(", ×PUE {}: {} g", e.pue, g(e.all_devices_facility_g_co2eq))
    } else {
        String::new()
    };
    format!(
        "emissions (g CO2eq): GPU {}, GPU+CPU+RAM {}{facility} at {:.1} g/kWh{place}: {}\n",
        g(e.gpu_g_co2eq),
        g(e.all_devices_g_co2eq),
        i.g_co2eq_per_kwh,
        i.note
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rounding_matches_the_original() {
        assert_eq!(round2(133.714), 133.71);
        assert_eq!(round2(12.34567), 12.35);
        assert_eq!(round2(0.0), 0.0);
        assert_eq!(round2(-80.18), -80.18);
    }

    #[test]
    fn finds_the_newest_report_below_a_folder() {
        let dir = tempfile::tempdir().expect("tmp");
        assert!(matches!(find_report(dir.path()), Err(SummaryError::NoReport { .. })));
        std::fs::create_dir_all(dir.path().join("a/b")).expect("mkdir");
        std::fs::write(dir.path().join("a/benchmark_report.json"), "{}").expect("w");
        std::thread::sleep(std::time::Duration::from_millis(20));
        std::fs::write(dir.path().join("a/b/benchmark_report.json"), "{}").expect("w");
        assert_eq!(find_report(dir.path()).expect("found"), dir.path().join("a/b/benchmark_report.json"));
        // An earlier run that was set aside is never picked, however new.
        std::fs::create_dir_all(dir.path().join("a/previous-runs/x-1")).expect("mkdir");
        std::fs::write(dir.path().join("a/previous-runs/x-1/benchmark_report.json"), "{}").expect("w");
        assert_eq!(find_report(dir.path()).expect("found"), dir.path().join("a/b/benchmark_report.json"));
        let only_earlier = tempfile::tempdir().expect("tmp");
        std::fs::create_dir_all(only_earlier.path().join("previous-runs/x-1")).expect("mkdir");
        std::fs::write(only_earlier.path().join("previous-runs/x-1/benchmark_report.json"), "{}").expect("w");
        assert!(matches!(find_report(only_earlier.path()), Err(SummaryError::NoReport { .. })));
        let pointed = only_earlier.path().join("previous-runs/x-1");
        assert_eq!(find_report(&pointed).expect("pointed at"), pointed.join("benchmark_report.json"));
        std::fs::write(dir.path().join("benchmark_report.json"), "{}").expect("w");
        assert_eq!(find_report(dir.path()).expect("found"), dir.path().join("benchmark_report.json"));
    }
}
