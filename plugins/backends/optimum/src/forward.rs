//! The energy_star scenario's non-generative tasks (text classification, sentence similarity,
//! question answering, image classification, object detection), as optimum-benchmark runs
//! them: the model's processor loads with the backend (not metered); `load_dataset`,
//! `preprocess_dataset` (rows with an empty input dropped at batch size 1, the first
//! `num_samples` kept, then tokenized or image-processed, padded per 1000-row `datasets.map`
//! batch: texts when the batch size is above 1, DETR's images always) and `load_model` (its
//! weights, or random ones for `backend.no_weights`) are metered; `warmup_runs` forward passes
//! on the first batch are not; then one metered `forward` pass over every sample in batches of
//! `batch_size`, with its volume in samples. With `scenario.iterations` > 1 the forward pass
//! repeats; the phase reports the mean and its `measures`.

use energy_star_backend_common::{Energy, Settings, efficiency, facts, phase, provenance};
use energy_star_plugin_sdk::backend::host::datasets;
use energy_star_plugin_sdk::backend::host::log;
use energy_star_plugin_sdk::backend::host::meter::WindowReading;
use energy_star_plugin_sdk::backend::host::tasks::{self, ModelSpec, PrepareOptions, ProcessorSpec, Task, TaskColumns};
use energy_star_plugin_sdk::backend::host::types::Error;
use energy_star_plugin_sdk::backend::{RequestCounts, RunFacts};
use serde_json::{Value, json};

use super::{Stop, note_warnings, step};

/// optimum-benchmark tokenizes and pads with `datasets.map`, 1000 rows a batch.
const MAP_BATCH_ROWS: u32 = 1000;

/// What one forward pass over every batch did.
#[derive(Debug, Clone, Copy, Default)]
struct Pass {
    rows: u64,
    engine_s: f64,
}

/// Everything measured so far.
#[derive(Default)]
pub(crate) struct Measured {
    load_dataset: Option<WindowReading>,
    preprocess: Option<WindowReading>,
    load_model: Option<WindowReading>,
    samples: u64,
    tokens: Option<u64>,
    model: Option<tasks::ModelInfo>,
    forwards: Vec<(WindowReading, Pass)>,
}

impl Measured {
    pub(crate) fn started(&self) -> bool {
        self.load_dataset.is_some()
    }
}

fn is_vision(task: Task) -> bool {
    matches!(task, Task::ImageClassification | Task::ObjectDetection)
}

fn task_of(name: &str) -> Option<Task> {
    Some(match name {
        "text-classification" => Task::TextClassification,
        "sentence-similarity" => Task::SentenceSimilarity,
        "question-answering" => Task::QuestionAnswering,
        "image-classification" => Task::ImageClassification,
        "object-detection" => Task::ObjectDetection,
        _ => return None,
    })
}

/// The columns the task reads, as the processor takes them and as a list.
fn columns(task: Task, s: &Settings) -> (TaskColumns, Vec<String>) {
    let c = &s.columns;
    match task {
        Task::TextClassification => (TaskColumns::Text(s.column.clone()), vec![s.column.clone()]),
        Task::SentenceSimilarity => (
            TaskColumns::Pair((c.sentence1.clone(), c.sentence2.clone())),
            vec![c.sentence1.clone(), c.sentence2.clone()],
        ),
        Task::QuestionAnswering => {
            (TaskColumns::Pair((c.question.clone(), c.context.clone())), vec![c.question.clone(), c.context.clone()])
        }
        Task::ImageClassification | Task::ObjectDetection => {
            (TaskColumns::Image(c.image.clone()), vec![c.image.clone()])
        }
    }
}

/// One forward pass over the prepared rows in batches.
fn pass(model: &tasks::Model, prepared: &tasks::Prepared, batch: u32, label: &str) -> Result<Pass, Error> {
    let total = prepared.len();
    let mut out = Pass::default();
    let mut ns = 0u64;
    log::progress(label, 0, Some(u64::from(total)), "samples");
    let mut first = 0;
    while first < total {
        let count = batch.min(total - first);
        let r = model.forward(prepared, first, count)?;
        ns += r.forward_ns;
        out.rows += u64::from(r.rows);
        first += count;
        log::progress(label, u64::from(first), Some(u64::from(total)), "samples");
    }
    out.engine_s = ns as f64 / 1e9;
    Ok(out)
}

/// Runs the phases, recording each into `m` as it finishes.
pub(crate) fn work(s: &Settings, m: &mut Measured) -> Result<(), Stop> {
    let setup = |reason: String| Stop { phase: "setup".into(), reading: None, reason };
    let task = task_of(&s.task).ok_or_else(|| setup(format!("backend.task={} is not a forward task", s.task)))?;
    let (cols, names) = columns(task, s);
    // optimum-benchmark's backend loads the processor with its config, before any phase.
    let processor =
        tasks::open_processor(&ProcessorSpec { model: s.model.clone(), processor: s.processor.clone(), task })
            .map_err(|e| Stop::new("setup", None, &e))?;
    let (table, w) = step("load_dataset", || {
        datasets::open_table(&datasets::DatasetSpec {
            name: s.dataset.clone(),
            config: Some(s.dataset_config.clone()).filter(|c| !c.is_empty()),
            split: Some(s.split.clone()),
            columns: names.clone(),
            num_samples: None,
        })
    })?;
    m.load_dataset = Some(w);
    let (prepared, w) = step("preprocess_dataset", || {
        let mut rows: Vec<u32> =
            if s.batch_size == 1 { table.non_empty_rows(&names)? } else { (0..table.len()).collect() };
        if let Some(n) = s.num_samples {
            if rows.len() < n as usize {
                return Err(Error::Invalid(format!(
                    "dataset {} has {} usable rows; scenario.num_samples asks for {n}",
                    s.dataset,
                    rows.len()
                )));
            }
            rows.truncate(n as usize);
        }
        if rows.is_empty() {
            return Err(Error::Invalid(format!("dataset {} has no rows with {}", s.dataset, names.join(", "))));
        }
        // Tokenizers pad only when asked (batch size above 1); an image processor that pads
        // (DETR's) pads every `map` batch whatever the batch size.
        let pad = s.batch_size != 1 || is_vision(task);
        let options = PrepareOptions { truncation: s.truncation, pad_group: pad.then_some(MAP_BATCH_ROWS) };
        processor.prepare(&table, &cols, &rows, options)
    })?;
    m.preprocess = Some(w);
    m.samples = u64::from(prepared.len());
    m.tokens = prepared.tokens();
    let device = s.engine_device();
    let dtype = s.engine_dtype().map_err(|e| setup(e.message))?;
    let spec =
        ModelSpec { model: s.model.clone(), device, dtype, task, random_weights: s.no_weights.then_some(s.seed) };
    let (model, w) = step("load_model", || tasks::open_model(&spec))?;
    m.load_model = Some(w);
    m.model = Some(model.describe());
    // Warmup, not metered: warmup_runs forward passes on the first batch.
    let first = s.batch_size.min(prepared.len());
    for _ in 0..s.warmup_runs {
        model.forward(&prepared, 0, first).map_err(|e| Stop::new("warmup", None, &e))?;
    }
    for it in 0..s.iterations {
        let suffix = if s.iterations > 1 { format!("_{it}") } else { String::new() };
        let (p, w) = step(&format!("forward{suffix}"), || pass(&model, &prepared, s.batch_size, "forward"))?;
        m.forwards.push((w, p));
    }
    Ok(())
}

/// The report's phases and the facts, from what was measured.
pub(crate) fn build(
    s: &Settings,
    m: &Measured,
    stop: Option<&Stop>,
) -> (serde_json::Map<String, Value>, RunFacts, Value) {
    let gpu_used = s.gpu_used();
    let mut facts = facts::empty(s.gpus());
    let mut report = serde_json::Map::new();
    let mut warnings: Vec<String> = Vec::new();
    let n = m.samples;
    let mut simple = |name: &str, w: &Option<WindowReading>, volume: Option<u64>| {
        if let Some(w) = w {
            note_warnings(&mut warnings, w);
            let e = Energy::of(w, gpu_used);
            let eff = volume.map(|v| efficiency(v as f64, "samples/kWh", &e));
            report.insert(name.into(), phase(Some(&e), eff, None, Some(provenance(&[w]))));
            facts.phases.push(facts::measured(name, &[w], volume.map(|v| facts::volume(v, "samples")), true));
        }
    };
    simple("load_dataset", &m.load_dataset, None);
    simple("preprocess_dataset", &m.preprocess, Some(n));
    simple("load_model", &m.load_model, None);
    let windows: Vec<&WindowReading> = m.forwards.iter().map(|(w, _)| w).collect();
    if !windows.is_empty() {
        let each: Vec<Energy> = windows.iter().map(|w| Energy::of(w, gpu_used)).collect();
        for w in &windows {
            note_warnings(&mut warnings, w);
        }
        let mean = Energy::mean(&each);
        let measures = (s.iterations > 1).then(|| each.clone());
        report.insert(
            "forward".into(),
            phase(Some(&mean), Some(efficiency(n as f64, "samples/kWh", &mean)), measures, Some(provenance(&windows))),
        );
        facts.phases.push(facts::measured("forward", &windows, Some(facts::volume(n, "samples")), true));
        facts.requests = Some(RequestCounts { total: n, succeeded: n, failed: 0, not_sent: 0 });
        facts.workload_ns = windows.last().map(|w| w.end_ns.saturating_sub(w.start_ns));
    }
    if let Some(st) = stop {
        if let Some(w) = &st.reading {
            facts.phases.push(facts::measured(&st.phase, &[w], None, false));
        }
        facts.incomplete_reasons.push(st.reason.clone());
    }
    let random = m.model.as_ref().and_then(|i| i.random_weights);
    if random.is_some() {
        warnings.push(format!(
            "backend.no_weights: the model's weights are random (seed {}), made from its config.json; its energy is the architecture's, its answers meaningless",
            s.seed
        ));
    }
    facts.warnings = warnings.clone();
    let block = json!({
        "backend": "optimum",
        "scenario": "energy_star",
        "task": s.task,
        "model": s.model,
        "architecture": m.model.as_ref().map(|i| i.architecture.clone()),
        "labels": m.model.as_ref().map(|i| i.labels.len()),
        "random_weights": random.map(|seed| json!({"seed": seed, "distribution": "normal(0, 0.02) for weights and embeddings, 1 for norm weights and running variances, 0 for biases and running means (crates/tasks/src/random.rs)"})),
        "engine": m.model.as_ref().map(|i| i.notes.clone()),
        "device": s.device,
        "num_samples": n,
        "batch_size": s.batch_size,
        "input_tokens": m.tokens,
        "iterations": s.iterations,
        "timings": m.forwards.iter().map(|(_, p)| json!({"forward": {"engine_s": p.engine_s, "rows": p.rows}})).collect::<Vec<_>>(),
        "complete": stop.is_none(),
        "interrupted_phase": stop.map(|st| json!({"phase": st.phase, "reason": st.reason, "flags": ["interrupted"]})),
        "notes": s.notes,
        "warnings": warnings,
    });
    (report, facts, block)
}
