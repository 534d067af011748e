//! Backend `pytorch`: AI Energy Score's local path, the ai_energy_benchmarks workload, on the
//! host's local engine, with its report keys so AI Energy Score's tools read it unchanged.
//!
//! The workload as ai_energy_benchmarks runs it: the dataset and the model load outside the
//! meter; one window covers the whole prompt loop; no warmup; sampling at temperature 0.7,
//! top-p 0.9 and top-k 50 (its hard-coded values) unless `generate_kwargs.do_sample=false`;
//! AI Energy Score's token budget (10 new tokens, or 8192 with min 1 when the reasoning params
//! enable reasoning); the loop stops after 3 consecutive failures. Each row is formatted as
//! upstream formats it for the model's family, in both modes (`prompt_format`): the model's
//! chat template for formatter-less and Qwen/Hunyuan models (with `enable_thinking`), Harmony
//! text written by hand for gpt-oss, `/think` or `<think>` where the family wants them, the row
//! alone otherwise; `scenario.reasoning_params` count only with `scenario.reasoning`.
//! Differences, all in the report: `scenario.input_shapes.batch_size` is honoured (the original
//! ignores it), `min_new_tokens` is honoured (the original ignores it), TTFT is the engine's
//! measured prefill (the original estimates it), and carbon figures come from the host's
//! settings.
//!
//! Per-phase energy is added in the `energy_star` block: the loop's energy split between
//! prefill and decode in proportion to the engine's time in each, labelled as attributed.
//! Ctrl-C stops the loop at the next batch; the report then covers the prompts done, marked
//! incomplete.

use energy_star_backend_common::prompt_format::{self, TOP_K};
use energy_star_backend_common::{Energy, Reader, Settings, TokenRule, facts, provenance, refuse};
use energy_star_plugin_sdk::backend::host::inference::{
    self, ChatMessage, GenerationParams, LocalEngine, LocalEngineSpec, Prompt, SamplingOptions,
};
use energy_star_plugin_sdk::backend::host::types::{Error, TokenCountSource};
use energy_star_plugin_sdk::backend::host::{carbon, datasets, log, machine};
use energy_star_plugin_sdk::backend::{
    self as sdk, BackendInfo, ConfigError, Guest, PrepareRequest, RequestCounts, RunOutput, RunPlan, RunRequest,
    TokenCounts,
};
use serde_json::{Value, json};

struct Pytorch;

/// ai_energy_benchmarks' fail-fast rule.
const MAX_CONSECUTIVE_FAILURES: u32 = 3;

const READER: Reader<'static> = Reader {
    backend: "pytorch",
    tokens: TokenRule::AiEnergyScore,
    reasoning: true,
    loads_weights: true,
    repeats: false,
    forward_tasks: false,
};

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
    /// Why the loop stopped before the last prompt (Ctrl-C), when it did.
    interrupted: bool,
    /// Template kwargs the model's template never read.
    unused_kwargs: Vec<String>,
}

/// How rows become model input for this run (`prompt_format`).
struct Format {
    /// `reasoning_params` as upstream's backend receives them (with `scenario.reasoning` only).
    params: Option<serde_json::Map<String, Value>>,
    /// The template's kwargs when rows go through the model's chat template.
    chat_kwargs: Option<serde_json::Map<String, Value>>,
}

impl Format {
    /// One batch of rows as prompts for the engine.
    fn prompts(&self, engine: &LocalEngine, model: &str, rows: &[String], t: &mut Tally) -> Result<Vec<Prompt>, Error> {
        let Some(kwargs) = &self.chat_kwargs else {
            return Ok(rows
                .iter()
                .map(|r| Prompt::Text(prompt_format::text(model, r, self.params.as_ref())))
                .collect());
        };
        let kwargs_json = Value::Object(kwargs.clone()).to_string();
        rows.iter()
            .map(|row| {
                let chat = engine
                    .apply_chat_template(&[ChatMessage { role: "user".into(), content: row.clone() }], &kwargs_json)?;
                for k in chat.unused_kwargs {
                    if !t.unused_kwargs.contains(&k) {
                        log::log(log::Level::Warn, &format!("the chat template never reads the kwarg {k}"));
                        t.unused_kwargs.push(k);
                    }
                }
                Ok(Prompt::Ids(chat.input_ids))
            })
            .collect()
    }
}

fn settings(config_json: &str) -> Result<(Value, Settings), ConfigError> {
    let cfg: Value = serde_json::from_str(config_json)
        .map_err(|e| ConfigError { key: None, message: format!("config is not JSON: {e}") })?;
    let s = Settings::read(&cfg, READER)?;
    Ok((cfg, s))
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

    fn prepare(req: PrepareRequest) -> Result<RunPlan, ConfigError> {
        let (_, s) = settings(&req.config_json)?;
        s.engine_dtype()?;
        let applied = prompt_format::applied_params(s.reasoning, &s.reasoning_params);
        if let Some(key) = prompt_format::unknown_param(&s.model, applied) {
            return Err(refuse(
                &format!("scenario.reasoning_params.{key}"),
                format!(
                    "scenario.reasoning_params.{key}: ai_energy_benchmarks passes unknown reasoning params of a model without a prompt format to generate(), which fails every prompt; it knows {}",
                    prompt_format::KNOWN_PARAMS.join(", ")
                ),
            ));
        }
        Ok(RunPlan {
            models: std::iter::once(s.model.clone()).chain(s.processor.clone()).collect(),
            datasets: vec![s.dataset.clone()],
            endpoints: Vec::new(),
            gpus: s.gpus(),
            report_format: "ai_energy_benchmarks".into(),
            notes: s.notes.clone(),
        })
    }

    fn run(req: RunRequest) -> Result<RunOutput, String> {
        let (cfg, s) = settings(&req.config_json).map_err(|e| e.message)?;
        let sampling = energy_star_backend_common::get(&cfg, "scenario.generate_kwargs.do_sample")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let rows = datasets::load(&datasets::DatasetSpec {
            name: s.dataset.clone(),
            config: Some(s.dataset_config.clone()).filter(|c| !c.is_empty()),
            split: Some(s.split.clone()),
            columns: vec![s.column.clone()],
            num_samples: s.num_samples,
        })
        .map_err(|e| sdk::describe(&e))?;
        let prompts: Vec<String> = rows.rows.iter().map(|r| r.first().cloned().unwrap_or_default()).collect();
        if prompts.is_empty() {
            return Err(format!("dataset {} has no prompts", s.dataset));
        }
        let engine = inference::open_local_engine(&LocalEngineSpec {
            model: s.model.clone(),
            device: s.engine_device(),
            dtype: s.engine_dtype().map_err(|e| e.message)?,
            processor: s.processor.clone(),
        })
        .map_err(|e| sdk::describe(&e))?;
        let applied = prompt_format::applied_params(s.reasoning, &s.reasoning_params).cloned();
        let template = engine.chat_template().map_err(|e| sdk::describe(&e))?;
        let use_chat = prompt_format::uses_chat_template(&s.model, template.is_some());
        let format = Format {
            chat_kwargs: use_chat.then(|| prompt_format::template_kwargs(&s.model, applied.as_ref())),
            params: applied,
        };
        let family = prompt_format::family(&s.model);
        let formatter = family.and_then(|f| f.formatter).map(prompt_format::Formatter::name);
        log::log(
            log::Level::Info,
            &format!(
                "prompt format: family {}, formatter {}, {}",
                family.map_or("none", |f| f.name),
                formatter.unwrap_or("none"),
                match (&format.chat_kwargs, &template) {
                    (Some(k), Some(t)) =>
                        format!("the model's chat template ({}) with {}", t.origin, Value::Object(k.clone())),
                    _ => "text (the tokenizer adds its special tokens)".into(),
                }
            ),
        );
        let (temperature, top_p) =
            if sampling { prompt_format::sampling(&s.model, format.params.as_ref()) } else { (1.0, 1.0) };
        let params = GenerationParams {
            max_new_tokens: s.max_new_tokens,
            min_new_tokens: s.min_new_tokens,
            ignore_eos: false,
            do_sample: sampling,
            temperature,
            top_p,
            seed: Some(s.seed),
            truncate: s.truncation,
        };
        let options = SamplingOptions { top_k: sampling.then_some(TOP_K) };
        let total = prompts.len() as u64;
        // Announced once the window is open, as every phase is: a Ctrl-C after this line
        // keeps a report of the prompts done.
        let m = sdk::metered("inference", || -> Result<Tally, String> {
            log::log(log::Level::Info, &format!("phase inference: {total} prompts"));
            let mut t = Tally::default();
            let mut consecutive = 0;
            log::progress("inference", 0, Some(total), "prompts");
            for batch in prompts.chunks(s.batch_size as usize) {
                let out = format
                    .prompts(&engine, &s.model, batch, &mut t)
                    .and_then(|inputs| engine.generate(&inputs, params, options));
                match out {
                    Ok(out) => {
                        consecutive = 0;
                        t.prefill_s += out.prefill_ns as f64 / 1e9;
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
                    // The prompts left are not failures: they were never run.
                    Err(e) if sdk::is_interrupted(&e) => {
                        t.interrupted = true;
                        break;
                    }
                    Err(e) => {
                        let msg = sdk::describe(&e);
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
                log::progress("inference", t.ok + t.failed, Some(total), "prompts");
            }
            Ok(t)
        })
        .map_err(|e| sdk::describe(&e))?;
        let tally = m.result?;
        let w = m.reading;
        let duration_s = sdk::duration_s(&w);
        let gpu_used = s.gpu_used();
        let e = Energy::of(&w, gpu_used);
        let carbon = carbon::settings();
        let mean = |v: &[f64]| if v.is_empty() { Value::Null } else { json!(v.iter().sum::<f64>() / v.len() as f64) };
        let total_tokens = tally.prompt_tokens + tally.completion_tokens;
        let not_run = total - tally.ok - tally.failed;
        // Prefill and decode shares of the loop's energy, by engine time: an attribution.
        let engine_s = tally.prefill_s + tally.decode_s;
        let share = |part: f64, v: Option<f64>| v.filter(|_| engine_s > 0.0).map(|x| x * part / engine_s * 1000.0);
        let mut incomplete: Vec<String> = Vec::new();
        if tally.interrupted {
            incomplete
                .push(format!("interrupted by the user (Ctrl-C) after {} of {total} prompts", tally.ok + tally.failed));
        }
        if tally.stopped_early {
            log::log(log::Level::Error, &format!("stopped after {MAX_CONSECUTIVE_FAILURES} consecutive failures"));
            incomplete.push(format!(
                "stopped after {MAX_CONSECUTIVE_FAILURES} consecutive failures; {not_run} prompts were not run"
            ));
        }
        if tally.failed > 0 {
            incomplete.push(format!("{} of {total} prompts failed", tally.failed));
        }
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
                "total_duration_seconds": duration_s,
                "avg_latency_seconds": mean(&tally.latency_s),
                "avg_time_to_first_token": mean(&tally.ttft_s),
                "total_tokens": total_tokens,
                "total_prompt_tokens": tally.prompt_tokens,
                "total_completion_tokens": tally.completion_tokens,
                "throughput_tokens_per_second": if duration_s > 0.0 { json!(total_tokens as f64 / duration_s) } else { Value::Null },
            },
            "energy": energy_star_backend_common::ai_energy_benchmarks_energy(&e, duration_s, &s.name, &carbon),
            "gpu_stats": energy_star_backend_common::ai_energy_benchmarks_gpu_stats(&w, &machine::describe()),
            "backend_info": {
                "backend": "pytorch",
                "model": s.model,
                "device": s.device,
                "device_ids": s.device_ids,
                "torch_dtype": s.dtype,
                // As configured, with upstream's default: the original records the request, and so
                // does this (the local engine places the whole model on one device, said below).
                "device_map": energy_star_backend_common::str_at(&cfg, "backend.device_map").unwrap_or_else(|| "auto".into()),
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
                "complete": incomplete.is_empty(),
                "incomplete": incomplete,
                "window": provenance(&[&w]),
                "phases": {
                    "method": "attributed by engine time within the one metered window, not metered apart",
                    "prefill": {"engine_s": tally.prefill_s, "gpu_wh": share(tally.prefill_s, e.gpu_kwh), "cpu_wh": share(tally.prefill_s, e.cpu_kwh), "ram_wh": share(tally.prefill_s, e.ram_kwh)},
                    "decode": {"engine_s": tally.decode_s, "gpu_wh": share(tally.decode_s, e.gpu_kwh), "cpu_wh": share(tally.decode_s, e.cpu_kwh), "ram_wh": share(tally.decode_s, e.ram_kwh)},
                },
                "generation": {"max_new_tokens": s.max_new_tokens, "min_new_tokens": s.min_new_tokens, "do_sample": sampling, "temperature": params.temperature, "top_p": params.top_p, "top_k": options.top_k, "seed": s.seed, "batch_size": s.batch_size},
                "prompt_format": {
                    "family": family.map(|f| f.name),
                    "formatter": formatter,
                    "path": if format.chat_kwargs.is_some() { "chat_template" } else { "text" },
                    "chat_template": template.as_ref().filter(|_| format.chat_kwargs.is_some()).map(|t| json!({"origin": t.origin, "sha256": t.sha256})),
                    "template_kwargs": format.chat_kwargs,
                    "unused_template_kwargs": tally.unused_kwargs,
                    "reasoning_params_applied": format.params,
                },
                "differences_from_ai_energy_benchmarks": [
                    "batch_size is honoured (the original sends prompts one at a time)",
                    "min_new_tokens is honoured (the original ignores it)",
                    "avg_time_to_first_token is the engine's measured prefill time (the original estimates latency / completion tokens)",
                    "prompts that do not fit the context are cut to context - max_new_tokens when scenario.truncation is on (the original cuts text prompts to the tokenizer's model_max_length and never cuts templated ones)",
                    "device_map is recorded as configured (default auto); the local engine places the whole model on one device",
                    energy_star_backend_common::carbon_difference(&carbon),
                ],
                "carbon": energy_star_backend_common::carbon_additions(&e, &carbon),
                "errors": tally.errors,
                "warnings": w.warnings,
            },
        });
        let mut f = facts::empty(s.gpus());
        let complete = !tally.interrupted && !tally.stopped_early;
        let attributed = "the loop's energy, split between prefill and decode by the engine's time in each";
        f.phases.push(facts::measured("inference", &[&w], Some(facts::volume(tally.ok, "prompts")), complete));
        f.phases.push(facts::attributed("prefill", &w, attributed, Some(facts::volume(tally.prompt_tokens, "tokens"))));
        f.phases.push(facts::attributed(
            "decode",
            &w,
            attributed,
            Some(facts::volume(tally.completion_tokens, "tokens")),
        ));
        f.requests = Some(RequestCounts { total, succeeded: tally.ok, failed: tally.failed, not_sent: not_run });
        f.tokens = Some(TokenCounts {
            input: tally.prompt_tokens,
            output: tally.completion_tokens,
            source: TokenCountSource::Engine,
        });
        f.workload_ns = Some(w.end_ns.saturating_sub(w.start_ns));
        let mean_ns = |v: &[f64]| (!v.is_empty()).then(|| (v.iter().sum::<f64>() / v.len() as f64 * 1e9) as u64);
        f.mean_e2e_ns = mean_ns(&tally.latency_s);
        f.mean_ttft_ns = mean_ns(&tally.ttft_s);
        f.incomplete_reasons = incomplete;
        f.warnings = w.warnings.clone();
        // ai_energy_benchmarks' report carries its own keys only; energy-star's go beside it.
        let (report, additions) = energy_star_backend_common::split_additions(report);
        if let Some(why) = energy_star_backend_common::unmetered_gpu_reason(&report) {
            f.incomplete_reasons.push(why);
        }
        energy_star_backend_common::write_additions(&additions, &mut f.warnings);
        Ok(RunOutput { report_json: serde_json::to_string_pretty(&report).unwrap_or_default(), facts: f })
    }
}

energy_star_plugin_sdk::export_backend!(Pytorch);
