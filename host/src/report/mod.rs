//! `energy-star report DIR`: a self-contained HTML page about one results folder, with its
//! figures also written as SVG files: power over time per device with the metered phases
//! shaded, energy per phase, energy per request or per token where the run knows it, and the
//! source and warnings of every figure. It reads only what the run wrote; it measures nothing.

pub mod svg;

use std::collections::BTreeMap;
use std::fmt::Write;
use std::path::{Path, PathBuf};

use serde_json::Value;
use thiserror::Error;

use std::process::ExitCode;

use energy_star_results::{ResultsError, write_atomic};

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
use svg::{Series, Span, esc};

#[derive(Debug, Error)]
pub enum ReportError {
    #[error("{0} is not a folder")]
    NotAFolder(PathBuf),
    #[error(
        "{0} is not a results folder: it has none of run_status.json, benchmark_report.json, energy_meter.json, energy_timeline.csv{1}"
    )]
    NotResults(PathBuf, String),
    #[error(
        "{dir} holds no measurements: its run ({state}) wrote no report and no energy record{why}; there is nothing to draw"
    )]
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

fn read_json(dir: &Path, name: &str) -> Result<Option<Value>, ReportError> {
    let p = dir.join(name);
    match std::fs::read_to_string(&p) {
        Ok(t) => serde_json::from_str(&t)
            .map(Some)
            .map_err(|e| ReportError::Unreadable { file: p, why: format!("not JSON: {e}") }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(ReportError::Unreadable { file: p, why: e.to_string() }),
    }
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

fn num(v: &Value) -> Option<f64> {
    v.as_f64()
}

fn fmt_opt(v: Option<f64>, unit: &str) -> String {
    match v {
        Some(x) if x.abs() >= 0.01 || x == 0.0 => format!("{x:.4} {unit}"),
        Some(x) => format!("{x:.3e} {unit}"),
        None => "n/a".into(),
    }
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

/// Writes `report.html` and `figures/*.svg` into `dir`.
pub fn write_report(dir: &Path) -> Result<ReportDone, ReportError> {
    if !dir.is_dir() {
        return Err(ReportError::NotAFolder(dir.to_path_buf()));
    }
    let status = read_json(dir, "run_status.json")?;
    let summary = read_json(dir, "GPU_ENERGY_SUMMARY.json")?;
    let meter = read_json(dir, "energy_meter.json")?;
    let report = read_json(dir, "benchmark_report.json")?;
    let timeline = std::fs::read_to_string(dir.join("energy_timeline.csv")).ok();
    if report.is_none() && meter.is_none() && timeline.is_none() {
        return Err(match &status {
            Some(s) => ReportError::NoMeasurements {
                dir: dir.to_path_buf(),
                state: s["state"].as_str().unwrap_or("state unknown").to_string(),
                why: s["error"].as_str().map(|e| format!(" (error: {e})")).unwrap_or_default(),
            },
            None => ReportError::NotResults(dir.to_path_buf(), earlier_runs_hint(dir)),
        });
    }
    let mut figures: Vec<(String, String, String)> = Vec::new(); // (file, caption, svg)

    // Power over time, phases shaded.
    let series = match &timeline {
        Some(t) => {
            power_series(t).map_err(|why| ReportError::Unreadable { file: dir.join("energy_timeline.csv"), why })?
        }
        None => Vec::new(),
    };
    let windows = match std::fs::read_to_string(dir.join("energy_windows.csv")) {
        Ok(t) => spans(&t).map_err(|why| ReportError::Unreadable { file: dir.join("energy_windows.csv"), why })?,
        Err(_) => Vec::new(),
    };
    figures.push((
        "power.svg".into(),
        "Power per device over the run; shaded: the metered windows (phases). Estimated devices show the estimate's power.".into(),
        svg::line_chart("fig-power", "Power over time", "time since the meter started (s)", "power (W)", &series, &windows),
    ));

    // Energy per phase, from the summary (the leaderboard's view of the report).
    let phases: Vec<&Value> =
        summary.as_ref().and_then(|s| s["phases"].as_array()).map(|a| a.iter().collect()).unwrap_or_default();
    if !phases.is_empty() {
        let cats: Vec<String> = phases
            .iter()
            .map(|p| {
                format!(
                    "{}{}",
                    p["name"].as_str().unwrap_or("?"),
                    if p["counted"] == false { " (not counted)" } else { "" }
                )
            })
            .collect();
        let col = |k: &str| phases.iter().map(|p| num(&p[k])).collect::<Vec<_>>();
        let bars = vec![
            ("GPU".to_string(), col("gpu_wh")),
            ("CPU".to_string(), col("cpu_wh")),
            ("RAM".to_string(), col("ram_wh")),
        ];
        figures.push((
            "energy_by_phase.svg".into(),
            "Energy per phase (Wh) as the report states it; n/a where a device was not measured. Negative decode values come from decode = generate − prefill.".into(),
            svg::bar_chart("fig-phases", "Energy per phase", "energy (Wh)", &cats, &bars),
        ));
    }

    // Per request, where the run wrote one record per request.
    let mut per_unit: Vec<(String, String)> = Vec::new();
    if let Ok(text) = std::fs::read_to_string(dir.join("requests.jsonl")) {
        let recs: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        let attributed: Vec<f64> = recs.iter().filter_map(|r| num(&r["gpu_energy_j_attributed"])).collect();
        let latencies: Vec<f64> =
            recs.iter().filter(|r| r["success"] == true).filter_map(|r| num(&r["e2el_ms"])).collect();
        if !attributed.is_empty() {
            figures.push(("energy_per_request.svg".into(), "GPU energy per request (J), attributed: steady-state J per output token × the request's output tokens (ML.ENERGY's method), not measured per request.".into(), svg::histogram("fig-requests", "GPU energy per request (attributed)", "J", &attributed, 12)));
        } else if !latencies.is_empty() {
            figures.push(("latency_per_request.svg".into(), "End-to-end latency per request (ms); no per-request energy is known for this run (no GPU metered, or no steady state).".into(), svg::histogram("fig-requests", "End-to-end latency per request", "ms", &latencies, 12)));
        }
        per_unit.push(("requests recorded".into(), recs.len().to_string()));
    }
    if let Some(r) = &report {
        for (label, path) in [
            ("GPU J per output token, whole run", "/energy_star/energy/whole_run/gpu_energy_per_output_token_j"),
            ("GPU J per output token, steady state", "/energy_star/energy/steady_state/gpu_energy_per_output_token_j"),
            (
                "GPU J per request (whole run ÷ completed, attributed)",
                "/energy_star/energy/whole_run/gpu_energy_per_request_j_attributed",
            ),
            ("average GPU power, whole run (W)", "/energy_star/energy/whole_run/gpu_avg_power_w"),
        ] {
            if let Some(v) = r.pointer(path).and_then(Value::as_f64) {
                per_unit.push((label.into(), format!("{v:.4}")));
            }
        }
        if let Some(why) = r.pointer("/energy_star/energy/steady_state/unavailable").and_then(Value::as_str) {
            per_unit.push(("steady state".into(), format!("not measured: {why}")));
        }
        if let (Some(v), Some(u)) = (
            r.pointer("/decode/efficiency/value").and_then(Value::as_f64),
            r.pointer("/decode/efficiency/unit").and_then(Value::as_str),
        ) {
            per_unit.push((
                "decode efficiency (optimum-benchmark: tokens per kWh of total energy)".into(),
                format!("{v:.4e} {u}"),
            ));
        }
    }

    // The page.
    let title = format!("energy-star report: {}", dir.file_name().and_then(|n| n.to_str()).unwrap_or("results"));
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>body{{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}}table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}}.warn{{color:#8a4b00}}.bad{{color:#a00;font-weight:bold}}figure{{margin:1.5em 0}}figcaption{{font-size:90%;color:#444}}</style></head><body>\n",
        esc(&title)
    );
    let _ = writeln!(h, "<h1>{}</h1>", esc(&title));
    // The run and its state.
    h.push_str("<h2>Run</h2><table>");
    let row = |h: &mut String, k: &str, v: &str| {
        let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
    };
    if let Some(s) = &status {
        let state = s["state"].as_str().unwrap_or("?");
        let _ = write!(
            h,
            "<tr><th>state</th><td class=\"{}\">{}</td></tr>",
            if state == "complete" { "" } else { "bad" },
            esc(state)
        );
        for k in ["backend", "config_name", "config_source"] {
            if let Some(v) = s[k].as_str() {
                row(&mut h, k, v);
            }
        }
        for r in s["incomplete_reasons"]
            .as_array()
            .into_iter()
            .flatten()
            .chain(s["problems"].as_array().into_iter().flatten())
        {
            let _ = write!(h, "<tr><th>incomplete</th><td class=\"bad\">{}</td></tr>", esc(r.as_str().unwrap_or("")));
        }
    } else {
        row(&mut h, "state", "no run_status.json: not written by `energy-star run`");
    }
    if let Some(s) = &summary {
        let total = match num(&s["total"]) {
            Some(t) => format!("{t:.2} Wh (GPU; {})", s["format"].as_str().unwrap_or("?")),
            None => format!("n/a: {}", s["gpu_absent_reason"].as_str().unwrap_or("no GPU energy in the report")),
        };
        row(&mut h, "GPU energy (leaderboard total)", &total);
        row(&mut h, "CPU energy", &fmt_opt(num(&s["cpu_wh"]), "Wh"));
        row(&mut h, "RAM energy", &fmt_opt(num(&s["ram_wh"]), "Wh"));
        if let Some(v) = s["summarizer"].as_str() {
            row(&mut h, "summarized by", v);
        }
    }
    h.push_str("</table>\n");

    // Figures.
    h.push_str("<h2>Figures</h2>\n");
    for (file, caption, fig) in &figures {
        let _ = writeln!(
            h,
            "<figure>{fig}<figcaption>{} (also <a href=\"figures/{file}\">figures/{file}</a>)</figcaption></figure>",
            esc(caption)
        );
    }
    if !per_unit.is_empty() {
        h.push_str("<h2>Per request and per token</h2><table>");
        for (k, v) in &per_unit {
            row(&mut h, k, v);
        }
        h.push_str("</table>\n");
    }

    // Sources: where every figure comes from.
    h.push_str("<h2>Sources</h2><table><tr><th>device</th><th>name</th><th>source</th><th>measured</th></tr>");
    for d in meter.as_ref().and_then(|m| m["devices"].as_array()).into_iter().flatten() {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(d["device"].as_str().unwrap_or("?")),
            esc(d["name"].as_str().unwrap_or("")),
            esc(d["source"].as_str().unwrap_or("?")),
            if d["measured"] == true { "yes" } else { "no: an estimate" }
        );
    }
    h.push_str("</table>\n");
    if let Some(ws) = meter.as_ref().and_then(|m| m["windows"].as_array()) {
        h.push_str("<h3>Metered windows</h3><table><tr><th>window</th><th>duration (s)</th><th>device</th><th>energy (J)</th><th>source</th><th>flags</th></tr>");
        for w in ws {
            for d in w["devices"].as_array().into_iter().flatten() {
                let flags: Vec<&str> = d["flags"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
                let _ = write!(
                    h,
                    "<tr><td>{}</td><td>{:.3}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"warn\">{}</td></tr>",
                    esc(w["name"].as_str().unwrap_or("?")),
                    num(&w["duration_s"]).unwrap_or(0.0),
                    esc(d["device"].as_str().unwrap_or("?")),
                    fmt_opt(num(&d["energy_j"]), ""),
                    esc(d["source"].as_str().unwrap_or("?")),
                    esc(&flags.join(", "))
                );
            }
        }
        h.push_str("</table>\n");
    }
    let warnings: Vec<String> = meter
        .as_ref()
        .and_then(|m| m["notices"].as_array())
        .into_iter()
        .flatten()
        .chain(summary.as_ref().and_then(|s| s["warnings"].as_array()).into_iter().flatten())
        .chain(
            report
                .as_ref()
                .and_then(|r| r.pointer("/energy_star/warnings"))
                .and_then(Value::as_array)
                .into_iter()
                .flatten(),
        )
        .filter_map(|w| w.as_str().map(str::to_string))
        .collect();
    if !warnings.is_empty() {
        h.push_str("<h2>Warnings</h2><ul>");
        for w in &warnings {
            let _ = write!(h, "<li class=\"warn\">{}</li>", esc(w));
        }
        h.push_str("</ul>\n");
    }
    let _ = writeln!(
        h,
        "<p><small>Written by energy-star {} from the files in this folder; it measures nothing itself.</small></p></body></html>",
        env!("CARGO_PKG_VERSION")
    );

    let fig_dir = dir.join("figures");
    energy_star_results::ensure_dir(&fig_dir)?;
    let mut written = Vec::new();
    for (file, _, fig) in &figures {
        let p = fig_dir.join(file);
        write_atomic(&p, format!("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n{fig}\n").as_bytes())?;
        written.push(p);
    }
    let html = dir.join("report.html");
    write_atomic(&html, h.as_bytes())?;
    Ok(ReportDone { html, figures: written })
}

#[cfg(test)]
mod tests {
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
        std::fs::write(d.path().join("run_status.json"), r#"{"state": "failed", "error": "no such model"}"#)
            .expect("write");
        let err = write_report(d.path()).unwrap_err().to_string();
        assert!(err.contains("holds no measurements") && err.contains("no such model"), "{err}");
        assert!(!d.path().join("report.html").exists());
        assert!(matches!(write_report(&d.path().join("absent")), Err(ReportError::NotAFolder(_))));
        std::fs::write(d.path().join("run_status.json"), "{not json").expect("write");
        assert!(write_report(d.path()).unwrap_err().to_string().contains("not JSON"));
    }
}
