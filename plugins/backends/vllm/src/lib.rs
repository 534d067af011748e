//! Backend `vllm`: AI Energy Score's vLLM path and a serving benchmark in one. Prompts go to an
//! OpenAI-compatible server at `VLLM_ENDPOINT` under a load profile (`serving.*`; sequential by
//! default, as ai_energy_benchmarks sends them, for comparable numbers); GPU energy is metered
//! over the measured requests (warmup excluded) and over ML.ENERGY's steady-state window.
//!
//! The report keeps the ai_energy_benchmarks keys so AI Energy Score's tools read it, and adds
//! an `energy_star` block with `vllm bench serve`'s metrics, energy per token and per request
//! and where every figure comes from. One record per request goes to `requests.jsonl`.
//!
//! Policy lives here; the host does the HTTP, the timing and the metering.

wit_bindgen::generate!({
    path: "../../../wit/energy-star-plugin@0.1.0",
    world: "backend-plugin",
});

use energy_star::plugin::inference::{self, FailureKind, LoadProfile, RateProfile, TokenCountSource};
use energy_star::plugin::{datasets, log, meter, results};
use energy_star_backend_common::serving::{self, Req, ServingConfig};
use energy_star_backend_common::{Energy, Settings, provenance};
use exports::energy_star::plugin::backend::{BackendInfo, Guest, RequiredSetting, RunOutput, RunRequest};
use serde_json::{Value, json};

energy_star_backend_common::wit_conversions!();

struct Vllm;

fn setting<'a>(req: &'a RunRequest, name: &str) -> Option<&'a str> {
    req.settings.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

fn kind_name(k: FailureKind) -> &'static str {
    match k {
        FailureKind::Connect => "connect",
        FailureKind::Timeout => "timeout",
        FailureKind::HttpClientError => "http-4xx",
        FailureKind::HttpServerError => "http-5xx",
        FailureKind::StreamError => "stream-error",
        FailureKind::MalformedStream => "malformed-stream",
        FailureKind::TruncatedStream => "truncated-stream",
        FailureKind::EmptyResponse => "empty-response",
        FailureKind::Cancelled => "cancelled",
    }
}

fn source_name(s: TokenCountSource) -> &'static str {
    match s {
        TokenCountSource::Engine => "engine",
        TokenCountSource::ServerUsage => "server-usage",
        TokenCountSource::Tokenizer => "tokenizer",
        TokenCountSource::StreamChunks => "stream-chunks",
    }
}

impl Guest for Vllm {
    fn info() -> BackendInfo {
        BackendInfo {
            name: "vllm".into(),
            version: env!("CARGO_PKG_VERSION").into(),
            description: "An OpenAI-compatible server (vLLM) at VLLM_ENDPOINT under a chosen load; ai_energy_benchmarks report with serving metrics and energy per token".into(),
            report_format: "ai_energy_benchmarks".into(),
            required_settings: vec![RequiredSetting {
                name: "VLLM_ENDPOINT".into(),
                description: "Base URL of the OpenAI-compatible server, e.g. http://localhost:8000/v1".into(),
                missing_message: "VLLM_ENDPOINT environment variable must be set for vLLM backend".into(),
            }],
        }
    }

    fn run(req: RunRequest) -> Result<RunOutput, String> {
        let cfg: Value = serde_json::from_str(&req.config_json).map_err(|e| format!("config is not JSON: {e}"))?;
        let endpoint = setting(&req, "VLLM_ENDPOINT").ok_or("VLLM_ENDPOINT was not passed by the host")?.to_string();
        // The server applies the chat template and any reasoning: the local-engine limits on
        // `scenario.reasoning` do not apply here.
        let reasoning = energy_star_backend_common::bool_at(&cfg, "scenario.reasoning") == Some(true);
        let mut local_view = cfg.clone();
        if let Some(s) = local_view.get_mut("scenario").and_then(Value::as_object_mut) {
            s.remove("reasoning");
        }
        // No model given: the server's first listed model (`backend.model=null`).
        let model_given = energy_star_backend_common::str_at(&cfg, "backend.model").filter(|m| !m.is_empty());
        if model_given.is_none()
            && let Some(b) = local_view.get_mut("backend").and_then(Value::as_object_mut)
        {
            b.insert("model".into(), Value::String("(from /v1/models)".into()));
        }
        let s = Settings::read(&local_view, "vllm", 10)?;
        let sc = ServingConfig::read(&cfg)?;
        let api = if reasoning || sc.api == "chat" {
            inference::RemoteApi::ChatCompletions
        } else {
            inference::RemoteApi::Completions
        };
        // ai_energy_benchmarks sends temperature 0.7; `do_sample: false` asks for greedy.
        let sampling = energy_star_backend_common::get(&cfg, "scenario.generate_kwargs.do_sample")
            .and_then(Value::as_bool)
            .unwrap_or(true);
        let fixed_length = s.min_new_tokens == s.max_new_tokens;
        let params = inference::GenerationParams {
            max_new_tokens: s.max_new_tokens,
            min_new_tokens: if fixed_length { s.min_new_tokens } else { 0 },
            ignore_eos: fixed_length,
            do_sample: sampling,
            temperature: if sampling { 0.7 } else { 0.0 },
            top_p: 1.0,
            seed: Some(s.seed),
            truncate: s.truncation,
        };

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

        // Connect before anything is metered: an unreachable server or a model it does not
        // serve is an error now, not a run of failures.
        log::log(log::Level::Info, &format!("vLLM endpoint {endpoint}, model {}", s.model));
        let engine = inference::open_engine(&inference::EngineSpec::Remote(inference::RemoteEngineSpec {
            endpoint: endpoint.clone(),
            model: model_given.clone(),
            api,
            request_timeout_ms: (sc.request_timeout_s * 1000.0) as u64,
        }))
        .map_err(inf_err)?;
        let info = inference::describe_engine(engine).map_err(inf_err)?;
        for n in &info.notes {
            log::log(log::Level::Info, n);
        }

        let profile = match sc.profile.as_str() {
            "concurrency" => LoadProfile::Concurrency(sc.concurrency),
            "rate" => LoadProfile::Rate(RateProfile {
                requests_per_s: sc.request_rate,
                burstiness: sc.burstiness,
                seed: sc.seed,
                max_concurrency: sc.max_concurrency,
            }),
            _ => LoadProfile::Sequential,
        };
        let limits = inference::LoadLimits {
            max_duration_ms: (sc.max_duration_s * 1000.0) as u64,
            max_consecutive_failures: (sc.max_consecutive_failures > 0).then_some(sc.max_consecutive_failures),
            drain_timeout_ms: (sc.drain_timeout_s * 1000.0) as u64,
        };
        let mut warnings: Vec<String> = Vec::new();
        if sc.warmup_requests > 0 {
            let warm: Vec<String> = prompts.iter().cycle().take(sc.warmup_requests as usize).cloned().collect();
            log::log(log::Level::Info, &format!("{} warmup requests (not metered, not in the metrics)", warm.len()));
            let out = inference::run_load(engine, &warm, params, profile, limits).map_err(inf_err)?;
            let failed = out.requests.iter().filter(|r| r.error.is_some()).count();
            if failed > 0 {
                warnings.push(format!("{failed} of {} warmup requests failed", warm.len()));
            }
        }

        log::progress("requests", 0, prompts.len() as u64, "requests");
        let (load, w) =
            metered("inference", || inference::run_load(engine, &prompts, params, profile, limits).map_err(inf_err))?;
        inference::close_engine(engine);
        log::progress("requests", load.requests.len() as u64, prompts.len() as u64, "requests");

        let reqs: Vec<Req> = load
            .requests
            .iter()
            .map(|r| Req {
                index: r.prompt_index,
                start_ns: r.start_ns,
                queue_ns: r.queue_ns,
                ttft_ns: r.ttft_ns,
                e2e_ns: r.e2e_ns,
                itl_ns: r.itl_ns.clone(),
                input_tokens: u64::from(r.input_tokens),
                output_tokens: u64::from(r.output_tokens),
                failure: r.error.as_ref().map(|e| kind_name(e.kind).to_string()),
            })
            .collect();
        let duration_s = load.end_ns.saturating_sub(load.start_ns) as f64 / 1e9;
        let metrics = serving::metrics(&reqs, duration_s, load.peak_concurrency);
        let completed = reqs.iter().filter(|r| r.ok()).count() as u64;
        let failed = reqs.len() as u64 - completed;
        // Every generated token cost energy, the tokens of failed streams too.
        let tokens_generated: u64 = reqs.iter().map(|r| r.output_tokens).sum();
        let prompt_tokens: u64 = reqs.iter().filter(|r| r.ok()).map(|r| r.input_tokens).sum();
        let completion_tokens: u64 = reqs.iter().filter(|r| r.ok()).map(|r| r.output_tokens).sum();

        let gpu_used = s.device.starts_with("cuda");
        let e = Energy::of(&w, gpu_used);
        let gpu_j = e.gpu_kwh.map(|k| k * 3.6e6);

        // ML.ENERGY's steady state, cut from the timeline once its edges are known.
        // A cap the load never reached is not its concurrency: the smaller of cap and peak.
        let k = sc
            .steady_state_concurrency
            .unwrap_or_else(|| sc.cap().map_or(load.peak_concurrency, |c| c.min(load.peak_concurrency)))
            .max(1);
        let steady = match serving::steady_state(&reqs, k as usize) {
            Ok((start, end)) => match meter::reading_between("steady_state", start, end) {
                Ok(r) => {
                    let sw = window(r);
                    let se = Energy::of(&sw, gpu_used);
                    let tokens = serving::tokens_between(&reqs, start, end);
                    let sgpu_j = se.gpu_kwh.map(|k| k * 3.6e6);
                    let per_token = sgpu_j.filter(|_| tokens > 0.0).map(|j| j / tokens);
                    json!({
                        "definition": "ML.ENERGY: from the moment `concurrency` requests have their first token to the moment (completed − concurrency − 1) requests have finished",
                        "concurrency": k,
                        "start_ns": start, "end_ns": end,
                        "duration_s": sw.duration_s,
                        "output_tokens": tokens,
                        "gpu_energy_j": sgpu_j,
                        "gpu_energy_per_output_token_j": per_token,
                        "gpu_avg_power_w": sgpu_j.map(|j| j / sw.duration_s.max(1e-9)),
                        "cpu_energy_j": se.cpu_kwh.map(|k| k * 3.6e6),
                        "ram_energy_j": se.ram_kwh.map(|k| k * 3.6e6),
                        "window": provenance(&[&sw]),
                    })
                }
                Err(err) => json!({"unavailable": meter_err(err), "concurrency": k}),
            },
            Err(why) => json!({"unavailable": why, "concurrency": k}),
        };
        let steady_per_token = steady.get("gpu_energy_per_output_token_j").and_then(Value::as_f64);

        // One record per request; energy attributed by steady-state J per token × length.
        let mut lines = String::new();
        for r in &load.requests {
            let rec = json!({
                "index": r.prompt_index,
                "request_id": format!("energy-star-{}", r.prompt_index),
                "success": r.error.is_none(),
                "start_s": r.start_ns as f64 / 1e9,
                "client_queue_ms": r.queue_ns as f64 / 1e6,
                "ttft_ms": r.ttft_ns.map(|t| t as f64 / 1e6),
                "e2el_ms": r.e2e_ns as f64 / 1e6,
                "itl_ms": r.itl_ns.iter().map(|g| *g as f64 / 1e6).collect::<Vec<_>>(),
                "input_tokens": r.input_tokens,
                "output_tokens": r.output_tokens,
                "token_count_source": source_name(r.token_source),
                "finish_reason": r.finish_reason,
                "gpu_energy_j_attributed": steady_per_token.map(|j| j * f64::from(r.output_tokens)),
                "error": r.error.as_ref().map(|e| json!({"kind": kind_name(e.kind), "message": e.message, "http_status": e.http_status})),
                "output_text": r.text,
            });
            lines.push_str(&rec.to_string());
            lines.push('\n');
        }
        if let Err(err) = results::write_file("requests.jsonl", lines.as_bytes()) {
            warnings.push(format!("requests.jsonl was not written: {err}"));
        }

        let mut sources: std::collections::BTreeMap<&str, u64> = Default::default();
        for r in &load.requests {
            *sources.entry(source_name(r.token_source)).or_default() += 1;
        }
        let mean_s =
            |v: Vec<f64>| if v.is_empty() { Value::Null } else { json!(v.iter().sum::<f64>() / v.len() as f64) };
        let ok_reqs: Vec<&Req> = reqs.iter().filter(|r| r.ok()).collect();

        // Completeness: nothing left unsent, failures within the threshold.
        let mut incomplete: Vec<String> = Vec::new();
        if let Some(why) = &load.stopped {
            incomplete.push(format!(
                "sending stopped early: {why}; {} of {} prompts were not sent",
                load.not_sent,
                prompts.len()
            ));
        }
        let sent = reqs.len() as f64;
        if sent > 0.0 && failed as f64 / sent > sc.max_failed_fraction {
            incomplete.push(format!(
                "{failed} of {} requests failed, above serving.max_failed_fraction = {}",
                reqs.len(),
                sc.max_failed_fraction
            ));
        }
        if completed == 0 {
            incomplete.push("no request completed".into());
        }
        for why in &incomplete {
            results::mark_incomplete(why);
            log::log(log::Level::Warn, why);
        }

        let report = json!({
            "config": {
                "name": s.name,
                "backend": "vllm",
                "model": info.model,
                "dataset": s.dataset,
                "num_samples": s.num_samples.map(u64::from).unwrap_or(prompts.len() as u64),
                "device_ids": s.device_ids,
            },
            "summary": {
                "total_prompts": prompts.len(),
                "successful_prompts": completed,
                "failed_prompts": failed + u64::from(load.not_sent),
                "total_duration_seconds": w.duration_s,
                "avg_latency_seconds": mean_s(ok_reqs.iter().map(|r| r.e2e_ns as f64 / 1e9).collect()),
                "avg_time_to_first_token": mean_s(ok_reqs.iter().filter_map(|r| r.ttft_ns.map(|t| t as f64 / 1e9)).collect()),
                "total_tokens": prompt_tokens + completion_tokens,
                "total_prompt_tokens": prompt_tokens,
                "total_completion_tokens": completion_tokens,
                "throughput_tokens_per_second": if w.duration_s > 0.0 { json!((prompt_tokens + completion_tokens) as f64 / w.duration_s) } else { Value::Null },
            },
            "energy": energy_star_backend_common::ai_energy_benchmarks_energy(&e, w.duration_s, &s.name),
            "gpu_stats": energy_star_backend_common::ai_energy_benchmarks_gpu_stats(&w),
            "backend_info": {
                "backend": "vllm",
                "endpoint": endpoint,
                "model": info.model,
                "api": if api == inference::RemoteApi::ChatCompletions { "chat/completions" } else { "completions" },
                "max_model_len": info.max_context_tokens,
                "healthy": completed > 0,
                "validated": true,
            },
            "metrics_metadata": {
                "name": "energy-star",
                "version": env!("CARGO_PKG_VERSION"),
                "capabilities": ["gpu_energy", "cpu_energy", "ram_energy", "serving_metrics"],
                "project_name": s.name,
                "output_dir": Value::Null,
            },
            "energy_star": {
                "backend": "vllm",
                "gpu_used": gpu_used,
                "gpu_absent_reason": if gpu_used { Value::Null } else { json!(format!("backend.device={}: no GPU of this machine was metered for the server", s.device)) },
                "what_is_metered": "the GPUs of this machine listed in backend.device_ids, over the measured requests (warmup excluded); a server on another machine is not metered",
                "load": sc.to_json(),
                "generation": {"max_tokens": s.max_new_tokens, "min_tokens": params.min_new_tokens, "ignore_eos": params.ignore_eos, "temperature": params.temperature, "seed": s.seed, "fixed_length": fixed_length},
                "serving": metrics,
                "failures_by_kind": serving::failures_by_kind(&reqs),
                "not_sent": load.not_sent,
                "stopped": load.stopped,
                "token_count_sources": sources,
                "energy": {
                    "whole_run": {
                        "duration_s": w.duration_s,
                        "gpu_energy_j": gpu_j,
                        "output_tokens": tokens_generated,
                        "gpu_energy_per_output_token_j": gpu_j.filter(|_| tokens_generated > 0).map(|j| j / tokens_generated as f64),
                        "gpu_energy_per_request_j_attributed": gpu_j.filter(|_| completed > 0).map(|j| j / completed as f64),
                        "gpu_avg_power_w": gpu_j.map(|j| j / w.duration_s.max(1e-9)),
                        "window": provenance(&[&w]),
                    },
                    "steady_state": steady,
                    "per_request": "requests.jsonl: gpu_energy_j_attributed = steady-state J per output token × the request's output tokens (ML.ENERGY's attribution, not a measurement of that request)",
                },
                "definitions": {
                    "ttft": "send to the first chunk with a choice",
                    "tpot": "(e2el − ttft) / (output tokens − 1), requests with more than one output token (vLLM; GuideLLM includes the first token)",
                    "itl": "gaps between chunks, all requests pooled; a chunk of k tokens adds k−1 zeros",
                    "e2el": "send to the last chunk with a choice",
                    "percentiles": "linear interpolation (numpy's default)",
                    "output_tokens": "server usage where sent, else a local tokenizer, else chunks (token_count_sources)",
                    "gpu_energy_per_output_token_j": "window GPU energy / output tokens generated in it (failed requests' partial output included)",
                },
                "differences_from_ai_energy_benchmarks": [
                    "min_new_tokens is honoured: equal min and max send ignore_eos and min_tokens (fixed-length output)",
                    "the load profile is configurable (serving.*); the default, sequential, is the original's",
                    "failed requests are recorded by kind and the run goes on; the original stops after 3 in a row",
                    "carbon figures are null: no grid-intensity data, none invented",
                ],
                "incomplete": incomplete,
                "notes": info.notes,
                "warnings": w.warnings.iter().cloned().chain(warnings).collect::<Vec<_>>(),
            },
        });
        Ok(RunOutput {
            report_json: serde_json::to_string_pretty(&report).unwrap_or_default(),
            complete: incomplete.is_empty(),
        })
    }
}

export!(Vllm);
