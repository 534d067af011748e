//! Run facts: what a run did, typed, for the host's record (`run_record.json`), so the host
//! never reads a backend's report to learn it.

use energy_star_plugin_sdk::backend::host::meter::WindowReading;
use energy_star_plugin_sdk::backend::host::types::GpuUse;
use energy_star_plugin_sdk::backend::{PhaseDerivation, PhaseFact, RunFacts, Volume};

/// `count` things of `unit` ("samples", "tokens", "requests").
pub fn volume(count: u64, unit: &str) -> Volume {
    Volume { count, unit: unit.to_string() }
}

/// A phase measured over `windows`: one window's reading, or the mean of several (iterations).
pub fn measured(name: &str, windows: &[&WindowReading], volume: Option<Volume>, complete: bool) -> PhaseFact {
    PhaseFact {
        name: name.to_string(),
        windows: windows.iter().map(|w| w.id).collect(),
        derivation: if windows.len() > 1 { PhaseDerivation::MeanOfWindows } else { PhaseDerivation::Measured },
        definition: None,
        volume,
        complete,
    }
}

/// A phase derived from a difference of windows (`definition` says which).
pub fn derived(name: &str, windows: &[&WindowReading], definition: &str, volume: Option<Volume>) -> PhaseFact {
    PhaseFact {
        name: name.to_string(),
        windows: windows.iter().map(|w| w.id).collect(),
        derivation: PhaseDerivation::DifferenceOfWindows,
        definition: Some(definition.to_string()),
        volume,
        complete: true,
    }
}

/// A phase attributed a share of one window (`definition` says how).
pub fn attributed(name: &str, window: &WindowReading, definition: &str, volume: Option<Volume>) -> PhaseFact {
    PhaseFact {
        name: name.to_string(),
        windows: vec![window.id],
        derivation: PhaseDerivation::Attributed,
        definition: Some(definition.to_string()),
        volume,
        complete: true,
    }
}

/// Facts with nothing in them yet but the GPUs.
pub fn empty(gpus: GpuUse) -> RunFacts {
    RunFacts {
        gpus,
        phases: Vec::new(),
        requests: None,
        tokens: None,
        workload_ns: None,
        mean_e2e_ns: None,
        mean_ttft_ns: None,
        figures: Vec::new(),
        request_gpu_energy_j: Vec::new(),
        incomplete_reasons: Vec::new(),
        warnings: Vec::new(),
    }
}
