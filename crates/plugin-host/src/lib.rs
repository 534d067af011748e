//! The plugin host: finds plugins, runs them in a sandbox, and calls them with typed,
//! version-independent requests and answers.
//!
//! A plugin is a WebAssembly component that exports one interface of the `energy-star:plugin`
//! WIT package: `summarizer` (report → unified summary) or `backend` (runs a benchmark through
//! the host's capabilities). The host reads which, and the API version, from the export's
//! versioned name; it accepts API 0.2.0 to 0.2.5 (served by 0.2.5's bindings: 0.2.1 to 0.2.5
//! only add) and 0.1.0, which it adapts to 0.2.5 when it loads them.
//!
//! Rooms: [`discovery`] (folders, precedence, broken files), [`plugin`] (loading and the
//! typed calls), [`runtime`] (engine, linkers, limits, compile cache, the call hook), [`wit`]
//! (one bindings module per API version), [`host`] (the backend world's imports, one file per
//! interface, each on its narrow view), `state` (per-store state), [`error`] (trap vs guest
//! error vs limits). Commands never touch wasmtime.

pub mod discovery;
pub mod error;
pub mod host;
pub mod plugin;
pub mod runtime;
mod state;
pub mod wit;

use std::fmt;
use std::path::PathBuf;

pub use discovery::{BrokenPlugin, Builtin, DEFAULT_PLUGIN_DIR, PluginSet, plugin_dirs};
pub use error::PluginError;
pub use host::{Grant, HostServices, interrupt, interrupted};
pub use plugin::{
    BackendOutcome, LeaderboardPhase, LoadFailure, PhaseEnergy, Plugin, PluginMeta, PrepareError, RequiredSetting,
    RunOutput, RunRequest, Summary, load_plugin, sha256_hex,
};
pub use runtime::{CompileSource, PluginRuntime, RuntimeOptions, SandboxLimits};

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
