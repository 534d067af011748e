use std::sync::Arc;
use std::time::Duration;

use crate::bindings::backend::energy_star::plugin::inference::{
    BatchOutcome, EngineInfo, EngineSpec, FailureKind, GenerationParams, Host, InferenceError, LoadLimits, LoadOutcome,
    LoadProfile, RemoteApi, RequestError, RequestOutcome, TokenCountSource,
};
use crate::state::PluginState;
use energy_star_engine::{self as inference, InferenceError as HostError};
use energy_star_engine_local::{CandleEngine, LocalSpec};
use energy_star_engine_remote::load::{LoadLimits as HostLimits, LoadProfile as HostProfile};
use energy_star_engine_remote::request::{FailureKind as HostFailure, TokenSource};
use energy_star_engine_remote::{Api, RemoteEngine, RemoteSpec};

use super::{Engine, interrupted};

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

fn host_params(p: &GenerationParams) -> inference::GenerationParams {
    inference::GenerationParams {
        max_new_tokens: p.max_new_tokens,
        min_new_tokens: p.min_new_tokens,
        ignore_eos: p.ignore_eos,
        do_sample: p.do_sample,
        temperature: p.temperature,
        top_p: p.top_p,
        seed: p.seed,
        truncate: p.truncate,
    }
}

fn failure_kind(k: HostFailure) -> FailureKind {
    match k {
        HostFailure::Connect => FailureKind::Connect,
        HostFailure::Timeout => FailureKind::Timeout,
        HostFailure::HttpClientError => FailureKind::HttpClientError,
        HostFailure::HttpServerError => FailureKind::HttpServerError,
        HostFailure::StreamError => FailureKind::StreamError,
        HostFailure::MalformedStream => FailureKind::MalformedStream,
        HostFailure::TruncatedStream => FailureKind::TruncatedStream,
        HostFailure::EmptyResponse => FailureKind::EmptyResponse,
        HostFailure::Cancelled => FailureKind::Cancelled,
    }
}

/// A local tokenizer for a served model name, when one is at hand (a folder, the hub cache,
/// the built-in toy model); never a download.
fn local_tokenizer(model: &str, env: &super::Env) -> Option<tokenizers::Tokenizer> {
    let files = energy_star_engine_local::resolve::resolve(model, &|k: &str| env(k)).ok()?;
    tokenizers::Tokenizer::from_file(files.tokenizer).ok()
}

impl Host for PluginState {
    fn open_engine(&mut self, spec: EngineSpec) -> Result<u64, InferenceError> {
        let s = self.services();
        let env = s.env.clone();
        let out = match spec {
            _ if interrupted() => Err(stop()),
            EngineSpec::Local(l) => {
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
                allowed
                    .map_err(InferenceError::Invalid)
                    .and_then(|()| CandleEngine::open(&spec, &|k: &str| env(k)).map_err(to_wit))
                    .map(|e| Engine::Local(Box::new(e)))
            }
            EngineSpec::Remote(r) => {
                // The endpoint must be one the user set (a required setting's value) and the
                // API key comes from the host's environment: a backend cannot point the client
                // anywhere the user did not, nor read the key.
                let endpoint = s.endpoints.iter().find(|e| e.trim() == r.endpoint.trim()).cloned();
                match endpoint {
                    None => Err(InferenceError::Invalid(format!(
                        "a plugin may open only an endpoint the user set in the backend's required settings ({}), not {:?}",
                        if s.endpoints.is_empty() { "none set".to_string() } else { s.endpoints.join(", ") },
                        r.endpoint
                    ))),
                    Some(endpoint) => {
                        let spec = RemoteSpec {
                            endpoint,
                            model: r.model,
                            api: match r.api {
                                RemoteApi::Completions => Api::Completions,
                                RemoteApi::ChatCompletions => Api::ChatCompletions,
                            },
                            request_timeout: Duration::from_millis(r.request_timeout_ms),
                            api_key: env("VLLM_API_KEY").or_else(|| env("OPENAI_API_KEY")).filter(|k| !k.is_empty()),
                        };
                        let env2 = env.clone();
                        RemoteEngine::open(&spec, &move |m: &str| local_tokenizer(m, &env2))
                            .map_err(to_wit)
                            .map(|e| Engine::Remote(Box::new(e)))
                    }
                }
            }
        };
        let out = out.map(|engine| {
            let id = s.next_engine;
            s.next_engine += 1;
            s.engines.insert(id, engine);
            id
        });
        self.host_returned();
        out
    }

    fn describe_engine(&mut self, engine: u64) -> Result<EngineInfo, InferenceError> {
        let out = match self.services().engines.get(&engine) {
            Some(Engine::Local(e)) => {
                let c = e.config();
                Ok(EngineInfo {
                    model: e.model_name.clone(),
                    max_context_tokens: u32::try_from(c.max_position_embeddings).ok(),
                    notes: vec![
                        format!("architecture {}", c.architecture),
                        format!("device {:?}, dtype {:?}", e.decoder.device, e.decoder.dtype),
                        format!(
                            "{} layers, hidden {}, {} heads ({} KV), vocab {}",
                            c.num_layers, c.hidden_size, c.num_heads, c.num_kv_heads, c.vocab_size
                        ),
                        format!("loaded in {:.3} s", e.load_s),
                    ],
                })
            }
            Some(Engine::Remote(e)) => {
                let mut notes = vec![
                    format!("endpoint {}", e.base_url),
                    format!("API {}", e.api.path()),
                    format!("served models: {}", e.served_models.join(", ")),
                ];
                notes.extend(e.notes.iter().cloned());
                Ok(EngineInfo { model: e.model.clone(), max_context_tokens: e.max_model_len, notes })
            }
            None => Err(InferenceError::UnknownEngine(engine)),
        };
        self.host_returned();
        out
    }

    fn tokenize(&mut self, engine: u64, text: String, add_special_tokens: bool) -> Result<Vec<u32>, InferenceError> {
        let out = match self.services().engines.get(&engine) {
            Some(Engine::Local(e)) => e.encode(&text, add_special_tokens).map_err(to_wit),
            Some(Engine::Remote(e)) => match &e.tokenizer {
                Some(t) => t
                    .encode(text.as_str(), add_special_tokens)
                    .map(|enc| enc.get_ids().to_vec())
                    .map_err(|err| InferenceError::Failed(format!("tokenizer: {err}"))),
                None => Err(InferenceError::Unavailable(format!("no local tokenizer for {}", e.model))),
            },
            None => Err(InferenceError::UnknownEngine(engine)),
        };
        self.host_returned();
        out
    }

    fn generate_batch(
        &mut self,
        engine: u64,
        prompts: Vec<String>,
        params: GenerationParams,
    ) -> Result<BatchOutcome, InferenceError> {
        let s = self.services();
        let start_ns = s.now_ns();
        let out = match s.engines.get(&engine) {
            _ if interrupted() => Err(stop()),
            Some(Engine::Local(e)) => {
                e.generate(&prompts, &host_params(&params)).map_err(to_wit).map(|b| BatchOutcome {
                    prefill_ns: Some(b.prefill_ns),
                    decode_step_ns: b.decode_step_ns,
                    requests: b
                        .requests
                        .into_iter()
                        .enumerate()
                        .map(|(i, r)| RequestOutcome {
                            prompt_index: i as u32,
                            input_tokens: r.input_ids.len() as u32,
                            output_tokens: r.output_ids.len() as u32,
                            token_source: TokenCountSource::Engine,
                            start_ns,
                            queue_ns: 0,
                            ttft_ns: Some(r.ttft_ns),
                            e2e_ns: r.e2e_ns,
                            itl_ns: r.itl_ns,
                            output_ids: r.output_ids,
                            text: r.text,
                            finish_reason: None,
                            error: None,
                        })
                        .collect(),
                })
            }
            Some(Engine::Remote(_)) => {
                Err(InferenceError::Invalid("generate-batch is for local engines; remote engines use run-load".into()))
            }
            None => Err(InferenceError::UnknownEngine(engine)),
        };
        self.host_returned();
        out
    }

    fn run_load(
        &mut self,
        engine: u64,
        prompts: Vec<String>,
        params: GenerationParams,
        profile: LoadProfile,
        limits: LoadLimits,
    ) -> Result<LoadOutcome, InferenceError> {
        let s = self.services();
        // Request times share the meter's clock, so windows can be cut from them.
        let origin = s.clock_instant();
        let out = match s.engines.get(&engine) {
            _ if interrupted() => Err(stop()),
            Some(Engine::Remote(e)) => {
                let profile = match profile {
                    LoadProfile::Sequential => HostProfile::Sequential,
                    LoadProfile::Concurrency(n) => HostProfile::Concurrency(n),
                    LoadProfile::Rate(r) => HostProfile::Rate {
                        requests_per_s: r.requests_per_s,
                        burstiness: r.burstiness,
                        seed: r.seed,
                        max_concurrency: r.max_concurrency,
                    },
                };
                let limits = HostLimits {
                    max_duration: (limits.max_duration_ms > 0).then(|| Duration::from_millis(limits.max_duration_ms)),
                    max_consecutive_failures: limits.max_consecutive_failures,
                    drain_timeout: Duration::from_millis(limits.drain_timeout_ms),
                };
                e.run_load(&prompts, &host_params(&params), &profile, &limits, origin, Arc::new(interrupted))
                    .map_err(to_wit)
                    .map(|o| LoadOutcome {
                        not_sent: o.not_sent,
                        stopped: o.stopped,
                        start_ns: o.start_ns,
                        end_ns: o.end_ns,
                        peak_concurrency: o.peak_concurrency,
                        requests: o
                            .requests
                            .into_iter()
                            .map(|r| RequestOutcome {
                                prompt_index: r.index,
                                input_tokens: r.input_tokens,
                                output_tokens: r.output_tokens,
                                token_source: match r.token_source {
                                    TokenSource::ServerUsage => TokenCountSource::ServerUsage,
                                    TokenSource::Tokenizer => TokenCountSource::Tokenizer,
                                    TokenSource::StreamChunks => TokenCountSource::StreamChunks,
                                },
                                start_ns: r.start_ns,
                                queue_ns: r.queue_ns(),
                                ttft_ns: r.ttft_ns,
                                e2e_ns: r.e2e_ns,
                                itl_ns: r.itl_ns,
                                output_ids: Vec::new(),
                                text: r.text,
                                finish_reason: r.finish_reason,
                                error: r.failure.map(|f| RequestError {
                                    kind: failure_kind(f.kind),
                                    message: f.message,
                                    http_status: f.http_status,
                                }),
                            })
                            .collect(),
                    })
            }
            Some(Engine::Local(_)) => {
                Err(InferenceError::Invalid("run-load is for remote engines; local engines use generate-batch".into()))
            }
            None => Err(InferenceError::UnknownEngine(engine)),
        };
        self.host_returned();
        out
    }

    fn close_engine(&mut self, engine: u64) {
        self.services().engines.remove(&engine);
        self.host_returned();
    }
}
