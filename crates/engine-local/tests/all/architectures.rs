//! The leaderboard's architectures beyond Llama and gpt-oss, each a tiny random-weight fixture
//! with transformers 5.25's greedy references (`tests/fixtures/scripts/make_tiny_*.py`): the
//! checkpoint as the Hub stores it, its config as transformers 5 writes it and as the Hub's
//! older spelling (`config.legacy.json`), alone, batched and in pairs.

use std::path::{Path, PathBuf};

use energy_star_engine_local::config::{Family, Routing};

use super::*;

/// A copy of `dir` whose config.json is replaced by `config` (a file name in `dir`), or edited.
fn copy_with_config(dir: &Path, config: &str, edit: impl Fn(&mut serde_json::Value)) -> tempfile::TempDir {
    let out = tempfile::tempdir().expect("tmp");
    for entry in std::fs::read_dir(dir).expect("fixture") {
        let path = entry.expect("entry").path();
        if path.is_file() {
            std::fs::copy(&path, out.path().join(path.file_name().expect("name"))).expect("copy");
        }
    }
    let mut cfg: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join(config)).expect("config")).expect("json");
    edit(&mut cfg);
    std::fs::write(out.path().join("config.json"), cfg.to_string()).expect("write");
    out
}

/// The fixture's references on its own config and on its legacy config.
fn check_fixture(name: &str, family: Family) -> PathBuf {
    let dir = fixture_named(name);
    let cases = cases_at(&dir);
    let e = engine_at(&dir);
    assert_eq!(e.config().family, family, "{name}");
    assert_reference(&e, &cases, name);
    if dir.join("config.legacy.json").is_file() {
        let legacy = copy_with_config(&dir, "config.legacy.json", |_| {});
        let old = engine_at(legacy.path());
        assert_eq!(old.config(), e.config(), "{name}: config.legacy.json describes another model");
        assert_reference(&old, &cases, &format!("{name} (legacy config)"));
    }
    dir
}

#[test]
fn qwen3_moe_matches_transformers_with_and_without_renormalised_routing() {
    let dir = check_fixture("tiny-qwen3-moe", Family::Qwen3Moe);
    let e = engine_at(&dir);
    let moe = e.config().moe.clone().expect("moe");
    assert_eq!(moe.routing, Routing::SoftmaxTopK { renormalize: true });
    assert!(e.config().moe_layers.iter().any(|m| !m), "a dense layer among the sparse ones");
    let plain = check_fixture("tiny-qwen3-moe/norm-topk-false", Family::Qwen3Moe);
    let plain = engine_at(&plain);
    assert_eq!(plain.config().moe.as_ref().expect("moe").routing, Routing::SoftmaxTopK { renormalize: false });
}

#[test]
fn mixtral_matches_transformers() {
    let dir = check_fixture("tiny-mixtral", Family::Mixtral);
    assert!(engine_at(&dir).config().sliding_window.is_some(), "the fixture slides");
}

#[test]
fn phi3_with_partial_rotary_and_longrope_matches_transformers() {
    let dir = check_fixture("tiny-phi3", Family::Phi3);
    let e = engine_at(&dir);
    assert!(e.config().rope.rotary_dim < e.config().head_dim, "partial rotary");
    assert!(e.config().rope.long_after().is_some(), "longrope");
    check_fixture("tiny-phi3/full-rotary", Family::Phi3);
}

#[test]
fn smollm3_matches_transformers() {
    let dir = check_fixture("tiny-smollm3", Family::SmolLm3);
    assert!(engine_at(&dir).config().rope_layers.contains(&false), "layers without RoPE");
}

#[test]
fn gemma3_matches_transformers() {
    check_fixture("tiny-gemma3", Family::Gemma3);
}

/// Gemma 3's image-text model runs text only through its text tower, whether the checkpoint
/// names it as the Hub does (`language_model.model.`) or as transformers 5 saves it
/// (`model.language_model.`).
#[test]
fn gemma3_image_text_model_generates_text_as_transformers_does() {
    let dir = check_fixture("tiny-gemma3-mm", Family::Gemma3);
    let saved = engine_at(&dir.join("transformers5-layout"));
    assert_reference(&saved, &cases_at(&dir), "tiny-gemma3-mm (transformers 5 layout)");
}

/// Mixture-of-experts checkpoints that do not match their config say so.
#[test]
fn broken_moe_checkpoints_are_clear_errors() {
    let dir = fixture_named("tiny-qwen3-moe");
    let fewer = copy_with_config(&dir, "config.json", |c| c["num_local_experts"] = serde_json::json!(6));
    let err = open_err(fewer.path());
    assert!(err.contains("holds 8 experts") && err.contains("num_experts = 6"), "{err}");
    let legacy = copy_with_config(&dir, "config.legacy.json", |c| c["num_experts"] = serde_json::json!(16));
    let err = open_err(legacy.path());
    assert!(err.contains("holds 8 experts") && err.contains("num_experts = 16"), "{err}");
    let narrow = copy_with_config(&dir, "config.json", |c| c["moe_intermediate_size"] = serde_json::json!(8));
    assert!(open_err(narrow.path()).contains("shape mismatch"), "{}", open_err(narrow.path()));
    let mixtral = copy_with_config(&fixture_named("tiny-mixtral"), "config.json", |c| {
        c["num_local_experts"] = serde_json::json!(2)
    });
    let err = open_err(mixtral.path());
    assert!(err.contains("experts") && err.contains("num_experts = 2"), "{err}");
}

/// An architecture the engine does not run names itself and the backend that runs it.
#[test]
fn unsupported_leaderboard_architectures_point_at_vllm() {
    for (class, what) in [
        ("DeepseekV3ForCausalLM", "latent attention"),
        ("Qwen3NextForCausalLM", "DeltaNet"),
        ("GraniteMoeHybridForCausalLM", "Mamba-2"),
    ] {
        let dir = copy_with_config(&fixture_named("tiny-llama"), "config.json", |c| {
            c["architectures"] = serde_json::json!([class])
        });
        let err = open_err(dir.path());
        assert!(err.contains(class) && err.contains(what) && err.contains("BENCHMARK_BACKEND=vllm"), "{err}");
    }
}

/// Every architecture runs in bfloat16 and float16 on the CPU, its first-step logits close to
/// float32's (within the halves' precision: their 8- and 11-bit mantissas over a few layers).
#[test]
fn every_architecture_runs_in_half_precision_close_to_float32() {
    for name in [
        "tiny-llama",
        "tiny-gpt-oss",
        "tiny-qwen3-moe",
        "tiny-mixtral",
        "tiny-phi3",
        "tiny-smollm3",
        "tiny-gemma3",
        "tiny-gemma3-mm",
    ] {
        let dir = fixture_named(name);
        let case = &cases_at(&dir)[3];
        let want = first_logits(&engine_at(&dir), &case.input_ids);
        let scale = want.iter().map(|x| x.abs()).fold(0f32, f32::max);
        for (dtype, tolerance) in [("bfloat16", 0.08), ("float16", 0.02)] {
            let e = engine_with(&dir, dtype);
            let got = first_logits(&e, &case.input_ids);
            let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
            assert!(worst <= tolerance * scale, "{name} in {dtype}: logits differ by {worst} (largest logit {scale})");
            let out = e.generate(std::slice::from_ref(&case.prompt), &fixed(8)).expect("generate");
            assert_eq!(out.requests[0].output_ids.len(), 8, "{name} in {dtype}");
        }
    }
}
