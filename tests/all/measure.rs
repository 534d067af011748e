use energy_star_tests::{energy_star, read_json};

/// A 300 W GPU replayed from a trace, as NVML would report it: the counter path end to end.
fn trace(dir: &std::path::Path) -> std::path::PathBuf {
    let mut text = String::from("t_s,gpu,energy_mj,power_w\n");
    for i in 0..=200 {
        let t = f64::from(i) / 10.0;
        text.push_str(&format!("{t},0,{},300\n", 1_000_000 + i * 30_000));
    }
    let path = dir.join("trace.csv");
    std::fs::write(&path, text).expect("trace");
    path
}

#[test]
fn measure_a_command_like_perf_stat() {
    let dir = tempfile::tempdir().expect("tmp");
    let t = trace(dir.path());
    let run = energy_star(dir.path(), &["measure", "--replay", t.to_str().expect("utf-8"), "--", "sleep", "2.2"], &[])
        .success();
    let out = run.stdout();
    assert!(out.contains("Energy of `sleep 2.2`") && out.contains("exit code 0"), "{out}");
    let rec = read_json(&dir.path().join("energy-star-measure/measure.json"));
    let gpu = &rec["measurement"]["devices"][0];
    assert_eq!(gpu["source"], "nvml-energy-counter");
    // 300 W for 2.2 s, read at 0.1 s steps of the trace: 630 to 690 J.
    let e = gpu["energy_j"].as_f64().expect("energy");
    assert!((630.0..=690.0).contains(&e), "{e}");
    assert_eq!(rec["exit_code"], 0);
    let cpu = &rec["measurement"]["devices"][1];
    assert_eq!(cpu["source"], "estimate-tdp");
    assert!(
        std::fs::read_to_string(dir.path().join("energy-star-measure/energy_timeline.csv"))
            .expect("csv")
            .lines()
            .count()
            > 20
    );
}

#[test]
fn measure_passes_on_the_exit_code_and_reports_unavailable_gpus() {
    let dir = tempfile::tempdir().expect("tmp");
    let run = energy_star(dir.path(), &["measure", "--output", "out", "--", "sh", "-c", "exit 3"], &[]);
    assert_eq!(run.code(), Some(3), "{}", run.stderr());
    let rec = read_json(&dir.path().join("out/measure.json"));
    let gpu = &rec["measurement"]["devices"][0];
    assert_eq!(gpu["source"], "unavailable");
    assert!(gpu["energy_j"].is_null());
    assert!(rec["notices"].to_string().contains("GPU energy unavailable"));
    assert!(rec["measurement"]["devices"][1]["flags"].to_string().contains("too-short"));
}

#[test]
fn measure_idle_alone_and_bad_input() {
    let dir = tempfile::tempdir().expect("tmp");
    let t = trace(dir.path());
    let run =
        energy_star(dir.path(), &["measure", "--replay", t.to_str().expect("utf-8"), "--idle", "0.5"], &[]).success();
    assert!(run.stdout().contains("Idle power over"), "{}", run.stdout());
    let rec = read_json(&dir.path().join("energy-star-measure/measure.json"));
    let p = rec["idle"]["devices"][0]["mean_power_w"].as_f64().expect("idle power");
    assert!((250.0..=310.0).contains(&p), "{p}");
    energy_star(dir.path(), &["measure"], &[]).fails_with(1, &["nothing to measure"]);
    energy_star(dir.path(), &["measure", "--idle", "-1"], &[]).fails_with(1, &["--idle must be a positive"]);
    energy_star(dir.path(), &["measure", "--", "/no/such/program"], &[])
        .fails_with(1, &["cannot start", "/no/such/program"]);
    std::fs::write(dir.path().join("bad.csv"), "t_s,gpu,energy_mj,power_w\n0,zero,1,2\n").expect("write");
    energy_star(dir.path(), &["measure", "--replay", "bad.csv", "--", "true"], &[])
        .fails_with(1, &["replay trace", "gpu is not a number"]);
}

#[test]
fn ctrl_c_stops_the_command_and_still_reports() {
    let dir = tempfile::tempdir().expect("tmp");
    let child = std::process::Command::new(energy_star_tests::bin())
        .current_dir(dir.path())
        .args(["measure", "--", "sleep", "30"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn");
    std::thread::sleep(std::time::Duration::from_millis(800));
    // SIGINT to energy-star alone, as `kill -INT` sends it: it must pass it on and report.
    let ok = std::process::Command::new("kill").args(["-INT", &child.id().to_string()]).status().expect("kill");
    assert!(ok.success());
    let started = std::time::Instant::now();
    let out = child.wait_with_output().expect("wait");
    assert!(started.elapsed() < std::time::Duration::from_secs(10), "the command was not stopped");
    assert_eq!(out.status.code(), Some(130));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("interrupted by Ctrl-C"), "{stdout}");
    let rec = read_json(&dir.path().join("energy-star-measure/measure.json"));
    assert_eq!(rec["interrupted"], true);
    assert!(rec["measurement"]["duration_s"].as_f64().expect("duration") < 5.0);
}
