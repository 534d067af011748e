//! Reads a Hugging Face `config.json` into the one decoder description the local engine runs,
//! as transformers 5 writes it (`rope_parameters`, `head_dim`, `dtype`, `layer_types`) and as
//! older versions did (`rope_theta`, `rope_scaling`, `torch_dtype`, `sliding_window_pattern`).
//!
//! A key the file leaves out takes the value transformers' config class gives it (real configs
//! rely on that: gemma-3-4b's `text_config` names six fields), so each architecture carries its
//! class's defaults. Features are described one by one (norm style, activation, which layers
//! rotate or slide, the experts' routing), and the decoder reads only those; what an
//! architecture does that the engine does not is refused by name.

use serde_json::Value;

use super::rope::{Allowed, Rope};

/// The family, which names the weights and decides what a config may ask for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Llama 2/3, SmolLM, TinyLlama, and Mistral (plus a sliding window).
    Llama,
    /// Bias on q, k, v.
    Qwen2,
    /// RMSNorm on q and k per head, no bias.
    Qwen3,
    /// Qwen3 attention with a mixture of SiLU-gated experts (softmax, top-k, optional renorm),
    /// dense layers where `mlp_only_layers` / `decoder_sparse_step` say.
    Qwen3Moe,
    /// Mistral attention with a mixture of experts (softmax, top-k, renormalised).
    Mixtral,
    /// Fused qkv and gate-up projections, partial rotary, LongRoPE.
    Phi3,
    /// Llama with layers that skip RoPE.
    SmolLm3,
    /// Gemma 3's text model: (1 + w) norms around both halves of a layer, q/k norms, scaled
    /// embeddings and queries, GELU-tanh, local and global RoPE on sliding and full layers.
    Gemma3,
    /// gpt-oss: biases everywhere, attention sinks, sliding and full layers alternating, YaRN,
    /// a mixture of experts with a clamped SwiGLU, experts stored as MXFP4.
    GptOss,
}

/// An architecture the engine runs: its names, family and the defaults of its transformers
/// config class (`PreTrainedConfig` subclass), as JSON.
struct Architecture {
    class: &'static str,
    model_type: &'static str,
    family: Family,
    defaults: &'static str,
}

const LLAMA_DEFAULTS: &str = r#"{"vocab_size":32000,"hidden_size":4096,"intermediate_size":11008,"num_hidden_layers":32,
 "num_attention_heads":32,"hidden_act":"silu","max_position_embeddings":2048,"rms_norm_eps":1e-6,"bos_token_id":1,
 "eos_token_id":2,"tie_word_embeddings":false,"attention_bias":false,"mlp_bias":false,"rope_theta":10000.0}"#;
const MISTRAL_DEFAULTS: &str = r#"{"vocab_size":32000,"hidden_size":4096,"intermediate_size":14336,"num_hidden_layers":32,
 "num_attention_heads":32,"num_key_value_heads":8,"hidden_act":"silu","max_position_embeddings":131072,
 "rms_norm_eps":1e-6,"bos_token_id":1,"eos_token_id":2,"tie_word_embeddings":false,"sliding_window":4096,
 "rope_theta":10000.0}"#;
const QWEN2_DEFAULTS: &str = r#"{"vocab_size":151936,"hidden_size":4096,"intermediate_size":22016,"num_hidden_layers":32,
 "num_attention_heads":32,"hidden_act":"silu","max_position_embeddings":32768,"rms_norm_eps":1e-6,
 "tie_word_embeddings":false,"use_sliding_window":false,"max_window_layers":28,"rope_theta":10000.0}"#;
const QWEN3_DEFAULTS: &str = r#"{"vocab_size":151936,"hidden_size":4096,"intermediate_size":22016,"num_hidden_layers":32,
 "num_attention_heads":32,"head_dim":128,"hidden_act":"silu","max_position_embeddings":32768,"rms_norm_eps":1e-6,
 "tie_word_embeddings":false,"attention_bias":false,"use_sliding_window":false,"max_window_layers":28,
 "rope_theta":10000.0}"#;
const QWEN3_MOE_DEFAULTS: &str = r#"{"vocab_size":151936,"hidden_size":2048,"intermediate_size":6144,"num_hidden_layers":24,
 "num_attention_heads":32,"num_key_value_heads":4,"hidden_act":"silu","max_position_embeddings":32768,
 "rms_norm_eps":1e-6,"tie_word_embeddings":false,"attention_bias":false,"use_sliding_window":false,
 "decoder_sparse_step":1,"moe_intermediate_size":768,"num_experts_per_tok":8,"num_experts":128,
 "norm_topk_prob":false,"mlp_only_layers":[],"rope_theta":10000.0}"#;
const MIXTRAL_DEFAULTS: &str = r#"{"vocab_size":32000,"hidden_size":4096,"intermediate_size":14336,"num_hidden_layers":32,
 "num_attention_heads":32,"num_key_value_heads":8,"hidden_act":"silu","max_position_embeddings":131072,
 "rms_norm_eps":1e-5,"bos_token_id":1,"eos_token_id":2,"tie_word_embeddings":false,"sliding_window":null,
 "num_experts_per_tok":2,"num_local_experts":8,"rope_theta":1000000.0}"#;
const PHI3_DEFAULTS: &str = r#"{"vocab_size":32064,"hidden_size":3072,"intermediate_size":8192,"num_hidden_layers":32,
 "num_attention_heads":32,"hidden_act":"silu","max_position_embeddings":4096,"original_max_position_embeddings":4096,
 "rms_norm_eps":1e-5,"tie_word_embeddings":false,"bos_token_id":1,"eos_token_id":32000,"pad_token_id":32000,
 "sliding_window":null,"rope_theta":10000.0,"partial_rotary_factor":1.0}"#;
const SMOLLM3_DEFAULTS: &str = r#"{"vocab_size":128256,"hidden_size":2048,"intermediate_size":11008,"num_hidden_layers":36,
 "num_attention_heads":16,"num_key_value_heads":4,"hidden_act":"silu","max_position_embeddings":32768,
 "rms_norm_eps":1e-6,"pad_token_id":128004,"bos_token_id":128000,"eos_token_id":128001,"use_sliding_window":false,
 "sliding_window":null,"no_rope_layer_interval":4,"attention_bias":false,"mlp_bias":false,
 "tie_word_embeddings":true,"rope_theta":2000000.0}"#;
const GEMMA3_DEFAULTS: &str = r#"{"vocab_size":262208,"hidden_size":2304,"intermediate_size":9216,"num_hidden_layers":26,
 "num_attention_heads":8,"num_key_value_heads":4,"head_dim":256,"hidden_activation":"gelu_pytorch_tanh",
 "max_position_embeddings":131072,"rms_norm_eps":1e-6,"pad_token_id":0,"eos_token_id":1,"bos_token_id":2,
 "tie_word_embeddings":true,"attention_bias":false,"query_pre_attn_scalar":256,"sliding_window":4096,
 "final_logit_softcapping":null,"attn_logit_softcapping":null,"use_bidirectional_attention":false,
 "sliding_window_pattern":6,"rope_theta":1000000.0,"rope_local_base_freq":10000.0}"#;
const GPT_OSS_DEFAULTS: &str = r#"{"num_hidden_layers":36,"num_local_experts":128,"vocab_size":201088,"hidden_size":2880,
 "intermediate_size":2880,"head_dim":64,"num_attention_heads":64,"num_key_value_heads":8,"sliding_window":128,
 "tie_word_embeddings":false,"hidden_act":"silu","max_position_embeddings":131072,"rms_norm_eps":1e-5,
 "num_experts_per_tok":4,"swiglu_limit":7.0,"rope_theta":150000.0,
 "rope_scaling":{"rope_type":"yarn","factor":32.0,"beta_fast":32.0,"beta_slow":1.0,"truncate":false,
 "original_max_position_embeddings":4096}}"#;

const ARCHITECTURES: &[Architecture] = &[
    Architecture { class: "LlamaForCausalLM", model_type: "llama", family: Family::Llama, defaults: LLAMA_DEFAULTS },
    Architecture {
        class: "MistralForCausalLM",
        model_type: "mistral",
        family: Family::Llama,
        defaults: MISTRAL_DEFAULTS,
    },
    Architecture { class: "Qwen2ForCausalLM", model_type: "qwen2", family: Family::Qwen2, defaults: QWEN2_DEFAULTS },
    Architecture { class: "Qwen3ForCausalLM", model_type: "qwen3", family: Family::Qwen3, defaults: QWEN3_DEFAULTS },
    Architecture {
        class: "Qwen3MoeForCausalLM",
        model_type: "qwen3_moe",
        family: Family::Qwen3Moe,
        defaults: QWEN3_MOE_DEFAULTS,
    },
    Architecture {
        class: "MixtralForCausalLM",
        model_type: "mixtral",
        family: Family::Mixtral,
        defaults: MIXTRAL_DEFAULTS,
    },
    Architecture { class: "Phi3ForCausalLM", model_type: "phi3", family: Family::Phi3, defaults: PHI3_DEFAULTS },
    Architecture {
        class: "SmolLM3ForCausalLM",
        model_type: "smollm3",
        family: Family::SmolLm3,
        defaults: SMOLLM3_DEFAULTS,
    },
    Architecture {
        class: "Gemma3ForCausalLM",
        model_type: "gemma3_text",
        family: Family::Gemma3,
        defaults: GEMMA3_DEFAULTS,
    },
    // The text tower of Gemma 3's image-text model (gemma-3-4b/12b/27b): its `text_config`.
    Architecture {
        class: "Gemma3ForConditionalGeneration",
        model_type: "gemma3",
        family: Family::Gemma3,
        defaults: GEMMA3_DEFAULTS,
    },
    Architecture {
        class: "GptOssForCausalLM",
        model_type: "gpt_oss",
        family: Family::GptOss,
        defaults: GPT_OSS_DEFAULTS,
    },
];

/// Architectures the local engine runs, by `architectures[0]` / `model_type`.
pub fn supported() -> impl Iterator<Item = (&'static str, &'static str)> {
    ARCHITECTURES.iter().map(|a| (a.class, a.model_type))
}

/// How the router picks and weighs experts.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Routing {
    /// gpt-oss: the k largest logits (router with bias), softmax over those k.
    TopKSoftmax,
    /// Qwen3-MoE and Mixtral: softmax over all experts in float32, the k most probable,
    /// divided by their sum when `renormalize` (`norm_topk_prob`; always for Mixtral).
    SoftmaxTopK { renormalize: bool },
}

/// What one expert computes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum ExpertKind {
    /// gpt-oss: biases; gate and up interleaved in one matrix; gate ≤ limit, −limit ≤ up ≤
    /// limit; `(up + 1) · gate · σ(alpha · gate)`.
    ClampedSwiGlu { limit: f64, alpha: f64 },
    /// `down(silu(gate(x)) · up(x))`, no biases.
    SiluGated,
}

/// A mixture-of-experts MLP.
#[derive(Debug, Clone, PartialEq)]
pub struct MoeConfig {
    /// `num_local_experts` (`num_experts` in Qwen's configs).
    pub num_experts: usize,
    /// `num_experts_per_tok` (`experts_per_token` in OpenAI's own config).
    pub experts_per_token: usize,
    /// Each expert's hidden width (`moe_intermediate_size`, else `intermediate_size`).
    pub expert_intermediate_size: usize,
    pub routing: Routing,
    pub expert: ExpertKind,
}

/// How the checkpoint stores its weights, from `quantization_config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsFormat {
    /// Every tensor in a float type.
    Dense,
    /// Expert weights as MXFP4 (`*_blocks` and `*_scales`), the rest dense.
    Mxfp4,
}

/// The MLP's activation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Activation {
    Silu,
    /// `gelu_pytorch_tanh`: GELU with the tanh approximation.
    GeluTanh,
}

/// What the decoder needs to know.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelConfig {
    pub architecture: String,
    pub family: Family,
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub intermediate_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub num_kv_heads: usize,
    pub head_dim: usize,
    pub rms_norm_eps: f64,
    /// Gemma: norms scale by (1 + w), computed in float32.
    pub norm_adds_one: bool,
    /// RMSNorm on each head's queries and keys before RoPE (Qwen3, Gemma 3).
    pub qk_norm: bool,
    /// Gemma: a norm on the attention's output and on the MLP's output, before each residual.
    pub sandwich_norms: bool,
    pub activation: Activation,
    /// Gemma: embeddings multiplied by √hidden_size (in the model's dtype).
    pub embedding_scale: Option<f64>,
    /// The factor on q·k: 1/√head_dim, Gemma's 1/√query_pre_attn_scalar.
    pub attention_scale: f64,
    /// RoPE of full-attention layers (of every layer, unless `sliding_rope`).
    pub rope: Rope,
    /// Gemma 3: sliding layers' own RoPE (the local base, no scaling).
    pub sliding_rope: Option<Rope>,
    /// Per layer, whether it applies RoPE at all (SmolLM3 skips it in every fourth).
    pub rope_layers: Vec<bool>,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    /// Biases on q, k and v.
    pub qkv_bias: bool,
    /// A bias on the attention's output projection.
    pub o_bias: bool,
    pub mlp_bias: bool,
    pub sliding_window: Option<usize>,
    /// Per layer, whether it attends within `sliding_window` (`layer_types`); every layer does
    /// when a window is set and the config has no layer types.
    pub sliding_layers: Vec<bool>,
    /// One learned logit per head that joins every softmax and takes its share (gpt-oss).
    pub attention_sinks: bool,
    pub moe: Option<MoeConfig>,
    /// Per layer, whether its MLP is the mixture of experts (else the dense MLP).
    pub moe_layers: Vec<bool>,
    pub weights_format: WeightsFormat,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    pub pad_token_id: Option<u32>,
    /// `dtype` (transformers 5) or `torch_dtype`.
    pub dtype: Option<String>,
}

/// A config object read as its transformers class reads it: a key that is absent takes the
/// class's default; a key present as `null` is `None`, as in Python.
struct Fields<'a> {
    v: &'a Value,
    defaults: Value,
}

impl Fields<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        match self.v.get(key) {
            Some(x) => Some(x),
            None => self.defaults.get(key),
        }
        .filter(|x| !x.is_null())
    }

    fn usize(&self, key: &str) -> Result<Option<usize>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(Value::Number(n)) => n
                .as_u64()
                .map(|x| Some(x as usize))
                .ok_or_else(|| format!("`{key}` = {n} is not a non-negative integer")),
            Some(other) => Err(format!("`{key}` = {other} is not a number")),
        }
    }

    fn need(&self, key: &str) -> Result<usize, String> {
        self.usize(key)?.ok_or_else(|| format!("`{key}` is missing"))
    }

    fn f64(&self, key: &str) -> Result<Option<f64>, String> {
        match self.get(key) {
            None => Ok(None),
            Some(x) => x.as_f64().map(Some).ok_or_else(|| format!("`{key}` = {x} is not a number")),
        }
    }

    fn bool(&self, key: &str) -> Result<bool, String> {
        match self.get(key) {
            None => Ok(false),
            Some(x) => x.as_bool().ok_or_else(|| format!("`{key}` = {x} is not true or false")),
        }
    }

    fn str(&self, key: &str) -> Option<&str> {
        self.get(key).and_then(Value::as_str)
    }

    /// A list of non-negative integers.
    fn usizes(&self, key: &str) -> Result<Option<Vec<usize>>, String> {
        let Some(x) = self.get(key) else { return Ok(None) };
        let list = x.as_array().ok_or_else(|| format!("`{key}` = {x} is not a list"))?;
        list.iter()
            .map(|i| i.as_u64().map(|n| n as usize).ok_or_else(|| format!("`{key}` holds {i}, not an integer")))
            .collect::<Result<Vec<_>, _>>()
            .map(Some)
    }
}

/// Token ids that may be a single id or a list.
pub fn ids(v: Option<&Value>) -> Vec<u32> {
    match v {
        Some(Value::Number(n)) => n.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
        Some(Value::Array(a)) => a.iter().filter_map(Value::as_u64).map(|x| x as u32).collect(),
        _ => Vec::new(),
    }
}

/// `quantization_config.quant_method`: none, or MXFP4 (gpt-oss' experts); anything else is
/// refused by name rather than read as if it were dense.
fn weights_format(v: &Value) -> Result<WeightsFormat, String> {
    let Some(q) = v.get("quantization_config").filter(|q| !q.is_null()) else {
        return Ok(WeightsFormat::Dense);
    };
    match q.get("quant_method").and_then(Value::as_str) {
        Some("mxfp4") => Ok(WeightsFormat::Mxfp4),
        Some(other) => Err(format!(
            "quantization_config.quant_method {other:?} is not supported by the local engine (mxfp4 is; \
             GGUF files run through backend.model=FILE.gguf)"
        )),
        None => Err("quantization_config has no quant_method".into()),
    }
}

/// Which layers use the sliding window: `layer_types` when given (each "sliding_attention" or
/// "full_attention"), else as `fallback` says.
fn sliding_layers(
    f: &Fields,
    num_layers: usize,
    window: Option<usize>,
    fallback: Vec<bool>,
) -> Result<Vec<bool>, String> {
    let Some(types) = f.v.get("layer_types").filter(|t| !t.is_null()) else {
        return Ok(fallback);
    };
    let types = types.as_array().ok_or_else(|| format!("`layer_types` = {types} is not a list"))?;
    if types.len() != num_layers {
        return Err(format!("`layer_types` has {} entries for {num_layers} layers", types.len()));
    }
    types
        .iter()
        .enumerate()
        .map(|(i, t)| match t.as_str() {
            Some("full_attention") => Ok(false),
            Some("sliding_attention") if window.is_some() => Ok(true),
            Some("sliding_attention") => Err(format!("layer {i} is sliding_attention but `sliding_window` is not set")),
            _ => Err(format!("layer_types[{i}] = {t} is not supported (full_attention and sliding_attention are)")),
        })
        .collect()
}

/// The rope dictionaries of a config: (full layers', sliding layers') in transformers 5's
/// `rope_parameters` (flat, or per layer type as Gemma 3 writes it), else the old
/// `rope_scaling` (which Gemma 3 applies to full layers only).
fn rope_dicts(v: &Value) -> (Option<&Value>, Option<&Value>) {
    let params = v.get("rope_parameters").filter(|r| r.is_object());
    match params {
        Some(p) if p.get("full_attention").is_some() || p.get("sliding_attention").is_some() => {
            (p.get("full_attention").filter(|r| r.is_object()), p.get("sliding_attention").filter(|r| r.is_object()))
        }
        Some(p) => (Some(p), None),
        None => (v.get("rope_scaling").filter(|r| r.is_object()), None),
    }
}

fn moe_config(f: &Fields, family: Family, intermediate_size: usize) -> Result<MoeConfig, String> {
    let num_experts = match f.usize("num_local_experts")? {
        Some(n) => n,
        None => f.need("num_experts").map_err(|_| "`num_local_experts` (or `num_experts`) is missing".to_string())?,
    };
    let experts_per_token = match f.usize("num_experts_per_tok")? {
        Some(k) => k,
        None => f.need("experts_per_token").map_err(|_| "`num_experts_per_tok` is missing".to_string())?,
    };
    if num_experts == 0 || experts_per_token == 0 || experts_per_token > num_experts {
        return Err(format!(
            "`num_experts_per_tok` ({experts_per_token}) must be between 1 and `num_local_experts` ({num_experts})"
        ));
    }
    let (routing, expert, expert_intermediate_size) = match family {
        Family::GptOss => {
            // transformers 5 reads `swiglu_limit`; 4.x fixed 7.0, the value gpt-oss' checkpoints
            // state.
            let limit = f.f64("swiglu_limit")?.unwrap_or(GPT_OSS_SWIGLU_LIMIT);
            if limit.is_nan() || limit <= 0.0 {
                return Err(format!("`swiglu_limit` = {limit} must be positive"));
            }
            // transformers' GptOssExperts fixes alpha at 1.702 whatever the config says.
            (Routing::TopKSoftmax, ExpertKind::ClampedSwiGlu { limit, alpha: 1.702 }, intermediate_size)
        }
        Family::Qwen3Moe => (
            Routing::SoftmaxTopK { renormalize: f.bool("norm_topk_prob")? },
            ExpertKind::SiluGated,
            f.need("moe_intermediate_size")?,
        ),
        _ => (Routing::SoftmaxTopK { renormalize: true }, ExpertKind::SiluGated, intermediate_size),
    };
    Ok(MoeConfig { num_experts, experts_per_token, expert_intermediate_size, routing, expert })
}

/// Which layers are sparse: every layer for Mixtral and gpt-oss; Qwen3-MoE's rule.
fn moe_layers(f: &Fields, family: Family, num_layers: usize) -> Result<Vec<bool>, String> {
    if family != Family::Qwen3Moe {
        return Ok(vec![true; num_layers]);
    }
    let step = f.usize("decoder_sparse_step")?.unwrap_or(1);
    if step == 0 {
        return Err("`decoder_sparse_step` is 0".into());
    }
    let dense = f.usizes("mlp_only_layers")?.unwrap_or_default();
    Ok((0..num_layers).map(|i| !dense.contains(&i) && (i + 1) % step == 0).collect())
}

/// gpt-oss' SwiGLU clamp when the config does not say.
pub const GPT_OSS_SWIGLU_LIMIT: f64 = 7.0;

/// Architectures on AI Energy Score's list that the local engine does not run, with what they
/// are, so that the refusal says more than a class name.
fn known_elsewhere(class: &str) -> Option<&'static str> {
    Some(match class {
        "DeepseekV3ForCausalLM" | "DeepseekV32ForCausalLM" => {
            "DeepSeek-V3's multi-head latent attention and routed experts"
        }
        "Qwen3NextForCausalLM" => "Qwen3-Next's hybrid of gated DeltaNet and attention",
        "Glm4MoeForCausalLM" => "GLM-4.5/4.6's mixture of experts",
        "GraniteMoeHybridForCausalLM" => "Granite 4's hybrid of Mamba-2 and attention",
        "MiniMaxM1ForCausalLM" => "MiniMax-M1's lightning attention",
        "Mistral3ForConditionalGeneration" => "Mistral Small 3.1's image-text model",
        "HunYuanDenseV1ForCausalLM" => "Hunyuan's dense model",
        "Exaone4ForCausalLM" => "EXAONE 4's hybrid attention",
        "ApertusForCausalLM" => "Apertus' xIELU MLP",
        "DeciLMForCausalLM" => "Nemotron's DeciLM blocks (remote code)",
        _ => return None,
    })
}

impl ModelConfig {
    /// Parses config.json text; `generation` is generation_config.json when present (its EOS
    /// ids take precedence, as transformers' `generate` uses them).
    pub fn parse(text: &str, generation: Option<&str>) -> Result<Self, String> {
        let top: Value = serde_json::from_str(text).map_err(|e| format!("config.json is not valid JSON: {e}"))?;
        let class = top.get("architectures").and_then(|a| a.get(0)).and_then(Value::as_str).map(str::to_string);
        let model_type = top.get("model_type").and_then(Value::as_str).unwrap_or("");
        let arch = ARCHITECTURES
            .iter()
            .find(|a| match class.as_deref() {
                Some(c) => a.class == c,
                None => a.model_type == model_type,
            })
            .ok_or_else(|| {
                let what = class.as_deref().and_then(known_elsewhere).map(|w| format!(" ({w})")).unwrap_or_default();
                format!(
                    "unsupported architecture {}{what} (model_type {model_type:?}): it is not in the local engine, which runs {}; \
                     the vllm backend (BENCHMARK_BACKEND=vllm) runs any model its server runs",
                    class.as_deref().unwrap_or("(none given)"),
                    supported().map(|(c, _)| c).collect::<Vec<_>>().join(", ")
                )
            })?;
        // An image-text model's text tower is described by its `text_config`.
        let v = match arch.model_type {
            "gemma3" => top.get("text_config").filter(|t| t.is_object()).unwrap_or(&Value::Null),
            _ => &top,
        };
        let v = if v.is_null() { &Value::Object(Default::default()) } else { v };
        let defaults: Value = serde_json::from_str(arch.defaults).map_err(|e| format!("internal defaults: {e}"))?;
        let f = Fields { v, defaults };
        Self::from_fields(arch, &f, &top, generation)
    }

    fn from_fields(arch: &Architecture, f: &Fields, top: &Value, generation: Option<&str>) -> Result<Self, String> {
        let family = arch.family;
        let weights_format = weights_format(top)?;
        let hidden_size = f.need("hidden_size")?;
        let num_heads = f.need("num_attention_heads")?;
        if num_heads == 0 || hidden_size == 0 {
            return Err("`hidden_size` and `num_attention_heads` must be positive".into());
        }
        let num_kv_heads = f.usize("num_key_value_heads")?.unwrap_or(num_heads);
        if num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
            return Err(format!(
                "`num_attention_heads` ({num_heads}) is not a multiple of `num_key_value_heads` ({num_kv_heads})"
            ));
        }
        let head_dim = f.usize("head_dim")?.unwrap_or(hidden_size / num_heads);
        let num_layers = f.need("num_hidden_layers")?;
        let max_position_embeddings = f.need("max_position_embeddings")?;
        let act_key = if family == Family::Gemma3 { "hidden_activation" } else { "hidden_act" };
        let activation = match (family, f.str(act_key).or_else(|| f.str("hidden_act")).unwrap_or("silu")) {
            (Family::Gemma3, "gelu_pytorch_tanh") => Activation::GeluTanh,
            (Family::Gemma3, other) => {
                return Err(format!("hidden_activation {other:?} is not supported (gelu_pytorch_tanh is)"));
            }
            (_, "silu") => Activation::Silu,
            (_, other) => return Err(format!("hidden_act {other:?} is not supported (silu is)")),
        };

        // Sliding windows: Qwen's configs carry a window but enable it only with
        // use_sliding_window (and, for Qwen2/Qwen3, from layer `max_window_layers` on);
        // Gemma 3's pattern is one full layer in `sliding_window_pattern`.
        let sliding_window = match family {
            Family::Qwen2 | Family::Qwen3 | Family::Qwen3Moe | Family::SmolLm3 if !f.bool("use_sliding_window")? => {
                None
            }
            _ => f.usize("sliding_window")?,
        };
        if sliding_window == Some(0) {
            return Err("`sliding_window` is 0: no token could attend to anything".into());
        }
        let rope_layers: Vec<bool> = match family {
            Family::SmolLm3 => match f.usizes("no_rope_layers")? {
                Some(list) if list.len() == num_layers => list.into_iter().map(|x| x != 0).collect(),
                Some(list) => {
                    return Err(format!("`no_rope_layers` has {} entries for {num_layers} layers", list.len()));
                }
                None => {
                    let every = f.need("no_rope_layer_interval")?.max(1);
                    (0..num_layers).map(|i| (i + 1) % every != 0).collect()
                }
            },
            _ => vec![true; num_layers],
        };
        let fallback_sliding: Vec<bool> = match (family, sliding_window) {
            (_, None) => vec![false; num_layers],
            (Family::Qwen2 | Family::Qwen3, Some(_)) => {
                let from = f.usize("max_window_layers")?.unwrap_or(0);
                (0..num_layers).map(|i| i >= from).collect()
            }
            (Family::Gemma3, Some(_)) => {
                let pattern = f.need("sliding_window_pattern")?.max(1);
                (0..num_layers).map(|i| (i + 1) % pattern != 0).collect()
            }
            // SmolLM3 slides only in its layers without RoPE.
            (Family::SmolLm3, Some(_)) => rope_layers.iter().map(|rope| !rope).collect(),
            (Family::GptOss, Some(_)) => (0..num_layers).map(|i| i % 2 == 0).collect(),
            _ => vec![true; num_layers],
        };
        let sliding_layers = sliding_layers(f, num_layers, sliding_window, fallback_sliding)?;

        let rope = Self::rope(f, family, head_dim, max_position_embeddings)?;
        let (rope, sliding_rope) = rope;
        if rope.rotary_dim > head_dim {
            return Err(format!("the rotary dimension {} exceeds head_dim {head_dim}", rope.rotary_dim));
        }

        let moe_layers = match family {
            Family::GptOss | Family::Qwen3Moe | Family::Mixtral => moe_layers(f, family, num_layers)?,
            _ => vec![false; num_layers],
        };
        let intermediate_size = f.need("intermediate_size")?;
        let moe = if moe_layers.iter().any(|m| *m) || matches!(family, Family::GptOss | Family::Mixtral) {
            Some(moe_config(f, family, intermediate_size)?)
        } else {
            None
        };
        if weights_format == WeightsFormat::Mxfp4 && family != Family::GptOss {
            return Err("quantization_config.quant_method \"mxfp4\" applies to gpt-oss experts only".into());
        }
        if family == Family::Gemma3 {
            for key in ["final_logit_softcapping", "attn_logit_softcapping"] {
                if let Some(cap) = f.f64(key)? {
                    return Err(format!(
                        "`{key}` = {cap}: logit soft-capping (Gemma 2's) is not implemented; Gemma 3 configs set it to null"
                    ));
                }
            }
            if f.bool("use_bidirectional_attention")? {
                return Err("`use_bidirectional_attention` (EmbeddingGemma) is not a text generator".into());
            }
        }
        let attention_scale = match family {
            Family::Gemma3 => {
                let scalar = f.f64("query_pre_attn_scalar")?.ok_or("`query_pre_attn_scalar` is missing")?;
                if scalar <= 0.0 {
                    return Err(format!("`query_pre_attn_scalar` = {scalar} must be positive"));
                }
                1.0 / scalar.sqrt()
            }
            _ => 1.0 / (head_dim as f64).sqrt(),
        };
        let attention_bias = f.bool("attention_bias")?;
        let (qkv_bias, o_bias) = match family {
            // Qwen2's output projection has no bias even though q, k and v do; transformers'
            // GptOssConfig sets biases whatever config.json says; Phi-3 and Mixtral have none.
            Family::Qwen2 => (true, false),
            Family::GptOss => (true, true),
            Family::Phi3 | Family::Mixtral => (false, false),
            _ => (attention_bias, attention_bias),
        };

        // generation_config.json's ids, then the config's own (the top level's first for an
        // image-text model, whose generate reads it).
        let generation_cfg: Option<Value> = generation.and_then(|g| serde_json::from_str(g).ok());
        let id_of = |key: &str| -> Vec<u32> {
            [generation_cfg.as_ref(), Some(top), Some(f.v)]
                .into_iter()
                .flatten()
                .map(|c| ids(c.get(key)))
                .find(|ids| !ids.is_empty())
                .unwrap_or_else(|| ids(f.defaults.get(key)))
        };
        let dtype = [top, f.v]
            .into_iter()
            .find_map(|c| c.get("dtype").or_else(|| c.get("torch_dtype")).and_then(Value::as_str))
            .map(str::to_string);
        Ok(Self {
            architecture: arch.class.to_string(),
            family,
            vocab_size: f.need("vocab_size")?,
            hidden_size,
            intermediate_size,
            num_layers,
            num_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: f.f64("rms_norm_eps")?.unwrap_or(1e-6),
            norm_adds_one: family == Family::Gemma3,
            qk_norm: matches!(family, Family::Qwen3 | Family::Qwen3Moe | Family::Gemma3),
            sandwich_norms: family == Family::Gemma3,
            activation,
            embedding_scale: (family == Family::Gemma3).then(|| (hidden_size as f64).sqrt()),
            attention_scale,
            rope,
            sliding_rope,
            rope_layers,
            max_position_embeddings,
            tie_word_embeddings: match top.get("tie_word_embeddings").and_then(Value::as_bool) {
                Some(t) => t,
                None => f.bool("tie_word_embeddings")?,
            },
            qkv_bias,
            o_bias,
            mlp_bias: f.bool("mlp_bias")?,
            sliding_window,
            sliding_layers,
            attention_sinks: family == Family::GptOss,
            moe,
            moe_layers,
            weights_format,
            bos_token_id: id_of("bos_token_id").first().copied(),
            eos_token_ids: id_of("eos_token_id"),
            pad_token_id: id_of("pad_token_id").first().copied(),
            dtype,
        })
    }

    /// The RoPE of full layers and, for Gemma 3, of sliding layers.
    fn rope(f: &Fields, family: Family, head_dim: usize, max_pos: usize) -> Result<(Rope, Option<Rope>), String> {
        if !head_dim.is_multiple_of(2) {
            return Err(format!("head_dim {head_dim} must be even for rotary embeddings"));
        }
        let (full, sliding) = rope_dicts(f.v);
        let theta = f.f64("rope_theta")?.unwrap_or(10_000.0);
        let top_original = f.f64("original_max_position_embeddings")?;
        let allowed = match family {
            Family::GptOss => Allowed::Yarn,
            Family::Phi3 => Allowed::LongRope,
            _ => Allowed::Common,
        };
        let partial = match family {
            Family::Phi3 => {
                let factor = full
                    .and_then(|r| r.get("partial_rotary_factor"))
                    .and_then(Value::as_f64)
                    .or(f.f64("partial_rotary_factor")?)
                    .unwrap_or(1.0);
                if !(factor > 0.0 && factor <= 1.0) {
                    return Err(format!("`partial_rotary_factor` = {factor} must be in (0, 1]"));
                }
                factor
            }
            _ => 1.0,
        };
        // transformers truncates: int(head_dim · factor).
        let rotary_dim = (head_dim as f64 * partial) as usize;
        // gpt-oss' defaults carry its YaRN; a config that gives neither form takes it.
        let default_scaling = f.defaults.get("rope_scaling");
        let full_rope = Rope::parse(full.or(default_scaling), theta, rotary_dim, max_pos, top_original, allowed)?;
        let sliding_rope = match family {
            Family::Gemma3 => {
                let local = f.f64("rope_local_base_freq")?.unwrap_or(10_000.0);
                Some(Rope::parse(sliding, local, rotary_dim, max_pos, top_original, Allowed::Common)?)
            }
            _ => None,
        };
        Ok((full_rope, sliding_rope))
    }

    /// Reads a GGUF file's metadata (llama.cpp's `llama.*` keys). Only the llama architecture
    /// is supported from GGUF.
    pub fn from_gguf(
        md: &std::collections::HashMap<String, candle_core::quantized::gguf_file::Value>,
        vocab_size: usize,
    ) -> Result<Self, String> {
        let arch = md.get("general.architecture").and_then(|v| v.to_string().ok().cloned()).unwrap_or_default();
        if arch != "llama" {
            return Err(format!("GGUF architecture {arch:?} is not supported (llama is)"));
        }
        let u = |k: &str| -> Result<usize, String> {
            md.get(&format!("llama.{k}"))
                .and_then(|v| v.to_u32().ok().map(|x| x as usize).or_else(|| v.to_u64().ok().map(|x| x as usize)))
                .ok_or_else(|| format!("GGUF metadata llama.{k} is missing"))
        };
        let f = |k: &str| md.get(&format!("llama.{k}")).and_then(|v| v.to_f32().ok()).map(f64::from);
        let hidden_size = u("embedding_length")?;
        let num_heads = u("attention.head_count")?;
        let num_kv_heads = u("attention.head_count_kv").unwrap_or(num_heads);
        if num_heads == 0 || num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
            return Err(format!("GGUF head counts {num_heads}/{num_kv_heads} are inconsistent"));
        }
        let head_dim = u("rope.dimension_count").unwrap_or(hidden_size / num_heads);
        let num_layers = u("block_count")?;
        let max_position_embeddings = u("context_length").unwrap_or(2048);
        let theta = f("rope.freq_base").unwrap_or(10_000.0);
        let rope = Rope::parse(None, theta, head_dim, max_position_embeddings, None, Allowed::Common)?;
        let id = |k: &str| md.get(k).and_then(|v| v.to_u32().ok());
        Ok(Self {
            architecture: "llama (GGUF)".into(),
            family: Family::Llama,
            vocab_size,
            hidden_size,
            intermediate_size: u("feed_forward_length")?,
            num_layers,
            num_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: f("attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
            norm_adds_one: false,
            qk_norm: false,
            sandwich_norms: false,
            activation: Activation::Silu,
            embedding_scale: None,
            attention_scale: 1.0 / (head_dim as f64).sqrt(),
            rope,
            sliding_rope: None,
            rope_layers: vec![true; num_layers],
            max_position_embeddings,
            tie_word_embeddings: false,
            qkv_bias: false,
            o_bias: false,
            mlp_bias: false,
            sliding_window: None,
            sliding_layers: vec![false; num_layers],
            attention_sinks: false,
            moe: None,
            moe_layers: vec![false; num_layers],
            weights_format: WeightsFormat::Dense,
            bos_token_id: id("tokenizer.ggml.bos_token_id"),
            eos_token_ids: id("tokenizer.ggml.eos_token_id").into_iter().collect(),
            pad_token_id: id("tokenizer.ggml.padding_token_id"),
            dtype: None,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rope::RopeScaling;

    const TINY: &str = include_str!("../../../tests/fixtures/tiny-llama/config.json");

    #[test]
    fn reads_transformers_5_and_older_fields() {
        let c = ModelConfig::parse(TINY, None).expect("tiny");
        assert_eq!(
            (c.family, c.hidden_size, c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim),
            (Family::Llama, 64, 2, 4, 2, 16)
        );
        assert_eq!(c.rope.theta, 10_000.0);
        assert_eq!(c.eos_token_ids, vec![1]);
        // transformers 5: rope_parameters only, no top-level rope_theta.
        let v5 = r#"{"architectures":["LlamaForCausalLM"],"hidden_size":576,"num_attention_heads":9,"num_key_value_heads":3,
            "intermediate_size":1536,"num_hidden_layers":30,"vocab_size":49152,"rope_parameters":{"rope_theta":100000.0,"rope_type":"default"},
            "tie_word_embeddings":true,"eos_token_id":[2, 0]}"#;
        let c = ModelConfig::parse(v5, Some(r#"{"eos_token_id": 2}"#)).expect("v5");
        assert_eq!(c.rope.theta, 100_000.0);
        assert_eq!(c.head_dim, 64);
        assert!(c.tie_word_embeddings);
        assert_eq!(c.eos_token_ids, vec![2]);
        // Llama 3.1 rope scaling, old style.
        let l31 = r#"{"model_type":"llama","hidden_size":64,"num_attention_heads":4,"intermediate_size":128,"num_hidden_layers":1,"vocab_size":10,
            "rope_theta":500000.0,"rope_scaling":{"factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192,"rope_type":"llama3"}}"#;
        let c = ModelConfig::parse(l31, None).expect("llama3.1");
        assert!(matches!(c.rope.scaling, RopeScaling::Llama3 { factor, .. } if factor == 8.0));
        assert_eq!(c.rope.theta, 500_000.0);
        // Qwen2 has q/k/v bias; Qwen3 q/k norms.
        let q2 = r#"{"architectures":["Qwen2ForCausalLM"],"hidden_size":64,"num_attention_heads":4,"intermediate_size":128,"num_hidden_layers":1,"vocab_size":10,"sliding_window":4096,"use_sliding_window":false}"#;
        let c = ModelConfig::parse(q2, None).expect("qwen2");
        assert!(c.qkv_bias && !c.o_bias && c.sliding_window.is_none());
        // Qwen3's class fixes head_dim at 128 when the file leaves it out (not hidden / heads).
        let q3 = r#"{"architectures":["Qwen3ForCausalLM"],"hidden_size":64,"num_attention_heads":4,"intermediate_size":128,"num_hidden_layers":1,"vocab_size":10}"#;
        let c = ModelConfig::parse(q3, None).expect("qwen3");
        assert_eq!(c.head_dim, 128);
        assert!(c.qk_norm);
    }

    /// google/gemma-3-4b-it's config.json names only a few text fields; the rest are
    /// Gemma3TextConfig's defaults.
    #[test]
    fn a_sparse_gemma3_text_config_takes_the_classs_defaults() {
        let cfg = r#"{"architectures":["Gemma3ForConditionalGeneration"],"model_type":"gemma3","eos_token_id":[1,106],
            "text_config":{"hidden_size":2560,"intermediate_size":10240,"model_type":"gemma3_text","num_hidden_layers":34,
            "rope_scaling":{"factor":8.0,"rope_type":"linear"},"sliding_window":1024},
            "vision_config":{"model_type":"siglip_vision_model"},"torch_dtype":"bfloat16"}"#;
        let c = ModelConfig::parse(cfg, None).expect("gemma-3-4b");
        assert_eq!((c.num_heads, c.num_kv_heads, c.head_dim, c.vocab_size), (8, 4, 256, 262_208));
        assert_eq!(c.attention_scale, 1.0 / 16.0);
        assert_eq!(c.eos_token_ids, vec![1, 106]);
        assert_eq!(c.sliding_window, Some(1024));
        // Five sliding layers, then a full one.
        assert_eq!(&c.sliding_layers[..7], &[true, true, true, true, true, false, true]);
        assert_eq!(c.rope.theta, 1_000_000.0);
        assert!(matches!(c.rope.scaling, RopeScaling::Linear { factor } if factor == 8.0));
        let local = c.sliding_rope.as_ref().expect("local rope");
        assert_eq!((local.theta, &local.scaling), (10_000.0, &RopeScaling::None));
        assert!(c.tie_word_embeddings && c.norm_adds_one && c.sandwich_norms);
        assert_eq!(c.embedding_scale, Some(2560f64.sqrt()));
        assert_eq!(c.dtype.as_deref(), Some("bfloat16"));
        // Soft-capping is Gemma 2's; refused rather than ignored.
        let capped = cfg.replace("\"sliding_window\":1024", "\"sliding_window\":1024,\"final_logit_softcapping\":30.0");
        assert!(ModelConfig::parse(&capped, None).unwrap_err().contains("final_logit_softcapping"));
    }

    #[test]
    fn smollm3_skips_rope_in_every_fourth_layer_unless_told() {
        let cfg = r#"{"architectures":["SmolLM3ForCausalLM"],"hidden_size":64,"num_attention_heads":4,"intermediate_size":128,
            "num_hidden_layers":8,"vocab_size":10}"#;
        let c = ModelConfig::parse(cfg, None).expect("smollm3");
        assert_eq!(c.rope_layers, vec![true, true, true, false, true, true, true, false]);
        assert_eq!(c.rope.theta, 2_000_000.0);
        let given = cfg.replace("\"vocab_size\":10", "\"vocab_size\":10,\"no_rope_layers\":[1,0,1,1,1,1,1,1]");
        assert!(!ModelConfig::parse(&given, None).expect("given").rope_layers[1]);
    }

    #[test]
    fn qwen3_moe_mixes_dense_and_sparse_layers_as_transformers_does() {
        let cfg = r#"{"architectures":["Qwen3MoeForCausalLM"],"hidden_size":64,"num_attention_heads":4,"intermediate_size":128,
            "num_hidden_layers":4,"vocab_size":10,"num_experts":8,"num_experts_per_tok":2,"moe_intermediate_size":32,
            "decoder_sparse_step":2,"mlp_only_layers":[3],"norm_topk_prob":true}"#;
        let c = ModelConfig::parse(cfg, None).expect("qwen3 moe");
        assert_eq!(c.moe_layers, vec![false, true, false, false]);
        let moe = c.moe.expect("moe");
        assert_eq!((moe.num_experts, moe.experts_per_token, moe.expert_intermediate_size), (8, 2, 32));
        assert_eq!(moe.routing, Routing::SoftmaxTopK { renormalize: true });
        let bad = cfg.replace("\"num_experts_per_tok\":2", "\"num_experts_per_tok\":9");
        assert!(ModelConfig::parse(&bad, None).unwrap_err().contains("between 1 and `num_local_experts` (8)"));
    }

    #[test]
    fn unsupported_and_broken_configs_are_named() {
        let err = ModelConfig::parse(r#"{"architectures":["GPT2LMHeadModel"],"model_type":"gpt2"}"#, None).unwrap_err();
        assert!(
            err.contains("GPT2LMHeadModel") && err.contains("LlamaForCausalLM") && err.contains("Gemma3ForCausalLM"),
            "{err}"
        );
        let err = ModelConfig::parse(r#"{"architectures":["DeepseekV3ForCausalLM"]}"#, None).unwrap_err();
        assert!(err.contains("multi-head latent attention") && err.contains("BENCHMARK_BACKEND=vllm"), "{err}");
        let err = ModelConfig::parse(r#"{"model_type":"llama","hidden_size":"wide"}"#, None).unwrap_err();
        assert!(err.contains("`hidden_size` = \"wide\" is not a number"), "{err}");
        let err = ModelConfig::parse("{", None).unwrap_err();
        assert!(err.contains("not valid JSON"), "{err}");
        let yarn = r#"{"model_type":"qwen2","hidden_size":64,"num_attention_heads":4,"intermediate_size":128,"num_hidden_layers":1,"vocab_size":10,"rope_scaling":{"type":"yarn","factor":4.0}}"#;
        assert!(ModelConfig::parse(yarn, None).unwrap_err().contains("yarn"));
        let phi = r#"{"architectures":["Phi3ForCausalLM"],"hidden_size":64,"num_attention_heads":4,"intermediate_size":128,
            "num_hidden_layers":1,"vocab_size":10,"partial_rotary_factor":1.5}"#;
        assert!(ModelConfig::parse(phi, None).unwrap_err().contains("partial_rotary_factor"));
    }
}
