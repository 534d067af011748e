//! Summarizer for optimum-benchmark reports (the `energy_star` scenario and others).
//!
//! Reads both report shapes that exist in the wild: the `energy_star_dev` branch's
//! (`preprocess`, `prefill`, `decode`, `per_token`, each with `measures`) and `main`'s
//! (`load_dataset`, `preprocess_dataset`, `load_model`, `prefill`, `decode`, or `forward`/`call`),
//! bare or inside the `{config, report}` wrapper of `benchmark.json`.
//!
//! The total is the leaderboard's: preprocess + prefill + decode (`preprocess_dataset` counts as
//! preprocess; `forward` and `call` are the measured phase of non-generation tasks). Loading
//! phases are reported but not summed. Zero and negative readings are kept as they are and
//! flagged: CodeCarbon sometimes returns 0 for a task, and decode = generate - prefill then goes
//! negative.

wit_bindgen::generate!({
    path: "../../../wit/energy-star-plugin@0.1.0",
    world: "summarizer-plugin",
});

use exports::energy_star::plugin::summarizer::{Guest, PhaseEnergy, Summary, SummarizerInfo};
use serde_json::{Map, Value};

const FORMAT: &str = "optimum";

/// Phases the leaderboard sums.
const COUNTED: &[&str] = &["preprocess", "preprocess_dataset", "prefill", "decode", "forward", "call"];
/// Every phase name optimum-benchmark writes, on any branch.
const KNOWN: &[&str] = &[
    "preprocess", "preprocess_dataset", "prefill", "decode", "forward", "call", "per_token",
    "load", "load_dataset", "load_model", "generate",
];
/// Keys of a phase object (`BenchmarkMeasurements`).
const PHASE_KEYS: &[&str] = &["memory", "latency", "throughput", "energy", "efficiency", "measures"];

struct Optimum;

impl Guest for Optimum {
    fn info() -> SummarizerInfo {
        SummarizerInfo {
            name: FORMAT.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "optimum-benchmark reports (energy_star main and energy_star_dev shapes, benchmark.json wrapper)".into(),
            formats: vec![FORMAT.into()],
        }
    }

    fn detect(report: String) -> f32 {
        let Ok(value) = serde_json::from_str::<Value>(&report) else { return 0.0 };
        let Some(phases) = report_object(&value) else { return 0.0 };
        let mut known = 0;
        let mut with_energy = 0;
        for (name, phase) in phases {
            let Some(obj) = phase.as_object() else { continue };
            if !obj.keys().any(|k| PHASE_KEYS.contains(&k.as_str())) {
                continue;
            }
            if KNOWN.contains(&name.as_str()) {
                known += 1;
                if obj.get("energy").is_some_and(Value::is_object) {
                    with_energy += 1;
                }
            }
        }
        match (known, with_energy) {
            (0, _) => 0.0,
            (_, 0) => 0.6,
            _ => 0.95,
        }
    }

    fn summarize(report: String) -> Result<Summary, String> {
        summarize_json(&report)
    }
}

export!(Optimum);

/// The object holding the phases: the report itself, or `report` inside `{config, report}`.
fn report_object(value: &Value) -> Option<&Map<String, Value>> {
    let obj = value.as_object()?;
    match (obj.get("config"), obj.get("report")) {
        (Some(Value::Object(_)), Some(Value::Object(report))) => Some(report),
        _ => Some(obj),
    }
}

fn wh_from(value: f64, unit: &str) -> Result<f64, String> {
    Ok(match unit {
        "kWh" | "kwh" => value * 1000.0,
        "Wh" | "wh" => value,
        "mWh" => value / 1000.0,
        "J" | "j" => value / 3600.0,
        "kJ" => value / 3.6,
        other => return Err(format!("unknown energy unit {other:?} (expected kWh, Wh or J)")),
    })
}

/// GPU energy of one `Energy` object in Wh, or why there is none.
fn gpu_wh(energy: &Map<String, Value>, warnings: &mut Vec<String>, what: &str) -> Result<Option<f64>, String> {
    let unit = match energy.get("unit") {
        Some(Value::String(u)) => u.as_str(),
        None | Some(Value::Null) => {
            warnings.push(format!("{what}: no energy unit given; assumed kWh (optimum-benchmark's unit)"));
            "kWh"
        }
        Some(other) => return Err(format!("{what}: energy unit is not a string: {other}")),
    };
    match energy.get("gpu") {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let v = n.as_f64().ok_or_else(|| format!("{what}: GPU energy {n} is not a number"))?;
            wh_from(v, unit).map(Some).map_err(|e| format!("{what}: {e}"))
        }
        Some(other) => Err(format!("{what}: GPU energy is not a number: {other}")),
    }
}

/// Summarizes an optimum-benchmark report given as JSON text.
pub fn summarize_json(report: &str) -> Result<Summary, String> {
    let value: Value = serde_json::from_str(report).map_err(|e| format!("report is not valid JSON: {e}"))?;
    let phases_obj = report_object(&value).ok_or("report is not a JSON object")?;
    let mut warnings = Vec::new();
    let mut phases = Vec::new();
    let mut skipped = Vec::new();
    for (name, phase) in phases_obj {
        let Some(obj) = phase.as_object() else { continue };
        if !obj.keys().any(|k| PHASE_KEYS.contains(&k.as_str())) {
            continue;
        }
        let counted = COUNTED.contains(&name.as_str());
        let energy = match obj.get("energy") {
            Some(Value::Object(e)) => e,
            None | Some(Value::Null) => {
                skipped.push(name.clone());
                continue;
            }
            Some(other) => return Err(format!("phase {name:?}: energy is not an object: {other}")),
        };
        let Some(wh) = gpu_wh(energy, &mut warnings, &format!("phase {name:?}"))? else {
            skipped.push(name.clone());
            continue;
        };
        if wh == 0.0 {
            warnings.push(format!(
                "phase {name:?}: GPU energy is 0 Wh; CodeCarbon sometimes reports 0 for a task (codecarbon#851), so this is likely a failed reading, kept as reported"
            ));
        } else if wh < 0.0 {
            warnings.push(format!(
                "phase {name:?}: GPU energy is negative ({wh:.4} Wh); decode is generate minus prefill and goes negative when a reading failed; kept as reported"
            ));
        }
        if let Some(Value::Array(measures)) = obj.get("measures") {
            let count = measures.len();
            for (i, m) in measures.iter().enumerate() {
                let Some(m) = m.as_object() else { continue };
                let mut ignored = Vec::new();
                if let Ok(Some(v)) = gpu_wh(m, &mut ignored, name) {
                    if v == 0.0 {
                        warnings.push(format!("phase {name:?}: measure {} of {count} has 0 Wh GPU energy; the phase figure (their mean) includes it", i + 1));
                    } else if v < 0.0 {
                        warnings.push(format!("phase {name:?}: measure {} of {count} is negative ({v:.4} Wh); the phase figure (their mean) includes it", i + 1));
                    }
                }
            }
        }
        phases.push(PhaseEnergy { name: name.clone(), energy_wh: wh, counted });
    }
    if !skipped.is_empty() {
        warnings.push(format!("phases without GPU energy (not measured): {}", skipped.join(", ")));
    }
    if !phases.iter().any(|p| p.counted) {
        return Err(if phases.is_empty() && skipped.is_empty() {
            "no optimum-benchmark phases found (expected keys such as prefill, decode, preprocess_dataset)".to_string()
        } else {
            format!(
                "report has no GPU energy for preprocess, prefill, decode, forward or call (energy tracking was off?); phases present: {}",
                phases.iter().map(|p| p.name.as_str()).chain(skipped.iter().map(String::as_str)).collect::<Vec<_>>().join(", ")
            )
        });
    }
    let uncounted: Vec<&str> = phases.iter().filter(|p| !p.counted).map(|p| p.name.as_str()).collect();
    if !uncounted.is_empty() {
        warnings.push(format!(
            "reported but not in the total (the leaderboard sums preprocess + prefill + decode): {}",
            uncounted.join(", ")
        ));
    }
    let total_wh = phases.iter().filter(|p| p.counted).map(|p| p.energy_wh).sum();
    Ok(Summary { format: FORMAT.into(), total_wh, phases, warnings })
}
