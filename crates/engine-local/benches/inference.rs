//! CPU throughput of the local engine: prefill and decode tokens per second, batch 1 and 8, for
//! the tiny test fixture and for a random-weight model with SmolLM2-135M's shapes, printed as
//! Markdown rows for docs/benchmarks.md.
//!
//! Run: `cargo bench -p energy-star-engine-local --bench inference` (about 2 minutes; writes a 540 MB model
//! to a temporary folder). With `ENERGY_STAR_BENCH_MODELS="LABEL=DIR;LABEL=DIR"` it benches only
//! those folders (the side-by-side script `benches/decoders_side_by_side.py` sets it), and
//! `ENERGY_STAR_BENCH_DTYPE` picks the dtype (default float32).

use std::path::Path;
use std::time::Instant;

use energy_star_engine::GenerationParams;
use energy_star_engine_local::{CandleEngine, LocalSpec};

const PROMPT_TOKENS: usize = 32;
const NEW_TOKENS: u32 = 32;

fn bench(label: &str, dir: &Path, dtype: &str) {
    let spec =
        LocalSpec { model: dir.display().to_string(), device: "cpu".into(), dtype: dtype.into(), processor: None };
    let t = Instant::now();
    let engine = CandleEngine::open(&spec, &|_: &str| None).expect("model loads");
    let load_s = t.elapsed().as_secs_f64();
    let vocab = engine.config().vocab_size.min(512) as u32;
    let params = GenerationParams { max_new_tokens: NEW_TOKENS, ignore_eos: true, ..Default::default() };
    for batch in [1usize, 8] {
        let ids: Vec<Vec<u32>> = (0..batch)
            .map(|b| (0..PROMPT_TOKENS).map(|i| ((i * 7 + b * 13) as u32 % (vocab - 2)) + 2).collect())
            .collect();
        let prompts: Vec<String> = (0..batch).map(|b| format!("prompt {b}")).collect();
        // One untimed pass warms caches and the thread pool.
        engine
            .generate_ids(&prompts, ids.clone(), &GenerationParams { max_new_tokens: 2, ..params.clone() })
            .expect("warmup");
        let mut prefill = Vec::new();
        let mut decode = Vec::new();
        for _ in 0..3 {
            let out = engine.generate_ids(&prompts, ids.clone(), &params).expect("generate");
            prefill.push((batch * PROMPT_TOKENS) as f64 / (out.prefill_ns as f64 / 1e9));
            let steps: u64 = out.decode_step_ns.iter().sum();
            decode.push((batch * out.decode_step_ns.len()) as f64 / (steps as f64 / 1e9));
        }
        let med = |mut v: Vec<f64>| {
            v.sort_by(f64::total_cmp);
            v[v.len() / 2]
        };
        println!(
            "| {label} | {batch} | {PROMPT_TOKENS} | {NEW_TOKENS} | {:.0} | {:.1} | {load_s:.2} s |",
            med(prefill),
            med(decode)
        );
    }
}

/// Writes a random-weight model with SmolLM2-135M's shapes (float32, tied embeddings).
fn smollm2_shapes(dir: &Path) {
    use candle_core::{DType, Device, Tensor};
    let (h, i, l, heads, kv, v) = (576usize, 1536usize, 30usize, 9usize, 3usize, 49152usize);
    let hd = h / heads;
    let dev = Device::Cpu;
    let mut t = std::collections::HashMap::new();
    let mut add = |name: String, shape: &[usize]| {
        let x = if shape.len() == 1 {
            Tensor::ones(shape, DType::F32, &dev)
        } else {
            Tensor::randn(0f32, 0.05, shape, &dev)
        }
        .expect("tensor");
        t.insert(name, x);
    };
    add("model.embed_tokens.weight".into(), &[v, h]);
    for n in 0..l {
        let p = format!("model.layers.{n}");
        add(format!("{p}.self_attn.q_proj.weight"), &[heads * hd, h]);
        add(format!("{p}.self_attn.k_proj.weight"), &[kv * hd, h]);
        add(format!("{p}.self_attn.v_proj.weight"), &[kv * hd, h]);
        add(format!("{p}.self_attn.o_proj.weight"), &[h, heads * hd]);
        add(format!("{p}.mlp.gate_proj.weight"), &[i, h]);
        add(format!("{p}.mlp.up_proj.weight"), &[i, h]);
        add(format!("{p}.mlp.down_proj.weight"), &[h, i]);
        add(format!("{p}.input_layernorm.weight"), &[h]);
        add(format!("{p}.post_attention_layernorm.weight"), &[h]);
    }
    add("model.norm.weight".into(), &[h]);
    candle_core::safetensors::save(&t, dir.join("model.safetensors")).expect("save");
    let cfg = serde_json::json!({
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": h, "intermediate_size": i,
        "num_hidden_layers": l, "num_attention_heads": heads, "num_key_value_heads": kv, "vocab_size": v,
        "max_position_embeddings": 8192, "rms_norm_eps": 1e-5, "rope_parameters": {"rope_theta": 100000.0, "rope_type": "default"},
        "tie_word_embeddings": true, "bos_token_id": 0, "eos_token_id": 1, "hidden_act": "silu"
    });
    std::fs::write(dir.join("config.json"), cfg.to_string()).expect("config");
    std::fs::copy(Path::new(env!("CARGO_MANIFEST_DIR")).join("assets/toy-tokenizer.json"), dir.join("tokenizer.json"))
        .expect("tokenizer");
}

fn main() {
    let dtype = std::env::var("ENERGY_STAR_BENCH_DTYPE").unwrap_or_else(|_| "float32".into());
    println!("dtype: {dtype}");
    println!("| model | batch | prompt tokens | new tokens | prefill tokens/s | decode tokens/s | load |");
    println!("|---|---|---|---|---|---|---|");
    if let Ok(list) = std::env::var("ENERGY_STAR_BENCH_MODELS") {
        for entry in list.split(';').filter(|e| !e.trim().is_empty()) {
            let (label, dir) = entry.rsplit_once('=').expect("ENERGY_STAR_BENCH_MODELS entries are LABEL=DIR");
            bench(label.trim(), Path::new(dir.trim()), &dtype);
        }
        return;
    }
    let fixtures = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures");
    bench("tiny-llama fixture (hidden 64, 2 layers)", &fixtures.join("tiny-llama"), &dtype);
    bench("tiny-gpt-oss fixture (MXFP4)", &fixtures.join("tiny-gpt-oss"), &dtype);
    bench("tiny-gpt-oss fixture (dense f32)", &fixtures.join("tiny-gpt-oss/dense"), &dtype);
    let toy = tempfile::tempdir().expect("tmp");
    energy_star_engine_local::toy::write(toy.path()).expect("toy");
    bench("energy-star/toy-llama (offline default, 9.8 M)", toy.path(), &dtype);
    let dir = tempfile::tempdir().expect("tmp");
    smollm2_shapes(dir.path());
    bench("random weights, SmolLM2-135M shapes (135 M)", dir.path(), &dtype);
}
