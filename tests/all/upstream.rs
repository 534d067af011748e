//! energy-star's result files read by the upstream tools' own readers: optimum-benchmark 0.6.0's
//! classes (installed from PyPI by `.ci/run`) and checks of the fields AI Energy Score's scripts
//! read (`scripts/upstream-readers.py`). Ignored in a plain `cargo test` (it needs that Python).

use energy_star_mock_openai::{MockConfig, MockServer};
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
    // The vllm backend streams from the mock OpenAI-compatible server.
    let server = MockServer::start(MockConfig::default()).expect("mock server");
    let endpoint = format!("http://{}/v1", server.addr);
    // AI Energy Score's location, as its wrapper gives CodeCarbon: results_aggregator.py's
    // co2_emissions_g then has a number to read.
    let location = ["++metering.country_iso_code=USA", "++metering.region=california"];
    let mut dirs = Vec::new();
    for (backend, extra) in [
        ("optimum", vec![model.as_str(), "scenario.iterations=2"]),
        ("pytorch", location.to_vec()),
        ("vllm", [&["backend.model=mock/model"][..], &location[..]].concat()),
    ] {
        let dir = cwd.path().join(backend);
        let mut args: Vec<&str> = common.to_vec();
        args.extend(extra);
        let dir_arg = dir.to_str().expect("utf-8").to_string();
        args.extend(["--results-dir", &dir_arg]);
        energy_star(cwd.path(), &args, &[("BENCHMARK_BACKEND", backend), ("VLLM_ENDPOINT", &endpoint)]).success();
        dirs.push(dir_arg);
    }
    let out = std::process::Command::new(&py)
        .arg(energy_star_tests::root().join("scripts/upstream-readers.py"))
        .args(&dirs)
        .output()
        .expect("run python");
    let text = String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "an upstream reader failed:\n{text}");
    // Every reader ran (a script that checked nothing would pass too): 7 on the optimum files
    // (with the environment against optimum-benchmark's own get_system_info()), 3 on each
    // ai_energy_benchmarks report (pytorch, vllm).
    assert_eq!(text.lines().filter(|l| l.starts_with("loads ")).count(), 13, "{text}");
    assert!(!text.contains("GAP"), "{text}");
}
