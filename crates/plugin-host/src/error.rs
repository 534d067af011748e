//! Plugin errors, and the one function that sorts a failed call into trap, resource limit or
//! guest error. Every error names the plugin (name, version, origin) and what happened.

use std::path::PathBuf;

use thiserror::Error;

/// Everything that can go wrong finding, loading or calling a plugin.
#[derive(Debug, Error)]
pub enum PluginError {
    #[error("cannot read plugin file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },

    #[error("cannot read plugin folder {path}: {source}")]
    ReadDir { path: PathBuf, source: std::io::Error },

    #[error("{origin} is not a WebAssembly file (no `\\0asm` header)")]
    NotWasm { origin: String },

    #[error(
        "{origin} is a core WebAssembly module, not a component; build plugins for wasm32-wasip2 (or run `wasm-tools component new`)"
    )]
    CoreModule { origin: String },

    #[error("{origin} is not a valid component: {message}")]
    Compile { origin: String, message: String },

    #[error(
        "{origin} exports no energy-star plugin interface (expected `{package}/summarizer@VERSION` or `{package}/backend@VERSION`); it exports: {exports}",
        package = crate::wit::PACKAGE
    )]
    NotAPlugin { origin: String, exports: String },

    #[error(
        "{origin} was built for energy-star plugin API {found}; this energy-star accepts {accepted}; rebuild the plugin against wit/energy-star-plugin@{latest}"
    )]
    WrongApiVersion { origin: String, found: String, accepted: String, latest: &'static str },

    #[error("{origin} needs host interfaces this energy-star does not provide: {message}")]
    Link { origin: String, message: String },

    #[error("two {kind} plugins named {name:?} in one folder: {first} and {second}; remove one")]
    DuplicateInFolder { kind: &'static str, name: String, first: PathBuf, second: PathBuf },

    #[error("plugin {plugin} trapped in {call}: {message}{stderr}")]
    Trap { plugin: String, call: &'static str, message: String, stderr: String },

    #[error(
        "plugin {plugin} exceeded its memory limit of {limit_mib} MiB in {call} (asked for {requested_mib} MiB); raise it with --plugin-memory-mib"
    )]
    OutOfMemory { plugin: String, call: &'static str, limit_mib: u64, requested_mib: u64 },

    #[error(
        "plugin {plugin} computed for more than {limit_s} s without calling the host in {call} and was stopped (an endless loop?); raise the limit with --plugin-time-limit-s"
    )]
    TimeLimit { plugin: String, call: &'static str, limit_s: f64 },

    #[error("plugin {plugin} returned malformed data from {call}: {problem}")]
    Malformed { plugin: String, call: &'static str, problem: String },

    #[error("plugin {plugin} failed: {message}")]
    Guest { plugin: String, message: String },

    #[error("broken plugin files (--strict-plugins refuses them):\n  {files}")]
    Broken { files: String },

    #[error("plugin engine: {0}")]
    Engine(String),
}

/// Why a store stopped a call; set by the store's limiter or epoch callback so that the error
/// can be named precisely afterwards.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub enum StopReason {
    #[default]
    None,
    Memory {
        requested_bytes: u64,
    },
    TimeLimit,
}

/// Sorts a failed call. `stderr` is what the guest printed (a Rust panic message lands there).
pub fn classify(
    err: wasmtime::Error,
    stop: StopReason,
    plugin: &str,
    call: &'static str,
    limit_bytes: u64,
    limit_s: f64,
    stderr: &[u8],
) -> PluginError {
    match stop {
        StopReason::Memory { requested_bytes } => PluginError::OutOfMemory {
            plugin: plugin.to_string(),
            call,
            limit_mib: limit_bytes >> 20,
            requested_mib: requested_bytes.div_ceil(1 << 20),
        },
        StopReason::TimeLimit => PluginError::TimeLimit { plugin: plugin.to_string(), call, limit_s },
        StopReason::None => {
            let message = match err.downcast_ref::<wasmtime::Trap>() {
                Some(trap) => trap.to_string(),
                None => format!("{err:#}"),
            };
            let text = String::from_utf8_lossy(stderr);
            // The guest's hint about RUST_BACKTRACE cannot be acted on inside the sandbox.
            let text: Vec<&str> = text.lines().filter(|l| !l.starts_with("note: run with `RUST_BACKTRACE")).collect();
            let text = text.join("\n");
            let text = text.trim();
            let stderr = if text.is_empty() {
                String::new()
            } else {
                // Keep the tail: a panic message is the last thing printed.
                let tail: String = text.chars().rev().take(2000).collect::<Vec<_>>().into_iter().rev().collect();
                format!("; the plugin printed: {tail}")
            };
            PluginError::Trap { plugin: plugin.to_string(), call, message, stderr }
        }
    }
}
