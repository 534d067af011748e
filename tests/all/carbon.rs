//! Emissions from the grid's carbon intensity: the config's factor, a location looked up in the
//! offline table (CodeCarbon's), the environment's `COUNTRY_ISO_CODE`, AI Energy Score's default
//! for its task configs; never invented, and bad settings refused before anything is touched.

use energy_star_tests::{energy_star, read_json};

/// eGRID 2016 California, 452.541 lbs/MWh, in g/kWh: what CodeCarbon applies for
/// country_iso_code=USA, region=california (AI Energy Score's wrapper's setting).
const CALIFORNIA_G_PER_KWH: f64 = 452.541 * 0.453_592_37;

fn run(
    backend: &str,
    config: &str,
    extra: &[&str],
    env: &[(&str, &str)],
) -> (tempfile::TempDir, energy_star_tests::Run) {
    let cwd = tempfile::tempdir().expect("tmp");
    let mut args = vec![
        "--config-name",
        config,
        "backend.model=energy-star/toy-llama",
        "backend.device=cpu",
        "backend.torch_dtype=float32",
        "scenario.dataset_name=energy-star/prompts",
        "scenario.num_samples=4",
        "scenario.generate_kwargs.max_new_tokens=2",
        "scenario.generate_kwargs.min_new_tokens=2",
        "scenario.input_shapes.batch_size=4",
        "++scenario.warmup_runs=1",
    ];
    args.extend_from_slice(extra);
    let mut env: Vec<(&str, &str)> = env.to_vec();
    env.push(("BENCHMARK_BACKEND", backend));
    let run = energy_star(cwd.path(), &args, &env);
    (cwd, run)
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() <= 1e-9 * b.abs().max(1e-12)
}

#[test]
fn a_configured_location_gives_codecarbons_factor_and_the_emissions_of_the_total() {
    let (cwd, out) = run(
        "pytorch",
        "text_generation_offline",
        &["++metering.country_iso_code=USA", "++metering.region=california"],
        &[],
    );
    let out = out.success();
    let r = cwd.path().join("results");
    let report = read_json(&r.join("benchmark_report.json"));
    let e = &report["energy"];
    let total_kwh = e["total_energy_kwh"].as_f64().expect("total");
    assert!(total_kwh > 0.0, "{e}");
    let g = e["emissions_g_co2eq"].as_f64().expect("emissions");
    assert!(close(g, total_kwh * CALIFORNIA_G_PER_KWH), "{g} vs {total_kwh} kWh × {CALIFORNIA_G_PER_KWH}");
    assert!(close(e["emissions_kg_co2eq"].as_f64().expect("kg"), g / 1000.0));
    assert!(close(e["carbon_intensity_g_per_kwh"].as_f64().expect("factor"), CALIFORNIA_G_PER_KWH));
    assert_eq!((e["country"].as_str(), e["region"].as_str()), (Some("USA"), Some("california")));
    let carbon = &read_json(&r.join("energy_star_report.json"))["run"]["carbon"];
    assert_eq!(carbon["basis"], "configured-location", "{carbon}");
    assert!(carbon["source"].as_str().is_some_and(|s| s.contains("eGRID 2016")), "{carbon}");
    // The host's own record and summary say the same, from the run record, not the report.
    let record = read_json(&r.join("run_record.json"));
    assert!(close(record["carbon"]["intensity"]["g_co2eq_per_kwh"].as_f64().expect("record"), CALIFORNIA_G_PER_KWH));
    let summary = read_json(&r.join("GPU_ENERGY_SUMMARY.json"));
    let s = &summary["emissions"];
    assert!(s["gpu_g_co2eq"].is_null(), "no GPU, no GPU emissions figure: {s}");
    let cpu_ram_wh = summary["cpu_wh"].as_f64().unwrap_or(0.0) + summary["ram_wh"].as_f64().unwrap_or(0.0);
    assert!(close(s["all_devices_g_co2eq"].as_f64().expect("all"), cpu_ram_wh / 1000.0 * CALIFORNIA_G_PER_KWH), "{s}");
    assert!(out.stdout().contains("emissions (g CO2eq): GPU n/a, GPU+CPU+RAM"), "{}", out.stdout());
}

#[test]
fn ai_energy_scores_task_configs_default_to_its_location_and_say_so() {
    let (cwd, out) = run("pytorch", "text_generation", &[], &[]);
    out.success();
    let r = cwd.path().join("results");
    let e = read_json(&r.join("benchmark_report.json"))["energy"].clone();
    assert!(close(e["carbon_intensity_g_per_kwh"].as_f64().expect("factor"), CALIFORNIA_G_PER_KWH), "{e}");
    let record = read_json(&r.join("run_record.json"));
    let i = &record["carbon"]["intensity"];
    assert_eq!(i["basis"], "default-location", "{i}");
    assert!(i["note"].as_str().is_some_and(|n| n.contains("AI Energy Score's default")), "{i}");
}

#[test]
fn without_a_location_emissions_are_null_and_say_what_to_set() {
    let (cwd, out) = run("pytorch", "text_generation_offline", &[], &[]);
    out.success();
    let r = cwd.path().join("results");
    let e = read_json(&r.join("benchmark_report.json"))["energy"].clone();
    for k in ["emissions_g_co2eq", "emissions_kg_co2eq", "carbon_intensity_g_per_kwh"] {
        assert!(e[k].is_null(), "{k}: {e}");
    }
    let summary = read_json(&r.join("GPU_ENERGY_SUMMARY.json"));
    let why = summary["emissions"]["unknown_reason"].as_str().expect("reason").to_string();
    assert!(why.contains("metering.country_iso_code") && why.contains("text_generation_offline"), "{why}");
}

#[test]
fn the_environments_country_and_a_pue_reach_every_backend() {
    let (cwd, out) = run("optimum", "text_generation_offline", &["++metering.pue=1.5"], &[("COUNTRY_ISO_CODE", "FRA")]);
    out.success();
    let r = cwd.path().join("results");
    let summary = read_json(&r.join("GPU_ENERGY_SUMMARY.json"));
    let s = &summary["emissions"];
    assert_eq!(s["intensity"]["basis"], "environment-location", "{s}");
    assert_eq!(s["intensity"]["location"]["country_iso_code"], "FRA", "{s}");
    assert_eq!(s["g_co2eq_per_kwh"], 56.039, "France in CodeCarbon 3.0.4's table");
    let device = s["all_devices_g_co2eq"].as_f64().expect("device");
    assert!(close(s["all_devices_facility_g_co2eq"].as_f64().expect("facility"), device * 1.5), "{s}");
    // optimum-benchmark's own files have no emissions fields; nothing is added to them.
    let report = std::fs::read_to_string(r.join("benchmark_report.json")).expect("report");
    assert!(!report.contains("emission") && !report.contains("carbon"), "{report}");
}

#[test]
fn bad_carbon_settings_are_refused_before_the_results_folder_is_touched() {
    for (bad, says) in [
        ("++metering.carbon_intensity_g_per_kwh=abc", "metering.carbon_intensity_g_per_kwh: \"abc\" is not a number"),
        ("++metering.carbon_intensity_g_per_kwh=452541", "lbs/MWh"),
        ("++metering.country_iso_code=FR", "alpha-3"),
        ("++metering.country_iso_code=Narnia", "metering.country_iso_code = \"Narnia\" is not in"),
        ("++metering.pue=0.5", "metering.pue: 0.5 is not a power usage effectiveness"),
    ] {
        for backend in ["optimum", "pytorch"] {
            let (cwd, out) = run(backend, "text_generation_offline", &[bad], &[]);
            out.fails_with(1, &["carbon settings:", says]);
            assert!(!cwd.path().join("results").exists(), "{backend} {bad}: the results folder was touched");
        }
    }
    let (_cwd, out) = run(
        "pytorch",
        "text_generation_offline",
        &["++metering.country_iso_code=USA", "++metering.region=atlantis"],
        &[],
    );
    out.fails_with(1, &["metering.region = \"atlantis\" is not a region of USA"]);
}
