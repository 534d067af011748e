//! The local engine: Hugging Face model folders run with candle on this machine's CPU, or on an
//! NVIDIA GPU in builds with the `cuda` feature.
//!
//! Rooms: [`config`] (config.json → one decoder description), [`resolve`] (folders and the hub
//! cache), [`model`] (the decoder, with masks and a KV cache), [`sampling`].

pub mod chat;
pub mod config;
pub mod model;
pub mod moe;
pub mod mxfp4;
pub mod resolve;
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
        let mut mask: Vec<Vec<u8>> = Vec::with_capacity(b);
        let mut flat = Vec::with_capacity(b * longest);
        let mut pos = Vec::with_capacity(b * longest);
        let mut next_pos = Vec::with_capacity(b);
        for ids in &encoded {
            let padn = longest - ids.len();
            mask.push(std::iter::repeat_n(0u8, padn).chain(std::iter::repeat_n(1u8, ids.len())).collect());
            flat.extend(std::iter::repeat_n(pad, padn).chain(ids.iter().copied()));
            pos.extend(std::iter::repeat_n(0u32, padn).chain(0..ids.len() as u32));
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
        let ids = Tensor::from_vec(flat, (b, longest), dev).map_err(compute)?;
        let positions = Tensor::from_vec(pos, (b, longest), dev).map_err(compute)?;
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
            let ids = Tensor::from_vec(step.clone(), (b, 1), dev).map_err(compute)?;
            let positions = Tensor::from_vec(next_pos.clone(), (b, 1), dev).map_err(compute)?;
            for p in next_pos.iter_mut() {
                *p += 1;
            }
            let logits = self.decoder.forward(&ids, &positions, &mask, &mut cache).map_err(compute)?;
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

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture_named(name: &str) -> std::path::PathBuf {
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(name)
    }

    fn fixture() -> std::path::PathBuf {
        fixture_named("tiny-llama")
    }

    fn engine_at(dir: &std::path::Path) -> CandleEngine {
        let spec = LocalSpec {
            model: dir.display().to_string(),
            device: "cpu".into(),
            dtype: "float32".into(),
            processor: None,
        };
        CandleEngine::open(&spec, &|_: &str| None).unwrap_or_else(|e| panic!("{} loads: {e}", dir.display()))
    }

    fn engine() -> CandleEngine {
        engine_at(&fixture())
    }

    struct Case {
        prompt: String,
        input_ids: Vec<u32>,
        output_ids: Vec<u32>,
        top5: Vec<(u32, f32)>,
    }

    fn cases() -> Vec<Case> {
        cases_at(&fixture())
    }

    fn cases_at(dir: &std::path::Path) -> Vec<Case> {
        let text = std::fs::read_to_string(dir.join("reference.json")).expect("reference.json");
        let v: serde_json::Value = serde_json::from_str(&text).expect("json");
        let ids = |x: &serde_json::Value| {
            x.as_array().expect("ids").iter().map(|i| i.as_u64().expect("id") as u32).collect::<Vec<_>>()
        };
        v["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .map(|c| Case {
                prompt: c["prompt"].as_str().expect("prompt").to_string(),
                input_ids: ids(&c["input_ids"]),
                output_ids: ids(&c["greedy_output_ids"]),
                top5: c["first_step_top5"]
                    .as_array()
                    .expect("top5")
                    .iter()
                    .map(|p| (p[0].as_u64().expect("id") as u32, p[1].as_f64().expect("logit") as f32))
                    .collect(),
            })
            .collect()
    }

    fn fixed(n: u32) -> GenerationParams {
        GenerationParams { max_new_tokens: n, ignore_eos: true, ..Default::default() }
    }

    #[test]
    fn tokenizer_matches_transformers() {
        let e = engine();
        for c in cases() {
            assert_eq!(e.encode(&c.prompt, true).expect("encode"), c.input_ids, "{:?}", c.prompt);
        }
    }

    #[test]
    fn every_reference_case_alone_token_for_token() {
        let e = engine();
        for c in cases() {
            let out = e.generate(std::slice::from_ref(&c.prompt), &fixed(32)).expect("generate");
            assert_eq!(out.requests[0].output_ids, c.output_ids, "{:?}", c.prompt);
        }
    }

    #[test]
    fn first_step_logits_match_to_float32_precision() {
        let e = engine();
        for c in cases() {
            let row = first_logits(&e, &c.input_ids);
            for (id, want) in &c.top5 {
                assert!(
                    (row[*id as usize] - want).abs() < 1e-4,
                    "{:?}: logit of {id} is {} not {want}",
                    c.prompt,
                    row[*id as usize]
                );
            }
        }
    }

    #[test]
    fn every_reference_case_batched_with_padding_token_for_token() {
        let e = engine();
        let cases = cases();
        let prompts: Vec<String> = cases.iter().map(|c| c.prompt.clone()).collect();
        // All six together (3 to 59 tokens: heavy left padding), and in uneven pairs.
        let out = e.generate(&prompts, &fixed(32)).expect("batch");
        for (c, r) in cases.iter().zip(&out.requests) {
            assert_eq!(r.output_ids, c.output_ids, "batched: {:?}", c.prompt);
            assert_eq!(r.input_ids, c.input_ids);
        }
        assert_eq!(out.padded_len, cases.iter().map(|c| c.input_ids.len()).max().expect("max"));
        assert_eq!(out.decode_step_ns.len(), 31);
        let pair = vec![prompts[5].clone(), prompts[0].clone()];
        let out = e.generate(&pair, &fixed(32)).expect("pair");
        assert_eq!(out.requests[0].output_ids, cases[5].output_ids);
        assert_eq!(out.requests[1].output_ids, cases[0].output_ids);
    }

    #[test]
    fn eos_stops_a_sequence_unless_ignored_and_min_tokens_suppress_it() {
        let e = engine();
        // Find a prompt and length where the model emits EOS (id 1) greedily, if any; else make
        // the test meaningful by checking min_new_tokens never lets EOS through.
        let prompts: Vec<String> = cases().into_iter().map(|c| c.prompt).collect();
        let p = GenerationParams { max_new_tokens: 24, min_new_tokens: 24, ..Default::default() };
        let out = e.generate(&prompts, &p).expect("generate");
        for r in &out.requests {
            assert_eq!(r.output_ids.len(), 24);
            assert!(!r.output_ids.contains(&1), "EOS must be suppressed before min_new_tokens");
        }
    }

    #[test]
    fn bad_inputs_are_clear_errors() {
        let e = engine();
        let long = "energy ".repeat(400);
        let err = e.generate(std::slice::from_ref(&long), &fixed(8)).unwrap_err().to_string();
        assert!(err.contains("context of 256"), "{err}");
        let ok = e
            .generate(std::slice::from_ref(&long), &GenerationParams { truncate: true, ..fixed(8) })
            .expect("truncated");
        assert!(ok.requests[0].truncated && ok.requests[0].input_ids.len() == 248);
        assert!(e.generate(&[], &fixed(8)).unwrap_err().to_string().contains("at least one prompt"));
        assert!(e.generate(&["x".into()], &fixed(0)).unwrap_err().to_string().contains("at least 1"));
        assert!(e.generate(&["x".into()], &fixed(300)).unwrap_err().to_string().contains("does not fit"));
    }

    fn copy_fixture(skip: &[&str]) -> tempfile::TempDir {
        let dir = tempfile::tempdir().expect("tmp");
        for f in ["config.json", "generation_config.json", "tokenizer.json", "model.safetensors"] {
            if !skip.contains(&f) {
                std::fs::copy(fixture().join(f), dir.path().join(f)).expect("copy");
            }
        }
        dir
    }

    fn open_err(dir: &std::path::Path) -> String {
        let spec =
            LocalSpec { model: dir.display().to_string(), device: "cpu".into(), dtype: "auto".into(), processor: None };
        match CandleEngine::open(&spec, &|_: &str| None) {
            Ok(_) => panic!("{} loaded", dir.display()),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn broken_model_folders_are_clear_errors() {
        let d = copy_fixture(&["tokenizer.json"]);
        assert!(open_err(d.path()).contains("no tokenizer.json"));
        let d = copy_fixture(&["model.safetensors"]);
        assert!(open_err(d.path()).contains("no model.safetensors"));
        let d = copy_fixture(&[]);
        let bytes = std::fs::read(d.path().join("model.safetensors")).expect("read");
        std::fs::write(d.path().join("model.safetensors"), &bytes[..bytes.len() / 2]).expect("truncate");
        let err = open_err(d.path());
        assert!(err.contains("do not load"), "{err}");
        let d = copy_fixture(&[]);
        std::fs::write(d.path().join("tokenizer.json"), "{\"not\": \"a tokenizer\"}").expect("write");
        assert!(open_err(d.path()).contains("does not load"));
        let d = copy_fixture(&[]);
        let cfg = std::fs::read_to_string(d.path().join("config.json"))
            .expect("cfg")
            .replace("\"hidden_size\": 64", "\"hidden_size\": 96");
        std::fs::write(d.path().join("config.json"), cfg).expect("write");
        let err = open_err(d.path());
        assert!(err.contains("do not match config.json"), "{err}");
        let spec = LocalSpec {
            model: fixture().display().to_string(),
            device: "tpu".into(),
            dtype: "auto".into(),
            processor: None,
        };
        assert!(
            CandleEngine::open(&spec, &|_: &str| None)
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default()
                .contains("unknown device")
        );
    }

    /// Writes the fixture as a GGUF file the way llama.cpp's converter does (q and k rows
    /// permuted for interleaved rotary pairs), in `dtype`.
    fn fixture_as_gguf(dir: &std::path::Path, dtype: candle_core::quantized::GgmlDType) -> std::path::PathBuf {
        use candle_core::quantized::{QTensor, gguf_file::Value};
        let weights =
            candle_core::safetensors::load(fixture().join("model.safetensors"), &Device::Cpu).expect("weights");
        let permute = |t: &Tensor, heads: usize| -> Tensor {
            let (rows, cols) = t.dims2().expect("2d");
            t.reshape((heads, 2, rows / heads / 2, cols))
                .expect("r")
                .transpose(1, 2)
                .expect("t")
                .contiguous()
                .expect("c")
                .reshape((rows, cols))
                .expect("r")
        };
        let mut named: Vec<(String, QTensor)> = Vec::new();
        let q = |t: &Tensor| {
            QTensor::quantize(t, if t.rank() == 1 { candle_core::quantized::GgmlDType::F32 } else { dtype })
                .expect("quantize")
        };
        named.push(("token_embd.weight".into(), q(&weights["model.embed_tokens.weight"])));
        named.push(("output_norm.weight".into(), q(&weights["model.norm.weight"])));
        named.push(("output.weight".into(), q(&weights["lm_head.weight"])));
        for i in 0..2 {
            let w = |n: &str| &weights[&format!("model.layers.{i}.{n}.weight")];
            named.push((format!("blk.{i}.attn_q.weight"), q(&permute(w("self_attn.q_proj"), 4))));
            named.push((format!("blk.{i}.attn_k.weight"), q(&permute(w("self_attn.k_proj"), 2))));
            named.push((format!("blk.{i}.attn_v.weight"), q(w("self_attn.v_proj"))));
            named.push((format!("blk.{i}.attn_output.weight"), q(w("self_attn.o_proj"))));
            named.push((format!("blk.{i}.ffn_gate.weight"), q(w("mlp.gate_proj"))));
            named.push((format!("blk.{i}.ffn_up.weight"), q(w("mlp.up_proj"))));
            named.push((format!("blk.{i}.ffn_down.weight"), q(w("mlp.down_proj"))));
            named.push((format!("blk.{i}.attn_norm.weight"), q(w("input_layernorm"))));
            named.push((format!("blk.{i}.ffn_norm.weight"), q(w("post_attention_layernorm"))));
        }
        let md: Vec<(&str, Value)> = vec![
            ("general.architecture", Value::String("llama".into())),
            ("llama.embedding_length", Value::U32(64)),
            ("llama.block_count", Value::U32(2)),
            ("llama.attention.head_count", Value::U32(4)),
            ("llama.attention.head_count_kv", Value::U32(2)),
            ("llama.feed_forward_length", Value::U32(128)),
            ("llama.context_length", Value::U32(256)),
            ("llama.rope.dimension_count", Value::U32(16)),
            ("llama.rope.freq_base", Value::F32(10000.0)),
            ("llama.attention.layer_norm_rms_epsilon", Value::F32(1e-5)),
            ("tokenizer.ggml.bos_token_id", Value::U32(0)),
            ("tokenizer.ggml.eos_token_id", Value::U32(1)),
        ];
        let path = dir.join("tiny.gguf");
        let mut f = std::fs::File::create(&path).expect("create");
        let mdr: Vec<(&str, &Value)> = md.iter().map(|(k, v)| (*k, v)).collect();
        let tr: Vec<(&str, &QTensor)> = named.iter().map(|(k, v)| (k.as_str(), v)).collect();
        candle_core::quantized::gguf_file::write(&mut f, &mdr, &tr).expect("write gguf");
        std::fs::copy(fixture().join("tokenizer.json"), dir.join("tokenizer.json")).expect("tokenizer");
        path
    }

    #[test]
    fn gguf_llama_reproduces_the_reference_and_q8_stays_close() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = fixture_as_gguf(dir.path(), candle_core::quantized::GgmlDType::F32);
        let spec = LocalSpec {
            model: path.display().to_string(),
            device: "cpu".into(),
            dtype: "auto".into(),
            processor: None,
        };
        let e = CandleEngine::open(&spec, &|_: &str| None).expect("gguf loads");
        let cases = cases();
        let prompts: Vec<String> = cases.iter().map(|c| c.prompt.clone()).collect();
        let out = e.generate(&prompts, &fixed(32)).expect("generate");
        for (c, r) in cases.iter().zip(&out.requests) {
            assert_eq!(r.output_ids, c.output_ids, "GGUF f32, batched: {:?}", c.prompt);
        }
        // Quantized to Q8_0 (blocks of 32; the fixture's rows are 64 or 128 wide): the first
        // tokens still agree with float32 on every case.
        let q8 = tempfile::tempdir().expect("tmp");
        let path = fixture_as_gguf(q8.path(), candle_core::quantized::GgmlDType::Q8_0);
        let spec = LocalSpec { model: path.display().to_string(), ..spec };
        let e = CandleEngine::open(&spec, &|_: &str| None).expect("q8 loads");
        let out = e.generate(&prompts, &fixed(4)).expect("generate");
        let agree = cases.iter().zip(&out.requests).filter(|(c, r)| r.output_ids[0] == c.output_ids[0]).count();
        assert!(agree >= 5, "only {agree} of 6 first tokens agree after Q8_0");
        // Named inside a Hub repo in the cache (`ORG/NAME/FILE.gguf`), with its tokenizer beside.
        let cache = tempfile::tempdir().expect("tmp");
        let snapshot = cache.path().join("models--org--tiny-GGUF/snapshots/c0ffee");
        std::fs::create_dir_all(&snapshot).expect("mkdir");
        for f in ["tiny.gguf", "tokenizer.json"] {
            std::fs::copy(q8.path().join(f), snapshot.join(f)).expect("copy");
        }
        let c = cache.path().display().to_string();
        let env = |k: &str| (k == "HF_HUB_CACHE").then(|| c.clone());
        let by_id = LocalSpec { model: "org/tiny-GGUF/tiny.gguf".into(), ..spec.clone() };
        let e = CandleEngine::open(&by_id, &env).expect("gguf from the cache");
        assert_eq!(
            e.generate(&prompts, &fixed(4)).expect("generate").requests[0].output_ids,
            out.requests[0].output_ids
        );
        let absent = LocalSpec { model: "org/tiny-GGUF/other.gguf".into(), ..spec.clone() };
        let err = CandleEngine::open(&absent, &env).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("energy-star fetch org/tiny-GGUF/other.gguf"), "{err}");
        // Without a tokenizer beside it, the error says where to put one.
        std::fs::remove_file(q8.path().join("tokenizer.json")).expect("rm");
        let err = CandleEngine::open(&spec, &|_: &str| None).err().map(|e| e.to_string()).unwrap_or_default();
        assert!(err.contains("needs a tokenizer"), "{err}");
    }

    /// The first-step logits of the prompt `ids` alone.
    fn first_logits(e: &CandleEngine, ids: &[u32]) -> Vec<f32> {
        let mut cache = model::KvCache::new(e.config().num_layers);
        let n = ids.len();
        let t = Tensor::from_vec(ids.to_vec(), (1, n), &Device::Cpu).expect("ids");
        let pos = Tensor::from_vec((0..n as u32).collect::<Vec<_>>(), (1, n), &Device::Cpu).expect("pos");
        let logits = e.decoder.forward(&t, &pos, &[vec![1u8; n]], &mut cache).expect("forward");
        model::rows(&logits).expect("rows").remove(0)
    }

    /// Every reference case of `cases` on `e`: the tokenizer's ids, the first step's top-5
    /// logits, the greedy tokens alone, all together with left padding, and in an uneven pair.
    fn assert_reference(e: &CandleEngine, cases: &[Case], label: &str) {
        for c in cases {
            assert_eq!(e.encode(&c.prompt, true).expect("encode"), c.input_ids, "{label}: {:?}", c.prompt);
            let row = first_logits(e, &c.input_ids);
            for (id, want) in &c.top5 {
                let got = row[*id as usize];
                assert!((got - want).abs() < 1e-4, "{label}: {:?}: logit of {id} is {got} not {want}", c.prompt);
            }
            let out = e.generate(std::slice::from_ref(&c.prompt), &fixed(32)).expect("generate");
            assert_eq!(out.requests[0].output_ids, c.output_ids, "{label}, alone: {:?}", c.prompt);
        }
        let prompts: Vec<String> = cases.iter().map(|c| c.prompt.clone()).collect();
        let out = e.generate(&prompts, &fixed(32)).expect("batch");
        for (c, r) in cases.iter().zip(&out.requests) {
            assert_eq!(r.output_ids, c.output_ids, "{label}, batched: {:?}", c.prompt);
        }
        let (long, short) = (prompts.len() - 1, 0);
        let out = e.generate(&[prompts[long].clone(), prompts[short].clone()], &fixed(32)).expect("pair");
        assert_eq!(out.requests[0].output_ids, cases[long].output_ids, "{label}, pair");
        assert_eq!(out.requests[1].output_ids, cases[short].output_ids, "{label}, pair");
    }

    #[test]
    fn gpt_oss_with_mxfp4_experts_matches_transformers_alone_and_batched() {
        let dir = fixture_named("tiny-gpt-oss");
        let e = engine_at(&dir);
        assert_eq!(e.config().weights_format, config::WeightsFormat::Mxfp4);
        assert_reference(&e, &cases_at(&dir), "mxfp4");
    }

    #[test]
    fn gpt_oss_with_dense_experts_matches_transformers_and_the_mxfp4_checkpoint() {
        let dir = fixture_named("tiny-gpt-oss");
        let dense = engine_at(&dir.join("dense"));
        assert_eq!(dense.config().weights_format, config::WeightsFormat::Dense);
        let cases = cases_at(&dir);
        assert_reference(&dense, &cases, "dense");
        // The packed product decodes to exactly the stored dense values: the logits agree to
        // float32 rounding (only the order of the sums differs).
        let packed = engine_at(&dir);
        for c in &cases {
            let (a, b) = (first_logits(&packed, &c.input_ids), first_logits(&dense, &c.input_ids));
            let worst = a.iter().zip(&b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max);
            assert!(worst < 1e-4, "{:?}: mxfp4 and dense logits differ by {worst}", c.prompt);
        }
    }

    /// gpt-oss in reasoning mode: each chat case rendered through the fixture's own Harmony
    /// template (`chat_template.jinja`) with its kwargs gives transformers' ids, and greedy
    /// decoding from them transformers' tokens, alone and batched (MXFP4 checkpoint).
    #[test]
    fn gpt_oss_chats_through_its_harmony_template_match_transformers() {
        let dir = fixture_named("tiny-gpt-oss");
        let e = engine_at(&dir);
        let refs: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(dir.join("reference.json")).expect("ref")).expect("json");
        let ids = |x: &serde_json::Value| -> Vec<u32> {
            x.as_array().expect("ids").iter().map(|i| i.as_u64().expect("id") as u32).collect()
        };
        // transformers rendered them at SOURCE_DATE_EPOCH=1764806400 (2025-12-04).
        let now = 1_764_806_400;
        let cases = refs["chat_cases"].as_array().expect("chat cases");
        assert!(cases.len() >= 2);
        let mut inputs = Vec::new();
        for c in cases {
            let kwargs = c["kwargs"].as_object().cloned().unwrap_or_default();
            let chat = e.apply_chat_template(&c["messages"], &kwargs, now).expect("template");
            assert_eq!(chat.text, c["text"].as_str().expect("text"));
            assert_eq!(chat.input_ids, ids(&c["input_ids"]), "{}", c["text"]);
            assert_eq!(chat.template_origin, "chat_template.jinja");
            // The Harmony template reads reasoning_effort, not enable_thinking.
            assert_eq!(
                chat.unused_kwargs.contains(&"enable_thinking".to_string()),
                kwargs.contains_key("enable_thinking")
            );
            let n = c["max_new_tokens"].as_u64().expect("n") as u32;
            let out = e.generate_ids(&["chat".into()], vec![chat.input_ids.clone()], &fixed(n)).expect("generate");
            assert_eq!(out.requests[0].output_ids, ids(&c["greedy_output_ids"]), "alone: {}", c["kwargs"]);
            inputs.push((chat.input_ids, ids(&c["greedy_output_ids"]), n));
        }
        let n = inputs[0].2;
        let labels: Vec<String> = (0..inputs.len()).map(|i| format!("chat {i}")).collect();
        let out = e.generate_ids(&labels, inputs.iter().map(|i| i.0.clone()).collect(), &fixed(n)).expect("batch");
        for ((_, want, _), r) in inputs.iter().zip(&out.requests) {
            assert_eq!(&r.output_ids, want, "batched");
        }
    }

    /// A copy of the gpt-oss fixture with config.json edited by `edit`.
    fn gpt_oss_with_config(edit: impl Fn(&mut serde_json::Value)) -> tempfile::TempDir {
        let from = fixture_named("tiny-gpt-oss");
        let dir = tempfile::tempdir().expect("tmp");
        for f in
            ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"]
        {
            std::fs::copy(from.join(f), dir.path().join(f)).expect("copy");
        }
        let path = dir.path().join("config.json");
        let mut cfg: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&path).expect("read")).expect("json");
        edit(&mut cfg);
        std::fs::write(&path, cfg.to_string()).expect("write");
        dir
    }

    #[test]
    fn broken_gpt_oss_checkpoints_are_clear_errors() {
        let d = gpt_oss_with_config(|c| c["num_local_experts"] = serde_json::json!(3));
        let err = open_err(d.path());
        assert!(err.contains("gate_up_proj_blocks has shape [4,") && err.contains("needs [3,"), "{err}");
        let d = gpt_oss_with_config(|c| c["intermediate_size"] = serde_json::json!(96));
        let err = open_err(d.path());
        assert!(err.contains("gate_up_proj_blocks has shape") && err.contains("[experts, out, in/32, 16]"), "{err}");
        let d = gpt_oss_with_config(|c| c["quantization_config"]["quant_method"] = serde_json::json!("awq"));
        let err = open_err(d.path());
        assert!(err.contains("quant_method \"awq\" is not supported"), "{err}");
        let d = gpt_oss_with_config(|c| c["swiglu_limit"] = serde_json::json!(-1.0));
        assert!(open_err(d.path()).contains("must be positive"));
        let d = gpt_oss_with_config(|c| c["num_experts_per_tok"] = serde_json::json!(9));
        assert!(open_err(d.path()).contains("must be between 1 and `num_local_experts` (4)"));
        let d = gpt_oss_with_config(|c| c["layer_types"][1] = serde_json::json!("chunked_attention"));
        assert!(open_err(d.path()).contains("layer_types[1] = \"chunked_attention\" is not supported"));
        // Dense expert tensors under an MXFP4 config (and the reverse) name the missing tensor.
        let d = gpt_oss_with_config(|c| {
            c.as_object_mut().expect("object").remove("quantization_config");
        });
        let err = open_err(d.path());
        assert!(err.contains("gate_up_proj"), "{err}");
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_says_how_to_get_it() {
        let err = open_device("cuda").unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }
}
