//! Backend `vllm`: AI Energy Score's vLLM path and a serving benchmark in one. Prompts go to an
//! OpenAI-compatible server at `VLLM_ENDPOINT` under a load profile (`serving.*`; sequential by
//! default, as ai_energy_benchmarks sends them, for comparable numbers); GPU energy is metered
//! over the measured requests (warmup excluded) and over ML.ENERGY's steady-state window.
//!
//! The report keeps the ai_energy_benchmarks keys so AI Energy Score's tools read it, and adds
//! an `energy_star` block with `vllm bench serve`'s metrics, energy per token and per request
//! and where every figure comes from. One record per request goes to `requests.jsonl`.
//!
//! The server may be on another machine: then no GPU of this machine is metered, and the run
//! says so (the summary's GPU figure is `n/a` with that reason) instead of failing. With
//! `scenario.reasoning`, requests go to the chat API with what vLLM accepts for it:
//! `reasoning_effort` (gpt-oss) and `chat_template_kwargs` (`enable_thinking` and the other
//! `scenario.reasoning_params`, for Qwen3-style templates).
//!
//! Policy lives here; the host does the HTTP, the timing and the metering.

use energy_star_backend_common::serving::{self, ServingConfig, ServingMetrics, Timed};
use energy_star_backend_common::{Energy, Reader, Settings, TokenRule, facts, provenance};
use energy_star_plugin_sdk::backend::host::inference::{
    self, GenerationParams, LoadLimits, LoadOutcome, LoadProfile, RateProfile, RemoteApi, RemoteEngine,
    RemoteEngineSpec, StopReason,
};
use energy_star_plugin_sdk::backend::host::meter::{self, WindowReading};
use energy_star_plugin_sdk::backend::host::types::{DeviceKind, EnergySource, FinishReason, GpuUse};
use energy_star_plugin_sdk::backend::host::{carbon, datasets, log, machine, results};
use energy_star_plugin_sdk::backend::{
    self as sdk, BackendInfo, ConfigError, Figure, Guest, PrepareRequest, RequestCounts, RequiredSetting, RunFacts,
    RunOutput, RunPlan, RunRequest, TokenCounts,
};
use energy_star_plugin_sdk::types as names;
use serde_json::{Map, Value, json};

struct Vllm;

const ENDPOINT: &str = "VLLM_ENDPOINT";

/// Everything the config asks of a run, checked in `prepare`.
struct Plan {
    s: Settings,
    sc: ServingConfig,
    endpoint: String,
    /// The model asked for; none takes the server's first.
    model: Option<String>,
    api: RemoteApi,
    /// The JSON object added to every request (reasoning fields), when there is one.
    extra_body: Option<Map<String, Value>>,
    params: GenerationParams,
}

fn setting<'a>(settings: &'a [(String, String)], name: &str) -> Option<&'a str> {
    settings.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
}

/// What vLLM accepts for reasoning on the chat API: `reasoning_effort` at the top (gpt-oss's
/// Harmony template reads it), everything else of `scenario.reasoning_params` as
/// `chat_template_kwargs`, with `enable_thinking` set from `scenario.reasoning` (Qwen3-style
/// templates read it; others ignore it).
fn reasoning_body(cfg: &Value, reasoning: Option<bool>) -> Result<Option<Map<String, Value>>, ConfigError> {
    let Some(on) = reasoning else { return Ok(None) };
    let mut body = Map::new();
    let mut kwargs = Map::new();
    kwargs.insert("enable_thinking".into(), json!(on));
    match energy_star_backend_common::get(cfg, "scenario.reasoning_params") {
        None | Some(Value::Null) => {}
        Some(Value::Object(params)) if on => {
            for (k, v) in params {
                if k == "reasoning_effort" {
                    body.insert(k.clone(), v.clone());
                } else {
                    kwargs.insert(k.clone(), v.clone());
                }
            }
        }
        Some(Value::Object(_)) => {}
        Some(other) => {
            return Err(energy_star_backend_common::refuse(
                "scenario.reasoning_params",
                format!("scenario.reasoning_params = {other} must be a map, e.g. {{reasoning_effort: high}}"),
            ));
        }
    }
    body.insert("chat_template_kwargs".into(), Value::Object(kwargs));
    Ok(Some(body))
}

fn plan(config_json: &str, settings: &[(String, String)]) -> Result<Plan, ConfigError> {
    let cfg: Value = serde_json::from_str(config_json)
        .map_err(|e| ConfigError { key: None, message: format!("config is not JSON: {e}") })?;
    let endpoint = setting(settings, ENDPOINT)
        .ok_or(ConfigError { key: None, message: format!("{ENDPOINT} was not passed by the host") })?
        .to_string();
    // No model given: the server's first listed model (`backend.model=null`).
    let model = energy_star_backend_common::str_at(&cfg, "backend.model").filter(|m| !m.is_empty());
    let mut local_view = cfg.clone();
    if model.is_none()
        && let Some(b) = local_view.get_mut("backend").and_then(Value::as_object_mut)
    {
        b.insert("model".into(), Value::String("(from /v1/models)".into()));
    }
    // The server applies the chat template and any reasoning.
    let s = Settings::read(
        &local_view,
        Reader {
            backend: "vllm",
            tokens: TokenRule::AiEnergyScore,
            reasoning: true,
            loads_weights: false,
            repeats: false,
            forward_tasks: false,
        },
    )?;
    let sc = ServingConfig::read(&cfg)?;
    let reasoning = energy_star_backend_common::bool_at(&cfg, "scenario.reasoning");
    let api =
        if reasoning == Some(true) || sc.api == "chat" { RemoteApi::ChatCompletions } else { RemoteApi::Completions };
    let extra_body = if api == RemoteApi::ChatCompletions { reasoning_body(&cfg, reasoning)? } else { None };
    // ai_energy_benchmarks sends temperature 0.7; `do_sample: false` asks for greedy.
    let sampling = energy_star_backend_common::get(&cfg, "scenario.generate_kwargs.do_sample")
        .and_then(Value::as_bool)
        .unwrap_or(true);
    let fixed_length = s.min_new_tokens == s.max_new_tokens;
    let params = GenerationParams {
        max_new_tokens: s.max_new_tokens,
        min_new_tokens: if fixed_length { s.min_new_tokens } else { 0 },
        ignore_eos: fixed_length,
        do_sample: sampling,
        temperature: if sampling { 0.7 } else { 0.0 },
        top_p: 1.0,
        seed: Some(s.seed),
        truncate: s.truncation,
    };
    Ok(Plan { s, sc, endpoint, model, api, extra_body, params })
}

fn load_prompts(s: &Settings) -> Result<Vec<String>, String> {
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
    Ok(prompts)
}

/// Connects before anything is metered: an unreachable server or a model it does not serve
/// is an error now, not a run of failures.
fn connect(p: &Plan) -> Result<RemoteEngine, String> {
    log::log(log::Level::Info, &format!("vLLM endpoint {}, model {}", p.endpoint, p.s.model));
    inference::connect_remote_engine(&RemoteEngineSpec {
        endpoint: p.endpoint.clone(),
        model: p.model.clone(),
        api: p.api,
        request_timeout_ms: (p.sc.request_timeout_s * 1000.0) as u64,
        stream_usage: p.sc.stream_usage,
        extra_body_json: p.extra_body.as_ref().map(|b| Value::Object(b.clone()).to_string()),
    })
    .map_err(|e| sdk::describe(&e))
}

fn profile(sc: &ServingConfig) -> LoadProfile {
    match sc.profile.as_str() {
        "concurrency" => LoadProfile::Concurrency(sc.concurrency),
        "rate" => LoadProfile::Rate(RateProfile {
            requests_per_s: sc.request_rate,
            burstiness: sc.burstiness,
            seed: sc.seed,
            max_concurrency: sc.max_concurrency,
        }),
        _ => LoadProfile::Sequential,
    }
}

fn limits(sc: &ServingConfig) -> LoadLimits {
    LoadLimits {
        max_duration_ms: (sc.max_duration_s > 0.0).then_some((sc.max_duration_s * 1000.0) as u64),
        max_consecutive_failures: (sc.max_consecutive_failures > 0).then_some(sc.max_consecutive_failures),
        drain_timeout_ms: (sc.drain_timeout_s * 1000.0) as u64,
    }
}

/// Unmetered warmup requests; their failures become a warning.
fn warmup(engine: &RemoteEngine, p: &Plan, prompts: &[String], warnings: &mut Vec<String>) -> Result<(), String> {
    if p.sc.warmup_requests == 0 {
        return Ok(());
    }
    let warm: Vec<String> = prompts.iter().cycle().take(p.sc.warmup_requests as usize).cloned().collect();
    log::log(log::Level::Info, &format!("{} warmup requests (not metered, not in the metrics)", warm.len()));
    let out = engine.run_load(&warm, p.params, profile(&p.sc), limits(&p.sc)).map_err(|e| sdk::describe(&e))?;
    let failed = out.requests.iter().filter(|r| r.error.is_some()).count();
    if failed > 0 {
        warnings.push(format!("{failed} of {} warmup requests failed", warm.len()));
    }
    Ok(())
}

/// Whether a GPU of this machine was metered: without one (no NVML here, the server elsewhere),
/// the run has no GPU figure and says why, which is not a failed reading.
fn gpus_metered(s: &Settings) -> GpuUse {
    let planned = s.gpus();
    if let GpuUse::None(_) = planned {
        return GpuUse::None(format!("backend.device={}: no GPU of this machine was metered for the server", s.device));
    }
    match meter::devices() {
        Ok(d) if d.iter().any(|d| d.kind == DeviceKind::Gpu && d.source != EnergySource::Unavailable) => planned,
        Ok(_) => GpuUse::None(
            "no GPU of this machine could be metered (no NVML here): the server's GPUs are not on this machine, or their driver is not reachable; its energy is not measured".into(),
        ),
        Err(e) => GpuUse::None(format!("the energy meter is unavailable ({}): no GPU was metered", sdk::describe(&e))),
    }
}

/// ML.ENERGY's steady state, cut from the timeline once its edges are known; with the GPU
/// J per output token in it.
fn steady_state(p: &Plan, load: &LoadOutcome, gpu_used: bool) -> (Value, Option<f64>) {
    let reqs = &load.requests;
    // A cap the load never reached is not its concurrency: the smaller of cap and peak.
    let k =
        p.sc.steady_state_concurrency
            .unwrap_or_else(|| p.sc.cap().map_or(load.peak_concurrency, |c| c.min(load.peak_concurrency)))
            .max(1);
    let (start, end) = match serving::steady_state(reqs, k as usize) {
        Ok(edges) => edges,
        Err(why) => return (json!({"unavailable": why, "concurrency": k}), None),
    };
    let sw = match meter::reading_between("steady_state", start, end) {
        Ok(r) => r,
        Err(err) => return (json!({"unavailable": sdk::describe(&err), "concurrency": k}), None),
    };
    let se = Energy::of(&sw, gpu_used);
    let tokens = serving::tokens_between(reqs, start, end);
    let sgpu_j = se.gpu_kwh.map(names::units::kwh_to_j);
    let per_token = sgpu_j.filter(|_| tokens > 0.0).map(|j| j / tokens);
    let duration_s = sdk::duration_s(&sw);
    let v = json!({
        "definition": "ML.ENERGY: from the moment `concurrency` requests have their first token to the moment (completed − concurrency − 1) requests have finished",
        "concurrency": k,
        "start_ns": start, "end_ns": end,
        "duration_s": duration_s,
        "output_tokens": tokens,
        "gpu_energy_j": sgpu_j,
        "gpu_energy_per_output_token_j": per_token,
        "gpu_avg_power_w": sgpu_j.map(|j| j / duration_s.max(1e-9)),
        "cpu_energy_j": se.cpu_kwh.map(names::units::kwh_to_j),
        "ram_energy_j": se.ram_kwh.map(names::units::kwh_to_j),
        "window": provenance(&[&sw]),
    });
    (v, per_token)
}

/// One record per request; energy attributed by steady-state J per token × length.
fn request_records(load: &LoadOutcome, steady_per_token: Option<f64>) -> String {
    let mut lines = String::new();
    for r in &load.requests {
        let rec = json!({
            "index": r.prompt_index,
            "request_id": r.request_id,
            "success": r.error.is_none(),
            "start_s": r.start_ns as f64 / 1e9,
            "client_queue_ms": r.queue_ns.map(|q| q as f64 / 1e6),
            "ttft_ms": r.ttft_ns.map(|t| t as f64 / 1e6),
            "e2el_ms": r.e2e_ns as f64 / 1e6,
            "itl_ms": r.itl_ns.iter().map(|g| *g as f64 / 1e6).collect::<Vec<_>>(),
            "input_tokens": r.input_tokens,
            "output_tokens": r.output_tokens,
            "token_count_source": names::TokenCountSource::from(r.token_source).as_str(),
            "finish_reason": r.finish_reason.as_ref().map(|f| match f {
                FinishReason::Stop => "stop".to_string(),
                FinishReason::Length => "length".to_string(),
                FinishReason::Other(o) => o.clone(),
            }),
            "gpu_energy_j_attributed": steady_per_token.map(|j| j * f64::from(r.output_tokens)),
            "error": r.error.as_ref().map(|e| json!({"kind": names::FailureKind::from(e.kind).as_str(), "message": e.message, "http_status": e.http_status})),
            "output_text": r.text,
        });
        lines.push_str(&rec.to_string());
        lines.push('\n');
    }
    lines
}

/// Why the run is incomplete: prompts left unsent, failures above the threshold, none done.
fn incompleteness(p: &Plan, load: &LoadOutcome, m: &ServingMetrics, prompts: usize) -> Vec<String> {
    let mut why: Vec<String> = Vec::new();
    if let Some(stop) = &load.stopped {
        let how = match stop {
            StopReason::TimeBound => "the time bound was reached".to_string(),
            StopReason::ConsecutiveFailures(n) => {
                format!("{n} requests failed in a row; the server looks unable to serve")
            }
            StopReason::Interrupted => "interrupted by the user (Ctrl-C)".to_string(),
        };
        why.push(format!("sending stopped early: {how}; {} of {prompts} prompts were not sent", load.not_sent));
    }
    let sent = load.requests.len() as f64;
    if sent > 0.0 && m.failed as f64 / sent > p.sc.max_failed_fraction {
        why.push(format!(
            "{} of {} requests failed, above serving.max_failed_fraction = {}",
            m.failed,
            load.requests.len(),
            p.sc.max_failed_fraction
        ));
    }
    if m.completed == 0 {
        why.push("no request completed".into());
    }
    why
}

/// What the run measured, put together.
struct Outcome<'a> {
    plan: &'a Plan,
    engine_model: String,
    max_context_tokens: Option<u32>,
    notes: Vec<String>,
    prompts: usize,
    load: LoadOutcome,
    window: WindowReading,
    gpus: GpuUse,
    warnings: Vec<String>,
}

impl Outcome<'_> {
    fn finish(self) -> (Value, RunFacts) {
        let p = self.plan;
        let (s, sc) = (&p.s, &p.sc);
        let reqs = &self.load.requests;
        let duration_s = self.load.end_ns.saturating_sub(self.load.start_ns) as f64 / 1e9;
        let metrics = serving::metrics(reqs, duration_s, self.load.peak_concurrency);
        let ok_reqs: Vec<&inference::RequestOutcome> = reqs.iter().filter(|r| r.ok()).collect();
        // Every generated token cost energy, the tokens of failed streams too.
        let tokens_generated: u64 = reqs.iter().map(|r| u64::from(r.output_tokens)).sum();
        let prompt_tokens = metrics.total_input_tokens;
        let completion_tokens = metrics.total_output_tokens;
        let gpu_used = matches!(self.gpus, GpuUse::Gpus(_));
        let w = &self.window;
        let window_s = sdk::duration_s(w);
        let e = Energy::of(w, gpu_used);
        let carbon = carbon::settings();
        let gpu_j = e.gpu_kwh.map(names::units::kwh_to_j);
        let (steady, steady_per_token) = steady_state(p, &self.load, gpu_used);
        let mut warnings = self.warnings;
        if let Err(err) =
            results::write_file("requests.jsonl", request_records(&self.load, steady_per_token).as_bytes())
        {
            warnings.push(format!("requests.jsonl was not written: {}", sdk::describe(&err)));
        }
        let mut sources: std::collections::BTreeMap<&str, u64> = Default::default();
        for r in &self.load.requests {
            *sources.entry(names::TokenCountSource::from(r.token_source).as_str()).or_default() += 1;
        }
        let incomplete = incompleteness(p, &self.load, &metrics, self.prompts);
        for why in &incomplete {
            log::log(log::Level::Warn, why);
        }
        let mean_s =
            |v: Vec<f64>| if v.is_empty() { Value::Null } else { json!(v.iter().sum::<f64>() / v.len() as f64) };
        let per_token = gpu_j.filter(|_| tokens_generated > 0).map(|j| j / tokens_generated as f64);
        let per_request = gpu_j.filter(|_| metrics.completed > 0).map(|j| j / metrics.completed as f64);
        let report = json!({
            "config": {
                "name": s.name,
                "backend": "vllm",
                "model": self.engine_model,
                "dataset": s.dataset,
                "num_samples": s.num_samples.map(u64::from).unwrap_or(self.prompts as u64),
                "device_ids": s.device_ids,
            },
            "summary": {
                "total_prompts": self.prompts,
                "successful_prompts": metrics.completed,
                "failed_prompts": metrics.failed + u64::from(self.load.not_sent),
                "total_duration_seconds": window_s,
                "avg_latency_seconds": mean_s(ok_reqs.iter().map(|r| r.e2e_ns as f64 / 1e9).collect()),
                "avg_time_to_first_token": mean_s(ok_reqs.iter().filter_map(|r| r.ttft_ns.map(|t| t as f64 / 1e9)).collect()),
                "total_tokens": prompt_tokens + completion_tokens,
                "total_prompt_tokens": prompt_tokens,
                "total_completion_tokens": completion_tokens,
                "throughput_tokens_per_second": if window_s > 0.0 { json!((prompt_tokens + completion_tokens) as f64 / window_s) } else { Value::Null },
            },
            "energy": energy_star_backend_common::ai_energy_benchmarks_energy(&e, window_s, &s.name, &carbon),
            "gpu_stats": energy_star_backend_common::ai_energy_benchmarks_gpu_stats(w, &machine::describe()),
            "backend_info": {
                "backend": "vllm",
                "endpoint": p.endpoint,
                "model": self.engine_model,
                "api": if p.api == RemoteApi::ChatCompletions { "chat/completions" } else { "completions" },
                "max_model_len": self.max_context_tokens,
                "healthy": metrics.completed > 0,
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
                "gpu_absent_reason": match &self.gpus { GpuUse::None(why) => Some(why.clone()), GpuUse::Gpus(_) => None },
                "what_is_metered": "the GPUs of this machine listed in backend.device_ids, over the measured requests (warmup excluded); a server on another machine is not metered",
                "load": sc.to_json(),
                "generation": {"max_tokens": s.max_new_tokens, "min_tokens": p.params.min_new_tokens, "ignore_eos": p.params.ignore_eos, "temperature": p.params.temperature, "seed": s.seed, "fixed_length": p.params.ignore_eos},
                "request_extra_fields": p.extra_body,
                "serving": metrics.to_json(),
                "failures_by_kind": serving::failures_by_kind(reqs),
                "not_sent": self.load.not_sent,
                "stopped": incomplete.iter().find(|w| w.starts_with("sending stopped")),
                "token_count_sources": sources,
                "energy": {
                    "whole_run": {
                        "duration_s": window_s,
                        "gpu_energy_j": gpu_j,
                        "output_tokens": tokens_generated,
                        "gpu_energy_per_output_token_j": per_token,
                        "gpu_energy_per_request_j_attributed": per_request,
                        "gpu_avg_power_w": gpu_j.map(|j| j / window_s.max(1e-9)),
                        "window": provenance(&[w]),
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
                    energy_star_backend_common::carbon_difference(&carbon),
                ],
                "carbon": energy_star_backend_common::carbon_additions(&e, &carbon),
                "incomplete": incomplete,
                "notes": self.notes,
                "warnings": w.warnings.iter().cloned().chain(warnings.iter().cloned()).collect::<Vec<_>>(),
            },
        });
        let mut f = facts::empty(self.gpus);
        f.phases.push(facts::measured(
            "inference",
            &[w],
            Some(facts::volume(metrics.completed, "requests")),
            self.load.stopped.is_none(),
        ));
        f.requests = Some(RequestCounts {
            total: self.prompts as u64,
            succeeded: metrics.completed,
            failed: metrics.failed,
            not_sent: u64::from(self.load.not_sent),
        });
        let source = sources
            .iter()
            .max_by_key(|(_, n)| **n)
            .and_then(|(name, _)| names::TokenCountSource::from_name(name))
            .map(source_to_wit)
            .unwrap_or(energy_star_plugin_sdk::backend::host::types::TokenCountSource::StreamChunks);
        f.tokens = Some(TokenCounts { input: prompt_tokens, output: completion_tokens, source });
        f.workload_ns = Some(self.load.end_ns.saturating_sub(self.load.start_ns));
        f.mean_e2e_ns = mean_ns(ok_reqs.iter().map(|r| r.e2e_ns));
        f.mean_ttft_ns = mean_ns(ok_reqs.iter().filter_map(|r| r.ttft_ns));
        let mut figure = |name: &str, value: Option<f64>, unit: &str, definition: &str| {
            if let Some(value) = value {
                f.figures.push(Figure { name: name.into(), value, unit: unit.into(), definition: definition.into() });
            }
        };
        figure(
            "GPU energy per output token, whole run",
            per_token,
            "J/token",
            "whole-run GPU energy / output tokens generated",
        );
        figure(
            "GPU energy per output token, steady state",
            steady_per_token,
            "J/token",
            "ML.ENERGY's steady-state window",
        );
        figure(
            "GPU energy per request, whole run",
            per_request,
            "J/request",
            "whole-run GPU energy / completed requests (attributed)",
        );
        figure(
            "average GPU power, whole run",
            gpu_j.map(|j| j / window_s.max(1e-9)),
            "W",
            "whole-run GPU energy / duration",
        );
        if let Some(j) = steady_per_token {
            f.request_gpu_energy_j =
                self.load.requests.iter().map(|r| (r.prompt_index, j * f64::from(r.output_tokens))).collect();
        }
        f.incomplete_reasons = incomplete;
        f.warnings = warnings;
        (report, f)
    }
}

fn mean_ns(v: impl Iterator<Item = u64>) -> Option<u64> {
    let v: Vec<u64> = v.collect();
    (!v.is_empty()).then(|| v.iter().sum::<u64>() / v.len() as u64)
}

fn source_to_wit(s: names::TokenCountSource) -> energy_star_plugin_sdk::backend::host::types::TokenCountSource {
    use energy_star_plugin_sdk::backend::host::types::TokenCountSource as W;
    match s {
        names::TokenCountSource::Engine => W::Engine,
        names::TokenCountSource::ServerUsage => W::ServerUsage,
        names::TokenCountSource::Tokenizer => W::Tokenizer,
        names::TokenCountSource::StreamChunks => W::StreamChunks,
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
                name: ENDPOINT.into(),
                description: "Base URL of the OpenAI-compatible server, e.g. http://localhost:8000/v1".into(),
                missing_message: "VLLM_ENDPOINT environment variable must be set for vLLM backend".into(),
            }],
        }
    }

    fn prepare(req: PrepareRequest) -> Result<RunPlan, ConfigError> {
        let p = plan(&req.config_json, &req.settings)?;
        Ok(RunPlan {
            // The server has the model; a local copy is used only for its tokenizer, if any.
            models: Vec::new(),
            datasets: vec![p.s.dataset.clone()],
            endpoints: vec![p.endpoint.clone()],
            gpus: p.s.gpus(),
            report_format: "ai_energy_benchmarks".into(),
            notes: p.s.notes.clone(),
        })
    }

    fn run(req: RunRequest) -> Result<RunOutput, String> {
        let p = plan(&req.config_json, &req.settings).map_err(|e| e.message)?;
        let prompts = load_prompts(&p.s)?;
        let engine = connect(&p)?;
        let info = engine.describe();
        for n in &info.notes {
            log::log(log::Level::Info, n);
        }
        let mut warnings = Vec::new();
        warmup(&engine, &p, &prompts, &mut warnings)?;
        log::progress("requests", 0, Some(prompts.len() as u64), "requests");
        let m = sdk::metered("inference", || engine.run_load(&prompts, p.params, profile(&p.sc), limits(&p.sc)))
            .map_err(|e| sdk::describe(&e))?;
        let load = m.result.map_err(|e| sdk::describe(&e))?;
        drop(engine);
        log::progress("requests", load.requests.len() as u64, Some(prompts.len() as u64), "requests");
        let outcome = Outcome {
            plan: &p,
            engine_model: info.model,
            max_context_tokens: info.max_context_tokens,
            notes: info.notes,
            prompts: prompts.len(),
            load,
            window: m.reading,
            gpus: gpus_metered(&p.s),
            warnings,
        };
        let (report, mut facts) = outcome.finish();
        // ai_energy_benchmarks' report carries its own keys only; energy-star's go beside it.
        let (report, additions) = energy_star_backend_common::split_additions(report);
        if let Some(why) = energy_star_backend_common::unmetered_gpu_reason(&report) {
            facts.incomplete_reasons.push(why);
        }
        energy_star_backend_common::write_additions(&additions, &mut facts.warnings);
        Ok(RunOutput { report_json: serde_json::to_string_pretty(&report).unwrap_or_default(), facts })
    }
}

energy_star_plugin_sdk::export_backend!(Vllm);
