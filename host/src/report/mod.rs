//! `energy-star report DIR`: a self-contained HTML page about one results folder, with its
//! figures also written as SVG files: power over time per device with the metered phases
//! shaded, energy per phase, energy per request or per token where the run knows it, and the
//! source and warnings of every figure.
//!
//! It reads only the host's own records (run status, run record, energy record, summary, the
//! timeline): never a backend's report, whose format is the backend's business. It measures
//! nothing.

mod page;
pub mod svg;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use std::process::ExitCode;

use energy_star_results::records::{
    self, ENERGY_RECORD, EnergyRecord, PhaseDerivation, RUN_RECORD, RUN_STATUS, RunRecord, RunStatus, SUMMARY,
    SummaryDetails, SummaryRecord,
};
use energy_star_results::{ResultsError, write_atomic};
use energy_star_types::DeviceKind;
use thiserror::Error;

use crate::cli::ReportArgs;

/// `energy-star report`.
pub fn command(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let done = write_report(&crate::results_target(args.target.clone()))?;
    outln!("report: {}", done.html.display())?;
    for f in &done.figures {
        outln!("figure: {}", f.display())?;
    }
    Ok(ExitCode::SUCCESS)
}
use svg::{Series, Span};

#[derive(Debug, Error)]
pub enum ReportError {
    #[error("{0} is not a folder")]
    NotAFolder(PathBuf),
    #[error(
        "{0} is not a results folder: it has none of run_status.json, energy_meter.json, energy_timeline.csv, GPU_ENERGY_SUMMARY.json{1}"
    )]
    NotResults(PathBuf, String),
    #[error("{dir} holds no measurements: its run ({state}) wrote no energy record{why}; there is nothing to draw")]
    NoMeasurements { dir: PathBuf, state: String, why: String },
    #[error("{file}: {why}")]
    Unreadable { file: PathBuf, why: String },
    #[error(transparent)]
    Write(#[from] ResultsError),
}

/// What was written.
#[derive(Debug)]
pub struct ReportDone {
    pub html: PathBuf,
    pub figures: Vec<PathBuf>,
}

/// Power per device over time from `energy_timeline.csv`: the sampled power where there is
/// one, else the counter's change over each interval (estimates and RAPL).
pub fn power_series(csv_text: &str) -> Result<Vec<Series>, String> {
    let mut rdr = csv::Reader::from_reader(csv_text.as_bytes());
    let headers = rdr.headers().map_err(|e| e.to_string())?.clone();
    let col = |name: &str| headers.iter().position(|h| h == name).ok_or_else(|| format!("no column {name}"));
    let (t_i, dev_i, src_i, p_i, c_i) =
        (col("t_s")?, col("device")?, col("source")?, col("power_w")?, col("energy_counter_j")?);
    // device → (source, rows of (t, power, counter))
    type Rows = Vec<(f64, Option<f64>, Option<f64>)>;
    let mut by_dev: BTreeMap<String, (String, Rows)> = BTreeMap::new();
    for (line, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| format!("row {}: {e}", line + 2))?;
        let num = |i: usize| rec.get(i).filter(|s| !s.is_empty()).and_then(|s| s.parse::<f64>().ok());
        let Some(t) = num(t_i) else { continue };
        let dev = rec.get(dev_i).unwrap_or("?").to_string();
        let entry = by_dev.entry(dev).or_insert_with(|| (rec.get(src_i).unwrap_or("").to_string(), Vec::new()));
        entry.1.push((t, num(p_i), num(c_i)));
    }
    let mut out = Vec::new();
    for (dev, (source, rows)) in by_dev {
        let mut points = Vec::new();
        let mut prev: Option<(f64, f64)> = None;
        for (t, p, c) in rows {
            match (p, c) {
                (Some(p), _) => points.push((t, p)),
                (None, Some(c)) => {
                    if let Some((pt, pc)) = prev
                        && t > pt
                        && c >= pc
                    {
                        points.push(((t + pt) / 2.0, (c - pc) / (t - pt)));
                    }
                    prev = Some((t, c));
                }
                (None, None) => {}
            }
        }
        out.push(Series { label: format!("{dev} ({source})"), points });
    }
    Ok(out)
}

/// Metered windows from `energy_windows.csv`.
pub fn spans(csv_text: &str) -> Result<Vec<Span>, String> {
    let mut rdr = csv::Reader::from_reader(csv_text.as_bytes());
    let mut out = Vec::new();
    for (line, rec) in rdr.records().enumerate() {
        let rec = rec.map_err(|e| format!("row {}: {e}", line + 2))?;
        let f = |i: usize| rec.get(i).and_then(|s| s.parse::<f64>().ok());
        if let (Some(name), Some(a), Some(b)) = (rec.get(1), f(2), f(3)) {
            out.push(Span { label: name.to_string(), start: a, end: b });
        }
    }
    Ok(out)
}

/// Points to the set-aside runs of a folder that holds only those.
fn earlier_runs_hint(dir: &Path) -> String {
    let earlier = dir.join(energy_star_results::PREVIOUS_RUNS);
    let mut runs: Vec<String> = std::fs::read_dir(&earlier)
        .map(|rd| rd.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect())
        .unwrap_or_default();
    runs.sort();
    match runs.last() {
        Some(last) => format!(
            "; its earlier runs are in {}: point `report` at one, e.g. {}",
            earlier.display(),
            earlier.join(last).display()
        ),
        None => String::new(),
    }
}

fn read<T: serde::de::DeserializeOwned>(dir: &Path, name: &str) -> Result<Option<T>, ReportError> {
    records::read_record(&dir.join(name))
        .map_err(|e| ReportError::Unreadable { file: dir.join(name), why: e.to_string() })
}

fn fmt_opt(v: Option<f64>, unit: &str) -> String {
    match v {
        Some(x) if x.abs() >= 0.01 || x == 0.0 => format!("{x:.4} {unit}"),
        Some(x) => format!("{x:.3e} {unit}"),
        None => "n/a".into(),
    }
}

/// What a results folder holds, from the host's records.
struct Folder {
    status: Option<RunStatus>,
    record: Option<RunRecord>,
    meter: Option<EnergyRecord>,
    summary: Option<(SummaryRecord, SummaryDetails)>,
    timeline: Option<String>,
    windows_csv: Option<String>,
}

impl Folder {
    fn read(dir: &Path) -> Result<Self, ReportError> {
        let summary: Option<SummaryRecord> = read(dir, SUMMARY)?;
        let summary = match summary {
            Some(s) => {
                let d = s.details().map_err(|why| ReportError::Unreadable { file: dir.join(SUMMARY), why })?;
                Some((s, d))
            }
            None => None,
        };
        Ok(Self {
            status: read(dir, RUN_STATUS)?,
            record: read(dir, RUN_RECORD)?,
            meter: read(dir, ENERGY_RECORD)?,
            summary,
            timeline: std::fs::read_to_string(dir.join(energy_star_meter::timeline::TIMELINE_CSV)).ok(),
            windows_csv: std::fs::read_to_string(dir.join(energy_star_meter::timeline::WINDOWS_CSV)).ok(),
        })
    }

    fn facts(&self) -> Option<&records::RunFacts> {
        self.record.as_ref().and_then(|r| r.facts.as_ref())
    }
}

/// Every warning once, in the order first seen.
fn dedup(all: impl Iterator<Item = String>) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for w in all {
        if !out.contains(&w) {
            out.push(w);
        }
    }
    out
}

/// The caption of the energy-per-phase figure: what the phases are, from the run's facts.
fn phase_caption(f: &Folder) -> String {
    let mut caption = "Energy per phase (Wh) as the report states it; n/a where a device was not measured.".to_string();
    for p in f.facts().map(|f| f.phases.as_slice()).unwrap_or_default() {
        let what = match p.derivation {
            PhaseDerivation::DifferenceOfWindows => "derived",
            PhaseDerivation::Attributed => "attributed",
            PhaseDerivation::Measured | PhaseDerivation::MeanOfWindows => continue,
        };
        let def = p.definition.as_deref().unwrap_or("");
        let _ = write!(caption, " {} is {what}: {def}.", p.name);
        if p.derivation == PhaseDerivation::DifferenceOfWindows {
            caption.push_str(" A difference can come out negative; such values are kept and flagged.");
        }
    }
    caption
}

/// Per request and per token: the run's counts and figures, and GPU energy per output token
/// from the summary's total.
fn per_unit(f: &Folder) -> Vec<(String, String)> {
    let mut rows: Vec<(String, String)> = Vec::new();
    let Some(facts) = f.facts() else { return rows };
    if let Some(r) = &facts.requests {
        rows.push((
            "requests (prompts)".into(),
            format!("{} in all, {} succeeded, {} failed, {} not sent", r.total, r.succeeded, r.failed, r.not_sent),
        ));
    }
    let total_wh = f.summary.as_ref().and_then(|(s, d)| s.total.and(d.total_unrounded_wh));
    if let Some(t) = &facts.tokens {
        rows.push((
            "tokens".into(),
            format!("{} input, {} output (counted by {})", t.input, t.output, t.source.as_str()),
        ));
        let per_token = match (total_wh, t.output) {
            (Some(wh), n) if n > 0 => {
                format!("{:.6} J/token (the summary's GPU total ÷ output tokens)", wh * 3600.0 / n as f64)
            }
            (Some(_), _) => "n/a: no output tokens".into(),
            (None, _) => "n/a: the run has no GPU total".into(),
        };
        rows.push(("GPU energy per output token".into(), per_token));
        if let Some(ns) = facts.workload_ns.filter(|ns| *ns > 0) {
            rows.push(("output tokens per second".into(), format!("{:.2}", t.output as f64 / (ns as f64 / 1e9))));
        }
    }
    if let Some(ns) = facts.mean_e2e_ns {
        rows.push(("mean end-to-end latency".into(), format!("{:.3} ms", ns as f64 / 1e6)));
    }
    if let Some(ns) = facts.mean_ttft_ns {
        rows.push(("mean time to first token".into(), format!("{:.3} ms", ns as f64 / 1e6)));
    }
    for x in &facts.figures {
        rows.push((x.name.clone(), format!("{:.6} {} ({})", x.value, x.unit, x.definition)));
    }
    for p in &facts.phases {
        if let Some(v) = &p.volume {
            rows.push((format!("{} processed", p.name), format!("{} {}", v.count, v.unit)));
        }
    }
    rows
}

/// A figure of the page, also written as `figures/<file>`.
struct Figure {
    file: &'static str,
    caption: String,
    svg: String,
}

/// Writes `report.html` and `figures/*.svg` into `dir`.
pub fn write_report(dir: &Path) -> Result<ReportDone, ReportError> {
    if !dir.is_dir() {
        return Err(ReportError::NotAFolder(dir.to_path_buf()));
    }
    let f = Folder::read(dir)?;
    if f.meter.is_none() && f.timeline.is_none() && f.summary.is_none() {
        return Err(match &f.status {
            Some(s) => ReportError::NoMeasurements {
                dir: dir.to_path_buf(),
                state: s.state.as_str().to_string(),
                why: s.error.as_ref().map(|e| format!(" (error: {e})")).unwrap_or_default(),
            },
            None => ReportError::NotResults(dir.to_path_buf(), earlier_runs_hint(dir)),
        });
    }
    let figures = figures(dir, &f)?;
    let title = format!("energy-star report: {}", dir.file_name().and_then(|n| n.to_str()).unwrap_or("results"));
    let html = page::html(&title, &f, &figures);

    let fig_dir = dir.join("figures");
    energy_star_results::ensure_dir(&fig_dir)?;
    let mut written = Vec::new();
    for fig in &figures {
        let p = fig_dir.join(fig.file);
        write_atomic(&p, format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{}\n", fig.svg).as_bytes())?;
        written.push(p);
    }
    let html_path = dir.join("report.html");
    write_atomic(&html_path, html.as_bytes())?;
    Ok(ReportDone { html: html_path, figures: written })
}

fn figures(dir: &Path, f: &Folder) -> Result<Vec<Figure>, ReportError> {
    let mut figures = vec![power_figure(dir, f)?];
    figures.extend(phase_figure(f));
    figures.extend(repeats_figure(f));
    figures.extend(request_figure(f));
    Ok(figures)
}

/// Power over time per device, the metered windows (phases) shaded.
fn power_figure(dir: &Path, f: &Folder) -> Result<Figure, ReportError> {
    let series = match &f.timeline {
        Some(t) => {
            power_series(t).map_err(|why| ReportError::Unreadable { file: dir.join("energy_timeline.csv"), why })?
        }
        None => Vec::new(),
    };
    let windows = match &f.windows_csv {
        Some(t) => spans(t).map_err(|why| ReportError::Unreadable { file: dir.join("energy_windows.csv"), why })?,
        None => Vec::new(),
    };
    Ok(Figure {
        file: "power.svg",
        caption: "Power per device over the run; shaded: the metered windows (phases). Estimated devices show the estimate's power.".into(),
        svg: svg::line_chart("fig-power", "Power over time", "time since the meter started (s)", "power (W)", &series, &windows),
    })
}

/// Energy per phase, from the summary (the leaderboard's view of the report).
fn phase_figure(f: &Folder) -> Option<Figure> {
    let (_, d) = f.summary.as_ref().filter(|(_, d)| !d.phases.is_empty())?;
    let cats: Vec<String> =
        d.phases.iter().map(|p| format!("{}{}", p.name, if p.counted { "" } else { " (not counted)" })).collect();
    let bars = vec![
        ("GPU".to_string(), d.phases.iter().map(|p| p.gpu_wh).collect()),
        ("CPU".to_string(), d.phases.iter().map(|p| p.cpu_wh).collect()),
        ("RAM".to_string(), d.phases.iter().map(|p| p.ram_wh).collect()),
    ];
    Some(Figure {
        file: "energy_by_phase.svg",
        caption: phase_caption(f),
        svg: svg::bar_chart("fig-phases", "Energy per phase", "energy (Wh)", &cats, &bars),
    })
}

/// Each repeated phase's measures (GPU, else CPU) with their mean and 95 % interval.
fn repeats_figure(f: &Folder) -> Option<Figure> {
    let (_, d) = f.summary.as_ref()?;
    let r = d.repeats.as_ref()?;
    let kind =
        if r.phases.iter().any(|p| p.kind(DeviceKind::Gpu).is_some()) { DeviceKind::Gpu } else { DeviceKind::Cpu };
    let groups: Vec<svg::DotGroup> = r
        .phases
        .iter()
        .chain(r.total.as_ref())
        .filter_map(|p| {
            let k = p.kind(kind)?;
            let (values, flagged): (Vec<f64>, Vec<bool>) =
                k.measures_wh.iter().enumerate().filter_map(|(i, v)| v.map(|v| (v, k.excluded.contains(&i)))).unzip();
            Some(svg::DotGroup {
                label: p.phase.clone(),
                values,
                flagged,
                mean: k.all.map(|a| a.mean),
                ci95: k.all.and_then(|a| a.ci95),
            })
        })
        .collect();
    if groups.is_empty() {
        return None;
    }
    let kind_name = if kind == DeviceKind::Gpu { "GPU" } else { "CPU" };
    Some(Figure {
        file: "repeated_measures.svg",
        caption: format!(
            "{kind_name} energy of each iteration per phase (dots; hollow: flagged and left out of the unflagged mean), the mean (bar, as upstream reports it) and its 95 % Student's t interval (whisker)."
        ),
        svg: svg::dot_plot("fig-repeats", &format!("Repeated measures ({kind_name})"), "energy (Wh)", &groups),
    })
}

/// Per request: energy where the backend attributed it, else the host's latencies.
fn request_figure(f: &Folder) -> Option<Figure> {
    if let Some(facts) = f.facts().filter(|x| !x.request_gpu_energy_j.is_empty()) {
        let values: Vec<f64> = facts.request_gpu_energy_j.iter().map(|(_, j)| *j).collect();
        return Some(Figure {
            file: "energy_per_request.svg",
            caption: "GPU energy per request (J), attributed by the backend (e.g. steady-state J per output token × the request's output tokens, ML.ENERGY's method), not measured per request.".into(),
            svg: svg::histogram("fig-requests", "GPU energy per request (attributed)", "J", &values, 12),
        });
    }
    let r = f.record.as_ref().filter(|r| !r.request_latencies_ms.is_empty())?;
    Some(Figure {
        file: "latency_per_request.svg",
        caption:
            "End-to-end latency per request (ms), as the host timed it; no per-request energy is known for this run."
                .into(),
        svg: svg::histogram("fig-requests", "End-to-end latency per request", "ms", &r.request_latencies_ms, 12),
    })
}

#[cfg(test)]
mod tests {
    use energy_star_results::records::RunState;

    use super::*;

    #[test]
    fn power_comes_from_samples_or_counter_differences() {
        let csv = "t_s,device,source,power_w,energy_counter_j,temperature_c,utilization_pct,sm_clock_mhz,memory_used_mib\n\
                   0.0,gpu0,nvml-energy-counter,100.0,0.0,,,,\n1.0,gpu0,nvml-energy-counter,300.0,200.0,,,,\n\
                   0.0,cpu,estimate-tdp,,0.0,,,,\n2.0,cpu,estimate-tdp,,20.0,,,,\n4.0,cpu,estimate-tdp,,60.0,,,,\n";
        let s = power_series(csv).expect("parse");
        assert_eq!(s.len(), 2);
        let cpu = s.iter().find(|x| x.label.starts_with("cpu")).expect("cpu");
        assert_eq!(cpu.points, vec![(1.0, 10.0), (3.0, 20.0)]);
        let gpu = s.iter().find(|x| x.label.starts_with("gpu0")).expect("gpu");
        assert_eq!(gpu.points, vec![(0.0, 100.0), (1.0, 300.0)]);
        assert!(power_series("a,b\n1,2\n").err().expect("refused").contains("no column t_s"));
    }

    #[test]
    fn a_folder_that_is_not_results_is_refused() {
        let d = tempfile::tempdir().expect("tmp");
        assert!(matches!(write_report(d.path()), Err(ReportError::NotResults(..))));
        std::fs::create_dir_all(d.path().join("previous-runs/2026-01-01T00-00-00Z-1")).expect("mkdir");
        let hint = write_report(d.path()).unwrap_err().to_string();
        assert!(hint.contains("2026-01-01T00-00-00Z-1"), "{hint}");
        // A run that failed before anything was measured has nothing to draw: an error, no page.
        let status = RunStatus {
            complete: false,
            state: RunState::Failed,
            backend: "backend x".into(),
            config_name: "c".into(),
            config_source: "built-in".into(),
            started_unix_s: 0.0,
            earlier_run_moved_to: None,
            finished_unix_s: None,
            energy_files: Vec::new(),
            files_written_by_backend: Vec::new(),
            incomplete_reasons: Vec::new(),
            error: Some("no such model".into()),
            problems: Vec::new(),
        };
        records::write_record(&d.path().join("run_status.json"), &status).expect("write");
        let err = write_report(d.path()).unwrap_err().to_string();
        assert!(err.contains("holds no measurements") && err.contains("no such model"), "{err}");
        assert!(!d.path().join("report.html").exists());
        assert!(matches!(write_report(&d.path().join("absent")), Err(ReportError::NotAFolder(_))));
        std::fs::write(d.path().join("run_status.json"), "{not json").expect("write");
        assert!(write_report(d.path()).unwrap_err().to_string().contains("is not a record this energy-star reads"));
    }
}
