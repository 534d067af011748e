//! Backend `optimum`: optimum-benchmark's `energy_star` scenario for text generation, on the
//! host's local engine and meter, written in optimum-benchmark's `main` report shape.
//!
//! Phases, as optimum-benchmark runs them: `load_dataset`, `preprocess_dataset` and
//! `load_model` are metered; a warmup (one full generate on the first batch, then
//! `warmup_runs` generates of 2 tokens) is not; then a prefill pass over every sample (1 new
//! token) and a generate pass (the full `generate_kwargs`) are metered, and decode = generate −
//! prefill, component by component. A decode that comes out negative is kept and flagged.
//! With `scenario.iterations` > 1 the two passes repeat; each phase reports the mean and its
//! `measures`. Efficiency is volume per kWh of total energy, as optimum computes it.
//!
//! One difference: the model is loaded before the dataset is tokenized (optimum loads a
//! separate tokenizer first); the report keeps optimum's key order.

wit_bindgen::generate!({
    path: "../../../wit/energy-star-plugin@0.1.0",
    world: "backend-plugin",
});

use energy_star::plugin::{datasets, inference, log, meter, results};
use energy_star_backend_common::{Energy, Settings, Window, derived_provenance, efficiency, phase, provenance};
use exports::energy_star::plugin::backend::{BackendInfo, Guest, RunOutput, RunRequest};
use serde_json::{Value, json};

struct Optimum;

energy_star_backend_common::wit_conversions!();

fn params(max: u32, min: u32, s: &Settings) -> inference::GenerationParams {
    inference::GenerationParams {
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

/// One pass over every batch; returns (prompt tokens, new tokens, seconds in the engine).
fn pass(
    engine: u64,
    batches: &[Vec<String>],
    p: &inference::GenerationParams,
    label: &str,
    total: u64,
) -> Result<(u64, u64, f64), String> {
    let (mut input, mut output, mut ns) = (0u64, 0u64, 0u64);
    let mut done = 0u64;
    log::progress(label, 0, total, "samples");
    for b in batches {
        let out = inference::generate_batch(engine, b, *p).map_err(inf_err)?;
        ns += out.prefill_ns.unwrap_or(0) + out.decode_step_ns.iter().sum::<u64>();
        for r in &out.requests {
            input += u64::from(r.input_tokens);
            output += u64::from(r.output_tokens);
        }
        done += b.len() as u64;
        log::progress(label, done, total, "samples");
    }
    Ok((input, output, ns as f64 / 1e9))
}

impl Guest for Optimum {
    fn info() -> BackendInfo {
        BackendInfo {
            name: "optimum".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "optimum-benchmark's energy_star scenario (load, prefill, generate; decode = generate - prefill) on the host's local engine; optimum report".into(),
            report_format: "optimum".into(),
            required_settings: Vec::new(),
        }
    }

    fn run(req: RunRequest) -> Result<RunOutput, String> {
        let cfg: Value = serde_json::from_str(&req.config_json).map_err(|e| format!("config is not JSON: {e}"))?;
        let s = Settings::read(&cfg, "optimum", 100)?;
        for n in &s.notes {
            log::log(log::Level::Info, n);
        }
        log::log(log::Level::Info, &format!("model {} on {} ({}), dataset {}", s.model, s.device, s.dtype, s.dataset));
        let devices = meter::devices().map_err(meter_err)?;
        let gpu_used = s.device.starts_with("cuda");

        // load_dataset: read the rows.
        let (rows, w_load_dataset) = metered("load_dataset", || {
            datasets::load(&datasets::DatasetSpec {
                name: s.dataset.clone(),
                config: s.dataset_config.clone(),
                split: s.split.clone(),
                columns: vec![s.column.clone()],
                num_samples: None,
            })
        })?;

        // load_model.
        let (engine, w_load_model) = metered("load_model", || {
            inference::open_engine(&inference::EngineSpec::Local(inference::LocalEngineSpec {
                model: s.model.clone(),
                device: s.device.clone(),
                device_ids: s.device_ids.clone(),
                dtype: s.dtype.clone(),
                processor: s.processor.clone(),
            }))
            .map_err(inf_err)
        })?;
        let info = inference::describe_engine(engine).map_err(inf_err)?;

        // preprocess_dataset: prefix, drop empty rows when batches are single prompts (as
        // optimum does), select num_samples, tokenize.
        let ((prompts, input_tokens), w_preprocess) = metered("preprocess_dataset", || {
            let mut prompts: Vec<String> =
                rows.rows.iter().map(|r| format!("{}{}", s.prefix, r.first().cloned().unwrap_or_default())).collect();
            if s.batch_size == 1 {
                prompts.retain(|p| !p.trim().is_empty());
            }
            if let Some(n) = s.num_samples {
                if prompts.len() < n as usize {
                    return Err(format!(
                        "dataset {} has {} usable rows; scenario.num_samples asks for {n}",
                        s.dataset,
                        prompts.len()
                    ));
                }
                prompts.truncate(n as usize);
            }
            let mut tokens = 0u64;
            for p in &prompts {
                tokens += inference::tokenize(engine, p, true).map_err(inf_err)?.len() as u64;
            }
            Ok((prompts, tokens))
        })?;
        if prompts.is_empty() {
            return Err(format!("dataset {} has no prompts in column {}", s.dataset, s.column));
        }
        let n = prompts.len() as u64;
        let batches: Vec<Vec<String>> = prompts.chunks(s.batch_size as usize).map(<[String]>::to_vec).collect();

        // Warmup, not metered: one full generate, then warmup_runs of 2 tokens.
        let first = vec![batches[0].clone()];
        pass(engine, &first, &params(s.max_new_tokens, s.min_new_tokens, &s), "warmup", first[0].len() as u64)?;
        for _ in 0..s.warmup_runs {
            inference::generate_batch(engine, &first[0], params(2, 2, &s)).map_err(inf_err)?;
        }

        let mut prefills = Vec::new();
        let mut generates = Vec::new();
        let mut timings = Vec::new();
        for it in 0..s.iterations {
            let suffix = if s.iterations > 1 { format!("_{it}") } else { String::new() };
            let ((pin, pout, ps), wp) =
                metered(&format!("prefill{suffix}"), || pass(engine, &batches, &params(1, 1, &s), "prefill", n))?;
            let ((gin, gout, gs), wg) = metered(&format!("generate{suffix}"), || {
                pass(engine, &batches, &params(s.max_new_tokens, s.min_new_tokens, &s), "generate", n)
            })?;
            timings.push(json!({"prefill": {"engine_s": ps, "input_tokens": pin, "new_tokens": pout}, "generate": {"engine_s": gs, "input_tokens": gin, "new_tokens": gout}}));
            prefills.push(wp);
            generates.push(wg);
        }
        inference::close_engine(engine);

        let e_prefill: Vec<Energy> = prefills.iter().map(|w| Energy::of(w, gpu_used)).collect();
        let e_generate: Vec<Energy> = generates.iter().map(|w| Energy::of(w, gpu_used)).collect();
        let e_decode: Vec<Energy> = e_generate.iter().zip(&e_prefill).map(|(g, p)| g.minus(p)).collect();
        let prefill = Energy::mean(&e_prefill);
        let decode = Energy::mean(&e_decode);
        let mut warnings: Vec<String> = Vec::new();
        for (i, d) in e_decode.iter().enumerate() {
            for (dev, v) in [("gpu", d.gpu_kwh), ("cpu", d.cpu_kwh), ("ram", d.ram_kwh)] {
                if v.is_some_and(|v| v < 0.0) {
                    warnings.push(format!("decode {dev} energy of iteration {i} is negative (generate read less than prefill): kept as measured, not hidden"));
                }
            }
        }
        let e_load_dataset = Energy::of(&w_load_dataset, gpu_used);
        let e_preprocess = Energy::of(&w_preprocess, gpu_used);
        let e_load_model = Energy::of(&w_load_model, gpu_used);
        let measures = |v: &[Energy]| if s.iterations > 1 { Some(v.to_vec()) } else { None };
        let decode_volume = (n * u64::from(s.max_new_tokens.saturating_sub(1))) as f64;
        let all: Vec<&Window> = prefills.iter().chain(generates.iter()).collect();
        let mut report = serde_json::Map::new();
        report.insert(
            "load_dataset".into(),
            phase(Some(&e_load_dataset), None, None, Some(provenance(&[&w_load_dataset]))),
        );
        report.insert(
            "preprocess_dataset".into(),
            phase(
                Some(&e_preprocess),
                Some(efficiency(n as f64, "samples/kWh", &e_preprocess)),
                None,
                Some(provenance(&[&w_preprocess])),
            ),
        );
        report.insert("load_model".into(), phase(Some(&e_load_model), None, None, Some(provenance(&[&w_load_model]))));
        report.insert(
            "prefill".into(),
            phase(
                Some(&prefill),
                Some(efficiency(n as f64, "samples/kWh", &prefill)),
                measures(&e_prefill),
                Some(provenance(&prefills.iter().collect::<Vec<_>>())),
            ),
        );
        report.insert(
            "decode".into(),
            phase(
                Some(&decode),
                Some(efficiency(decode_volume, "tokens/kWh", &decode)),
                measures(&e_decode),
                Some(derived_provenance("generate - prefill", &all, &e_decode)),
            ),
        );
        for w in
            [&w_load_dataset, &w_preprocess, &w_load_model].into_iter().chain(prefills.iter()).chain(generates.iter())
        {
            for msg in &w.warnings {
                if !warnings.contains(msg) {
                    warnings.push(msg.clone());
                }
            }
        }
        report.insert(
            "energy_star".into(),
            json!({
                "backend": "optimum",
                "scenario": "energy_star",
                "model": s.model,
                "engine": info.notes,
                "device": s.device,
                "gpu_used": gpu_used,
                "gpu_absent_reason": if gpu_used { Value::Null } else { json!(format!("backend.device={}: the run used no GPU", s.device)) },
                "metered_devices": devices.iter().map(|d| format!("{:?} {} ({})", d.kind, d.index, d.name)).collect::<Vec<_>>(),
                "num_samples": n,
                "batch_size": s.batch_size,
                "input_tokens": input_tokens,
                "new_tokens_per_sample": s.max_new_tokens,
                "iterations": s.iterations,
                "timings": timings,
                "decode_is": "generate - prefill, component by component (optimum-benchmark's definition)",
                "notes": s.notes,
                "warnings": warnings,
            }),
        );
        let report = Value::Object(report);
        let config = json!({
            "name": s.name,
            "backend": cfg.get("backend"),
            "scenario": cfg.get("scenario"),
            "launcher": cfg.get("launcher"),
            "environment": {"energy_star_backend": "optimum", "energy_star_backend_version": env!("CARGO_PKG_VERSION"), "engine": info.notes, "model": info.model},
            "print_report": cfg.get("print_report"),
            "log_report": cfg.get("log_report"),
        });
        let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default();
        results::write_file("benchmark_config.json", pretty(&config).as_bytes())?;
        results::write_file("benchmark.json", pretty(&json!({"config": config, "report": report})).as_bytes())?;
        Ok(RunOutput { report_json: pretty(&report), complete: true })
    }
}

export!(Optimum);
