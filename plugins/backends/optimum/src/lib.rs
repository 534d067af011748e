//! Backend `optimum`: 
//!
//! Policy lives here; the host does the inference and the metering. Until the host has its
//! local engine, datasets and meter, `run` stops at the first one with the host's own
//! "not available" answer.

wit_bindgen::generate!({
    path: "../../../wit/energy-star-plugin@0.1.0",
    world: "backend-plugin",
});

use energy_star::plugin::{datasets, inference, log, meter};
use exports::energy_star::plugin::backend::{BackendInfo, Guest, RunOutput, RunRequest};
use serde_json::Value;

struct Backend;

fn get<'a>(cfg: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(cfg, |v, k| v.get(k))
}

impl Guest for Backend {
    fn info() -> BackendInfo {
        BackendInfo {
            name: "optimum".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "".into(),
            report_format: "optimum-benchmark's energy_star scenario (load, prefill, generate; decode = generate - prefill) on the host's local engine; optimum report".into(),
            required_settings: Vec::new(),
        }
    }

    fn run(req: RunRequest) -> Result<RunOutput, String> {
        let cfg: Value = serde_json::from_str(&req.config_json).map_err(|e| format!("config is not JSON: {e}"))?;
        let model = get(&cfg, "backend.model").and_then(Value::as_str).ok_or("backend.model is not set; pass backend.model=ORG/NAME or a folder")?;
        let dataset = get(&cfg, "scenario.dataset_name").and_then(Value::as_str).unwrap_or("");
        let column = get(&cfg, "scenario.text_column_name").and_then(Value::as_str).unwrap_or("text");
        let num_samples = get(&cfg, "scenario.num_samples").and_then(Value::as_i64);
        let num_samples = match num_samples {
            Some(n) if n > 0 => Some(n as u32),
            Some(-1) | None => None,
            Some(n) => return Err(format!("scenario.num_samples = {n}: must be positive, or -1 for all")),
        };
        log::log(log::Level::Info, &format!("model {model}, dataset {dataset}"));
        let window = meter::begin_window("load_dataset").map_err(|e| format!("energy meter: {e:?}"))?;
        let rows = datasets::load(&datasets::DatasetSpec {
            name: dataset.into(),
            config: String::new(),
            split: "train".into(),
            columns: vec![column.into()],
            num_samples,
        })?;
        let engine = inference::open_engine(&inference::EngineSpec::Local(inference::LocalEngineSpec {
            model: model.into(),
            device: get(&cfg, "backend.device").and_then(Value::as_str).unwrap_or("cpu").into(),
            device_ids: Vec::new(),
            dtype: get(&cfg, "backend.torch_dtype").and_then(Value::as_str).unwrap_or("auto").into(),
            processor: get(&cfg, "backend.processor").and_then(Value::as_str).map(str::to_string),
        }))
        .map_err(|e| format!("{e:?}"))?;
        let _ = (window, rows, engine);
        Err("the optimum backend's workload needs the host's local engine, datasets and meter".into())
    }
}

export!(Backend);
