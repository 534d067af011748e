//! Reads a Hugging Face `config.json` into the one decoder description the local engine runs,
//! as transformers 5 writes it (`rope_parameters`, `head_dim`, `dtype`) and as older versions
//! did (`rope_theta`, `rope_scaling`, `torch_dtype`).

use serde_json::Value;

/// Architectures the local engine runs, by `architectures[0]` / `model_type`.
pub const SUPPORTED: &[(&str, &str)] = &[
    ("LlamaForCausalLM", "llama"),
    ("MistralForCausalLM", "mistral"),
    ("Qwen2ForCausalLM", "qwen2"),
    ("Qwen3ForCausalLM", "qwen3"),
    ("GptOssForCausalLM", "gpt_oss"),
];

/// The family, which decides the attention's details.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// Llama 2/3, SmolLM, TinyLlama, and Mistral (plus a sliding window).
    Llama,
    /// Bias on q, k, v.
    Qwen2,
    /// RMSNorm on q and k per head, no bias.
    Qwen3,
    /// gpt-oss: biases everywhere, attention sinks, sliding and full layers alternating, YaRN,
    /// a mixture of experts with a clamped SwiGLU, experts stored as MXFP4.
    GptOss,
}

/// A mixture-of-experts MLP as gpt-oss defines it.
#[derive(Debug, Clone, PartialEq)]
pub struct MoeConfig {
    /// `num_local_experts`.
    pub num_experts: usize,
    /// `num_experts_per_tok` (`experts_per_token` in OpenAI's own config).
    pub experts_per_token: usize,
    /// The SwiGLU clamp: gate ≤ limit, −limit ≤ up ≤ limit (`swiglu_limit`, default 7.0).
    pub swiglu_limit: f64,
}

/// How the checkpoint stores its weights, from `quantization_config`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WeightsFormat {
    /// Every tensor in a float type.
    Dense,
    /// Expert weights as MXFP4 (`*_blocks` and `*_scales`), the rest dense.
    Mxfp4,
}

/// RoPE frequency scaling.
#[derive(Debug, Clone, PartialEq)]
pub enum RopeScaling {
    None,
    Linear {
        factor: f64,
    },
    /// Llama 3.1's: low and high frequency bands scaled differently.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
    /// YaRN, as transformers computes it: frequencies blended between interpolated and
    /// extrapolated by a linear ramp over the correction range, and cos/sin scaled by
    /// `attention_factor`.
    Yarn {
        factor: f64,
        beta_fast: f64,
        beta_slow: f64,
        original_max_position_embeddings: f64,
        truncate: bool,
        attention_factor: f64,
    },
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
    pub rope_theta: f64,
    pub rope_scaling: RopeScaling,
    pub max_position_embeddings: usize,
    pub tie_word_embeddings: bool,
    pub attention_bias: bool,
    pub mlp_bias: bool,
    pub sliding_window: Option<usize>,
    /// Per layer, whether it attends within `sliding_window` (gpt-oss' `layer_types`); every
    /// layer does when a window is set and the config has no layer types.
    pub sliding_layers: Vec<bool>,
    /// One learned logit per head that joins every softmax and takes its share (gpt-oss).
    pub attention_sinks: bool,
    pub moe: Option<MoeConfig>,
    pub weights_format: WeightsFormat,
    pub bos_token_id: Option<u32>,
    pub eos_token_ids: Vec<u32>,
    pub pad_token_id: Option<u32>,
    /// `dtype` (transformers 5) or `torch_dtype`.
    pub dtype: Option<String>,
}

fn usize_of(v: &Value, key: &str) -> Result<Option<usize>, String> {
    match v.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            n.as_u64().map(|x| Some(x as usize)).ok_or_else(|| format!("`{key}` = {n} is not a non-negative integer"))
        }
        Some(other) => Err(format!("`{key}` = {other} is not a number")),
    }
}

fn need(v: &Value, key: &str) -> Result<usize, String> {
    usize_of(v, key)?.ok_or_else(|| format!("`{key}` is missing"))
}

fn f64_of(v: &Value, key: &str) -> Option<f64> {
    v.get(key).and_then(Value::as_f64)
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
/// "full_attention"), else all layers when a window is set.
fn sliding_layers(v: &Value, num_layers: usize, window: Option<usize>) -> Result<Vec<bool>, String> {
    let Some(types) = v.get("layer_types").filter(|t| !t.is_null()) else {
        return Ok(vec![window.is_some(); num_layers]);
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

fn moe_config(v: &Value) -> Result<MoeConfig, String> {
    let num_experts = need(v, "num_local_experts")?;
    let experts_per_token = match usize_of(v, "num_experts_per_tok")? {
        Some(k) => k,
        None => need(v, "experts_per_token").map_err(|_| "`num_experts_per_tok` is missing".to_string())?,
    };
    if experts_per_token == 0 || experts_per_token > num_experts {
        return Err(format!(
            "`num_experts_per_tok` ({experts_per_token}) must be between 1 and `num_local_experts` ({num_experts})"
        ));
    }
    // transformers 5 reads `swiglu_limit`; 4.x fixed 7.0, the value gpt-oss' checkpoints state.
    let swiglu_limit = f64_of(v, "swiglu_limit").unwrap_or(GPT_OSS_SWIGLU_LIMIT);
    if swiglu_limit.is_nan() || swiglu_limit <= 0.0 {
        return Err(format!("`swiglu_limit` = {swiglu_limit} must be positive"));
    }
    Ok(MoeConfig { num_experts, experts_per_token, swiglu_limit })
}

/// gpt-oss' SwiGLU clamp when the config does not say.
pub const GPT_OSS_SWIGLU_LIMIT: f64 = 7.0;

/// YaRN's cos/sin scale: `attention_factor` when given, else from `mscale`/`mscale_all_dim`,
/// else 0.1 ln(factor) + 1 (1 for factor ≤ 1), as transformers infers it.
fn yarn_attention_factor(r: &Value, factor: f64) -> Result<f64, String> {
    if let Some(a) = f64_of(r, "attention_factor") {
        return Ok(a);
    }
    let mscale = |scale: f64, m: f64| if scale <= 1.0 { 1.0 } else { 0.1 * m * scale.ln() + 1.0 };
    match (f64_of(r, "mscale").filter(|m| *m != 0.0), f64_of(r, "mscale_all_dim").filter(|m| *m != 0.0)) {
        (Some(m), Some(all)) => Ok(mscale(factor, m) / mscale(factor, all)),
        _ => Ok(mscale(factor, 1.0)),
    }
}

impl ModelConfig {
    /// Parses config.json text; `generation` is generation_config.json when present (its EOS
    /// ids take precedence, as transformers' `generate` uses them).
    pub fn parse(text: &str, generation: Option<&str>) -> Result<Self, String> {
        let v: Value = serde_json::from_str(text).map_err(|e| format!("config.json is not valid JSON: {e}"))?;
        let arch = v.get("architectures").and_then(|a| a.get(0)).and_then(Value::as_str).map(str::to_string);
        let model_type = v.get("model_type").and_then(Value::as_str).unwrap_or("");
        let supported = || SUPPORTED.iter().map(|(a, _)| *a).collect::<Vec<_>>().join(", ");
        let family = match (arch.as_deref(), model_type) {
            (Some("LlamaForCausalLM" | "MistralForCausalLM"), _) | (None, "llama" | "mistral") => Family::Llama,
            (Some("Qwen2ForCausalLM"), _) | (None, "qwen2") => Family::Qwen2,
            (Some("Qwen3ForCausalLM"), _) | (None, "qwen3") => Family::Qwen3,
            (Some("GptOssForCausalLM"), _) | (None, "gpt_oss") => Family::GptOss,
            (a, t) => {
                return Err(format!(
                    "unsupported architecture {} (model_type {t:?}): it is not in the local engine, which runs {}; \
                     the vllm backend (BENCHMARK_BACKEND=vllm) runs any model its server runs",
                    a.unwrap_or("(none given)"),
                    supported()
                ));
            }
        };
        let weights_format = weights_format(&v)?;
        let hidden_size = need(&v, "hidden_size")?;
        let num_heads = need(&v, "num_attention_heads")?;
        if num_heads == 0 || hidden_size == 0 {
            return Err("`hidden_size` and `num_attention_heads` must be positive".into());
        }
        let num_kv_heads = usize_of(&v, "num_key_value_heads")?.unwrap_or(num_heads);
        if num_kv_heads == 0 || num_heads % num_kv_heads != 0 {
            return Err(format!(
                "`num_attention_heads` ({num_heads}) is not a multiple of `num_key_value_heads` ({num_kv_heads})"
            ));
        }
        let head_dim = usize_of(&v, "head_dim")?.unwrap_or(hidden_size / num_heads);
        if head_dim % 2 != 0 {
            return Err(format!("head_dim {head_dim} must be even for rotary embeddings"));
        }
        // transformers 5 moved rope settings into `rope_parameters`; older configs have
        // `rope_theta` and `rope_scaling` at the top. Either may be absent.
        let rope = v
            .get("rope_parameters")
            .filter(|r| r.is_object())
            .or_else(|| v.get("rope_scaling").filter(|r| r.is_object()));
        let rope_theta =
            rope.and_then(|r| f64_of(r, "rope_theta")).or_else(|| f64_of(&v, "rope_theta")).unwrap_or(10_000.0);
        let rope_scaling = match rope {
            None => RopeScaling::None,
            Some(r) => {
                let kind = r.get("rope_type").or_else(|| r.get("type")).and_then(Value::as_str).unwrap_or("default");
                let factor = f64_of(r, "factor").unwrap_or(1.0);
                match kind {
                    "default" => RopeScaling::None,
                    "linear" => RopeScaling::Linear { factor },
                    "llama3" => RopeScaling::Llama3 {
                        factor,
                        low_freq_factor: f64_of(r, "low_freq_factor").unwrap_or(1.0),
                        high_freq_factor: f64_of(r, "high_freq_factor").unwrap_or(4.0),
                        original_max_position_embeddings: f64_of(r, "original_max_position_embeddings")
                            .unwrap_or(8192.0),
                    },
                    "yarn" => {
                        let original = f64_of(r, "original_max_position_embeddings")
                            .or_else(|| f64_of(&v, "max_position_embeddings"))
                            .unwrap_or(2048.0);
                        RopeScaling::Yarn {
                            factor,
                            beta_fast: f64_of(r, "beta_fast").filter(|b| *b != 0.0).unwrap_or(32.0),
                            beta_slow: f64_of(r, "beta_slow").filter(|b| *b != 0.0).unwrap_or(1.0),
                            original_max_position_embeddings: original,
                            truncate: r.get("truncate").and_then(Value::as_bool).unwrap_or(true),
                            attention_factor: yarn_attention_factor(r, factor)?,
                        }
                    }
                    other => {
                        return Err(format!(
                            "rope_type {other:?} is not supported (supported: default, linear, llama3, yarn)"
                        ));
                    }
                }
            }
        };
        if matches!(rope_scaling, RopeScaling::Yarn { .. }) && family != Family::GptOss {
            // Other families' YaRN variants (Qwen's, DeepSeek's mscale) differ in details not
            // checked against transformers here.
            return Err(format!("rope_type \"yarn\" is supported for gpt-oss only, not {model_type:?}"));
        }
        let act = v.get("hidden_act").and_then(Value::as_str).unwrap_or("silu");
        if act != "silu" {
            return Err(format!("hidden_act {act:?} is not supported (silu is)"));
        }
        let generation_cfg: Option<Value> = generation.and_then(|g| serde_json::from_str(g).ok());
        let mut eos = generation_cfg.as_ref().map(|g| ids(g.get("eos_token_id"))).unwrap_or_default();
        if eos.is_empty() {
            eos = ids(v.get("eos_token_id"));
        }
        let sliding_window = match family {
            // Qwen2 configs carry a window but enable it only with use_sliding_window.
            Family::Qwen2 | Family::Qwen3 if v.get("use_sliding_window") != Some(&Value::Bool(true)) => None,
            _ => usize_of(&v, "sliding_window")?,
        };
        if sliding_window == Some(0) {
            return Err("`sliding_window` is 0: no token could attend to anything".into());
        }
        let num_layers = need(&v, "num_hidden_layers")?;
        let sliding_layers = sliding_layers(&v, num_layers, sliding_window)?;
        let moe = match family {
            Family::GptOss => Some(moe_config(&v)?),
            _ => None,
        };
        if weights_format == WeightsFormat::Mxfp4 && moe.is_none() {
            return Err("quantization_config.quant_method \"mxfp4\" applies to gpt-oss experts only".into());
        }
        Ok(Self {
            architecture: arch.unwrap_or_else(|| model_type.to_string()),
            family,
            vocab_size: need(&v, "vocab_size")?,
            hidden_size,
            intermediate_size: need(&v, "intermediate_size")?,
            num_layers,
            num_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: f64_of(&v, "rms_norm_eps").unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            max_position_embeddings: usize_of(&v, "max_position_embeddings")?.unwrap_or(2048),
            tie_word_embeddings: v.get("tie_word_embeddings").and_then(Value::as_bool).unwrap_or(false),
            attention_bias: match family {
                // transformers' GptOssConfig sets it whatever config.json says.
                Family::Qwen2 | Family::GptOss => true,
                _ => v.get("attention_bias").and_then(Value::as_bool).unwrap_or(false),
            },
            mlp_bias: v.get("mlp_bias").and_then(Value::as_bool).unwrap_or(false),
            sliding_window,
            sliding_layers,
            attention_sinks: family == Family::GptOss,
            moe,
            weights_format,
            bos_token_id: generation_cfg
                .as_ref()
                .and_then(|g| ids(g.get("bos_token_id")).first().copied())
                .or_else(|| ids(v.get("bos_token_id")).first().copied()),
            eos_token_ids: eos,
            pad_token_id: generation_cfg
                .as_ref()
                .and_then(|g| ids(g.get("pad_token_id")).first().copied())
                .or_else(|| ids(v.get("pad_token_id")).first().copied()),
            dtype: v.get("dtype").or_else(|| v.get("torch_dtype")).and_then(Value::as_str).map(str::to_string),
        })
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
        let id = |k: &str| md.get(k).and_then(|v| v.to_u32().ok());
        Ok(Self {
            architecture: "llama (GGUF)".into(),
            family: Family::Llama,
            vocab_size,
            hidden_size,
            intermediate_size: u("feed_forward_length")?,
            num_layers: u("block_count")?,
            num_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: f("attention.layer_norm_rms_epsilon").unwrap_or(1e-5),
            rope_theta: f("rope.freq_base").unwrap_or(10_000.0),
            rope_scaling: RopeScaling::None,
            max_position_embeddings: u("context_length").unwrap_or(2048),
            tie_word_embeddings: false,
            attention_bias: false,
            mlp_bias: false,
            sliding_window: None,
            sliding_layers: vec![false; u("block_count")?],
            attention_sinks: false,
            moe: None,
            weights_format: WeightsFormat::Dense,
            bos_token_id: id("tokenizer.ggml.bos_token_id"),
            eos_token_ids: id("tokenizer.ggml.eos_token_id").into_iter().collect(),
            pad_token_id: id("tokenizer.ggml.padding_token_id"),
            dtype: None,
        })
    }

    /// Inverse frequencies of the rotary embedding, with scaling applied.
    pub fn inv_freq(&self) -> Vec<f64> {
        let d = self.head_dim as f64;
        let base: Vec<f64> = (0..self.head_dim / 2).map(|i| 1.0 / self.rope_theta.powf(2.0 * i as f64 / d)).collect();
        match &self.rope_scaling {
            RopeScaling::None => base,
            RopeScaling::Linear { factor } => base.into_iter().map(|f| f / factor).collect(),
            RopeScaling::Llama3 { factor, low_freq_factor, high_freq_factor, original_max_position_embeddings } => {
                let low_wavelen = original_max_position_embeddings / low_freq_factor;
                let high_wavelen = original_max_position_embeddings / high_freq_factor;
                base.into_iter()
                    .map(|f| {
                        let wavelen = 2.0 * std::f64::consts::PI / f;
                        if wavelen < high_wavelen {
                            f
                        } else if wavelen > low_wavelen {
                            f / factor
                        } else {
                            let smooth = (original_max_position_embeddings / wavelen - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect()
            }
            RopeScaling::Yarn { factor, beta_fast, beta_slow, original_max_position_embeddings, truncate, .. } => {
                // The dimension (of d) at which a frequency makes `rotations` turns over the
                // original context.
                let dim_of = |rotations: f64| {
                    d * (original_max_position_embeddings / (rotations * 2.0 * std::f64::consts::PI)).ln()
                        / (2.0 * self.rope_theta.ln())
                };
                let (mut low, mut high) = (dim_of(*beta_fast), dim_of(*beta_slow));
                if *truncate {
                    (low, high) = (low.floor(), high.ceil());
                }
                let (low, mut high) = (low.max(0.0), high.min(d - 1.0));
                if low == high {
                    high += 0.001;
                }
                base.into_iter()
                    .enumerate()
                    .map(|(i, f)| {
                        let ramp = ((i as f64 - low) / (high - low)).clamp(0.0, 1.0);
                        let extrapolation = 1.0 - ramp;
                        f / factor * (1.0 - extrapolation) + f * extrapolation
                    })
                    .collect()
            }
        }
    }

    /// The factor on cos and sin (YaRN's attention factor; 1 otherwise).
    pub fn rope_attention_factor(&self) -> f64 {
        match self.rope_scaling {
            RopeScaling::Yarn { attention_factor, .. } => attention_factor,
            _ => 1.0,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TINY: &str = include_str!("../../../tests/fixtures/tiny-llama/config.json");

    #[test]
    fn reads_transformers_5_and_older_fields() {
        let c = ModelConfig::parse(TINY, None).expect("tiny");
        assert_eq!(
            (c.family, c.hidden_size, c.num_layers, c.num_heads, c.num_kv_heads, c.head_dim),
            (Family::Llama, 64, 2, 4, 2, 16)
        );
        assert_eq!(c.rope_theta, 10_000.0);
        assert_eq!(c.eos_token_ids, vec![1]);
        // transformers 5: rope_parameters only, no top-level rope_theta.
        let v5 = r#"{"architectures":["LlamaForCausalLM"],"hidden_size":576,"num_attention_heads":9,"num_key_value_heads":3,
            "intermediate_size":1536,"num_hidden_layers":30,"vocab_size":49152,"rope_parameters":{"rope_theta":100000.0,"rope_type":"default"},
            "tie_word_embeddings":true,"eos_token_id":[2, 0]}"#;
        let c = ModelConfig::parse(v5, Some(r#"{"eos_token_id": 2}"#)).expect("v5");
        assert_eq!(c.rope_theta, 100_000.0);
        assert_eq!(c.head_dim, 64);
        assert!(c.tie_word_embeddings);
        assert_eq!(c.eos_token_ids, vec![2]);
        // Llama 3.1 rope scaling, old style.
        let l31 = r#"{"model_type":"llama","hidden_size":64,"num_attention_heads":4,"intermediate_size":128,"num_hidden_layers":1,"vocab_size":10,
            "rope_theta":500000.0,"rope_scaling":{"factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,"original_max_position_embeddings":8192,"rope_type":"llama3"}}"#;
        let c = ModelConfig::parse(l31, None).expect("llama3.1");
        assert!(matches!(c.rope_scaling, RopeScaling::Llama3 { factor, .. } if factor == 8.0));
        let f = c.inv_freq();
        assert_eq!(f[0], 1.0, "high frequencies are unscaled");
        assert!(
            (f[f.len() - 1] - 1.0 / 500_000f64.powf(14.0 / 16.0) / 8.0).abs() < 1e-15,
            "low frequencies divided by the factor"
        );
        // Qwen2 has q/k/v bias; Qwen3 q/k norms.
        let q2 = r#"{"architectures":["Qwen2ForCausalLM"],"hidden_size":64,"num_attention_heads":4,"intermediate_size":128,"num_hidden_layers":1,"vocab_size":10,"sliding_window":4096,"use_sliding_window":false}"#;
        let c = ModelConfig::parse(q2, None).expect("qwen2");
        assert!(c.attention_bias && c.sliding_window.is_none());
    }

    #[test]
    fn unsupported_and_broken_configs_are_named() {
        let err = ModelConfig::parse(r#"{"architectures":["GPT2LMHeadModel"],"model_type":"gpt2"}"#, None).unwrap_err();
        assert!(
            err.contains("GPT2LMHeadModel") && err.contains("LlamaForCausalLM") && err.contains("Qwen3ForCausalLM"),
            "{err}"
        );
        let err = ModelConfig::parse(r#"{"model_type":"llama","hidden_size":64}"#, None).unwrap_err();
        assert!(err.contains("num_attention_heads"), "{err}");
        let err = ModelConfig::parse("{", None).unwrap_err();
        assert!(err.contains("not valid JSON"), "{err}");
        let yarn = r#"{"model_type":"qwen2","hidden_size":64,"num_attention_heads":4,"intermediate_size":128,"num_hidden_layers":1,"vocab_size":10,"rope_scaling":{"type":"yarn","factor":4.0}}"#;
        assert!(ModelConfig::parse(yarn, None).unwrap_err().contains("yarn"));
    }
}
