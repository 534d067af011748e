//! The offline default model, `energy-star/toy-llama`: a small Llama with random weights made
//! deterministically on first use (no download, no network), with a byte-level BPE tokenizer
//! shipped in the binary. Its outputs are gibberish by design; it exists so that the whole
//! benchmark runs on any machine, and its energy figures measure the CPU on a toy model.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// The model id that selects the toy model.
pub const TOY_MODEL: &str = "energy-star/toy-llama";
/// Bumped whenever the shapes or the generator change, so an old cached copy is not reused.
const VERSION: &str = "v2";
const SEED: u64 = 20_261_128;

const TOKENIZER: &str = include_str!("../assets/toy-tokenizer.json");

/// Shapes: ~9.8 M parameters (39 MB in float32), vocab 512 from the shipped tokenizer; large
/// enough that the benchmark's phases last seconds on a CPU.
pub fn config_json() -> String {
    serde_json::json!({
        "architectures": ["LlamaForCausalLM"],
        "model_type": "llama",
        "hidden_size": 384,
        "intermediate_size": 1024,
        "num_hidden_layers": 6,
        "num_attention_heads": 6,
        "num_key_value_heads": 2,
        "head_dim": 64,
        "vocab_size": 512,
        "max_position_embeddings": 1024,
        "rms_norm_eps": 1e-5,
        "rope_parameters": {"rope_theta": 10000.0, "rope_type": "default"},
        "tie_word_embeddings": false,
        "bos_token_id": 0,
        "eos_token_id": 1,
        "hidden_act": "silu",
        "dtype": "float32",
        "energy_star_note": "random weights made deterministically by energy-star (seed 20261128); not a trained model"
    })
    .to_string()
}

/// `n` normals of mean 0 and standard deviation `std` from `rng` (Box-Muller: two uniforms give
/// two normals). Random weights elsewhere (the task engine's `no_weights`) draw the same way.
pub fn normal(rng: &mut StdRng, n: usize, std: f32) -> Vec<f32> {
    let mut out = Vec::with_capacity(n + 1);
    while out.len() < n {
        let u1: f32 = rng.random::<f32>().max(f32::MIN_POSITIVE);
        let u2: f32 = rng.random::<f32>();
        let r = (-2.0 * u1.ln()).sqrt() * std;
        out.push(r * (2.0 * std::f32::consts::PI * u2).cos());
        out.push(r * (2.0 * std::f32::consts::PI * u2).sin());
    }
    out.truncate(n);
    out
}

/// Writes the toy model into `dir` (config, tokenizer, weights).
pub fn write(dir: &Path) -> Result<(), String> {
    let (h, i, l, heads, kv, hd, v) = (384usize, 1024usize, 6usize, 6usize, 2usize, 64usize, 512usize);
    let mut rng = StdRng::seed_from_u64(SEED);
    let mut tensors: HashMap<String, Tensor> = HashMap::new();
    let mut add = |name: String, shape: &[usize], std: f32, rng: &mut StdRng| -> Result<(), String> {
        let n: usize = shape.iter().product();
        let data = if std == 0.0 { vec![1.0f32; n] } else { normal(rng, n, std) };
        let t = Tensor::from_vec(data, shape, &Device::Cpu).map_err(|e| e.to_string())?;
        tensors.insert(name, t);
        Ok(())
    };
    add("model.embed_tokens.weight".into(), &[v, h], 0.1, &mut rng)?;
    for layer in 0..l {
        let p = format!("model.layers.{layer}");
        add(format!("{p}.self_attn.q_proj.weight"), &[heads * hd, h], 0.05, &mut rng)?;
        add(format!("{p}.self_attn.k_proj.weight"), &[kv * hd, h], 0.05, &mut rng)?;
        add(format!("{p}.self_attn.v_proj.weight"), &[kv * hd, h], 0.05, &mut rng)?;
        add(format!("{p}.self_attn.o_proj.weight"), &[h, heads * hd], 0.05, &mut rng)?;
        add(format!("{p}.mlp.gate_proj.weight"), &[i, h], 0.05, &mut rng)?;
        add(format!("{p}.mlp.up_proj.weight"), &[i, h], 0.05, &mut rng)?;
        add(format!("{p}.mlp.down_proj.weight"), &[h, i], 0.05, &mut rng)?;
        add(format!("{p}.input_layernorm.weight"), &[h], 0.0, &mut rng)?;
        add(format!("{p}.post_attention_layernorm.weight"), &[h], 0.0, &mut rng)?;
    }
    add("model.norm.weight".into(), &[h], 0.0, &mut rng)?;
    add("lm_head.weight".into(), &[v, h], 0.1, &mut rng)?;
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let tmp = dir.join(".model.safetensors.tmp");
    candle_core::safetensors::save(&tensors, &tmp).map_err(|e| e.to_string())?;
    std::fs::rename(&tmp, dir.join("model.safetensors")).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("config.json"), config_json()).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("tokenizer.json"), TOKENIZER).map_err(|e| e.to_string())?;
    std::fs::write(dir.join("generation_config.json"), r#"{"bos_token_id": 0, "eos_token_id": 1}"#)
        .map_err(|e| e.to_string())?;
    Ok(())
}

/// The toy model's folder, made on first use under energy-star's cache folder.
pub fn ensure(env: &impl Fn(&str) -> Option<String>) -> Result<PathBuf, String> {
    let base = env("ENERGY_STAR_CACHE_DIR")
        .filter(|s| !s.is_empty())
        .map(PathBuf::from)
        .or_else(|| env("XDG_CACHE_HOME").filter(|s| !s.is_empty()).map(|d| PathBuf::from(d).join("energy-star")))
        .or_else(|| env("HOME").filter(|s| !s.is_empty()).map(|h| PathBuf::from(h).join(".cache/energy-star")))
        .unwrap_or_else(|| std::env::temp_dir().join("energy-star"));
    let dir = base.join("models").join(format!("toy-llama-{VERSION}"));
    if !dir.join("model.safetensors").is_file() || !dir.join("tokenizer.json").is_file() {
        write(&dir)?;
    }
    Ok(dir)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_toy_model_is_deterministic_and_loads() {
        let a = tempfile::tempdir().expect("tmp");
        let b = tempfile::tempdir().expect("tmp");
        write(a.path()).expect("write a");
        write(b.path()).expect("write b");
        let wa = std::fs::read(a.path().join("model.safetensors")).expect("a");
        let wb = std::fs::read(b.path().join("model.safetensors")).expect("b");
        assert_eq!(wa, wb, "same seed, same bytes");
        let spec = crate::LocalSpec {
            model: a.path().display().to_string(),
            device: "cpu".into(),
            dtype: "auto".into(),
            processor: None,
        };
        let e = super::super::CandleEngine::open(&spec, &|_: &str| None).expect("loads");
        let out = e
            .generate(
                &["Hello".into()],
                &energy_star_engine::GenerationParams { max_new_tokens: 4, ignore_eos: true, ..Default::default() },
            )
            .expect("generates");
        assert_eq!(out.requests[0].output_ids.len(), 4);
    }
}
