//! A summarizer for a format energy-star does not ship: CodeCarbon's per-task record (the
//! fields of its emissions.csv, as JSON, e.g. optimum-benchmark's `*_codecarbon.json`).

wit_bindgen::generate!({ path: "../../../wit/energy-star-plugin@0.1.0", world: "summarizer-plugin" });

use exports::energy_star::plugin::summarizer::{Guest, PhaseEnergy, SummarizerInfo, Summary};
use serde_json::Value;

struct CodeCarbon;

impl Guest for CodeCarbon {
    fn info() -> SummarizerInfo {
        SummarizerInfo {
            name: "codecarbon".into(),
            version: "0.3.0".into(),
            description: "CodeCarbon emissions records (JSON)".into(),
            formats: vec!["codecarbon".into()],
        }
    }

    fn detect(report: String) -> f32 {
        match serde_json::from_str::<Value>(&report) {
            Ok(Value::Object(o)) if o.contains_key("gpu_energy") && o.contains_key("codecarbon_version") => 1.0,
            _ => 0.0,
        }
    }

    fn summarize(report: String) -> Result<Summary, String> {
        let v: Value = serde_json::from_str(&report).map_err(|e| e.to_string())?;
        let kwh = v.get("gpu_energy").and_then(Value::as_f64).ok_or("gpu_energy is missing")?;
        let wh = kwh * 1000.0;
        let phase = v.get("task_name").and_then(Value::as_str).unwrap_or("run").to_string();
        Ok(Summary {
            format: "codecarbon".into(),
            total_wh: Some(wh),
            gpu_absent_reason: None,
            cpu_wh: None,
            ram_wh: None,
            phases: vec![PhaseEnergy { name: phase, gpu_wh: Some(wh), cpu_wh: None, ram_wh: None, counted: true }],
            warnings: vec!["CodeCarbon figures: GPU from NVML, CPU and RAM possibly estimated".into()],
        })
    }
}

export!(CodeCarbon);
