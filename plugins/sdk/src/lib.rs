//! The energy-star plugin SDK: write a backend or a summarizer in Rust against the plugin API
//! (WIT package `energy-star:plugin@0.2.5`, in `wit/`), build it for `wasm32-wasip2`, drop the
//! `.wasm` into a plugin folder. The built-in plugins are written on it too.
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
//! results folder only through [`backend::host`]'s modules, and only what their run plan named.
//!
//! The names of energy sources, flags and failure kinds, and the unit conversions, are
//! [`energy_star_types`]'s: the same definitions the host uses.

#![deny(missing_docs)]

pub use backend::export_backend;
pub use energy_star_types as types;
pub use summarizer::export_summarizer;

/// The API version these bindings speak; the host refuses plugins of versions it does not list.
pub const API_VERSION: &str = "0.2.5";

/// The `summarizer-plugin` world: implement [`summarizer::Guest`], then
/// `energy_star_plugin_sdk::export_summarizer!(YourType);`.
#[allow(missing_docs)]
pub mod summarizer {
    wit_bindgen::generate!({
        path: "wit",
        world: "summarizer-plugin",
        pub_export_macro: true,
        export_macro_name: "export_summarizer",
        default_bindings_module: "energy_star_plugin_sdk::summarizer",
    });
    pub use exports::energy_star::plugin::summarizer::{Guest, LeaderboardPhase, PhaseEnergy, SummarizerInfo, Summary};
}

/// The `backend-plugin` world: implement [`backend::Guest`], then
/// `energy_star_plugin_sdk::export_backend!(YourType);`.
#[allow(missing_docs)]
pub mod backend {
    wit_bindgen::generate!({
        path: "wit",
        world: "backend-plugin",
        pub_export_macro: true,
        export_macro_name: "export_backend",
        default_bindings_module: "energy_star_plugin_sdk::backend",
    });
    pub use exports::energy_star::plugin::backend::{
        BackendInfo, ConfigError, Figure, Guest, PhaseDerivation, PhaseFact, PrepareRequest, RequestCounts,
        RequiredSetting, RunFacts, RunOutput, RunPlan, RunRequest, TokenCounts, Volume,
    };

    /// What the host lends a backend: log, clock, meter, inference, datasets, results, the
    /// grid's carbon intensity (0.2.1), the machine's description (0.2.2), chat templates and
    /// token-id batches on the local engine (0.2.3), the template's presence, mixed batches and
    /// top-k (0.2.4), tables of typed rows and the non-generative tasks (0.2.5), and the shared
    /// types.
    pub mod host {
        pub use super::energy_star::plugin::{
            carbon, clock, datasets, inference, log, machine, meter, results, tasks, types,
        };
    }

    use host::meter::WindowReading;
    use host::types::{DeviceKind, EnergySource, Error, ValidityFlag};

    /// What happened inside a metered window: the work's result and the window's reading,
    /// which is kept even when the work failed (its energy up to the failure).
    pub struct Metered<T, E> {
        pub result: Result<T, E>,
        pub reading: WindowReading,
    }

    /// Runs `f` inside a metered window named `name`; the window is closed whatever `f`
    /// returns. An error opening or closing the window is the host's.
    pub fn metered<T, E>(name: &str, f: impl FnOnce() -> Result<T, E>) -> Result<Metered<T, E>, Error> {
        let window = host::meter::begin_window(name)?;
        let result = f();
        let reading = window.end()?;
        Ok(Metered { result, reading })
    }

    /// The energy of one kind of device over a window, J, summed over its devices; none when
    /// the window has no such device or any of them was not measured.
    pub fn energy_j(r: &WindowReading, kind: DeviceKind) -> Option<f64> {
        let devices: Vec<_> = r.devices.iter().filter(|d| d.device.kind == kind).collect();
        if devices.is_empty() {
            return None;
        }
        devices.iter().map(|d| d.energy_j).sum()
    }

    /// GPU joules of a window (summed over GPUs); none when any GPU was not measured.
    pub fn gpu_energy_j(r: &WindowReading) -> Option<f64> {
        energy_j(r, DeviceKind::Gpu)
    }

    /// The window's duration, s.
    pub fn duration_s(r: &WindowReading) -> f64 {
        r.end_ns.saturating_sub(r.start_ns) as f64 / 1e9
    }

    /// Whether the user stopped the run (every host call then answers so).
    pub fn is_interrupted(e: &Error) -> bool {
        matches!(e, Error::Interrupted)
    }

    /// A host error in words.
    pub fn describe(e: &Error) -> String {
        match e {
            Error::Unavailable(m) => format!("unavailable: {m}"),
            Error::Invalid(m) => format!("invalid: {m}"),
            Error::Denied(m) => format!("denied: {m}"),
            Error::Interrupted => "interrupted by the user (Ctrl-C)".into(),
            Error::Failed(m) => m.clone(),
        }
    }

    impl From<EnergySource> for energy_star_types::EnergySource {
        fn from(s: EnergySource) -> Self {
            use energy_star_types::EnergySource as S;
            match s {
                EnergySource::NvmlEnergyCounter => S::NvmlEnergyCounter,
                EnergySource::NvmlPowerIntegration => S::NvmlPowerIntegration,
                EnergySource::Rapl => S::Rapl,
                EnergySource::EstimateTdp => S::EstimateTdp,
                EnergySource::EstimateDimm => S::EstimateDimm,
                EnergySource::Unavailable => S::Unavailable,
            }
        }
    }

    impl From<ValidityFlag> for energy_star_types::ValidityFlag {
        fn from(f: ValidityFlag) -> Self {
            use energy_star_types::ValidityFlag as F;
            match f {
                ValidityFlag::TooShort => F::TooShort,
                ValidityFlag::ZeroReading => F::ZeroReading,
                ValidityFlag::CounterReset => F::CounterReset,
                ValidityFlag::MigWholeGpu => F::MigWholeGpu,
                ValidityFlag::GapInSamples => F::GapInSamples,
            }
        }
    }

    impl From<DeviceKind> for energy_star_types::DeviceKind {
        fn from(k: DeviceKind) -> Self {
            use energy_star_types::DeviceKind as K;
            match k {
                DeviceKind::Gpu => K::Gpu,
                DeviceKind::Cpu => K::Cpu,
                DeviceKind::Ram => K::Ram,
            }
        }
    }

    impl From<host::inference::FailureKind> for energy_star_types::FailureKind {
        fn from(k: host::inference::FailureKind) -> Self {
            use energy_star_types::FailureKind as F;
            use host::inference::FailureKind as W;
            match k {
                W::Connect => F::Connect,
                W::Timeout => F::Timeout,
                W::HttpClientError => F::HttpClientError,
                W::HttpServerError => F::HttpServerError,
                W::StreamError => F::StreamError,
                W::MalformedStream => F::MalformedStream,
                W::TruncatedStream => F::TruncatedStream,
                W::EmptyResponse => F::EmptyResponse,
                W::Cancelled => F::Cancelled,
            }
        }
    }

    impl From<host::types::TokenCountSource> for energy_star_types::TokenCountSource {
        fn from(s: host::types::TokenCountSource) -> Self {
            use energy_star_types::TokenCountSource as T;
            use host::types::TokenCountSource as W;
            match s {
                W::Engine => T::Engine,
                W::ServerUsage => T::ServerUsage,
                W::Tokenizer => T::Tokenizer,
                W::StreamChunks => T::StreamChunks,
            }
        }
    }

    /// A device's label in reports: `gpu0`, `cpu`, `ram`.
    pub fn device_label(d: &host::meter::DeviceInfo) -> String {
        match d.kind {
            DeviceKind::Gpu => format!("gpu{}", d.index),
            k => energy_star_types::DeviceKind::from(k).as_str().to_string(),
        }
    }
}

/// Units: reports mix kWh, Wh and J; summaries are in Wh.
pub mod units {
    pub use energy_star_types::units::*;
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
