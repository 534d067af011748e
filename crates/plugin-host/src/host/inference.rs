//! `inference`: local and remote engines as resources; the host times every request.

use std::sync::Arc;
use std::time::Duration;

use energy_star_engine::{self as engine, InferenceError as EngineError};
use energy_star_engine_local::{CandleEngine, LocalSpec, PromptInput};
use energy_star_engine_remote::load::{LoadLimits as HostLimits, LoadProfile as HostProfile, StopReason as HostStop};
use energy_star_engine_remote::request::{BodyOptions, FailureKind as HostFailure, TokenSource as HostTokens};
use energy_star_engine_remote::{Api, RemoteEngine as Remote, RemoteSpec};
use wasmtime::component::Resource;

use crate::wit::latest::backend::energy_star::plugin::inference::{
    BatchOutcome, ChatMessage, ChatPrompt, ChatTemplateInfo, EngineInfo, FailureKind, GenerationParams, Host,
    HostLocalEngine, HostRemoteEngine, LoadLimits, LoadOutcome, LoadProfile, LocalEngineSpec, Prompt, RemoteApi,
    RemoteEngineSpec, RequestError, RequestOutcome, SamplingOptions, StopReason,
};
use crate::wit::latest::backend::energy_star::plugin::types::{Device, Dtype, Error, FinishReason, TokenCountSource};
use energy_star_results::records::ChatTemplateUse;

use super::{Env, InferenceView, check_interrupted};

/// A model loaded on this machine.
pub struct LocalEngine(Box<CandleEngine>);

/// A connection to an OpenAI-compatible server.
pub struct RemoteEngine(Box<Remote>);

fn engine_error(e: EngineError) -> Error {
    match e {
        EngineError::Invalid(m) => Error::Invalid(m),
        EngineError::Device { .. } => Error::Unavailable(e.to_string()),
        other => Error::Failed(other.to_string()),
    }
}

pub(crate) fn host_params(p: &GenerationParams) -> engine::GenerationParams {
    engine::GenerationParams {
        max_new_tokens: p.max_new_tokens,
        min_new_tokens: p.min_new_tokens,
        ignore_eos: p.ignore_eos,
        do_sample: p.do_sample,
        temperature: p.temperature,
        top_p: p.top_p,
        top_k: None,
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

fn token_source(s: HostTokens) -> TokenCountSource {
    match s {
        HostTokens::Engine => TokenCountSource::Engine,
        HostTokens::ServerUsage => TokenCountSource::ServerUsage,
        HostTokens::Tokenizer => TokenCountSource::Tokenizer,
        HostTokens::StreamChunks => TokenCountSource::StreamChunks,
    }
}

fn finish_reason(text: &str) -> FinishReason {
    match text {
        "stop" | "eos" => FinishReason::Stop,
        "length" => FinishReason::Length,
        other => FinishReason::Other(other.to_string()),
    }
}

pub(crate) fn dtype_name(d: Dtype) -> &'static str {
    match d {
        Dtype::Auto => "auto",
        Dtype::Float32 => "float32",
        Dtype::Bfloat16 => "bfloat16",
        Dtype::Float16 => "float16",
    }
}

/// A local tokenizer for a served model name, when one is at hand (a folder, the hub cache,
/// the built-in toy model); never a download.
fn local_tokenizer(model: &str, env: &Env) -> Option<tokenizers::Tokenizer> {
    let files = energy_star_engine_local::resolve::resolve(model, &|k: &str| env(k)).ok()?;
    tokenizers::Tokenizer::from_file(files.tokenizer).ok()
}

/// The extra body fields: a JSON object, when given.
fn extra_body(json: Option<&str>) -> Result<serde_json::Map<String, serde_json::Value>, Error> {
    match json.map(str::trim).filter(|t| !t.is_empty()) {
        None => Ok(Default::default()),
        Some(t) => match serde_json::from_str::<serde_json::Value>(t) {
            Ok(serde_json::Value::Object(m)) => Ok(m),
            Ok(other) => Err(Error::Invalid(format!("extra-body-json must be a JSON object, not {other}"))),
            Err(e) => Err(Error::Invalid(format!("extra-body-json is not JSON: {e}"))),
        },
    }
}

/// Counts one more prompt through a template with these kwargs.
fn record_template_use(
    uses: &mut Vec<ChatTemplateUse>,
    model: &str,
    chat: &energy_star_engine_local::ChatPrompt,
    kwargs: serde_json::Map<String, serde_json::Value>,
) {
    match uses.iter_mut().find(|u| u.model == model && u.sha256 == chat.template_sha256 && u.kwargs == kwargs) {
        Some(u) => u.prompts += 1,
        None => uses.push(ChatTemplateUse {
            model: model.to_string(),
            sha256: chat.template_sha256.clone(),
            origin: chat.template_origin.clone(),
            kwargs,
            unused_kwargs: chat.unused_kwargs.clone(),
            prompts: 1,
        }),
    }
}

/// A request as the WIT gives it; `base_ns` places a local batch's times on the host clock.
fn outcome(r: engine::RequestOutcome, base_ns: u64) -> RequestOutcome {
    RequestOutcome {
        prompt_index: r.index,
        request_id: r.request_id.clone(),
        input_tokens: r.input_tokens,
        output_tokens: r.output_tokens,
        token_source: token_source(r.token_source),
        start_ns: base_ns + r.start_ns,
        queue_ns: r.queue_ns(),
        ttft_ns: r.ttft_ns,
        e2e_ns: r.e2e_ns,
        itl_ns: r.itl_ns,
        output_ids: r.output_ids,
        text: r.text,
        finish_reason: r.finish_reason.as_deref().map(finish_reason),
        error: r.failure.map(|f| RequestError {
            kind: failure_kind(f.kind),
            message: f.message,
            http_status: f.http_status,
        }),
    }
}

impl InferenceView<'_> {
    fn push<T: Send + 'static>(&mut self, value: T) -> Result<Resource<T>, Error> {
        self.table.push(value).map_err(|e| Error::Failed(format!("engine table: {e}")))
    }

    /// Opens a local engine (also for the 0.1.0 imports, which name devices as text).
    pub(crate) fn open_local(&mut self, spec: LocalSpec) -> Result<Resource<LocalEngine>, Error> {
        check_interrupted()?;
        if let Some(grant) = self.grant {
            grant.model(&spec.model)?;
            if let Some(p) = &spec.processor {
                grant.model(p)?;
            }
        }
        let env = self.env.clone();
        let engine = CandleEngine::open(&spec, &|k: &str| env(k)).map_err(engine_error)?;
        self.push(LocalEngine(Box::new(engine)))
    }

    /// Connects a remote engine to an endpoint the plan declared; the API key comes from the
    /// host's environment, never from the plugin.
    pub(crate) fn connect_remote(
        &mut self,
        endpoint: &str,
        model: Option<String>,
        api: Api,
        request_timeout: Duration,
        body: BodyOptions,
    ) -> Result<Resource<RemoteEngine>, Error> {
        check_interrupted()?;
        let endpoint = match self.grant {
            Some(grant) => grant.endpoint(endpoint)?,
            None => endpoint.to_string(),
        };
        let env = self.env.clone();
        let spec = RemoteSpec {
            endpoint,
            model,
            api,
            request_timeout,
            api_key: env("VLLM_API_KEY").or_else(|| env("OPENAI_API_KEY")).filter(|k| !k.is_empty()),
            body,
        };
        let env2 = env.clone();
        let engine = Remote::open(&spec, &move |m: &str| local_tokenizer(m, &env2)).map_err(engine_error)?;
        self.push(RemoteEngine(Box::new(engine)))
    }

    /// A local batch as the WIT gives it, its latencies kept for the record.
    fn batch_outcome(&mut self, out: engine::BatchOutcome, start_ns: u64) -> BatchOutcome {
        self.request_latencies_ms.extend(out.requests.iter().map(|r| r.e2e_ns as f64 / 1e6));
        BatchOutcome {
            prefill_ns: out.prefill_ns,
            decode_step_ns: out.decode_step_ns,
            requests: out.requests.into_iter().map(|r| outcome(r, start_ns)).collect(),
        }
    }

    fn local(&self, e: &Resource<LocalEngine>) -> Result<&CandleEngine, Error> {
        self.table.get(e).map(|l| &*l.0).map_err(|err| Error::Invalid(format!("local engine: {err}")))
    }

    fn remote(&self, e: &Resource<RemoteEngine>) -> Result<&Remote, Error> {
        self.table.get(e).map(|r| &*r.0).map_err(|err| Error::Invalid(format!("remote engine: {err}")))
    }
}

impl Host for InferenceView<'_> {
    fn open_local_engine(&mut self, spec: LocalEngineSpec) -> Result<Resource<LocalEngine>, Error> {
        // The engine runs on the first listed GPU (CUDA numbering); every listed GPU is
        // metered, as the plan declares.
        let device = match &spec.device {
            Device::Cpu => "cpu".to_string(),
            Device::Cuda(ids) => match ids.first() {
                Some(id) => format!("cuda:{id}"),
                None => "cuda".to_string(),
            },
        };
        self.open_local(LocalSpec {
            model: spec.model,
            device,
            dtype: dtype_name(spec.dtype).to_string(),
            processor: spec.processor,
        })
    }

    fn connect_remote_engine(&mut self, spec: RemoteEngineSpec) -> Result<Resource<RemoteEngine>, Error> {
        let body = BodyOptions { stream_usage: spec.stream_usage, extra: extra_body(spec.extra_body_json.as_deref())? };
        let api = match spec.api {
            RemoteApi::Completions => Api::Completions,
            RemoteApi::ChatCompletions => Api::ChatCompletions,
        };
        self.connect_remote(&spec.endpoint, spec.model, api, Duration::from_millis(spec.request_timeout_ms), body)
    }
}

impl HostLocalEngine for InferenceView<'_> {
    fn describe(&mut self, engine: Resource<LocalEngine>) -> EngineInfo {
        match self.local(&engine) {
            Ok(e) => {
                let c = e.config();
                EngineInfo {
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
                }
            }
            Err(e) => EngineInfo { model: String::new(), max_context_tokens: None, notes: vec![format!("{e:?}")] },
        }
    }

    fn tokenize(
        &mut self,
        engine: Resource<LocalEngine>,
        text: String,
        add_special_tokens: bool,
    ) -> Result<Vec<u32>, Error> {
        self.local(&engine)?.encode(&text, add_special_tokens).map_err(engine_error)
    }

    fn generate_batch(
        &mut self,
        engine: Resource<LocalEngine>,
        prompts: Vec<String>,
        params: GenerationParams,
    ) -> Result<BatchOutcome, Error> {
        check_interrupted()?;
        let start_ns = self.clock.now_ns();
        let out = self.local(&engine)?.generate(&prompts, &host_params(&params)).map_err(engine_error)?;
        Ok(self.batch_outcome(out, start_ns))
    }

    fn apply_chat_template(
        &mut self,
        engine: Resource<LocalEngine>,
        messages: Vec<ChatMessage>,
        kwargs_json: String,
    ) -> Result<ChatPrompt, Error> {
        let kwargs = match serde_json::from_str::<serde_json::Value>(kwargs_json.trim()) {
            Ok(serde_json::Value::Object(m)) => m,
            _ if kwargs_json.trim().is_empty() => Default::default(),
            Ok(other) => return Err(Error::Invalid(format!("kwargs-json must be a JSON object, not {other}"))),
            Err(e) => return Err(Error::Invalid(format!("kwargs-json is not JSON: {e}"))),
        };
        let messages = serde_json::Value::Array(
            messages.into_iter().map(|m| serde_json::json!({"role": m.role, "content": m.content})).collect(),
        );
        let env = self.env.clone();
        let now = energy_star_engine_local::chat::template_now(&|k: &str| env(k)).map_err(Error::Invalid)?;
        let local = self.local(&engine)?;
        let model = local.model_name.clone();
        let chat = local.apply_chat_template(&messages, &kwargs, now).map_err(|e| Error::Invalid(e.to_string()))?;
        record_template_use(self.chat_templates, &model, &chat, kwargs);
        Ok(ChatPrompt {
            text: chat.text,
            input_ids: chat.input_ids,
            template_sha256: chat.template_sha256,
            template_origin: chat.template_origin,
            unused_kwargs: chat.unused_kwargs,
        })
    }

    fn generate_batch_ids(
        &mut self,
        engine: Resource<LocalEngine>,
        prompts: Vec<Vec<u32>>,
        params: GenerationParams,
    ) -> Result<BatchOutcome, Error> {
        let prompts: Vec<Prompt> = prompts.into_iter().map(Prompt::Ids).collect();
        self.generate(engine, prompts, params, SamplingOptions { top_k: None })
    }

    fn chat_template(&mut self, engine: Resource<LocalEngine>) -> Result<Option<ChatTemplateInfo>, Error> {
        let info = self.local(&engine)?.chat_template_info().map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(info.map(|t| ChatTemplateInfo { origin: t.origin, sha256: t.sha256 }))
    }

    fn generate(
        &mut self,
        engine: Resource<LocalEngine>,
        prompts: Vec<Prompt>,
        params: GenerationParams,
        options: SamplingOptions,
    ) -> Result<BatchOutcome, Error> {
        check_interrupted()?;
        let start_ns = self.clock.now_ns();
        let prompts: Vec<PromptInput> = prompts
            .into_iter()
            .map(|p| match p {
                Prompt::Text(t) => PromptInput::Text(t),
                Prompt::Ids(ids) => PromptInput::Ids(ids),
            })
            .collect();
        let params = engine::GenerationParams { top_k: options.top_k, ..host_params(&params) };
        let out = self.local(&engine)?.generate_prompts(&prompts, &params).map_err(engine_error)?;
        Ok(self.batch_outcome(out, start_ns))
    }

    fn drop(&mut self, engine: Resource<LocalEngine>) -> wasmtime::Result<()> {
        self.table.delete(engine)?;
        Ok(())
    }
}

impl HostRemoteEngine for InferenceView<'_> {
    fn describe(&mut self, engine: Resource<RemoteEngine>) -> EngineInfo {
        match self.remote(&engine) {
            Ok(e) => {
                let mut notes = vec![
                    format!("endpoint {}", e.base_url),
                    format!("API {}", e.api.path()),
                    format!("served models: {}", e.served_models.join(", ")),
                ];
                notes.extend(e.notes.iter().cloned());
                EngineInfo { model: e.model.clone(), max_context_tokens: e.max_model_len, notes }
            }
            Err(e) => EngineInfo { model: String::new(), max_context_tokens: None, notes: vec![format!("{e:?}")] },
        }
    }

    fn tokenize(
        &mut self,
        engine: Resource<RemoteEngine>,
        text: String,
        add_special_tokens: bool,
    ) -> Result<Vec<u32>, Error> {
        let e = self.remote(&engine)?;
        let t =
            e.tokenizer.as_ref().ok_or_else(|| Error::Unavailable(format!("no local tokenizer for {}", e.model)))?;
        t.encode(text.as_str(), add_special_tokens)
            .map(|enc| enc.get_ids().to_vec())
            .map_err(|err| Error::Failed(format!("tokenizer: {err}")))
    }

    fn run_load(
        &mut self,
        engine: Resource<RemoteEngine>,
        prompts: Vec<String>,
        params: GenerationParams,
        profile: LoadProfile,
        limits: LoadLimits,
    ) -> Result<LoadOutcome, Error> {
        check_interrupted()?;
        // Request times share the meter's clock, so windows can be cut from them.
        let origin = self.clock.origin_instant();
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
            max_duration: limits.max_duration_ms.filter(|ms| *ms > 0).map(Duration::from_millis),
            max_consecutive_failures: limits.max_consecutive_failures,
            drain_timeout: Duration::from_millis(limits.drain_timeout_ms),
        };
        let o = self
            .remote(&engine)?
            .run_load(&prompts, &host_params(&params), &profile, &limits, origin, Arc::new(super::interrupted))
            .map_err(engine_error)?;
        self.request_latencies_ms
            .extend(o.requests.iter().filter(|r| r.failure.is_none()).map(|r| r.e2e_ns as f64 / 1e6));
        Ok(LoadOutcome {
            not_sent: o.not_sent,
            stopped: o.stopped.map(|s| match s {
                HostStop::TimeBound => StopReason::TimeBound,
                HostStop::ConsecutiveFailures(n) => StopReason::ConsecutiveFailures(n),
                HostStop::Interrupted => StopReason::Interrupted,
            }),
            start_ns: o.start_ns,
            end_ns: o.end_ns,
            peak_concurrency: o.peak_concurrency,
            requests: o.requests.into_iter().map(|r| outcome(r, 0)).collect(),
        })
    }

    fn drop(&mut self, engine: Resource<RemoteEngine>) -> wasmtime::Result<()> {
        self.table.delete(engine)?;
        Ok(())
    }
}
