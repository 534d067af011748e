//! Policy shared by the built-in backends, in plain Rust (each backend converts its generated
//! WIT types into these): what the config asks for, energy arithmetic in kWh with the source
//! of every figure, and the pieces of the reports.

pub mod serving;

use serde_json::{Map, Value, json};

/// Conversions from a backend's generated WIT types (`meter`, `inference`) to this crate's
/// plain ones. The WIT types are generated inside each backend crate, so this expands there:
/// call `energy_star_backend_common::wit_conversions!();` after `wit_bindgen::generate!`.
#[macro_export]
macro_rules! wit_conversions {
    () => {
        fn meter_err(e: energy_star::plugin::meter::MeterError) -> String {
            use energy_star::plugin::meter::MeterError;
            match e {
                MeterError::Unavailable(m) | MeterError::Failed(m) => format!("energy meter: {m}"),
                MeterError::UnknownWindow(id) => format!("energy meter: no window {id}"),
            }
        }

        fn inf_err(e: energy_star::plugin::inference::InferenceError) -> String {
            use energy_star::plugin::inference::InferenceError;
            match e {
                InferenceError::Unavailable(m) | InferenceError::Failed(m) => m,
                InferenceError::Invalid(m) => format!("invalid: {m}"),
                InferenceError::UnknownEngine(id) => format!("unknown engine {id}"),
            }
        }

        fn window(r: energy_star::plugin::meter::WindowReading) -> $crate::Window {
            use energy_star::plugin::meter::{DeviceKind, EnergySource, ValidityFlag};
            $crate::Window {
                name: r.name.clone(),
                duration_s: r.end_ns.saturating_sub(r.start_ns) as f64 / 1e9,
                figures: r
                    .devices
                    .iter()
                    .map(|d| $crate::Figure {
                        device: match d.device.kind {
                            DeviceKind::Gpu => format!("gpu{}", d.device.index),
                            DeviceKind::Cpu => "cpu".into(),
                            DeviceKind::Ram => "ram".into(),
                        },
                        kind: match d.device.kind {
                            DeviceKind::Gpu => $crate::Kind::Gpu,
                            DeviceKind::Cpu => $crate::Kind::Cpu,
                            DeviceKind::Ram => $crate::Kind::Ram,
                        },
                        energy_j: d.energy_j,
                        source: match d.source {
                            EnergySource::NvmlEnergyCounter => "nvml-energy-counter",
                            EnergySource::NvmlPowerIntegration => "nvml-power-integration",
                            EnergySource::Rapl => "rapl",
                            EnergySource::EstimateTdp => "estimate-tdp",
                            EnergySource::EstimateDimm => "estimate-dimm",
                            EnergySource::Unavailable => "unavailable",
                        }
                        .into(),
                        flags: d
                            .validity
                            .iter()
                            .map(|f| {
                                match f {
                                    ValidityFlag::TooShort => "too-short",
                                    ValidityFlag::ZeroReading => "zero-reading",
                                    ValidityFlag::CounterReset => "counter-reset",
                                    ValidityFlag::MigWholeGpu => "mig-whole-gpu",
                                    ValidityFlag::GapInSamples => "gap-in-samples",
                                }
                                .to_string()
                            })
                            .collect(),
                        power_integrated_j: None,
                    })
                    .collect(),
                warnings: r.warnings,
            }
        }

        /// Runs `f` inside a metered window named `name`.
        fn metered<T>(name: &str, f: impl FnOnce() -> Result<T, String>) -> Result<(T, $crate::Window), String> {
            let id = energy_star::plugin::meter::begin_window(name).map_err(meter_err)?;
            let out = f();
            let reading = energy_star::plugin::meter::end_window(id).map_err(meter_err)?;
            Ok((out?, window(reading)))
        }
    };
}

/// One device's figure over one window, as the meter gave it.
#[derive(Debug, Clone, PartialEq)]
pub struct Figure {
    /// `gpu0`, `cpu`, `ram`.
    pub device: String,
    pub kind: Kind,
    pub energy_j: Option<f64>,
    pub source: String,
    pub flags: Vec<String>,
    pub power_integrated_j: Option<f64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Gpu,
    Cpu,
    Ram,
}

/// A window's reading, reduced to what reports need.
#[derive(Debug, Clone, PartialEq)]
pub struct Window {
    pub name: String,
    pub duration_s: f64,
    pub figures: Vec<Figure>,
    pub warnings: Vec<String>,
}

const J_PER_KWH: f64 = 3.6e6;

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

fn sum_kind(w: &Window, kind: Kind) -> Option<f64> {
    let figs: Vec<&Figure> = w.figures.iter().filter(|f| f.kind == kind && f.source != "unavailable").collect();
    if figs.is_empty() {
        return None;
    }
    figs.iter().map(|f| f.energy_j).sum::<Option<f64>>().map(|j| j / J_PER_KWH)
}

impl Energy {
    pub fn of(w: &Window, gpu_used: bool) -> Self {
        Self {
            gpu_kwh: sum_kind(w, Kind::Gpu),
            cpu_kwh: sum_kind(w, Kind::Cpu),
            ram_kwh: sum_kind(w, Kind::Ram),
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

    /// optimum-benchmark's energy object.
    pub fn to_json(&self) -> Value {
        json!({"unit": "kWh", "cpu": self.cpu_kwh, "ram": self.ram_kwh, "gpu": self.gpu_kwh, "total": self.total_kwh()})
    }
}

/// The `energy` block of an ai_energy_benchmarks report (its CodeCarbon keys) for a window of
/// `duration_s`. Carbon figures are null: no grid-intensity data, none invented.
pub fn ai_energy_benchmarks_energy(e: &Energy, duration_s: f64, project: &str) -> Value {
    let kwh = |v: Option<f64>| json!(v);
    let wh = |v: Option<f64>| json!(v.map(|x| x * 1000.0));
    json!({
        "emissions_kg_co2eq": Value::Null,
        "emissions_g_co2eq": Value::Null,
        "energy_kwh": kwh(e.gpu_kwh),
        "energy_wh": wh(e.gpu_kwh),
        "gpu_energy_kwh": kwh(e.gpu_kwh),
        "gpu_energy_wh": wh(e.gpu_kwh),
        "cpu_energy_kwh": kwh(e.cpu_kwh),
        "cpu_energy_wh": wh(e.cpu_kwh),
        "ram_energy_kwh": kwh(e.ram_kwh),
        "ram_energy_wh": wh(e.ram_kwh),
        "total_energy_kwh": kwh(e.total_kwh()),
        "total_energy_wh": wh(e.total_kwh()),
        "duration_seconds": duration_s,
        "carbon_intensity_g_per_kwh": Value::Null,
        "project_name": project,
        "country": Value::Null,
        "region": Value::Null,
    })
}

/// The `gpu_stats` block of an ai_energy_benchmarks report: each measured GPU's mean power.
pub fn ai_energy_benchmarks_gpu_stats(w: &Window) -> Value {
    let mut stats = Map::new();
    for f in w.figures.iter().filter(|f| f.kind == Kind::Gpu && f.energy_j.is_some()) {
        stats.insert(
            format!("gpu_{}", f.device.trim_start_matches("gpu")),
            json!({"power_draw_w": f.energy_j.map(|j| j / w.duration_s.max(1e-9))}),
        );
    }
    Value::Object(stats)
}

/// Where a window's figures came from, for the `energy_star` block beside each phase.
pub fn provenance(windows: &[&Window]) -> Value {
    let mut sources = Map::new();
    let mut flags: Vec<String> = Vec::new();
    let mut devices = Vec::new();
    for w in windows {
        for f in &w.figures {
            let key = match f.kind {
                Kind::Gpu => "gpu_source",
                Kind::Cpu => "cpu_source",
                Kind::Ram => "ram_source",
            };
            sources.entry(key.to_string()).or_insert_with(|| json!(f.source));
            for fl in &f.flags {
                let tagged = format!("{}:{fl}", f.device);
                if !flags.contains(&tagged) {
                    flags.push(tagged);
                }
            }
            devices.push(json!({"window": w.name, "device": f.device, "energy_j": f.energy_j, "source": f.source, "flags": f.flags, "power_integrated_j": f.power_integrated_j}));
        }
    }
    let mut out = sources;
    out.insert("flags".into(), json!(flags));
    out.insert(
        "windows".into(),
        json!(windows.iter().map(|w| json!({"name": w.name, "duration_s": w.duration_s})).collect::<Vec<_>>()),
    );
    out.insert("devices".into(), json!(devices));
    Value::Object(out)
}

/// Flags of a measured window that also make a difference of two windows doubtful. A window
/// too short to time well alone (`too-short`) says nothing about the difference, which covers
/// the longer window's work.
const DERIVATION_DOUBTS: &[&str] = &["zero-reading", "counter-reset"];

/// Provenance of a derived phase (decode = generate − prefill, per iteration): the windows'
/// sources and figures, and flags only for what makes the derivation doubtful: a zero reading
/// or a counter reset in either window, or a negative result, each said in words.
pub fn derived_provenance(definition: &str, windows: &[&Window], results: &[Energy]) -> Value {
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
        for f in &w.figures {
            for fl in f.flags.iter().filter(|fl| DERIVATION_DOUBTS.contains(&fl.as_str())) {
                push(format!("{}:{fl} in the {} window it is derived from", f.device, w.name));
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

pub fn int_at(cfg: &Value, path: &str) -> Result<Option<i64>, String> {
    match get(cfg, path) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => n.as_i64().map(Some).ok_or_else(|| format!("{path} = {n} must be an integer")),
        Some(v) => Err(format!("{path} = {v} must be an integer")),
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
    /// Notes on defaults taken, for the report.
    pub notes: Vec<String>,
}

impl Settings {
    /// `backend` names the backend in errors; `default_tokens` is its default for max/min new
    /// tokens when the config sets neither (optimum-benchmark: 100; ai_energy_benchmarks' path: 10).
    pub fn read(cfg: &Value, backend: &str, default_tokens: u32) -> Result<Self, String> {
        let mut notes = Vec::new();
        let model = match get(cfg, "backend.model") {
            Some(Value::String(m)) if !m.trim().is_empty() => m.clone(),
            None | Some(Value::Null) | Some(Value::String(_)) => {
                return Err("backend.model is not set; pass backend.model=ORG/NAME or a folder".into());
            }
            Some(v) => {
                return Err(format!("backend.model = {v} must be a model id (ORG/NAME) or a folder, as a string"));
            }
        };
        if let Some(t) = get(cfg, "backend.task").filter(|v| !v.is_null()) {
            match t.as_str() {
                Some("text-generation" | "text2text-generation") => {}
                Some(t) => {
                    return Err(format!(
                        "backend.task={t} is not supported by the {backend} backend yet (text-generation is)"
                    ));
                }
                None => return Err(format!("backend.task = {t} must be a task name such as text-generation")),
            }
        }
        if bool_at(cfg, "scenario.reasoning") == Some(true) {
            return Err("scenario.reasoning=true needs the model's chat template, which the local engine does not apply yet; set scenario.reasoning=false".into());
        }
        let kw = "scenario.generate_kwargs";
        let max = int_at(cfg, &format!("{kw}.max_new_tokens"))?;
        let min = int_at(cfg, &format!("{kw}.min_new_tokens"))?;
        let (max, min) = match (max, min) {
            (Some(a), Some(b)) if a != b => {
                return Err(format!(
                    "{kw}: min_new_tokens ({b}) and max_new_tokens ({a}) differ; optimum-benchmark refuses that (\"non-deterministic behavior\") because it makes energy per token depend on when the model stops"
                ));
            }
            (Some(a), _) | (None, Some(a)) => (a, a),
            (None, None) => {
                notes.push(format!(
                    "no generate_kwargs: {default_tokens} new tokens per prompt (the backend's default)"
                ));
                (i64::from(default_tokens), i64::from(default_tokens))
            }
        };
        if !(1..=i64::from(u32::MAX)).contains(&max) {
            return Err(format!("{kw}.max_new_tokens = {max} must be between 1 and {}", u32::MAX));
        }
        if let Some(b) = int_at(cfg, &format!("{kw}.num_beams"))?
            && b != 1
        {
            return Err(format!("{kw}.num_beams = {b}: beam search is not supported (greedy or sampling)"));
        }
        let batch_size = int_at(cfg, "scenario.input_shapes.batch_size")?.unwrap_or(1);
        if !(1..=65_536).contains(&batch_size) {
            return Err(format!("scenario.input_shapes.batch_size = {batch_size} must be between 1 and 65536"));
        }
        let num_samples = match int_at(cfg, "scenario.num_samples")? {
            None | Some(-1) => {
                notes.push("scenario.num_samples is -1: every row of the dataset".into());
                None
            }
            Some(n) if n > 0 => Some(u32::try_from(n).map_err(|_| format!("scenario.num_samples = {n} is too large"))?),
            Some(n) => return Err(format!("scenario.num_samples = {n} must be positive, or -1 for every row")),
        };
        let device_ids = match get(cfg, "backend.device_ids") {
            None | Some(Value::Null) => vec![0],
            Some(Value::Number(n)) => {
                vec![n.as_u64().and_then(|x| u32::try_from(x).ok()).ok_or("backend.device_ids must be GPU indices")?]
            }
            Some(Value::String(s)) => s
                .split(',')
                .map(|p| p.trim().parse::<u32>().map_err(|_| format!("backend.device_ids = {s:?} must be GPU indices")))
                .collect::<Result<_, _>>()?,
            Some(Value::Array(a)) => a
                .iter()
                .map(|v| v.as_u64().and_then(|x| u32::try_from(x).ok()).ok_or("backend.device_ids must be GPU indices"))
                .collect::<Result<_, _>>()?,
            Some(v) => return Err(format!("backend.device_ids = {v} must be GPU indices")),
        };
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
                .ok_or("scenario.dataset_name is not set")?,
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
            iterations: int_at(cfg, "scenario.iterations")?.unwrap_or(1).clamp(1, 1000) as u32,
            prefix: str_at(cfg, "scenario.dataset_prefix1").unwrap_or_default(),
            notes,
        })
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    fn w(name: &str, gpu: Option<f64>, cpu: f64) -> Window {
        Window {
            name: name.into(),
            duration_s: 10.0,
            figures: vec![
                Figure {
                    device: "gpu0".into(),
                    kind: Kind::Gpu,
                    energy_j: gpu,
                    source: if gpu.is_some() { "nvml-energy-counter".into() } else { "unavailable".into() },
                    flags: vec![],
                    power_integrated_j: None,
                },
                Figure {
                    device: "cpu".into(),
                    kind: Kind::Cpu,
                    energy_j: Some(cpu),
                    source: "estimate-tdp".into(),
                    flags: vec!["too-short".into()],
                    power_integrated_j: None,
                },
            ],
            warnings: vec![],
        }
    }

    #[test]
    fn energy_arithmetic_as_optimum_does_it() {
        let g = Energy::of(&w("generate", Some(3.6e6), 3.6e5), true);
        let p = Energy::of(&w("prefill", Some(1.8e6), 1.8e5), true);
        assert_eq!(g.gpu_kwh, Some(1.0));
        assert_eq!(g.total_kwh(), Some(1.1));
        let d = g.minus(&p);
        assert_eq!((d.gpu_kwh, d.cpu_kwh), (Some(0.5), Some(0.05)));
        assert_eq!(Energy::mean(&[g, p]).gpu_kwh, Some(0.75));
        // No GPU: null, never 0, and the total covers what was measured.
        let c = Energy::of(&w("cpu-run", None, 3.6e5), false);
        assert_eq!((c.gpu_kwh, c.total_kwh()), (None, Some(0.1)));
        assert_eq!(c.minus(&p).gpu_kwh, None);
        // A GPU run whose GPU figure is missing has no total and no efficiency.
        let lost = Energy::of(&w("gpu-run", None, 3.6e5), true);
        assert_eq!(lost.total_kwh(), None);
        assert!(efficiency(10.0, "tokens/kWh", &lost)["value"].is_null());
        let e = efficiency(1000.0, "samples/kWh", &g);
        assert!((e["value"].as_f64().unwrap_or(0.0) - 1000.0 / 1.1).abs() < 1e-9);
        let prov = provenance(&[&w("prefill", Some(1.0), 1.0)]);
        assert_eq!(prov["gpu_source"], "nvml-energy-counter");
        assert_eq!(prov["flags"], json!(["cpu:too-short"]));
    }

    #[test]
    fn a_derived_phase_is_flagged_only_for_what_makes_the_difference_doubtful() {
        let prefill = w("prefill", Some(1.8e6), 1.8e5); // its cpu figure is too-short
        let mut generate = w("generate", Some(3.6e6), 3.6e5);
        generate.figures[1].flags.clear();
        let decode = [Energy::of(&generate, true).minus(&Energy::of(&prefill, true))];
        let p = derived_provenance("generate - prefill", &[&prefill, &generate], &decode);
        assert_eq!(p["flags"], json!([]), "a short prefill does not make decode short");
        assert_eq!(p["derived"], "generate - prefill");
        generate.figures[0].flags.push("zero-reading".into());
        let negative = [Energy::of(&prefill, true).minus(&Energy::of(&generate, true))];
        let p = derived_provenance("generate - prefill", &[&prefill, &generate], &negative);
        assert_eq!(
            p["flags"],
            json!([
                "gpu0:zero-reading in the generate window it is derived from",
                "gpu:negative-derived-value in iteration 0 (generate - prefill came out below zero)",
                "cpu:negative-derived-value in iteration 0 (generate - prefill came out below zero)"
            ])
        );
    }

    #[test]
    fn settings_follow_optimum_benchmark_rules() {
        let cfg = json!({"name": "t", "backend": {"model": "m", "device": "cpu", "device_ids": "0, 1"},
            "scenario": {"dataset_name": "d", "num_samples": 8, "input_shapes": {"batch_size": 4}, "generate_kwargs": {"max_new_tokens": 12}}});
        let s = Settings::read(&cfg, "optimum", 100).expect("settings");
        assert_eq!((s.max_new_tokens, s.min_new_tokens, s.batch_size, s.num_samples), (12, 12, 4, Some(8)));
        assert_eq!(s.device_ids, vec![0, 1]);
        let mut bad = cfg.clone();
        bad["scenario"]["generate_kwargs"]["min_new_tokens"] = json!(5);
        assert!(Settings::read(&bad, "optimum", 100).unwrap_err().contains("differ"));
        let mut bad = cfg.clone();
        bad["scenario"]["input_shapes"]["batch_size"] = json!(0);
        assert!(Settings::read(&bad, "optimum", 100).unwrap_err().contains("batch_size = 0"));
        bad["scenario"]["input_shapes"]["batch_size"] = json!(4_294_967_296u64);
        assert!(Settings::read(&bad, "optimum", 100).is_err(), "no silent truncation to 0");
        let mut bad = cfg.clone();
        bad["backend"]["model"] = Value::Null;
        assert!(Settings::read(&bad, "optimum", 100).unwrap_err().contains("backend.model is not set"));
        bad["backend"]["model"] = json!([1, 2]);
        let err = Settings::read(&bad, "optimum", 100).unwrap_err();
        assert!(err.contains("backend.model = [1,2] must be a model id") && !err.contains("not set"), "{err}");
        let mut bad = cfg.clone();
        bad["backend"]["task"] = json!("image-classification");
        let err = Settings::read(&bad, "vllm", 100).unwrap_err();
        assert!(err.contains("not supported by the vllm backend") && !err.contains("local engine"), "{err}");
        let mut none = cfg;
        none["scenario"]["generate_kwargs"] = json!({});
        assert_eq!(Settings::read(&none, "optimum", 100).expect("default").max_new_tokens, 100);
    }
}
