//! Backend `pytorch`: AI Energy Score's local path, the ai_energy_benchmarks workload, on the
//! host's local engine, with its report keys so AI Energy Score's tools read it unchanged.
//!
//! The workload as ai_energy_benchmarks runs it: the dataset and the model load outside the
//! meter; one window covers the whole prompt loop; no warmup; sampling at temperature 0.7 and
//! top-p 0.9 (its hard-coded values) unless `generate_kwargs.do_sample=false`; 10 new tokens
//! when the config gives none; the loop stops after 3 consecutive failures. Differences, all
//! in the report: `scenario.input_shapes.batch_size` is honoured (the original ignores it),
//! `min_new_tokens` is honoured (the original ignores it, so lengths vary), and carbon figures
//! are null (energy-star has no grid-intensity data and invents none).
//!
//! Per-phase energy is added in the `energy_star` block: the loop's energy split between
//! prefill and decode in proportion to the engine's time in each, labelled as attributed.

wit_bindgen::generate!({
    path: "../../../wit/energy-star-plugin@0.1.0",
    world: "backend-plugin",
});

use energy_star::plugin::{datasets, inference, log, meter};
use energy_star_backend_common::{Energy, Settings, provenance};
use exports::energy_star::plugin::backend::{BackendInfo, Guest, RunOutput, RunRequest};
use serde_json::{Value, json};

energy_star_backend_common::wit_conversions!();

struct Pytorch;

/// ai_energy_benchmarks' fail-fast rule.
const MAX_CONSECUTIVE_FAILURES: u32 = 3;

#[derive(Default)]
struct Tally {
    ok: u64,
    failed: u64,
    prompt_tokens: u64,
    completion_tokens: u64,
    latency_s: Vec<f64>,
    ttft_s: Vec<f64>,
    prefill_s: f64,
    decode_s: f64,
    errors: Vec<String>,
    stopped_early: bool,
}

impl Guest for Pytorch {
    fn info() -> BackendInfo {
        BackendInfo {
            name: "pytorch".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "AI Energy Score's pytorch path (the ai_energy_benchmarks workload) on the host's local engine; ai_energy_benchmarks report".into(),
            report_format: "ai_energy_benchmarks".into(),
            required_settings: Vec::new(),
        }
    }

    fn run(req: RunRequest) -> Result<RunOutput, String> {
        let cfg: Value = serde_json::from_str(&req.config_json).map_err(|e| format!("config is not JSON: {e}"))?;
        let s = Settings::read(&cfg, "pytorch", 10)?;
        let sampling = energy_star_backend_common::get(&cfg, "scenario.generate_kwargs.do_sample")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let rows = datasets::load(&datasets::DatasetSpec {
            name: s.dataset.clone(),
            config: s.dataset_config.clone(),
            split: s.split.clone(),
            columns: vec![s.column.clone()],
            num_samples: s.num_samples,
        })?;
        let prompts: Vec<String> = rows.rows.iter().map(|r| r.first().cloned().unwrap_or_default()).collect();
        if prompts.is_empty() {
            return Err(format!("dataset {} has no prompts", s.dataset));
        }
        let engine = inference::open_engine(&inference::EngineSpec::Local(inference::LocalEngineSpec {
            model: s.model.clone(),
            device: s.device.clone(),
            device_ids: s.device_ids.clone(),
            dtype: s.dtype.clone(),
            processor: s.processor.clone(),
        }))
        .map_err(inf_err)?;
        let params = inference::GenerationParams {
            max_new_tokens: s.max_new_tokens,
            min_new_tokens: s.min_new_tokens,
            ignore_eos: false,
            do_sample: sampling,
            temperature: if sampling { 0.7 } else { 1.0 },
            top_p: if sampling { 0.9 } else { 1.0 },
            seed: Some(s.seed),
            truncate: s.truncation,
        };
        let total = prompts.len() as u64;
        let (tally, w) = metered("inference", || {
            let mut t = Tally::default();
            let mut consecutive = 0;
            log::progress("inference", 0, total, "prompts");
            for batch in prompts.chunks(s.batch_size as usize) {
                match inference::generate_batch(engine, batch, params) {
                    Ok(out) => {
                        consecutive = 0;
                        t.prefill_s += out.prefill_ns.unwrap_or(0) as f64 / 1e9;
                        t.decode_s += out.decode_step_ns.iter().sum::<u64>() as f64 / 1e9;
                        for r in &out.requests {
                            t.ok += 1;
                            t.prompt_tokens += u64::from(r.input_tokens);
                            t.completion_tokens += u64::from(r.output_tokens);
                            t.latency_s.push(r.e2e_ns as f64 / 1e9);
                            if let Some(ttft) = r.ttft_ns {
                                t.ttft_s.push(ttft as f64 / 1e9);
                            }
                        }
                    }
                    Err(e) => {
                        let msg = inf_err(e);
                        log::log(log::Level::Warn, &format!("batch failed: {msg}"));
                        t.failed += batch.len() as u64;
                        t.errors.push(msg);
                        consecutive += 1;
                        if consecutive >= MAX_CONSECUTIVE_FAILURES {
                            t.stopped_early = true;
                            break;
                        }
                    }
                }
                log::progress("inference", t.ok + t.failed, total, "prompts");
            }
            Ok(t)
        })?;
        inference::close_engine(engine);

        let gpu_used = s.device.starts_with("cuda");
        let e = Energy::of(&w, gpu_used);
        let mean = |v: &[f64]| if v.is_empty() { Value::Null } else { json!(v.iter().sum::<f64>() / v.len() as f64) };
        let total_tokens = tally.prompt_tokens + tally.completion_tokens;
        // Prefill and decode shares of the loop's energy, by engine time: an attribution.
        let engine_s = tally.prefill_s + tally.decode_s;
        let share = |part: f64, v: Option<f64>| v.filter(|_| engine_s > 0.0).map(|x| x * part / engine_s * 1000.0);
        let report = json!({
            "config": {
                "name": s.name,
                "backend": "pytorch",
                "model": s.model,
                "dataset": s.dataset,
                "num_samples": s.num_samples.map(u64::from).unwrap_or(total),
                "device_ids": s.device_ids,
            },
            "summary": {
                "total_prompts": total,
                "successful_prompts": tally.ok,
                "failed_prompts": tally.failed,
                "total_duration_seconds": w.duration_s,
                "avg_latency_seconds": mean(&tally.latency_s),
                "avg_time_to_first_token": mean(&tally.ttft_s),
                "total_tokens": total_tokens,
                "total_prompt_tokens": tally.prompt_tokens,
                "total_completion_tokens": tally.completion_tokens,
                "throughput_tokens_per_second": if w.duration_s > 0.0 { json!(total_tokens as f64 / w.duration_s) } else { Value::Null },
            },
            "energy": energy_star_backend_common::ai_energy_benchmarks_energy(&e, w.duration_s, &s.name),
            "gpu_stats": energy_star_backend_common::ai_energy_benchmarks_gpu_stats(&w),
            "backend_info": {
                "backend": "pytorch",
                "model": s.model,
                "device": s.device,
                "device_ids": s.device_ids,
                "torch_dtype": s.dtype,
                "device_map": energy_star_backend_common::get(&cfg, "backend.device_map"),
                "initialized": true,
                "healthy": !tally.stopped_early,
            },
            "metrics_metadata": {
                "name": "energy-star",
                "version": env!("CARGO_PKG_VERSION"),
                "capabilities": ["gpu_energy", "cpu_energy", "ram_energy"],
                "project_name": s.name,
                "output_dir": Value::Null,
            },
            "energy_star": {
                "backend": "pytorch",
                "gpu_used": gpu_used,
                "gpu_absent_reason": if gpu_used { Value::Null } else { json!(format!("backend.device={}: the run used no GPU", s.device)) },
                "window": provenance(&[&w]),
                "phases": {
                    "method": "attributed by engine time within the one metered window, not metered apart",
                    "prefill": {"engine_s": tally.prefill_s, "gpu_wh": share(tally.prefill_s, e.gpu_kwh), "cpu_wh": share(tally.prefill_s, e.cpu_kwh), "ram_wh": share(tally.prefill_s, e.ram_kwh)},
                    "decode": {"engine_s": tally.decode_s, "gpu_wh": share(tally.decode_s, e.gpu_kwh), "cpu_wh": share(tally.decode_s, e.cpu_kwh), "ram_wh": share(tally.decode_s, e.ram_kwh)},
                },
                "generation": {"max_new_tokens": s.max_new_tokens, "min_new_tokens": s.min_new_tokens, "do_sample": sampling, "temperature": params.temperature, "top_p": params.top_p, "seed": s.seed, "batch_size": s.batch_size},
                "differences_from_ai_energy_benchmarks": [
                    "batch_size is honoured (the original sends prompts one at a time)",
                    "min_new_tokens is honoured (the original ignores it)",
                    "top_k 50 is not applied (top-p 0.9 and temperature 0.7 are)",
                    "carbon figures are null: no grid-intensity data, none invented"
                ],
                "errors": tally.errors,
                "warnings": w.warnings,
            },
        });
        let complete = tally.failed == 0;
        if tally.stopped_early {
            log::log(log::Level::Error, &format!("stopped after {MAX_CONSECUTIVE_FAILURES} consecutive failures"));
        }
        Ok(RunOutput { report_json: serde_json::to_string_pretty(&report).unwrap_or_default(), complete })
    }
}

export!(Pytorch);
