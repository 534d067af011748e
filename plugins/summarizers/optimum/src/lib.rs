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

use energy_star_plugin_sdk::summarizer::{Guest, LeaderboardPhase, PhaseEnergy, SummarizerInfo, Summary};
use energy_star_plugin_sdk::units;
use serde_json::{Map, Value};

const FORMAT: &str = "optimum";

/// Phases the leaderboard sums.
const COUNTED: &[&str] = &["preprocess", "preprocess_dataset", "prefill", "decode", "forward", "call"];
/// Every phase name optimum-benchmark writes, on any branch.
const KNOWN: &[&str] = &[
    "preprocess",
    "preprocess_dataset",
    "prefill",
    "decode",
    "forward",
    "call",
    "per_token",
    "load",
    "load_dataset",
    "load_model",
    "generate",
];
/// Keys of a phase object (`BenchmarkMeasurements`).
const PHASE_KEYS: &[&str] = &["memory", "latency", "throughput", "energy", "efficiency", "measures"];

struct Optimum;

impl Guest for Optimum {
    fn info() -> SummarizerInfo {
        SummarizerInfo {
            name: FORMAT.into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description:
                "optimum-benchmark reports (energy_star main and energy_star_dev shapes, benchmark.json wrapper)".into(),
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

energy_star_plugin_sdk::export_summarizer!(Optimum);

/// The object holding the phases: the report itself, or `report` inside `{config, report}`.
fn report_object(value: &Value) -> Option<&Map<String, Value>> {
    let obj = value.as_object()?;
    match (obj.get("config"), obj.get("report")) {
        (Some(Value::Object(_)), Some(Value::Object(report))) => Some(report),
        _ => Some(obj),
    }
}

/// One device's energy of an `Energy` object in Wh, or None when the report has no figure.
fn device_wh(energy: &Map<String, Value>, key: &str, unit: &str, what: &str) -> Result<Option<f64>, String> {
    match energy.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            let v = n.as_f64().ok_or_else(|| format!("{what}: {key} energy {n} is not a number"))?;
            units::to_wh(v, unit).map(Some).map_err(|e| format!("{what}: {e}"))
        }
        Some(other) => Err(format!("{what}: {key} energy is not a number: {other}")),
    }
}

fn unit_of<'a>(energy: &'a Map<String, Value>, warnings: &mut Vec<String>, what: &str) -> Result<&'a str, String> {
    match energy.get("unit") {
        Some(Value::String(u)) => Ok(u.as_str()),
        None | Some(Value::Null) => {
            warnings.push(format!("{what}: no energy unit given; assumed kWh (optimum-benchmark's unit)"));
            Ok("kWh")
        }
        Some(other) => Err(format!("{what}: energy unit is not a string: {other}")),
    }
}

/// Why the report has no GPU figures, when it says so itself: the `{config, report}` wrapper
/// names `backend.device` (a CPU run). A bare report does not say; the host then knows from
/// its own record whether a run of energy-star used a GPU.
fn gpu_absent_reason(value: &Value) -> Option<String> {
    let device = value.pointer("/config/backend/device").and_then(Value::as_str)?;
    (!device.starts_with("cuda")).then(|| format!("backend.device={device}: the run used no GPU"))
}

/// Where the report's CPU and RAM figures come from, when the wrapper's config says which tool
/// wrote the report (its `environment`'s version keys); a bare report does not say.
fn cpu_ram_source(value: &Value) -> Option<String> {
    let env = value.pointer("/config/environment")?;
    if let Some(v) = env.get("energy_star_version").and_then(Value::as_str) {
        return Some(format!(
            "CPU and RAM energy: energy-star {v}'s meter (energy_star_report.json beside the report names each figure's source)"
        ));
    }
    let v = env.get("optimum_benchmark_version").and_then(Value::as_str)?;
    Some(format!(
        "CPU and RAM energy: CodeCarbon's, through optimum-benchmark {v}'s energy tracker; the report does not say how CodeCarbon obtained them (for the CPU, RAPL or an estimate from its TDP; for RAM, an estimate from the installed memory)"
    ))
}

/// Summarizes an optimum-benchmark report given as JSON text.
pub fn summarize_json(report: &str) -> Result<Summary, String> {
    let value: Value = serde_json::from_str(report).map_err(|e| format!("report is not valid JSON: {e}"))?;
    let phases_obj = report_object(&value).ok_or("report is not a JSON object")?;
    let absent = gpu_absent_reason(&value);
    // A GPU run by its config: a zero there is a failed reading, not a CPU run.
    let gpu_device = value.pointer("/config/backend/device").and_then(Value::as_str).filter(|_| absent.is_none());
    let mut warnings = Vec::new();
    let mut phases: Vec<PhaseEnergy> = Vec::new();
    let mut no_energy = Vec::new();
    // (device, source) -> phases, so each estimate is named once.
    let mut estimated: Vec<((String, String), Vec<String>)> = Vec::new();
    for (name, phase) in phases_obj {
        let Some(obj) = phase.as_object() else { continue };
        if !obj.keys().any(|k| PHASE_KEYS.contains(&k.as_str())) {
            continue;
        }
        let counted = COUNTED.contains(&name.as_str());
        let energy = match obj.get("energy") {
            Some(Value::Object(e)) => e,
            None | Some(Value::Null) => {
                no_energy.push(name.clone());
                continue;
            }
            Some(other) => return Err(format!("phase {name:?}: energy is not an object: {other}")),
        };
        let what = format!("phase {name:?}");
        let unit = unit_of(energy, &mut warnings, &what)?;
        let gpu = device_wh(energy, "gpu", unit, &what)?;
        let cpu = device_wh(energy, "cpu", unit, &what)?;
        let ram = device_wh(energy, "ram", unit, &what)?;
        match gpu {
            Some(0.0) if absent.is_some() => {}
            Some(0.0) if gpu_device.is_some() => warnings.push(format!(
                "phase {name:?}: GPU energy is 0 Wh although backend.device={} (a GPU run): a failed reading (CodeCarbon sometimes reports 0 for a task, codecarbon#851), kept as reported",
                gpu_device.unwrap_or_default()
            )),
            Some(0.0) => warnings.push(format!(
                "phase {name:?}: GPU energy is 0 Wh: a failed reading (CodeCarbon sometimes reports 0 for a task, codecarbon#851) or a run without a GPU (CodeCarbon writes 0.0 then; benchmark.json's backend.device tells), kept as reported"
            )),
            Some(wh) if wh < 0.0 => warnings.push(format!(
                "phase {name:?}: GPU energy is negative ({wh:.4} Wh); decode is generate minus prefill and goes negative when a reading failed; kept as reported"
            )),
            _ => {}
        }
        if let Some(Value::Array(measures)) = obj.get("measures") {
            let count = measures.len();
            for (i, m) in measures.iter().enumerate() {
                let Some(m) = m.as_object() else { continue };
                let mu = m.get("unit").and_then(Value::as_str).unwrap_or(unit);
                if let Ok(Some(v)) = device_wh(m, "gpu", mu, name) {
                    if v == 0.0 {
                        warnings.push(format!("phase {name:?}: measure {} of {count} has 0 Wh GPU energy; the phase figure (their mean) includes it", i + 1));
                    } else if v < 0.0 {
                        warnings.push(format!("phase {name:?}: measure {} of {count} is negative ({v:.4} Wh); the phase figure (their mean) includes it", i + 1));
                    }
                }
            }
        }
        // energy-star's own reports say where each figure came from.
        if let Some(Value::Object(es)) = obj.get("energy_star") {
            for dev in ["gpu", "cpu", "ram"] {
                if let Some(src) = es.get(&format!("{dev}_source")).and_then(Value::as_str)
                    && src.starts_with("estimate")
                {
                    let key = (dev.to_string(), src.to_string());
                    match estimated.iter_mut().find(|(k, _)| *k == key) {
                        Some((_, phases)) => phases.push(name.clone()),
                        None => estimated.push((key, vec![name.clone()])),
                    }
                }
            }
            if let Some(Value::Array(flags)) = es.get("flags") {
                let flags: Vec<&str> = flags.iter().filter_map(Value::as_str).collect();
                if !flags.is_empty() {
                    warnings.push(format!("phase {name:?}: flagged {}", flags.join(", ")));
                }
            }
        }
        let leaderboard_phase = match name.as_str() {
            "preprocess" | "preprocess_dataset" => Some(LeaderboardPhase::Preprocess),
            "prefill" => Some(LeaderboardPhase::Prefill),
            "decode" => Some(LeaderboardPhase::Decode),
            _ => None,
        };
        phases.push(PhaseEnergy {
            name: name.clone(),
            leaderboard_phase,
            gpu_wh: gpu,
            cpu_wh: cpu,
            ram_wh: ram,
            counted,
        });
    }
    for ((dev, src), phases) in &estimated {
        warnings.push(format!("{dev} energy is an estimate ({src}), not a measurement: {}", phases.join(", ")));
    }
    if !no_energy.is_empty() {
        warnings.push(format!("phases without energy figures (not measured): {}", no_energy.join(", ")));
    }
    let counted: Vec<&PhaseEnergy> = phases.iter().filter(|p| p.counted).collect();
    if counted.is_empty() {
        return Err(if phases.is_empty() && no_energy.is_empty() {
            "no optimum-benchmark phases found (expected keys such as prefill, decode, preprocess_dataset)".to_string()
        } else {
            format!(
                "report has no energy for preprocess, prefill, decode, forward or call (energy tracking was off?); phases present: {}",
                phases
                    .iter()
                    .map(|p| p.name.as_str())
                    .chain(no_energy.iter().map(String::as_str))
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        });
    }
    let sum = |f: fn(&PhaseEnergy) -> Option<f64>| -> Option<f64> { counted.iter().map(|p| f(p)).sum() };
    let with_gpu: Vec<&str> = counted.iter().filter(|p| p.gpu_wh.is_some()).map(|p| p.name.as_str()).collect();
    // A CPU run, as the report's own config says, writes 0.0 for the GPU (CodeCarbon finds
    // none): that is no GPU figure, not a measured zero.
    let cpu_run_zeros = absent.is_some() && counted.iter().all(|p| p.gpu_wh.is_none_or(|g| g == 0.0));
    let (total_wh, gpu_absent) = if with_gpu.is_empty() || cpu_run_zeros {
        // No GPU figure: the report's reason, if it gives one; otherwise the host decides
        // (its record of the run), or says nothing explains the absence.
        (None, absent.clone())
    } else {
        let missing: Vec<&str> = counted.iter().filter(|p| p.gpu_wh.is_none()).map(|p| p.name.as_str()).collect();
        if !missing.is_empty() {
            warnings.push(format!(
                "no GPU energy for {}: the total covers {} only",
                missing.join(", "),
                with_gpu.join(", ")
            ));
        }
        (Some(counted.iter().filter_map(|p| p.gpu_wh).sum()), None)
    };
    let uncounted: Vec<&str> = phases.iter().filter(|p| !p.counted).map(|p| p.name.as_str()).collect();
    if !uncounted.is_empty() {
        warnings.push(format!(
            "reported but not in the total (the leaderboard sums preprocess + prefill + decode): {}",
            uncounted.join(", ")
        ));
    }
    let cpu_wh = sum(|p| p.cpu_wh);
    let ram_wh = sum(|p| p.ram_wh);
    if let Some(source) = cpu_ram_source(&value).filter(|_| cpu_wh.is_some() || ram_wh.is_some()) {
        warnings.push(source);
    }
    Ok(Summary { format: FORMAT.into(), total_wh, gpu_absent_reason: gpu_absent, cpu_wh, ram_wh, phases, warnings })
}
