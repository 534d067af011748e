//! The five forward tasks' configs (optimum-benchmark's `energy_star/*.yaml`, unedited) run end
//! to end on the optimum backend, offline, on the task fixtures and small local datasets; their
//! bad inputs; `energy-star predict` against the pipelines' answers.

use std::path::Path;

use energy_star_tests::{energy_star, read_json, root};
use serde_json::{Value, json};

fn fixture(p: &str) -> String {
    root().join("tests/fixtures").join(p).display().to_string()
}

/// One config run with the fixture `model` and local `dataset`, on the CPU.
fn task_run(cwd: &Path, config: &str, model: &str, dataset: &str, extra: &[&str]) -> energy_star_tests::Run {
    let model = format!("backend.model={}", fixture(model));
    let dataset = format!("scenario.dataset_name={}", fixture(dataset));
    let mut args = vec!["--config-name", config, &model, &dataset, "backend.device=cpu", "scenario.warmup_runs=1"];
    args.extend_from_slice(extra);
    energy_star(cwd, &args, &[("BENCHMARK_BACKEND", "optimum")])
}

/// (config, fixture model, dataset, samples the dataset gives at batch size 1)
const TASKS: [(&str, &str, &str, u64); 5] = [
    ("text_classification", "tiny-distilbert-cls", "datasets/text_classification.jsonl", 5),
    ("sentence_similarity", "tiny-minilm", "datasets/sentence_similarity.jsonl", 5),
    ("question_answering", "tiny-electra-qa", "datasets/extractive_qa.jsonl", 5),
    ("image_classification", "tiny-vit", "images/images.parquet", 7),
    ("object_detection", "tiny-detr", "images", 7),
];

#[test]
fn each_forward_task_config_runs_end_to_end_with_the_leaderboards_report() {
    for (config, model, dataset, rows) in TASKS {
        let cwd = tempfile::tempdir().expect("tmp");
        // Every row the dataset has (the empty one dropped at batch size 1, as upstream does).
        task_run(cwd.path(), config, model, dataset, &["scenario.num_samples=-1"]).success();
        let r = cwd.path().join("results");
        assert_eq!(read_json(&r.join("run_status.json"))["state"], "complete", "{config}");
        let report = read_json(&r.join("benchmark_report.json"));
        let phases: Vec<&str> = report.as_object().expect("report").keys().map(String::as_str).collect();
        assert_eq!(phases, ["load_dataset", "preprocess_dataset", "load_model", "forward"], "{config}");
        let forward = &report["forward"];
        assert_eq!(forward["efficiency"]["unit"], "samples/kWh", "{config}");
        let kwh = forward["energy"]["total"].as_f64().expect("energy");
        let efficiency = forward["efficiency"]["value"].as_f64().expect("efficiency");
        assert!(kwh > 0.0, "{config}: {forward}");
        assert!((efficiency * kwh / rows as f64 - 1.0).abs() < 1e-9, "{config}: {rows} samples over {kwh} kWh");
        let additions = read_json(&r.join("energy_star_report.json"));
        let run = &additions["run"];
        assert_eq!(run["timings"][0]["forward"]["rows"], rows, "{config}");
        // The upstream configs set backend.no_weights: the weights are random, and said so.
        assert_eq!(run["random_weights"]["seed"], 42, "{config}");
        assert!(run["random_weights"]["distribution"].as_str().is_some_and(|d| d.contains("normal(0, 0.02)")));
        let summary = read_json(&r.join("GPU_ENERGY_SUMMARY.json"));
        assert_eq!(summary["counted_phases"], json!(["preprocess_dataset", "forward"]), "{config}");
    }
}

#[test]
fn real_weights_batches_and_iterations() {
    let cwd = tempfile::tempdir().expect("tmp");
    task_run(
        cwd.path(),
        "object_detection",
        "tiny-detr",
        "images/images.parquet",
        &[
            "backend.no_weights=false",
            "scenario.num_samples=5",
            "scenario.input_shapes.batch_size=2",
            "scenario.iterations=2",
        ],
    )
    .success();
    let r = cwd.path().join("results");
    let run = &read_json(&r.join("energy_star_report.json"))["run"];
    assert!(run["random_weights"].is_null(), "{run}");
    // Three batches (2, 2, 1) per pass, two passes.
    let timings = run["timings"].as_array().expect("timings");
    assert_eq!(timings.len(), 2);
    assert!(timings.iter().all(|t| t["forward"]["rows"] == 5), "{timings:?}");
    let additions = read_json(&r.join("energy_star_report.json"));
    assert_eq!(additions["phases"]["forward"]["measures"].as_array().map(Vec::len), Some(2), "{additions}");
}

#[test]
fn bad_task_inputs_are_clear_errors() {
    let cwd = tempfile::tempdir().expect("tmp");
    // An image that does not decode: its row is named.
    let images = cwd.path().join("images");
    std::fs::create_dir_all(&images).expect("mkdir");
    std::fs::copy(fixture("images/rgb-97x61.png"), images.join("a.png")).expect("copy");
    std::fs::write(images.join("b.png"), b"not a png at all").expect("write");
    let images_arg = format!("scenario.dataset_name={}", images.display());
    let model = format!("backend.model={}", fixture("tiny-vit"));
    let args =
        ["--config-name", "image_classification", &model, &images_arg, "backend.device=cpu", "scenario.num_samples=2"];
    energy_star(cwd.path(), &args, &[("BENCHMARK_BACKEND", "optimum")])
        .fails_with(1, &["preprocess_dataset", "row 1", "not a readable PNG, JPEG or WebP image"]);
    // What was measured before the failure is kept, marked incomplete.
    let status = read_json(&cwd.path().join("results/run_status.json"));
    assert_ne!(status["state"], "complete", "{status}");
    // A missing column lists the columns there are.
    let cwd = tempfile::tempdir().expect("tmp");
    task_run(
        cwd.path(),
        "image_classification",
        "tiny-vit",
        "images/images.parquet",
        &["scenario.image_column_name=picture"],
    )
    .fails_with(1, &["no column \"picture\"", "file, image, label"]);
    // A question and context longer than the model's positions without truncation.
    let cwd = tempfile::tempdir().expect("tmp");
    let long = cwd.path().join("long.jsonl");
    let context = "The river bends twice before it reaches the sea. ".repeat(40);
    std::fs::write(&long, json!({"question": "How often does the river bend?", "context": context}).to_string())
        .expect("write");
    let data = format!("scenario.dataset_name={}", long.display());
    let model = format!("backend.model={}", fixture("tiny-bert-qa"));
    let args = ["--config-name", "question_answering", &model, &data, "backend.device=cpu", "scenario.num_samples=1"];
    let mut whole = args.to_vec();
    whole.push("scenario.truncation=false");
    energy_star(cwd.path(), &whole, &[("BENCHMARK_BACKEND", "optimum")])
        .fails_with(1, &["row 0", "do not fit the model's 64 positions", "scenario.truncation=true"]);
    // energy_star's default truncates, to max_position_embeddings.
    energy_star(cwd.path(), &args, &[("BENCHMARK_BACKEND", "optimum")]).success();
    // A model whose architecture serves another task: the supported ones for this task.
    let cwd = tempfile::tempdir().expect("tmp");
    task_run(cwd.path(), "image_classification", "tiny-distilbert-cls", "images/images.parquet", &[]).fails_with(
        1,
        &["model_type \"distilbert\"", "has no image-classification model", "vit (ViTForImageClassification)"],
    );
    let cwd = tempfile::tempdir().expect("tmp");
    task_run(cwd.path(), "text_classification", "tiny-llama", "datasets/text_classification.jsonl", &[]).fails_with(
        1,
        &["LlamaForCausalLM", "bert (BertForSequenceClassification), distilbert (DistilBertForSequenceClassification)"],
    );
    // no_weights with a config.json that lacks a field the model is built from.
    let cwd = tempfile::tempdir().expect("tmp");
    let model = cwd.path().join("model");
    std::fs::create_dir_all(&model).expect("mkdir");
    for f in ["tokenizer.json", "tokenizer_config.json"] {
        std::fs::copy(fixture(&format!("tiny-distilbert-cls/{f}")), model.join(f)).expect("copy");
    }
    let mut config: Value =
        serde_json::from_str(&std::fs::read_to_string(fixture("tiny-distilbert-cls/config.json")).expect("config"))
            .expect("json");
    // transformers' class defaults fill a missing field, as they fill it there; a field of the
    // wrong type, or a config naming no model, cannot be built.
    config["dim"] = json!("wide");
    std::fs::write(model.join("config.json"), config.to_string()).expect("write");
    let model_arg = format!("backend.model={}", model.display());
    let data = format!("scenario.dataset_name={}", fixture("datasets/text_classification.jsonl"));
    let args =
        ["--config-name", "text_classification", &model_arg, &data, "backend.device=cpu", "scenario.num_samples=2"];
    energy_star(cwd.path(), &args, &[("BENCHMARK_BACKEND", "optimum")])
        .fails_with(1, &["load_model failed", "config.json: `dim` = \"wide\" is not a number"]);
    let object = config.as_object_mut().expect("object");
    object.remove("dim");
    object.remove("model_type");
    object.remove("architectures");
    std::fs::write(model.join("config.json"), config.to_string()).expect("write");
    energy_star(cwd.path(), &args, &[("BENCHMARK_BACKEND", "optimum")]).fails_with(
        1,
        &["config.json names no model_type or architectures", "distilbert (DistilBertForSequenceClassification)"],
    );
}

#[test]
fn predict_answers_as_the_pipelines_do() {
    let cwd = tempfile::tempdir().expect("tmp");
    let reference = read_json(&root().join("tests/fixtures/tiny-distilbert-cls/reference.json"));
    let case = &reference["cases"][0];
    let inputs = cwd.path().join("texts.jsonl");
    std::fs::write(&inputs, json!({"text": case["text"]}).to_string()).expect("write");
    let run = energy_star(
        cwd.path(),
        &[
            "predict",
            "--model",
            &fixture("tiny-distilbert-cls"),
            "--task",
            "text-classification",
            "--inputs",
            inputs.to_str().expect("utf-8"),
            "--json",
        ],
        &[],
    )
    .success();
    let line: Value = serde_json::from_str(run.stdout().trim()).expect("one JSON line");
    assert_eq!(line["answer"]["label"], case["pipeline"][0]["label"]);
    let score = line["answer"]["score"].as_f64().expect("score");
    assert!((score - case["pipeline"][0]["score"].as_f64().expect("score")).abs() < 1e-5);
    assert_eq!(line["outputs"]["logits"].as_array().map(Vec::len), Some(2));
    // Images by path, relative to the inputs file; boxes above the threshold.
    std::fs::copy(fixture("images/rgb-97x61.png"), cwd.path().join("a.png")).expect("copy");
    std::fs::write(cwd.path().join("bad.png"), b"garbage").expect("write");
    std::fs::write(cwd.path().join("images.jsonl"), "{\"image\": \"a.png\"}\n").expect("write");
    let detr = fixture("tiny-detr");
    let args = [
        "predict",
        "--model",
        &detr,
        "--task",
        "object-detection",
        "--inputs",
        "images.jsonl",
        "--json",
        "--threshold",
        "0",
    ];
    let run = energy_star(cwd.path(), &args, &[]).success();
    let line: Value = serde_json::from_str(run.stdout().trim()).expect("json");
    let want = &read_json(&root().join("tests/fixtures/tiny-detr/reference.json"))["backends"]["pil"]["pipeline"]["rgb-97x61.png"]
        ["threshold_0"];
    let got = line["answer"].as_array().expect("boxes");
    assert_eq!(got.len(), want.as_array().expect("want").len());
    for (g, w) in got.iter().zip(want.as_array().expect("want")) {
        assert_eq!((&g["label"], &g["box"]), (&w["label"], &w["box"]));
    }
    assert_eq!(line["outputs"]["pred_boxes"].as_array().map(Vec::len), Some(6));
    std::fs::write(cwd.path().join("images.jsonl"), "{\"image\": \"bad.png\"}\n").expect("write");
    energy_star(cwd.path(), &args, &[]).fails_with(1, &["bad.png", "not a readable PNG, JPEG or WebP image"]);
    std::fs::write(cwd.path().join("images.jsonl"), "{\"picture\": \"a.png\"}\n").expect("write");
    energy_star(cwd.path(), &args, &[]).fails_with(1, &["line 1", "no `image` field"]);
}
