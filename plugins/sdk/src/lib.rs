//! The energy-star plugin SDK: write a backend or a summarizer in Rust against the plugin API
//! (WIT package `energy-star:plugin@0.1.0`, in `wit/`), build it for `wasm32-wasip2`, drop
//! the `.wasm` into a plugin folder.
//!
//! ```ignore
//! use energy_star_plugin_sdk::summarizer::{Guest, PhaseEnergy, Summary, SummarizerInfo};
//!
//! struct Mine;
//! impl Guest for Mine {
//!     fn info() -> SummarizerInfo { /* name, version, description, formats */ }
//!     fn detect(report: String) -> f32 { /* 0.0 (not mine) ..= 1.0 (certainly mine) */ }
//!     fn summarize(report: String) -> Result<Summary, String> { /* GPU Wh, phases, warnings */ }
//! }
//! energy_star_plugin_sdk::export_summarizer!(Mine);
//! ```
//!
//! A plugin sees nothing of the machine but the host's interfaces: no files, no network, no
//! environment, bounded memory and compute. Backends reach GPUs, engines, datasets and the
//! results folder only through [`backend::host`]'s modules.

pub use backend::export_backend;
pub use summarizer::export_summarizer;

/// The API version these bindings speak; the host refuses plugins of versions it does not list.
pub const API_VERSION: &str = "0.1.0";

/// The `summarizer-plugin` world: implement [`summarizer::Guest`], then
/// `energy_star_plugin_sdk::export_summarizer!(YourType);`.
pub mod summarizer {
    wit_bindgen::generate!({
        path: "wit",
        world: "summarizer-plugin",
        pub_export_macro: true,
        export_macro_name: "export_summarizer",
        default_bindings_module: "energy_star_plugin_sdk::summarizer",
    });
    pub use exports::energy_star::plugin::summarizer::{Guest, PhaseEnergy, SummarizerInfo, Summary};
}

/// The `backend-plugin` world: implement [`backend::Guest`], then
/// `energy_star_plugin_sdk::export_backend!(YourType);`.
pub mod backend {
    wit_bindgen::generate!({
        path: "wit",
        world: "backend-plugin",
        pub_export_macro: true,
        export_macro_name: "export_backend",
        default_bindings_module: "energy_star_plugin_sdk::backend",
    });
    pub use exports::energy_star::plugin::backend::{BackendInfo, Guest, RequiredSetting, RunOutput, RunRequest};

    /// What the host lends a backend: log, clock, meter, inference, datasets, results.
    pub mod host {
        pub use super::energy_star::plugin::{clock, datasets, inference, log, meter, results};
    }

    /// Runs `f` inside a metered window named `name` and returns its result with the
    /// window's reading (the window is closed even when `f` fails).
    pub fn metered<T>(
        name: &str,
        f: impl FnOnce() -> Result<T, String>,
    ) -> Result<(T, host::meter::WindowReading), String> {
        let id = host::meter::begin_window(name).map_err(|e| format!("energy meter: {e:?}"))?;
        let out = f();
        let reading = host::meter::end_window(id).map_err(|e| format!("energy meter: {e:?}"))?;
        Ok((out?, reading))
    }

    /// GPU joules of a window (summed over GPUs); None when any GPU was not measured.
    pub fn gpu_energy_j(r: &host::meter::WindowReading) -> Option<f64> {
        let gpus: Vec<_> = r.devices.iter().filter(|d| d.device.kind == host::meter::DeviceKind::Gpu).collect();
        if gpus.is_empty() {
            return None;
        }
        gpus.iter().map(|d| d.energy_j).sum()
    }
}

/// Units: reports mix kWh, Wh and J; summaries are in Wh.
pub mod units {
    pub fn kwh_to_wh(kwh: f64) -> f64 {
        kwh * 1000.0
    }
    pub fn j_to_wh(j: f64) -> f64 {
        j / 3600.0
    }
    pub fn wh_to_j(wh: f64) -> f64 {
        wh * 3600.0
    }
}

/// JSON helpers for reading reports and configs.
pub mod json {
    pub use serde_json::{self, Value, json};

    /// The value at a dotted path (`"backend.model"`).
    pub fn get<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
        path.split('.').try_fold(v, |v, k| v.get(k))
    }

    /// A finite number at a dotted path.
    pub fn number(v: &Value, path: &str) -> Option<f64> {
        get(v, path).and_then(Value::as_f64).filter(|x| x.is_finite())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn helpers() {
        let v = json::json!({"a": {"b": 2.5, "c": "x"}});
        assert_eq!(json::number(&v, "a.b"), Some(2.5));
        assert_eq!(json::number(&v, "a.c"), None);
        assert_eq!(units::kwh_to_wh(0.5), 500.0);
        assert_eq!(units::j_to_wh(7200.0), 2.0);
    }
}
