//! `energy-star compare A B [C ...]`: do runs differ beyond noise? A run is a results folder, or
//! a row of a batch's `master_results.csv` (`FILE.csv` for every row, `FILE.csv:N` for row N):
//! a row holds one figure per run, so `compare` follows it to the run's folder, where the
//! repeated measures are. For each phase measured more than once in both runs, and for the
//! counted phases' total, each run's mean with its 95 % interval, the difference of the means
//! with Welch's 95 % interval, and a verdict; with `--tolerance`, whether they agree within it
//! (the interval, not the point, decides). Runs joined by commas (`A1,A2,A3`) are a group: each
//! run's figure is one sample, so the interval holds what changes between runs too
//! (`compare_groups`). Every later run (or group) is compared with the first. It reads the
//! host's records only (summary, run record, status, energy record) and warns when the runs are
//! not comparable.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use energy_star_results::records::{
    self, ENERGY_RECORD, EnergyRecord, RUN_RECORD, RUN_STATUS, RunRecord, RunState, RunStatus, SUMMARY, SummaryDetails,
    SummaryRecord,
};
use energy_star_results::repeats::PhaseRepeats;
use energy_star_results::write_atomic;
use energy_star_stats::{Describe, Difference, describe, welch};
use energy_star_types::DeviceKind;
use serde::Serialize;
use thiserror::Error;

use crate::cli::{CompareArgs, CompareKind};
use crate::report::svg;

#[derive(Debug, Error)]
pub enum CompareError {
    #[error("{0} is not a folder")]
    NotAFolder(PathBuf),
    #[error(
        "{0} has no GPU_ENERGY_SUMMARY.json: not a summarized run of energy-star (run `energy-star summarize {0}` first)"
    )]
    NoSummary(PathBuf),
    #[error("{file}: {why}")]
    Unreadable { file: PathBuf, why: String },
    #[error(
        "{0} has no repeated measures (each phase was measured once: scenario.iterations=1, or a backend that measures once), so no interval is defined for it; rerun with the optimum backend and scenario.iterations=N (N ≥ 2; 5 or more for a useful interval)"
    )]
    NoRepeats(PathBuf),
    #[error("{a} and {b} have no repeated phase in common with {kind} energy figures; nothing can be compared")]
    NothingInCommon { a: PathBuf, b: PathBuf, kind: &'static str },
    #[error(
        "compare needs two runs or more; {0} gives {1} (name two results folders, or a master_results.csv with two rows or more)"
    )]
    TooFewRuns(String, usize),
    #[error("the group {0:?} names fewer than two runs: a group's interval needs two runs or more (DIR1,DIR2,...)")]
    GroupTooSmall(String),
    #[error("{table}: {why}")]
    Table { table: PathBuf, why: String },
    #[error(
        "{table} row {row} ({model}) has no results folder at {dir}: a row holds one figure per run, and an interval needs the run's repeated measures, which are in its folder{error}"
    )]
    RowWithoutRun { table: PathBuf, row: usize, model: String, dir: String, error: String },
    #[error("--tolerance {0:?} is not a percentage such as 5% or 2.5 (between 0 and 100)")]
    BadTolerance(String),
    #[error(transparent)]
    Write(#[from] energy_star_results::ResultsError),
}

/// A run to compare: its results folder and how the command line named it.
#[derive(Debug, Clone, PartialEq)]
pub struct RunArg {
    pub dir: PathBuf,
    pub label: String,
}

/// The runs the command line names: each folder as given, each `master_results.csv` as the
/// folders of its rows (all, or row N of `FILE.csv:N`, counted from 1).
pub fn runs_named(args: &[PathBuf]) -> Result<Vec<RunArg>, CompareError> {
    let mut runs = Vec::new();
    for arg in args {
        runs.extend(runs_in(arg)?);
    }
    if runs.len() < 2 {
        let named = args.iter().map(|a| a.display().to_string()).collect::<Vec<_>>().join(" ");
        return Err(CompareError::TooFewRuns(named, runs.len()));
    }
    Ok(runs)
}

/// Groups of runs (`DIR1,DIR2,...`, each part a folder or a table row as above): every argument
/// is one group when any names several runs.
pub fn groups_named(args: &[PathBuf]) -> Result<Vec<Vec<RunArg>>, CompareError> {
    let mut groups = Vec::new();
    for arg in args {
        let text = arg.to_string_lossy();
        let parts: Vec<PathBuf> = text.split(',').filter(|p| !p.is_empty()).map(PathBuf::from).collect();
        let mut group = Vec::new();
        for part in &parts {
            group.extend(runs_in(part)?);
        }
        if group.len() < 2 {
            return Err(CompareError::GroupTooSmall(text.into_owned()));
        }
        groups.push(group);
    }
    if groups.len() < 2 {
        let named = args.iter().map(|a| a.display().to_string()).collect::<Vec<_>>().join(" ");
        return Err(CompareError::TooFewRuns(named, groups.len()));
    }
    Ok(groups)
}

/// The runs one command-line part names: a folder, a table's rows, or one row.
fn runs_in(arg: &Path) -> Result<Vec<RunArg>, CompareError> {
    let text = arg.to_string_lossy();
    match text.rsplit_once(".csv:") {
        Some((stem, n)) if n.parse::<usize>().is_ok() => table_rows(Path::new(&format!("{stem}.csv")), n.parse().ok()),
        _ if text.ends_with(".csv") => table_rows(arg, None),
        _ => Ok(vec![RunArg { dir: arg.to_path_buf(), label: text.into_owned() }]),
    }
}

/// Compares groups of runs, each run's figure one sample: the mean of its iterations for each
/// counted phase and the total, as its summary has them. The spread between runs, with what
/// changed between them, is in the intervals; this is AI Energy Score's "average of 10 runs".
pub fn compare_groups(
    groups: &[Vec<RunArg>],
    kind: Option<CompareKind>,
    tolerance: Option<&str>,
) -> Result<CompareReport, CompareError> {
    let tolerance = tolerance.map(parse_tolerance).transpose()?;
    let groups: Vec<Vec<Run>> =
        groups.iter().map(|g| g.iter().map(Run::read).collect::<Result<Vec<_>, _>>()).collect::<Result<_, _>>()?;
    let has_gpu = |r: &Run| r.details.total_unrounded_wh.is_some();
    let kind = match kind {
        Some(CompareKind::Gpu) => DeviceKind::Gpu,
        Some(CompareKind::Cpu) => DeviceKind::Cpu,
        None if groups.iter().flatten().all(has_gpu) => DeviceKind::Gpu,
        None => DeviceKind::Cpu,
    };
    let kind_name = kind_name(kind);
    let figure = |r: &Run, phase: &str| -> Option<f64> {
        if phase == "total" {
            return if kind == DeviceKind::Gpu { r.details.total_unrounded_wh } else { r.details.cpu_wh };
        }
        let p = r.details.phases.iter().find(|p| p.name == phase && p.counted)?;
        if kind == DeviceKind::Gpu { p.gpu_wh } else { p.cpu_wh }
    };
    let label = |g: &[Run]| format!("{} ({} runs)", g.iter().map(Run::label).collect::<Vec<_>>().join(", "), g.len());
    let (base, others) = groups.split_first().expect("two groups at least, checked by groups_named");
    let mut phase_names: Vec<String> =
        base[0].details.phases.iter().filter(|p| p.counted).map(|p| p.name.clone()).collect();
    phase_names.push("total".into());
    let mut comparisons = Vec::new();
    for other in others {
        let mut c = Comparison {
            baseline: label(base),
            other: label(other),
            phases: Vec::new(),
            not_compared: Vec::new(),
            warnings: group_warnings(base, other, kind),
        };
        for phase in &phase_names {
            let values = |g: &[Run]| g.iter().map(|r| figure(r, phase)).collect::<Option<Vec<f64>>>();
            let described = values(base)
                .zip(values(other))
                .and_then(|(a, b)| Some((describe(&a)?, describe(&b)?)))
                .filter(|(a, b)| a.sd.is_some() && b.sd.is_some());
            match described {
                Some((a, b)) => c.phases.push(phase_comparison(phase, Vec::new(), a, b, tolerance, kind_name)),
                None => c.not_compared.push(phase.clone()),
            }
        }
        if c.phases.is_empty() {
            return Err(CompareError::NothingInCommon {
                a: base[0].dir.clone(),
                b: other[0].dir.clone(),
                kind: kind_name,
            });
        }
        comparisons.push(c);
    }
    Ok(CompareReport {
        kind: if kind == DeviceKind::Gpu { "gpu" } else { "cpu" },
        tolerance_percent: tolerance,
        comparisons,
        scope: GROUP_SCOPE,
    })
}

/// Why two groups may not be comparable: the first runs against each other, and each run against
/// its group's first (a group is one config repeated).
fn group_warnings(a: &[Run], b: &[Run], kind: DeviceKind) -> Vec<String> {
    let mut w = comparability(&a[0], &b[0], kind, false);
    for (name, g) in [("A", a), ("B", b)] {
        for r in &g[1..] {
            if let (Some(x), Some(y)) = (effective_config(&g[0]), effective_config(r)) {
                let keys = config_differences(&x, &y);
                if !keys.is_empty() {
                    w.push(format!(
                        "group {name} is not one config: {} differs from {}: {}",
                        r.label(),
                        g[0].label(),
                        keys.join("; ")
                    ));
                }
            }
            for s in comparability(&g[0], r, kind, false) {
                if !w.contains(&s) && !s.starts_with("the configs differ") {
                    w.push(format!("group {name}: {s}"));
                }
            }
        }
    }
    w
}

/// The results folders of a `master_results.csv`'s rows (`only`: one row, from 1).
fn table_rows(table: &Path, only: Option<usize>) -> Result<Vec<RunArg>, CompareError> {
    let bad = |why: String| CompareError::Table { table: table.to_path_buf(), why };
    if !table.is_file() {
        return Err(bad("no such file (a batch writes master_results.csv in its --output-dir)".into()));
    }
    let rows = crate::batch::read_master(table).map_err(bad)?;
    let column = |name: &str| crate::batch::COLUMNS.iter().position(|c| *c == name).expect("a master_results column");
    let (model_col, dir_col, error_col) = (column("model_name"), column("results_dir"), column("error_message"));
    if let Some(n) = only.filter(|n| *n == 0 || *n > rows.len()) {
        return Err(bad(format!("has no row {n}: its rows are 1 to {}", rows.len())));
    }
    let mut out = Vec::new();
    for (i, row) in rows.iter().enumerate().filter(|(i, _)| only.is_none_or(|n| n == i + 1)) {
        let written = &row[dir_col];
        // A batch writes the folder as it named it (relative to where it ran); the table sits in
        // the batch's output folder beside `individual_runs/`, so look there too.
        let beside = Path::new(written)
            .file_name()
            .map(|name| table.parent().unwrap_or(Path::new(".")).join("individual_runs").join(name));
        let dir = [Some(PathBuf::from(written)).filter(|_| !written.is_empty()), beside]
            .into_iter()
            .flatten()
            .find(|d| d.is_dir());
        let Some(dir) = dir else {
            let error = &row[error_col];
            return Err(CompareError::RowWithoutRun {
                table: table.to_path_buf(),
                row: i + 1,
                model: row[model_col].clone(),
                dir: if written.is_empty() { "(none written)".into() } else { written.clone() },
                error: if error.is_empty() { String::new() } else { format!(" (the row's error: {error})") },
            });
        };
        out.push(RunArg { dir, label: format!("{} row {} ({})", table.display(), i + 1, row[model_col]) });
    }
    Ok(out)
}

/// One results folder, as `compare` reads it.
struct Run {
    dir: PathBuf,
    name: String,
    details: SummaryDetails,
    record: Option<RunRecord>,
    status: Option<RunStatus>,
    meter: Option<EnergyRecord>,
}

impl Run {
    fn read(arg: &RunArg) -> Result<Self, CompareError> {
        let dir = arg.dir.as_path();
        if !dir.is_dir() {
            return Err(CompareError::NotAFolder(dir.to_path_buf()));
        }
        let unreadable = |file: &str, why: String| CompareError::Unreadable { file: dir.join(file), why };
        let summary: SummaryRecord = records::read_record(&dir.join(SUMMARY))
            .map_err(|e| unreadable(SUMMARY, e.to_string()))?
            .ok_or_else(|| CompareError::NoSummary(dir.to_path_buf()))?;
        let details = summary.details().map_err(|why| unreadable(SUMMARY, why))?;
        Ok(Self {
            dir: dir.to_path_buf(),
            name: arg.label.clone(),
            details,
            record: records::read_record(&dir.join(RUN_RECORD)).map_err(|e| unreadable(RUN_RECORD, e.to_string()))?,
            status: records::read_record(&dir.join(RUN_STATUS)).map_err(|e| unreadable(RUN_STATUS, e.to_string()))?,
            meter: records::read_record(&dir.join(ENERGY_RECORD))
                .map_err(|e| unreadable(ENERGY_RECORD, e.to_string()))?,
        })
    }

    fn repeated(&self) -> Vec<&PhaseRepeats> {
        self.details.repeats.as_ref().map(|r| r.phases.iter().chain(r.total.as_ref()).collect()).unwrap_or_default()
    }

    fn has_gpu_figures(&self) -> bool {
        self.repeated().iter().any(|p| p.kind(DeviceKind::Gpu).is_some_and(|k| k.all.is_some()))
    }

    fn label(&self) -> String {
        self.name.clone()
    }
}

/// One phase of one comparison.
#[derive(Debug, Serialize)]
pub struct PhaseComparison {
    pub phase: String,
    pub baseline: Describe,
    pub other: Describe,
    /// other − baseline, Wh, with Welch's interval.
    pub difference: Difference,
    /// The difference relative to the baseline's mean, %, and its interval (the difference's
    /// interval over the baseline mean).
    pub percent: Option<f64>,
    pub percent_ci95: Option<[f64; 2]>,
    pub verdict: String,
    /// With `--tolerance`: `within`, `outside` or `undecided`.
    pub tolerance_verdict: Option<String>,
    /// Iterations flagged in either run (kept in these statistics, as upstream's mean keeps them).
    pub flagged: Vec<String>,
}

/// A later run against the first.
#[derive(Debug, Serialize)]
pub struct Comparison {
    pub baseline: String,
    pub other: String,
    pub phases: Vec<PhaseComparison>,
    /// Phases repeated in one run only, or without two known figures of the kind in each.
    pub not_compared: Vec<String>,
    /// Why the runs may not be comparable.
    pub warnings: Vec<String>,
}

/// What `compare` found.
#[derive(Debug, Serialize)]
pub struct CompareReport {
    /// `gpu` or `cpu`: the energy compared.
    pub kind: &'static str,
    pub tolerance_percent: Option<f64>,
    pub comparisons: Vec<Comparison>,
    /// What the intervals cover, and what they do not.
    pub scope: &'static str,
}

/// What the intervals of `compare` of groups of runs cover.
pub const GROUP_SCOPE: &str = "each run is one sample (its figure: the mean of its iterations); each interval covers the spread between the runs of a group, what changed between them included";

/// What every interval of `compare` of single runs covers.
pub const SCOPE: &str = "each interval covers the spread of the iterations within one run; what changes between runs (machine load, clocks, temperature) is not in it: to include it, compare repeated whole runs";

/// `energy-star compare`.
pub fn command(args: &CompareArgs) -> anyhow::Result<ExitCode> {
    let grouped = args.runs.iter().any(|a| a.to_string_lossy().contains(','));
    let (report, runs) = if grouped {
        let groups = groups_named(&args.runs)?;
        (compare_groups(&groups, args.kind, args.tolerance.as_deref())?, Vec::new())
    } else {
        let named = runs_named(&args.runs)?;
        let report = compare(&named, args.kind, args.tolerance.as_deref())?;
        let runs: Vec<Run> =
            if args.html.is_some() { named.iter().map(Run::read).collect::<Result<_, _>>()? } else { Vec::new() };
        (report, runs)
    };
    if let Some(path) = &args.html {
        write_atomic(path, html(&report, &runs).as_bytes()).map_err(CompareError::from)?;
    }
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&report)?)?;
    } else {
        print!("{}", table(&report));
    }
    Ok(ExitCode::SUCCESS)
}

/// Parses `5%`, `5` or `2.5 %` as a percentage.
pub fn parse_tolerance(text: &str) -> Result<f64, CompareError> {
    let t = text.trim().trim_end_matches('%').trim();
    match t.parse::<f64>() {
        Ok(v) if v.is_finite() && v > 0.0 && v < 100.0 => Ok(v),
        _ => Err(CompareError::BadTolerance(text.to_string())),
    }
}

/// Compares every run after the first with the first.
pub fn compare(
    named: &[RunArg],
    kind: Option<CompareKind>,
    tolerance: Option<&str>,
) -> Result<CompareReport, CompareError> {
    let tolerance = tolerance.map(parse_tolerance).transpose()?;
    if named.len() < 2 {
        let given = named.iter().map(|r| r.label.clone()).collect::<Vec<_>>().join(" ");
        return Err(CompareError::TooFewRuns(given, named.len()));
    }
    let runs: Vec<Run> = named.iter().map(Run::read).collect::<Result<_, _>>()?;
    for r in &runs {
        if r.repeated().is_empty() {
            return Err(CompareError::NoRepeats(r.dir.clone()));
        }
    }
    // GPU energy when every run has it (the leaderboard's figure), else CPU.
    let kind = match kind {
        Some(CompareKind::Gpu) => DeviceKind::Gpu,
        Some(CompareKind::Cpu) => DeviceKind::Cpu,
        None if runs.iter().all(Run::has_gpu_figures) => DeviceKind::Gpu,
        None => DeviceKind::Cpu,
    };
    let kind_name = kind_name(kind);
    let (base, others) = runs.split_first().expect("two runs at least, checked above");
    let mut comparisons = Vec::new();
    for other in others {
        let mut c = Comparison {
            baseline: base.label(),
            other: other.label(),
            phases: Vec::new(),
            not_compared: Vec::new(),
            warnings: comparability(base, other, kind, true),
        };
        for a in base.repeated() {
            let b = other.repeated().into_iter().find(|p| p.phase == a.phase);
            // Both need two known measures or more for an interval.
            let pair = b
                .and_then(|b| Some((a.kind(kind)?, b.kind(kind)?)))
                .and_then(|(ka, kb)| Some((ka, kb, ka.all?, kb.all?)))
                .filter(|(_, _, da, db)| da.sd.is_some() && db.sd.is_some());
            match pair {
                Some((ka, kb, da, db)) => {
                    let flagged = ka
                        .excluded
                        .iter()
                        .map(|i| format!("A#{i}"))
                        .chain(kb.excluded.iter().map(|i| format!("B#{i}")))
                        .collect();
                    c.phases.push(phase_comparison(&a.phase, flagged, da, db, tolerance, kind_name))
                }
                None => c.not_compared.push(a.phase.clone()),
            }
        }
        for b in other.repeated() {
            if !base.repeated().iter().any(|a| a.phase == b.phase) {
                c.not_compared.push(b.phase.clone());
            }
        }
        if c.phases.is_empty() {
            return Err(CompareError::NothingInCommon { a: base.dir.clone(), b: other.dir.clone(), kind: kind_name });
        }
        comparisons.push(c);
    }
    Ok(CompareReport {
        kind: if kind == DeviceKind::Gpu { "gpu" } else { "cpu" },
        tolerance_percent: tolerance,
        comparisons,
        scope: SCOPE,
    })
}

fn kind_name(kind: DeviceKind) -> &'static str {
    if kind == DeviceKind::Gpu { "GPU" } else { "CPU" }
}

fn phase_comparison(
    phase: &str,
    flagged: Vec<String>,
    a: Describe,
    b: Describe,
    tolerance: Option<f64>,
    kind_name: &str,
) -> PhaseComparison {
    // The caller passes only samples with a spread, so Welch's interval exists.
    let difference =
        welch(&b, &a).unwrap_or(Difference { diff: b.mean - a.mean, ci95: [f64::NAN; 2], df: 0.0, t: None });
    let rel = (a.mean != 0.0).then_some(a.mean.abs());
    let percent = rel.map(|m| difference.diff / m * 100.0);
    let percent_ci95 = rel.map(|m| [difference.ci95[0] / m * 100.0, difference.ci95[1] / m * 100.0]);
    let verdict = match (percent, percent_ci95) {
        (Some(p), Some([lo, hi])) if difference.beyond_noise() => format!(
            "B uses {:.1} % {} {kind_name} energy than A (95 % CI {:.1} to {:.1} %)",
            p.abs(),
            if p > 0.0 { "more" } else { "less" },
            lo.abs().min(hi.abs()),
            lo.abs().max(hi.abs())
        ),
        (_, Some([lo, hi])) => format!("no difference beyond noise (B − A: 95 % CI {lo:.1} to {hi:.1} %)"),
        _ => "A's mean is 0: no relative difference is defined".into(),
    };
    let tolerance_verdict = tolerance.zip(percent_ci95).map(|(t, [lo, hi])| {
        if lo >= -t && hi <= t {
            format!("within ±{t} %: the whole interval ({lo:.1} to {hi:.1} %) lies inside")
        } else if lo > t || hi < -t {
            format!("outside ±{t} %: the whole interval ({lo:.1} to {hi:.1} %) lies beyond")
        } else {
            format!(
                "undecided at ±{t} %: the interval ({lo:.1} to {hi:.1} %) crosses the bound; more iterations or runs narrow it"
            )
        }
    });
    PhaseComparison {
        phase: phase.to_string(),
        baseline: a,
        other: b,
        difference,
        percent,
        percent_ci95,
        verdict,
        tolerance_verdict,
        flagged,
    }
}

/// What makes two runs' figures not comparable: different model, dataset, token counts, GPU
/// model, energy source, or a run not complete.
/// Why two runs may not be comparable. `within_run_intervals`: the intervals are of each run's
/// iterations, so a change of the machine between the runs is worth a warning.
fn comparability(a: &Run, b: &Run, kind: DeviceKind, within_run_intervals: bool) -> Vec<String> {
    let mut w = Vec::new();
    for r in [a, b] {
        match &r.status {
            Some(s) if s.state != RunState::Complete => {
                w.push(format!("{} is {}: its figures cover part of the workload", r.label(), s.state.as_str()))
            }
            None => w.push(format!("{} has no run_status.json: whether it completed is unknown", r.label())),
            _ => {}
        }
    }
    let mut differs = |what: &str, x: Option<String>, y: Option<String>| {
        if x != y {
            let show = |v: Option<String>| v.unwrap_or_else(|| "unknown".into());
            w.push(format!("different {what}: {} vs {}", show(x), show(y)));
        }
    };
    fn plan(r: &Run) -> Option<&energy_star_results::records::RunPlan> {
        r.record.as_ref().map(|x| &x.plan)
    }
    differs("model", plan(a).map(|p| p.models.join(", ")), plan(b).map(|p| p.models.join(", ")));
    differs("dataset", plan(a).map(|p| p.datasets.join(", ")), plan(b).map(|p| p.datasets.join(", ")));
    let tokens = |r: &Run| {
        r.record
            .as_ref()
            .and_then(|x| x.facts.as_ref())
            .and_then(|f| f.tokens)
            .map(|t| format!("{} in / {} out", t.input, t.output))
    };
    differs("token counts", tokens(a), tokens(b));
    let devices = |r: &Run, k: DeviceKind| {
        r.meter
            .as_ref()
            .map(|m| m.devices.iter().filter(|d| d.kind == k).map(|d| d.name.clone()).collect::<Vec<_>>().join(", "))
    };
    differs("GPU model", devices(a, DeviceKind::Gpu), devices(b, DeviceKind::Gpu));
    let source = |r: &Run| r.meter.as_ref().and_then(|m| m.source_of(kind)).map(|s| s.as_str().to_string());
    differs(&format!("{} energy source", kind_name(kind)), source(a), source(b));
    let mut same_config = false;
    if let (Some(x), Some(y)) = (effective_config(a), effective_config(b)) {
        let keys = config_differences(&x, &y);
        same_config = keys.is_empty();
        if !keys.is_empty() {
            w.push(format!("the configs differ (is that the comparison you meant?): {}", keys.join("; ")));
        }
    }
    // The same work at another speed: the machine changed between the runs, which no interval
    // of iterations within one run covers.
    if let (true, true, Some((da, n)), Some((db, _))) =
        (within_run_intervals, same_config, mean_window_s(a), mean_window_s(b))
        && (db / da - 1.0).abs() >= SPEED_CHANGE
    {
        w.push(format!(
            "the same config ran at another speed: B's metered windows last {:.0} % {} than A's (mean {db:.2} s vs {da:.2} s over {n} windows); the machine changed between the runs (load, clocks, temperature), and the intervals, which cover only iterations within each run, do not include that",
            (db / da - 1.0).abs() * 100.0,
            if db > da { "longer" } else { "shorter" },
        ));
    }
    if kind == DeviceKind::Cpu {
        let estimated = [a, b]
            .iter()
            .any(|r| r.meter.as_ref().and_then(|m| m.source_of(kind)).is_some_and(|s| !s.is_measurement()));
        if estimated {
            w.push(
                "CPU energy is an estimate (no RAPL here), not a measurement: the comparison is of the estimate".into(),
            );
        }
    }
    w
}

/// A relative change of the metered windows' mean duration between runs of one config that
/// `compare` reports as a change of the machine (a run's own iterations vary by a few %).
const SPEED_CHANGE: f64 = 0.10;

/// The mean duration of the windows the run's phases are read from, s, and their number.
fn mean_window_s(r: &Run) -> Option<(f64, usize)> {
    let facts = r.record.as_ref()?.facts.as_ref()?;
    let meter = r.meter.as_ref()?;
    let mut ids: Vec<u32> = facts.phases.iter().flat_map(|p| p.windows.iter().copied()).collect();
    ids.sort_unstable();
    ids.dedup();
    let durations: Vec<f64> = ids.iter().filter_map(|id| meter.window(*id)).map(|w| w.duration_s).collect();
    let mean = durations.iter().sum::<f64>() / durations.len().max(1) as f64;
    (!durations.is_empty() && mean > 0.0).then_some((mean, durations.len()))
}

/// The run's `effective_config.yaml` (the host's copy of what ran), flattened to dotted keys.
fn effective_config(r: &Run) -> Option<std::collections::BTreeMap<String, String>> {
    let text = std::fs::read_to_string(r.dir.join("effective_config.yaml")).ok()?;
    let tree: serde_json::Value = serde_norway::from_str(&text).ok()?;
    fn flatten(prefix: &str, v: &serde_json::Value, out: &mut std::collections::BTreeMap<String, String>) {
        match v {
            serde_json::Value::Object(m) => {
                for (k, v) in m {
                    let key = if prefix.is_empty() { k.clone() } else { format!("{prefix}.{k}") };
                    flatten(&key, v, out);
                }
            }
            other => {
                out.insert(prefix.to_string(), other.to_string());
            }
        }
    }
    let mut out = std::collections::BTreeMap::new();
    flatten("", &tree, &mut out);
    // Where results went is not what ran.
    out.retain(|k, _| !k.starts_with("hydra."));
    Some(out)
}

/// `key (a vs b)` for every key whose value differs or exists in one config only.
fn config_differences(
    a: &std::collections::BTreeMap<String, String>,
    b: &std::collections::BTreeMap<String, String>,
) -> Vec<String> {
    let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
    keys.into_iter()
        .filter(|k| a.get(*k) != b.get(*k))
        .map(|k| {
            let show = |v: Option<&String>| v.cloned().unwrap_or_else(|| "unset".into());
            format!("{k} ({} vs {})", show(a.get(k)), show(b.get(k)))
        })
        .collect()
}

fn fmt_describe(d: &Describe) -> String {
    match d.ci95 {
        Some([lo, hi]) => format!("{:.5} [{lo:.5}, {hi:.5}] n={}", d.mean, d.n),
        None => format!("{:.5} n={}", d.mean, d.n),
    }
}

/// The terminal table.
pub fn table(r: &CompareReport) -> String {
    let mut out = String::new();
    let kind = if r.kind == "gpu" { "GPU" } else { "CPU" };
    for c in &r.comparisons {
        let _ = writeln!(
            out,
            "A: {}\nB: {}\n{kind} energy, Wh: mean [95 % CI] of each side (a run's iterations, or a group's runs); B − A with Welch's 95 % CI",
            c.baseline, c.other
        );
        let rows: Vec<[String; 5]> = c
            .phases
            .iter()
            .map(|p| {
                [
                    p.phase.clone(),
                    fmt_describe(&p.baseline),
                    fmt_describe(&p.other),
                    format!("{:+.5} [{:+.5}, {:+.5}]", p.difference.diff, p.difference.ci95[0], p.difference.ci95[1]),
                    p.verdict.clone(),
                ]
            })
            .collect();
        let header = ["phase".to_string(), "A".into(), "B".into(), "B − A".into(), "verdict".into()];
        let widths: Vec<usize> = (0..5)
            .map(|i| rows.iter().map(|r| r[i].chars().count()).chain([header[i].chars().count()]).max().unwrap_or(0))
            .collect();
        for row in std::iter::once(&header).chain(rows.iter()) {
            let cells: Vec<String> = row.iter().zip(&widths).map(|(c, w)| format!("{c:<w$}")).collect();
            let _ = writeln!(out, "{}", cells.join("  ").trim_end());
        }
        for p in &c.phases {
            if let Some(t) = &p.tolerance_verdict {
                let _ = writeln!(out, "{}: {t}", p.phase);
            }
            if !p.flagged.is_empty() {
                let _ = writeln!(
                    out,
                    "{}: flagged iterations kept (as upstream's mean keeps them): {}",
                    p.phase,
                    p.flagged.join(", ")
                );
            }
        }
        if !c.not_compared.is_empty() {
            let _ = writeln!(
                out,
                "not compared (repeated in one run only, or no {kind} figure): {}",
                c.not_compared.join(", ")
            );
        }
        for w in &c.warnings {
            let _ = writeln!(out, "warning: {w}");
        }
        out.push('\n');
    }
    let _ = writeln!(out, "note: {}", r.scope);
    out
}

/// A page with the table and each phase's measures side by side.
fn html(r: &CompareReport, runs: &[Run]) -> String {
    let esc = svg::esc;
    let kind = if r.kind == "gpu" { DeviceKind::Gpu } else { DeviceKind::Cpu };
    let mut body = String::new();
    let _ = write!(body, "<pre>{}</pre>", esc(&table(r)));
    let mut phases: Vec<String> = Vec::new();
    for c in &r.comparisons {
        for p in &c.phases {
            if !phases.contains(&p.phase) {
                phases.push(p.phase.clone());
            }
        }
    }
    for (i, phase) in phases.iter().enumerate() {
        let groups: Vec<svg::DotGroup> = runs
            .iter()
            .enumerate()
            .filter_map(|(n, run)| {
                let p = run.repeated().into_iter().find(|p| &p.phase == phase)?;
                let k = p.kind(kind)?;
                let (values, flagged) = k
                    .measures_wh
                    .iter()
                    .enumerate()
                    .filter_map(|(j, v)| v.map(|v| (v, k.excluded.contains(&j))))
                    .unzip();
                Some(svg::DotGroup {
                    label: format!(
                        "{} {}",
                        (b'A' + n as u8) as char,
                        run.dir.file_name().and_then(|f| f.to_str()).unwrap_or("")
                    ),
                    values,
                    flagged,
                    mean: k.all.map(|a| a.mean),
                    ci95: k.all.and_then(|a| a.ci95),
                })
            })
            .collect();
        body.push_str(&svg::dot_plot(
            &format!("fig-{i}"),
            &format!("{phase}: {} energy per iteration", kind_name(kind)),
            "Wh",
            &groups,
        ));
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>energy-star compare</title><style>body{{font-family:sans-serif;max-width:960px;margin:2em auto}}pre{{overflow-x:auto}}</style></head><body><h1>energy-star compare</h1>{body}<p>Dots: each iteration (hollow: flagged). Bar: the mean. Whisker: its 95 % Student's t interval. Differences use Welch's interval.</p></body></html>\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn differing_config_keys_are_named_with_both_values() {
        let a: std::collections::BTreeMap<String, String> =
            [("scenario.input_shapes.batch_size", "8"), ("backend.model", "\"m\"")]
                .map(|(k, v)| (k.into(), v.into()))
                .into();
        let mut b = a.clone();
        b.insert("scenario.input_shapes.batch_size".into(), "1".into());
        b.insert("scenario.iterations".into(), "5".into());
        assert_eq!(
            config_differences(&a, &b),
            vec![
                "scenario.input_shapes.batch_size (8 vs 1)".to_string(),
                "scenario.iterations (unset vs 5)".to_string()
            ]
        );
        assert!(config_differences(&a, &a).is_empty());
    }

    #[test]
    fn tolerances_parse_as_percentages() {
        assert_eq!(parse_tolerance("5%").unwrap(), 5.0);
        assert_eq!(parse_tolerance(" 2.5 % ").unwrap(), 2.5);
        for bad in ["", "five", "0", "-3%", "150%", "NaN"] {
            assert!(parse_tolerance(bad).unwrap_err().to_string().contains("is not a percentage"), "{bad}");
        }
    }
}
