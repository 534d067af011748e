//! Backend `optimum`: optimum-benchmark's `energy_star` scenario for text generation and the
//! non-generative tasks (`forward`), on the host's local engine and meter, written in
//! optimum-benchmark's `main` report shape.
//!
//! Phases, as optimum-benchmark runs them: `load_dataset`, `preprocess_dataset` and
//! `load_model` are metered; a warmup (one full generate on the first batch, then
//! `warmup_runs` generates of 2 tokens) is not; then a prefill pass over every sample (1 new
//! token) and a generate pass (the full `generate_kwargs`) are metered, and decode = generate −
//! prefill, component by component. A decode that comes out negative is kept and flagged.
//! With `scenario.iterations` > 1 the two passes repeat; each phase reports the mean and its
//! `measures`. Efficiency is volume per kWh of total energy, as optimum computes it.
//!
//! A run stopped part-way (Ctrl-C, a failure after the first phase) still reports: the phases
//! finished, the one that was cut short with its energy up to then (in `energy_star`, never as
//! a phase of its own), marked incomplete.
//!
//! With `scenario.reasoning`, preprocessing renders each row as one user message through the
//! model's own chat template, with the generation prompt, `enable_thinking=True` and
//! `scenario.reasoning_params` as the template's keyword arguments, truncated to
//! min(context, 2048) − max_new_tokens tokens, as optimum-benchmark's energy_star
//! preprocessing does; the passes then generate from those token ids. The host records the
//! template (its hash and where it was found) and the kwargs in the run record.
//!
//! One difference: the model is loaded before the dataset is tokenized (optimum loads a
//! separate tokenizer first); the report keeps optimum's key order.

mod forward;

use energy_star_backend_common::{
    Energy, FORWARD_TASKS, Reader, Settings, TokenRule, derived_provenance, efficiency, facts, phase, provenance,
};
use energy_star_plugin_sdk::backend::host::inference::{
    self, BatchOutcome, ChatMessage, GenerationParams, LocalEngine, LocalEngineSpec,
};
use energy_star_plugin_sdk::backend::host::meter::WindowReading;
use energy_star_plugin_sdk::backend::host::types::Error;
use energy_star_plugin_sdk::backend::host::{datasets, log, machine, meter, results};
use energy_star_plugin_sdk::backend::{
    self as sdk, BackendInfo, ConfigError, Guest, PrepareRequest, RunFacts, RunOutput, RunPlan, RunRequest, TokenCounts,
};
use serde_json::{Map, Value, json};

struct Optimum;

const READER: Reader<'static> = Reader {
    backend: "optimum",
    tokens: TokenRule::Equal { default: 100 },
    reasoning: true,
    loads_weights: true,
    repeats: true,
    forward_tasks: true,
};

/// optimum-benchmark's cap on a reasoning prompt's length plus its new tokens.
const REASONING_MAX_LENGTH: u32 = 2048;

fn settings(config_json: &str) -> Result<(Value, Settings), ConfigError> {
    let cfg: Value = serde_json::from_str(config_json)
        .map_err(|e| ConfigError { key: None, message: format!("config is not JSON: {e}") })?;
    let s = Settings::read(&cfg, READER)?;
    Ok((cfg, s))
}

fn params(max: u32, min: u32, s: &Settings) -> GenerationParams {
    GenerationParams {
        max_new_tokens: max,
        min_new_tokens: min,
        ignore_eos: false,
        do_sample: s.do_sample,
        temperature: s.temperature,
        top_p: s.top_p,
        seed: Some(s.seed),
        truncate: s.truncation,
    }
}

/// What one pass over every batch processed.
#[derive(Debug, Clone, Copy, Default)]
struct Pass {
    input_tokens: u64,
    new_tokens: u64,
    engine_s: f64,
}

/// The preprocessed samples in batches: text the engine tokenizes, or token ids a chat
/// template gave.
enum Batches {
    Text(Vec<Vec<String>>),
    Ids(Vec<Vec<Vec<u32>>>),
}

impl Batches {
    fn len(&self) -> usize {
        match self {
            Batches::Text(b) => b.len(),
            Batches::Ids(b) => b.len(),
        }
    }

    fn samples(&self, i: usize) -> usize {
        match self {
            Batches::Text(b) => b[i].len(),
            Batches::Ids(b) => b[i].len(),
        }
    }

    fn generate(&self, engine: &LocalEngine, i: usize, p: GenerationParams) -> Result<BatchOutcome, Error> {
        match self {
            Batches::Text(b) => engine.generate_batch(&b[i], p),
            Batches::Ids(b) => engine.generate_batch_ids(&b[i], p),
        }
    }
}

/// Preprocesses `prompts` as optimum-benchmark does: plain tokenization, or with
/// `scenario.reasoning` the model's chat template. Returns the batches and the input tokens.
fn preprocess(engine: &LocalEngine, prompts: &[String], s: &Settings) -> Result<(Batches, u64), Error> {
    let size = s.batch_size as usize;
    if !s.reasoning {
        let mut tokens = 0u64;
        for p in prompts {
            tokens += engine.tokenize(p, true)?.len() as u64;
        }
        return Ok((Batches::Text(prompts.chunks(size).map(<[String]>::to_vec).collect()), tokens));
    }
    let mut kwargs = s.reasoning_params.clone();
    kwargs.insert("enable_thinking".into(), Value::Bool(true));
    let kwargs_json = Value::Object(kwargs).to_string();
    let context = engine.describe().max_context_tokens.unwrap_or(512);
    let limit = context.min(REASONING_MAX_LENGTH).saturating_sub(s.max_new_tokens) as usize;
    if s.truncation && limit == 0 {
        // optimum-benchmark would ask its tokenizer for a negative length here.
        log::log(
            log::Level::Warn,
            &format!(
                "max_new_tokens {} leaves no room under optimum-benchmark's reasoning length of min(context, {REASONING_MAX_LENGTH}): prompts are not truncated",
                s.max_new_tokens
            ),
        );
    }
    let mut ids = Vec::with_capacity(prompts.len());
    let mut warned = false;
    for p in prompts {
        let chat =
            engine.apply_chat_template(&[ChatMessage { role: "user".into(), content: p.clone() }], &kwargs_json)?;
        if !warned && !chat.unused_kwargs.is_empty() {
            log::log(
                log::Level::Warn,
                &format!(
                    "the chat template ({}) never reads {}: scenario.reasoning_params may not apply to this model",
                    chat.template_origin,
                    chat.unused_kwargs.join(", ")
                ),
            );
            warned = true;
        }
        let mut input_ids = chat.input_ids;
        if s.truncation && limit > 0 {
            input_ids.truncate(limit);
        }
        ids.push(input_ids);
    }
    let tokens = ids.iter().map(|i| i.len() as u64).sum();
    Ok((Batches::Ids(ids.chunks(size).map(<[Vec<u32>]>::to_vec).collect()), tokens))
}

/// One pass over every batch.
fn pass(engine: &LocalEngine, batches: &Batches, p: GenerationParams, label: &str) -> Result<Pass, Error> {
    let total: u64 = (0..batches.len()).map(|i| batches.samples(i) as u64).sum();
    let mut out = Pass::default();
    let mut done = 0u64;
    log::progress(label, 0, Some(total), "samples");
    let mut ns = 0u64;
    for i in 0..batches.len() {
        let r = batches.generate(engine, i, p)?;
        ns += r.prefill_ns + r.decode_step_ns.iter().sum::<u64>();
        for req in &r.requests {
            out.input_tokens += u64::from(req.input_tokens);
            out.new_tokens += u64::from(req.output_tokens);
        }
        done += batches.samples(i) as u64;
        log::progress(label, done, Some(total), "samples");
    }
    out.engine_s = ns as f64 / 1e9;
    Ok(out)
}

/// Why the run stopped before its end, and the phase it stopped in (with what that phase's
/// window read up to then).
struct Stop {
    phase: String,
    reading: Option<WindowReading>,
    reason: String,
}

impl Stop {
    fn new(phase: &str, reading: Option<WindowReading>, e: &Error) -> Self {
        let reason = if sdk::is_interrupted(e) {
            format!("interrupted by the user (Ctrl-C) during {phase}")
        } else {
            format!("{phase} failed: {}", sdk::describe(e))
        };
        Self { phase: phase.to_string(), reading, reason }
    }
}

/// Everything measured so far; the report and the facts are built from it however the run
/// ended.
#[derive(Default)]
struct Measured {
    load_dataset: Option<WindowReading>,
    load_model: Option<WindowReading>,
    preprocess: Option<WindowReading>,
    samples: u64,
    input_tokens: u64,
    engine_notes: Vec<String>,
    prefills: Vec<(WindowReading, Pass)>,
    generates: Vec<(WindowReading, Pass)>,
}

/// A metered step: its result, or where the run stopped.
fn step<T>(name: &str, f: impl FnOnce() -> Result<T, Error>) -> Result<(T, WindowReading), Stop> {
    // Announced once its window is open: from this line on, a Ctrl-C cuts this phase short
    // and its energy up to then is kept.
    let m = sdk::metered(name, || {
        log::log(log::Level::Info, &format!("phase {name}"));
        f()
    })
    .map_err(|e| Stop::new(name, None, &e))?;
    match m.result {
        Ok(v) => Ok((v, m.reading)),
        Err(e) => Err(Stop::new(name, Some(m.reading), &e)),
    }
}

/// Runs the scenario's phases, recording each into `m` as it finishes.
fn work(s: &Settings, m: &mut Measured) -> Result<(), Stop> {
    let (rows, w) = step("load_dataset", || {
        datasets::load(&datasets::DatasetSpec {
            name: s.dataset.clone(),
            config: Some(s.dataset_config.clone()).filter(|c| !c.is_empty()),
            split: Some(s.split.clone()),
            columns: vec![s.column.clone()],
            num_samples: None,
        })
    })?;
    m.load_dataset = Some(w);
    let device = s.engine_device();
    let dtype = s.engine_dtype().map_err(|e| Stop { phase: "load_model".into(), reading: None, reason: e.message })?;
    let (engine, w) = step("load_model", || {
        inference::open_local_engine(&LocalEngineSpec {
            model: s.model.clone(),
            device,
            dtype,
            processor: s.processor.clone(),
        })
    })?;
    m.load_model = Some(w);
    m.engine_notes = engine.describe().notes;

    // preprocess_dataset: prefix, drop empty rows when batches are single prompts (as
    // optimum does), select num_samples, tokenize.
    let mut prompts: Vec<String> =
        rows.rows.iter().map(|r| format!("{}{}", s.prefix, r.first().cloned().unwrap_or_default())).collect();
    if s.batch_size == 1 {
        prompts.retain(|p| !p.trim().is_empty());
    }
    if let Some(n) = s.num_samples {
        if prompts.len() < n as usize {
            return Err(Stop {
                phase: "preprocess_dataset".into(),
                reading: None,
                reason: format!(
                    "dataset {} has {} usable rows; scenario.num_samples asks for {n}",
                    s.dataset,
                    prompts.len()
                ),
            });
        }
        prompts.truncate(n as usize);
    }
    if prompts.is_empty() {
        return Err(Stop {
            phase: "preprocess_dataset".into(),
            reading: None,
            reason: format!("dataset {} has no prompts in column {}", s.dataset, s.column),
        });
    }
    let ((batches, tokens), w) = step("preprocess_dataset", || preprocess(&engine, &prompts, s))?;
    m.preprocess = Some(w);
    m.input_tokens = tokens;
    m.samples = prompts.len() as u64;

    // Warmup, not metered: one full generate on the first batch, then warmup_runs of 2 tokens.
    let unmetered = |e: Error| Stop::new("warmup", None, &e);
    let first = match &batches {
        Batches::Text(b) => Batches::Text(vec![b[0].clone()]),
        Batches::Ids(b) => Batches::Ids(vec![b[0].clone()]),
    };
    pass(&engine, &first, params(s.max_new_tokens, s.min_new_tokens, s), "warmup").map_err(unmetered)?;
    for _ in 0..s.warmup_runs {
        first.generate(&engine, 0, params(2, 2, s)).map_err(unmetered)?;
    }

    for it in 0..s.iterations {
        let suffix = if s.iterations > 1 { format!("_{it}") } else { String::new() };
        let (p, w) = step(&format!("prefill{suffix}"), || pass(&engine, &batches, params(1, 1, s), "prefill"))?;
        m.prefills.push((w, p));
        let full = params(s.max_new_tokens, s.min_new_tokens, s);
        let (g, w) = step(&format!("generate{suffix}"), || pass(&engine, &batches, full, "generate"))?;
        m.generates.push((w, g));
    }
    Ok(())
}

/// Adds a window's notes to the run's warnings, once each.
fn note_warnings(warnings: &mut Vec<String>, w: &WindowReading) {
    for msg in &w.warnings {
        if !warnings.contains(msg) {
            warnings.push(msg.clone());
        }
    }
}

/// The report and the facts, from what was measured.
fn build(s: &Settings, m: &Measured, stop: Option<&Stop>) -> (Value, RunFacts) {
    let gpu_used = s.gpu_used();
    let mut facts = facts::empty(s.gpus());
    let mut report = serde_json::Map::new();
    let mut warnings: Vec<String> = Vec::new();
    let n = m.samples;
    if let Some(w) = &m.load_dataset {
        note_warnings(&mut warnings, w);
        report.insert("load_dataset".into(), phase(Some(&Energy::of(w, gpu_used)), None, None, Some(provenance(&[w]))));
        facts.phases.push(facts::measured("load_dataset", &[w], None, true));
    }
    if let Some(w) = &m.preprocess {
        note_warnings(&mut warnings, w);
        let e = Energy::of(w, gpu_used);
        let eff = efficiency(n as f64, "samples/kWh", &e);
        report.insert("preprocess_dataset".into(), phase(Some(&e), Some(eff), None, Some(provenance(&[w]))));
        facts.phases.push(facts::measured("preprocess_dataset", &[w], Some(facts::volume(n, "samples")), true));
    }
    if let Some(w) = &m.load_model {
        note_warnings(&mut warnings, w);
        report.insert("load_model".into(), phase(Some(&Energy::of(w, gpu_used)), None, None, Some(provenance(&[w]))));
        facts.phases.push(facts::measured("load_model", &[w], None, true));
    }
    // Iterations count where their windows finished: prefill over every finished prefill,
    // decode over the iterations whose generate finished too.
    let prefills: Vec<&WindowReading> = m.prefills.iter().map(|(w, _)| w).collect();
    let generates: Vec<&WindowReading> = m.generates.iter().map(|(w, _)| w).collect();
    let measures = |v: &[Energy]| if s.iterations > 1 { Some(v.to_vec()) } else { None };
    if !prefills.is_empty() {
        let e_prefill: Vec<Energy> = prefills.iter().map(|w| Energy::of(w, gpu_used)).collect();
        let prefill = Energy::mean(&e_prefill);
        for w in &prefills {
            note_warnings(&mut warnings, w);
        }
        report.insert(
            "prefill".into(),
            phase(
                Some(&prefill),
                Some(efficiency(n as f64, "samples/kWh", &prefill)),
                measures(&e_prefill),
                Some(provenance(&prefills)),
            ),
        );
        facts.phases.push(facts::measured("prefill", &prefills, Some(facts::volume(n, "samples")), true));
    }
    if !generates.is_empty() {
        let e_decode: Vec<Energy> = generates
            .iter()
            .zip(&prefills)
            .map(|(g, p)| Energy::of(g, gpu_used).minus(&Energy::of(p, gpu_used)))
            .collect();
        let decode = Energy::mean(&e_decode);
        for (i, d) in e_decode.iter().enumerate() {
            for (dev, v) in [("gpu", d.gpu_kwh), ("cpu", d.cpu_kwh), ("ram", d.ram_kwh)] {
                if v.is_some_and(|v| v < 0.0) {
                    warnings.push(format!(
                        "decode {dev} energy of iteration {i} is negative (generate read less than prefill): kept as measured, not hidden"
                    ));
                }
            }
        }
        for w in &generates {
            note_warnings(&mut warnings, w);
        }
        let decode_tokens = n * u64::from(s.max_new_tokens.saturating_sub(1));
        let paired: Vec<&WindowReading> =
            prefills.iter().take(generates.len()).chain(generates.iter()).copied().collect();
        report.insert(
            "decode".into(),
            phase(
                Some(&decode),
                Some(efficiency(decode_tokens as f64, "tokens/kWh", &decode)),
                measures(&e_decode),
                Some(derived_provenance("generate - prefill", &paired, &e_decode)),
            ),
        );
        facts.phases.push(facts::derived(
            "decode",
            &paired,
            "generate − prefill, component by component, per iteration (optimum-benchmark's definition), then the mean",
            Some(facts::volume(decode_tokens, "tokens")),
        ));
        let new_tokens = m.generates.last().map(|(_, g)| g.new_tokens).unwrap_or(0);
        facts.tokens = Some(TokenCounts {
            input: m.input_tokens,
            output: new_tokens,
            source: energy_star_plugin_sdk::backend::host::types::TokenCountSource::Engine,
        });
        facts.requests =
            Some(energy_star_plugin_sdk::backend::RequestCounts { total: n, succeeded: n, failed: 0, not_sent: 0 });
        facts.workload_ns = generates.last().map(|w| w.end_ns.saturating_sub(w.start_ns));
    }
    let interrupted = stop.map(|st| {
        let reading = st.reading.as_ref();
        if let Some(w) = reading {
            facts.phases.push(facts::measured(&st.phase, &[w], None, false));
        }
        facts.incomplete_reasons.push(st.reason.clone());
        json!({
            "phase": st.phase,
            "reason": st.reason,
            "flags": ["interrupted"],
            "energy": reading.map(|w| Energy::of(w, gpu_used).to_json()),
            "duration_s": reading.map(sdk::duration_s),
            "provenance": reading.map(|w| provenance(&[w])),
            "note": "the phase was cut short: its energy covers only part of its work and is not counted as a phase",
        })
    });
    let timings: Vec<Value> = m
        .prefills
        .iter()
        .zip(m.generates.iter().map(Some).chain(std::iter::repeat(None)))
        .map(|((_, p), g)| {
            json!({
                "prefill": {"engine_s": p.engine_s, "input_tokens": p.input_tokens, "new_tokens": p.new_tokens},
                "generate": g.map(|(_, g)| json!({"engine_s": g.engine_s, "input_tokens": g.input_tokens, "new_tokens": g.new_tokens})),
            })
        })
        .collect();
    facts.warnings = warnings.clone();
    report.insert(
        "energy_star".into(),
        json!({
            "backend": "optimum",
            "scenario": "energy_star",
            "model": s.model,
            "engine": m.engine_notes,
            "device": s.device,
            "num_samples": n,
            "batch_size": s.batch_size,
            "input_tokens": m.input_tokens,
            "new_tokens_per_sample": s.max_new_tokens,
            "iterations": s.iterations,
            "timings": timings,
            "decode_is": "generate - prefill, component by component (optimum-benchmark's definition)",
            "complete": stop.is_none(),
            "interrupted_phase": interrupted,
            "notes": s.notes,
            "warnings": warnings,
        }),
    );
    (Value::Object(report), facts)
}

/// optimum-benchmark's `benchmark_config.json`: the config as run, and the machine.
fn benchmark_config(s: &Settings, cfg: &Value, engine_notes: &[String]) -> Value {
    // optimum-benchmark's EnergyStarConfig has no `iterations` (energy-star's repeat count);
    // it is kept in energy-star's own file.
    let mut scenario = cfg.get("scenario").cloned().unwrap_or(Value::Null);
    if let Value::Object(sc) = &mut scenario {
        sc.remove("iterations");
    }
    json!({
        "name": s.name,
        "backend": cfg.get("backend"),
        "scenario": scenario,
        "launcher": cfg.get("launcher"),
        "environment": environment(engine_notes, &s.model),
        "print_report": cfg.get("print_report"),
        "log_report": cfg.get("log_report"),
    })
}

/// optimum-benchmark's `environment`: the machine keys as upstream writes them on the same
/// machine (from the host's description), the Python packages' keys null (energy-star runs none
/// of them), then energy-star's own version and engine (docs/formats.md).
fn environment(engine: &[String], model: &str) -> Value {
    let m = machine::describe();
    let mut env = Map::new();
    // Upstream strips `/proc/cpuinfo`'s line up to the colon and keeps the space after it.
    env.insert("cpu".into(), json!(m.cpu_model.as_ref().map(|c| format!(" {c}"))));
    env.insert("cpu_count".into(), json!(m.cpu_count));
    // psutil's total / 1e6: megabytes.
    env.insert("cpu_ram_mb".into(), json!(m.ram_bytes.map(|b| b as f64 / 1e6)));
    env.insert("system".into(), json!(m.system));
    env.insert("machine".into(), json!(m.machine));
    env.insert("platform".into(), json!(m.platform));
    env.insert("processor".into(), json!(m.processor));
    env.insert("python_version".into(), Value::Null);
    // Upstream writes the GPU keys only on a machine with GPUs; its `gpu_vram_mb` holds the
    // GPUs' memory together in bytes, whatever the name says.
    if !m.gpus.is_empty() {
        env.insert("gpu".into(), json!(m.gpus.iter().map(|g| g.name.as_str()).collect::<Vec<_>>()));
        env.insert("gpu_count".into(), json!(m.gpus.len()));
        let vram: Option<u64> = m.gpus.iter().map(|g| g.memory_bytes).sum();
        env.insert("gpu_vram_mb".into(), json!(vram));
    }
    let rest = json!({
        "optimum_benchmark_version": null,
        "optimum_benchmark_commit": null,
        "transformers_version": null,
        "transformers_commit": null,
        "accelerate_version": null,
        "accelerate_commit": null,
        "diffusers_version": null,
        "diffusers_commit": null,
        "optimum_version": null,
        "optimum_commit": null,
        "timm_version": null,
        "timm_commit": null,
        "peft_version": null,
        "peft_commit": null,
        "energy_star_version": env!("CARGO_PKG_VERSION"),
        "energy_star_backend": "optimum",
        "energy_star_engine": engine,
        "energy_star_model": model,
    });
    if let Value::Object(rest) = rest {
        env.extend(rest);
    }
    Value::Object(env)
}

impl Guest for Optimum {
    fn info() -> BackendInfo {
        BackendInfo {
            name: "optimum".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "optimum-benchmark's energy_star scenario (load, prefill, generate; decode = generate - prefill; or one forward pass for the non-generative tasks) on the host's local engine; optimum report".into(),
            report_format: "optimum".into(),
            required_settings: Vec::new(),
        }
    }

    fn prepare(req: PrepareRequest) -> Result<RunPlan, ConfigError> {
        let (_, s) = settings(&req.config_json)?;
        s.engine_dtype()?;
        if s.reasoning && FORWARD_TASKS.contains(&s.task.as_str()) {
            return Err(energy_star_backend_common::refuse(
                "scenario.reasoning",
                format!("scenario.reasoning applies to text generation, not backend.task={}", s.task),
            ));
        }
        Ok(RunPlan {
            models: std::iter::once(s.model.clone()).chain(s.processor.clone()).collect(),
            datasets: vec![s.dataset.clone()],
            endpoints: Vec::new(),
            gpus: s.gpus(),
            report_format: "optimum".into(),
            notes: s.notes.clone(),
        })
    }

    fn run(req: RunRequest) -> Result<RunOutput, String> {
        let (cfg, s) = settings(&req.config_json).map_err(|e| e.message)?;
        for n in &s.notes {
            log::log(log::Level::Info, n);
        }
        log::log(log::Level::Info, &format!("model {} on {} ({}), dataset {}", s.model, s.device, s.dtype, s.dataset));
        if let Err(e) = meter::devices() {
            log::log(log::Level::Warn, &format!("energy meter: {}", sdk::describe(&e)));
        }
        let (report, config, mut facts) = if FORWARD_TASKS.contains(&s.task.as_str()) {
            let mut m = forward::Measured::default();
            let stop = forward::work(&s, &mut m).err();
            if let Some(st) = &stop {
                log::log(log::Level::Warn, &st.reason);
                // Nothing finished: there is nothing to report, only the failure.
                if !m.started() {
                    return Err(st.reason.clone());
                }
            }
            let (mut phases, facts, block) = forward::build(&s, &m, stop.as_ref());
            let notes: Vec<String> = block["engine"]
                .as_array()
                .map(|a| a.iter().filter_map(|n| n.as_str().map(str::to_string)).collect())
                .unwrap_or_default();
            phases.insert("energy_star".into(), block);
            (Value::Object(phases), benchmark_config(&s, &cfg, &notes), facts)
        } else {
            let mut m = Measured::default();
            let stop = work(&s, &mut m).err();
            if let Some(st) = &stop {
                log::log(log::Level::Warn, &st.reason);
                // Nothing finished: there is nothing to report, only the failure.
                if m.load_dataset.is_none() {
                    return Err(st.reason.clone());
                }
            }
            let (report, facts) = build(&s, &m, stop.as_ref());
            (report, benchmark_config(&s, &cfg, &m.engine_notes), facts)
        };
        // Upstream's files carry upstream's keys only; energy-star's additions go beside them.
        let (report, mut additions) = energy_star_backend_common::split_additions(report);
        if let Some(why) = energy_star_backend_common::unmetered_gpu_reason(&report) {
            facts.incomplete_reasons.push(why);
        }
        additions["run"]["iterations"] = json!(s.iterations);
        energy_star_backend_common::write_additions(&additions, &mut facts.warnings);
        let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
        let wrapper = json!({"config": config, "report": report});
        for (name, body) in [("benchmark_config.json", &config), ("benchmark.json", &wrapper)] {
            // A file beside the report that cannot be written is said, not fatal: the report
            // still goes back to the host.
            if let Err(e) = results::write_file(name, pretty(body).as_bytes()) {
                facts.warnings.push(format!("{name} was not written: {}", sdk::describe(&e)));
            }
        }
        Ok(RunOutput { report_json: pretty(&report), facts })
    }
}

energy_star_plugin_sdk::export_backend!(Optimum);
