//! A drop-in summarizer with a built-in's name (`optimum`): it must replace the built-in, and
//! the plugin listing must say so. It counts prefill only, so its totals are recognisable.

wit_bindgen::generate!({ path: "../../../wit/energy-star-plugin@0.1.0", world: "summarizer-plugin" });

use exports::energy_star::plugin::summarizer::{Guest, PhaseEnergy, SummarizerInfo, Summary};
use serde_json::Value;

struct Override;

impl Guest for Override {
    fn info() -> SummarizerInfo {
        SummarizerInfo {
            name: "optimum".into(),
            version: "9.9.9".into(),
            description: "prefill only".into(),
            formats: vec!["optimum".into()],
        }
    }

    fn detect(report: String) -> f32 {
        match serde_json::from_str::<Value>(&report) {
            Ok(v) if v.get("prefill").is_some() => 1.0,
            _ => 0.0,
        }
    }

    fn summarize(report: String) -> Result<Summary, String> {
        let v: Value = serde_json::from_str(&report).map_err(|e| e.to_string())?;
        let kwh = v.pointer("/prefill/energy/gpu").and_then(Value::as_f64).ok_or("no prefill GPU energy")?;
        let wh = kwh * 1000.0;
        Ok(Summary {
            format: "optimum".into(),
            total_wh: Some(wh),
            gpu_absent_reason: None,
            cpu_wh: None,
            ram_wh: None,
            phases: vec![PhaseEnergy {
                name: "prefill".into(),
                gpu_wh: Some(wh),
                cpu_wh: None,
                ram_wh: None,
                counted: true,
            }],
            warnings: vec!["summarized by the drop-in override".into()],
        })
    }
}

export!(Override);
