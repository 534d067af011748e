//! `energy-star fetch` and a run on an empty cache, against the mock Hub (`tests/mock-hub`):
//! what the seed's command does on a fresh GPU node. No test reaches the real Hub.

use std::path::Path;

use energy_star_mock_hub::{Kind, MockHub, MockRepo};
use energy_star_tests::energy_star;

fn read_json(p: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
        .unwrap_or_else(|e| panic!("{}: {e}", p.display()))
}

/// The tiny Llama fixture as a Hub repo (its README and references ride along, as a real repo's
/// extra files do), and the leaderboard's text-generation dataset as one split of JSON lines.
fn hub() -> MockHub {
    let model = MockRepo::from_dir(Kind::Model, "org/tiny-llama", &energy_star_tests::fixtures().join("tiny-llama"))
        .expect("fixture");
    let prompts =
        std::fs::read(energy_star_tests::root().join("crates/datasets/assets/prompts.jsonl")).expect("prompts");
    let dataset = MockRepo::new(
        Kind::Dataset,
        "EnergyStarAI/text_generation",
        vec![
            ("README.md".into(), b"---\nlicense: apache-2.0\n---\n".to_vec()),
            ("data/train-00000-of-00001.jsonl".into(), prompts),
        ],
    );
    MockHub::start(vec![model, dataset], None).expect("mock hub")
}

const RUN: &[&str] = &[
    "--config-name",
    "text_generation",
    "backend.model=org/tiny-llama",
    "backend.device=cpu",
    "backend.torch_dtype=float32",
    "scenario.num_samples=4",
    "scenario.generate_kwargs.max_new_tokens=2",
    "scenario.generate_kwargs.min_new_tokens=2",
    "scenario.input_shapes.batch_size=2",
    "scenario.warmup_runs=1",
];

#[test]
fn fetch_says_where_it_put_what_and_a_second_fetch_downloads_nothing() {
    let hub = hub();
    let home = tempfile::tempdir().expect("tmp");
    let env = [("HF_HOME", home.path().to_str().expect("utf-8")), ("HF_ENDPOINT", &hub.url())];
    let run = energy_star(home.path(), &["fetch", "org/tiny-llama"], &env).success();
    let out = run.stdout();
    let snapshot = home.path().join("hub/models--org--tiny-llama/snapshots");
    assert!(out.contains("model org/tiny-llama at ") && out.contains(&snapshot.display().to_string()), "{out}");
    for f in ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"] {
        assert!(out.lines().any(|l| l.trim_start().starts_with(f) && l.ends_with("downloaded")), "{f}: {out}");
    }
    assert!(!out.contains("README.md") && !out.contains("reference.json"), "only what the engine reads: {out}");
    // Not a terminal: one log line per file instead of bars.
    assert!(run.stderr().contains("energy-star: fetched model.safetensors ("), "{}", run.stderr());
    hub.clear_log();
    let again = energy_star(home.path(), &["fetch", "org/tiny-llama", "--json"], &env).success();
    let j: serde_json::Value = serde_json::from_str(&again.stdout()).expect("json");
    assert_eq!(j["bytes_downloaded"], 0);
    assert!(hub.byte_requests().is_empty(), "{:?}", hub.byte_requests());
    let data =
        energy_star(home.path(), &["fetch", "--dataset", "EnergyStarAI/text_generation", "--split", "train"], &env)
            .success();
    assert!(data.stdout().contains("data/train-00000-of-00001.jsonl"), "{}", data.stdout());
    // A typo: the Hub's 404, said so, with the local-folder form.
    energy_star(home.path(), &["fetch", "org/tiny-lama"], &env)
        .fails_with(1, &["org/tiny-lama was not found", "typo", "local folder"]);
    energy_star(home.path(), &["fetch", "org/tiny-llama", "--revision", "nope"], &env)
        .fails_with(1, &["has no revision \"nope\""]);
}

#[test]
fn a_run_on_an_empty_cache_fetches_first_and_records_the_commits() {
    let hub = hub();
    let home = tempfile::tempdir().expect("tmp");
    let results = home.path().join("results");
    let mut args = RUN.to_vec();
    let results_arg = results.to_str().expect("utf-8");
    args.extend(["--results-dir", results_arg]);
    let env = [("HF_HOME", home.path().to_str().expect("utf-8")), ("HF_ENDPOINT", &hub.url())];
    let run = energy_star(home.path(), &args, &env).success();
    let err = run.stderr();
    // Every download ends before the first phase is metered.
    let last_fetch = err.rfind("energy-star: fetched ").expect("fetch lines");
    let first_phase = err.find("phase ").unwrap_or_else(|| panic!("phase lines: {err}"));
    assert!(last_fetch < first_phase, "{err}");
    let record = read_json(&results.join("run_record.json"));
    let sources = record["sources"].as_array().expect("sources");
    let model = sources.iter().find(|s| s["kind"] == "model").expect("model source");
    assert_eq!(
        (model["name"].as_str(), model["origin"].as_str(), model["revision"].as_str()),
        (Some("org/tiny-llama"), Some("hub"), Some("main"))
    );
    assert_eq!(model["commit"].as_str().map(str::len), Some(40));
    assert!(model["bytes_downloaded"].as_u64().is_some_and(|b| b > 100_000), "{model}");
    let data = sources.iter().find(|s| s["kind"] == "dataset").expect("dataset source");
    assert_eq!(data["origin"], "hub");
    assert!(results.join("GPU_ENERGY_SUMMARY.json").is_file());

    // A second run shares the cache: nothing is downloaded again.
    hub.clear_log();
    energy_star(home.path(), &args, &env).success();
    assert!(hub.byte_requests().is_empty(), "{:?}", hub.byte_requests());
    let record = read_json(&results.join("run_record.json"));
    assert!(record["sources"].as_array().expect("sources").iter().all(|s| s["bytes_downloaded"] == 0), "{record}");

    // Offline with the cache: the run never touches the network.
    hub.clear_log();
    let offline = [env[0], env[1], ("HF_HUB_OFFLINE", "1")];
    energy_star(home.path(), &args, &offline).success();
    assert!(hub.requests().is_empty(), "{:?}", hub.requests());

    // A pin the optimum-benchmark way (model_kwargs.revision, as from_pretrained takes it): a
    // cached commit needs no request, and the record says which.
    let commit = model["commit"].as_str().expect("commit").to_string();
    let pin = format!("+backend.model_kwargs.revision={commit}");
    let mut pinned = args.clone();
    pinned.push(&pin);
    energy_star(home.path(), &pinned, &env).success();
    let record = read_json(&results.join("run_record.json"));
    let model = record["sources"].as_array().expect("sources").iter().find(|s| s["kind"] == "model").cloned();
    let model = model.expect("model source");
    assert_eq!((model["revision"].as_str(), model["commit"].as_str()), (Some(commit.as_str()), Some(commit.as_str())));
    assert!(!hub.requests().iter().any(|r| r.path.contains("tiny-llama")), "{:?}", hub.requests());
}

#[test]
fn a_model_that_cannot_be_fetched_stops_the_run_before_anything_is_touched() {
    let hub = hub();
    let home = tempfile::tempdir().expect("tmp");
    let results = home.path().join("results");
    let env = [("HF_HOME", home.path().to_str().expect("utf-8")), ("HF_ENDPOINT", &hub.url())];
    let mut args: Vec<&str> =
        RUN.iter().map(|a| if a.starts_with("backend.model=") { "backend.model=org/tiny-lama" } else { a }).collect();
    let results_arg = results.to_str().expect("utf-8");
    args.extend(["--results-dir", results_arg]);
    energy_star(home.path(), &args, &env).fails_with(1, &["before the run", "org/tiny-lama was not found"]);
    assert!(!results.exists(), "nothing was touched");
    // Offline and not cached: said so, no request made.
    hub.clear_log();
    let offline = [env[0], env[1], ("HF_HUB_OFFLINE", "1")];
    let args: Vec<&str> = RUN.iter().copied().chain(["--results-dir", results_arg]).collect();
    energy_star(home.path(), &args, &offline).fails_with(1, &["HF_HUB_OFFLINE=1 forbids downloading"]);
    assert!(hub.requests().is_empty() && !results.exists());
}

/// Runs Python code with huggingface_hub against the mock, printing its last line.
fn python(python: &str, code: &str, env: &[(&str, &str)]) -> String {
    let mut c = std::process::Command::new(python);
    c.args(["-c", code]).env_remove("HF_TOKEN").env_remove("HF_HOME").env("HF_HUB_DISABLE_PROGRESS_BARS", "1");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().expect("run python");
    assert!(
        out.status.success(),
        "python failed:\n{}\n{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().lines().last().unwrap_or_default().to_string()
}

#[test]
#[ignore = "needs Python with huggingface_hub (HF_HUB_PYTHON); .ci/run installs huggingface_hub from PyPI and runs it"]
fn huggingface_hub_and_energy_star_share_one_cache_both_ways() {
    let py = std::env::var("HF_HUB_PYTHON").expect("HF_HUB_PYTHON: a python with huggingface_hub");
    let hub = hub();
    let tmp = tempfile::tempdir().expect("tmp");
    let url = hub.url();
    // huggingface_hub itself downloads from the mock (the mock speaks what the real client
    // speaks) into a cache of its own, with the files energy-star reads.
    let theirs = tmp.path().join("written-by-huggingface_hub");
    let theirs_s = theirs.to_str().expect("utf-8");
    let code = r#"
from huggingface_hub import snapshot_download
m = snapshot_download("org/tiny-llama", allow_patterns=["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json", "model.safetensors"])
d = snapshot_download("EnergyStarAI/text_generation", repo_type="dataset", allow_patterns=["data/*"])
print(m)
"#;
    let their_snapshot = python(&py, code, &[("HF_ENDPOINT", &url), ("HF_HUB_CACHE", theirs_s)]);
    // energy-star reads that cache as it is: nothing downloaded, and an offline run works.
    hub.clear_log();
    let env = [("HF_HUB_CACHE", theirs_s), ("HF_ENDPOINT", url.as_str())];
    let j: serde_json::Value =
        serde_json::from_str(&energy_star(tmp.path(), &["fetch", "org/tiny-llama", "--json"], &env).success().stdout())
            .expect("json");
    assert_eq!((j["bytes_downloaded"].as_u64(), j["snapshot"].as_str()), (Some(0), Some(their_snapshot.as_str())));
    assert!(hub.byte_requests().is_empty(), "{:?}", hub.byte_requests());
    let results = tmp.path().join("results");
    let mut args = RUN.to_vec();
    args.extend(["--results-dir", results.to_str().expect("utf-8")]);
    energy_star(tmp.path(), &args, &[env[0], env[1], ("HF_HUB_OFFLINE", "1")]).success();

    // The other way: energy-star fetches, huggingface_hub reads it offline and, online,
    // downloads nothing more.
    let ours = tmp.path().join("written-by-energy-star");
    let ours_s = ours.to_str().expect("utf-8");
    let env = [("HF_HUB_CACHE", ours_s), ("HF_ENDPOINT", url.as_str())];
    let fetched: serde_json::Value =
        serde_json::from_str(&energy_star(tmp.path(), &["fetch", "org/tiny-llama", "--json"], &env).success().stdout())
            .expect("json");
    let code = r#"
import hashlib
from huggingface_hub import snapshot_download, hf_hub_download
p = hf_hub_download("org/tiny-llama", "model.safetensors", local_files_only=True)
s = snapshot_download("org/tiny-llama", local_files_only=True)
print(s, hashlib.sha256(open(p, "rb").read()).hexdigest())
"#;
    let line = python(&py, code, &[("HF_HUB_CACHE", ours_s), ("HF_HUB_OFFLINE", "1")]);
    let want = std::fs::read(energy_star_tests::fixtures().join("tiny-llama/model.safetensors")).expect("fixture");
    let sha = {
        use sha2::Digest;
        format!("{:x}", sha2::Sha256::digest(&want))
    };
    assert_eq!(line, format!("{} {sha}", fetched["snapshot"].as_str().expect("snapshot")));
    hub.clear_log();
    let code = r#"
from huggingface_hub import snapshot_download
print(snapshot_download("org/tiny-llama", allow_patterns=["*.json", "*.safetensors"]))
"#;
    python(&py, code, &[("HF_HUB_CACHE", ours_s), ("HF_ENDPOINT", &url)]);
    let gets: Vec<_> = hub.byte_requests().into_iter().filter(|r| !r.path.ends_with("reference.json")).collect();
    assert!(gets.is_empty(), "huggingface_hub downloaded again what energy-star had: {gets:?}");
}
