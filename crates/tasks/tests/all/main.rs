//! The task engine against transformers' references: each task fixture under `tests/fixtures`
//! (made by `tests/fixtures/scripts/make_tiny_encoders.py` and `make_tiny_vision.py`), its
//! inputs prepared as the processors prepare them, its raw outputs alone and batched, and the
//! pipelines' answers.

mod text;
mod vision;

use std::path::{Path, PathBuf};

use serde_json::Value;

pub fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures").join(name)
}

pub fn reference(name: &str) -> Value {
    let path = fixture(name).join("reference.json");
    serde_json::from_str(&std::fs::read_to_string(&path).expect("reference.json")).expect("json")
}

pub fn floats(v: &Value) -> Vec<f32> {
    v.as_array().expect("numbers").iter().map(|x| x.as_f64().expect("number") as f32).collect()
}

pub fn ids(v: &Value) -> Vec<u32> {
    v.as_array().expect("ids").iter().map(|x| x.as_u64().expect("id") as u32).collect()
}

/// Largest absolute difference.
pub fn worst(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len(), "lengths differ");
    a.iter().zip(b).map(|(x, y)| (x - y).abs()).fold(0f32, f32::max)
}

pub fn open_model(name: &str, task: energy_star_tasks::Task) -> energy_star_tasks::TaskModel {
    let spec = energy_star_tasks::TaskModelSpec {
        model: fixture(name).display().to_string(),
        task,
        device: "cpu".into(),
        dtype: "float32".into(),
        random_weights: None,
    };
    energy_star_tasks::TaskModel::open(&spec, &|_: &str| None).unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub fn open_processor(name: &str, task: energy_star_tasks::Task) -> energy_star_tasks::Processor {
    energy_star_tasks::Processor::open(&fixture(name).display().to_string(), None, task, &|_: &str| None)
        .unwrap_or_else(|e| panic!("{name}: {e}"))
}
