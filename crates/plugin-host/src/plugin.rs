//! A loaded plugin and the typed calls into it. Calls take and give host types, whatever API
//! version the plugin was built for: the version is resolved once, when the plugin is loaded,
//! into a [`Calls`] implementation (`crate::wit::v0_2_5`, for 0.2.0 to 0.2.5, or the 0.1.0 adapter).

use std::sync::Arc;

use energy_star_results::records::{RunFacts, RunPlan};

use crate::error::PluginError;
use crate::host::HostServices;
use crate::runtime::{CompileSource, PluginRuntime};
use crate::{Origin, PluginKind};

/// What a plugin says about itself, checked by the host.
#[derive(Debug, Clone)]
pub struct PluginMeta {
    pub name: String,
    pub version: String,
    pub description: String,
    pub kind: PluginKind,
    pub api_version: String,
    pub origin: Origin,
    /// Plugins this one replaced (same kind and name, lower precedence).
    pub replaces: Vec<Origin>,
    /// Summarizers: formats read. Backends: the report format written.
    pub formats: Vec<String>,
    /// Backends: settings required from the environment.
    pub required_settings: Vec<RequiredSetting>,
    /// SHA-256 of the plugin file (hex): which plugin ran, for records and bundles.
    pub sha256: String,
}

impl PluginMeta {
    /// `kind name version (origin)`, used in every error about this plugin.
    pub fn label(&self) -> String {
        format!("{} {} {} ({})", self.kind, self.name, self.version, self.origin)
    }
}

/// A setting a backend needs from the environment.
#[derive(Debug, Clone)]
pub struct RequiredSetting {
    pub name: String,
    pub description: String,
    pub missing_message: String,
}

/// The phases AI Energy Score's summary names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaderboardPhase {
    Preprocess,
    Prefill,
    Decode,
}

impl LeaderboardPhase {
    /// The summary key's stem: `preprocess_wh`, `prefill_wh`, `decode_wh`.
    pub fn as_str(self) -> &'static str {
        match self {
            LeaderboardPhase::Preprocess => "preprocess",
            LeaderboardPhase::Prefill => "prefill",
            LeaderboardPhase::Decode => "decode",
        }
    }
}

/// The unified summary a summarizer returns, checked for sanity by the host.
#[derive(Debug, Clone)]
pub struct Summary {
    pub format: String,
    /// GPU energy of the counted phases; none when the report has no GPU figure.
    pub total_wh: Option<f64>,
    /// Why there is no GPU figure, when the report says.
    pub gpu_absent_reason: Option<String>,
    pub cpu_wh: Option<f64>,
    pub ram_wh: Option<f64>,
    pub phases: Vec<PhaseEnergy>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct PhaseEnergy {
    pub name: String,
    pub leaderboard_phase: Option<LeaderboardPhase>,
    pub gpu_wh: Option<f64>,
    pub cpu_wh: Option<f64>,
    pub ram_wh: Option<f64>,
    pub counted: bool,
}

/// A config a backend refused in `prepare`, or the call itself failing.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    #[error("{}{message}", key.as_ref().map(|k| format!("{k}: ")).unwrap_or_default())]
    Config { key: Option<String>, message: String },
    #[error(transparent)]
    Plugin(#[from] PluginError),
}

/// What `run` is given.
#[derive(Debug, Clone)]
pub struct RunRequest {
    pub config_json: String,
    pub settings: Vec<(String, String)>,
    pub plan: RunPlan,
}

/// The backend's answer: the report and its facts.
#[derive(Debug)]
pub struct RunOutput {
    pub report_json: String,
    pub facts: RunFacts,
}

/// What a backend's run produced, whatever happened.
pub struct BackendOutcome {
    /// The plugin's answer, or its error.
    pub result: Result<RunOutput, PluginError>,
    /// The run's services afterwards: readings taken, files written, reasons given.
    pub services: HostServices,
}

/// What a plugin says about itself when loaded.
pub(crate) enum Info {
    Summarizer {
        name: String,
        version: String,
        description: String,
        formats: Vec<String>,
    },
    Backend {
        name: String,
        version: String,
        description: String,
        report_format: String,
        required_settings: Vec<RequiredSetting>,
    },
}

/// The calls a summarizer answers, in host types.
pub(crate) trait SummarizerCalls: Send + Sync {
    fn info(&self, rt: &PluginRuntime, label: &str) -> Result<Info, PluginError>;
    fn detect(&self, rt: &PluginRuntime, label: &str, report: &str) -> Result<f32, PluginError>;
    /// The plugin's answer: its summary or its error message.
    fn summarize(&self, rt: &PluginRuntime, label: &str, report: &str) -> Result<Result<Summary, String>, PluginError>;
}

/// The calls a backend answers, in host types.
pub(crate) trait BackendCalls: Send + Sync {
    fn info(&self, rt: &PluginRuntime, label: &str) -> Result<Info, PluginError>;
    fn prepare(
        &self,
        rt: &PluginRuntime,
        meta: &PluginMeta,
        config_json: &str,
        settings: &[(String, String)],
    ) -> Result<RunPlan, PrepareError>;
    /// Runs; gives back the services with what the run did to them.
    fn run(
        &self,
        rt: &PluginRuntime,
        meta: &PluginMeta,
        services: HostServices,
        request: &RunRequest,
    ) -> (Result<Result<RunOutput, String>, PluginError>, HostServices);
}

/// A plugin's calls, by kind, for the API version it was built for.
#[derive(Clone)]
pub(crate) enum Calls {
    Summarizer(Arc<dyn SummarizerCalls>),
    Backend(Arc<dyn BackendCalls>),
}

/// A loaded, linked plugin with its metadata.
#[derive(Clone)]
pub struct Plugin {
    pub meta: PluginMeta,
    pub compiled_from: CompileSource,
    calls: Calls,
}

impl Plugin {
    fn label(&self) -> String {
        self.meta.label()
    }

    /// Asks a summarizer how sure it is that `report` is its format (0..=1).
    pub fn detect(&self, rt: &PluginRuntime, report: &str) -> Result<f32, PluginError> {
        let Calls::Summarizer(s) = &self.calls else { return Ok(0.0) };
        let label = self.label();
        let confidence = s.detect(rt, &label, report)?;
        if !(0.0..=1.0).contains(&confidence) {
            return Err(PluginError::Malformed {
                plugin: label,
                call: "detect",
                problem: format!("confidence {confidence} is outside 0..=1"),
            });
        }
        Ok(confidence)
    }

    /// Summarizes `report` with this summarizer; the result is checked before it is trusted.
    pub fn summarize(&self, rt: &PluginRuntime, report: &str) -> Result<Summary, PluginError> {
        let label = self.label();
        let Calls::Summarizer(s) = &self.calls else {
            return Err(PluginError::Guest { plugin: label, message: "not a summarizer".into() });
        };
        let summary = s
            .summarize(rt, &label, report)?
            .map_err(|message| PluginError::Guest { plugin: label.clone(), message })?;
        check_summary(&summary).map_err(|problem| PluginError::Malformed {
            plugin: label,
            call: "summarize",
            problem,
        })?;
        Ok(summary)
    }

    /// Whether the backend declares its run plan itself (API 0.2.0 and later): then the plan's
    /// models and datasets are what it will open, and the host checks they are there. A 0.1.0
    /// backend's plan is the host's guess from optimum-benchmark's config keys: a grant of what
    /// it may open, not a promise that it will.
    pub fn declares_its_plan(&self) -> bool {
        self.meta.api_version != "0.1.0"
    }

    /// Asks a backend to check the config and declare what the run needs. Nothing is
    /// touched: no meter, no results folder.
    pub fn prepare(
        &self,
        rt: &PluginRuntime,
        config_json: &str,
        settings: &[(String, String)],
    ) -> Result<RunPlan, PrepareError> {
        let Calls::Backend(b) = &self.calls else {
            return Err(PluginError::Guest { plugin: self.label(), message: "not a backend".into() }.into());
        };
        b.prepare(rt, &self.meta, config_json, settings)
    }

    /// Runs a backend with its host services. Runs on the calling thread; never call it from a
    /// tokio worker.
    pub fn run_backend(&self, rt: &PluginRuntime, services: HostServices, request: &RunRequest) -> BackendOutcome {
        let label = self.label();
        let Calls::Backend(b) = &self.calls else {
            return BackendOutcome {
                result: Err(PluginError::Guest { plugin: label, message: "not a backend".into() }),
                services,
            };
        };
        let (answer, services) = b.run(rt, &self.meta, services, request);
        let result = answer.and_then(|a| a.map_err(|message| PluginError::Guest { plugin: label.clone(), message }));
        let result = result.and_then(|out| match serde_json::from_str::<serde_json::Value>(&out.report_json) {
            Ok(_) => Ok(out),
            Err(e) => Err(PluginError::Malformed {
                plugin: label.clone(),
                call: "run",
                problem: format!("report is not valid JSON: {e}"),
            }),
        });
        BackendOutcome { result, services }
    }
}

/// The sanity checks of a summary: finite figures, named phases, a total that is the sum of its
/// counted phases.
fn check_summary(s: &Summary) -> Result<(), String> {
    let finite = |v: Option<f64>| v.is_none_or(f64::is_finite);
    if let Some(t) = s.total_wh.filter(|t| !t.is_finite()) {
        return Err(format!("total {t} Wh is not a finite number"));
    }
    if !finite(s.cpu_wh) || !finite(s.ram_wh) {
        return Err("CPU or RAM total is not a finite number".into());
    }
    let mut sum = 0.0;
    for p in &s.phases {
        if p.name.trim().is_empty() {
            return Err("a phase has an empty name".into());
        }
        if !finite(p.gpu_wh) || !finite(p.cpu_wh) || !finite(p.ram_wh) {
            return Err(format!("phase {:?} has an energy that is not a finite number", p.name));
        }
        if p.counted {
            sum += p.gpu_wh.unwrap_or(0.0);
        }
    }
    if let Some(total) = s.total_wh
        && (sum - total).abs() > 1e-9 * sum.abs().max(1.0)
    {
        return Err(format!("total {total} Wh is not the sum of its counted phases ({sum} Wh)"));
    }
    Ok(())
}

/// Why a plugin did not load, with its kind when the host got as far as reading it.
#[derive(Debug)]
pub struct LoadFailure {
    pub kind: Option<PluginKind>,
    pub error: PluginError,
}

/// Loads one plugin from bytes: component check, compile (or cache), version, link, metadata.
pub fn load_plugin(rt: &PluginRuntime, bytes: &[u8], origin: Origin) -> Result<Plugin, LoadFailure> {
    let origin_text = origin.to_string();
    let unknown = |error| LoadFailure { kind: None, error };
    let (component, compiled_from) = rt.load_component(bytes, &origin_text).map_err(unknown)?;
    let (kind, api_version) = rt.inspect(&component, &origin_text).map_err(unknown)?;
    let known = |error| LoadFailure { kind: Some(kind), error };
    let calls = rt.prepare(&component, kind, &api_version, &origin_text).map_err(known)?;
    let mut meta = read_meta(rt, &calls, kind, api_version, origin).map_err(known)?;
    meta.sha256 = sha256_hex(bytes);
    Ok(Plugin { meta, compiled_from, calls })
}

/// SHA-256 of `bytes`, lower-case hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

/// Reads a plugin's metadata by calling its `info` export, and checks it.
fn read_meta(
    rt: &PluginRuntime,
    calls: &Calls,
    kind: PluginKind,
    api_version: String,
    origin: Origin,
) -> Result<PluginMeta, PluginError> {
    let label = format!("{kind} at {origin}");
    let malformed = |problem: String| PluginError::Malformed { plugin: label.clone(), call: "info", problem };
    let info = match calls {
        Calls::Summarizer(s) => s.info(rt, &label)?,
        Calls::Backend(b) => b.info(rt, &label)?,
    };
    let meta = match info {
        Info::Summarizer { name, version, description, formats } => {
            if formats.is_empty() {
                return Err(malformed("declares no formats".into()));
            }
            PluginMeta {
                name,
                version,
                description,
                kind,
                api_version,
                origin,
                replaces: Vec::new(),
                formats,
                required_settings: Vec::new(),
                sha256: String::new(),
            }
        }
        Info::Backend { name, version, description, report_format, required_settings } => {
            for s in &required_settings {
                if !valid_setting_name(&s.name) {
                    return Err(malformed(format!(
                        "required setting {:?} is not an environment variable name",
                        s.name
                    )));
                }
            }
            PluginMeta {
                name,
                version,
                description,
                kind,
                api_version,
                origin,
                replaces: Vec::new(),
                formats: vec![report_format],
                required_settings,
                sha256: String::new(),
            }
        }
    };
    if !valid_plugin_name(&meta.name) {
        return Err(malformed(format!(
            "name {:?} must be 1-64 characters of letters, digits, '-', '_' or '.'",
            meta.name
        )));
    }
    Ok(meta)
}

fn valid_plugin_name(name: &str) -> bool {
    (1..=64).contains(&name.len()) && name.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn valid_setting_name(name: &str) -> bool {
    !name.is_empty()
        && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !name.starts_with(|c: char| c.is_ascii_digit())
}
