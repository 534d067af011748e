//! `mock-openai`: the mock server on its own, to try energy-star's `vllm` backend by hand:
//! `cargo run -p energy-star-mock-openai --example mock-openai -- --port 8000 --model mock/model --itl-ms 5`, then
//! `VLLM_ENDPOINT=http://127.0.0.1:8000 BENCHMARK_BACKEND=vllm energy-star ... backend.model=mock/model`.

use std::time::Duration;

use energy_star_mock_openai::{MockConfig, MockServer, UsageMode};

const USAGE: &str = "usage: mock-openai [--port N] [--model ID]... [--ttft-ms MS] [--itl-ms MS] [--tokens-per-chunk N] [--natural-tokens N] [--keepalive-every N] [--split-bytes N] [--no-usage] [--threads N]";

fn main() {
    if let Err(e) = run() {
        eprintln!("mock-openai: {e}\n{USAGE}");
        std::process::exit(2);
    }
}

fn run() -> Result<(), String> {
    let mut cfg = MockConfig { models: Vec::new(), ..MockConfig::default() };
    let mut port = 8000u16;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| args.next().ok_or_else(|| format!("{name} needs a value"));
        let num = |name: &str, v: String| v.parse::<u64>().map_err(|_| format!("{name}: {v:?} is not a whole number"));
        match a.as_str() {
            "--port" => {
                port =
                    u16::try_from(num("--port", value("--port")?)?).map_err(|_| "--port is over 65535".to_string())?
            }
            "--model" => cfg.models.push(value("--model")?),
            "--ttft-ms" => cfg.ttft = Duration::from_millis(num(&a, value(&a)?)?),
            "--itl-ms" => cfg.itl = Duration::from_millis(num(&a, value(&a)?)?),
            "--tokens-per-chunk" => cfg.tokens_per_chunk = num(&a, value(&a)?)? as u32,
            "--natural-tokens" => cfg.natural_tokens = num(&a, value(&a)?)? as u32,
            "--keepalive-every" => cfg.keepalive_every = num(&a, value(&a)?)? as u32,
            "--split-bytes" => cfg.split_bytes = num(&a, value(&a)?)? as usize,
            "--threads" => cfg.threads = num(&a, value(&a)?)? as usize,
            "--no-usage" => cfg.usage = UsageMode::Never,
            "-h" | "--help" => {
                println!("{USAGE}");
                return Ok(());
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    if cfg.models.is_empty() {
        cfg.models.push("mock/model".into());
    }
    let server = MockServer::start_on(&format!("127.0.0.1:{port}"), cfg)
        .map_err(|e| format!("cannot listen on port {port}: {e}"))?;
    eprintln!("mock-openai serving at {}", server.url());
    loop {
        std::thread::park();
    }
}
