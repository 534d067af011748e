//! energy-star's result files read by the upstream tools' own readers: optimum-benchmark 0.6.0's
//! classes (installed from PyPI by `.ci/run`) and checks of the fields AI Energy Score's scripts
//! read (`scripts/upstream-readers.py`). Ignored in a plain `cargo test` (it needs that Python).

use energy_star_tests::energy_star;

#[test]
#[ignore = "needs Python with optimum-benchmark 0.6.0 + transformers 4.57.1 (OPTIMUM_BENCHMARK_PYTHON); .ci/run installs them and runs it"]
fn upstream_readers_load_every_backends_files() {
    let py =
        std::env::var("OPTIMUM_BENCHMARK_PYTHON").expect("OPTIMUM_BENCHMARK_PYTHON: a python with optimum-benchmark");
    let cwd = tempfile::tempdir().expect("tmp");
    // PyTorchConfig resolves backend.model on the Hub or on disk: a local folder here.
    let model = format!("backend.model={}", energy_star_tests::fixtures().join("tiny-llama").display());
    let common = [
        "--config-name",
        "text_generation_offline",
        "scenario.num_samples=4",
        "scenario.generate_kwargs.max_new_tokens=2",
        "scenario.generate_kwargs.min_new_tokens=2",
    ];
    let mut dirs = Vec::new();
    for (backend, extra) in [("optimum", vec![model.as_str(), "scenario.iterations=2"]), ("pytorch", vec![])] {
        let dir = cwd.path().join(backend);
        let mut args: Vec<&str> = common.to_vec();
        args.extend(extra);
        let dir_arg = dir.to_str().expect("utf-8").to_string();
        args.extend(["--results-dir", &dir_arg]);
        energy_star(cwd.path(), &args, &[("BENCHMARK_BACKEND", backend)]).success();
        dirs.push(dir_arg);
    }
    let out = std::process::Command::new(&py)
        .arg(energy_star_tests::root().join("scripts/upstream-readers.py"))
        .args(&dirs)
        .output()
        .expect("run python");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "an upstream reader failed:\n{text}");
    // Every reader ran (a script that checked nothing would pass too).
    assert_eq!(text.lines().filter(|l| l.starts_with("loads ")).count(), 8, "{text}");
}
