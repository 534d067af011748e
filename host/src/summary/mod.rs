//! `energy-star summarize`: find a report, let every summarizer plugin say how sure it is of the
//! format, summarize with the most confident, and write `GPU_ENERGY_WH.txt` and
//! `GPU_ENERGY_SUMMARY.json` next to the report, atomically.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde_json::{Map, Value, json};
use thiserror::Error;

use crate::plugins::{Plugin, PluginError, PluginKind, PluginRuntime, PluginSet, Summary};
use crate::results::{ResultsError, write_atomic};

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
    #[error("report {path} is in no format the installed summarizers read ({formats}); add a summarizer plugin for it (see docs/plugins.md)")]
    UnknownFormat { path: PathBuf, formats: String },
    #[error("summarizing {path}: {source}")]
    Plugin { path: PathBuf, source: PluginError },
    #[error(transparent)]
    Write(#[from] ResultsError),
}

/// Finds the report: `target` itself if it is a file, else a report directly in `target`, else
/// the newest one anywhere below it.
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

fn walk(dir: &Path, name: &str, newest: &mut Option<(SystemTime, PathBuf)>, depth: usize) {
    if depth > 32 {
        return;
    }
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(ft) = e.file_type() else { continue };
        if ft.is_dir() {
            walk(&p, name, newest, depth + 1);
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
    /// The rounded total as written to `GPU_ENERGY_WH.txt`.
    pub total_wh_rounded: f64,
    pub summary_json: Value,
}

/// Picks the summarizer for `text`: the most confident at or above [`MIN_CONFIDENCE`].
pub fn choose<'a>(rt: &PluginRuntime, plugins: &'a PluginSet, text: &str, path: &Path) -> Result<&'a Plugin, SummaryError> {
    let mut best: Option<(f32, &Plugin)> = None;
    for p in plugins.of_kind(PluginKind::Summarizer) {
        let c = p.detect(rt, text).map_err(|source| SummaryError::Plugin { path: path.to_path_buf(), source })?;
        if c >= MIN_CONFIDENCE && best.is_none_or(|(bc, _)| c > bc) {
            best = Some((c, p));
        }
    }
    best.map(|(_, p)| p).ok_or_else(|| SummaryError::UnknownFormat {
        path: path.to_path_buf(),
        formats: plugins.of_kind(PluginKind::Summarizer).flat_map(|p| p.meta.formats.clone()).collect::<Vec<_>>().join(", "),
    })
}

/// Summarizes the report found at `target` and writes the two summary files beside it.
pub fn summarize(rt: &PluginRuntime, plugins: &PluginSet, target: &Path) -> Result<Summarized, SummaryError> {
    let report = find_report(target)?;
    let text = std::fs::read_to_string(&report).map_err(|source| SummaryError::Read { path: report.clone(), source })?;
    // The host checks JSON itself so that a truncated report gets one clear message, not a
    // "no summarizer" answer.
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(&text) {
        return Err(SummaryError::Json { path: report.clone(), why: e.to_string() });
    }
    let plugin = choose(rt, plugins, &text, &report)?;
    let summary = plugin.summarize(rt, &text).map_err(|source| SummaryError::Plugin { path: report.clone(), source })?;
    let (total_wh_rounded, summary_json) = render(&summary, &plugin.meta.label(), &report);
    let dir = report.parent().unwrap_or(Path::new("."));
    write_atomic(&dir.join("GPU_ENERGY_WH.txt"), format!("{total_wh_rounded:.2}\n").as_bytes())?;
    let mut body = serde_json::to_string_pretty(&summary_json).unwrap_or_default();
    body.push('\n');
    write_atomic(&dir.join("GPU_ENERGY_SUMMARY.json"), body.as_bytes())?;
    Ok(Summarized { report, summarizer: plugin.meta.label(), summary, total_wh_rounded, summary_json })
}

/// Rounds as the original summarizer does: `round(x + 1e-12, 2)`.
pub fn round2(x: f64) -> f64 {
    let s = format!("{:.2}", x + 1e-12);
    s.parse().unwrap_or(x)
}

/// The summary JSON: the original summarizer's keys first (`units`, `total`, `format`,
/// `preprocess_wh`, `prefill_wh`, `decode_wh`), then every phase found, then what energy-star
/// adds (which phases were counted, warnings, provenance).
pub fn render(summary: &Summary, summarizer: &str, report: &Path) -> (f64, Value) {
    let total = round2(summary.total_wh);
    let mut m = Map::new();
    m.insert("units".into(), json!("Wh"));
    m.insert("total".into(), json!(total));
    m.insert("format".into(), json!(summary.format));
    let phase_sum = |names: &[&str]| -> f64 {
        summary.phases.iter().filter(|p| names.contains(&p.name.as_str())).map(|p| p.energy_wh).sum()
    };
    // The leaderboard's three phases: on `main` reports preprocess is `preprocess_dataset`, and
    // a non-generation task's measured phase (`forward`, `call`) stands where prefill+decode do.
    m.insert("preprocess_wh".into(), json!(round2(phase_sum(&["preprocess", "preprocess_dataset"]))));
    m.insert("prefill_wh".into(), json!(round2(phase_sum(&["prefill"]))));
    m.insert("decode_wh".into(), json!(round2(phase_sum(&["decode"]))));
    for p in &summary.phases {
        let key = format!("{}_wh", p.name);
        if !m.contains_key(&key) {
            m.insert(key, json!(round2(p.energy_wh)));
        }
    }
    m.insert("total_unrounded_wh".into(), json!(summary.total_wh));
    m.insert(
        "counted_phases".into(),
        json!(summary.phases.iter().filter(|p| p.counted).map(|p| p.name.clone()).collect::<Vec<_>>()),
    );
    m.insert(
        "phases".into(),
        Value::Array(
            summary
                .phases
                .iter()
                .map(|p| json!({"name": p.name, "energy_wh": p.energy_wh, "counted": p.counted}))
                .collect(),
        ),
    );
    m.insert("warnings".into(), json!(summary.warnings));
    m.insert(
        "source".into(),
        json!("GPU energy as the report states it; energy-star converted units and summed phases but measured nothing here"),
    );
    m.insert("report".into(), json!(report.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default()));
    m.insert("summarizer".into(), json!(summarizer));
    (total, Value::Object(m))
}

/// The banner the original summarizer prints.
pub fn banner(s: &Summarized) -> String {
    let phases: Vec<String> = s.summary.phases.iter().filter(|p| p.counted).map(|p| format!("{}={:.2} Wh", p.name, p.energy_wh)).collect();
    let mut out = format!(
        "\n===============================\nGPU Energy (Wh): {:.2}\n({})\n===============================\n",
        s.total_wh_rounded,
        phases.join(", ")
    );
    out.push_str(&format!("format: {} (read by {})\nreport: {}\n", s.summary.format, s.summarizer, s.report.display()));
    for w in &s.summary.warnings {
        out.push_str(&format!("warning: {w}\n"));
    }
    out
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
        std::fs::write(dir.path().join("benchmark_report.json"), "{}").expect("w");
        assert_eq!(find_report(dir.path()).expect("found"), dir.path().join("benchmark_report.json"));
    }
}
