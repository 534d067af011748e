//! The remote engine's client against the mock OpenAI server on the same machine: streamed
//! requests per second, the client's CPU seconds per 1,000 streamed requests (64 tokens each)
//! at concurrency 1, 64 and 512, and the timing error the client adds to TTFT and ITL.
//!
//! Run: `cargo bench -p energy-star-engine-remote --bench remote_client` (about a minute). Prints Markdown
//! rows for docs/benchmarks.md.
//!
//! CPU is split by thread from /proc/self/task: the mock's threads are named `mock-openai-w`,
//! everything else in the process is the client (its runtime workers and the dispatcher).
//! The timing error compares, per token chunk, the time the client stamped it with the time
//! the mock handed it to its HTTP stack (both on one `Instant` origin); it includes the mock's
//! own write path and the loopback, so it is an upper bound on what the client adds.

use std::sync::Arc;
use std::time::{Duration, Instant};

use energy_star_engine::GenerationParams;
use energy_star_engine_remote::load::{LoadLimits, LoadProfile};
use energy_star_engine_remote::{Api, RemoteEngine, RemoteSpec};
use energy_star_mock_openai::{MockConfig, MockServer};

const TOKENS: u32 = 64;

/// (client, mock) CPU seconds so far, from /proc/self/task/*/stat.
fn cpu_split() -> (f64, f64) {
    let tick = 100.0; // USER_HZ on Linux
    let mut client = 0.0;
    let mut mock = 0.0;
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else { return (0.0, 0.0) };
    for t in tasks.flatten() {
        let Ok(stat) = std::fs::read_to_string(t.path().join("stat")) else { continue };
        let (Some(open), Some(close)) = (stat.find('('), stat.rfind(')')) else { continue };
        let name = &stat[open + 1..close];
        let fields: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        let (Some(u), Some(s)) =
            (fields.get(11).and_then(|x| x.parse::<f64>().ok()), fields.get(12).and_then(|x| x.parse::<f64>().ok()))
        else {
            continue;
        };
        if name.starts_with("mock-openai") {
            mock += (u + s) / tick;
        } else {
            client += (u + s) / tick;
        }
    }
    (client, mock)
}

fn params() -> GenerationParams {
    GenerationParams { max_new_tokens: TOKENS, min_new_tokens: TOKENS, ignore_eos: true, ..GenerationParams::default() }
}

fn engine(server: &MockServer) -> RemoteEngine {
    let spec = RemoteSpec {
        endpoint: server.url(),
        model: None,
        api: Api::Completions,
        request_timeout: Duration::from_secs(60),
        api_key: None,
        body: energy_star_engine_remote::request::BodyOptions { stream_usage: true, ..Default::default() },
    };
    RemoteEngine::open(&spec, &|_: &str| None).expect("open")
}

fn throughput(concurrency: u32, requests: usize) {
    let server = MockServer::start(MockConfig::default()).expect("mock");
    let e = engine(&server);
    let prompts: Vec<String> = (0..requests).map(|i| format!("benchmark prompt {i}")).collect();
    let profile = if concurrency == 1 { LoadProfile::Sequential } else { LoadProfile::Concurrency(concurrency) };
    // Warm the connection pool.
    let warm: Vec<String> = prompts.iter().take(concurrency as usize * 2).cloned().collect();
    e.run_load(&warm, &params(), &profile, &LoadLimits::default(), Instant::now(), Arc::new(|| false)).expect("warmup");
    let (c0, m0) = cpu_split();
    let t = Instant::now();
    let out = e
        .run_load(&prompts, &params(), &profile, &LoadLimits::default(), Instant::now(), Arc::new(|| false))
        .expect("load");
    let wall = t.elapsed().as_secs_f64();
    let (c1, m1) = cpu_split();
    let failed = out.requests.iter().filter(|r| r.failure.is_some()).count();
    let tokens: u64 = out.requests.iter().map(|r| u64::from(r.output_tokens)).sum();
    assert_eq!(tokens, requests as u64 * u64::from(TOKENS), "every token arrived");
    println!(
        "| {concurrency} | {requests} | {:.0} | {:.0} | {:.2} | {:.2} | {failed} | {} |",
        requests as f64 / wall,
        tokens as f64 / wall,
        (c1 - c0) / requests as f64 * 1000.0,
        (m1 - m0) / requests as f64 * 1000.0,
        out.peak_concurrency,
    );
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p / 100.0).round() as usize]
}

/// Adds one request's errors (client stamp − mock send time, µs): its first chunk to TTFT,
/// the others to ITL.
fn add_errors(sent: &[(u64, u32)], stamps: &[u64], ttft_err: &mut Vec<f64>, itl_err: &mut Vec<f64>) {
    for (i, ((mt, _), ct)) in sent.iter().zip(stamps).enumerate() {
        let err_us = (*ct as f64 - *mt as f64) / 1e3;
        if i == 0 { ttft_err.push(err_us) } else { itl_err.push(err_us) }
    }
}

fn print_errors(label: &str, mut ttft_err: Vec<f64>, mut itl_err: Vec<f64>) {
    println!(
        "| {label} | {} | {:.0} | {:.0} | {:.0} | {:.0} | {:.0} |",
        ttft_err.len() + itl_err.len(),
        pct(&mut ttft_err, 50.0),
        pct(&mut ttft_err, 99.0),
        pct(&mut itl_err, 50.0),
        pct(&mut itl_err, 99.0),
        pct(&mut itl_err, 100.0),
    );
}

fn timing_error(concurrency: u32, requests: usize) {
    let origin = Instant::now();
    let cfg = MockConfig {
        ttft: Duration::from_millis(10),
        itl: Duration::from_millis(5),
        record_timing: true,
        origin,
        ..MockConfig::default()
    };
    let server = MockServer::start(cfg).expect("mock");
    let e = engine(&server);
    let prompts: Vec<String> = (0..requests).map(|i| format!("timing prompt {i}")).collect();
    let out = e
        .run_load(
            &prompts,
            &params(),
            &LoadProfile::Concurrency(concurrency),
            &LoadLimits::default(),
            origin,
            Arc::new(|| false),
        )
        .expect("load");
    let sent = server.timing();
    let mut ttft_err = Vec::new();
    let mut itl_err = Vec::new();
    for r in &out.requests {
        let Some(m) = sent.iter().find(|t| Some(&t.request_id) == r.request_id.as_ref()) else { continue };
        let Some(ttft) = r.ttft_ns else { continue };
        let mut client_t = r.start_ns + ttft;
        let mut client_times = vec![client_t];
        for g in &r.itl_ns {
            client_t += g;
            client_times.push(client_t);
        }
        add_errors(&m.chunks, &client_times, &mut ttft_err, &mut itl_err);
    }
    print_errors(&concurrency.to_string(), ttft_err, itl_err);
}

/// The floor: a blocking socket reader with no HTTP library, stamping each read. What is left
/// between it and the mock's send time is the mock's write path, the kernel and scheduling.
fn raw_floor(requests: usize) {
    use std::io::{Read, Write};
    let origin = Instant::now();
    let cfg = MockConfig {
        ttft: Duration::from_millis(10),
        itl: Duration::from_millis(5),
        record_timing: true,
        origin,
        ..MockConfig::default()
    };
    let server = MockServer::start(cfg).expect("mock");
    let mut ttft_err = Vec::new();
    let mut itl_err = Vec::new();
    for i in 0..requests {
        let id = format!("raw-{i}");
        let body =
            format!(r#"{{"model":"mock/model","prompt":"p","max_tokens":{TOKENS},"ignore_eos":true,"stream":true}}"#);
        let mut sock = std::net::TcpStream::connect(server.addr).expect("connect");
        sock.set_nodelay(true).expect("nodelay");
        let req = format!(
            "POST /v1/completions HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\nx-request-id: {id}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        sock.write_all(req.as_bytes()).expect("write");
        let mut stamps = Vec::new();
        let mut buf = vec![0u8; 65536];
        loop {
            let n = sock.read(&mut buf).expect("read");
            let t = u64::try_from(origin.elapsed().as_nanos()).unwrap_or(u64::MAX);
            if n == 0 {
                break;
            }
            let text = String::from_utf8_lossy(&buf[..n]);
            for _ in 0..text.matches("\"choices\":[{").count() {
                stamps.push(t);
            }
            if text.contains("[DONE]") {
                break;
            }
        }
        let sent = server.timing();
        let Some(m) = sent.iter().find(|t| t.request_id == id) else { continue };
        add_errors(&m.chunks, &stamps, &mut ttft_err, &mut itl_err);
    }
    print_errors("raw socket reader (floor), 1", ttft_err, itl_err);
}

fn main() {
    println!("Streamed requests of {TOKENS} tokens, mock answering as fast as it can (1 runtime thread):\n");
    println!(
        "| concurrency | requests | requests/s | tokens/s | client CPU s / 1,000 requests | mock CPU s / 1,000 requests | failed | peak in flight |"
    );
    println!("|---|---|---|---|---|---|---|---|");
    throughput(1, 2_000);
    throughput(64, 20_000);
    throughput(512, 20_000);
    println!("\nTiming error added by the client (µs; client stamp − mock send time), mock TTFT 10 ms, ITL 5 ms:\n");
    println!("| concurrency | chunks | TTFT p50 | TTFT p99 | ITL-token p50 | ITL-token p99 | max |");
    println!("|---|---|---|---|---|---|---|");
    raw_floor(50);
    timing_error(1, 50);
    timing_error(64, 640);
}
