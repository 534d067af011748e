//! Backend `vllm`: AI Energy Score's vLLM path: prompts sent one at a time to an
//! OpenAI-compatible server at `VLLM_ENDPOINT`, GPU energy metered over the prompt loop, the
//! report in the ai_energy_benchmarks format.
//!
//! Policy lives here; the host does the HTTP and the metering. Until the host has its remote
//! engine and meter, `run` stops at the first one with the host's own "not available" answer.

wit_bindgen::generate!({
    path: "../../../wit/energy-star-plugin@0.1.0",
    world: "backend-plugin",
});

use energy_star::plugin::{datasets, inference, log, meter};
use exports::energy_star::plugin::backend::{BackendInfo, Guest, RequiredSetting, RunOutput, RunRequest};
use serde_json::Value;

struct Vllm;

fn setting<'a>(req: &'a RunRequest, name: &str) -> Option<&'a str> {
    req.settings.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn config_str<'a>(cfg: &'a Value, path: &str) -> Option<&'a str> {
    path.split('.').try_fold(cfg, |v, k| v.get(k)).and_then(Value::as_str)
}

impl Guest for Vllm {
    fn info() -> BackendInfo {
        BackendInfo {
            name: "vllm".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "An OpenAI-compatible vLLM server at VLLM_ENDPOINT; ai_energy_benchmarks report".into(),
            report_format: "ai_energy_benchmarks".into(),
            required_settings: vec![RequiredSetting {
                name: "VLLM_ENDPOINT".into(),
                description: "Base URL of the OpenAI-compatible server, e.g. http://localhost:8000/v1".into(),
                missing_message: "VLLM_ENDPOINT environment variable must be set for vLLM backend".into(),
            }],
        }
    }

    fn run(req: RunRequest) -> Result<RunOutput, String> {
        let cfg: Value = serde_json::from_str(&req.config_json).map_err(|e| format!("config is not JSON: {e}"))?;
        let endpoint = setting(&req, "VLLM_ENDPOINT").ok_or("VLLM_ENDPOINT was not passed by the host")?;
        let model = config_str(&cfg, "backend.model").map(str::to_string);
        log::log(log::Level::Info, &format!("vLLM endpoint {endpoint}, model {}", model.as_deref().unwrap_or("(from /v1/models)")));
        let engine = inference::open_engine(&inference::EngineSpec::Remote(inference::RemoteEngineSpec {
            endpoint: endpoint.into(),
            model,
            api: inference::RemoteApi::Completions,
            request_timeout_ms: 600_000,
        }))
        .map_err(describe)?;
        let dataset = config_str(&cfg, "scenario.dataset_name").unwrap_or("EnergyStarAI/text_generation");
        let column = config_str(&cfg, "scenario.text_column_name").unwrap_or("text");
        let num_samples = path_u64(&cfg, "scenario.num_samples").map(|n| n as u32);
        let rows = datasets::load(&datasets::DatasetSpec {
            name: dataset.into(),
            config: String::new(),
            split: "train".into(),
            columns: vec![column.into()],
            num_samples,
        })?;
        let window = meter::begin_window("inference").map_err(|e| format!("{e:?}"))?;
        let _ = (rows, engine, window);
        Err("the vllm backend's load loop needs the host's remote engine and meter".into())
    }
}

fn path_u64(cfg: &Value, path: &str) -> Option<u64> {
    path.split('.').try_fold(cfg, |v, k| v.get(k)).and_then(Value::as_u64)
}

fn describe(e: inference::InferenceError) -> String {
    match e {
        inference::InferenceError::Unavailable(m) => m,
        inference::InferenceError::Invalid(m) => format!("invalid: {m}"),
        inference::InferenceError::UnknownEngine(id) => format!("unknown engine {id}"),
        inference::InferenceError::Failed(m) => m,
    }
}

export!(Vllm);
