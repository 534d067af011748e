//! Policy shared by the built-in backends, on the plugin SDK's types: what an
//! optimum-benchmark-style config asks for ([`Settings`], with the config key of every
//! refusal), energy arithmetic in kWh with the source of every figure ([`Energy`],
//! [`provenance`]), the pieces of the reports, and the run facts the host keeps ([`facts`]).

pub mod facts;
pub mod prompt_format;
pub mod serving;

use energy_star_plugin_sdk::backend::host::carbon::{CarbonSettings, GridIntensity, IntensityBasis};
use energy_star_plugin_sdk::backend::host::machine::MachineDescription;
use energy_star_plugin_sdk::backend::host::meter::WindowReading;
use energy_star_plugin_sdk::backend::host::types::{Device, DeviceKind, Dtype, EnergySource, GpuUse};
use energy_star_plugin_sdk::backend::{self as sdk, ConfigError};
use energy_star_plugin_sdk::types::{self as names, J_PER_KWH};
use serde_json::{Map, Value, json};

/// Energy by device class in kWh (optimum-benchmark's `Energy`); None where not measured.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct Energy {
    pub gpu_kwh: Option<f64>,
    pub cpu_kwh: Option<f64>,
    pub ram_kwh: Option<f64>,
    /// Whether the run used a GPU: then a missing GPU figure makes the total unknown rather
    /// than CPU + RAM alone.
    pub gpu_used: bool,
}

impl Energy {
    pub fn of(w: &WindowReading, gpu_used: bool) -> Self {
        Self {
            gpu_kwh: sum_kind(w, DeviceKind::Gpu),
            cpu_kwh: sum_kind(w, DeviceKind::Cpu),
            ram_kwh: sum_kind(w, DeviceKind::Ram),
            gpu_used,
        }
    }

    /// cpu + ram + gpu (optimum's `total`); unknown when a device the run used is unknown.
    pub fn total_kwh(&self) -> Option<f64> {
        if self.gpu_used && self.gpu_kwh.is_none() {
            return None;
        }
        let parts: Vec<f64> = [self.gpu_kwh, self.cpu_kwh, self.ram_kwh].into_iter().flatten().collect();
        (!parts.is_empty()).then(|| parts.iter().sum())
    }

    /// Component-wise difference (optimum's `Energy.__sub__`); None where either is None.
    pub fn minus(&self, o: &Energy) -> Energy {
        let d = |a: Option<f64>, b: Option<f64>| a.zip(b).map(|(a, b)| a - b);
        Energy {
            gpu_kwh: d(self.gpu_kwh, o.gpu_kwh),
            cpu_kwh: d(self.cpu_kwh, o.cpu_kwh),
            ram_kwh: d(self.ram_kwh, o.ram_kwh),
            gpu_used: self.gpu_used,
        }
    }

    /// Mean of several (iterations).
    pub fn mean(all: &[Energy]) -> Energy {
        let m = |f: fn(&Energy) -> Option<f64>| -> Option<f64> {
            let v: Option<Vec<f64>> = all.iter().map(f).collect();
            v.filter(|v| !v.is_empty()).map(|v| v.iter().sum::<f64>() / v.len() as f64)
        };
        Energy {
            gpu_kwh: m(|e| e.gpu_kwh),
            cpu_kwh: m(|e| e.cpu_kwh),
            ram_kwh: m(|e| e.ram_kwh),
            gpu_used: all.iter().any(|e| e.gpu_used),
        }
    }

    /// The GPU figure as the upstream formats write it: a run that used no GPU reports 0.0, as
    /// CodeCarbon does on a machine without one (energy-star's own files say "no GPU"); a run
    /// that used GPUs it could not meter keeps its None (and is marked incomplete).
    pub fn gpu_kwh_upstream(&self) -> Option<f64> {
        if self.gpu_used { self.gpu_kwh } else { Some(self.gpu_kwh.unwrap_or(0.0)) }
    }

    /// optimum-benchmark's energy object.
    pub fn to_json(&self) -> Value {
        json!({"unit": "kWh", "cpu": self.cpu_kwh, "ram": self.ram_kwh, "gpu": self.gpu_kwh_upstream(), "total": self.total_kwh()})
    }
}

/// The energy of a kind of device over a window, kWh; devices that could not be metered are
/// left out, and none when no device of the kind was.
fn sum_kind(w: &WindowReading, kind: DeviceKind) -> Option<f64> {
    let figs: Vec<_> =
        w.devices.iter().filter(|d| d.device.kind == kind && d.source != EnergySource::Unavailable).collect();
    if figs.is_empty() {
        return None;
    }
    figs.iter().map(|d| d.energy_j).sum::<Option<f64>>().map(|j| j / J_PER_KWH)
}

/// The grid factor, g CO2eq/kWh, when the host knows one.
fn grid_g_per_kwh(carbon: &CarbonSettings) -> Option<f64> {
    match &carbon.intensity {
        GridIntensity::Known(i) => Some(i.g_co2eq_per_kwh),
        GridIntensity::Unknown(_) => None,
    }
}

/// Grams of CO2eq of `e`'s total (GPU + CPU + RAM, what CodeCarbon's `emissions` covers) at the
/// device, when the total and the factor are known.
pub fn device_emissions_g(e: &Energy, carbon: &CarbonSettings) -> Option<f64> {
    e.total_kwh().zip(grid_g_per_kwh(carbon)).map(|(kwh, g)| kwh * g)
}

/// The `energy` block of an ai_energy_benchmarks report (its CodeCarbon keys) for a window of
/// `duration_s`. Emissions are the total energy × the host's grid factor (null when the host
/// knows none: never invented); `carbon_intensity_g_per_kwh` holds that factor in the unit its
/// name says (the original writes CodeCarbon's `emissions_rate`, kg/s, there).
pub fn ai_energy_benchmarks_energy(e: &Energy, duration_s: f64, project: &str, carbon: &CarbonSettings) -> Value {
    let kwh = |v: Option<f64>| json!(v);
    let wh = |v: Option<f64>| json!(v.map(|x| x * 1000.0));
    let gpu = e.gpu_kwh_upstream();
    let emissions_g = device_emissions_g(e, carbon);
    let location = match &carbon.intensity {
        GridIntensity::Known(i) => i.location.as_ref(),
        GridIntensity::Unknown(_) => None,
    };
    json!({
        "emissions_kg_co2eq": emissions_g.map(|g| g / 1000.0),
        "emissions_g_co2eq": emissions_g,
        "energy_kwh": kwh(gpu),
        "energy_wh": wh(gpu),
        "gpu_energy_kwh": kwh(gpu),
        "gpu_energy_wh": wh(gpu),
        "cpu_energy_kwh": kwh(e.cpu_kwh),
        "cpu_energy_wh": wh(e.cpu_kwh),
        "ram_energy_kwh": kwh(e.ram_kwh),
        "ram_energy_wh": wh(e.ram_kwh),
        "total_energy_kwh": kwh(e.total_kwh()),
        "total_energy_wh": wh(e.total_kwh()),
        "duration_seconds": duration_s,
        "carbon_intensity_g_per_kwh": grid_g_per_kwh(carbon),
        "project_name": project,
        "country": location.map(|l| l.country_iso_code.clone()),
        "region": location.and_then(|l| l.region.clone()),
    })
}

/// energy-star's account of the carbon figures, for its additions: the factor, where it came
/// from, the PUE, and the facility-level figure beside the device-level one upstream's fields hold.
pub fn carbon_additions(e: &Energy, carbon: &CarbonSettings) -> Value {
    let device_g = device_emissions_g(e, carbon);
    let mut out = json!({
        "g_co2eq_per_kwh": grid_g_per_kwh(carbon),
        "pue": carbon.pue,
        "emissions_g_co2eq_device": device_g,
        "emissions_g_co2eq_facility": device_g.map(|g| g * carbon.pue),
        "covers": "GPU + CPU + RAM energy of the metered window, as CodeCarbon's emissions",
    });
    match &carbon.intensity {
        GridIntensity::Known(i) => {
            out["basis"] = json!(match i.basis {
                IntensityBasis::ConfiguredIntensity => "configured-intensity",
                IntensityBasis::ConfiguredLocation => "configured-location",
                IntensityBasis::EnvironmentLocation => "environment-location",
                IntensityBasis::DefaultLocation => "default-location",
            });
            out["source"] = json!(i.source);
            out["note"] = json!(i.note);
        }
        GridIntensity::Unknown(why) => out["unknown_reason"] = json!(why),
    }
    out
}

/// The line the reports' list of differences from the original gives about carbon.
pub fn carbon_difference(carbon: &CarbonSettings) -> String {
    match &carbon.intensity {
        GridIntensity::Known(i) => format!(
            "carbon_intensity_g_per_kwh is the grid factor in g CO2eq/kWh ({}; the original writes CodeCarbon's emissions_rate, kg/s, under that name); PUE is not applied to energies or to the emissions fields (see carbon.emissions_g_co2eq_facility)",
            i.note
        ),
        GridIntensity::Unknown(why) => format!("carbon figures are null: {why}; none invented"),
    }
}

/// The `gpu_stats` block of an ai_energy_benchmarks report: each measured GPU's mean power and,
/// from the machine's description, its total memory (MiB, as nvidia-smi gives it upstream).
pub fn ai_energy_benchmarks_gpu_stats(w: &WindowReading, machine: &MachineDescription) -> Value {
    let mut stats = Map::new();
    let duration_s = sdk::duration_s(w).max(1e-9);
    for d in w.devices.iter().filter(|d| d.device.kind == DeviceKind::Gpu && d.energy_j.is_some()) {
        let mut gpu = Map::new();
        let memory = machine.gpus.iter().find(|g| g.index == d.device.index).and_then(|g| g.memory_bytes);
        if let Some(bytes) = memory {
            gpu.insert("memory_total_mb".into(), json!(bytes as f64 / (1u64 << 20) as f64));
        }
        gpu.insert("power_draw_w".into(), json!(d.energy_j.map(|j| j / duration_s)));
        stats.insert(format!("gpu_{}", d.device.index), Value::Object(gpu));
    }
    Value::Object(stats)
}

fn source_name(s: EnergySource) -> &'static str {
    names::EnergySource::from(s).as_str()
}

/// Where a window's figures came from, for the `energy_star` block beside each phase.
pub fn provenance(windows: &[&WindowReading]) -> Value {
    let mut sources = Map::new();
    let mut flags: Vec<String> = Vec::new();
    let mut devices = Vec::new();
    for w in windows {
        for d in &w.devices {
            let key = match d.device.kind {
                DeviceKind::Gpu => "gpu_source",
                DeviceKind::Cpu => "cpu_source",
                DeviceKind::Ram => "ram_source",
            };
            sources.entry(key.to_string()).or_insert_with(|| json!(source_name(d.source)));
            let label = sdk::device_label(&d.device);
            let device_flags: Vec<&str> = d.validity.iter().map(|f| names::ValidityFlag::from(*f).as_str()).collect();
            for fl in &device_flags {
                let tagged = format!("{label}:{fl}");
                if !flags.contains(&tagged) {
                    flags.push(tagged);
                }
            }
            devices.push(json!({"window": w.name, "device": label, "energy_j": d.energy_j, "source": source_name(d.source), "flags": device_flags}));
        }
    }
    let mut out = sources;
    out.insert("flags".into(), json!(flags));
    out.insert(
        "windows".into(),
        json!(windows.iter().map(|w| json!({"name": w.name, "duration_s": sdk::duration_s(w)})).collect::<Vec<_>>()),
    );
    out.insert("devices".into(), json!(devices));
    Value::Object(out)
}

/// Flags of a measured window that also make a difference of two windows doubtful. A window
/// too short to time well alone (`too-short`) says nothing about the difference, which covers
/// the longer window's work.
const DERIVATION_DOUBTS: &[names::ValidityFlag] =
    &[names::ValidityFlag::ZeroReading, names::ValidityFlag::CounterReset];

/// Provenance of a derived phase (decode = generate − prefill, per iteration): the windows'
/// sources and figures, and flags only for what makes the derivation doubtful: a zero reading
/// or a counter reset in either window, or a negative result, each said in words.
pub fn derived_provenance(definition: &str, windows: &[&WindowReading], results: &[Energy]) -> Value {
    let mut out = match provenance(windows) {
        Value::Object(m) => m,
        _ => Map::new(),
    };
    let mut flags: Vec<String> = Vec::new();
    let mut push = |f: String| {
        if !flags.contains(&f) {
            flags.push(f);
        }
    };
    for w in windows {
        for d in &w.devices {
            for fl in d.validity.iter().map(|f| names::ValidityFlag::from(*f)).filter(|f| DERIVATION_DOUBTS.contains(f))
            {
                push(format!("{}:{fl} in the {} window it is derived from", sdk::device_label(&d.device), w.name));
            }
        }
    }
    for (i, e) in results.iter().enumerate() {
        for (dev, v) in [("gpu", e.gpu_kwh), ("cpu", e.cpu_kwh), ("ram", e.ram_kwh)] {
            if v.is_some_and(|v| v < 0.0) {
                push(format!("{dev}:negative-derived-value in iteration {i} ({definition} came out below zero)"));
            }
        }
    }
    out.insert("flags".into(), json!(flags));
    out.insert("derived".into(), json!(definition));
    Value::Object(out)
}

/// Reads a dotted key.
pub fn get<'a>(cfg: &'a Value, path: &str) -> Option<&'a Value> {
    path.split('.').try_fold(cfg, |v, k| v.get(k))
}

pub fn str_at(cfg: &Value, path: &str) -> Option<String> {
    get(cfg, path).and_then(Value::as_str).map(str::to_string)
}

/// `backend.model` at the revision `backend.model_kwargs.revision` pins (optimum-benchmark
/// passes `model_kwargs` to `from_pretrained`, where `revision` is a branch, tag or commit), as
/// `ORG/NAME@REVISION`, the form the host fetches and the engine finds in the cache.
fn pinned(cfg: &Value, model: String) -> Result<String, ConfigError> {
    const KEY: &str = "backend.model_kwargs.revision";
    let Some(rev) = get(cfg, KEY).filter(|v| !v.is_null()) else { return Ok(model) };
    let rev = rev
        .as_str()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .ok_or_else(|| refuse(KEY, format!("{KEY} = {rev} must be a branch, tag or commit, as a string")))?;
    match model.split_once('@') {
        Some((_, at)) if at == rev => Ok(model),
        Some((_, at)) => Err(refuse(KEY, format!("{KEY} = {rev} but backend.model pins {at}: give one revision"))),
        None => Ok(format!("{model}@{rev}")),
    }
}

/// A refusal of the config at `key`, as `prepare` returns it.
pub fn refuse(key: &str, message: impl Into<String>) -> ConfigError {
    ConfigError { key: Some(key.to_string()), message: message.into() }
}

pub fn int_at(cfg: &Value, path: &str) -> Result<Option<i64>, ConfigError> {
    match get(cfg, path) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => {
            n.as_i64().map(Some).ok_or_else(|| refuse(path, format!("{path} = {n} must be an integer")))
        }
        Some(v) => Err(refuse(path, format!("{path} = {v} must be an integer"))),
    }
}

pub fn bool_at(cfg: &Value, path: &str) -> Option<bool> {
    get(cfg, path).and_then(Value::as_bool)
}

/// What a text-generation run asks for, read from an optimum-benchmark-style config.
#[derive(Debug, Clone, PartialEq)]
pub struct Settings {
    pub name: String,
    pub model: String,
    pub processor: Option<String>,
    pub device: String,
    pub device_ids: Vec<u32>,
    pub dtype: String,
    pub dataset: String,
    pub dataset_config: String,
    pub split: String,
    pub column: String,
    /// None: every row.
    pub num_samples: Option<u32>,
    pub truncation: bool,
    pub batch_size: u32,
    pub max_new_tokens: u32,
    pub min_new_tokens: u32,
    pub do_sample: bool,
    pub temperature: f32,
    pub top_p: f32,
    pub seed: u64,
    pub warmup_runs: u32,
    pub iterations: u32,
    pub prefix: String,
    /// `scenario.reasoning`: prompts go through the model's chat template.
    pub reasoning: bool,
    /// `scenario.reasoning_params`: the template's keyword arguments (`reasoning_effort`, ...).
    pub reasoning_params: Map<String, Value>,
    /// `backend.task` (text-generation unless the config says).
    pub task: String,
    /// `backend.no_weights`: random weights from the model's config.
    pub no_weights: bool,
    /// The columns the non-generative tasks read (`scenario.*_column_name`, optimum-benchmark's
    /// defaults).
    pub columns: TaskColumnNames,
    /// Notes on defaults taken, for the report.
    pub notes: Vec<String>,
}

/// `scenario.image_column_name` and the others, with optimum-benchmark's defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskColumnNames {
    pub image: String,
    pub question: String,
    pub context: String,
    pub sentence1: String,
    pub sentence2: String,
}

/// The non-generative tasks optimum-benchmark's energy_star scenario runs as one `forward` pass
/// (and energy-star's local engine runs).
pub const FORWARD_TASKS: &[&str] =
    &["text-classification", "sentence-similarity", "question-answering", "image-classification", "object-detection"];

/// What [`Settings::read`] is told about the backend reading them.
#[derive(Debug, Clone, Copy)]
pub struct Reader<'a> {
    /// The backend's name, for errors.
    pub backend: &'a str,
    /// How it reads max/min new tokens.
    pub tokens: TokenRule,
    /// Whether it can run `scenario.reasoning=true` (it applies the model's chat template, or
    /// the server does).
    pub reasoning: bool,
    /// Whether `backend.model` names weights this machine loads (then a revision pin applies),
    /// rather than a model a server serves.
    pub loads_weights: bool,
    /// Whether it repeats its measured passes for `scenario.iterations`; one that cannot refuses
    /// iterations above 1 rather than run once and say nothing.
    pub repeats: bool,
    /// Whether it runs the non-generative tasks ([`FORWARD_TASKS`]).
    pub forward_tasks: bool,
}

/// How a backend reads `scenario.generate_kwargs.max_new_tokens` / `min_new_tokens`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenRule {
    /// optimum-benchmark's: the two equal (one given copies to the other, different ones are
    /// refused), `default` for both when neither is given.
    Equal { default: u32 },
    /// AI Energy Score's wrapper around ai_energy_benchmarks (`reasoning_helpers.py`): each
    /// from the config, else 8192 and 1 when `scenario.reasoning_params` enable reasoning, else
    /// 10 and 10; min may be below max (the batch runner's reasoning rows: 8192 and 1).
    AiEnergyScore,
}

/// `backend.device_ids` as configs write it: `0`, `"0, 1, 2"`, `[0, 1]`, or null (GPU 0).
pub fn device_ids(value: Option<&Value>) -> Result<Vec<u32>, ConfigError> {
    let bad = |v: &Value| refuse("backend.device_ids", format!("backend.device_ids = {v} must be GPU indices"));
    match value {
        None | Some(Value::Null) => Ok(vec![0]),
        Some(v @ Value::Number(n)) => Ok(vec![n.as_u64().and_then(|x| u32::try_from(x).ok()).ok_or_else(|| bad(v))?]),
        Some(v @ Value::String(s)) => s
            .split(',')
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .map(|p| p.parse::<u32>().map_err(|_| bad(v)))
            .collect(),
        Some(v @ Value::Array(a)) => {
            a.iter().map(|x| x.as_u64().and_then(|x| u32::try_from(x).ok()).ok_or_else(|| bad(v))).collect()
        }
        Some(v) => Err(bad(v)),
    }
}

impl Settings {
    /// The GPUs a local run uses, or why none.
    pub fn gpus(&self) -> GpuUse {
        if self.device.starts_with("cuda") {
            GpuUse::Gpus(self.device_ids.clone())
        } else {
            GpuUse::None(format!("backend.device={}: the run used no GPU", self.device))
        }
    }

    /// Whether the run uses a GPU.
    pub fn gpu_used(&self) -> bool {
        matches!(self.gpus(), GpuUse::Gpus(_))
    }

    /// Where the local engine runs.
    pub fn engine_device(&self) -> Device {
        if self.gpu_used() { Device::Cuda(self.device_ids.clone()) } else { Device::Cpu }
    }

    /// The local engine's precision, from `backend.torch_dtype`.
    pub fn engine_dtype(&self) -> Result<Dtype, ConfigError> {
        Ok(match self.dtype.as_str() {
            "auto" => Dtype::Auto,
            "float32" | "fp32" | "f32" => Dtype::Float32,
            "bfloat16" | "bf16" => Dtype::Bfloat16,
            "float16" | "fp16" | "f16" | "half" => Dtype::Float16,
            other => {
                return Err(refuse(
                    "backend.torch_dtype",
                    format!("backend.torch_dtype = {other:?} must be auto, float32, bfloat16 or float16"),
                ));
            }
        })
    }

    /// Reads and checks the config; a refusal names the key at fault.
    pub fn read(cfg: &Value, reader: Reader<'_>) -> Result<Self, ConfigError> {
        let Reader { backend, tokens, reasoning, loads_weights, repeats, forward_tasks } = reader;
        let mut notes = Vec::new();
        let model = match get(cfg, "backend.model") {
            Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
            None | Some(Value::Null) | Some(Value::String(_)) => {
                return Err(refuse(
                    "backend.model",
                    "backend.model is not set; pass backend.model=ORG/NAME or a folder",
                ));
            }
            Some(v) => {
                return Err(refuse(
                    "backend.model",
                    format!("backend.model = {v} must be a model id (ORG/NAME) or a folder, as a string"),
                ));
            }
        };
        let model = if loads_weights { pinned(cfg, model)? } else { model };
        if let Some(t) = get(cfg, "backend.task").filter(|v| !v.is_null()) {
            match t.as_str() {
                Some("text-generation" | "text2text-generation") => {}
                Some(t) if forward_tasks && FORWARD_TASKS.contains(&t) => {}
                Some(t) if FORWARD_TASKS.contains(&t) => {
                    return Err(refuse(
                        "backend.task",
                        format!(
                            "backend.task={t} is not supported by the {backend} backend (ai_energy_benchmarks runs text generation only); BENCHMARK_BACKEND=optimum runs {t} on the local engine"
                        ),
                    ));
                }
                Some(t) => {
                    let also = if forward_tasks { format!(", {}", FORWARD_TASKS.join(", ")) } else { String::new() };
                    return Err(refuse(
                        "backend.task",
                        format!(
                            "backend.task={t} is not supported by the {backend} backend yet (text-generation{also} are)"
                        ),
                    ));
                }
                None => {
                    return Err(refuse(
                        "backend.task",
                        format!("backend.task = {t} must be a task name such as text-generation"),
                    ));
                }
            }
        }
        if !reasoning && bool_at(cfg, "scenario.reasoning") == Some(true) {
            return Err(refuse(
                "scenario.reasoning",
                format!(
                    "scenario.reasoning=true needs the model's chat template, which the {backend} backend does not apply; set scenario.reasoning=false, or use BENCHMARK_BACKEND=optimum or pytorch (the local engine) or BENCHMARK_BACKEND=vllm"
                ),
            ));
        }
        let kw = "scenario.generate_kwargs";
        let params = reasoning_params(cfg)?;
        let task = str_at(cfg, "backend.task").unwrap_or_else(|| "text-generation".into());
        if loads_weights && !FORWARD_TASKS.contains(&task.as_str()) && bool_at(cfg, "backend.no_weights") == Some(true)
        {
            return Err(refuse(
                "backend.no_weights",
                format!(
                    "backend.no_weights=true: the local engine generates text from real weights only (random weights are built for {}); set backend.no_weights=false",
                    FORWARD_TASKS.join(", ")
                ),
            ));
        }
        // A forward task generates nothing: its token settings are not read.
        let (max, min) =
            if FORWARD_TASKS.contains(&task.as_str()) { (1, 1) } else { new_tokens(cfg, tokens, &params, &mut notes)? };
        if !(1..=i64::from(u32::MAX)).contains(&max) {
            return Err(refuse(
                &format!("{kw}.max_new_tokens"),
                format!("{kw}.max_new_tokens = {max} must be between 1 and {}", u32::MAX),
            ));
        }
        if let Some(b) = int_at(cfg, &format!("{kw}.num_beams"))?
            && b != 1
        {
            return Err(refuse(
                &format!("{kw}.num_beams"),
                format!("{kw}.num_beams = {b}: beam search is not supported (greedy or sampling)"),
            ));
        }
        let batch_size = int_at(cfg, "scenario.input_shapes.batch_size")?.unwrap_or(1);
        if !(1..=65_536).contains(&batch_size) {
            return Err(refuse(
                "scenario.input_shapes.batch_size",
                format!("scenario.input_shapes.batch_size = {batch_size} must be between 1 and 65536"),
            ));
        }
        let num_samples = match int_at(cfg, "scenario.num_samples")? {
            None | Some(-1) => {
                notes.push("scenario.num_samples is -1: every row of the dataset".into());
                None
            }
            Some(n) if n > 0 => Some(
                u32::try_from(n)
                    .map_err(|_| refuse("scenario.num_samples", format!("scenario.num_samples = {n} is too large")))?,
            ),
            Some(n) => {
                return Err(refuse(
                    "scenario.num_samples",
                    format!("scenario.num_samples = {n} must be positive, or -1 for every row"),
                ));
            }
        };
        let device_ids = device_ids(get(cfg, "backend.device_ids"))?;
        let f32_at = |p: &str, d: f32| get(cfg, p).and_then(Value::as_f64).map(|x| x as f32).unwrap_or(d);
        Ok(Self {
            name: str_at(cfg, "name").unwrap_or_else(|| "energy_star".into()),
            model,
            processor: str_at(cfg, "backend.processor"),
            device: str_at(cfg, "backend.device").unwrap_or_else(|| "cuda".into()),
            device_ids,
            dtype: str_at(cfg, "backend.torch_dtype").unwrap_or_else(|| "auto".into()),
            dataset: str_at(cfg, "scenario.dataset_name")
                .filter(|d| !d.is_empty())
                .ok_or_else(|| refuse("scenario.dataset_name", "scenario.dataset_name is not set"))?,
            dataset_config: str_at(cfg, "scenario.dataset_config").unwrap_or_default(),
            split: str_at(cfg, "scenario.dataset_split").unwrap_or_else(|| "train".into()),
            column: str_at(cfg, "scenario.text_column_name").unwrap_or_else(|| "text".into()),
            num_samples,
            truncation: bool_at(cfg, "scenario.truncation").unwrap_or(true),
            batch_size: batch_size as u32,
            max_new_tokens: max as u32,
            min_new_tokens: min as u32,
            do_sample: bool_at(cfg, &format!("{kw}.do_sample")).unwrap_or(false),
            temperature: f32_at(&format!("{kw}.temperature"), 1.0),
            top_p: f32_at(&format!("{kw}.top_p"), 1.0),
            seed: int_at(cfg, "backend.seed")?.unwrap_or(42) as u64,
            warmup_runs: int_at(cfg, "scenario.warmup_runs")?.unwrap_or(10).clamp(0, 1000) as u32,
            iterations: iterations(cfg, backend, repeats)?,
            prefix: str_at(cfg, "scenario.dataset_prefix1").unwrap_or_default(),
            reasoning: bool_at(cfg, "scenario.reasoning").unwrap_or(false),
            reasoning_params: params,
            task,
            no_weights: bool_at(cfg, "backend.no_weights").unwrap_or(false),
            columns: TaskColumnNames {
                image: str_at(cfg, "scenario.image_column_name").unwrap_or_else(|| "image".into()),
                question: str_at(cfg, "scenario.question_column_name").unwrap_or_else(|| "question".into()),
                context: str_at(cfg, "scenario.context_column_name").unwrap_or_else(|| "context".into()),
                sentence1: str_at(cfg, "scenario.sentence1_column_name").unwrap_or_else(|| "sentence1".into()),
                sentence2: str_at(cfg, "scenario.sentence2_column_name").unwrap_or_else(|| "sentence2".into()),
            },
            notes,
        })
    }
}

/// (max, min) new tokens under `rule`, noting defaults taken.
fn new_tokens(
    cfg: &Value,
    rule: TokenRule,
    params: &Map<String, Value>,
    notes: &mut Vec<String>,
) -> Result<(i64, i64), ConfigError> {
    let kw = "scenario.generate_kwargs";
    let max = int_at(cfg, &format!("{kw}.max_new_tokens"))?;
    let min = int_at(cfg, &format!("{kw}.min_new_tokens"))?;
    let (max, min) = match rule {
        TokenRule::Equal { default } => match (max, min) {
            (Some(a), Some(b)) if a != b => {
                return Err(refuse(
                    kw,
                    format!(
                        "{kw}: min_new_tokens ({b}) and max_new_tokens ({a}) differ; optimum-benchmark refuses that (\"non-deterministic behavior\") because it makes energy per token depend on when the model stops"
                    ),
                ));
            }
            (Some(a), _) | (None, Some(a)) => (a, a),
            (None, None) => {
                notes.push(format!("no generate_kwargs: {default} new tokens per prompt (the backend's default)"));
                (i64::from(default), i64::from(default))
            }
        },
        TokenRule::AiEnergyScore => {
            let reasoning = prompt_format::reasoning_enabled(params);
            let (dmax, dmin, why) = if reasoning {
                (8192, 1, "scenario.reasoning_params enable reasoning")
            } else {
                (10, 10, "no reasoning params enable reasoning")
            };
            if max.is_none() || min.is_none() {
                notes.push(format!(
                    "{why}: AI Energy Score's defaults {} (max_new_tokens {dmax}, min_new_tokens {dmin} where not given)",
                    if reasoning { "for reasoning" } else { "without reasoning" }
                ));
            }
            // A defaulted min never exceeds the max given (upstream ignores min altogether).
            let max = max.unwrap_or(dmax);
            let min = min.unwrap_or(dmin.min(max));
            if min > max {
                return Err(refuse(
                    &format!("{kw}.min_new_tokens"),
                    format!("{kw}.min_new_tokens ({min}) is above max_new_tokens ({max})"),
                ));
            }
            (max, min.max(0))
        }
    };
    Ok((max, min))
}

/// `scenario.reasoning_params`: a map (or nothing).
fn reasoning_params(cfg: &Value) -> Result<Map<String, Value>, ConfigError> {
    const KEY: &str = "scenario.reasoning_params";
    match get(cfg, KEY) {
        None | Some(Value::Null) => Ok(Map::new()),
        Some(Value::Object(m)) => Ok(m.clone()),
        Some(other) => Err(refuse(KEY, format!("{KEY} = {other} must be a map, e.g. {{reasoning_effort: high}}"))),
    }
}

/// `scenario.iterations`: 1 to 1,000 repeats of the measured passes, for a backend that repeats.
fn iterations(cfg: &Value, backend: &str, repeats: bool) -> Result<u32, ConfigError> {
    const KEY: &str = "scenario.iterations";
    let n = int_at(cfg, KEY)?.unwrap_or(1);
    if !(1..=1000).contains(&n) {
        return Err(refuse(KEY, format!("{KEY} = {n} must be between 1 and 1000")));
    }
    if n > 1 && !repeats {
        return Err(refuse(
            KEY,
            format!(
                "{KEY} = {n}: the {backend} backend measures its workload once, as the tool it replaces does; repeat the run into separate folders (energy-star compare reads them) or use the optimum backend, which repeats its passes"
            ),
        ));
    }
    Ok(n as u32)
}

/// optimum-benchmark's efficiency: volume per kWh of *total* energy; 0 for a measured total
/// of 0 or less (as optimum does), null when the total is unknown.
pub fn efficiency(volume: f64, unit: &str, e: &Energy) -> Value {
    let value = match e.total_kwh() {
        Some(t) if t > 0.0 => json!(volume / t),
        Some(_) => json!(0.0),
        None => Value::Null,
    };
    json!({"unit": unit, "value": value})
}

/// A phase object in optimum-benchmark's shape, with energy-star's provenance beside it.
pub fn phase(
    energy: Option<&Energy>,
    efficiency: Option<Value>,
    measures: Option<Vec<Energy>>,
    provenance: Option<Value>,
) -> Value {
    let mut m = Map::new();
    m.insert("memory".into(), Value::Null);
    m.insert("latency".into(), Value::Null);
    m.insert("throughput".into(), Value::Null);
    m.insert("energy".into(), energy.map(Energy::to_json).unwrap_or(Value::Null));
    m.insert("efficiency".into(), efficiency.unwrap_or(Value::Null));
    if let Some(ms) = measures {
        m.insert("measures".into(), Value::Array(ms.iter().map(Energy::to_json).collect()));
    }
    if let Some(p) = provenance {
        m.insert("energy_star".into(), p);
    }
    Value::Object(m)
}

/// energy-star's own file beside the upstream report: what it adds (provenance, measures of
/// each iteration, timings, notes), which upstream readers must not see.
pub const ADDITIONS_FILE: &str = "energy_star_report.json";

/// Splits a report into the upstream format's own keys and energy-star's additions: the
/// top-level `energy_star` block and, in each phase object, `energy_star` and `measures`.
/// Returns (the upstream report, `{"run": ..., "phases": {NAME: {...}}}`).
pub fn split_additions(report: Value) -> (Value, Value) {
    let Value::Object(mut top) = report else { return (report, json!({})) };
    let run = top.remove("energy_star").unwrap_or(Value::Null);
    let mut phases = Map::new();
    for (name, v) in top.iter_mut() {
        let Value::Object(phase) = v else { continue };
        let mut own = Map::new();
        for key in ["energy_star", "measures"] {
            if let Some(x) = phase.remove(key) {
                own.insert(if key == "energy_star" { "provenance".into() } else { key.into() }, x);
            }
        }
        if !own.is_empty() {
            phases.insert(name.clone(), Value::Object(own));
        }
    }
    (Value::Object(top), json!({"format": "energy-star-additions/1", "run": run, "phases": phases}))
}

/// Why a report's GPU figures are not a benchmark's: phases where GPUs were used but their
/// energy could not be metered (`null` in upstream's format, whose types cannot say "not
/// measured"). Such a run is marked incomplete rather than given a number.
pub fn unmetered_gpu_reason(report: &Value) -> Option<String> {
    let Value::Object(top) = report else { return None };
    let mut phases: Vec<&str> = Vec::new();
    for (name, v) in top {
        let gpu = v.get("energy").and_then(|e| e.get("gpu").or_else(|| e.get("gpu_energy_wh")));
        if matches!(gpu, Some(Value::Null)) {
            phases.push(name);
        }
    }
    // ai_energy_benchmarks: one `energy` block at the top.
    if matches!(top.get("energy").and_then(|e| e.get("gpu_energy_wh")), Some(Value::Null)) {
        phases.push("the workload");
    }
    (!phases.is_empty()).then(|| {
        format!(
            "the run used GPUs whose energy could not be metered ({}): the report's GPU figure is null, not a measurement",
            phases.join(", ")
        )
    })
}

/// Writes [`ADDITIONS_FILE`]; a failure is said in the run's warnings, not fatal.
pub fn write_additions(additions: &Value, warnings: &mut Vec<String>) {
    let text = serde_json::to_string_pretty(additions).unwrap_or_default();
    if let Err(e) = sdk::host::results::write_file(ADDITIONS_FILE, text.as_bytes()) {
        warnings.push(format!("{ADDITIONS_FILE} was not written: {}", sdk::describe(&e)));
    }
}

#[cfg(test)]
mod tests;
