//! Plugins: discovery, the sandbox they run in, and typed calls into them.
//!
//! A plugin is a WebAssembly component that exports one interface of the `energy-star:plugin`
//! WIT package: `summarizer` (report → unified summary) or `backend` (runs a benchmark through
//! the host's capabilities). The host reads which, and the API version, from the export's
//! versioned name, and refuses versions it does not accept.
//!
//! Rooms: [`runtime`] (engine, limits, compile cache), [`bindings`] (the one `bindgen!`),
//! [`state`] (per-store state), [`host`] (the backend world's imports), [`error`] (trap vs guest
//! error vs limits). This module finds plugins and calls them; commands never touch wasmtime.

pub mod bindings;
pub mod error;
mod host;
pub mod runtime;
mod state;

use std::fmt;
use std::path::{Path, PathBuf};

pub use error::PluginError;
pub use host::{HostServices, interrupt, interrupted};
pub use runtime::{CompileSource, PluginRuntime, RuntimeOptions, SandboxLimits};

use bindings::backend::exports::energy_star::plugin::backend as wit_backend;
use bindings::summarizer::exports::energy_star::plugin::summarizer as wit_summarizer;
use runtime::{Prepared, start_budget};

/// A plugin built into the binary: its package name and component bytes.
#[derive(Debug, Clone, Copy)]
pub struct Builtin {
    pub package: &'static str,
    pub wasm: &'static [u8],
}

/// The default drop-in folder (the container's).
pub const DEFAULT_PLUGIN_DIR: &str = "/opt/energy-star/plugins";

/// Which world a plugin implements.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum PluginKind {
    Backend,
    Summarizer,
}

impl PluginKind {
    pub fn as_str(self) -> &'static str {
        match self {
            PluginKind::Backend => "backend",
            PluginKind::Summarizer => "summarizer",
        }
    }
}

impl fmt::Display for PluginKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a plugin came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Embedded in the binary; the package name.
    Builtin(&'static str),
    /// A `.wasm` file in a plugin folder.
    File(PathBuf),
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Origin::Builtin(_) => f.write_str("built-in"),
            Origin::File(p) => write!(f, "{}", p.display()),
        }
    }
}

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
}

impl PluginMeta {
    /// `name version (origin)`, used in every error about this plugin.
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

/// A loaded, linked plugin with its metadata.
#[derive(Clone)]
pub struct Plugin {
    pub meta: PluginMeta,
    pub compiled_from: CompileSource,
    prepared: Prepared,
}

/// The unified summary a summarizer returns, checked for sanity by the host.
#[derive(Debug, Clone)]
pub struct Summary {
    pub format: String,
    /// GPU energy of the counted phases; None only with `gpu_absent_reason`.
    pub total_wh: Option<f64>,
    pub gpu_absent_reason: Option<String>,
    pub cpu_wh: Option<f64>,
    pub ram_wh: Option<f64>,
    pub phases: Vec<PhaseEnergy>,
    pub warnings: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct PhaseEnergy {
    pub name: String,
    pub gpu_wh: Option<f64>,
    pub cpu_wh: Option<f64>,
    pub ram_wh: Option<f64>,
    pub counted: bool,
}

/// What a backend's run produced.
#[derive(Debug)]
pub struct BackendOutcome {
    /// The plugin's answer: the report and whether it says it is complete, or its error.
    pub result: Result<RunOutput, PluginError>,
    /// Reasons the plugin gave through `results.mark-incomplete`.
    pub incomplete: Vec<String>,
    /// Files the plugin wrote through `results.write-file`.
    pub written: Vec<String>,
    /// Every measurement window the plugin closed.
    pub windows: Vec<energy_star_meter::WindowReading>,
}

#[derive(Debug)]
pub struct RunOutput {
    pub report_json: String,
    pub complete: bool,
}

impl Plugin {
    fn name_for_errors(&self) -> String {
        self.meta.label()
    }

    /// Asks a summarizer how sure it is that `report` is its format (0..=1).
    pub fn detect(&self, rt: &PluginRuntime, report: &str) -> Result<f32, PluginError> {
        let Prepared::Summarizer(pre) = &self.prepared else { return Ok(0.0) };
        let label = self.name_for_errors();
        let (mut store, inst) = summarizer_instance(rt, pre, &label)?;
        let confidence = inst
            .energy_star_plugin_summarizer()
            .call_detect(&mut store, report)
            .map_err(|e| rt.failure(&store, e, &label, "detect"))?;
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
        let label = self.name_for_errors();
        let Prepared::Summarizer(pre) = &self.prepared else {
            return Err(PluginError::Guest { plugin: label, message: "not a summarizer".into() });
        };
        let (mut store, inst) = summarizer_instance(rt, pre, &label)?;
        let answer = inst
            .energy_star_plugin_summarizer()
            .call_summarize(&mut store, report)
            .map_err(|e| rt.failure(&store, e, &label, "summarize"))?;
        let s = answer.map_err(|message| PluginError::Guest { plugin: label.clone(), message })?;
        let malformed = |problem: String| PluginError::Malformed { plugin: label.clone(), call: "summarize", problem };
        let finite = |v: Option<f64>| v.is_none_or(f64::is_finite);
        match (s.total_wh, &s.gpu_absent_reason) {
            (Some(t), _) if !t.is_finite() => return Err(malformed(format!("total {t} Wh is not a finite number"))),
            (None, None) => return Err(malformed("no GPU total and no reason why".into())),
            _ => {}
        }
        if !finite(s.cpu_wh) || !finite(s.ram_wh) {
            return Err(malformed("CPU or RAM total is not a finite number".into()));
        }
        let mut sum = 0.0;
        for p in &s.phases {
            if p.name.trim().is_empty() {
                return Err(malformed("a phase has an empty name".into()));
            }
            if !finite(p.gpu_wh) || !finite(p.cpu_wh) || !finite(p.ram_wh) {
                return Err(malformed(format!("phase {:?} has an energy that is not a finite number", p.name)));
            }
            if p.counted {
                sum += p.gpu_wh.unwrap_or(0.0);
            }
        }
        if let Some(total) = s.total_wh
            && (sum - total).abs() > 1e-9 * sum.abs().max(1.0)
        {
            return Err(malformed(format!("total {total} Wh is not the sum of its counted phases ({sum} Wh)")));
        }
        Ok(Summary {
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
                    gpu_wh: p.gpu_wh,
                    cpu_wh: p.cpu_wh,
                    ram_wh: p.ram_wh,
                    counted: p.counted,
                })
                .collect(),
            warnings: s.warnings,
        })
    }

    /// Runs a backend with its host services. Runs on the calling thread; never call it from a
    /// tokio worker.
    pub fn run_backend(
        &self,
        rt: &PluginRuntime,
        services: HostServices,
        config_json: &str,
        settings: Vec<(String, String)>,
    ) -> BackendOutcome {
        let label = self.name_for_errors();
        let Prepared::Backend(pre) = &self.prepared else {
            return BackendOutcome {
                result: Err(PluginError::Guest { plugin: label, message: "not a backend".into() }),
                incomplete: Vec::new(),
                written: Vec::new(),
                windows: Vec::new(),
            };
        };
        let mut store = rt.store(Some(services));
        let result = (|| {
            let inst = pre.instantiate(&mut store).map_err(|e| rt.failure(&store, e, &label, "instantiate"))?;
            start_budget(&mut store);
            let request = wit_backend::RunRequest { config_json: config_json.to_string(), settings };
            let answer = inst
                .energy_star_plugin_backend()
                .call_run(&mut store, &request)
                .map_err(|e| rt.failure(&store, e, &label, "run"))?;
            let out = answer.map_err(|message| PluginError::Guest { plugin: label.clone(), message })?;
            if let Err(e) = serde_json::from_str::<serde_json::Value>(&out.report_json) {
                return Err(PluginError::Malformed {
                    plugin: label.clone(),
                    call: "run",
                    problem: format!("report is not valid JSON: {e}"),
                });
            }
            Ok(RunOutput { report_json: out.report_json, complete: out.complete })
        })();
        let services = store.into_data().services.unwrap_or_else(|| HostServices::new("", PathBuf::new()));
        BackendOutcome { result, incomplete: services.incomplete, written: services.written, windows: services.windows }
    }
}

/// A fresh summarizer instance for one call, its compute budget started.
fn summarizer_instance(
    rt: &PluginRuntime,
    pre: &bindings::summarizer::SummarizerPluginPre<state::PluginState>,
    label: &str,
) -> Result<(wasmtime::Store<state::PluginState>, bindings::summarizer::SummarizerPlugin), PluginError> {
    let mut store = rt.store(None);
    let inst = pre.instantiate(&mut store).map_err(|e| rt.failure(&store, e, label, "instantiate"))?;
    start_budget(&mut store);
    Ok((store, inst))
}

/// Reads a plugin's metadata by calling its `info` export in a fresh instance.
fn read_meta(
    rt: &PluginRuntime,
    prepared: &Prepared,
    kind: PluginKind,
    api_version: String,
    origin: Origin,
) -> Result<PluginMeta, PluginError> {
    let label = format!("{kind} at {origin}");
    let malformed = |problem: String| PluginError::Malformed { plugin: label.clone(), call: "info", problem };
    let meta = match prepared {
        Prepared::Summarizer(pre) => {
            let mut store = rt.discovery_store(None);
            let inst = pre.instantiate(&mut store).map_err(|e| rt.failure(&store, e, &label, "instantiate"))?;
            start_budget(&mut store);
            let info: wit_summarizer::SummarizerInfo = inst
                .energy_star_plugin_summarizer()
                .call_info(&mut store)
                .map_err(|e| rt.failure(&store, e, &label, "info"))?;
            if info.formats.is_empty() {
                return Err(malformed("declares no formats".into()));
            }
            PluginMeta {
                name: info.name,
                version: info.version,
                description: info.description,
                kind,
                api_version,
                origin,
                replaces: Vec::new(),
                formats: info.formats,
                required_settings: Vec::new(),
            }
        }
        Prepared::Backend(pre) => {
            // Instantiating a backend needs its imports' state; `info` never reaches them.
            let mut bstore = rt.discovery_store(Some(HostServices::new("(info)", PathBuf::new())));
            let inst = pre.instantiate(&mut bstore).map_err(|e| rt.failure(&bstore, e, &label, "instantiate"))?;
            start_budget(&mut bstore);
            let info: wit_backend::BackendInfo = inst
                .energy_star_plugin_backend()
                .call_info(&mut bstore)
                .map_err(|e| rt.failure(&bstore, e, &label, "info"))?;
            for s in &info.required_settings {
                if !valid_setting_name(&s.name) {
                    return Err(malformed(format!(
                        "required setting {:?} is not an environment variable name",
                        s.name
                    )));
                }
            }
            PluginMeta {
                name: info.name,
                version: info.version,
                description: info.description,
                kind,
                api_version,
                origin,
                replaces: Vec::new(),
                formats: vec![info.report_format],
                required_settings: info
                    .required_settings
                    .into_iter()
                    .map(|s| RequiredSetting {
                        name: s.name,
                        description: s.description,
                        missing_message: s.missing_message,
                    })
                    .collect(),
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

/// Loads one plugin from bytes: component check, compile (or cache), version, link, metadata.
pub fn load_plugin(rt: &PluginRuntime, bytes: &[u8], origin: Origin) -> Result<Plugin, LoadFailure> {
    let origin_text = origin.to_string();
    let unknown = |error| LoadFailure { kind: None, error };
    let (component, compiled_from) = rt.load_component(bytes, &origin_text).map_err(unknown)?;
    let (kind, api_version) = rt.inspect(&component, &origin_text).map_err(unknown)?;
    let known = |error| LoadFailure { kind: Some(kind), error };
    let prepared = rt.prepare(&component, kind, &origin_text).map_err(known)?;
    let meta = read_meta(rt, &prepared, kind, api_version, origin).map_err(known)?;
    Ok(Plugin { meta, compiled_from, prepared })
}

/// Why a plugin did not load, with its kind when the host got as far as reading it.
#[derive(Debug)]
pub struct LoadFailure {
    pub kind: Option<PluginKind>,
    pub error: PluginError,
}

/// A plugin file that is skipped, and why: the tool goes on without it.
#[derive(Debug)]
pub struct BrokenPlugin {
    /// The `.wasm` file, or the folder that could not be read.
    pub path: PathBuf,
    /// Its kind, when the host read that far.
    pub kind: Option<PluginKind>,
    pub error: PluginError,
}

impl BrokenPlugin {
    /// Whether this file may be the plugin of `kind` named `name` that a command asked for:
    /// of that kind (or of unknown kind) and with that file stem.
    pub fn may_be(&self, kind: PluginKind, name: &str) -> bool {
        self.kind.is_none_or(|k| k == kind) && self.path.file_stem().is_some_and(|s| s == name)
    }

    /// Whether this file may be a plugin of `kind` at all.
    pub fn may_be_kind(&self, kind: PluginKind) -> bool {
        self.kind.is_none_or(|k| k == kind)
    }

    /// `path: why`, as warnings and errors show it.
    pub fn describe(&self) -> String {
        format!("{}: {}", self.path.display(), self.error)
    }
}

/// The plugins in effect: built-ins, replaced by same-named drop-ins of higher precedence,
/// and the drop-in files that could not be used.
pub struct PluginSet {
    pub plugins: Vec<Plugin>,
    /// Files skipped, each with its reason: a stale or broken drop-in costs that plugin, never
    /// the tool. [`PluginSet::strict`] turns them into an error.
    pub broken: Vec<BrokenPlugin>,
}

impl PluginSet {
    /// Loads the built-ins, then every `*.wasm` of `dirs` (lowest precedence first). A plugin
    /// replaces an earlier one of the same kind and name. A file that does not load is set
    /// aside in [`PluginSet::broken`], as are two plugins of one kind and name in one folder
    /// (neither is used: which one the user meant is unknown). Only a built-in that does not
    /// load is an error: that is a broken build.
    pub fn discover(rt: &PluginRuntime, builtins: &[Builtin], dirs: &[PathBuf]) -> Result<Self, PluginError> {
        let mut plugins: Vec<Plugin> = Vec::new();
        let mut broken: Vec<BrokenPlugin> = Vec::new();
        for builtin in builtins {
            let p = load_plugin(rt, builtin.wasm, Origin::Builtin(builtin.package)).map_err(|f| f.error)?;
            insert(&mut plugins, p);
        }
        for dir in dirs {
            let files = match wasm_files(dir) {
                Ok(f) => f,
                Err(error) => {
                    broken.push(BrokenPlugin { path: dir.clone(), kind: None, error });
                    continue;
                }
            };
            let mut in_folder: Vec<Plugin> = Vec::new();
            for path in files {
                let loaded = std::fs::read(&path)
                    .map_err(|source| LoadFailure {
                        kind: None,
                        error: PluginError::Read { path: path.clone(), source },
                    })
                    .and_then(|bytes| load_plugin(rt, &bytes, Origin::File(path.clone())));
                match loaded {
                    Ok(p) => in_folder.push(p),
                    Err(f) => broken.push(BrokenPlugin { path, kind: f.kind, error: f.error }),
                }
            }
            for (kind, name, paths) in duplicates(&in_folder) {
                in_folder.retain(|p| !(p.meta.kind == kind && p.meta.name == name));
                for path in &paths {
                    let error = PluginError::DuplicateInFolder {
                        kind: kind.as_str(),
                        name: name.clone(),
                        first: paths[0].clone(),
                        second: paths[1].clone(),
                    };
                    broken.push(BrokenPlugin { path: path.clone(), kind: Some(kind), error });
                }
            }
            for p in in_folder {
                insert(&mut plugins, p);
            }
        }
        plugins.sort_by(|a, b| (a.meta.kind, &a.meta.name).cmp(&(b.meta.kind, &b.meta.name)));
        broken.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Self { plugins, broken })
    }

    /// Fails closed (`--strict-plugins`, for CI): any broken plugin file is an error.
    pub fn strict(self) -> Result<Self, PluginError> {
        if self.broken.is_empty() {
            return Ok(self);
        }
        Err(PluginError::Broken {
            files: self.broken.iter().map(BrokenPlugin::describe).collect::<Vec<_>>().join("\n  "),
        })
    }

    /// The broken files that may be a plugin of `kind` named `name`.
    pub fn broken_candidates(&self, kind: PluginKind, name: &str) -> impl Iterator<Item = &BrokenPlugin> {
        self.broken.iter().filter(move |b| b.may_be(kind, name))
    }

    pub fn of_kind(&self, kind: PluginKind) -> impl Iterator<Item = &Plugin> {
        self.plugins.iter().filter(move |p| p.meta.kind == kind)
    }

    pub fn find(&self, kind: PluginKind, name: &str) -> Option<&Plugin> {
        self.of_kind(kind).find(|p| p.meta.name == name)
    }
}

fn insert(plugins: &mut Vec<Plugin>, mut p: Plugin) {
    if let Some(i) = plugins.iter().position(|q| q.meta.kind == p.meta.kind && q.meta.name == p.meta.name) {
        let old = plugins.remove(i);
        p.meta.replaces = old.meta.replaces;
        p.meta.replaces.push(old.meta.origin);
    }
    plugins.push(p);
}

/// (kind, name, files) of every plugin that more than one file of a folder provides.
fn duplicates(in_folder: &[Plugin]) -> Vec<(PluginKind, String, Vec<PathBuf>)> {
    let mut out: Vec<(PluginKind, String, Vec<PathBuf>)> = Vec::new();
    for p in in_folder {
        let Origin::File(path) = &p.meta.origin else { continue };
        match out.iter_mut().find(|(k, n, _)| *k == p.meta.kind && *n == p.meta.name) {
            Some((_, _, paths)) => paths.push(path.clone()),
            None => out.push((p.meta.kind, p.meta.name.clone(), vec![path.clone()])),
        }
    }
    out.retain(|(_, _, paths)| paths.len() > 1);
    out
}

/// `*.wasm` files of a folder in name order; a missing folder has none.
fn wasm_files(dir: &Path) -> Result<Vec<PathBuf>, PluginError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(source) => return Err(PluginError::ReadDir { path: dir.to_path_buf(), source }),
    };
    let mut files = Vec::new();
    for entry in entries {
        let entry = entry.map_err(|source| PluginError::ReadDir { path: dir.to_path_buf(), source })?;
        let path = entry.path();
        if path.extension().is_some_and(|e| e == "wasm") && path.is_file() {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Plugin folders in precedence order, lowest first: the default folder, then
/// `ENERGY_STAR_PLUGIN_PATH` (colon-separated, earlier entries win), then `--plugin-dir` (earlier wins).
pub fn plugin_dirs(cli_dirs: &[PathBuf], env_path: Option<&str>, default_dir: Option<&Path>) -> Vec<PathBuf> {
    let mut dirs = Vec::new();
    if let Some(d) = default_dir {
        dirs.push(d.to_path_buf());
    }
    if let Some(path) = env_path {
        let mut env_dirs: Vec<PathBuf> = path.split(':').filter(|s| !s.is_empty()).map(PathBuf::from).collect();
        env_dirs.reverse();
        dirs.extend(env_dirs);
    }
    dirs.extend(cli_dirs.iter().rev().cloned());
    // A folder named twice is scanned once, at its highest precedence.
    let mut seen = Vec::new();
    for d in dirs.into_iter().rev() {
        if !seen.contains(&d) {
            seen.push(d);
        }
    }
    seen.reverse();
    seen
}
