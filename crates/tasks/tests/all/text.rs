//! Text classification (BERT, DistilBERT), sentence similarity (MiniLM as sentence-transformers
//! uses it) and extractive question answering (BERT, ELECTRA), against transformers 5.25's raw
//! outputs and the pipelines' (4.57's for question answering) answers.

use energy_star_tasks::answers;
use energy_star_tasks::{Outputs, PrepareOptions, Prepared, Task, TaskInput};

use super::*;

fn alone(max_length: usize) -> PrepareOptions {
    PrepareOptions { truncation: true, pad_group: None, max_length: Some(max_length) }
}

fn check_classifier(name: &str) {
    let r = reference(name);
    let max = r["model_max_length"].as_u64().expect("max") as usize;
    let p = open_processor(name, Task::TextClassification);
    let m = open_model(name, Task::TextClassification);
    let cases = r["cases"].as_array().expect("cases");
    let inputs: Vec<TaskInput> = cases
        .iter()
        .map(|c| {
            let text = c["text"].as_str().expect("text").to_string();
            match c["text_pair"].as_str() {
                Some(pair) => TaskInput::Pair(text, pair.to_string()),
                None => TaskInput::Text(text),
            }
        })
        .collect();
    let prepared = p.prepare(&inputs, alone(max), 0).expect("prepare");
    let Prepared::Text(encs) = &prepared else { panic!("text") };
    for (i, c) in cases.iter().enumerate() {
        assert_eq!(encs[i].get_ids(), ids(&c["input_ids"]).as_slice(), "{name} case {i}: input ids");
        let Outputs::Logits(l) = m.forward(&prepared, i..i + 1).expect("forward") else { panic!("logits") };
        let d = worst(&l[0], &floats(&c["logits"]));
        assert!(d < 1e-4, "{name} case {i}: logits differ by {d}");
        let answer = answers::classification(&l[0], &m.labels);
        let want = &c["pipeline"][0];
        assert_eq!(answer["label"], want["label"], "{name} case {i}");
        assert!((answer["score"].as_f64().expect("s") - want["score"].as_f64().expect("s")).abs() < 1e-5);
    }
    // All rows in one right-padded batch.
    let batch = p.prepare(&inputs, PrepareOptions { pad_group: Some(inputs.len()), ..alone(max) }, 0).expect("batch");
    let Outputs::Logits(l) = m.forward(&batch, 0..inputs.len()).expect("forward") else { panic!("logits") };
    for (i, want) in r["batched"]["logits"].as_array().expect("batched").iter().enumerate() {
        let d = worst(&l[i], &floats(want));
        assert!(d < 1e-4, "{name} batched case {i}: logits differ by {d}");
    }
}

#[test]
fn bert_and_distilbert_classify_as_transformers_does_alone_and_batched() {
    check_classifier("tiny-bert-cls");
    check_classifier("tiny-distilbert-cls");
}

#[test]
fn minilm_embeds_sentences_as_sentence_transformers_does() {
    let name = "tiny-minilm";
    let r = reference(name);
    let p = open_processor(name, Task::SentenceSimilarity);
    let m = open_model(name, Task::SentenceSimilarity);
    let st_max = p.text().and_then(|t| t.max_seq_length).expect("sentence_bert_config.json");
    let mut all = Vec::new();
    for (i, c) in r["cases"].as_array().expect("cases").iter().enumerate() {
        let mut embeddings = Vec::new();
        for k in ["1", "2"] {
            let s = c[&format!("sentence{k}")].as_str().expect("sentence").to_string();
            all.push(TaskInput::Text(s.clone()));
            let prepared = p.prepare(&[TaskInput::Text(s)], alone(st_max), 0).expect("prepare");
            let Prepared::Text(encs) = &prepared else { panic!("text") };
            assert_eq!(encs[0].get_ids(), ids(&c[&format!("st_input_ids_{k}")]).as_slice(), "case {i}: ids");
            let Outputs::Embeddings(e) = m.forward(&prepared, 0..1).expect("forward") else { panic!("embeddings") };
            let d = worst(&e[0], &floats(&c[&format!("st_embedding_{k}")]));
            assert!(d < 1e-5, "case {i} sentence {k}: embedding differs by {d}");
            embeddings.push(e[0].clone());
        }
        let cos = answers::cosine(&embeddings[0], &embeddings[1]);
        assert!((f64::from(cos) - c["st_cosine_similarity"].as_f64().expect("cos")).abs() < 1e-5, "case {i}: {cos}");
    }
    // Every sentence in one padded batch, cut at the tokenizer's length as the reference's batch.
    let max = r["model_max_length"].as_u64().expect("max") as usize;
    let batch = p.prepare(&all, PrepareOptions { pad_group: Some(all.len()), ..alone(max) }, 0).expect("batch");
    let Outputs::Embeddings(e) = m.forward(&batch, 0..all.len()).expect("forward") else { panic!("embeddings") };
    for (i, want) in r["batched"]["embeddings"].as_array().expect("batched").iter().enumerate() {
        let d = worst(&e[i], &floats(want));
        assert!(d < 1e-5, "batched sentence {i}: differs by {d}");
    }
}

fn check_qa(name: &str) {
    let r = reference(name);
    let p = open_processor(name, Task::QuestionAnswering);
    let m = open_model(name, Task::QuestionAnswering);
    let t = p.text().expect("tokenizer");
    let max_seq = t.model_max_length.unwrap_or(384).min(384);
    let stride = (max_seq / 2).min(128);
    let cases = r["cases"].as_array().expect("cases");
    let mut first_windows = Vec::new();
    for (i, c) in cases.iter().enumerate() {
        let (q, ctx) = (c["question"].as_str().expect("q"), c["context"].as_str().expect("c"));
        let windows = t.windows(q, ctx, max_seq, stride).expect("windows");
        assert_eq!(windows.len(), c["pipeline_windows"].as_array().expect("windows").len(), "{name} case {i}: windows");
        assert_eq!(windows[0].get_ids(), ids(&c["input_ids"]).as_slice(), "{name} case {i}: window 0 ids");
        let logits: Vec<(Vec<f32>, Vec<f32>)> = windows
            .iter()
            .map(|w| {
                let Outputs::Span { start, end } = m.forward(&Prepared::Text(vec![w.clone()]), 0..1).expect("forward")
                else {
                    panic!("span")
                };
                (start[0].clone(), end[0].clone())
            })
            .collect();
        let d = worst(&logits[0].0, &floats(&c["start_logits"])).max(worst(&logits[0].1, &floats(&c["end_logits"])));
        assert!(d < 1e-4, "{name} case {i}: logits differ by {d}");
        let got = answers::extractive_answer(&windows, &logits, ctx);
        let want = &c["pipeline"];
        assert_eq!(
            (&got["answer"], &got["start"], &got["end"]),
            (&want["answer"], &want["start"], &want["end"]),
            "{name} case {i}"
        );
        assert!(
            (got["score"].as_f64().expect("s") - want["score"].as_f64().expect("s")).abs() < 1e-5,
            "{name} case {i}"
        );
        first_windows.push(windows[0].clone());
    }
    // Every case's first window in one right-padded batch.
    let mut batch = first_windows;
    p.text().expect("t").pad_groups(&mut batch, cases.len()).expect("pad");
    let Outputs::Span { start, end } = m.forward(&Prepared::Text(batch), 0..cases.len()).expect("forward") else {
        panic!("span")
    };
    let b = &r["batched"];
    for i in 0..cases.len() {
        let (ws, we) = (floats(&b["start_logits"][i]), floats(&b["end_logits"][i]));
        let d = worst(&start[i][..ws.len()], &ws).max(worst(&end[i][..we.len()], &we));
        assert!(d < 1e-4, "{name} batched case {i}: differs by {d}");
    }
}

#[test]
fn bert_and_electra_answer_questions_as_transformers_does() {
    check_qa("tiny-bert-qa");
    check_qa("tiny-electra-qa");
    check_qa("tiny-electra-qa/equal-sizes");
}

/// optimum-benchmark's preparation of a pair: longest-first truncation to the model's
/// `max_position_embeddings`, padding to the longest of each group.
#[test]
fn pairs_are_cut_longest_first_to_the_models_positions_and_padded_by_group() {
    let p = open_processor("tiny-bert-qa", Task::QuestionAnswering);
    let long = "energy ".repeat(200);
    let inputs = vec![
        TaskInput::Pair("What is energy?".into(), long.clone()),
        TaskInput::Pair("Why?".into(), "Because.".into()),
        TaskInput::Pair(long.clone(), "Short context.".into()),
    ];
    let opts = PrepareOptions { truncation: true, pad_group: Some(2), max_length: None };
    let Prepared::Text(encs) = p.prepare(&inputs, opts, 0).expect("prepare") else { panic!("text") };
    assert_eq!(encs[0].get_ids().len(), 64, "cut to max_position_embeddings");
    assert_eq!(encs[1].get_ids().len(), 64, "padded to its group's longest");
    assert_eq!(encs[2].get_ids().len(), 64);
    assert!(encs[2].get_sequence_ids().contains(&Some(1)), "longest-first keeps the short context");
    let err = p.prepare(&inputs, PrepareOptions { truncation: false, ..opts }, 10).unwrap_err().to_string();
    assert!(err.contains("row 10") && err.contains("scenario.truncation=true"), "{err}");
}

/// A tokenizer_config.json that turns lowercasing off wins over tokenizer.json's normaliser, as
/// transformers rebuilds it (lvwerra/distilbert-imdb's case).
#[test]
fn the_tokenizer_config_decides_lowercasing_as_transformers_does() {
    let from = fixture("tiny-distilbert-cls");
    let dir = tempfile::tempdir().expect("tmp");
    for entry in std::fs::read_dir(&from).expect("fixture") {
        let p = entry.expect("entry").path();
        if p.is_file() {
            std::fs::copy(&p, dir.path().join(p.file_name().expect("name"))).expect("copy");
        }
    }
    let cfg_path = dir.path().join("tokenizer_config.json");
    let cfg =
        std::fs::read_to_string(&cfg_path).expect("cfg").replace("\"do_lower_case\": true", "\"do_lower_case\": false");
    std::fs::write(&cfg_path, cfg).expect("write");
    let p = energy_star_tasks::Processor::open(
        &dir.path().display().to_string(),
        None,
        Task::TextClassification,
        &|_: &str| None,
    )
    .expect("processor");
    let r = reference("tiny-distilbert-cls");
    for c in r["do_lower_case_false"]["cases"].as_array().expect("cases") {
        let inputs = [TaskInput::Text(c["text"].as_str().expect("text").into())];
        let Prepared::Text(encs) = p.prepare(&inputs, alone(64), 0).expect("prepare") else { panic!("text") };
        assert_eq!(encs[0].get_ids(), ids(&c["input_ids"]).as_slice(), "{}", c["text"]);
    }
}
