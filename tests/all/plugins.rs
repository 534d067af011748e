use std::path::Path;

use energy_star_tests::{
    BUILTIN_PLUGINS, cache_dir, energy_star, fixtures, folder_with, guests, listed, plugin_listing, read_json,
};

#[test]
fn builtins_are_listed_with_kind_version_api_and_origin() {
    let cwd = tempfile::tempdir().expect("tmp");
    let list = plugin_listing(cwd.path(), &[], &[]);
    for (kind, name) in BUILTIN_PLUGINS {
        let p = listed(&list, kind, name).unwrap_or_else(|| panic!("{kind} {name} missing: {list:?}"));
        assert_eq!(p["origin"], "built-in");
        assert_eq!(p["api_version"], "0.2.5");
        assert!(!p["version"].as_str().expect("version").is_empty());
    }
    assert_eq!(
        listed(&list, "backend", "vllm").expect("vllm")["required_settings"],
        serde_json::json!(["VLLM_ENDPOINT"])
    );
    let table = energy_star(cwd.path(), &["plugins"], &[]).success().stdout();
    assert!(
        table.contains("NAME")
            && table.contains("ORIGIN")
            && table.contains("API versions accepted: 0.1.0, 0.2.0, 0.2.1, 0.2.2, 0.2.3, 0.2.4, 0.2.5"),
        "{table}"
    );
}

/// The issue's drop-in check: a summarizer for a format energy-star does not ship (CodeCarbon's
/// per-task record), built from a crate outside the host's dependency graph, dropped into a
/// folder, used by the already-built binary.
#[test]
fn dropped_in_summarizer_reads_a_new_format() {
    let g = guests();
    let plugins = folder_with(&[(&g.codecarbon_summarizer, "codecarbon.wasm")]);
    let results = folder_with(&[(
        &fixtures().join("samples/optimum/benchlab-llama3_8B-prefill_codecarbon.json"),
        "benchmark_report.json",
    )]);
    let dirs = plugins.path().to_str().expect("utf-8");
    // Without the plugin the format is unknown...
    energy_star(results.path(), &["summarize", "."], &[]).fails_with(1, &["in no format"]);
    // ...with it, through --plugin-dir or ENERGY_STAR_PLUGIN_PATH, it is summarized.
    energy_star(results.path(), &["--plugin-dir", dirs, "summarize", "."], &[]).success();
    let s = read_json(&results.path().join("GPU_ENERGY_SUMMARY.json"));
    assert_eq!(s["format"], "codecarbon");
    assert_eq!(s["total"], serde_json::json!(74.68)); // gpu_energy 0.07468 kWh
    std::fs::remove_file(results.path().join("GPU_ENERGY_SUMMARY.json")).expect("rm");
    energy_star(results.path(), &["summarize", "."], &[("ENERGY_STAR_PLUGIN_PATH", &format!("/nonexistent:{dirs}"))])
        .success();
    assert!(results.path().join("GPU_ENERGY_SUMMARY.json").exists());
}

#[test]
fn dropped_in_plugin_with_a_builtin_name_replaces_it_and_the_listing_says_so() {
    let g = guests();
    let plugins = folder_with(&[(&g.optimum_override, "my-optimum.wasm")]);
    let dirs = plugins.path().to_str().expect("utf-8");
    let list = plugin_listing(plugins.path(), &["--plugin-dir", dirs], &[]);
    let p = listed(&list, "summarizer", "optimum").expect("optimum summarizer");
    assert_eq!(p["version"], "9.9.9");
    assert_eq!(p["replaces"], serde_json::json!(["built-in"]));
    assert_eq!(list.iter().filter(|p| p["kind"] == "summarizer" && p["name"] == "optimum").count(), 1);
    let table = energy_star(plugins.path(), &["--plugin-dir", dirs, "plugins"], &[]).success().stdout();
    assert!(table.contains("(replaces built-in)"), "{table}");
    // And it is the one used: it counts prefill only (74.68 Wh on this sample).
    let results = folder_with(&[(
        &fixtures().join("samples/optimum/benchlab-llama3_8B-benchmark_report.json"),
        "benchmark_report.json",
    )]);
    energy_star(results.path(), &["--plugin-dir", dirs, "summarize", "."], &[]).success();
    assert_eq!(std::fs::read_to_string(results.path().join("GPU_ENERGY_WH.txt")).expect("txt"), "74.68\n");
}

#[test]
fn plugin_dir_beats_plugin_path_and_the_listing_names_both() {
    let g = guests();
    let low = folder_with(&[(&g.codecarbon_summarizer, "cc.wasm")]);
    let high = folder_with(&[(&g.codecarbon_summarizer, "cc.wasm")]);
    let list = plugin_listing(
        low.path(),
        &["--plugin-dir", high.path().to_str().expect("utf-8")],
        &[("ENERGY_STAR_PLUGIN_PATH", low.path().to_str().expect("utf-8"))],
    );
    let p = listed(&list, "summarizer", "codecarbon").expect("codecarbon");
    assert_eq!(p["origin"], high.path().join("cc.wasm").display().to_string());
    assert_eq!(p["replaces"], serde_json::json!([low.path().join("cc.wasm").display().to_string()]));
}

/// Runs `plugins` in a folder of drop-ins: it succeeds, warns about `needles` on stderr, and
/// `--strict-plugins` (or ENERGY_STAR_STRICT_PLUGINS=1) refuses the same files.
fn skipped_then_refused_when_strict(dir: &Path, needles: &[&str]) {
    let run = energy_star(dir, &["--plugin-dir", ".", "plugins"], &[]).success();
    let err = run.stderr();
    for n in needles {
        assert!(err.contains(n), "stderr lacks {n:?}:\n{err}");
    }
    let mut strict_needles = vec!["--strict-plugins refuses them"];
    strict_needles.extend_from_slice(needles);
    energy_star(dir, &["--strict-plugins", "--plugin-dir", ".", "plugins"], &[]).fails_with(1, &strict_needles);
    energy_star(dir, &["--plugin-dir", ".", "plugins"], &[("ENERGY_STAR_STRICT_PLUGINS", "1")])
        .fails_with(1, &strict_needles);
}

#[test]
fn two_plugins_of_one_name_in_one_folder_are_both_skipped() {
    let g = guests();
    let plugins = folder_with(&[(&g.codecarbon_summarizer, "a.wasm"), (&g.codecarbon_summarizer, "b.wasm")]);
    skipped_then_refused_when_strict(
        plugins.path(),
        &["two summarizer plugins named \"codecarbon\" in one folder", "a.wasm", "b.wasm"],
    );
    let list = plugin_listing(plugins.path(), &["--plugin-dir", "."], &[]);
    assert!(listed(&list, "summarizer", "codecarbon").is_none(), "which of the two was meant is unknown: {list:?}");
    assert_eq!(list.iter().filter(|p| p["broken"] == true).count(), 2);
}

#[test]
fn plugin_for_another_api_version_is_skipped_by_name() {
    let g = guests();
    let plugins = folder_with(&[(&g.wrong_api_summarizer, "future.wasm")]);
    skipped_then_refused_when_strict(
        plugins.path(),
        &[
            "future.wasm",
            "was built for energy-star plugin API 9.0.0",
            "accepts 0.1.0, 0.2.0, 0.2.1, 0.2.2, 0.2.3, 0.2.4, 0.2.5",
        ],
    );
}

#[test]
fn files_that_are_not_components_are_skipped() {
    let dir = tempfile::tempdir().expect("tmp");
    // A valid empty core module: magic, version 1, layer 0.
    std::fs::write(dir.path().join("core.wasm"), b"\0asm\x01\0\0\0").expect("write");
    skipped_then_refused_when_strict(dir.path(), &["core.wasm", "core WebAssembly module, not a component"]);
    std::fs::remove_file(dir.path().join("core.wasm")).expect("rm");
    std::fs::write(dir.path().join("notes.wasm"), b"hello, I am text").expect("write");
    skipped_then_refused_when_strict(dir.path(), &["notes.wasm", "not a WebAssembly file"]);
    std::fs::remove_file(dir.path().join("notes.wasm")).expect("rm");
    // A component header with garbage after it.
    std::fs::write(dir.path().join("broken.wasm"), b"\0asm\x0d\0\x01\0\x07garbage").expect("write");
    skipped_then_refused_when_strict(dir.path(), &["broken.wasm", "not a valid component"]);
    // Other files in a plugin folder are ignored, silently.
    std::fs::remove_file(dir.path().join("broken.wasm")).expect("rm");
    std::fs::write(dir.path().join("README.txt"), b"not a plugin").expect("write");
    let run = energy_star(dir.path(), &["--strict-plugins", "--plugin-dir", ".", "plugins"], &[]).success();
    assert!(!run.stderr().contains("warning"), "{}", run.stderr());
}

/// A user drops stale and broken plugins of every kind beside a good one: each is named once
/// with its reason, `plugins` lists it as broken, the good one works, and a command fails only
/// when it needs a broken one.
#[test]
fn one_folder_of_broken_plugins_costs_only_those_plugins() {
    let dir = tempfile::tempdir().expect("tmp");
    let junk = energy_star_tests::write_junk_plugins(dir.path());
    std::fs::copy(&guests().codecarbon_summarizer, dir.path().join("codecarbon.wasm")).expect("copy");
    // A stale backend file under the name a user selects.
    std::fs::write(dir.path().join("tensorrt.wasm"), b"\0asm\x0d\0\x01\0 truncated by a failed download")
        .expect("write");
    let limit = ["--plugin-time-limit-s", "1", "--plugin-dir", "."];
    let with = |args: &[&str]| -> Vec<String> { limit.iter().chain(args).map(|s| s.to_string()).collect() };
    let args = with(&["plugins"]);
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let started = std::time::Instant::now();
    let run = energy_star(dir.path(), &args, &[]).success();
    let (out, err) = (run.stdout(), run.stderr());
    for j in &junk {
        let warnings: Vec<&str> = err.lines().filter(|l| l.contains(j.file)).collect();
        assert_eq!(warnings.len(), 1, "{} must be named once on stderr:\n{err}", j.file);
        assert!(
            warnings[0].starts_with("warning: skipping plugin") && warnings[0].contains(j.reason),
            "{}: {}",
            j.file,
            warnings[0]
        );
        assert!(
            out.lines().any(|l| l.contains(j.file) && l.contains(j.reason)),
            "{} is not listed as broken:\n{out}",
            j.file
        );
    }
    assert!(out.contains("codecarbon") && out.contains("Broken, skipped (10)"), "{out}");
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "a looping start function held discovery up");
    // The good drop-in is used.
    let results = folder_with(&[(
        &fixtures().join("samples/optimum/benchlab-llama3_8B-prefill_codecarbon.json"),
        "benchmark_report.json",
    )]);
    let here = dir.path().to_str().expect("utf-8");
    let at = |args: &[&str]| -> Vec<String> {
        ["--plugin-time-limit-s", "1", "--plugin-dir", here].iter().chain(args).map(|s| s.to_string()).collect()
    };
    let summarize = at(&["summarize", "."]);
    let summarize: Vec<&str> = summarize.iter().map(String::as_str).collect();
    energy_star(results.path(), &summarize, &[]).success();
    assert_eq!(read_json(&results.path().join("GPU_ENERGY_SUMMARY.json"))["format"], "codecarbon");
    // A format nobody reads: the error mentions the broken files that might have read it.
    std::fs::write(results.path().join("benchmark_report.json"), r#"{"mystery": 1}"#).expect("write");
    energy_star(results.path(), &summarize, &[])
        .fails_with(1, &["in no format", "might have read it but are broken", "info-traps.wasm"]);
    // A command that needs a broken plugin fails, naming the file and the reason.
    let run = at(&["--config-name", "text_generation"]);
    let run: Vec<&str> = run.iter().map(String::as_str).collect();
    let cwd = tempfile::tempdir().expect("tmp");
    energy_star(cwd.path(), &run, &[("BENCHMARK_BACKEND", "tensorrt")]).fails_with(
        1,
        &[
            "BENCHMARK_BACKEND=tensorrt names a backend whose plugin file is broken",
            "tensorrt.wasm",
            "not a valid component",
        ],
    );
    assert!(!cwd.path().join("results").exists(), "nothing is written when the backend cannot load");
    // Strict mode refuses the folder, naming every broken file.
    let strict = at(&["--strict-plugins", "plugins"]);
    let strict: Vec<&str> = strict.iter().map(String::as_str).collect();
    let needles: Vec<&str> = junk.iter().map(|j| j.file).collect();
    energy_star(dir.path(), &strict, &[]).fails_with(1, &needles);
}

#[test]
fn compiled_components_are_cached_and_a_corrupt_cache_is_recompiled() {
    let cache = tempfile::tempdir().expect("tmp");
    let cwd = tempfile::tempdir().expect("tmp");
    let env = [("ENERGY_STAR_CACHE_DIR", cache.path().to_str().expect("utf-8"))];
    energy_star(cwd.path(), &["plugins"], &env).success();
    let entries: Vec<_> = std::fs::read_dir(cache.path()).expect("ls").map(|e| e.expect("e").path()).collect();
    assert_eq!(entries.iter().filter(|p| p.extension().is_some_and(|e| e == "cwasm")).count(), 5, "{entries:?}");
    for p in &entries {
        std::fs::write(p, b"corrupted").expect("corrupt");
    }
    energy_star(cwd.path(), &["plugins"], &env).success();
    for p in &entries {
        assert!(std::fs::metadata(p).expect("meta").len() > 1000, "{} was not rewritten", p.display());
    }
    // --no-compile-cache leaves the cache alone and still works.
    let _ = cache_dir();
    energy_star(cwd.path(), &["--no-compile-cache", "plugins"], &[]).success();
}

/// `energy-star plugins new` makes crates that build at once, with nothing of this repository
/// (their own SDK copy and WIT files), and the unchanged binary uses them: the summarizer reads
/// its format, the backend runs the offline config and its report is summarized.
#[test]
fn scaffolded_plugins_build_and_run() {
    let work = tempfile::tempdir().expect("tmp");
    let dir = work.path().to_str().expect("utf-8");
    for (name, kind) in [("my_tool", "summarizer"), ("mini", "backend")] {
        energy_star(work.path(), &["plugins", "new", name, "--kind", kind, "--dir", dir], &[]).success();
    }
    energy_star(work.path(), &["plugins", "new", "mini", "--kind", "backend", "--dir", dir], &[])
        .fails_with(1, &["exists already"]);
    energy_star(work.path(), &["plugins", "new", "Bad", "--kind", "backend", "--dir", dir], &[])
        .fails_with(1, &["lowercase"]);
    // Built as a plugin author builds it (the test guests' target folder, for compiled deps).
    let (target, _) = energy_star_tests::target_and_profile();
    let plug = work.path().join("plugins");
    std::fs::create_dir_all(&plug).expect("mkdir");
    for (name, krate) in [("my_tool", "energy-star-summarizer-my-tool"), ("mini", "energy-star-backend-mini")] {
        let build = energy_star_plugin_build::PluginBuild {
            manifest: &work.path().join(name).join("Cargo.toml"),
            packages: &[],
            profile: None,
            target_dir: &target.join("test-guests"),
        };
        let wasm = build.run(&[krate]).unwrap_or_else(|e| panic!("{e}"));
        std::fs::copy(&wasm[0], plug.join(wasm[0].file_name().expect("name"))).expect("copy");
    }
    let plug_s = plug.to_str().expect("utf-8");
    let list = energy_star(work.path(), &["--plugin-dir", plug_s, "plugins"], &[]).success().stdout();
    assert!(list.contains("my_tool") && list.contains("mini"), "{list}");
    // The summarizer template reads its own format.
    let r = work.path().join("r");
    std::fs::create_dir_all(&r).expect("mkdir");
    std::fs::write(
        r.join("benchmark_report.json"),
        r#"{"tool": "my_tool", "gpu_energy_j": 7200, "phases": {"prefill": 3600, "decode": 3600}}"#,
    )
    .expect("write");
    energy_star(work.path(), &["--plugin-dir", plug_s, "summarize", r.to_str().expect("utf-8")], &[]).success();
    assert_eq!(std::fs::read_to_string(r.join("GPU_ENERGY_WH.txt")).expect("txt"), "2.00\n");
    // The backend template runs the offline config through the host's engine and meter.
    energy_star(
        work.path(),
        &[
            "--plugin-dir",
            plug_s,
            "--config-name",
            "text_generation_offline",
            "scenario.num_samples=3",
            "scenario.generate_kwargs.max_new_tokens=4",
            "scenario.generate_kwargs.min_new_tokens=4",
        ],
        &[("BENCHMARK_BACKEND", "mini")],
    )
    .success();
    let report = energy_star_tests::read_json(&work.path().join("results/benchmark_report.json"));
    assert_eq!(report["summary"]["total_completion_tokens"], 12);
    assert!(report["energy"]["cpu_energy_wh"].as_f64().expect("cpu") > 0.0);
}
