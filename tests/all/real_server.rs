//! The `vllm` backend against a real OpenAI-compatible server this project did not write:
//! llama-cpp-python's (`python -m llama_cpp.server`, built on FastAPI, sse-starlette and
//! starlette-context, which refuses an `X-Request-Id` that is not a UUID) serving SmolLM2-135M
//! (a GGUF from PyPI). Completions and chat, with and without usage in the stream.
//!
//! Ignored in a plain `cargo test`: the server and the model are installed by `.ci/run`, which
//! runs this test with `LLAMA_SERVER_PYTHON` (a Python with llama-cpp-python[server]) and
//! `LLAMA_SERVER_MODEL` (the GGUF file) set.

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use energy_star_tests::{energy_star, read_json};

/// The server process, stopped when dropped.
struct Server {
    child: Child,
    url: String,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_server(python: &str, model: &str) -> Server {
    let port = TcpListener::bind("127.0.0.1:0").expect("free port").local_addr().expect("addr").port();
    let log = std::env::temp_dir().join(format!("llama-server-{port}.log"));
    let out = std::fs::File::create(&log).expect("log");
    let child = Command::new(python)
        .args(["-m", "llama_cpp.server", "--model", model, "--model_alias", "smollm2", "--host", "127.0.0.1"])
        .args(["--port", &port.to_string(), "--n_ctx", "2048", "--n_threads", "2"])
        .stdout(Stdio::from(out.try_clone().expect("log")))
        .stderr(Stdio::from(out))
        .spawn()
        .expect("start llama_cpp.server");
    let server = Server { child, url: format!("http://127.0.0.1:{port}/v1") };
    let t = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            t.elapsed() < Duration::from_secs(120),
            "the server did not start:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    server
}

fn run(cwd: &Path, url: &str, extra: &[&str]) -> energy_star_tests::Run {
    let mut args = vec![
        "--config-name",
        "text_generation_offline",
        "backend.model=smollm2",
        "scenario.num_samples=4",
        "scenario.generate_kwargs.max_new_tokens=8",
        "scenario.generate_kwargs.min_new_tokens=8",
        "serving.request_timeout_s=120",
    ];
    args.extend_from_slice(extra);
    energy_star(cwd, &args, &[("BENCHMARK_BACKEND", "vllm"), ("VLLM_ENDPOINT", url)])
}

#[test]
#[ignore = "needs llama-cpp-python's server and a GGUF model (LLAMA_SERVER_PYTHON, LLAMA_SERVER_MODEL); .ci/run installs them"]
fn a_real_openai_compatible_server_serves_every_request() {
    let python =
        std::env::var("LLAMA_SERVER_PYTHON").expect("LLAMA_SERVER_PYTHON: a Python with llama-cpp-python[server]");
    let model = std::env::var("LLAMA_SERVER_MODEL").expect("LLAMA_SERVER_MODEL: a GGUF model file");
    let server = start_server(&python, &model);
    for (api, usage) in [("completions", "true"), ("completions", "false"), ("chat", "true"), ("chat", "false")] {
        let cwd = tempfile::tempdir().expect("tmp");
        let api_arg = format!("serving.api={api}");
        let usage_arg = format!("serving.stream_usage={usage}");
        let run = run(cwd.path(), &server.url, &[&api_arg, &usage_arg]);
        assert_eq!(run.code(), Some(0), "{api}, usage {usage}:\n{}\n{}", run.stdout(), run.stderr());
        let r = cwd.path().join("results");
        let report = read_json(&r.join("benchmark_report.json"));
        let additions = read_json(&r.join("energy_star_report.json"));
        let serving = &additions["run"]["serving"];
        assert_eq!(
            (serving["completed"].as_u64(), serving["failed"].as_u64()),
            (Some(4), Some(0)),
            "{api}, {usage}: {report}"
        );
        assert!(serving["mean_ttft_ms"].as_f64().is_some_and(|t| t > 0.0), "{serving}");
        let recs: Vec<serde_json::Value> = std::fs::read_to_string(r.join("requests.jsonl"))
            .expect("requests")
            .lines()
            .map(|l| serde_json::from_str(l).expect("json"))
            .collect();
        assert!(
            recs.iter().all(|x| x["success"] == true && x["output_tokens"].as_u64().is_some_and(|n| n > 0)),
            "{recs:?}"
        );
        assert!(recs.iter().all(|x| x["request_id"].as_str().is_some_and(|id| id.len() == 36)));
        assert_eq!(report["backend_info"]["api"], if api == "chat" { "chat/completions" } else { "completions" });
        // No GPU of this machine is metered for it: n/a, said, exit 0.
        assert_eq!(std::fs::read_to_string(r.join("GPU_ENERGY_WH.txt")).expect("txt"), "n/a\n");
    }
}
