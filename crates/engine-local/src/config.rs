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
            (a, t) => {
                return Err(format!(
                    "unsupported architecture {} (model_type {t:?}); the local engine runs {}",
                    a.unwrap_or("(none given)"),
                    supported()
                ));
            }
        };
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
                    other => {
                        return Err(format!(
                            "rope_type {other:?} is not supported (supported: default, linear, llama3)"
                        ));
                    }
                }
            }
        };
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
        Ok(Self {
            architecture: arch.unwrap_or_else(|| model_type.to_string()),
            family,
            vocab_size: need(&v, "vocab_size")?,
            hidden_size,
            intermediate_size: need(&v, "intermediate_size")?,
            num_layers: need(&v, "num_hidden_layers")?,
            num_heads,
            num_kv_heads,
            head_dim,
            rms_norm_eps: f64_of(&v, "rms_norm_eps").unwrap_or(1e-6),
            rope_theta,
            rope_scaling,
            max_position_embeddings: usize_of(&v, "max_position_embeddings")?.unwrap_or(2048),
            tie_word_embeddings: v.get("tie_word_embeddings").and_then(Value::as_bool).unwrap_or(false),
            attention_bias: match family {
                Family::Qwen2 => true,
                _ => v.get("attention_bias").and_then(Value::as_bool).unwrap_or(false),
            },
            mlp_bias: v.get("mlp_bias").and_then(Value::as_bool).unwrap_or(false),
            sliding_window,
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
