//! The host's own records in a results folder, one serde type each, shared by the code that
//! writes them and every reader (`summarize`, `report`, `batch --collect`): the host learns
//! what it needs from these, never from a backend's report.
//!
//! - [`RunStatus`]: `run_status.json`, written before the backend starts and again at the end.
//! - [`EnergyRecord`]: `energy_meter.json`, every reading the meter gave and where it came from.
//! - [`RunRecord`]: `run_record.json`, what the backend planned and the facts it reported,
//!   typed: devices used, phases and their windows, counts, completeness.
//! - [`SummaryRecord`]: `GPU_ENERGY_SUMMARY.json`, AI Energy Score's summary keys first, then
//!   energy-star's.

use std::path::Path;

pub use energy_star_carbon::{CarbonIntensity, CarbonSettings};
pub use energy_star_machine::{GpuDescription, MachineDescription};
use energy_star_types::{DeviceKind, EnergySource, TokenCountSource, ValidityFlag};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::{ResultsError, write_atomic};

/// `run_status.json`.
pub const RUN_STATUS: &str = "run_status.json";
/// `energy_meter.json`.
pub const ENERGY_RECORD: &str = "energy_meter.json";
/// `run_record.json`.
pub const RUN_RECORD: &str = "run_record.json";
/// `GPU_ENERGY_SUMMARY.json`.
pub const SUMMARY: &str = "GPU_ENERGY_SUMMARY.json";
/// `GPU_ENERGY_WH.txt`.
pub const SUMMARY_WH: &str = "GPU_ENERGY_WH.txt";

/// Writes a record as pretty JSON with a final newline, atomically.
pub fn write_record<T: Serialize>(path: &Path, record: &T) -> Result<(), ResultsError> {
    let mut text = serde_json::to_string_pretty(record)
        .map_err(|e| ResultsError::Write { path: path.to_path_buf(), source: std::io::Error::other(e) })?;
    text.push('\n');
    write_atomic(path, text.as_bytes())
}

/// Reads a record: `Ok(None)` when the file does not exist, an error naming the file when it
/// does not read as the record.
pub fn read_record<T: DeserializeOwned>(path: &Path) -> Result<Option<T>, ResultsError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(source) => return Err(ResultsError::Read { path: path.to_path_buf(), source }),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| ResultsError::Malformed { path: path.to_path_buf(), why: e.to_string() })
}

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunState {
    /// The backend is running (or the process died while it was).
    Running,
    /// Finished, every part of the workload done.
    Complete,
    /// Finished part-way (Ctrl-C, failures); what was measured is kept and marked.
    Incomplete,
    /// Stopped by an error before there was anything to report.
    Failed,
}

impl RunState {
    pub fn as_str(self) -> &'static str {
        match self {
            RunState::Running => "running",
            RunState::Complete => "complete",
            RunState::Incomplete => "incomplete",
            RunState::Failed => "failed",
        }
    }
}

/// `run_status.json`: the run's state, written before the backend starts and at the end.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunStatus {
    pub complete: bool,
    pub state: RunState,
    /// The backend's label: kind, name, version, origin.
    pub backend: String,
    pub config_name: String,
    pub config_source: String,
    pub started_unix_s: f64,
    /// Where the earlier run in this folder was moved, relative to it.
    #[serde(default)]
    pub earlier_run_moved_to: Option<String>,
    #[serde(default)]
    pub finished_unix_s: Option<f64>,
    #[serde(default)]
    pub energy_files: Vec<String>,
    #[serde(default)]
    pub files_written_by_backend: Vec<String>,
    #[serde(default)]
    pub incomplete_reasons: Vec<String>,
    #[serde(default)]
    pub error: Option<String>,
    /// Files of the host that could not be written.
    #[serde(default)]
    pub problems: Vec<String>,
}

/// A metered device and where its figures come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceRecord {
    /// `gpu0`, `cpu`, `ram`.
    pub device: String,
    pub kind: DeviceKind,
    pub name: String,
    pub source: EnergySource,
    /// Whether the source is a measurement (not an estimate or nothing).
    pub measured: bool,
}

/// One device's figures over one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeviceEnergyRecord {
    pub device: String,
    pub kind: DeviceKind,
    pub name: String,
    pub energy_j: Option<f64>,
    pub energy_wh: Option<f64>,
    pub mean_power_w: Option<f64>,
    pub peak_power_w: Option<f64>,
    pub source: EnergySource,
    pub flags: Vec<ValidityFlag>,
    pub idle_power_w: Option<f64>,
    pub energy_above_idle_j: Option<f64>,
    /// Counter-read GPUs: the integrated power samples, as a cross-check.
    pub power_integrated_j: Option<f64>,
}

/// One window's reading.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WindowRecord {
    /// The window's number in the run (the order readings were taken, from 0).
    pub id: u32,
    pub name: String,
    pub start_s: f64,
    pub end_s: f64,
    pub duration_s: f64,
    pub devices: Vec<DeviceEnergyRecord>,
    pub warnings: Vec<String>,
}

impl WindowRecord {
    /// The GPUs' energy together; none when there is no GPU figure or any GPU's is unknown.
    pub fn gpu_energy_j(&self) -> Option<f64> {
        let gpus: Vec<&DeviceEnergyRecord> = self.devices.iter().filter(|d| d.kind == DeviceKind::Gpu).collect();
        if gpus.is_empty() {
            return None;
        }
        gpus.iter().map(|d| d.energy_j).sum()
    }
}

/// What the meter's sampler cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SamplerRecord {
    pub interval_ms: f64,
    pub cpu_s: f64,
    pub wall_s: f64,
    pub cpu_s_per_hour: Option<f64>,
    pub busy_s: f64,
    pub busy_s_per_hour: Option<f64>,
}

/// The idle baseline measured before the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IdleRecord {
    pub duration_s: f64,
    /// Mean idle power by device label.
    pub power_w: std::collections::BTreeMap<String, f64>,
}

/// `energy_meter.json`: every window the run's meter read, the devices and their sources, the
/// meter's notices and the sampler's cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnergyRecord {
    pub devices: Vec<DeviceRecord>,
    /// What the meter said once about the machine (no NVML, estimates in use, ...).
    pub notices: Vec<String>,
    pub sampler: SamplerRecord,
    pub idle_baseline: Option<IdleRecord>,
    pub windows: Vec<WindowRecord>,
    /// Windows still open when the run ended (a backend that did not close them).
    pub open_windows: Vec<String>,
}

impl EnergyRecord {
    /// The window numbered `id`.
    pub fn window(&self, id: u32) -> Option<&WindowRecord> {
        self.windows.iter().find(|w| w.id == id)
    }

    /// Whether any metered GPU has a measured source.
    pub fn gpu_metered(&self) -> bool {
        self.devices.iter().any(|d| d.kind == DeviceKind::Gpu && d.measured)
    }

    /// The source of the figures of each kind of device, e.g. the GPUs'.
    pub fn source_of(&self, kind: DeviceKind) -> Option<EnergySource> {
        self.devices.iter().find(|d| d.kind == kind).map(|d| d.source)
    }
}

/// The GPUs a run uses, or why it uses none.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum GpuUse {
    /// CUDA GPUs as the config numbers them (after `CUDA_VISIBLE_DEVICES`).
    Gpus(Vec<u32>),
    /// Why no GPU of this machine takes part.
    None(String),
}

impl GpuUse {
    /// Why no GPU took part, when none did.
    pub fn absent_reason(&self) -> Option<&str> {
        match self {
            GpuUse::Gpus(_) => None,
            GpuUse::None(why) => Some(why),
        }
    }
}

/// What a run needs, as its backend declared it before anything was touched, and the host
/// accepted it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunPlan {
    pub models: Vec<String>,
    pub datasets: Vec<String>,
    pub endpoints: Vec<String>,
    pub gpus: GpuUse,
    pub report_format: String,
    #[serde(default)]
    pub notes: Vec<String>,
}

/// How a phase's figure is obtained from the meter's windows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PhaseDerivation {
    /// The reading of one window.
    Measured,
    /// The mean of several windows (iterations).
    MeanOfWindows,
    /// A difference of windows (decode = generate − prefill), then the mean.
    DifferenceOfWindows,
    /// A share of one window, attributed, not metered apart.
    Attributed,
}

/// A count of what a phase processed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Volume {
    pub count: u64,
    pub unit: String,
}

/// One phase of the report, as the backend described it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseFact {
    pub name: String,
    /// The windows its figure comes from (`WindowRecord::id`).
    pub windows: Vec<u32>,
    pub derivation: PhaseDerivation,
    pub definition: Option<String>,
    pub volume: Option<Volume>,
    /// False when the phase was cut short: its figure covers only part of its work.
    pub complete: bool,
}

/// Requests (prompts) of the workload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RequestCounts {
    pub total: u64,
    pub succeeded: u64,
    pub failed: u64,
    pub not_sent: u64,
}

/// Tokens of the successful requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenCounts {
    pub input: u64,
    pub output: u64,
    pub source: TokenCountSource,
}

/// A figure the backend derived (per token, per request), with its unit and definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figure {
    pub name: String,
    pub value: f64,
    pub unit: String,
    pub definition: String,
}

/// What the run did, as its backend reported it (typed, beside the report).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunFacts {
    pub gpus: GpuUse,
    pub phases: Vec<PhaseFact>,
    pub requests: Option<RequestCounts>,
    pub tokens: Option<TokenCounts>,
    pub workload_ns: Option<u64>,
    pub mean_e2e_ns: Option<u64>,
    pub mean_ttft_ns: Option<u64>,
    #[serde(default)]
    pub figures: Vec<Figure>,
    /// (prompt index, GPU J) attributed per request by the backend; not measurements.
    #[serde(default)]
    pub request_gpu_energy_j: Vec<(u32, f64)>,
    #[serde(default)]
    pub incomplete_reasons: Vec<String>,
    #[serde(default)]
    pub warnings: Vec<String>,
}

impl RunFacts {
    /// The phase named `name`.
    pub fn phase(&self, name: &str) -> Option<&PhaseFact> {
        self.phases.iter().find(|p| p.name == name)
    }
}

/// `run_record.json`: the run's plan and facts, as typed records.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    /// The backend's label (kind, name, version, origin).
    pub backend: String,
    /// The plugin API version the backend was built for.
    pub api_version: String,
    /// SHA-256 of the backend's plugin file (none in records written by hosts before plugin API 0.2.1).
    #[serde(default)]
    pub backend_sha256: Option<String>,
    pub plan: RunPlan,
    /// None when the backend failed before it could report.
    pub facts: Option<RunFacts>,
    /// End-to-end latency of each successful request, as the host timed it (ms).
    #[serde(default)]
    pub request_latencies_ms: Vec<f64>,
    /// Where each of the plan's models and datasets came from (the Hub commit it resolved to).
    #[serde(default)]
    pub sources: Vec<SourceRecord>,
    /// The grid carbon intensity and PUE resolved before the run (none in records of
    /// energy-star before 0.2.1's carbon settings).
    #[serde(default)]
    pub carbon: Option<CarbonSettings>,
    /// The machine, described before the run (none in records written by hosts before plugin API 0.2.2).
    #[serde(default)]
    pub machine: Option<MachineDescription>,
    /// Each chat template the backend rendered prompts through, with its keyword arguments
    /// (empty when prompts were tokenized as plain text).
    #[serde(default)]
    pub chat_templates: Vec<ChatTemplateUse>,
}

/// A chat template a run used: which, where it was found, with what, and how often.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChatTemplateUse {
    pub model: String,
    /// SHA-256 (hex) of the template's text.
    pub sha256: String,
    /// `chat_template.jinja` or `tokenizer_config.json`.
    pub origin: String,
    /// The keyword arguments, as the backend gave them.
    pub kwargs: serde_json::Map<String, serde_json::Value>,
    /// Keyword arguments the template never reads.
    pub unused_kwargs: Vec<String>,
    /// Prompts rendered through it.
    pub prompts: u64,
}

/// Where a model or dataset of the plan came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceOrigin {
    /// The Hugging Face Hub, through the shared cache.
    Hub,
    /// A folder or file given by path.
    Local,
    /// Embedded in energy-star (the offline default's toy model and prompts).
    BuiltIn,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SourceRecord {
    /// `model` or `dataset`.
    pub kind: String,
    /// As the plan names it.
    pub name: String,
    pub origin: SourceOrigin,
    /// The revision asked for (`main` unless pinned), for the Hub.
    #[serde(default)]
    pub revision: Option<String>,
    /// The commit the revision resolved to, for the Hub.
    #[serde(default)]
    pub commit: Option<String>,
    /// The snapshot folder, or the path given.
    #[serde(default)]
    pub path: Option<String>,
    /// Bytes this run downloaded for it (0: all from the cache).
    #[serde(default)]
    pub bytes_downloaded: u64,
}

/// One phase of a summary, Wh.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryPhase {
    pub name: String,
    pub gpu_wh: Option<f64>,
    pub cpu_wh: Option<f64>,
    pub ram_wh: Option<f64>,
    pub counted: bool,
}

/// `GPU_ENERGY_SUMMARY.json`: the original summarizer's keys first (`units`, `total`, `format`,
/// `preprocess_wh`, `prefill_wh`, `decode_wh`, then one `{phase}_wh` per other phase found),
/// then what energy-star adds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRecord {
    pub units: String,
    /// The leaderboard total, rounded as the original does; null without a GPU figure or for
    /// an incomplete run.
    pub total: Option<f64>,
    pub format: String,
    pub preprocess_wh: Option<f64>,
    pub prefill_wh: Option<f64>,
    pub decode_wh: Option<f64>,
    /// `{phase}_wh` of every other phase, in report order.
    #[serde(flatten)]
    pub other_phases_wh: serde_json::Map<String, serde_json::Value>,
}

/// energy-star's part of the summary, read back by `report` and `batch` (the same file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryDetails {
    pub total_unrounded_wh: Option<f64>,
    pub complete: bool,
    #[serde(default)]
    pub incomplete_reasons: Vec<String>,
    /// The counted phases' GPU total of an incomplete run: what was measured, not the run's.
    #[serde(default)]
    pub partial_total_wh: Option<f64>,
    #[serde(default)]
    pub gpu_absent_reason: Option<String>,
    pub cpu_wh: Option<f64>,
    pub ram_wh: Option<f64>,
    pub counted_phases: Vec<String>,
    pub phases: Vec<SummaryPhase>,
    pub warnings: Vec<String>,
    pub source: String,
    pub report: String,
    pub summarizer: String,
    /// SHA-256 of the summarizer's plugin file.
    #[serde(default)]
    pub summarizer_sha256: Option<String>,
    /// Emissions of the summarized energy, when the run's record has carbon settings.
    #[serde(default)]
    pub emissions: Option<EmissionsRecord>,
    /// The phases measured more than once (`scenario.iterations`), with their statistics.
    #[serde(default)]
    pub repeats: Option<crate::repeats::RepeatsRecord>,
}

/// Emissions of a summary's energy: energy × grid intensity (device level, as upstream's
/// formats report it) and × PUE (facility level). Each figure is none where its energy is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EmissionsRecord {
    /// The factor, none when unknown (`unknown_reason` says why).
    pub g_co2eq_per_kwh: Option<f64>,
    pub intensity: Option<CarbonIntensity>,
    pub unknown_reason: Option<String>,
    pub pue: f64,
    /// Of the GPU total.
    pub gpu_g_co2eq: Option<f64>,
    /// Of GPU + CPU + RAM as the summary has them (CodeCarbon's `emissions` covers the same).
    pub all_devices_g_co2eq: Option<f64>,
    /// `gpu_g_co2eq` × PUE.
    pub gpu_facility_g_co2eq: Option<f64>,
    /// `all_devices_g_co2eq` × PUE.
    pub all_devices_facility_g_co2eq: Option<f64>,
}

impl EmissionsRecord {
    /// The emissions of `gpu_wh` and of GPU + CPU + RAM (`cpu_wh`, `ram_wh` counted when known)
    /// under `carbon`. Without a GPU (`gpu_absent`) the all-devices figure is CPU + RAM's; with
    /// one whose energy is unknown it is none.
    pub fn of(
        carbon: &CarbonSettings,
        gpu_wh: Option<f64>,
        gpu_absent: bool,
        cpu_wh: Option<f64>,
        ram_wh: Option<f64>,
    ) -> Self {
        let gpu_for_all = if gpu_absent { Some(0.0) } else { gpu_wh };
        let all_wh = gpu_for_all
            .map(|g| g + cpu_wh.unwrap_or(0.0) + ram_wh.unwrap_or(0.0))
            .filter(|_| !gpu_absent || cpu_wh.is_some() || ram_wh.is_some());
        let device = |wh: Option<f64>| wh.and_then(|w| carbon.device_emissions_g(w / 1000.0));
        let facility = |wh: Option<f64>| wh.and_then(|w| carbon.facility_emissions_g(w / 1000.0));
        Self {
            g_co2eq_per_kwh: carbon.intensity.as_ref().map(|i| i.g_co2eq_per_kwh),
            intensity: carbon.intensity.clone(),
            unknown_reason: carbon.unknown_reason.clone(),
            pue: carbon.pue,
            gpu_g_co2eq: device(gpu_wh),
            all_devices_g_co2eq: device(all_wh),
            gpu_facility_g_co2eq: facility(gpu_wh),
            all_devices_facility_g_co2eq: facility(all_wh),
        }
    }
}

impl SummaryRecord {
    /// The details energy-star adds, read from the same file's other keys.
    pub fn details(&self) -> Result<SummaryDetails, String> {
        serde_json::from_value(serde_json::Value::Object(self.other_phases_wh.clone())).map_err(|e| e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_status_round_trips_and_reads_what_earlier_versions_wrote() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join(RUN_STATUS);
        assert!(read_record::<RunStatus>(&path).expect("absent").is_none());
        // run_status.json as energy-star 0.1 wrote it before a run ended.
        std::fs::write(&path, r#"{"complete": false, "state": "running", "backend": "backend optimum 0.1.0 (built-in)", "config_name": "t", "config_source": "built-in", "started_unix_s": 1.5}"#).expect("write");
        let s: RunStatus = read_record(&path).expect("read").expect("present");
        assert_eq!((s.state, s.finished_unix_s, s.incomplete_reasons.len()), (RunState::Running, None, 0));
        let done = RunStatus { state: RunState::Incomplete, incomplete_reasons: vec!["Ctrl-C".into()], ..s };
        write_record(&path, &done).expect("write");
        assert_eq!(read_record::<RunStatus>(&path).expect("read"), Some(done));
        std::fs::write(&path, "{\"state\": 3}").expect("write");
        let err = read_record::<RunStatus>(&path).unwrap_err().to_string();
        assert!(err.contains(RUN_STATUS), "{err}");
    }
}
