//! `energy-star bundle`: a real offline run zipped with its manifest, verified, then verified
//! again after one byte of it changed (in the archive, and in a file repacked under the old
//! manifest); bad input refused.

use std::io::{Read, Write};

use energy_star_tests::{energy_star, read_json, small_offline_run};

fn offline_run(cwd: &std::path::Path) {
    small_offline_run(cwd, "optimum", 2, &[], &[]).success();
}

#[test]
fn a_bundle_verifies_and_names_the_file_changed_after_it_was_made() {
    let cwd = tempfile::tempdir().expect("tmp");
    offline_run(cwd.path());
    energy_star(cwd.path(), &["report", "results"], &[]).success();
    let made = energy_star(cwd.path(), &["bundle", "results", "-o", "run.zip"], &[]).success();
    assert!(made.stdout().contains("manifest SHA-256: "), "{}", made.stdout());
    let zip_path = cwd.path().join("run.zip");

    // The manifest describes the run from its records.
    let mut zip = zip::ZipArchive::new(std::fs::File::open(&zip_path).expect("open")).expect("zip");
    let mut text = String::new();
    zip.by_name("MANIFEST.json").expect("manifest").read_to_string(&mut text).expect("read");
    let m: serde_json::Value = serde_json::from_str(&text).expect("json");
    assert_eq!(m["format"], "energy-star-bundle/1");
    assert_eq!(m["run_state"], "complete");
    let paths: Vec<&str> = m["files"].as_array().expect("files").iter().map(|f| f["path"].as_str().unwrap()).collect();
    for f in [
        "benchmark_report.json",
        "run_record.json",
        "energy_meter.json",
        "energy_timeline.csv",
        "GPU_ENERGY_SUMMARY.json",
        "report.html",
        "figures/power.svg",
    ] {
        assert!(paths.contains(&f), "{f} missing from {paths:?}");
    }
    // The machine as the run described it: here no GPU, so no driver, and the reason why.
    let machine = &m["machine"];
    let recorded = read_json(&cwd.path().join("results/run_record.json"));
    assert_eq!(machine["description"], recorded["machine"], "{machine}");
    assert!(machine["description"]["cpu_count"].as_u64().is_some_and(|n| n > 0), "{machine}");
    assert_eq!(machine["cpu"], recorded["machine"]["cpu_model"], "{machine}");
    let no_gpu = machine["description"]["gpus"].as_array().is_some_and(Vec::is_empty);
    assert_eq!(machine["gpu_driver"].is_null(), no_gpu, "{machine}");
    assert_eq!(machine["description"]["gpu_absent_reason"].is_string(), no_gpu, "{machine}");
    let plugins = m["plugins"].as_array().expect("plugins");
    assert_eq!(plugins.len(), 2, "{m}");
    for p in plugins {
        assert_eq!(p["sha256"].as_str().map(str::len), Some(64), "{p}");
    }
    // The backend's hash is the one `plugins --json` lists for it.
    let listed = energy_star(cwd.path(), &["plugins", "--json"], &[]).success().stdout();
    let optimum = listed
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .find(|p| p["kind"] == "backend" && p["name"] == "optimum")
        .unwrap();
    assert_eq!(plugins[0]["sha256"], optimum["sha256"]);
    assert_eq!(m["sources"][0]["origin"], "built-in", "{m}");
    assert!(!m["machine"]["cpu"].as_str().unwrap_or("").is_empty(), "{m}");
    let record = read_json(&cwd.path().join("results/run_record.json"));
    assert_eq!(record["backend_sha256"], optimum["sha256"]);

    let ok = energy_star(cwd.path(), &["bundle", "--verify", "run.zip"], &[]).success();
    assert!(ok.stdout().starts_with("ok: "), "{}", ok.stdout());

    // One byte changed in a file, repacked under the old manifest: named, with both hashes.
    let mut out = zip::ZipWriter::new(std::fs::File::create(cwd.path().join("edited.zip")).expect("create"));
    for i in 0..zip.len() {
        let mut e = zip.by_index(i).expect("entry");
        let name = e.name().expect("name").to_string();
        let mut bytes = Vec::new();
        e.read_to_end(&mut bytes).expect("read");
        if name == "run/GPU_ENERGY_WH.txt" {
            bytes[0] = if bytes[0] == b'9' { b'8' } else { b'9' };
        }
        out.start_file(name, zip::write::SimpleFileOptions::default()).expect("start");
        out.write_all(&bytes).expect("write");
    }
    out.finish().expect("finish");
    let bad = energy_star(cwd.path(), &["bundle", "--verify", "edited.zip"], &[]);
    assert_eq!(bad.code(), Some(1), "{}", bad.explain());
    assert!(bad.stdout().contains("CHANGED GPU_ENERGY_WH.txt: SHA-256 "), "{}", bad.stdout());
    assert_eq!(bad.stdout().lines().filter(|l| l.starts_with("CHANGED")).count(), 1, "{}", bad.stdout());

    // One byte flipped in the archive itself: the file it belongs to is reported.
    let mut raw = std::fs::read(&zip_path).expect("raw");
    let at =
        raw.windows(b"run/energy_timeline.csv".len()).position(|w| w == b"run/energy_timeline.csv").expect("entry")
            + 60;
    raw[at] ^= 0x01;
    std::fs::write(cwd.path().join("flipped.zip"), &raw).expect("write");
    let flipped = energy_star(cwd.path(), &["bundle", "--verify", "flipped.zip"], &[]);
    assert_eq!(flipped.code(), Some(1), "{}", flipped.explain());
    assert!(flipped.stdout().contains("CHANGED energy_timeline.csv"), "{}", flipped.explain());
}

#[test]
fn bundle_refuses_what_is_not_a_run_or_not_a_bundle() {
    let cwd = tempfile::tempdir().expect("tmp");
    std::fs::create_dir_all(cwd.path().join("empty")).expect("mkdir");
    energy_star(cwd.path(), &["bundle", "empty", "-o", "x.zip"], &[]).fails_with(1, &["empty is not a results folder"]);
    energy_star(cwd.path(), &["bundle", "missing", "-o", "x.zip"], &[]).fails_with(1, &["missing is not a folder"]);
    std::fs::write(cwd.path().join("not.zip"), b"plain text").expect("write");
    energy_star(cwd.path(), &["bundle", "--verify", "not.zip"], &[])
        .fails_with(1, &["not.zip is not a bundle of energy-star: not a zip archive"]);
    offline_run(cwd.path());
    std::fs::write(cwd.path().join("taken.zip"), b"keep me").expect("write");
    energy_star(cwd.path(), &["bundle", "results", "-o", "taken.zip"], &[])
        .fails_with(1, &["taken.zip already exists"]);
    assert_eq!(std::fs::read(cwd.path().join("taken.zip")).expect("read"), b"keep me");
}
