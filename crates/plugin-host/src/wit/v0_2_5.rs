//! Bindings of API 0.2.5 (`wit/energy-star-plugin@0.2.5`), the one the host implements
//! (`crate::host`). Resources are mapped to the host's own types. They serve 0.2.0 to 0.2.4
//! plugins too: 0.2.1 to 0.2.5 only add imports (interfaces, resources, and methods of the
//! local engine), and wasmtime matches `@0.2.0` to `@0.2.4` names to `@0.2.5` ones
//! (semver-compatible), for the host's imports and for the plugin's exports alike.

/// The `backend-plugin` world.
pub mod backend {
    wasmtime::component::bindgen!({
        world: "backend-plugin",
        path: "../../wit/energy-star-plugin@0.2.5",
        with: {
            "energy-star:plugin/meter.window": crate::host::meter::MeterWindow,
            "energy-star:plugin/inference.local-engine": crate::host::inference::LocalEngine,
            "energy-star:plugin/inference.remote-engine": crate::host::inference::RemoteEngine,
            "energy-star:plugin/datasets.table": crate::host::datasets::Table,
            "energy-star:plugin/tasks.processor": crate::host::tasks::TaskProcessor,
            "energy-star:plugin/tasks.prepared": crate::host::tasks::PreparedRows,
            "energy-star:plugin/tasks.model": crate::host::tasks::TaskModel,
        },
    });
}

/// The `summarizer-plugin` world.
pub mod summarizer {
    wasmtime::component::bindgen!({
        world: "summarizer-plugin",
        path: "../../wit/energy-star-plugin@0.2.5",
    });
}

use energy_star_results::records::{
    Figure, GpuUse, PhaseDerivation, PhaseFact, RequestCounts, RunFacts, RunPlan, TokenCounts, Volume,
};
use energy_star_types::TokenCountSource;
use wasmtime::Store;

use crate::error::PluginError;
use crate::host::HostServices;
use crate::plugin::{
    BackendCalls, Info, LeaderboardPhase, PhaseEnergy, PluginMeta, PrepareError, RequiredSetting, RunOutput,
    RunRequest, SummarizerCalls, Summary,
};
use crate::runtime::{PluginRuntime, start_budget};
use crate::state::PluginState;

use backend::energy_star::plugin::types as wit_types;
use backend::exports::energy_star::plugin::backend as wit_backend;
use summarizer::exports::energy_star::plugin::summarizer as wit_summarizer;

/// A summarizer of API 0.2.0 to 0.2.5.
pub(crate) struct Summarizer(pub(crate) summarizer::SummarizerPluginPre<PluginState>);

/// A backend of API 0.2.0 to 0.2.5.
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
                    name: p.name,
                    leaderboard_phase: p.leaderboard_phase.map(|l| match l {
                        wit_summarizer::LeaderboardPhase::Preprocess => LeaderboardPhase::Preprocess,
                        wit_summarizer::LeaderboardPhase::Prefill => LeaderboardPhase::Prefill,
                        wit_summarizer::LeaderboardPhase::Decode => LeaderboardPhase::Decode,
                    }),
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
        rt: &PluginRuntime,
        meta: &PluginMeta,
        config_json: &str,
        settings: &[(String, String)],
    ) -> Result<RunPlan, PrepareError> {
        let label = meta.label();
        // `prepare` touches nothing: its instance gets no meter, no results folder, no grant
        // to open anything.
        let (mut store, inst) = self.instance(rt, &label, HostServices::new(&meta.name, Default::default()), false);
        let request = wit_backend::PrepareRequest { config_json: config_json.to_string(), settings: settings.to_vec() };
        let answer = inst?
            .energy_star_plugin_backend()
            .call_prepare(&mut store, &request)
            .map_err(|e| rt.failure(&store, e, &label, "prepare"))?;
        answer.map(plan_from_wit).map_err(|e| PrepareError::Config { key: e.key, message: e.message })
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
        let result = inst.and_then(|inst| {
            let req = wit_backend::RunRequest {
                config_json: request.config_json.clone(),
                settings: request.settings.clone(),
                plan: plan_to_wit(&request.plan),
            };
            let answer = inst
                .energy_star_plugin_backend()
                .call_run(&mut store, &req)
                .map_err(|e| rt.failure(&store, e, &label, "run"))?;
            Ok(answer.map(|o| RunOutput { report_json: o.report_json, facts: facts_from_wit(o.facts) }))
        });
        (result, store.into_data().into_services())
    }
}

fn gpus_from_wit(g: wit_types::GpuUse) -> GpuUse {
    match g {
        wit_types::GpuUse::Gpus(ids) => GpuUse::Gpus(ids),
        wit_types::GpuUse::None(why) => GpuUse::None(why),
    }
}

fn gpus_to_wit(g: &GpuUse) -> wit_types::GpuUse {
    match g {
        GpuUse::Gpus(ids) => wit_types::GpuUse::Gpus(ids.clone()),
        GpuUse::None(why) => wit_types::GpuUse::None(why.clone()),
    }
}

fn plan_from_wit(p: wit_backend::RunPlan) -> RunPlan {
    RunPlan {
        models: p.models,
        datasets: p.datasets,
        endpoints: p.endpoints,
        gpus: gpus_from_wit(p.gpus),
        report_format: p.report_format,
        notes: p.notes,
    }
}

fn plan_to_wit(p: &RunPlan) -> wit_backend::RunPlan {
    wit_backend::RunPlan {
        models: p.models.clone(),
        datasets: p.datasets.clone(),
        endpoints: p.endpoints.clone(),
        gpus: gpus_to_wit(&p.gpus),
        report_format: p.report_format.clone(),
        notes: p.notes.clone(),
    }
}

fn token_source(s: wit_types::TokenCountSource) -> TokenCountSource {
    match s {
        wit_types::TokenCountSource::Engine => TokenCountSource::Engine,
        wit_types::TokenCountSource::ServerUsage => TokenCountSource::ServerUsage,
        wit_types::TokenCountSource::Tokenizer => TokenCountSource::Tokenizer,
        wit_types::TokenCountSource::StreamChunks => TokenCountSource::StreamChunks,
    }
}

fn facts_from_wit(f: wit_backend::RunFacts) -> RunFacts {
    RunFacts {
        gpus: gpus_from_wit(f.gpus),
        phases: f
            .phases
            .into_iter()
            .map(|p| PhaseFact {
                name: p.name,
                windows: p.windows,
                derivation: match p.derivation {
                    wit_backend::PhaseDerivation::Measured => PhaseDerivation::Measured,
                    wit_backend::PhaseDerivation::MeanOfWindows => PhaseDerivation::MeanOfWindows,
                    wit_backend::PhaseDerivation::DifferenceOfWindows => PhaseDerivation::DifferenceOfWindows,
                    wit_backend::PhaseDerivation::Attributed => PhaseDerivation::Attributed,
                },
                definition: p.definition,
                volume: p.volume.map(|v| Volume { count: v.count, unit: v.unit }),
                complete: p.complete,
            })
            .collect(),
        requests: f.requests.map(|r| RequestCounts {
            total: r.total,
            succeeded: r.succeeded,
            failed: r.failed,
            not_sent: r.not_sent,
        }),
        tokens: f.tokens.map(|t| TokenCounts { input: t.input, output: t.output, source: token_source(t.source) }),
        workload_ns: f.workload_ns,
        mean_e2e_ns: f.mean_e2e_ns,
        mean_ttft_ns: f.mean_ttft_ns,
        figures: f
            .figures
            .into_iter()
            .map(|x| Figure { name: x.name, value: x.value, unit: x.unit, definition: x.definition })
            .collect(),
        request_gpu_energy_j: f.request_gpu_energy_j,
        incomplete_reasons: f.incomplete_reasons,
        warnings: f.warnings,
    }
}
