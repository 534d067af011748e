//! The sandbox: one wasmtime engine, a compile cache on disk, and per-call stores with bounded
//! memory and compute.
//!
//! Limits: memory through the store's limiter (default 1 GiB; a refused growth traps), compute
//! through epoch interruption: a ticker thread advances the epoch every [`TICK`], and at each
//! tick the running guest is stopped if it has computed longer than its time limit since it last
//! got control back from the host. Time spent inside host calls (inference, metering) does not
//! count, so an honest backend can run for hours while a plugin stuck in a loop is stopped.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, types::ComponentItem};
use wasmtime::{CallHook, Config, Engine, Store, UpdateDeadline};

use crate::PluginKind;
use crate::error::{PluginError, StopReason, classify};
use crate::host::HostServices;
use crate::plugin::Calls;
use crate::state::{self, PluginState};
use crate::wit::{ACCEPTED_API_VERSIONS, PACKAGE, v0_1_0, v0_2_5};

/// Longest a plugin may compute in its start function and `info` during discovery.
pub const INFO_TIME_LIMIT: Duration = Duration::from_secs(5);

/// Epoch tick: the resolution of the compute limit.
pub const TICK: Duration = Duration::from_millis(50);

/// Sandbox limits for every plugin call.
#[derive(Debug, Clone)]
pub struct SandboxLimits {
    pub memory_bytes: u64,
    pub time_limit: Duration,
}

impl Default for SandboxLimits {
    fn default() -> Self {
        Self { memory_bytes: 1 << 30, time_limit: Duration::from_secs(60) }
    }
}

/// Options for [`PluginRuntime::new`].
#[derive(Debug, Clone, Default)]
pub struct RuntimeOptions {
    pub limits: SandboxLimits,
    /// Folder for compiled components; `None` disables the cache.
    pub cache_dir: Option<PathBuf>,
}

/// The default compile-cache folder: `ENERGY_STAR_CACHE_DIR`, else `$XDG_CACHE_HOME` or
/// `~/.cache`, under `energy-star/components`.
pub fn default_cache_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("ENERGY_STAR_CACHE_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|d| !d.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").filter(|d| !d.is_empty()).map(|h| PathBuf::from(h).join(".cache")))?;
    Some(base.join("energy-star").join("components"))
}

/// Owns the engine and the linkers; cheap to share by reference across calls.
pub struct PluginRuntime {
    engine: Engine,
    /// Backends of API 0.2.0 to 0.2.5: WASI (no timers) and the 0.2.5 host interfaces.
    backend_linker: Linker<PluginState>,
    /// Backends of API 0.1.0: WASI (no timers) and the 0.1.0 interfaces, adapted to 0.2.5's.
    backend_v0_1_linker: Linker<PluginState>,
    /// Summarizers of either version import nothing of the host's.
    summarizer_linker: Linker<PluginState>,
    limits: SandboxLimits,
    cache_dir: Option<PathBuf>,
    /// Stops the ticker thread when the runtime is dropped.
    _ticker: Arc<()>,
}

/// How a component was obtained, for the benchmarks and `--verbose` output.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CompileSource {
    Compiled,
    Cache,
}

impl PluginRuntime {
    pub fn new(options: RuntimeOptions) -> Result<Self, PluginError> {
        let mut config = Config::new();
        config.epoch_interruption(true);
        config.wasm_component_model(true);
        let engine = Engine::new(&config).map_err(|e| PluginError::Engine(format!("{e:#}")))?;

        let engine_err = |e: wasmtime::Error| PluginError::Engine(format!("{e:#}"));
        let wasi_linker = || -> Result<Linker<PluginState>, PluginError> {
            let mut l = Linker::new(&engine);
            wasmtime_wasi::p2::add_to_linker_sync(&mut l).map_err(engine_err)?;
            forbid_timers(&mut l)?;
            Ok(l)
        };
        let mut backend_linker = wasi_linker()?;
        link_latest_backend(&mut backend_linker).map_err(engine_err)?;
        let mut backend_v0_1_linker = wasi_linker()?;
        v0_1_0::add_to_linker(&mut backend_v0_1_linker).map_err(engine_err)?;
        let summarizer_linker = wasi_linker()?;

        // The ticker holds only a weak handle, so it ends soon after the runtime is dropped.
        let alive = Arc::new(());
        let weak = Arc::downgrade(&alive);
        let ticking = engine.clone();
        std::thread::Builder::new()
            .name("energy-star-epoch".into())
            .spawn(move || {
                while weak.upgrade().is_some() {
                    std::thread::sleep(TICK);
                    ticking.increment_epoch();
                }
            })
            .map_err(|e| PluginError::Engine(format!("cannot start the epoch ticker: {e}")))?;

        let cache_dir = options.cache_dir.filter(|d| std::fs::create_dir_all(d).is_ok());
        Ok(Self {
            engine,
            backend_linker,
            backend_v0_1_linker,
            summarizer_linker,
            limits: options.limits,
            cache_dir,
            _ticker: alive,
        })
    }

    pub fn limits(&self) -> &SandboxLimits {
        &self.limits
    }

    /// The compile cache folder, if caching is on.
    pub fn cache_dir(&self) -> Option<&Path> {
        self.cache_dir.as_deref()
    }

    /// Compiles `bytes` (or loads the compiled form from the cache) after checking that it is a
    /// component at all.
    pub fn load_component(&self, bytes: &[u8], origin: &str) -> Result<(Component, CompileSource), PluginError> {
        // A component's preamble is `\0asm` + version 0x0d + layer 0x01; a core module's layer is 0.
        if bytes.len() < 8 || &bytes[..4] != b"\0asm" {
            return Err(PluginError::NotWasm { origin: origin.to_string() });
        }
        if bytes[6..8] == [0, 0] {
            return Err(PluginError::CoreModule { origin: origin.to_string() });
        }
        let cache_path = self.cache_dir.as_ref().map(|dir| dir.join(format!("{}.cwasm", self.cache_key(bytes))));
        if let Some(path) = &cache_path
            && path.is_file()
            && let Some(component) = self.deserialize_cached(path)
        {
            return Ok((component, CompileSource::Cache));
        }
        let component = Component::new(&self.engine, bytes)
            .map_err(|e| PluginError::Compile { origin: origin.to_string(), message: format!("{e:#}") })?;
        if let Some(path) = cache_path {
            // The cache is an optimisation: a failure to write it is not an error.
            if let Ok(serialized) = component.serialize() {
                let _ = energy_star_results::write_atomic(&path, &serialized);
            }
        }
        Ok((component, CompileSource::Compiled))
    }

    /// Key: the component's content hash plus the engine's compatibility hash (wasmtime version,
    /// target, settings), so a new energy-star or a changed plugin never loads stale code.
    fn cache_key(&self, bytes: &[u8]) -> String {
        use std::hash::{Hash, Hasher};
        let mut compat = std::collections::hash_map::DefaultHasher::new();
        self.engine.precompile_compatibility_hash().hash(&mut compat);
        let mut h = Sha256::new();
        h.update(bytes);
        h.update(compat.finish().to_le_bytes());
        h.finalize().iter().map(|b| format!("{b:02x}")).collect()
    }

    #[allow(unsafe_code)]
    fn deserialize_cached(&self, path: &Path) -> Option<Component> {
        // SAFETY: `deserialize_file` runs the file's machine code without validation. The cache
        // folder holds only files this host wrote (named by content and engine hash, written
        // atomically), in the user's own cache folder; wasmtime still checks the header and the
        // engine compatibility and refuses a mismatched file, in which case we recompile.
        unsafe { Component::deserialize_file(&self.engine, path) }.ok()
    }

    /// Reads which plugin world a component implements and the API version it was built for.
    pub fn inspect(&self, component: &Component, origin: &str) -> Result<(PluginKind, String), PluginError> {
        let ty = component.component_type();
        let mut names = Vec::new();
        let mut found = None;
        for (name, item) in ty.exports(&self.engine) {
            names.push(name.to_string());
            let Some(rest) = name.strip_prefix(PACKAGE).and_then(|r| r.strip_prefix('/')) else { continue };
            let (iface, version) = rest.split_once('@').unwrap_or((rest, ""));
            if !matches!(item.ty, ComponentItem::ComponentInstance(_)) {
                continue;
            }
            let kind = match iface {
                "summarizer" => PluginKind::Summarizer,
                "backend" => PluginKind::Backend,
                _ => continue,
            };
            found = Some((kind, version.to_string()));
        }
        let (kind, version) = found.ok_or_else(|| PluginError::NotAPlugin {
            origin: origin.to_string(),
            exports: if names.is_empty() { "nothing".into() } else { names.join(", ") },
        })?;
        if !ACCEPTED_API_VERSIONS.contains(&version.as_str()) {
            return Err(PluginError::WrongApiVersion {
                origin: origin.to_string(),
                found: if version.is_empty() { "(unversioned)".into() } else { version },
                accepted: ACCEPTED_API_VERSIONS.join(", "),
                latest: crate::wit::LATEST_API_VERSION,
            });
        }
        Ok((kind, version))
    }

    /// Links `component` for its world and version; fails when it imports what the host does
    /// not provide.
    pub(crate) fn prepare(
        &self,
        component: &Component,
        kind: PluginKind,
        api_version: &str,
        origin: &str,
    ) -> Result<Calls, PluginError> {
        let link_err = |e: wasmtime::Error| PluginError::Link { origin: origin.to_string(), message: format!("{e:#}") };
        let legacy = api_version == "0.1.0";
        Ok(match (kind, legacy) {
            (PluginKind::Summarizer, true) => {
                let pre = self.summarizer_linker.instantiate_pre(component).map_err(link_err)?;
                let pre = v0_1_0::summarizer::SummarizerPluginPre::new(pre).map_err(link_err)?;
                Calls::Summarizer(Arc::new(v0_1_0::Summarizer(pre)))
            }
            (PluginKind::Summarizer, false) => {
                let pre = self.summarizer_linker.instantiate_pre(component).map_err(link_err)?;
                let pre = v0_2_5::summarizer::SummarizerPluginPre::new(pre).map_err(link_err)?;
                Calls::Summarizer(Arc::new(v0_2_5::Summarizer(pre)))
            }
            (PluginKind::Backend, true) => {
                let pre = self.backend_v0_1_linker.instantiate_pre(component).map_err(link_err)?;
                let pre = v0_1_0::backend::BackendPluginPre::new(pre).map_err(link_err)?;
                Calls::Backend(Arc::new(v0_1_0::Backend(pre)))
            }
            (PluginKind::Backend, false) => {
                let pre = self.backend_linker.instantiate_pre(component).map_err(link_err)?;
                let pre = v0_2_5::backend::BackendPluginPre::new(pre).map_err(link_err)?;
                Calls::Backend(Arc::new(v0_2_5::Backend(pre)))
            }
        })
    }

    /// A fresh store for one call: limits armed, compute budget started.
    pub(crate) fn store(&self, services: HostServices) -> Store<PluginState> {
        self.store_with_time_limit(services, self.limits.time_limit)
    }

    /// A store for reading a plugin's metadata at discovery: `info` answers at once, so a
    /// plugin that computes for long there (or in its start function) is stopped after at
    /// most [`INFO_TIME_LIMIT`] instead of holding up every command for the full limit.
    pub(crate) fn discovery_store(&self, services: HostServices) -> Store<PluginState> {
        self.store_with_time_limit(services, self.limits.time_limit.min(INFO_TIME_LIMIT))
    }

    fn store_with_time_limit(&self, services: HostServices, time_limit: Duration) -> Store<PluginState> {
        let state = PluginState::new(self.limits.memory_bytes, time_limit, services);
        let mut store = Store::new(&self.engine, state);
        store.limiter(|s| s as &mut dyn wasmtime::ResourceLimiter);
        // Every return from one of the host's interfaces restarts the guest's compute budget:
        // time spent in host calls (inference, metering) never counts against the limit.
        store.call_hook(|mut ctx, hook| {
            let state = ctx.data_mut();
            if matches!(hook, CallHook::ReturningFromHost) && state.in_host_import {
                state.in_host_import = false;
                state.last_host_return = Instant::now();
            }
            Ok(())
        });
        store.set_epoch_deadline(1);
        store.epoch_deadline_callback(|ctx| {
            let state = ctx.data();
            if state.last_host_return.elapsed() > state.time_limit {
                let reason = StopReason::TimeLimit;
                let mut ctx = ctx;
                ctx.data_mut().stop = reason;
                return Err(wasmtime::Error::msg("plugin time limit exceeded"));
            }
            Ok(UpdateDeadline::Continue(1))
        });
        store
    }

    /// Turns a failed call into a [`PluginError`] naming the plugin and the call.
    pub(crate) fn failure(
        &self,
        store: &Store<PluginState>,
        err: wasmtime::Error,
        plugin: &str,
        call: &'static str,
    ) -> PluginError {
        let state = store.data();
        classify(
            err,
            state.stop,
            plugin,
            call,
            self.limits.memory_bytes,
            state.time_limit.as_secs_f64(),
            &state.stderr.contents(),
        )
    }
}

/// WASI version whose clock interface the host provides (wasmtime-wasi 48); guests built for
/// any 0.2.x reach it through the linker's semver matching.
const WASI_CLOCKS: &str = "wasi:clocks/monotonic-clock@0.2.12";

/// Replaces WASI's timer subscriptions with traps. A plugin blocked in a sleep would wait
/// inside the host, where epoch interruption cannot stop it; a plugin has nothing to wait for,
/// so waiting is refused outright. Reading the clocks stays allowed.
fn forbid_timers(linker: &mut Linker<PluginState>) -> Result<(), PluginError> {
    let engine_err = |e: wasmtime::Error| PluginError::Engine(format!("{e:#}"));
    linker.allow_shadowing(true);
    let mut clocks = linker.instance(WASI_CLOCKS).map_err(engine_err)?;
    for name in ["subscribe-duration", "subscribe-instant"] {
        clocks
            .func_new(name, move |_store, _ty, _params, _results| {
                Err(wasmtime::Error::msg(format!("plugins may not sleep or wait on timers (wasi:clocks {name}); nothing in energy-star's API needs it")))
            })
            .map_err(engine_err)?;
    }
    linker.allow_shadowing(false);
    Ok(())
}

/// The 0.2.5 host interfaces, each on its narrow view.
fn link_latest_backend(l: &mut Linker<PluginState>) -> wasmtime::Result<()> {
    use v0_2_5::backend::energy_star::plugin as api;
    api::types::add_to_linker::<PluginState, state::Log>(l, PluginState::log_view)?;
    api::log::add_to_linker::<PluginState, state::Log>(l, PluginState::log_view)?;
    api::clock::add_to_linker::<PluginState, state::Clock>(l, PluginState::clock_view)?;
    api::meter::add_to_linker::<PluginState, state::Meter>(l, PluginState::meter_view)?;
    api::inference::add_to_linker::<PluginState, state::Inference>(l, PluginState::inference_view)?;
    api::datasets::add_to_linker::<PluginState, state::Datasets>(l, PluginState::datasets_view)?;
    api::tasks::add_to_linker::<PluginState, state::Tasks>(l, PluginState::tasks_view)?;
    api::results::add_to_linker::<PluginState, state::Results>(l, PluginState::results_view)?;
    api::carbon::add_to_linker::<PluginState, state::Carbon>(l, PluginState::carbon_view)?;
    api::machine::add_to_linker::<PluginState, state::Machine>(l, PluginState::machine_view)?;
    Ok(())
}

/// Starts the compute budget of a top-level call.
pub(crate) fn start_budget(store: &mut Store<PluginState>) {
    store.data_mut().last_host_return = Instant::now();
}
