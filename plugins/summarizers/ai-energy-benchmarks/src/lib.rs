//! Summarizer for ai_energy_benchmarks reports (AI Energy Score's `pytorch` and `vllm` engines).
//!
//! That format meters the whole prompt loop as one window, so it has no phases: its GPU energy
//! is reported as decode, as the original summarizer does. A report written with metrics
//! disabled has an empty `energy` object; summarizing it is an error, never a zero.

use energy_star_plugin_sdk::summarizer::{Guest, LeaderboardPhase, PhaseEnergy, SummarizerInfo, Summary};
use serde_json::{Map, Value};

const FORMAT: &str = "ai_energy_benchmarks";

struct AiEnergyBenchmarks;

impl Guest for AiEnergyBenchmarks {
    fn info() -> SummarizerInfo {
        SummarizerInfo {
            name: FORMAT.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "ai_energy_benchmarks reports (energy.gpu_energy_wh), as written by AI Energy Score's pytorch and vllm engines".into(),
            formats: vec![FORMAT.into()],
        }
    }

    fn detect(report: String) -> f32 {
        let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(&report) else { return 0.0 };
        match obj.get("energy") {
            Some(Value::Object(e)) if e.contains_key("gpu_energy_wh") || e.contains_key("gpu_energy_kwh") => 1.0,
            Some(Value::Object(e)) if e.contains_key("total_energy_wh") && obj.contains_key("summary") => 0.9,
            // Metrics disabled: still this format, so that summarizing says so.
            Some(Value::Object(e))
                if e.is_empty() && obj.contains_key("summary") && obj.contains_key("metrics_metadata") =>
            {
                0.9
            }
            _ => 0.0,
        }
    }

    fn summarize(report: String) -> Result<Summary, String> {
        summarize_json(&report)
    }
}

energy_star_plugin_sdk::export_summarizer!(AiEnergyBenchmarks);

fn number(energy: &Map<String, Value>, key: &str) -> Result<Option<f64>, String> {
    match energy.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_f64().map(Some).ok_or_else(|| format!("energy.{key} = {n} is not a number")),
        Some(other) => Err(format!("energy.{key} is not a number: {other}")),
    }
}

/// Where the CPU and RAM figures come from, as the report's `metrics_metadata` names the tool.
fn cpu_ram_source(obj: &Map<String, Value>) -> Option<String> {
    let meta = obj.get("metrics_metadata")?;
    let name = meta.get("name").and_then(Value::as_str)?;
    let version = meta.get("version").and_then(Value::as_str).map(|v| format!(" {v}")).unwrap_or_default();
    Some(match name {
        "energy-star" => format!(
            "CPU and RAM energy: energy-star{version}'s meter (metrics_metadata; energy_star_report.json beside the report names each figure's source)"
        ),
        "codecarbon" => format!(
            "CPU and RAM energy: CodeCarbon{version}'s (metrics_metadata); the report does not say how CodeCarbon obtained them (for the CPU, RAPL or an estimate from its TDP; for RAM, an estimate from the installed memory)"
        ),
        other => format!("CPU and RAM energy: {other}{version}'s (metrics_metadata)"),
    })
}

/// Summarizes an ai_energy_benchmarks report given as JSON text.
pub fn summarize_json(report: &str) -> Result<Summary, String> {
    let value: Value = serde_json::from_str(report).map_err(|e| format!("report is not valid JSON: {e}"))?;
    let obj = value.as_object().ok_or("report is not a JSON object")?;
    let energy = match obj.get("energy") {
        Some(Value::Object(e)) => e,
        _ => return Err("report has no `energy` object".into()),
    };
    if energy.is_empty() {
        return Err("report was written with metrics disabled (`energy` is empty): no energy was measured; rerun with metrics enabled".into());
    }
    let mut warnings = Vec::new();
    let wh = number(energy, "gpu_energy_wh")?;
    let kwh = number(energy, "gpu_energy_kwh")?;
    // The report says which device ran the model (`backend_info.device`); a CPU run has no
    // GPU figure, or CodeCarbon's 0.0 for it, and that is not a failed reading.
    let device = obj.get("backend_info").and_then(|b| b.get("device")).and_then(Value::as_str);
    // `gpu_stats` holds one entry per GPU the run watched: empty, none was there.
    let no_gpu_stats = matches!(obj.get("gpu_stats"), Some(Value::Object(g)) if g.is_empty());
    let cpu_run = match device {
        Some(d) if !d.starts_with("cuda") => Some(format!("backend_info.device={d}: the run used no GPU")),
        None if no_gpu_stats => Some("gpu_stats lists no GPU: the run used none".to_string()),
        _ => None,
    };
    let source = cpu_ram_source(obj);
    // A CPU run's 0.0 (CodeCarbon finds no GPU) is no GPU figure, not a measured zero.
    let cpu_run_zero = cpu_run.is_some() && wh.or(kwh) == Some(0.0);
    let figures = if cpu_run_zero { (None, None) } else { (wh, kwh) };
    let gpu_wh = match figures {
        (None, None) => {
            // No GPU figure: the report's reason when it gives one; otherwise the host decides
            // from its record of the run (a server on another machine, no NVML), or says nothing
            // explains the absence.
            let cpu = number(energy, "cpu_energy_wh")?;
            let ram = number(energy, "ram_energy_wh")?;
            return Ok(Summary {
                format: FORMAT.into(),
                total_wh: None,
                gpu_absent_reason: cpu_run,
                cpu_wh: cpu,
                ram_wh: ram,
                phases: vec![PhaseEnergy {
                    name: "decode".into(),
                    leaderboard_phase: Some(LeaderboardPhase::Decode),
                    gpu_wh: None,
                    cpu_wh: cpu,
                    ram_wh: ram,
                    counted: true,
                }],
                warnings: cpu_run_zero
                    .then(|| "GPU energy is 0.0 in the report: the run used no GPU (CodeCarbon writes 0.0 then); no GPU figure".to_string())
                    .into_iter()
                    .chain(["this format meters the whole prompt loop as one window; reported as decode".to_string()])
                    .chain(source)
                    .collect(),
            });
        }
        (Some(wh), Some(kwh)) => {
            if (wh - kwh * 1000.0).abs() > 1e-6 * wh.abs().max(1.0) {
                warnings.push(format!(
                    "energy.gpu_energy_wh ({wh}) and gpu_energy_kwh ({kwh}) disagree; used gpu_energy_wh"
                ));
            }
            wh
        }
        (Some(wh), None) => wh,
        (None, Some(kwh)) => kwh * 1000.0,
    };
    if gpu_wh == 0.0
        && let Some(d) = device
    {
        warnings.push(format!("GPU energy is 0 Wh although backend_info.device={d} (a GPU run): a failed reading (CodeCarbon reports 0 on GPUs without an energy counter, codecarbon#1316), kept as reported"));
    } else if gpu_wh == 0.0 {
        warnings.push("GPU energy is 0 Wh: likely a failed reading (CodeCarbon reports 0 on GPUs without an energy counter, codecarbon#1316)".into());
    } else if gpu_wh < 0.0 {
        warnings.push(format!("GPU energy is negative ({gpu_wh} Wh): not a valid measurement, kept as reported"));
    }
    warnings.push("this format meters the whole prompt loop as one window; its energy is reported as decode (prefill included), as the original summarizer does".into());
    if let Some(Value::Object(summary)) = obj.get("summary")
        && let Some(failed) = summary.get("failed_prompts").and_then(Value::as_u64).filter(|f| *f > 0)
    {
        let total = summary.get("total_prompts").and_then(Value::as_u64).unwrap_or(0);
        warnings.push(format!("{failed} of {total} prompts failed; the energy covers the failed ones too"));
    }
    warnings.extend(source);
    Ok(Summary {
        format: FORMAT.into(),
        total_wh: Some(gpu_wh),
        gpu_absent_reason: None,
        cpu_wh: number(energy, "cpu_energy_wh")?,
        ram_wh: number(energy, "ram_energy_wh")?,
        phases: vec![PhaseEnergy {
            name: "decode".into(),
            leaderboard_phase: Some(LeaderboardPhase::Decode),
            gpu_wh: Some(gpu_wh),
            cpu_wh: number(energy, "cpu_energy_wh")?,
            ram_wh: number(energy, "ram_energy_wh")?,
            counted: true,
        }],
        warnings,
    })
}
