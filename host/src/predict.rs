//! `energy-star predict`: a non-generative task's model on inputs, answered as transformers'
//! pipelines answer (label and score; similarity; answer span; boxes), with the raw outputs, to
//! check a model before a long run.
//!
//! Inputs are prepared as the pipelines prepare them, which differs from a benchmark's
//! preparation (optimum-benchmark's): texts are cut to the tokenizer's `model_max_length`
//! (sentence-transformers' `max_seq_length` for sentence similarity), each sentence of a pair is
//! embedded on its own, questions run in the question-answering pipeline's overlapping windows.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use energy_star_tasks::{
    Outputs, PrepareOptions, Prepared, Processor, Task, TaskInput, TaskModel, TaskModelSpec, answers,
};
use serde_json::{Value, json};

use crate::cli::PredictArgs;
use crate::fetch::Wanted;

/// One line of the inputs file, checked against the task.
struct Line {
    raw: Value,
    input: LineInput,
}

enum LineInput {
    Text(String, Option<String>),
    Sentences(String, String),
    Question { question: String, context: String },
    Image(PathBuf),
}

fn field(v: &Value, key: &str, line: usize) -> anyhow::Result<String> {
    match v.get(key) {
        Some(Value::String(s)) => Ok(s.clone()),
        Some(other) => anyhow::bail!("line {line}: `{key}` = {other} is not a string"),
        None => anyhow::bail!("line {line}: no `{key}` field"),
    }
}

fn read_lines(path: &Path, task: Task) -> anyhow::Result<Vec<Line>> {
    let text = std::fs::read_to_string(path).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))?;
    let base = path.parent().unwrap_or(Path::new("."));
    let mut out = Vec::new();
    for (i, l) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let n = i + 1;
        let raw: Value =
            serde_json::from_str(l).map_err(|e| anyhow::anyhow!("{} line {n} is not JSON: {e}", path.display()))?;
        let input = match task {
            Task::TextClassification => LineInput::Text(
                field(&raw, "text", n)?,
                raw.get("text_pair").and_then(Value::as_str).map(str::to_string),
            ),
            Task::SentenceSimilarity => {
                LineInput::Sentences(field(&raw, "sentence1", n)?, field(&raw, "sentence2", n)?)
            }
            Task::QuestionAnswering => {
                LineInput::Question { question: field(&raw, "question", n)?, context: field(&raw, "context", n)? }
            }
            Task::ImageClassification | Task::ObjectDetection => LineInput::Image(base.join(field(&raw, "image", n)?)),
        };
        out.push(Line { raw, input });
    }
    if out.is_empty() {
        anyhow::bail!("{} has no inputs", path.display());
    }
    Ok(out)
}

pub fn command(args: &PredictArgs) -> anyhow::Result<ExitCode> {
    if args.batch_size == 0 {
        anyhow::bail!("--batch-size must be at least 1");
    }
    let task = Task::from_name(&args.task).ok_or_else(|| {
        anyhow::anyhow!(
            "--task {} is not one of {}",
            args.task,
            Task::ALL.iter().map(|t| t.name()).collect::<Vec<_>>().join(", ")
        )
    })?;
    let lines = read_lines(&args.inputs, task)?;
    let env = |k: &str| std::env::var(k).ok();
    let wanted = if args.random_weights.is_some() { Wanted::ModelWithoutWeights } else { Wanted::Model };
    crate::fetch::source(wanted, &args.model, &env)?;
    let processor = Processor::open(&args.model, None, task, &env)?;
    let model = TaskModel::open(
        &TaskModelSpec {
            model: args.model.clone(),
            task,
            device: args.device.clone(),
            dtype: args.dtype.clone(),
            random_weights: args.random_weights,
        },
        &env,
    )?;
    for chunk in lines.chunks(args.batch_size) {
        let results = match task {
            Task::QuestionAnswering => chunk.iter().map(|l| answer_question(&processor, &model, l)).collect(),
            _ => answer_batch(&processor, &model, chunk, args.threshold),
        }?;
        for (line, (answer, raw)) in chunk.iter().zip(results) {
            if args.json {
                println!("{}", json!({"input": line.raw, "answer": answer, "outputs": raw}));
            } else {
                println!("{}\t{}", line.raw, answer);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

type Answered = anyhow::Result<Vec<(Value, Value)>>;

/// Text length the pipelines cut to.
fn pipeline_length(processor: &Processor, task: Task) -> Option<usize> {
    let t = processor.text()?;
    match task {
        Task::SentenceSimilarity => t.max_seq_length.or(t.model_max_length),
        _ => t.model_max_length,
    }
}

/// Every task but question answering: one forward pass for the chunk.
fn answer_batch(processor: &Processor, model: &TaskModel, chunk: &[Line], threshold: f32) -> Answered {
    let task = processor.task;
    let mut inputs = Vec::new();
    for l in chunk {
        match &l.input {
            LineInput::Text(a, None) => inputs.push(TaskInput::Text(a.clone())),
            LineInput::Text(a, Some(b)) => inputs.push(TaskInput::Pair(a.clone(), b.clone())),
            LineInput::Sentences(a, b) => {
                inputs.push(TaskInput::Text(a.clone()));
                inputs.push(TaskInput::Text(b.clone()));
            }
            LineInput::Image(p) => {
                let bytes = std::fs::read(p).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
                // Named by its file here: the processor only knows its place in the batch.
                energy_star_tasks::pixels::Rgb::decode(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", p.display()))?;
                inputs.push(TaskInput::Image(bytes));
            }
            LineInput::Question { .. } => unreachable_question()?,
        }
    }
    let options = PrepareOptions {
        truncation: true,
        pad_group: Some(inputs.len()),
        max_length: pipeline_length(processor, task),
    };
    let prepared = processor.prepare(&inputs, options, 0)?;
    let originals: Vec<(usize, usize)> = match &prepared {
        Prepared::Images(imgs) => imgs.iter().map(|i| i.original).collect(),
        Prepared::Text(_) => Vec::new(),
    };
    Ok(match model.forward(&prepared, 0..prepared.len())? {
        Outputs::Logits(rows) => rows
            .into_iter()
            .map(|l| {
                let answer = match task {
                    Task::ImageClassification => answers::top_labels(&l, &model.labels, 5),
                    _ => answers::classification(&l, &model.labels),
                };
                (answer, json!({"logits": l}))
            })
            .collect(),
        Outputs::Embeddings(e) => e
            .chunks(2)
            .map(|pair| {
                let sim = answers::cosine(&pair[0], &pair[1]);
                (json!({"similarity": sim}), json!({"embedding_1": pair[0], "embedding_2": pair[1]}))
            })
            .collect(),
        Outputs::Detections { logits, boxes } => logits
            .iter()
            .zip(&boxes)
            .zip(&originals)
            .map(|((l, b), size)| {
                (answers::detections(l, b, &model.labels, *size, threshold), json!({"logits": l, "pred_boxes": b}))
            })
            .collect(),
        Outputs::Span { .. } => unreachable_question()?,
    })
}

fn unreachable_question<T>() -> anyhow::Result<T> {
    anyhow::bail!("question answering runs through its own windows")
}

/// The question-answering pipeline: the pair in overlapping windows, each window's forward pass,
/// the answer over all of them.
fn answer_question(processor: &Processor, model: &TaskModel, line: &Line) -> anyhow::Result<(Value, Value)> {
    let LineInput::Question { question, context } = &line.input else { return unreachable_question() };
    let t = processor.text().ok_or_else(|| anyhow::anyhow!("question answering needs a tokenizer"))?;
    // transformers 4's defaults: max_seq_len min(model_max_length, 384), doc_stride min(half, 128).
    let max_seq = t.model_max_length.unwrap_or(384).min(384);
    let stride = (max_seq / 2).min(128);
    let windows = t.windows(question, context, max_seq, stride)?;
    let mut logits = Vec::with_capacity(windows.len());
    for w in &windows {
        let Outputs::Span { start, end } = model.forward(&Prepared::Text(vec![w.clone()]), 0..1)? else {
            anyhow::bail!("the model gave no span logits")
        };
        logits.push((start[0].clone(), end[0].clone()));
    }
    let answer = answers::extractive_answer(&windows, &logits, context);
    let raw = json!({
        "windows": windows.len(),
        "start_logits": logits.iter().map(|(s, _)| s).collect::<Vec<_>>(),
        "end_logits": logits.iter().map(|(_, e)| e).collect::<Vec<_>>(),
    });
    Ok((answer, raw))
}
