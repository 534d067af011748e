use crate::inference::local::{CandleEngine, LocalSpec};
use crate::inference::{self, InferenceError as HostError};
use crate::plugins::bindings::backend::energy_star::plugin::inference::{
    BatchOutcome, EngineInfo, EngineSpec, GenerationParams, Host, InferenceError, LoadProfile, RequestOutcome, TokenCountSource,
};
use crate::plugins::state::PluginState;

use super::{interrupted, not_in_this_build};

fn to_wit(e: HostError) -> InferenceError {
    match e {
        HostError::Invalid(m) => InferenceError::Invalid(m),
        HostError::Device { .. } => InferenceError::Unavailable(e.to_string()),
        other => InferenceError::Failed(other.to_string()),
    }
}

fn stop() -> InferenceError {
    InferenceError::Failed("interrupted by the user (Ctrl-C)".into())
}

impl Host for PluginState {
    fn open_engine(&mut self, spec: EngineSpec) -> Result<u64, InferenceError> {
        let out = match spec {
            _ if interrupted() => Err(stop()),
            EngineSpec::Local(l) => {
                let s = self.services();
                let env = s.env.clone();
                // The engine runs on the first listed GPU (CUDA numbering, as the config
                // gives it); every listed GPU is metered, as optimum-benchmark meters its
                // device_ids.
                let device = match (l.device.as_str(), l.device_ids.first()) {
                    ("cuda", Some(id)) => format!("cuda:{id}"),
                    _ => l.device.clone(),
                };
                let spec = LocalSpec { model: l.model, device, dtype: l.dtype, processor: l.processor };
                let allowed = s.check_allowed("model", &spec.model).and_then(|()| match &spec.processor {
                    Some(p) => s.check_allowed("processor", p),
                    None => Ok(()),
                });
                allowed.map_err(InferenceError::Invalid).and_then(|()| CandleEngine::open(&spec, &|k: &str| env(k)).map_err(to_wit)).map(|engine| {
                    let id = s.next_engine;
                    s.next_engine += 1;
                    s.engines.insert(id, engine);
                    id
                })
            }
            EngineSpec::Remote(_) => Err(InferenceError::Unavailable(not_in_this_build("the OpenAI-compatible remote engine"))),
        };
        self.host_returned();
        out
    }

    fn describe_engine(&mut self, engine: u64) -> Result<EngineInfo, InferenceError> {
        let out = match self.services().engines.get(&engine) {
            Some(e) => {
                let c = e.config();
                Ok(EngineInfo {
                    model: e.model_name.clone(),
                    max_context_tokens: u32::try_from(c.max_position_embeddings).ok(),
                    notes: vec![
                        format!("architecture {}", c.architecture),
                        format!("device {:?}, dtype {:?}", e.decoder.device, e.decoder.dtype),
                        format!("{} layers, hidden {}, {} heads ({} KV), vocab {}", c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads, c.vocab_size),
                        format!("loaded in {:.3} s", e.load_s),
                    ],
                })
            }
            None => Err(InferenceError::UnknownEngine(engine)),
        };
        self.host_returned();
        out
    }

    fn tokenize(&mut self, engine: u64, text: String, add_special_tokens: bool) -> Result<Vec<u32>, InferenceError> {
        let out = match self.services().engines.get(&engine) {
            Some(e) => e.encode(&text, add_special_tokens).map_err(to_wit),
            None => Err(InferenceError::UnknownEngine(engine)),
        };
        self.host_returned();
        out
    }

    fn generate_batch(&mut self, engine: u64, prompts: Vec<String>, params: GenerationParams) -> Result<BatchOutcome, InferenceError> {
        let s = self.services();
        let start_ns = s.now_ns();
        let out = match s.engines.get(&engine) {
            _ if interrupted() => Err(stop()),
            Some(e) => {
                let p = inference::GenerationParams {
                    max_new_tokens: params.max_new_tokens,
                    min_new_tokens: params.min_new_tokens,
                    ignore_eos: params.ignore_eos,
                    do_sample: params.do_sample,
                    temperature: params.temperature,
                    top_p: params.top_p,
                    seed: params.seed,
                    truncate: params.truncate,
                };
                e.generate(&prompts, &p).map_err(to_wit).map(|b| BatchOutcome {
                    prefill_ns: Some(b.prefill_ns),
                    decode_step_ns: b.decode_step_ns,
                    requests: b
                        .requests
                        .into_iter()
                        .map(|r| RequestOutcome {
                            input_tokens: r.input_ids.len() as u32,
                            output_tokens: r.output_ids.len() as u32,
                            token_source: TokenCountSource::Engine,
                            start_ns,
                            ttft_ns: Some(r.ttft_ns),
                            e2e_ns: r.e2e_ns,
                            itl_ns: r.itl_ns,
                            output_ids: r.output_ids,
                            text: r.text,
                            error: None,
                        })
                        .collect(),
                })
            }
            None => Err(InferenceError::UnknownEngine(engine)),
        };
        self.host_returned();
        out
    }

    fn run_load(
        &mut self,
        engine: u64,
        _prompts: Vec<String>,
        _params: GenerationParams,
        _profile: LoadProfile,
        _max_duration_ms: u64,
    ) -> Result<Vec<RequestOutcome>, InferenceError> {
        let out = if self.services().engines.contains_key(&engine) {
            Err(InferenceError::Invalid("run-load is for remote engines; local engines use generate-batch".into()))
        } else {
            Err(InferenceError::UnknownEngine(engine))
        };
        self.host_returned();
        out
    }

    fn close_engine(&mut self, engine: u64) {
        self.services().engines.remove(&engine);
        self.host_returned();
    }
}
