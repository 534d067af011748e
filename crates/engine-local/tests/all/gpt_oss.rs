//! gpt-oss: the tiny-gpt-oss fixture (MXFP4 and dense), its chat cases, broken checkpoints.

use energy_star_engine_local::config;

use super::*;

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
        assert_eq!(chat.unused_kwargs.contains(&"enable_thinking".to_string()), kwargs.contains_key("enable_thinking"));
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
    for f in ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"] {
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
