use energy_star_tests::{energy_star, folder_with, guests, root};

/// Runs the echo backend on a config and returns the saved effective config.
fn effective(args: &[&str]) -> Result<String, energy_star_tests::Run> {
    let plugins = folder_with(&[(&guests().echo_backend, "echo.wasm")]);
    let cwd = tempfile::tempdir().expect("tmp");
    let mut all = vec!["--plugin-dir", plugins.path().to_str().expect("utf-8")];
    all.extend_from_slice(args);
    let run = energy_star(
        cwd.path(),
        &all,
        &[("BENCHMARK_BACKEND", "echo"), ("ECHO_REPORT", "{\"energy\": {\"gpu_energy_wh\": 2.0}}")],
    );
    if run.code() != Some(0) {
        return Err(run);
    }
    Ok(std::fs::read_to_string(cwd.path().join("results/effective_config.yaml")).expect("effective config"))
}

#[test]
fn the_original_ai_energy_score_config_loads_unedited() {
    let dir = root().join("tests/fixtures/original-configs");
    let cfg = effective(&[
        "--config-dir",
        dir.to_str().expect("utf-8"),
        "--config-name",
        "text_generation",
        "backend.model=openai/gpt-oss-20b",
        "hydra.run.dir=results",
    ])
    .unwrap_or_else(|r| panic!("{}", r.stderr()));
    assert!(cfg.contains("model: openai/gpt-oss-20b"), "{cfg}");
    assert!(cfg.contains("device_ids: 0, 1, 2, 3, 4, 5, 6, 7"), "{cfg}");
    assert!(cfg.contains("device_isolation: false"), "{cfg}");
    // Schema groups came from the built-ins.
    assert!(cfg.contains("warmup_runs: 10") && cfg.contains("start_method: spawn"), "{cfg}");
}

#[test]
fn every_shipped_config_runs_through_the_pipeline() {
    for entry in std::fs::read_dir(root().join("configs")).expect("configs/") {
        let path = entry.expect("entry").path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()) else { continue };
        if path.extension().is_none_or(|e| e != "yaml") || name.starts_with('_') || name == "benchmark" {
            continue;
        }
        let cfg = effective(&["--config-dir", root().join("configs").to_str().expect("utf-8"), "--config-name", name])
            .unwrap_or_else(|r| panic!("{name}: {}", r.stderr()));
        assert!(cfg.contains("num_samples: 1000") || name == "text_generation_offline", "{name}: {cfg}");
    }
}

#[test]
fn hydra_overrides_are_typed_and_checked() {
    let cfg = effective(&[
        "--config-name",
        "text_generation",
        "scenario.num_samples=3",
        "+scenario.seed_list=[1, 2]",
        "++backend.torch_dtype=float32",
        "~launcher.numactl_kwargs",
        "scenario.generate_kwargs.max_new_tokens=16",
        "scenario.reasoning=True",
    ])
    .unwrap_or_else(|r| panic!("{}", r.stderr()));
    assert!(cfg.contains("num_samples: 3"), "{cfg}");
    assert!(cfg.contains("seed_list:\n  - 1\n  - 2"), "{cfg}");
    assert!(cfg.contains("torch_dtype: float32"), "{cfg}");
    assert!(!cfg.contains("numactl_kwargs"), "{cfg}");
    assert!(cfg.contains("max_new_tokens: 16") && cfg.contains("reasoning: true"), "{cfg}");
}

#[test]
fn an_override_naming_no_key_is_an_error_with_the_fix() {
    let run = effective(&["--config-name", "text_generation", "backend.modle=x"]).expect_err("must fail");
    run.fails_with(1, &["no key backend.modle", "+backend.modle=x"]);
    let run = effective(&["--config-name", "text_generation", "backend.device_ids=0,1"]).expect_err("must fail");
    run.fails_with(1, &["ambiguous value"]);
    let run = effective(&["--config-name", "text_generation", "+backend.model=x"]).expect_err("must fail");
    run.fails_with(1, &["backend.model already exists"]);
}

#[test]
fn yaml_that_does_not_parse_and_missing_configs_are_named() {
    let dir = tempfile::tempdir().expect("tmp");
    std::fs::write(dir.path().join("bad.yaml"), "name: bad\nbackend: [unclosed\n").expect("write");
    let d = dir.path().to_str().expect("utf-8");
    effective(&["--config-dir", d, "--config-name", "bad"])
        .expect_err("must fail")
        .fails_with(1, &["bad.yaml", "not valid YAML"]);
    effective(&["--config-dir", d, "--config-name", "missing"])
        .expect_err("must fail")
        .fails_with(1, &["config \"missing\" not found", "text_generation"]);
    std::fs::write(dir.path().join("list.yaml"), "- a\n- b\n").expect("write");
    effective(&["--config-dir", d, "--config-name", "list"])
        .expect_err("must fail")
        .fails_with(1, &["top level must be a map"]);
}
