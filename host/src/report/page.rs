//! The HTML page of a report: one function per section, each from the folder's records.

use std::fmt::Write;

use energy_star_results::records::{self, PhaseDerivation, RunState};

use super::svg::esc;
use super::{Figure, Folder, dedup, fmt_opt, per_unit};

const STYLE: &str = "body{font-family:sans-serif;max-width:960px;margin:2em auto;color:#222}table{border-collapse:collapse;margin:1em 0}td,th{border:1px solid #ccc;padding:4px 8px;text-align:left;vertical-align:top}.warn{color:#8a4b00}.bad{color:#a00;font-weight:bold}figure{margin:1.5em 0}figcaption{font-size:90%;color:#444}";

/// The whole page.
pub(super) fn html(title: &str, f: &Folder, figures: &[Figure]) -> String {
    let mut h = String::new();
    let _ = writeln!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{}</title><style>{STYLE}</style></head><body>",
        esc(title)
    );
    let _ = writeln!(h, "<h1>{}</h1>", esc(title));
    run_table(&mut h, f);
    figures_section(&mut h, figures);
    per_unit_table(&mut h, f);
    phases_table(&mut h, f);
    sources_tables(&mut h, f);
    warnings_list(&mut h, f);
    let _ = writeln!(
        h,
        "<p><small>Written by energy-star {} from the host's records in this folder; it measures nothing itself.</small></p></body></html>",
        env!("CARGO_PKG_VERSION")
    );
    h
}

fn row(h: &mut String, k: &str, v: &str) {
    let _ = write!(h, "<tr><th>{}</th><td>{}</td></tr>", esc(k), esc(v));
}

/// State, backend, config, GPUs, the leaderboard total and the other devices' energy.
fn run_table(h: &mut String, f: &Folder) {
    h.push_str("<h2>Run</h2><table>");
    match &f.status {
        Some(s) => {
            let _ = write!(
                h,
                "<tr><th>state</th><td class=\"{}\">{}</td></tr>",
                if s.state == RunState::Complete { "" } else { "bad" },
                esc(s.state.as_str())
            );
            row(h, "backend", &s.backend);
            row(h, "config_name", &s.config_name);
            row(h, "config_source", &s.config_source);
            for r in s.incomplete_reasons.iter().chain(&s.problems) {
                let _ = write!(h, "<tr><th>incomplete</th><td class=\"bad\">{}</td></tr>", esc(r));
            }
        }
        None => row(h, "state", "no run_status.json: not written by `energy-star run`"),
    }
    if let Some(r) = &f.record {
        let gpus = r.facts.as_ref().map(|f| &f.gpus).unwrap_or(&r.plan.gpus);
        let used = match gpus {
            records::GpuUse::Gpus(ids) => format!("GPUs {ids:?} (CUDA numbering)"),
            records::GpuUse::None(why) => format!("none: {why}"),
        };
        row(h, "GPUs used", &used);
        row(h, "plugin API", &r.api_version);
    }
    if let Some((s, d)) = &f.summary {
        let total = match (s.total, &d.gpu_absent_reason, d.complete) {
            (Some(t), _, _) => format!("{t:.2} Wh (GPU; {})", s.format),
            (None, _, false) => format!(
                "n/a: the run is incomplete{}",
                d.partial_total_wh.map(|t| format!(" ({t:.4} Wh over what was measured)")).unwrap_or_default()
            ),
            (None, Some(why), _) => format!("n/a: {why}"),
            (None, None, _) => "n/a".into(),
        };
        row(h, "GPU energy (leaderboard total)", &total);
        row(h, "CPU energy", &fmt_opt(d.cpu_wh, "Wh"));
        row(h, "RAM energy", &fmt_opt(d.ram_wh, "Wh"));
        row(h, "summarized by", &d.summarizer);
    }
    h.push_str("</table>\n");
}

fn figures_section(h: &mut String, figures: &[Figure]) {
    h.push_str("<h2>Figures</h2>\n");
    for fig in figures {
        let _ = writeln!(
            h,
            "<figure>{}<figcaption>{} (also <a href=\"figures/{file}\">figures/{file}</a>)</figcaption></figure>",
            fig.svg,
            esc(&fig.caption),
            file = fig.file
        );
    }
}

fn per_unit_table(h: &mut String, f: &Folder) {
    let per_unit = per_unit(f);
    if per_unit.is_empty() {
        return;
    }
    h.push_str("<h2>Per request and per token</h2><table>");
    for (k, v) in &per_unit {
        row(h, k, v);
    }
    h.push_str("</table>\n");
}

/// How each phase was obtained, from the run's facts.
fn phases_table(h: &mut String, f: &Folder) {
    let Some(facts) = f.facts() else { return };
    h.push_str("<h2>Phases</h2><table><tr><th>phase</th><th>how</th><th>windows</th><th>complete</th></tr>");
    for p in &facts.phases {
        let how = match p.derivation {
            PhaseDerivation::Measured => "measured".to_string(),
            PhaseDerivation::MeanOfWindows => "mean of its windows".to_string(),
            PhaseDerivation::DifferenceOfWindows | PhaseDerivation::Attributed => {
                p.definition.clone().unwrap_or_default()
            }
        };
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td class=\"{}\">{}</td></tr>",
            esc(&p.name),
            esc(&how),
            esc(&p.windows.iter().map(u32::to_string).collect::<Vec<_>>().join(", ")),
            if p.complete { "" } else { "bad" },
            if p.complete { "yes" } else { "no: cut short" }
        );
    }
    h.push_str("</table>\n");
}

/// Where every figure comes from: the devices and their sources, then every metered window.
fn sources_tables(h: &mut String, f: &Folder) {
    h.push_str("<h2>Sources</h2><table><tr><th>device</th><th>name</th><th>source</th><th>measured</th></tr>");
    for d in f.meter.iter().flat_map(|m| &m.devices) {
        let _ = write!(
            h,
            "<tr><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            esc(&d.device),
            esc(&d.name),
            esc(d.source.as_str()),
            if d.measured { "yes" } else { "no: an estimate" }
        );
    }
    h.push_str("</table>\n");
    let Some(m) = &f.meter else { return };
    h.push_str("<h3>Metered windows</h3><table><tr><th>window</th><th>duration (s)</th><th>device</th><th>energy (J)</th><th>source</th><th>flags</th></tr>");
    for w in &m.windows {
        for d in &w.devices {
            let flags: Vec<&str> = d.flags.iter().map(|f| f.as_str()).collect();
            let _ = write!(
                h,
                "<tr><td>{} ({})</td><td>{:.3}</td><td>{}</td><td>{}</td><td>{}</td><td class=\"warn\">{}</td></tr>",
                esc(&w.name),
                w.id,
                w.duration_s,
                esc(&d.device),
                fmt_opt(d.energy_j, ""),
                esc(d.source.as_str()),
                esc(&flags.join(", "))
            );
        }
    }
    h.push_str("</table>\n");
}

/// The meter's notices, the summarizer's and the backend's warnings, each once.
fn warnings_list(h: &mut String, f: &Folder) {
    let warnings = dedup(
        f.meter
            .iter()
            .flat_map(|m| m.notices.iter().cloned())
            .chain(f.summary.iter().flat_map(|(_, d)| d.warnings.iter().cloned()))
            .chain(f.facts().into_iter().flat_map(|x| x.warnings.iter().cloned())),
    );
    if warnings.is_empty() {
        return;
    }
    h.push_str("<h2>Warnings</h2><ul>");
    for w in &warnings {
        let _ = write!(h, "<li class=\"warn\">{}</li>", esc(w));
    }
    h.push_str("</ul>\n");
}
