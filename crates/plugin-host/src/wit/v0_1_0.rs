//! API 0.1.0 (`wit/energy-star-plugin@0.1.0`, frozen), adapted to 0.2.0 once, at load time.
//!
//! Imports: each 0.1.0 interface is implemented on the whole store state and forwards to the
//! 0.2.0 implementation on its narrow view (`crate::host`), converting types; the handles
//! 0.1.0 passes as numbers (engines, windows) map to 0.2.0's resources in [`LegacyHandles`],
//! so the unknown-id errors exist only here. Exports: a 0.1.0 backend has no `prepare`, so
//! [`legacy_plan`] derives its plan from optimum-benchmark's config keys, as hosts of 0.1.0
//! did; its run facts are what the host saw (the windows it closed, whether it said the run
//! was complete). A 0.1.0 summarizer's phases are given their leaderboard phase by name.

use std::collections::BTreeMap;
use std::time::Duration;

use energy_star_engine_local::LocalSpec;
use energy_star_engine_remote::Api;
use energy_star_engine_remote::request::BodyOptions;
use energy_star_results::records::{GpuUse, PhaseDerivation, PhaseFact, RunFacts, RunPlan};
use serde_json::Value;
use wasmtime::Store;
use wasmtime::component::{HasSelf, Linker, Resource};

use crate::error::PluginError;
use crate::host::HostServices;
use crate::host::inference::{LocalEngine, RemoteEngine};
use crate::host::meter::MeterWindow;
use crate::plugin::{
    BackendCalls, Info, LeaderboardPhase, PhaseEnergy, PluginMeta, PrepareError, RequiredSetting, RunOutput,
    RunRequest, SummarizerCalls, Summary,
};
use crate::runtime::{PluginRuntime, start_budget};
use crate::state::PluginState;
use crate::wit::latest::backend::energy_star::plugin as latest;

/// The `backend-plugin` world of 0.1.0.
pub mod backend {
    wasmtime::component::bindgen!({
        world: "backend-plugin",
        path: "../../wit/energy-star-plugin@0.1.0",
    });
}

/// The `summarizer-plugin` world of 0.1.0.
pub mod summarizer {
    wasmtime::component::bindgen!({
        world: "summarizer-plugin",
        path: "../../wit/energy-star-plugin@0.1.0",
    });
}

use backend::energy_star::plugin as v1;
use backend::exports::energy_star::plugin::backend as v1_backend;

/// 0.1.0's numbered handles, mapped to the resources of 0.2.0.
#[derive(Default)]
pub(crate) struct LegacyHandles {
    next: u64,
    engines: BTreeMap<u64, LegacyEngine>,
    windows: BTreeMap<u64, u32>,
}

#[derive(Clone, Copy)]
enum LegacyEngine {
    Local(u32),
    Remote(u32),
}

impl LegacyHandles {
    fn issue(&mut self) -> u64 {
        self.next += 1;
        self.next
    }
}

/// The 0.1.0 host interfaces, on the whole store state.
pub(crate) fn add_to_linker(l: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    backend::BackendPlugin::add_to_linker::<PluginState, HasSelf<PluginState>>(l, |s| s)
}

fn interrupted_text() -> String {
    "interrupted by the user (Ctrl-C)".to_string()
}

fn text_of(e: latest::types::Error) -> String {
    use latest::types::Error as E;
    match e {
        E::Unavailable(m) | E::Invalid(m) | E::Denied(m) | E::Failed(m) => m,
        E::Interrupted => interrupted_text(),
    }
}

fn meter_error(e: latest::types::Error) -> v1::meter::MeterError {
    match e {
        latest::types::Error::Unavailable(m) => v1::meter::MeterError::Unavailable(m),
        other => v1::meter::MeterError::Failed(text_of(other)),
    }
}

fn inference_error(e: latest::types::Error) -> v1::inference::InferenceError {
    use latest::types::Error as E;
    match e {
        E::Unavailable(m) => v1::inference::InferenceError::Unavailable(m),
        E::Invalid(m) | E::Denied(m) => v1::inference::InferenceError::Invalid(m),
        other => v1::inference::InferenceError::Failed(text_of(other)),
    }
}

// ---- log, clock, results, datasets

impl v1::log::Host for PluginState {
    fn log(&mut self, level: v1::log::Level, message: String) {
        use latest::log::Level as L;
        let level = match level {
            v1::log::Level::Trace => L::Trace,
            v1::log::Level::Debug => L::Debug,
            v1::log::Level::Info => L::Info,
            v1::log::Level::Warn => L::Warn,
            v1::log::Level::Error => L::Error,
        };
        latest::log::Host::log(&mut self.log_view(), level, message);
    }

    fn progress(&mut self, phase: String, done: u64, total: u64, unit: String) {
        // 0.1.0 said "0 when unknown".
        latest::log::Host::progress(&mut self.log_view(), phase, done, (total > 0).then_some(total), unit);
    }
}

impl v1::clock::Host for PluginState {
    fn now_ns(&mut self) -> u64 {
        latest::clock::Host::now_ns(&mut self.clock_view())
    }
}

impl v1::results::Host for PluginState {
    fn write_file(&mut self, name: String, contents: Vec<u8>) -> Result<(), String> {
        latest::results::Host::write_file(&mut self.results_view(), name, contents).map_err(text_of)
    }

    fn mark_incomplete(&mut self, reason: String) {
        latest::results::Host::mark_incomplete(&mut self.results_view(), reason);
    }
}

impl v1::datasets::Host for PluginState {
    fn load(&mut self, spec: v1::datasets::DatasetSpec) -> Result<v1::datasets::DatasetRows, String> {
        let spec = latest::datasets::DatasetSpec {
            name: spec.name,
            config: Some(spec.config).filter(|c| !c.is_empty()),
            split: Some(spec.split).filter(|s| !s.is_empty()),
            columns: spec.columns,
            num_samples: spec.num_samples,
        };
        latest::datasets::Host::load(&mut self.datasets_view(), spec)
            .map(|r| v1::datasets::DatasetRows { source: r.source, columns: r.columns, rows: r.rows })
            .map_err(text_of)
    }
}

// ---- meter

fn v1_source(s: latest::types::EnergySource) -> v1::meter::EnergySource {
    use latest::types::EnergySource as S;
    match s {
        S::NvmlEnergyCounter => v1::meter::EnergySource::NvmlEnergyCounter,
        S::NvmlPowerIntegration => v1::meter::EnergySource::NvmlPowerIntegration,
        S::Rapl => v1::meter::EnergySource::Rapl,
        S::EstimateTdp => v1::meter::EnergySource::EstimateTdp,
        S::EstimateDimm => v1::meter::EnergySource::EstimateDimm,
        S::Unavailable => v1::meter::EnergySource::Unavailable,
    }
}

fn v1_device(d: latest::meter::DeviceInfo) -> v1::meter::DeviceInfo {
    use latest::types::DeviceKind as K;
    v1::meter::DeviceInfo {
        kind: match d.kind {
            K::Gpu => v1::meter::DeviceKind::Gpu,
            K::Cpu => v1::meter::DeviceKind::Cpu,
            K::Ram => v1::meter::DeviceKind::Ram,
        },
        index: d.index,
        name: d.name,
        source: v1_source(d.source),
    }
}

fn v1_reading(r: latest::meter::WindowReading) -> v1::meter::WindowReading {
    use latest::types::ValidityFlag as F;
    v1::meter::WindowReading {
        name: r.name,
        start_ns: r.start_ns,
        end_ns: r.end_ns,
        devices: r
            .devices
            .into_iter()
            .map(|d| v1::meter::DeviceEnergy {
                device: v1_device(d.device),
                energy_j: d.energy_j,
                mean_power_w: d.mean_power_w,
                peak_power_w: d.peak_power_w,
                source: v1_source(d.source),
                validity: d
                    .validity
                    .into_iter()
                    .map(|f| match f {
                        F::TooShort => v1::meter::ValidityFlag::TooShort,
                        F::ZeroReading => v1::meter::ValidityFlag::ZeroReading,
                        F::CounterReset => v1::meter::ValidityFlag::CounterReset,
                        F::MigWholeGpu => v1::meter::ValidityFlag::MigWholeGpu,
                        F::GapInSamples => v1::meter::ValidityFlag::GapInSamples,
                    })
                    .collect(),
                idle_power_w: d.idle_power_w,
                energy_above_idle_j: d.energy_above_idle_j,
            })
            .collect(),
        warnings: r.warnings,
    }
}

impl v1::meter::Host for PluginState {
    fn devices(&mut self) -> Result<Vec<v1::meter::DeviceInfo>, v1::meter::MeterError> {
        latest::meter::Host::devices(&mut self.meter_view())
            .map(|d| d.into_iter().map(v1_device).collect())
            .map_err(meter_error)
    }

    fn begin_window(&mut self, name: String) -> Result<u64, v1::meter::MeterError> {
        let w = latest::meter::Host::begin_window(&mut self.meter_view(), name).map_err(meter_error)?;
        let id = self.legacy.issue();
        self.legacy.windows.insert(id, w.rep());
        Ok(id)
    }

    fn end_window(&mut self, id: u64) -> Result<v1::meter::WindowReading, v1::meter::MeterError> {
        let rep = self.legacy.windows.remove(&id).ok_or(v1::meter::MeterError::UnknownWindow(id))?;
        let mut view = self.meter_view();
        let reading = latest::meter::HostWindow::end(&mut view, Resource::<MeterWindow>::new_borrow(rep));
        let _ = latest::meter::HostWindow::drop(&mut view, Resource::<MeterWindow>::new_own(rep));
        reading.map(v1_reading).map_err(meter_error)
    }

    fn reading_between(
        &mut self,
        name: String,
        start_ns: u64,
        end_ns: u64,
    ) -> Result<v1::meter::WindowReading, v1::meter::MeterError> {
        latest::meter::Host::reading_between(&mut self.meter_view(), name, start_ns, end_ns)
            .map(v1_reading)
            .map_err(meter_error)
    }
}

// ---- inference

fn latest_params(p: v1::inference::GenerationParams) -> latest::inference::GenerationParams {
    latest::inference::GenerationParams {
        max_new_tokens: p.max_new_tokens,
        min_new_tokens: p.min_new_tokens,
        ignore_eos: p.ignore_eos,
        do_sample: p.do_sample,
        temperature: p.temperature,
        top_p: p.top_p,
        seed: p.seed,
        truncate: p.truncate,
    }
}

fn v1_outcome(r: latest::inference::RequestOutcome) -> v1::inference::RequestOutcome {
    use latest::inference::FailureKind as K;
    use latest::types::{FinishReason, TokenCountSource as T};
    use v1::inference::{FailureKind as V, TokenCountSource as VT};
    v1::inference::RequestOutcome {
        prompt_index: r.prompt_index,
        input_tokens: r.input_tokens,
        output_tokens: r.output_tokens,
        token_source: match r.token_source {
            T::Engine => VT::Engine,
            T::ServerUsage => VT::ServerUsage,
            T::Tokenizer => VT::Tokenizer,
            T::StreamChunks => VT::StreamChunks,
        },
        start_ns: r.start_ns,
        queue_ns: r.queue_ns.unwrap_or(0),
        ttft_ns: r.ttft_ns,
        e2e_ns: r.e2e_ns,
        itl_ns: r.itl_ns,
        output_ids: r.output_ids,
        text: r.text,
        // 0.1.0 local engines said nothing; remote ones passed the server's word.
        finish_reason: match r.request_id {
            None => None,
            Some(_) => r.finish_reason.map(|f| match f {
                FinishReason::Stop => "stop".to_string(),
                FinishReason::Length => "length".to_string(),
                FinishReason::Other(o) => o,
            }),
        },
        error: r.error.map(|e| v1::inference::RequestError {
            kind: match e.kind {
                K::Connect => V::Connect,
                K::Timeout => V::Timeout,
                K::HttpClientError => V::HttpClientError,
                K::HttpServerError => V::HttpServerError,
                K::StreamError => V::StreamError,
                K::MalformedStream => V::MalformedStream,
                K::TruncatedStream => V::TruncatedStream,
                K::EmptyResponse => V::EmptyResponse,
                K::Cancelled => V::Cancelled,
            },
            message: e.message,
            http_status: e.http_status,
        }),
    }
}

impl PluginState {
    fn legacy_engine(&self, id: u64) -> Result<LegacyEngine, v1::inference::InferenceError> {
        self.legacy.engines.get(&id).copied().ok_or(v1::inference::InferenceError::UnknownEngine(id))
    }
}

impl v1::inference::Host for PluginState {
    fn open_engine(&mut self, spec: v1::inference::EngineSpec) -> Result<u64, v1::inference::InferenceError> {
        let engine = match spec {
            v1::inference::EngineSpec::Local(l) => {
                let device = match (l.device.as_str(), l.device_ids.first()) {
                    ("cuda", Some(id)) => format!("cuda:{id}"),
                    _ => l.device.clone(),
                };
                let spec = LocalSpec { model: l.model, device, dtype: l.dtype, processor: l.processor };
                let r = self.inference_view().open_local(spec).map_err(inference_error)?;
                LegacyEngine::Local(r.rep())
            }
            v1::inference::EngineSpec::Remote(r) => {
                let api = match r.api {
                    v1::inference::RemoteApi::Completions => Api::Completions,
                    v1::inference::RemoteApi::ChatCompletions => Api::ChatCompletions,
                };
                // 0.1.0 always asked for usage in the stream.
                let body = BodyOptions { stream_usage: true, ..Default::default() };
                let timeout = Duration::from_millis(r.request_timeout_ms);
                let e = self.inference_view().connect_remote(&r.endpoint, r.model, api, timeout, body);
                LegacyEngine::Remote(e.map_err(inference_error)?.rep())
            }
        };
        let id = self.legacy.issue();
        self.legacy.engines.insert(id, engine);
        Ok(id)
    }

    fn describe_engine(&mut self, engine: u64) -> Result<v1::inference::EngineInfo, v1::inference::InferenceError> {
        let info = match self.legacy_engine(engine)? {
            LegacyEngine::Local(rep) => latest::inference::HostLocalEngine::describe(
                &mut self.inference_view(),
                Resource::<LocalEngine>::new_borrow(rep),
            ),
            LegacyEngine::Remote(rep) => latest::inference::HostRemoteEngine::describe(
                &mut self.inference_view(),
                Resource::<RemoteEngine>::new_borrow(rep),
            ),
        };
        Ok(v1::inference::EngineInfo {
            model: info.model,
            max_context_tokens: info.max_context_tokens,
            notes: info.notes,
        })
    }

    fn tokenize(
        &mut self,
        engine: u64,
        text: String,
        add_special_tokens: bool,
    ) -> Result<Vec<u32>, v1::inference::InferenceError> {
        let out = match self.legacy_engine(engine)? {
            LegacyEngine::Local(rep) => latest::inference::HostLocalEngine::tokenize(
                &mut self.inference_view(),
                Resource::new_borrow(rep),
                text,
                add_special_tokens,
            ),
            LegacyEngine::Remote(rep) => latest::inference::HostRemoteEngine::tokenize(
                &mut self.inference_view(),
                Resource::new_borrow(rep),
                text,
                add_special_tokens,
            ),
        };
        out.map_err(inference_error)
    }

    fn generate_batch(
        &mut self,
        engine: u64,
        prompts: Vec<String>,
        params: v1::inference::GenerationParams,
    ) -> Result<v1::inference::BatchOutcome, v1::inference::InferenceError> {
        let LegacyEngine::Local(rep) = self.legacy_engine(engine)? else {
            return Err(v1::inference::InferenceError::Invalid(
                "generate-batch is for local engines; remote engines use run-load".into(),
            ));
        };
        let out = latest::inference::HostLocalEngine::generate_batch(
            &mut self.inference_view(),
            Resource::new_borrow(rep),
            prompts,
            latest_params(params),
        )
        .map_err(inference_error)?;
        Ok(v1::inference::BatchOutcome {
            prefill_ns: Some(out.prefill_ns),
            decode_step_ns: out.decode_step_ns,
            requests: out.requests.into_iter().map(v1_outcome).collect(),
        })
    }

    fn run_load(
        &mut self,
        engine: u64,
        prompts: Vec<String>,
        params: v1::inference::GenerationParams,
        profile: v1::inference::LoadProfile,
        limits: v1::inference::LoadLimits,
    ) -> Result<v1::inference::LoadOutcome, v1::inference::InferenceError> {
        let LegacyEngine::Remote(rep) = self.legacy_engine(engine)? else {
            return Err(v1::inference::InferenceError::Invalid(
                "run-load is for remote engines; local engines use generate-batch".into(),
            ));
        };
        let profile = match profile {
            v1::inference::LoadProfile::Sequential => latest::inference::LoadProfile::Sequential,
            v1::inference::LoadProfile::Concurrency(n) => latest::inference::LoadProfile::Concurrency(n),
            v1::inference::LoadProfile::Rate(r) => {
                latest::inference::LoadProfile::Rate(latest::inference::RateProfile {
                    requests_per_s: r.requests_per_s,
                    burstiness: r.burstiness,
                    seed: r.seed,
                    max_concurrency: r.max_concurrency,
                })
            }
        };
        let limits = latest::inference::LoadLimits {
            max_duration_ms: (limits.max_duration_ms > 0).then_some(limits.max_duration_ms),
            max_consecutive_failures: limits.max_consecutive_failures,
            drain_timeout_ms: limits.drain_timeout_ms,
        };
        let o = latest::inference::HostRemoteEngine::run_load(
            &mut self.inference_view(),
            Resource::new_borrow(rep),
            prompts,
            latest_params(params),
            profile,
            limits,
        )
        .map_err(inference_error)?;
        Ok(v1::inference::LoadOutcome {
            requests: o.requests.into_iter().map(v1_outcome).collect(),
            not_sent: o.not_sent,
            stopped: o.stopped.map(|s| match s {
                latest::inference::StopReason::TimeBound => "the time bound was reached".to_string(),
                latest::inference::StopReason::ConsecutiveFailures(n) => {
                    format!("{n} requests failed in a row; the server looks unable to serve")
                }
                latest::inference::StopReason::Interrupted => interrupted_text(),
            }),
            start_ns: o.start_ns,
            end_ns: o.end_ns,
            peak_concurrency: o.peak_concurrency,
        })
    }

    fn close_engine(&mut self, engine: u64) {
        let Some(e) = self.legacy.engines.remove(&engine) else { return };
        let mut view = self.inference_view();
        let _ = match e {
            LegacyEngine::Local(rep) => latest::inference::HostLocalEngine::drop(&mut view, Resource::new_own(rep)),
            LegacyEngine::Remote(rep) => latest::inference::HostRemoteEngine::drop(&mut view, Resource::new_own(rep)),
        };
    }
}

// ---- exports

/// A 0.1.0 summarizer.
pub(crate) struct Summarizer(pub(crate) summarizer::SummarizerPluginPre<PluginState>);

/// A 0.1.0 backend.
pub(crate) struct Backend(pub(crate) backend::BackendPluginPre<PluginState>);

impl Summarizer {
    fn instance(
        &self,
        rt: &PluginRuntime,
        label: &str,
        discovery: bool,
    ) -> Result<(Store<PluginState>, summarizer::SummarizerPlugin), PluginError> {
        let services = HostServices::new(label, Default::default());
        let mut store = if discovery { rt.discovery_store(services) } else { rt.store(services) };
        let inst = self.0.instantiate(&mut store).map_err(|e| rt.failure(&store, e, label, "instantiate"))?;
        start_budget(&mut store);
        Ok((store, inst))
    }
}

/// The leaderboard phase of a 0.1.0 phase name, as hosts of 0.1.0 mapped it.
fn leaderboard_phase(name: &str) -> Option<LeaderboardPhase> {
    match name {
        "preprocess" | "preprocess_dataset" => Some(LeaderboardPhase::Preprocess),
        "prefill" => Some(LeaderboardPhase::Prefill),
        "decode" => Some(LeaderboardPhase::Decode),
        _ => None,
    }
}

impl SummarizerCalls for Summarizer {
    fn info(&self, rt: &PluginRuntime, label: &str) -> Result<Info, PluginError> {
        let (mut store, inst) = self.instance(rt, label, true)?;
        let i = inst
            .energy_star_plugin_summarizer()
            .call_info(&mut store)
            .map_err(|e| rt.failure(&store, e, label, "info"))?;
        Ok(Info::Summarizer { name: i.name, version: i.version, description: i.description, formats: i.formats })
    }

    fn detect(&self, rt: &PluginRuntime, label: &str, report: &str) -> Result<f32, PluginError> {
        let (mut store, inst) = self.instance(rt, label, false)?;
        inst.energy_star_plugin_summarizer()
            .call_detect(&mut store, report)
            .map_err(|e| rt.failure(&store, e, label, "detect"))
    }

    fn summarize(&self, rt: &PluginRuntime, label: &str, report: &str) -> Result<Result<Summary, String>, PluginError> {
        let (mut store, inst) = self.instance(rt, label, false)?;
        let answer = inst
            .energy_star_plugin_summarizer()
            .call_summarize(&mut store, report)
            .map_err(|e| rt.failure(&store, e, label, "summarize"))?;
        Ok(answer.map(|s| Summary {
            format: s.format,
            total_wh: s.total_wh,
            gpu_absent_reason: s.gpu_absent_reason,
            cpu_wh: s.cpu_wh,
            ram_wh: s.ram_wh,
            phases: s
                .phases
                .into_iter()
                .map(|p| PhaseEnergy {
                    leaderboard_phase: leaderboard_phase(&p.name),
                    name: p.name,
                    gpu_wh: p.gpu_wh,
                    cpu_wh: p.cpu_wh,
                    ram_wh: p.ram_wh,
                    counted: p.counted,
                })
                .collect(),
            warnings: s.warnings,
        }))
    }
}

/// Parses `backend.device_ids` as configs write it: `0`, `"0, 1, 2"`, `[0, 1]`, or null.
pub fn parse_device_ids(value: Option<&Value>) -> Result<Vec<u32>, String> {
    let bad = |v: &Value| format!("backend.device_ids = {v}: expected a GPU index, a comma-separated list or a list");
    match value {
        None | Some(Value::Null) => Ok(vec![0]),
        Some(Value::Number(n)) => n
            .as_u64()
            .and_then(|i| u32::try_from(i).ok())
            .map(|i| vec![i])
            .ok_or_else(|| bad(&Value::Number(n.clone()))),
        Some(v @ Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<u32>().map_err(|_| bad(v)))
            .collect(),
        Some(v @ Value::Array(items)) => {
            items.iter().map(|i| i.as_u64().and_then(|i| u32::try_from(i).ok()).ok_or_else(|| bad(v))).collect()
        }
        Some(v) => Err(bad(v)),
    }
}

/// The plan a host of 0.1.0 assumed: the model, processor and dataset the optimum-benchmark
/// config names, the values of the backend's required settings as endpoints, and the GPUs of
/// `backend.device`/`backend.device_ids`.
pub fn legacy_plan(
    meta: &PluginMeta,
    config_json: &str,
    settings: &[(String, String)],
) -> Result<RunPlan, PrepareError> {
    let cfg: Value = serde_json::from_str(config_json)
        .map_err(|e| PrepareError::Config { key: None, message: format!("config is not JSON: {e}") })?;
    let at = |path: &str| path.split('.').try_fold(&cfg, |v, k| v.get(k));
    let text = |path: &str| at(path).and_then(Value::as_str).map(str::to_string);
    let device = text("backend.device").unwrap_or_else(|| "cuda".into());
    let gpus = if device.starts_with("cuda") {
        let ids = parse_device_ids(at("backend.device_ids"))
            .map_err(|message| PrepareError::Config { key: Some("backend.device_ids".into()), message })?;
        GpuUse::Gpus(ids)
    } else {
        GpuUse::None(format!("backend.device={device}: the run used no GPU"))
    };
    Ok(RunPlan {
        models: ["backend.model", "backend.processor"].iter().filter_map(|k| text(k)).collect(),
        datasets: text("scenario.dataset_name").into_iter().collect(),
        endpoints: settings.iter().map(|(_, v)| v.clone()).collect(),
        gpus,
        report_format: meta.formats.first().cloned().unwrap_or_default(),
        notes: vec![
            "a backend of plugin API 0.1.0: the host derived the plan from the config's backend.model, backend.processor, scenario.dataset_name and backend.device keys".into(),
        ],
    })
}

impl Backend {
    fn instance(
        &self,
        rt: &PluginRuntime,
        label: &str,
        services: HostServices,
        discovery: bool,
    ) -> (Store<PluginState>, Result<backend::BackendPlugin, PluginError>) {
        let mut store = if discovery { rt.discovery_store(services) } else { rt.store(services) };
        let inst = self.0.instantiate(&mut store).map_err(|e| rt.failure(&store, e, label, "instantiate"));
        start_budget(&mut store);
        (store, inst)
    }
}

impl BackendCalls for Backend {
    fn info(&self, rt: &PluginRuntime, label: &str) -> Result<Info, PluginError> {
        let (mut store, inst) = self.instance(rt, label, HostServices::new("(info)", Default::default()), true);
        let i = inst?
            .energy_star_plugin_backend()
            .call_info(&mut store)
            .map_err(|e| rt.failure(&store, e, label, "info"))?;
        Ok(Info::Backend {
            name: i.name,
            version: i.version,
            description: i.description,
            report_format: i.report_format,
            required_settings: i
                .required_settings
                .into_iter()
                .map(|s| RequiredSetting {
                    name: s.name,
                    description: s.description,
                    missing_message: s.missing_message,
                })
                .collect(),
        })
    }

    fn prepare(
        &self,
        _rt: &PluginRuntime,
        meta: &PluginMeta,
        config_json: &str,
        settings: &[(String, String)],
    ) -> Result<RunPlan, PrepareError> {
        legacy_plan(meta, config_json, settings)
    }

    fn run(
        &self,
        rt: &PluginRuntime,
        meta: &PluginMeta,
        services: HostServices,
        request: &RunRequest,
    ) -> (Result<Result<RunOutput, String>, PluginError>, HostServices) {
        let label = meta.label();
        let (mut store, inst) = self.instance(rt, &label, services, false);
        let answer = inst.and_then(|inst| {
            let req =
                v1_backend::RunRequest { config_json: request.config_json.clone(), settings: request.settings.clone() };
            inst.energy_star_plugin_backend()
                .call_run(&mut store, &req)
                .map_err(|e| rt.failure(&store, e, &label, "run"))
        });
        let services = store.into_data().into_services();
        // What a 0.1.0 backend's run did, as the host saw it: its windows, its word on
        // completeness.
        let result = answer.map(|a| {
            a.map(|o| RunOutput {
                report_json: o.report_json,
                facts: RunFacts {
                    gpus: request.plan.gpus.clone(),
                    phases: services
                        .readings
                        .iter()
                        .map(|r| PhaseFact {
                            name: r.name.clone(),
                            windows: vec![u32::try_from(r.id).unwrap_or(u32::MAX)],
                            derivation: PhaseDerivation::Measured,
                            definition: None,
                            volume: None,
                            complete: true,
                        })
                        .collect(),
                    requests: None,
                    tokens: None,
                    workload_ns: None,
                    mean_e2e_ns: None,
                    mean_ttft_ns: None,
                    figures: Vec::new(),
                    request_gpu_energy_j: Vec::new(),
                    incomplete_reasons: if o.complete || !services.results.incomplete.is_empty() {
                        Vec::new()
                    } else {
                        vec!["the backend says the run is incomplete (plugin API 0.1.0 gives no reason)".into()]
                    },
                    warnings: Vec::new(),
                },
            })
        });
        (result, services)
    }
}
