use energy_star_plugin_sdk::backend::host::carbon::{CarbonIntensity, GridLocation};
use energy_star_plugin_sdk::backend::host::meter::{DeviceEnergy, DeviceInfo};
use energy_star_plugin_sdk::backend::host::types::ValidityFlag;

use super::*;

fn device(kind: DeviceKind, energy_j: Option<f64>, source: EnergySource, validity: Vec<ValidityFlag>) -> DeviceEnergy {
    DeviceEnergy {
        device: DeviceInfo { kind, index: 0, name: format!("{kind:?}"), source },
        energy_j,
        mean_power_w: None,
        peak_power_w: None,
        source,
        validity,
        idle_power_w: None,
        energy_above_idle_j: None,
    }
}

fn w(name: &str, gpu: Option<f64>, cpu: f64) -> WindowReading {
    let gpu_source = if gpu.is_some() { EnergySource::NvmlEnergyCounter } else { EnergySource::Unavailable };
    WindowReading {
        id: 0,
        name: name.into(),
        start_ns: 0,
        end_ns: 10_000_000_000,
        devices: vec![
            device(DeviceKind::Gpu, gpu, gpu_source, vec![]),
            device(DeviceKind::Cpu, Some(cpu), EnergySource::EstimateTdp, vec![ValidityFlag::TooShort]),
        ],
        warnings: vec![],
    }
}

fn optimum() -> Reader<'static> {
    Reader {
        backend: "optimum",
        tokens: TokenRule::Equal { default: 100 },
        reasoning: false,
        loads_weights: true,
        repeats: true,
        forward_tasks: false,
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
    generate.devices[1].validity.clear();
    let decode = [Energy::of(&generate, true).minus(&Energy::of(&prefill, true))];
    let p = derived_provenance("generate - prefill", &[&prefill, &generate], &decode);
    assert_eq!(p["flags"], json!([]), "a short prefill does not make decode short");
    assert_eq!(p["derived"], "generate - prefill");
    generate.devices[0].validity.push(ValidityFlag::ZeroReading);
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
fn a_gpu_figure_that_could_not_be_metered_marks_the_run_incomplete() {
    let no_gpu = Energy { gpu_kwh: None, cpu_kwh: Some(1.0), ram_kwh: None, gpu_used: false };
    let unmetered = Energy { gpu_used: true, ..no_gpu };
    assert_eq!(no_gpu.to_json()["gpu"], 0.0, "no GPU: 0.0, as CodeCarbon writes");
    assert!(unmetered.to_json()["gpu"].is_null());
    let optimum = json!({"prefill": {"energy": no_gpu.to_json()}, "decode": {"energy": no_gpu.to_json()}});
    assert_eq!(unmetered_gpu_reason(&optimum), None);
    let optimum = json!({"prefill": {"energy": no_gpu.to_json()}, "decode": {"energy": unmetered.to_json()}});
    assert!(unmetered_gpu_reason(&optimum).is_some_and(|r| r.contains("(decode)")));
    let aeb = json!({"energy": ai_energy_benchmarks_energy(&unmetered, 1.0, "p", &unknown_carbon()), "summary": {}});
    assert!(unmetered_gpu_reason(&aeb).is_some_and(|r| r.contains("the workload")));
    let aeb = json!({"energy": ai_energy_benchmarks_energy(&no_gpu, 1.0, "p", &unknown_carbon()), "summary": {}});
    assert_eq!(unmetered_gpu_reason(&aeb), None);
}

#[test]
fn settings_follow_optimum_benchmark_rules() {
    let cfg = json!({"name": "t", "backend": {"model": "m", "device": "cpu", "device_ids": "0, 1"},
        "scenario": {"dataset_name": "d", "num_samples": 8, "input_shapes": {"batch_size": 4}, "generate_kwargs": {"max_new_tokens": 12}}});
    let s = Settings::read(&cfg, optimum()).expect("settings");
    assert_eq!((s.max_new_tokens, s.min_new_tokens, s.batch_size, s.num_samples), (12, 12, 4, Some(8)));
    assert_eq!(s.device_ids, vec![0, 1]);
    let mut bad = cfg.clone();
    bad["scenario"]["generate_kwargs"]["min_new_tokens"] = json!(5);
    assert!(Settings::read(&bad, optimum()).unwrap_err().message.contains("differ"));
    let mut bad = cfg.clone();
    bad["scenario"]["input_shapes"]["batch_size"] = json!(0);
    assert!(Settings::read(&bad, optimum()).unwrap_err().message.contains("batch_size = 0"));
    bad["scenario"]["input_shapes"]["batch_size"] = json!(4_294_967_296u64);
    assert!(Settings::read(&bad, optimum()).is_err(), "no silent truncation to 0");
    let mut bad = cfg.clone();
    bad["backend"]["model"] = Value::Null;
    assert!(Settings::read(&bad, optimum()).unwrap_err().message.contains("backend.model is not set"));
    bad["backend"]["model"] = json!([1, 2]);
    let err = Settings::read(&bad, optimum()).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("backend.model"));
    assert!(
        err.message.contains("backend.model = [1,2] must be a model id") && !err.message.contains("not set"),
        "{}",
        err.message
    );
    let mut bad = cfg.clone();
    bad["backend"]["task"] = json!("image-classification");
    let err = Settings::read(&bad, Reader { backend: "vllm", ..optimum() }).unwrap_err();
    assert!(
        err.message.contains("not supported by the vllm backend")
            && err.message.contains("BENCHMARK_BACKEND=optimum runs"),
        "{}",
        err.message
    );
    // A value of the wrong type, and reasoning on a backend that cannot apply it, name their keys.
    let mut bad = cfg.clone();
    bad["scenario"]["num_samples"] = json!("abc");
    assert_eq!(Settings::read(&bad, optimum()).unwrap_err().key.as_deref(), Some("scenario.num_samples"));
    let mut reasoning = cfg.clone();
    reasoning["scenario"]["reasoning"] = json!(true);
    assert_eq!(Settings::read(&reasoning, optimum()).unwrap_err().key.as_deref(), Some("scenario.reasoning"));
    let on = Settings::read(&reasoning, Reader { reasoning: true, ..optimum() }).expect("reasoning");
    assert!(on.reasoning && on.reasoning_params.is_empty());
    reasoning["scenario"]["reasoning_params"] = json!({"reasoning_effort": "high"});
    let on = Settings::read(&reasoning, Reader { reasoning: true, ..optimum() }).expect("params");
    assert_eq!(on.reasoning_params.get("reasoning_effort"), Some(&json!("high")));
    reasoning["scenario"]["reasoning_params"] = json!("high");
    let err = Settings::read(&reasoning, Reader { reasoning: true, ..optimum() }).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("scenario.reasoning_params"));
    // A revision pin the optimum-benchmark way, for weights loaded here (not a served name).
    let mut pinned = cfg.clone();
    pinned["backend"]["model_kwargs"] = json!({"revision": "v2"});
    assert_eq!(Settings::read(&pinned, optimum()).expect("pinned").model, "m@v2");
    let served = Reader { backend: "vllm", loads_weights: false, ..optimum() };
    assert_eq!(Settings::read(&pinned, served).expect("served").model, "m");
    pinned["backend"]["model"] = json!("m@v1");
    assert_eq!(Settings::read(&pinned, optimum()).unwrap_err().key.as_deref(), Some("backend.model_kwargs.revision"));
    let mut none = cfg.clone();
    none["scenario"]["generate_kwargs"] = json!({});
    assert_eq!(Settings::read(&none, optimum()).expect("default").max_new_tokens, 100);
    // Random weights are built for the forward tasks; text generation on the local engine needs
    // real ones, and a served model's weights are the server's business.
    let mut random = cfg;
    random["backend"]["no_weights"] = json!(true);
    let err = Settings::read(&random, optimum()).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("backend.no_weights"));
    assert!(Settings::read(&random, served).is_ok());
    random["backend"]["task"] = json!("text-classification");
    let s = Settings::read(&random, Reader { forward_tasks: true, ..optimum() }).expect("forward task");
    assert!(s.no_weights && s.task == "text-classification");
}

/// AI Energy Score's token budget for the ai_energy_benchmarks path: set by the reasoning
/// params (not by `scenario.reasoning`), min below max allowed, each given value kept.
#[test]
fn ai_energy_scores_token_budget_follows_its_reasoning_params() {
    let aes = Reader { backend: "pytorch", tokens: TokenRule::AiEnergyScore, reasoning: true, ..optimum() };
    let read = |scenario: Value| {
        let cfg = json!({"backend": {"model": "m"}, "scenario": scenario});
        Settings::read(&cfg, aes).map(|s| (s.max_new_tokens, s.min_new_tokens))
    };
    let d = json!({"dataset_name": "d"});
    assert_eq!(read(d.clone()).expect("off"), (10, 10));
    let on = json!({"dataset_name": "d", "reasoning": true, "reasoning_params": {"reasoning_effort": "high"}});
    assert_eq!(read(on).expect("on"), (8192, 1));
    let off = json!({"dataset_name": "d", "reasoning": true, "reasoning_params": {"reasoning_effort": "off"}});
    assert_eq!(read(off).expect("effort off"), (10, 10));
    let batch_row = json!({"dataset_name": "d", "reasoning": true, "reasoning_params": {"enable_thinking": true},
        "generate_kwargs": {"max_new_tokens": 8192, "min_new_tokens": 1}});
    assert_eq!(read(batch_row).expect("the batch runner's reasoning row"), (8192, 1));
    let max_only = json!({"dataset_name": "d", "generate_kwargs": {"max_new_tokens": 50}});
    assert_eq!(read(max_only).expect("max only"), (50, 10));
    let short = json!({"dataset_name": "d", "generate_kwargs": {"max_new_tokens": 4}});
    assert_eq!(read(short).expect("a defaulted min follows a smaller max"), (4, 4));
    let inverted = json!({"dataset_name": "d", "generate_kwargs": {"max_new_tokens": 5, "min_new_tokens": 9}});
    let err = read(inverted).unwrap_err();
    assert_eq!(err.key.as_deref(), Some("scenario.generate_kwargs.min_new_tokens"), "{}", err.message);
}

fn unknown_carbon() -> CarbonSettings {
    CarbonSettings { intensity: GridIntensity::Unknown("no location".into()), pue: 1.0 }
}

#[test]
fn emissions_are_the_total_energy_times_the_hosts_factor_and_null_without_one() {
    let e = Energy { gpu_kwh: Some(0.002), cpu_kwh: Some(0.0005), ram_kwh: Some(0.0005), gpu_used: true };
    let carbon = CarbonSettings {
        intensity: GridIntensity::Known(CarbonIntensity {
            g_co2eq_per_kwh: 200.0,
            basis: IntensityBasis::DefaultLocation,
            location: Some(GridLocation { country_iso_code: "USA".into(), region: Some("california".into()) }),
            source: "table".into(),
            note: "AI Energy Score's default".into(),
        }),
        pue: 1.5,
    };
    let block = ai_energy_benchmarks_energy(&e, 1.0, "p", &carbon);
    // 0.003 kWh × 200 g/kWh = 0.6 g, CodeCarbon's scope (GPU + CPU + RAM) at the device.
    assert!((block["emissions_g_co2eq"].as_f64().unwrap() - 0.6).abs() < 1e-12, "{block}");
    assert!((block["emissions_kg_co2eq"].as_f64().unwrap() - 0.0006).abs() < 1e-15, "{block}");
    assert_eq!(block["carbon_intensity_g_per_kwh"], 200.0);
    assert_eq!((block["country"].as_str(), block["region"].as_str()), (Some("USA"), Some("california")));
    let extra = carbon_additions(&e, &carbon);
    assert!((extra["emissions_g_co2eq_facility"].as_f64().unwrap() - 0.9).abs() < 1e-12, "{extra}");
    assert_eq!(extra["basis"], "default-location");
    assert!(carbon_difference(&carbon).contains("g CO2eq/kWh"));

    let none = ai_energy_benchmarks_energy(&e, 1.0, "p", &unknown_carbon());
    for k in ["emissions_g_co2eq", "emissions_kg_co2eq", "carbon_intensity_g_per_kwh", "country", "region"] {
        assert!(none[k].is_null(), "{k}: {none}");
    }
    assert_eq!(carbon_additions(&e, &unknown_carbon())["unknown_reason"], "no location");
    // A GPU that could not be metered leaves the total, and so the emissions, unknown.
    let unmetered = Energy { gpu_kwh: None, ..e };
    assert!(ai_energy_benchmarks_energy(&unmetered, 1.0, "p", &carbon)["emissions_g_co2eq"].is_null());
}

#[test]
fn iterations_are_checked_and_refused_by_a_backend_that_cannot_repeat() {
    let cfg = |n: i64| {
        json!({"name": "t", "backend": {"model": "m", "device": "cpu"},
            "scenario": {"dataset_name": "d", "iterations": n, "generate_kwargs": {"max_new_tokens": 4}}})
    };
    assert_eq!(Settings::read(&cfg(3), optimum()).expect("repeats").iterations, 3);
    for bad in [0, 1001] {
        let e = Settings::read(&cfg(bad), optimum()).unwrap_err();
        assert_eq!(e.key.as_deref(), Some("scenario.iterations"));
        assert!(e.message.contains("between 1 and 1000"), "{}", e.message);
    }
    let once = Reader { backend: "pytorch", repeats: false, ..optimum() };
    assert_eq!(Settings::read(&cfg(1), once).expect("one pass").iterations, 1);
    let e = Settings::read(&cfg(2), once).unwrap_err();
    assert!(e.message.contains("the pytorch backend measures its workload once"), "{}", e.message);
}
