//! The local engine against transformers' references: each fixture under `tests/fixtures`
//! (made by the scripts beside them) run alone, batched with left padding, and in uneven pairs.

mod architectures;
mod gpt_oss;
mod gpu;
mod llama;

use energy_star_engine::GenerationParams;
use energy_star_engine_local::model;
use energy_star_engine_local::{CandleEngine, LocalSpec};

use candle_core::{Device, Tensor};

pub fn fixture_named(name: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(name)
}

pub fn fixture() -> std::path::PathBuf {
    fixture_named("tiny-llama")
}

pub fn engine_at(dir: &std::path::Path) -> CandleEngine {
    engine_with(dir, "float32")
}

/// The model at `dir` on the CPU in `dtype`.
pub fn engine_with(dir: &std::path::Path, dtype: &str) -> CandleEngine {
    let spec =
        LocalSpec { model: dir.display().to_string(), device: "cpu".into(), dtype: dtype.into(), processor: None };
    CandleEngine::open(&spec, &|_: &str| None).unwrap_or_else(|e| panic!("{} loads in {dtype}: {e}", dir.display()))
}

pub fn engine() -> CandleEngine {
    engine_at(&fixture())
}

pub struct Case {
    pub prompt: String,
    pub input_ids: Vec<u32>,
    pub output_ids: Vec<u32>,
    pub top5: Vec<(u32, f32)>,
}

pub fn cases() -> Vec<Case> {
    cases_at(&fixture())
}

pub fn cases_at(dir: &std::path::Path) -> Vec<Case> {
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

pub fn fixed(n: u32) -> GenerationParams {
    GenerationParams { max_new_tokens: n, ignore_eos: true, ..Default::default() }
}

pub fn open_err(dir: &std::path::Path) -> String {
    let spec =
        LocalSpec { model: dir.display().to_string(), device: "cpu".into(), dtype: "auto".into(), processor: None };
    match CandleEngine::open(&spec, &|_: &str| None) {
        Ok(_) => panic!("{} loaded", dir.display()),
        Err(e) => e.to_string(),
    }
}

/// The first-step logits of the prompt `ids` alone.
pub fn first_logits(e: &CandleEngine, ids: &[u32]) -> Vec<f32> {
    let mut cache = model::KvCache::new(e.config().num_layers);
    let n = ids.len();
    let t = Tensor::from_vec(ids.to_vec(), (1, n), &Device::Cpu).expect("ids");
    let pos = vec![(0..n as u32).collect::<Vec<_>>()];
    let logits = e.decoder.forward(&t, &pos, &[vec![1u8; n]], &mut cache).expect("forward");
    model::rows(&logits).expect("rows").remove(0)
}

/// Every reference case of `cases` on `e`: the tokenizer's ids, the first step's top-5
/// logits, the greedy tokens alone, all together with left padding, and in an uneven pair.
pub fn assert_reference(e: &CandleEngine, cases: &[Case], label: &str) {
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
