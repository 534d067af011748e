//! The local engine: Hugging Face model folders run with candle on this machine's CPU, or on an
//! NVIDIA GPU in builds with the `cuda` feature.
//!
//! Rooms: [`config`] (config.json → one decoder description), [`rope`] (rotary settings and
//! tables), [`resolve`] (folders and the hub cache), [`model`] (the decoder, with masks and a KV
//! cache), [`moe`] (mixtures of experts), [`mxfp4`] (packed expert weights), [`chat`] (chat
//! templates), [`sampling`], [`toy`] (the offline default model).

pub mod chat;
pub mod config;
pub mod model;
pub mod moe;
pub mod mxfp4;
pub mod quant;
pub mod resolve;
pub mod rope;
pub mod sampling;
pub mod toy;

use std::time::Instant;

use candle_core::{DType, Device, Tensor};
use candle_nn::VarBuilder;
use tokenizers::Tokenizer;

use self::chat::ChatTemplate;
use self::config::ModelConfig;
use self::model::{Decoder, KvCache};
use energy_star_engine::{BatchOutcome, GenerationParams, InferenceError, RequestOutcome, TokenCountSource};

/// What to load.
#[derive(Debug, Clone)]
pub struct LocalSpec {
    pub model: String,
    /// "cpu", "cuda" or "cuda:N".
    pub device: String,
    /// "float32", "bfloat16", "float16" or "auto".
    pub dtype: String,
    /// A folder or id whose tokenizer to use instead of the model's.
    pub processor: Option<String>,
}

/// A loaded model with its tokenizer.
pub struct CandleEngine {
    pub model_name: String,
    pub decoder: Decoder,
    tokenizer: Tokenizer,
    /// The tokenizer's chat template; an unreadable one is an error only when a chat is asked for.
    chat_template: Result<Option<ChatTemplate>, String>,
    pub load_s: f64,
}

/// A prompt as text (tokenized with the tokenizer's special tokens) or as token ids (used as
/// given).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PromptInput {
    Text(String),
    Ids(Vec<u32>),
}

/// The model's chat template: where it was found and its text's SHA-256.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChatTemplateInfo {
    pub origin: String,
    pub sha256: String,
}

/// A chat rendered through the model's template and tokenized.
#[derive(Debug, Clone)]
pub struct ChatPrompt {
    pub text: String,
    pub input_ids: Vec<u32>,
    /// Keyword arguments the template never reads (worth a warning: a typo, or the wrong model).
    pub unused_kwargs: Vec<String>,
    pub template_sha256: String,
    pub template_origin: String,
}

/// Opens the device, refusing CUDA clearly where it cannot work.
pub fn open_device(device: &str) -> Result<Device, InferenceError> {
    let bad = |why: String| InferenceError::Device { device: device.to_string(), why };
    match device {
        "cpu" => Ok(Device::Cpu),
        d if d == "cuda" || d.starts_with("cuda:") => {
            let ordinal: usize = match d.strip_prefix("cuda:") {
                Some(n) => n.parse().map_err(|_| bad(format!("{n:?} is not a GPU number")))?,
                None => 0,
            };
            open_cuda(ordinal).map_err(bad)
        }
        other => Err(bad(format!("unknown device {other:?}; use cpu, cuda or cuda:N"))),
    }
}

#[cfg(feature = "cuda")]
fn open_cuda(ordinal: usize) -> Result<Device, String> {
    // cudarc panics when the driver library is missing, so look for the driver first: NVML
    // ships with it.
    nvml_wrapper::Nvml::init().map_err(|e| format!("no NVIDIA driver: {e}"))?;
    std::panic::catch_unwind(|| Device::new_cuda(ordinal))
        .map_err(|_| "the CUDA driver could not be loaded".to_string())?
        .map_err(|e| format!("cannot open GPU {ordinal}: {e}"))
}

#[cfg(not(feature = "cuda"))]
fn open_cuda(_ordinal: usize) -> Result<Device, String> {
    Err("this energy-star was built without the `cuda` feature; rebuild with `cargo build --release --features cuda` (needs nvcc and the CUDA toolkit) or use backend.device=cpu".into())
}

/// A candle failure as an engine error: its first line (candle appends a backtrace when
/// RUST_BACKTRACE is set).
pub fn compute(e: candle_core::Error) -> InferenceError {
    let text = e.to_string();
    InferenceError::Compute(text.split("\n   0:").next().unwrap_or(&text).trim().to_string())
}

/// The dtype to run in: "auto" takes float32 on CPU (bfloat16 matmuls are slow there) and the
/// model's own dtype on a GPU.
pub fn pick_dtype(requested: &str, device: &Device, config: &ModelConfig) -> Result<DType, InferenceError> {
    let parse = |s: &str| -> Option<DType> {
        match s {
            "float32" | "fp32" | "f32" => Some(DType::F32),
            "bfloat16" | "bf16" => Some(DType::BF16),
            "float16" | "fp16" | "f16" | "half" => Some(DType::F16),
            _ => None,
        }
    };
    match requested {
        "auto" | "" | "null" => Ok(if device.is_cpu() {
            DType::F32
        } else {
            config.dtype.as_deref().and_then(parse).unwrap_or(DType::BF16)
        }),
        other => parse(other).ok_or_else(|| {
            InferenceError::Invalid(format!("torch_dtype {other:?} is not one of float32, bfloat16, float16, auto"))
        }),
    }
}

impl CandleEngine {
    /// Loads a model: files, config, tokenizer, weights.
    pub fn open(spec: &LocalSpec, env: &impl Fn(&str) -> Option<String>) -> Result<Self, InferenceError> {
        if resolve::is_gguf(&spec.model) {
            return Self::open_gguf(spec, env);
        }
        let t0 = Instant::now();
        let merr = |why: String| InferenceError::Model { model: spec.model.clone(), why };
        let files = resolve::resolve(&spec.model, env).map_err(merr)?;
        let read = |p: &std::path::Path| std::fs::read_to_string(p).map_err(|e| merr(format!("{}: {e}", p.display())));
        let gen_text = match &files.generation_config {
            Some(p) => Some(read(p)?),
            None => None,
        };
        let config = ModelConfig::parse(&read(&files.config)?, gen_text.as_deref())
            .map_err(|e| merr(format!("{}: {e}", files.config.display())))?;
        let tokenizer_path = match &spec.processor {
            Some(p) if p != &spec.model => resolve::resolve(p, env).map_err(merr)?.tokenizer,
            _ => files.tokenizer.clone(),
        };
        let tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| InferenceError::Tokenizer {
            model: spec.model.clone(),
            why: format!("{} does not load: {e}", tokenizer_path.display()),
        })?;
        let device = open_device(&spec.device)?;
        let dtype = pick_dtype(&spec.dtype, &device, &config)?;
        // SAFETY: the weight files are memory-mapped read-only; they must not be modified while
        // the model is loaded (as with every mmap-based loader, transformers' included).
        #[allow(unsafe_code)]
        let vb = unsafe { VarBuilder::from_mmaped_safetensors(&files.weights, dtype, &device) }.map_err(|e| {
            merr(format!("weights in {} do not load (corrupt or truncated safetensors?): {e}", files.dir.display()))
        })?;
        let decoder = Decoder::load(config, vb).map_err(|e| merr(format!("weights do not match config.json: {e}")))?;
        let chat_template = tokenizer_path.parent().map_or(Ok(None), ChatTemplate::find);
        Ok(Self {
            model_name: spec.model.clone(),
            decoder,
            tokenizer,
            chat_template,
            load_s: t0.elapsed().as_secs_f64(),
        })
    }

    /// A quantized GGUF file (llama architecture). Its tokenizer comes from `processor` (a
    /// folder or id with tokenizer.json) or a tokenizer.json beside the file: energy-star does
    /// not rebuild tokenizers from GGUF metadata.
    fn open_gguf(spec: &LocalSpec, env: &impl Fn(&str) -> Option<String>) -> Result<Self, InferenceError> {
        let t0 = Instant::now();
        let merr = |why: String| InferenceError::Model { model: spec.model.clone(), why };
        let path = resolve::locate_gguf(&spec.model, env).map_err(merr)?;
        let path = path.as_path();
        let mut file = std::fs::File::open(path).map_err(|e| merr(format!("cannot open: {e}")))?;
        let content = candle_core::quantized::gguf_file::Content::read(&mut file)
            .map_err(|e| merr(format!("not a readable GGUF file: {e}")))?;
        let vocab = content
            .tensor_infos
            .get("token_embd.weight")
            .and_then(|t| t.shape.dims().first().copied())
            .filter(|v| *v > 0)
            .ok_or_else(|| merr("has no usable token_embd.weight".into()))?;
        let config = ModelConfig::from_gguf(&content.metadata, vocab).map_err(merr)?;
        let tokenizer_path = match &spec.processor {
            Some(p) => resolve::resolve(p, env).map_err(merr)?.tokenizer,
            None => {
                let beside = path.parent().unwrap_or(std::path::Path::new(".")).join("tokenizer.json");
                if !beside.is_file() {
                    return Err(merr(format!(
                        "a GGUF model needs a tokenizer: put tokenizer.json beside it ({}) or set backend.processor to the original model",
                        beside.display()
                    )));
                }
                beside
            }
        };
        let tokenizer = Tokenizer::from_file(&tokenizer_path).map_err(|e| InferenceError::Tokenizer {
            model: spec.model.clone(),
            why: format!("{} does not load: {e}", tokenizer_path.display()),
        })?;
        let device = open_device(&spec.device)?;
        if !matches!(spec.dtype.as_str(), "auto" | "" | "float32" | "fp32" | "f32") {
            return Err(InferenceError::Invalid(format!(
                "torch_dtype {} does not apply to a GGUF model: its weights stay in their quantized types (use auto)",
                spec.dtype
            )));
        }
        let decoder = model::Decoder::load_gguf(config, &content, &mut file, &device)
            .map_err(|e| merr(format!("GGUF tensors do not match its metadata: {e}")))?;
        let chat_template = tokenizer_path.parent().map_or(Ok(None), ChatTemplate::find);
        Ok(Self {
            model_name: spec.model.clone(),
            decoder,
            tokenizer,
            chat_template,
            load_s: t0.elapsed().as_secs_f64(),
        })
    }

    pub fn config(&self) -> &ModelConfig {
        &self.decoder.config
    }

    /// Tokenizes as the model's tokenizer does (special tokens added when asked).
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>, InferenceError> {
        self.tokenizer
            .encode(text, add_special_tokens)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| InferenceError::Tokenizer { model: self.model_name.clone(), why: e.to_string() })
    }

    pub fn decode(&self, ids: &[u32]) -> String {
        self.tokenizer.decode(ids, false).unwrap_or_default()
    }

    /// Renders `messages` through the model's chat template with `add_generation_prompt` and
    /// `kwargs`, and tokenizes the text as transformers' `apply_chat_template(tokenize=True)`
    /// does (no special tokens added: the template writes them). `now_unix_s` is the time
    /// `strftime_now` shows.
    pub fn apply_chat_template(
        &self,
        messages: &serde_json::Value,
        kwargs: &serde_json::Map<String, serde_json::Value>,
        now_unix_s: i64,
    ) -> Result<ChatPrompt, InferenceError> {
        let tokenizer_err = |why: String| InferenceError::Tokenizer { model: self.model_name.clone(), why };
        let template = match &self.chat_template {
            Ok(Some(t)) => t,
            Ok(None) => {
                return Err(tokenizer_err(
                    "has no chat template (no chat_template.jinja beside tokenizer.json, no chat_template in tokenizer_config.json)"
                        .into(),
                ));
            }
            Err(e) => return Err(tokenizer_err(e.clone())),
        };
        let rendered = template.render(messages, true, kwargs, now_unix_s).map_err(InferenceError::Invalid)?;
        for token in chat::marker_tokens(&rendered.text) {
            if self.tokenizer.token_to_id(token).is_none() {
                return Err(tokenizer_err(format!(
                    "the chat template ({}) writes {token}, which tokenizer.json has no token for: the template's special tokens \
                     would be split into pieces (a template and tokenizer of different models?)",
                    template.origin
                )));
            }
        }
        let input_ids = self.encode(&rendered.text, false)?;
        Ok(ChatPrompt {
            text: rendered.text,
            input_ids,
            unused_kwargs: rendered.unused_kwargs,
            template_sha256: template.sha256(),
            template_origin: template.origin.clone(),
        })
    }

    /// The model's chat template, if it has one; an error when the one it names cannot be read.
    pub fn chat_template_info(&self) -> Result<Option<ChatTemplateInfo>, InferenceError> {
        match &self.chat_template {
            Ok(t) => Ok(t.as_ref().map(|t| ChatTemplateInfo { origin: t.origin.clone(), sha256: t.sha256() })),
            Err(e) => Err(InferenceError::Tokenizer { model: self.model_name.clone(), why: e.clone() }),
        }
    }

    /// Generates for prompts given as text or token ids, mixed in one batch. A text prompt
    /// seeds its sampling by its text, an ids prompt by its ids.
    pub fn generate_prompts(
        &self,
        prompts: &[PromptInput],
        params: &GenerationParams,
    ) -> Result<BatchOutcome, InferenceError> {
        let mut labels = Vec::with_capacity(prompts.len());
        let mut encoded = Vec::with_capacity(prompts.len());
        for p in prompts {
            match p {
                PromptInput::Text(t) => {
                    encoded.push(self.encode(t, true)?);
                    labels.push(t.clone());
                }
                PromptInput::Ids(ids) => {
                    labels.push(format!("{ids:?}"));
                    encoded.push(ids.clone());
                }
            }
        }
        self.generate_ids(&labels, encoded, params)
    }

    /// Generates for `prompts` together: left-padded, masked, with a KV cache.
    pub fn generate(&self, prompts: &[String], params: &GenerationParams) -> Result<BatchOutcome, InferenceError> {
        let encoded: Vec<Vec<u32>> = prompts.iter().map(|p| self.encode(p, true)).collect::<Result<_, _>>()?;
        self.generate_ids(prompts, encoded, params)
    }

    /// Generates from token ids; `prompts` are only used to seed sampling per prompt.
    pub fn generate_ids(
        &self,
        prompts: &[String],
        mut encoded: Vec<Vec<u32>>,
        params: &GenerationParams,
    ) -> Result<BatchOutcome, InferenceError> {
        if encoded.is_empty() {
            return Err(InferenceError::Invalid("a batch needs at least one prompt".into()));
        }
        let c = self.config();
        let ctx = c.max_position_embeddings.min(model::MAX_POSITIONS);
        let new = params.max_new_tokens as usize;
        if new == 0 {
            return Err(InferenceError::Invalid("max_new_tokens must be at least 1".into()));
        }
        if new >= ctx {
            return Err(InferenceError::Invalid(format!(
                "max_new_tokens {new} does not fit the model's context of {ctx} tokens"
            )));
        }
        let room = ctx - new;
        let mut truncated = vec![false; encoded.len()];
        for (i, ids) in encoded.iter_mut().enumerate() {
            if ids.is_empty() {
                return Err(InferenceError::Invalid(format!("prompt {i} tokenizes to nothing")));
            }
            if ids.len() > room {
                if !params.truncate {
                    return Err(InferenceError::Invalid(format!(
                        "prompt {i} has {} tokens; with {new} new tokens the model's context of {ctx} leaves room for {room} (set scenario.truncation=true to cut it)",
                        ids.len()
                    )));
                }
                ids.truncate(room);
                truncated[i] = true;
            }
        }
        let b = encoded.len();
        let longest = encoded.iter().map(Vec::len).max().unwrap_or(0);
        let pad = c.pad_token_id.or(c.eos_token_ids.first().copied()).unwrap_or(0);
        // Per sequence, every slot fed so far: its tokens (padding first), positions and mask.
        let mut mask: Vec<Vec<u8>> = Vec::with_capacity(b);
        let mut fed: Vec<Vec<u32>> = Vec::with_capacity(b);
        let mut positions: Vec<Vec<u32>> = Vec::with_capacity(b);
        let mut next_pos = Vec::with_capacity(b);
        for ids in &encoded {
            let padn = longest - ids.len();
            mask.push(std::iter::repeat_n(0u8, padn).chain(std::iter::repeat_n(1u8, ids.len())).collect());
            fed.push(std::iter::repeat_n(pad, padn).chain(ids.iter().copied()).collect());
            positions.push(std::iter::repeat_n(0u32, padn).chain(0..ids.len() as u32).collect());
            next_pos.push(ids.len() as u32);
        }
        let dev = &self.decoder.device;
        let mut samplers: Vec<sampling::Sampler> =
            (0..b).map(|i| sampling::Sampler::new(params, prompts.get(i).map(String::as_str).unwrap_or(""))).collect();
        let mut cache = KvCache::new(c.num_layers);
        let mut outputs: Vec<Vec<u32>> = vec![Vec::new(); b];
        let mut done = vec![false; b];
        let mut finished_at = vec![0u64; b];
        let mut itl: Vec<Vec<u64>> = vec![Vec::new(); b];
        let start = Instant::now();
        let ids = Tensor::from_vec(fed.concat(), (b, longest), dev).map_err(compute)?;
        let logits = self.decoder.forward(&ids, &positions, &mask, &mut cache).map_err(compute)?;
        let mut step = self.pick(&logits, &mut samplers, 0, params)?;
        let prefill_ns = start.elapsed().as_nanos() as u64;
        let mut decode_step_ns = Vec::new();
        let mut last = Instant::now();
        for n in 1..=new {
            for i in 0..b {
                if done[i] {
                    continue;
                }
                outputs[i].push(step[i]);
                let is_eos = c.eos_token_ids.contains(&step[i]);
                if outputs[i].len() >= new || (is_eos && !params.ignore_eos) {
                    done[i] = true;
                    finished_at[i] = start.elapsed().as_nanos() as u64;
                }
            }
            if n == new || done.iter().all(|d| *d) {
                break;
            }
            let t = Instant::now();
            for m in mask.iter_mut() {
                m.push(1);
            }
            let step_positions: Vec<Vec<u32>> = next_pos.iter().map(|p| vec![*p]).collect();
            for i in 0..b {
                fed[i].push(step[i]);
                positions[i].push(next_pos[i]);
                next_pos[i] += 1;
            }
            let logits = if self.decoder.crosses_rope_switch(&step_positions) {
                // LongRoPE: a sequence that grows past the original context is recomputed whole
                // with the long factors, as transformers' generate does (it drops the cache).
                cache = KvCache::new(c.num_layers);
                let all = Tensor::from_vec(fed.concat(), (b, fed[0].len()), dev).map_err(compute)?;
                self.decoder.forward(&all, &positions, &mask, &mut cache)
            } else {
                let ids = Tensor::from_vec(step.clone(), (b, 1), dev).map_err(compute)?;
                self.decoder.forward(&ids, &step_positions, &mask, &mut cache)
            }
            .map_err(compute)?;
            step = self.pick(&logits, &mut samplers, n, params)?;
            let dt = t.elapsed().as_nanos() as u64;
            decode_step_ns.push(dt);
            for i in 0..b {
                if !done[i] {
                    itl[i].push(last.elapsed().as_nanos() as u64);
                }
            }
            last = Instant::now();
        }
        let requests = encoded
            .into_iter()
            .zip(outputs)
            .enumerate()
            .map(|(i, (input_ids, output_ids))| {
                let stopped = output_ids.last().is_some_and(|t| c.eos_token_ids.contains(t)) && !params.ignore_eos;
                RequestOutcome {
                    text: self.decode(&output_ids),
                    input_tokens: input_ids.len() as u32,
                    output_tokens: output_ids.len() as u32,
                    input_ids,
                    output_ids,
                    ttft_ns: Some(prefill_ns),
                    e2e_ns: finished_at[i],
                    itl_ns: std::mem::take(&mut itl[i]),
                    truncated: truncated[i],
                    finish_reason: Some(if stopped { "stop" } else { "length" }.to_string()),
                    ..RequestOutcome::new(i as u32, TokenCountSource::Engine)
                }
            })
            .collect();
        Ok(BatchOutcome { prefill_ns, decode_step_ns, requests, padded_len: longest })
    }

    /// Picks each sequence's next token; EOS is suppressed before `min_new_tokens`.
    fn pick(
        &self,
        logits: &Tensor,
        samplers: &mut [sampling::Sampler],
        generated: usize,
        params: &GenerationParams,
    ) -> Result<Vec<u32>, InferenceError> {
        let mut rows = model::rows(logits).map_err(compute)?;
        if generated < params.min_new_tokens as usize {
            for r in rows.iter_mut() {
                for &e in &self.config().eos_token_ids {
                    if let Some(v) = r.get_mut(e as usize) {
                        *v = f32::NEG_INFINITY;
                    }
                }
            }
        }
        Ok(rows.iter().zip(samplers.iter_mut()).map(|(r, s)| s.pick(r)).collect())
    }
}
