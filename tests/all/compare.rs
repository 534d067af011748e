//! `energy-star compare`: repeated measures of real offline runs, with intervals, and the verdict
//! on a copy whose meter readings were scaled by a known factor; bad input refused clearly.

use std::path::Path;

use energy_star_tests::{energy_star, read_json, small_offline_run};

/// An offline optimum run with `iterations` repeats into `dir`.
fn run_into(cwd: &Path, dir: &str, iterations: u32) {
    let iterations = format!("scenario.iterations={iterations}");
    small_offline_run(
        cwd,
        "optimum",
        3,
        &[],
        &["scenario.input_shapes.batch_size=4", &iterations, "--results-dir", dir],
    )
    .success();
}

/// A copy of a results folder whose every energy reading and report figure is `factor` times the
/// original's and
/// every window lasts `duration_factor` times as long, summarized again: a run that used exactly
/// `factor` times the energy.
fn scaled_copy(from: &Path, to: &Path, factor: f64, duration_factor: f64) {
    std::fs::create_dir_all(to).expect("mkdir");
    for e in std::fs::read_dir(from).expect("read") {
        let p = e.expect("entry").path();
        if p.is_file() {
            std::fs::copy(&p, to.join(p.file_name().expect("name"))).expect("copy");
        }
    }
    let mut meter = read_json(&to.join("energy_meter.json"));
    for w in meter["windows"].as_array_mut().expect("windows") {
        let duration = w["duration_s"].as_f64().expect("duration");
        w["duration_s"] = serde_json::json!(duration * duration_factor);
        for d in w["devices"].as_array_mut().expect("devices") {
            for k in ["energy_j", "energy_wh"] {
                if let Some(v) = d[k].as_f64() {
                    d[k] = serde_json::json!(v * factor);
                }
            }
        }
    }
    std::fs::write(to.join("energy_meter.json"), serde_json::to_string_pretty(&meter).expect("json")).expect("write");
    // The report's phase figures too (a summary's per-phase figures are the report's).
    let mut report = read_json(&to.join("benchmark_report.json"));
    for phase in report.as_object_mut().expect("report").values_mut() {
        if let Some(energy) = phase.get_mut("energy").and_then(|e| e.as_object_mut()) {
            for k in ["cpu", "ram", "gpu", "total"] {
                if let Some(v) = energy.get(k).and_then(serde_json::Value::as_f64) {
                    energy.insert(k.into(), serde_json::json!(v * factor));
                }
            }
        }
    }
    std::fs::write(to.join("benchmark_report.json"), serde_json::to_string_pretty(&report).expect("json"))
        .expect("write");
    energy_star(to, &["summarize", "."], &[]).success();
}

#[test]
fn repeated_measures_have_intervals_and_a_scaled_copy_differs_by_its_factor() {
    let cwd = tempfile::tempdir().expect("tmp");
    run_into(cwd.path(), "a", 4);
    let a = cwd.path().join("a");
    // The summary holds each repeated phase's measures and statistics, and the total's.
    let summary = read_json(&a.join("GPU_ENERGY_SUMMARY.json"));
    let repeats = &summary["repeats"];
    for phase in ["prefill", "decode"] {
        let p = repeats["phases"].as_array().expect("phases").iter().find(|p| p["phase"] == phase).expect(phase);
        let cpu = p["kinds"].as_array().expect("kinds").iter().find(|k| k["kind"] == "cpu").expect("cpu");
        assert_eq!(cpu["measures_wh"].as_array().expect("measures").len(), 4, "{p}");
        let all = &cpu["all"];
        assert_eq!(all["n"], 4);
        let (lo, mean, hi) =
            (all["ci95"][0].as_f64().unwrap(), all["mean"].as_f64().unwrap(), all["ci95"][1].as_f64().unwrap());
        assert!(lo <= mean && mean <= hi, "{all}");
    }
    assert_eq!(repeats["total"]["iterations"], 4, "{repeats}");

    // The same run against itself: no difference; whether that is within ±5 % is for the
    // interval to say, which four noisy iterations may leave undecided.
    let same = energy_star(cwd.path(), &["compare", "a", "a", "--tolerance", "5%"], &[]).success();
    let out = same.stdout();
    assert!(out.contains("no difference beyond noise") && out.contains("total: ") && out.contains(" ±5 %"), "{out}");
    assert!(!out.contains("outside ±5 %"), "a run cannot differ from itself: {out}");
    assert!(out.contains("CPU energy is an estimate"), "the CPU figure here is an estimate, and it says so: {out}");

    // A copy with every reading ×1.5 uses 50 % more: the verdict says so, the interval holds 50.
    scaled_copy(&a, &cwd.path().join("b"), 1.5, 1.0);
    let diff = energy_star(cwd.path(), &["compare", "a", "b", "--json", "--tolerance", "5", "--html", "cmp.html"], &[])
        .success();
    let report: serde_json::Value = serde_json::from_str(&diff.stdout()).expect("json");
    assert_eq!(report["kind"], "cpu");
    let phases = report["comparisons"][0]["phases"].as_array().expect("phases");
    let total = phases.iter().find(|p| p["phase"] == "total").expect("total");
    let pct = total["percent"].as_f64().expect("percent");
    assert!((pct - 50.0).abs() < 1e-6, "{total}");
    let [lo, hi] = [total["percent_ci95"][0].as_f64().unwrap(), total["percent_ci95"][1].as_f64().unwrap()];
    assert!(lo <= 50.0 && 50.0 <= hi, "{total}");
    // Whether 50 % is beyond noise depends on this machine's noise in the four iterations: the
    // verdict must follow the interval either way.
    let verdict = total["verdict"].as_str().unwrap();
    if lo > 0.0 {
        assert!(verdict.starts_with("B uses 50.0 % more CPU energy than A"), "{total}");
    } else {
        assert!(verdict.starts_with("no difference beyond noise"), "{total}");
    }
    let tolerance = total["tolerance_verdict"].as_str().unwrap();
    assert_eq!(tolerance.starts_with("outside ±5 %"), lo > 5.0, "{total}");
    // The same windows' lengths: nothing says the machine changed; what the intervals cover is said.
    assert!(!diff.stdout().contains("another speed"), "{}", diff.stdout());
    assert!(report["scope"].as_str().is_some_and(|s| s.contains("within one run")), "{report}");
    // The same config's windows 30 % longer: the machine changed, and compare says so.
    scaled_copy(&a, &cwd.path().join("slow"), 1.0, 1.3);
    let slow = energy_star(cwd.path(), &["compare", "a", "slow"], &[]).success().stdout();
    assert!(slow.contains("the same config ran at another speed: B's metered windows last 30 % longer"), "{slow}");
    assert!(slow.contains("note: each interval covers the spread of the iterations within one run"), "{slow}");
    let page = std::fs::read_to_string(cwd.path().join("cmp.html")).expect("html");
    assert!(page.contains("<svg") && page.matches(r#"class="measure""#).count() >= 8, "dots for both runs");

    // The report page draws the repeated measures too.
    energy_star(cwd.path(), &["report", "a"], &[]).success();
    let html = std::fs::read_to_string(a.join("report.html")).expect("report");
    assert!(html.contains("Repeated measures (CPU)"), "{}", &html[..html.len().min(400)]);
    assert!(a.join("figures/repeated_measures.svg").exists());
}

#[test]
fn compare_refuses_what_has_no_interval_or_is_not_a_run() {
    let cwd = tempfile::tempdir().expect("tmp");
    run_into(cwd.path(), "once", 1);
    std::fs::create_dir_all(cwd.path().join("empty")).expect("mkdir");
    // One run: nothing to compare it with.
    energy_star(cwd.path(), &["compare", "once"], &[]).fails_with(1, &["compare needs two runs or more; once gives 1"]);
    energy_star(cwd.path(), &["compare", "once", "empty"], &[])
        .fails_with(1, &["empty has no GPU_ENERGY_SUMMARY.json", "energy-star summarize"]);
    energy_star(cwd.path(), &["compare", "once", "once"], &[])
        .fails_with(1, &["once has no repeated measures", "no interval is defined", "scenario.iterations=N"]);
    energy_star(cwd.path(), &["compare", "once", "missing"], &[]).fails_with(1, &["missing is not a folder"]);
    run_into(cwd.path(), "twice", 2);
    energy_star(cwd.path(), &["compare", "twice", "twice", "--tolerance", "lots"], &[])
        .fails_with(1, &["--tolerance \"lots\" is not a percentage"]);
}

#[test]
fn a_backend_that_measures_once_refuses_iterations() {
    let cwd = tempfile::tempdir().expect("tmp");
    let out = energy_star(
        cwd.path(),
        &["--config-name", "text_generation_offline", "scenario.num_samples=4", "++scenario.iterations=3"],
        &[("BENCHMARK_BACKEND", "pytorch")],
    );
    out.fails_with(1, &["scenario.iterations = 3: the pytorch backend measures its workload once"]);
    assert!(!cwd.path().join("results").exists());
}

#[test]
fn master_results_rows_are_compared_through_their_results_folders() {
    let cwd = tempfile::tempdir().expect("tmp");
    run_into(cwd.path(), "out/individual_runs/lab-one-off", 2);
    run_into(cwd.path(), "out/individual_runs/lab-two-off", 2);
    std::fs::write(cwd.path().join("models.csv"), "model\nlab/one\nlab/two\nlab/three\n").expect("write");
    // The third model never ran: collect says it is missing (exit 1) and writes its row.
    let collect = energy_star(cwd.path(), &["batch", "models.csv", "--output-dir", "out", "--collect"], &[]);
    assert_eq!(collect.code(), Some(1), "{}", collect.explain());
    assert!(collect.stdout().contains("2 runs collected (0 failed or incomplete), 1 missing"), "{}", collect.explain());
    let table = "out/master_results.csv";
    let rows = |r: &str| format!("{table}:{r}");
    let out = energy_star(cwd.path(), &["compare", &rows("1"), &rows("2"), "--json"], &[]).success();
    let report: serde_json::Value = serde_json::from_str(&out.stdout()).expect("json");
    let c = &report["comparisons"][0];
    assert_eq!(
        (c["baseline"].as_str(), c["other"].as_str()),
        (Some("out/master_results.csv row 1 (lab/one)"), Some("out/master_results.csv row 2 (lab/two)")),
        "{c}"
    );
    assert!(c["phases"].as_array().is_some_and(|p| p.iter().any(|p| p["phase"] == "total")), "{c}");
    // Every row: the third row has no folder, and compare says so.
    energy_star(cwd.path(), &["compare", table], &[])
        .fails_with(1, &["row 3 (lab/three) has no results folder", "one figure per run", "repeated measures"]);
    energy_star(cwd.path(), &["compare", &rows("9"), &rows("1")], &[])
        .fails_with(1, &["has no row 9: its rows are 1 to 3"]);
    energy_star(cwd.path(), &["compare", "nothing.csv", "out/individual_runs/lab-one-off"], &[])
        .fails_with(1, &["nothing.csv: no such file"]);
    // A folder and a row mix.
    energy_star(cwd.path(), &["compare", "out/individual_runs/lab-one-off", &rows("2")], &[]).success();
}

#[test]
fn groups_of_runs_compare_run_means_so_the_spread_between_runs_is_in_the_interval() {
    let cwd = tempfile::tempdir().expect("tmp");
    for g in ["g1", "g2", "g3"] {
        run_into(cwd.path(), g, 1);
    }
    // Each run ×1.5: group B used exactly 50 % more, and its runs vary as A's do.
    for (from, to) in [("g1", "s1"), ("g2", "s2"), ("g3", "s3")] {
        scaled_copy(&cwd.path().join(from), &cwd.path().join(to), 1.5, 1.0);
    }
    let out = energy_star(cwd.path(), &["compare", "g1,g2,g3", "s1,s2,s3", "--json"], &[]).success();
    let report: serde_json::Value = serde_json::from_str(&out.stdout()).expect("json");
    assert!(report["scope"].as_str().is_some_and(|s| s.contains("each run is one sample")), "{report}");
    let c = &report["comparisons"][0];
    assert_eq!(c["baseline"], "g1, g2, g3 (3 runs)", "{c}");
    let total = c["phases"].as_array().expect("phases").iter().find(|p| p["phase"] == "total").expect("total");
    assert_eq!(total["baseline"]["n"], 3, "{total}");
    assert!((total["percent"].as_f64().expect("percent") - 50.0).abs() < 1e-6, "{total}");
    let [lo, hi] = [total["percent_ci95"][0].as_f64().unwrap(), total["percent_ci95"][1].as_f64().unwrap()];
    assert!(lo <= 50.0 && 50.0 <= hi, "{total}");
    assert_eq!(total["verdict"].as_str().unwrap().starts_with("B uses 50.0 % more"), lo > 0.0, "{total}");
    // A group against itself: no difference.
    let same = energy_star(cwd.path(), &["compare", "g1,g2,g3", "g1,g2,g3"], &[]).success().stdout();
    assert!(same.contains("no difference beyond noise") && same.contains("note: each run is one sample"), "{same}");
    // A group needs two runs.
    energy_star(cwd.path(), &["compare", "g1", "g2,g3"], &[])
        .fails_with(1, &["the group \"g1\" names fewer than two runs"]);
}
