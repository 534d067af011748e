//! The container's contract, without a Docker engine: the Dockerfile's final stage is read
//! (entrypoint, environment, folders), and the argument lists the seed's users pass to
//! `docker run ... energy_star ARGS` are run against the built binary with that environment,
//! the container's paths mapped into a temporary folder.

use std::collections::BTreeMap;
use std::path::Path;

use energy_star_tests::{energy_star, root};

/// The final stage's instructions, continuation lines joined: (INSTRUCTION, rest).
fn final_stage() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    let mut joined = Vec::new();
    let mut cur = String::new();
    for line in text.lines() {
        let t = line.trim();
        if t.starts_with('#') || (t.is_empty() && cur.is_empty()) {
            continue;
        }
        match t.strip_suffix('\\') {
            Some(head) => {
                cur.push_str(head);
                cur.push(' ');
            }
            None => {
                cur.push_str(t);
                joined.push(std::mem::take(&mut cur));
            }
        }
    }
    let instrs: Vec<(String, String)> = joined
        .iter()
        .filter(|l| !l.trim().is_empty())
        .map(|l| {
            let (i, rest) = l.trim().split_once(char::is_whitespace).unwrap_or((l.trim(), ""));
            (i.to_ascii_uppercase(), rest.trim().to_string())
        })
        .collect();
    let last_from = instrs.iter().rposition(|(i, _)| i == "FROM").expect("a FROM");
    instrs[last_from..].to_vec()
}

/// `ENV K=V K2="V 2"` pairs of the final stage.
fn env_of(stage: &[(String, String)]) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    for (_, rest) in stage.iter().filter(|(i, _)| i == "ENV") {
        let mut chars = rest.chars().peekable();
        loop {
            while chars.peek().is_some_and(|c| c.is_whitespace()) {
                chars.next();
            }
            let key: String = std::iter::from_fn(|| chars.next_if(|c| *c != '=' && !c.is_whitespace())).collect();
            if key.is_empty() || chars.next() != Some('=') {
                break;
            }
            let value: String = if chars.peek() == Some(&'"') {
                chars.next();
                let v = std::iter::from_fn(|| chars.next_if(|c| *c != '"')).collect();
                chars.next();
                v
            } else {
                std::iter::from_fn(|| chars.next_if(|c| !c.is_whitespace())).collect()
            };
            env.insert(key, value);
        }
    }
    env
}

#[test]
fn the_image_runs_energy_star_with_the_containers_layout() {
    let stage = final_stage();
    let entry: Vec<&String> = stage.iter().filter(|(i, _)| i == "ENTRYPOINT").map(|(_, r)| r).collect();
    assert_eq!(entry, [&"[\"energy-star\"]".to_string()], "the seed's arguments go to energy-star unchanged");
    assert!(!stage.iter().any(|(i, _)| i == "CMD"), "no CMD: `docker run IMAGE ARGS` passes ARGS as they are");
    let env = env_of(&stage);
    assert_eq!(env.get("RESULTS_DIR").map(String::as_str), Some("/results"));
    assert_eq!(env.get("HF_HOME").map(String::as_str), Some("/home/user/.cache/huggingface"));
    assert_eq!(env.get("ENERGY_STAR_CONFIG_DIR").map(String::as_str), Some("/opt/energy-star/configs"));
    let all = std::fs::read_to_string(root().join("Dockerfile")).expect("Dockerfile");
    assert!(all.contains("/opt/energy-star/plugins"), "the drop-in plugin folder exists in the image");
    assert!(all.contains("--features cuda"), "the image is built with CUDA");
    assert!(stage.iter().any(|(i, r)| i == "COPY" && r.contains("configs")), "built-in configs inside");
}

/// Runs `args` as the container would: its environment, /results and the config folder mapped.
fn as_container(tmp: &Path, args: &[&str], extra_env: &[(&str, &str)]) -> energy_star_tests::Run {
    let env = env_of(&final_stage());
    let results = tmp.join("results");
    let home = tmp.join("home");
    std::fs::create_dir_all(&home).expect("home");
    let map = |v: &str| {
        v.replace("/results", results.to_str().expect("utf-8"))
            .replace("/home/user", home.to_str().expect("utf-8"))
            .replace("/opt/energy-star/configs", root().join("configs").to_str().expect("utf-8"))
    };
    let mapped: Vec<(String, String)> = env
        .iter()
        .filter(|(k, _)| k.as_str() != "ENERGY_STAR_CACHE_DIR" && !k.starts_with("NVIDIA_"))
        .map(|(k, v)| (k.clone(), map(v)))
        .collect();
    let mut all: Vec<(&str, &str)> = mapped.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    all.extend_from_slice(extra_env);
    energy_star(tmp, args, &all)
}

#[test]
fn the_seeds_commands_work_unchanged() {
    let tmp = tempfile::tempdir().expect("tmp");
    let results = tmp.path().join("results");
    // `docker run --gpus all energy_star --config-name text_generation backend.model=...`: the
    // real task config; on an air-gapped node (offline) with an empty cache, the run's plan is
    // refused clearly before /results is touched (tests/all/fetch.rs runs it with a Hub).
    let run = as_container(
        tmp.path(),
        &["--config-name", "text_generation", "backend.model=openai/gpt-oss-20b", "scenario.num_samples=3"],
        &[("HF_HUB_OFFLINE", "1")],
    );
    run.fails_with(1, &["openai/gpt-oss-20b is not in the Hugging Face cache", "energy-star fetch openai/gpt-oss-20b"]);
    assert!(!results.join("run_status.json").exists(), "a plan that cannot run touches nothing");
    // The same with the offline config: results and the summary land in /results.
    let seed = [
        "--config-name",
        "text_generation_offline",
        "scenario.num_samples=3",
        "scenario.generate_kwargs.max_new_tokens=4",
        "scenario.generate_kwargs.min_new_tokens=4",
    ];
    for backend in ["optimum", "pytorch"] {
        let tmp = tempfile::tempdir().expect("tmp");
        as_container(tmp.path(), &seed, &[("BENCHMARK_BACKEND", backend)]).success();
        for f in ["benchmark_report.json", "GPU_ENERGY_WH.txt", "GPU_ENERGY_SUMMARY.json", "run_status.json"] {
            assert!(tmp.path().join("results").join(f).exists(), "{backend}: {f} missing from /results");
        }
    }
    let tmp = tempfile::tempdir().expect("tmp");
    // The original entrypoint appends hydra.run.dir=/results after the user's arguments.
    let mut with_hydra: Vec<&str> = seed.to_vec();
    let hydra = format!("hydra.run.dir={}", tmp.path().join("hydra").display());
    with_hydra.push(&hydra);
    as_container(tmp.path(), &with_hydra, &[]).success();
    assert!(tmp.path().join("hydra/GPU_ENERGY_WH.txt").exists());
    // The documented errors, exit code 1.
    as_container(tmp.path(), &seed, &[("BENCHMARK_BACKEND", "vllm")])
        .fails_with(1, &["Error: VLLM_ENDPOINT environment variable must be set for vLLM backend"]);
    as_container(tmp.path(), &seed, &[("BENCHMARK_BACKEND", "tensorrt")])
        .fails_with(1, &["Error: Unknown BENCHMARK_BACKEND=tensorrt", "Valid options: optimum, pytorch, vllm"]);
}
