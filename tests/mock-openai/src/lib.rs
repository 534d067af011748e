//! A mock OpenAI-compatible server (the parts of vLLM's API a load generator touches), for
//! energy-star's tests and benchmarks: `/v1/models`, streaming `/v1/completions` and
//! `/v1/chat/completions`, with set latency and token rate and the ways real servers misbehave.
//!
//! Server-wide behaviour comes from [`MockConfig`]; one request's faults come from directives
//! in its prompt (`[mock:status=503]`, `[mock:drop_after=3]`, ...; see [`Directives`]), so a
//! test's dataset decides which requests fail and how, without races between requests.
//!
//! Every token chunk's send time can be logged against a caller's clock origin
//! ([`MockConfig::record_timing`]) so a benchmark can measure the timing error a client adds.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::BodyExt;
use hyper::body::{Body, Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

/// What usage figures the mock sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UsageMode {
    /// As vLLM: a usage-only chunk at the end when `stream_options.include_usage`, and usage
    /// in every chunk when `continuous_usage_stats` too.
    AsRequested,
    /// Never any usage (servers that ignore `stream_options`).
    Never,
}

/// Server-wide behaviour.
#[derive(Debug, Clone)]
pub struct MockConfig {
    /// Model ids `/v1/models` lists; requests for others get vLLM's 404.
    pub models: Vec<String>,
    pub max_model_len: u32,
    /// Delay before the first token.
    pub ttft: Duration,
    /// Delay between chunks (zero: as fast as the socket takes them, all in one write).
    pub itl: Duration,
    /// Tokens per chunk (speculative decoding and chunked output send several).
    pub tokens_per_chunk: u32,
    pub usage: UsageMode,
    /// A `: ping` comment line after every this many chunks (0: none).
    pub keepalive_every: u32,
    /// Each event is written in pieces of this many bytes, each its own HTTP chunk (0: whole).
    pub split_bytes: usize,
    /// Tokens generated before the model "emits EOS" when the request does not fix the length.
    pub natural_tokens: u32,
    /// Log each token chunk's send time (ns since `origin`) by `x-request-id`.
    pub record_timing: bool,
    pub origin: Instant,
    /// Worker threads of the server's runtime.
    pub threads: usize,
}

impl Default for MockConfig {
    fn default() -> Self {
        Self {
            models: vec!["mock/model".into()],
            max_model_len: 4096,
            ttft: Duration::ZERO,
            itl: Duration::ZERO,
            tokens_per_chunk: 1,
            usage: UsageMode::AsRequested,
            keepalive_every: 0,
            split_bytes: 0,
            natural_tokens: 16,
            record_timing: false,
            origin: Instant::now(),
            threads: 1,
        }
    }
}

/// Per-request faults, from `[mock:KEY=VALUE]` directives in the prompt.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Directives {
    /// Answer with this HTTP status and an OpenAI error body instead of a stream.
    pub status: Option<u16>,
    /// Send an in-stream `{"error": ...}` event after this many tokens.
    pub error_after: Option<u32>,
    /// Close the connection after this many tokens, without `[DONE]`.
    pub drop_after: Option<u32>,
    /// Send a chunk that is not JSON after this many tokens.
    pub malformed_after: Option<u32>,
    /// End the stream cleanly after this many tokens but without `[DONE]` or a finish reason.
    pub truncate_after: Option<u32>,
    /// Wait this long before the first token (for client timeouts).
    pub stall_ms: Option<u64>,
}

impl Directives {
    pub fn parse(prompt: &str) -> Self {
        let mut d = Self::default();
        let mut rest = prompt;
        while let Some(i) = rest.find("[mock:") {
            let tail = &rest[i + 6..];
            let Some(end) = tail.find(']') else { break };
            if let Some((k, v)) = tail[..end].split_once('=') {
                let n = v.trim().parse::<u64>().ok();
                match k.trim() {
                    "status" => d.status = n.and_then(|n| u16::try_from(n).ok()),
                    "error_after" => d.error_after = n.map(|n| n as u32),
                    "drop_after" => d.drop_after = n.map(|n| n as u32),
                    "malformed_after" => d.malformed_after = n.map(|n| n as u32),
                    "truncate_after" => d.truncate_after = n.map(|n| n as u32),
                    "stall_ms" => d.stall_ms = n,
                    _ => {}
                }
            }
            rest = &tail[end..];
        }
        d
    }
}

/// Send times of one request's token chunks, ns since the config's origin.
#[derive(Debug, Clone, Default)]
pub struct ChunkTimes {
    pub request_id: String,
    /// One entry per chunk: (send time, tokens in it).
    pub chunks: Vec<(u64, u32)>,
}

/// What the server saw.
#[derive(Debug, Default)]
pub struct Counters {
    pub requests: AtomicU64,
    pub streams_completed: AtomicU64,
    /// Requests with `stream_options.continuous_usage_stats`.
    pub continuous_usage_requests: AtomicU64,
    pub ignore_eos_requests: AtomicU64,
}

struct Shared {
    config: MockConfig,
    counters: Counters,
    timing: Mutex<Vec<ChunkTimes>>,
    /// The last request body, for tests of what the client sends.
    last_body: Mutex<Option<Value>>,
    /// The last request's `X-Request-Id`.
    last_request_id: Mutex<Option<String>>,
}

/// A running mock server; stops when dropped.
pub struct MockServer {
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MockServer {
    /// Starts a server on 127.0.0.1 on a free port, on its own threads.
    pub fn start(config: MockConfig) -> std::io::Result<Self> {
        Self::start_on("127.0.0.1:0", config)
    }

    pub fn start_on(bind: &str, config: MockConfig) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(config.threads.max(1))
            .thread_name("mock-openai-w")
            .enable_all()
            .build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind(bind))?;
        let addr = listener.local_addr()?;
        let shared = Arc::new(Shared {
            config,
            counters: Counters::default(),
            timing: Mutex::new(Vec::new()),
            last_body: Mutex::new(None),
            last_request_id: Mutex::new(None),
        });
        let (tx, rx) = oneshot::channel();
        let s = shared.clone();
        let thread = std::thread::Builder::new().name("mock-openai".into()).spawn(move || {
            runtime.block_on(serve(listener, s, rx));
            // In-flight streams are dropped with the runtime.
            runtime.shutdown_background();
        })?;
        Ok(Self { addr, shared, shutdown: Some(tx), thread: Some(thread) })
    }

    /// The base URL with `/v1`.
    pub fn url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn counters(&self) -> &Counters {
        &self.shared.counters
    }

    /// Chunk send times so far (with `record_timing`).
    pub fn timing(&self) -> Vec<ChunkTimes> {
        self.shared.timing.lock().map(|t| t.clone()).unwrap_or_default()
    }

    /// The last request body received.
    pub fn last_body(&self) -> Option<Value> {
        self.shared.last_body.lock().ok().and_then(|b| b.clone())
    }

    /// The last request's `X-Request-Id` header.
    pub fn last_request_id(&self) -> Option<String> {
        self.shared.last_request_id.lock().ok().and_then(|b| b.clone())
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let _ = stream.set_nodelay(true);
                let s = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(req, s.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

/// A response body fed from a channel; an `Err` item aborts the connection mid-body.
pub struct ChannelBody(mpsc::Receiver<Result<Bytes, std::io::Error>>);

impl Body for ChannelBody {
    type Data = Bytes;
    type Error = std::io::Error;
    fn poll_frame(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.0.poll_recv(cx).map(|o| o.map(|r| r.map(Frame::data)))
    }
}

type Resp = Response<ChannelBody>;

fn whole(status: StatusCode, content_type: &str, body: String) -> Resp {
    let (tx, rx) = mpsc::channel(1);
    let _ = tx.try_send(Ok(Bytes::from(body)));
    let mut r = Response::new(ChannelBody(rx));
    *r.status_mut() = status;
    if let Ok(v) = content_type.parse() {
        r.headers_mut().insert(hyper::header::CONTENT_TYPE, v);
    }
    r
}

/// vLLM's error body.
fn error(status: StatusCode, kind: &str, message: &str) -> Resp {
    let body = json!({"error": {"message": message, "type": kind, "param": null, "code": status.as_u16()}}).to_string();
    whole(status, "application/json", body)
}

async fn handle(req: Request<Incoming>, shared: Arc<Shared>) -> Result<Resp, Infallible> {
    let path = req.uri().path().trim_end_matches('/').to_string();
    let method = req.method().clone();
    let request_id = req.headers().get("x-request-id").and_then(|v| v.to_str().ok()).unwrap_or("").to_string();
    let cfg = &shared.config;
    match (method, path.as_str()) {
        (Method::GET, "/v1/models") => {
            let data: Vec<Value> = cfg
                .models
                .iter()
                .map(|m| json!({"id": m, "object": "model", "created": 0, "owned_by": "mock", "root": m, "max_model_len": cfg.max_model_len}))
                .collect();
            Ok(whole(StatusCode::OK, "application/json", json!({"object": "list", "data": data}).to_string()))
        }
        (Method::GET, "/health") => Ok(whole(StatusCode::OK, "text/plain", String::new())),
        (Method::POST, "/v1/completions") => Ok(completion(req, shared, false, request_id).await),
        (Method::POST, "/v1/chat/completions") => Ok(completion(req, shared, true, request_id).await),
        (_, p) => Ok(error(StatusCode::NOT_FOUND, "NotFoundError", &format!("no route {p}"))),
    }
}

async fn completion(req: Request<Incoming>, shared: Arc<Shared>, chat: bool, request_id: String) -> Resp {
    shared.counters.requests.fetch_add(1, Ordering::Relaxed);
    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return error(StatusCode::BAD_REQUEST, "BadRequestError", &format!("body: {e}")),
    };
    let v: Value = match serde_json::from_slice(&body) {
        Ok(v) => v,
        Err(e) => return error(StatusCode::BAD_REQUEST, "BadRequestError", &format!("body is not JSON: {e}")),
    };
    if let Ok(mut last) = shared.last_body.lock() {
        *last = Some(v.clone());
    }
    if let Ok(mut last) = shared.last_request_id.lock() {
        *last = Some(request_id.clone());
    }
    // vLLM's chat request fields for reasoning, checked as vLLM's request model types them.
    if chat {
        if let Some(effort) = v.get("reasoning_effort")
            && !matches!(effort.as_str(), Some("low" | "medium" | "high"))
        {
            return error(
                StatusCode::BAD_REQUEST,
                "BadRequestError",
                &format!("reasoning_effort must be low, medium or high, not {effort}"),
            );
        }
        if let Some(kwargs) = v.get("chat_template_kwargs")
            && !kwargs.is_object()
        {
            return error(
                StatusCode::BAD_REQUEST,
                "BadRequestError",
                &format!("chat_template_kwargs must be an object, not {kwargs}"),
            );
        }
    }
    let cfg = &shared.config;
    let model = v.get("model").and_then(Value::as_str).unwrap_or("");
    if !cfg.models.iter().any(|m| m == model) {
        return error(StatusCode::NOT_FOUND, "NotFoundError", &format!("The model `{model}` does not exist."));
    }
    let prompt = if chat {
        v.pointer("/messages/0/content").and_then(Value::as_str).unwrap_or("")
    } else {
        v.get("prompt").and_then(Value::as_str).unwrap_or("")
    };
    let d = Directives::parse(prompt);
    if let Some(status) = d.status {
        let s = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        return error(s, "MockError", &format!("mock status {status}"));
    }
    let max_tokens = v
        .get(if chat { "max_completion_tokens" } else { "max_tokens" })
        .or_else(|| v.get("max_tokens"))
        .and_then(Value::as_u64)
        .unwrap_or(16) as u32;
    let ignore_eos = v.get("ignore_eos").and_then(Value::as_bool).unwrap_or(false);
    let min_tokens = v.get("min_tokens").and_then(Value::as_u64).unwrap_or(0) as u32;
    if ignore_eos {
        shared.counters.ignore_eos_requests.fetch_add(1, Ordering::Relaxed);
    }
    let tokens = if ignore_eos { max_tokens } else { cfg.natural_tokens.max(min_tokens).min(max_tokens) };
    let finish = if tokens == max_tokens { "length" } else { "stop" };
    let include_usage = cfg.usage == UsageMode::AsRequested
        && v.pointer("/stream_options/include_usage").and_then(Value::as_bool).unwrap_or(false);
    let continuous =
        include_usage && v.pointer("/stream_options/continuous_usage_stats").and_then(Value::as_bool).unwrap_or(false);
    if continuous {
        shared.counters.continuous_usage_requests.fetch_add(1, Ordering::Relaxed);
    }
    // Whitespace-separated words stand for prompt tokens.
    let prompt_tokens = prompt.split_whitespace().count().max(1) as u32;
    if !v.get("stream").and_then(Value::as_bool).unwrap_or(false) {
        let text: String = (0..tokens).map(|i| format!(" t{i}")).collect();
        let choice = if chat {
            json!({"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": finish})
        } else {
            json!({"index": 0, "text": text, "finish_reason": finish})
        };
        let usage = json!({"prompt_tokens": prompt_tokens, "completion_tokens": tokens, "total_tokens": prompt_tokens + tokens});
        return whole(
            StatusCode::OK,
            "application/json",
            json!({"id": "mock", "model": model, "choices": [choice], "usage": usage}).to_string(),
        );
    }
    let (tx, rx) = mpsc::channel(64);
    let stream = Stream {
        shared: shared.clone(),
        tx,
        chat,
        model: model.to_string(),
        model_json: serde_json::to_string(model).unwrap_or_else(|_| "\"\"".into()),
        tokens,
        finish,
        prompt_tokens,
        include_usage,
        continuous,
        directives: d,
        request_id,
    };
    tokio::spawn(stream.run());
    let mut r = Response::new(ChannelBody(rx));
    r.headers_mut().insert(hyper::header::CONTENT_TYPE, hyper::header::HeaderValue::from_static("text/event-stream"));
    r
}

struct Stream {
    shared: Arc<Shared>,
    tx: mpsc::Sender<Result<Bytes, std::io::Error>>,
    chat: bool,
    model: String,
    /// The model name as a JSON string.
    model_json: String,
    tokens: u32,
    finish: &'static str,
    prompt_tokens: u32,
    include_usage: bool,
    continuous: bool,
    directives: Directives,
    request_id: String,
}

impl Stream {
    /// One chunk, formatted directly: building `Value` trees per token would make the mock,
    /// not the client under test, the bottleneck of the throughput benchmark.
    fn chunk(&self, text: &str, finish: Option<&str>, sent: u32) -> String {
        let finish = match finish {
            Some(f) => format!("\"{f}\""),
            None => "null".into(),
        };
        let text = serde_json::to_string(text).unwrap_or_else(|_| "\"\"".into());
        let choice = if self.chat {
            format!(r#"{{"index":0,"delta":{{"content":{text}}},"logprobs":null,"finish_reason":{finish}}}"#)
        } else {
            format!(r#"{{"index":0,"text":{text},"logprobs":null,"finish_reason":{finish}}}"#)
        };
        let object = if self.chat { "chat.completion.chunk" } else { "text_completion" };
        let usage = if self.continuous {
            format!(
                r#","usage":{{"prompt_tokens":{},"completion_tokens":{sent},"total_tokens":{}}}"#,
                self.prompt_tokens,
                self.prompt_tokens + sent
            )
        } else {
            String::new()
        };
        format!(
            "data: {{\"id\":\"cmpl-mock\",\"object\":\"{object}\",\"created\":0,\"model\":{},\"choices\":[{choice}]{usage}}}\n\n",
            self.model_json
        )
    }

    /// Sends one event (split into pieces when configured); false when the client went away.
    async fn send(&self, event: String) -> bool {
        let split = self.shared.config.split_bytes;
        if split == 0 {
            return self.tx.send(Ok(Bytes::from(event))).await.is_ok();
        }
        let bytes = Bytes::from(event);
        let mut at = 0;
        while at < bytes.len() {
            let end = (at + split).min(bytes.len());
            if self.tx.send(Ok(bytes.slice(at..end))).await.is_err() {
                return false;
            }
            at = end;
            // Let the piece reach the socket on its own.
            tokio::task::yield_now().await;
        }
        true
    }

    async fn run(self) {
        let cfg = &self.shared.config;
        let d = &self.directives;
        let wait = cfg.ttft + Duration::from_millis(d.stall_ms.unwrap_or(0));
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
        let mut times = ChunkTimes { request_id: self.request_id.clone(), chunks: Vec::new() };
        let per_chunk = cfg.tokens_per_chunk.max(1);
        // With no token delay the whole answer goes in one write, so the mock costs little
        // next to the client it is measuring.
        let mut batch = String::new();
        let mut sent = 0u32;
        let mut chunks = 0u32;
        let mut next_at = tokio::time::Instant::now();
        // vLLM's chat stream opens with a role-only chunk (no text, no token) when the first
        // token is ready; clients must not count it as a token.
        if self.chat {
            let usage = if self.continuous {
                format!(
                    r#","usage":{{"prompt_tokens":{},"completion_tokens":0,"total_tokens":{}}}"#,
                    self.prompt_tokens, self.prompt_tokens
                )
            } else {
                String::new()
            };
            batch.push_str(&format!(
                "data: {{\"id\":\"cmpl-mock\",\"object\":\"chat.completion.chunk\",\"created\":0,\"model\":{},\"choices\":[{{\"index\":0,\"delta\":{{\"role\":\"assistant\",\"content\":\"\"}},\"logprobs\":null,\"finish_reason\":null}}]{usage}}}\n\n",
                self.model_json
            ));
            if !(cfg.itl.is_zero() && cfg.split_bytes == 0) {
                self.flush(&mut batch).await;
            }
        }
        while sent < self.tokens {
            let n = per_chunk.min(self.tokens - sent);
            for (limit, what) in [(d.drop_after, 0), (d.error_after, 1), (d.malformed_after, 2), (d.truncate_after, 3)]
            {
                if limit.is_some_and(|l| sent >= l) {
                    self.flush(&mut batch).await;
                    match what {
                        0 => {
                            let _ = self.tx.send(Err(std::io::Error::other("mock drops the connection"))).await;
                        }
                        1 => {
                            let e = json!({"error": {"message": "mock error in stream", "type": "InternalServerError", "code": 500}});
                            let _ = self.send(format!("data: {e}\n\n")).await;
                        }
                        2 => {
                            let _ = self.send("data: {\"choices\": [{\"text\": \n\n".into()).await;
                        }
                        _ => {}
                    }
                    self.record(times);
                    return;
                }
            }
            if sent > 0 && !cfg.itl.is_zero() {
                next_at += cfg.itl * n;
                tokio::time::sleep_until(next_at).await;
            } else if sent == 0 {
                next_at = tokio::time::Instant::now();
            }
            let text: String = (sent..sent + n).map(|i| format!(" t{i}")).collect();
            sent += n;
            let finish = (sent == self.tokens).then_some(self.finish);
            let event = self.chunk(&text, finish, sent);
            chunks += 1;
            if cfg.record_timing {
                times.chunks.push((u64::try_from(cfg.origin.elapsed().as_nanos()).unwrap_or(u64::MAX), n));
            }
            if cfg.itl.is_zero() && cfg.split_bytes == 0 {
                batch.push_str(&event);
            } else if !self.send(event).await {
                self.record(times);
                return;
            }
            if cfg.keepalive_every > 0 && chunks.is_multiple_of(cfg.keepalive_every) {
                let ping = ": ping\n\n".to_string();
                if cfg.itl.is_zero() && cfg.split_bytes == 0 {
                    batch.push_str(&ping);
                } else if !self.send(ping).await {
                    self.record(times);
                    return;
                }
            }
        }
        if self.include_usage {
            let u = json!({"id": "cmpl-mock", "object": "text_completion", "created": 0, "model": self.model, "choices": [], "usage": {"prompt_tokens": self.prompt_tokens, "completion_tokens": sent, "total_tokens": self.prompt_tokens + sent}});
            batch.push_str(&format!("data: {u}\n\n"));
        }
        batch.push_str("data: [DONE]\n\n");
        self.flush(&mut batch).await;
        self.shared.counters.streams_completed.fetch_add(1, Ordering::Relaxed);
        self.record(times);
    }

    async fn flush(&self, batch: &mut String) {
        if !batch.is_empty() {
            let b = std::mem::take(batch);
            let _ = self.send(b).await;
        }
    }

    fn record(&self, times: ChunkTimes) {
        if self.shared.config.record_timing
            && let Ok(mut t) = self.shared.timing.lock()
        {
            t.push(times);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_valid_openai_json() {
        let (tx, _rx) = mpsc::channel(1);
        let shared = Arc::new(Shared {
            config: MockConfig::default(),
            counters: Counters::default(),
            timing: Mutex::new(Vec::new()),
            last_body: Mutex::new(None),
            last_request_id: Mutex::new(None),
        });
        for chat in [false, true] {
            let s = Stream {
                shared: shared.clone(),
                tx: tx.clone(),
                chat,
                model: "m/x".into(),
                model_json: "\"m/x\"".into(),
                tokens: 2,
                finish: "length",
                prompt_tokens: 3,
                include_usage: true,
                continuous: true,
                directives: Directives::default(),
                request_id: String::new(),
            };
            let event = s.chunk(" a\"b", Some("length"), 2);
            let v: Value = serde_json::from_str(
                event.strip_prefix("data: ").and_then(|e| e.strip_suffix("\n\n")).expect("framed"),
            )
            .expect("json");
            let text = if chat { &v["choices"][0]["delta"]["content"] } else { &v["choices"][0]["text"] };
            assert_eq!(text, " a\"b");
            assert_eq!(
                (
                    v["choices"][0]["finish_reason"].as_str(),
                    v["usage"]["completion_tokens"].as_u64(),
                    v["model"].as_str()
                ),
                (Some("length"), Some(2), Some("m/x"))
            );
        }
    }

    #[test]
    fn directives_are_read_from_the_prompt() {
        let d = Directives::parse(
            "hello [mock:status=503] and [mock:drop_after=3][mock:stall_ms=20] [mock:bogus=1] [mock:unclosed",
        );
        assert_eq!(d.status, Some(503));
        assert_eq!(d.drop_after, Some(3));
        assert_eq!(d.stall_ms, Some(20));
        assert_eq!(d.error_after, None);
        assert_eq!(Directives::parse("plain"), Directives::default());
    }
}
