//! The one place that runs `bindgen!`: typed host bindings for each plugin world of the
//! current API snapshot (`wit/energy-star-plugin@0.1.0`).
//!
//! Plugins run synchronously on a plain thread (never a tokio worker: WASI's sync host blocks on
//! its own runtime). Host imports are plain methods on [`super::state::PluginState`].

/// Bindings for the `backend-plugin` world.
pub mod backend {
    wasmtime::component::bindgen!({
        world: "backend-plugin",
        path: "../../wit/energy-star-plugin@0.1.0",
    });
}

/// Bindings for the `summarizer-plugin` world.
pub mod summarizer {
    wasmtime::component::bindgen!({
        world: "summarizer-plugin",
        path: "../../wit/energy-star-plugin@0.1.0",
    });
}

/// The WIT package name every plugin export is prefixed with.
pub const PACKAGE: &str = "energy-star:plugin";

/// API versions this host accepts. A plugin states its version through the versioned name of
/// the interface it exports; one built for any other version is refused before it runs.
pub const ACCEPTED_API_VERSIONS: &[&str] = &["0.1.0"];
