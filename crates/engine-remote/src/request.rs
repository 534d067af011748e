//! One streamed request: its body, its timing and its failure, by kind. Never retried: a
//! retry would run the generation again and the energy of both would land on one record.
//!
//! Timing follows `vllm bench serve`: TTFT is the time to the first chunk with a choice; each
//! later chunk adds its gap to ITL, and a chunk that carries k tokens (by continuous usage)
//! adds k−1 zeros after it (ML.ENERGY's rule); E2E ends at the last chunk with a choice, so a
//! trailing usage-only chunk or `[DONE]` does not move it.

use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::StreamExt;
use serde_json::{Value, json};
use tokio::sync::watch;

use super::Api;
use super::sse::{self, Chunk};
use energy_star_engine::GenerationParams;

pub use energy_star_engine::{Failure, FailureKind, RequestOutcome, TokenCountSource as TokenSource};

/// A version-4-shaped UUID (RFC 9562 layout: version nibble 4, variant `10`) made from the
/// run's seed and the prompt's index with SplitMix64, so the same run sends the same ids.
/// Servers built on starlette-context (llama-cpp-python's, among others) refuse an
/// `X-Request-Id` that is not a UUID with HTTP 400; vLLM accepts any string.
pub fn request_uuid(seed: u64, index: u32) -> String {
    fn splitmix(mut z: u64) -> u64 {
        z = z.wrapping_add(0x9e37_79b9_7f4a_7c15);
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    let hi = splitmix(seed ^ splitmix(u64::from(index)));
    let lo = splitmix(hi ^ u64::from(index).rotate_left(32));
    let hi = (hi & !0xf000) | 0x4000; // version 4 in bits 12..16 of the third group
    let lo = (lo & !(0b11 << 62)) | (0b10 << 62); // variant 10
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

/// Body fields the host sets itself; extra fields may not replace them.
pub const HOST_BODY_FIELDS: &[&str] = &[
    "model",
    "prompt",
    "messages",
    "stream",
    "stream_options",
    "max_tokens",
    "max_completion_tokens",
    "min_tokens",
    "ignore_eos",
    "temperature",
    "top_p",
    "seed",
];

/// How every request's body is built, beyond the prompt and the generation parameters.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct BodyOptions {
    /// Ask for usage in the stream (`stream_options`); servers that refuse it run without.
    pub stream_usage: bool,
    /// Fields merged into every body (`reasoning_effort`, `chat_template_kwargs`, ...); none
    /// of [`HOST_BODY_FIELDS`].
    pub extra: serde_json::Map<String, Value>,
}

/// The JSON body for one prompt.
pub fn body(api: Api, model: &str, prompt: &str, p: &GenerationParams, options: &BodyOptions) -> Value {
    let mut b = match api {
        Api::Completions => json!({"model": model, "prompt": prompt, "max_tokens": p.max_new_tokens}),
        Api::ChatCompletions => {
            json!({"model": model, "messages": [{"role": "user", "content": prompt}], "max_completion_tokens": p.max_new_tokens})
        }
    };
    b["stream"] = json!(true);
    if options.stream_usage {
        b["stream_options"] = json!({"include_usage": true, "continuous_usage_stats": true});
    }
    if p.do_sample {
        b["temperature"] = json!(p.temperature);
        b["top_p"] = json!(p.top_p);
    } else {
        b["temperature"] = json!(0.0);
    }
    if let Some(seed) = p.seed.filter(|_| p.do_sample) {
        b["seed"] = json!(seed);
    }
    // vLLM's extensions for fixed-length runs; sent only when asked, since strict servers
    // refuse fields they do not know.
    if p.ignore_eos {
        b["ignore_eos"] = json!(true);
    }
    if p.min_new_tokens > 0 {
        b["min_tokens"] = json!(p.min_new_tokens);
    }
    for (k, v) in &options.extra {
        b[k] = v.clone();
    }
    b
}

pub fn excerpt(text: &str) -> String {
    let t = text.trim();
    // An OpenAI error body says it best.
    if let Ok(v) = serde_json::from_str::<Value>(t)
        && let Some(m) = v.pointer("/error/message").or_else(|| v.get("message")).and_then(Value::as_str)
    {
        return m.to_string();
    }
    let cut: String = t.chars().take(300).collect();
    if cut.len() < t.len() { format!("{cut}…") } else { cut }
}

pub fn describe_reqwest(e: &reqwest::Error) -> String {
    use std::error::Error;
    // reqwest's own text is "error sending request"; the cause says what happened.
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        msg = format!("{msg}: {s}");
        src = s.source();
    }
    msg
}

fn since(origin: Instant) -> u64 {
    energy_star_types::ns_since(origin, Instant::now())
}

/// Tokens of `text` by a local tokenizer, when there is one.
pub fn count_tokens(tokenizer: Option<&tokenizers::Tokenizer>, text: &str, add_special_tokens: bool) -> Option<u32> {
    tokenizer?.encode(text, add_special_tokens).ok().map(|e| e.get_ids().len() as u32)
}

/// What a request task needs of the engine, shared between tasks.
#[derive(Clone)]
pub struct Sender {
    pub client: reqwest::Client,
    pub api_key: Option<String>,
    pub request_timeout: Duration,
    /// The seed request ids are made from.
    pub id_seed: u64,
}

impl Sender {
    /// Sends one request and follows its stream. `abort` turning true stops it at once,
    /// recorded as cancelled with what arrived so far.
    pub async fn send(
        &self,
        url: &str,
        index: u32,
        body: Bytes,
        origin: Instant,
        scheduled_ns: u64,
        abort: watch::Receiver<bool>,
    ) -> RequestOutcome {
        send(self, url, index, body, origin, scheduled_ns, abort).await
    }
}

/// The HTTP client as the dispatcher's transport: every request to one URL.
pub struct HttpTransport {
    pub sender: Sender,
    pub url: String,
}

impl crate::load::Transport for HttpTransport {
    fn send(
        &self,
        index: u32,
        body: Bytes,
        origin: Instant,
        scheduled_ns: u64,
        abort: watch::Receiver<bool>,
    ) -> impl std::future::Future<Output = RequestOutcome> + Send {
        self.sender.send(&self.url, index, body, origin, scheduled_ns, abort)
    }
}

async fn send(
    engine: &Sender,
    url: &str,
    index: u32,
    body: Bytes,
    origin: Instant,
    scheduled_ns: u64,
    mut abort: watch::Receiver<bool>,
) -> RequestOutcome {
    let request_id = request_uuid(engine.id_seed, index);
    let start = Instant::now();
    let start_ns = since(origin);
    let deadline = tokio::time::Instant::from_std(start + engine.request_timeout);
    let mut rec = RequestOutcome {
        request_id: Some(request_id.clone()),
        scheduled_ns: Some(scheduled_ns),
        start_ns,
        ..RequestOutcome::new(index, TokenSource::StreamChunks)
    };
    let fail = |rec: &mut RequestOutcome, kind: FailureKind, message: String, status: Option<u16>| {
        rec.e2e_ns = since(origin).saturating_sub(start_ns);
        rec.failure = Some(Failure { kind, message, http_status: status });
    };
    let timeout_msg =
        || format!("no complete answer within the request timeout of {:.1} s", engine.request_timeout.as_secs_f64());
    let mut req = engine
        .client
        .post(url)
        .header("content-type", "application/json")
        .header("x-request-id", &request_id)
        .body(body);
    if let Some(k) = &engine.api_key {
        req = req.bearer_auth(k);
    }
    let resp = tokio::select! {
        r = tokio::time::timeout_at(deadline, req.send()) => r,
        _ = abort.wait_for(|a| *a) => {
            fail(&mut rec, FailureKind::Cancelled, "stopped before the server answered".into(), None);
            return rec;
        }
    };
    let resp = match resp {
        Err(_) => {
            fail(&mut rec, FailureKind::Timeout, timeout_msg(), None);
            return rec;
        }
        Ok(Err(e)) => {
            let kind = if e.is_timeout() { FailureKind::Timeout } else { FailureKind::Connect };
            fail(&mut rec, kind, describe_reqwest(&e), None);
            return rec;
        }
        Ok(Ok(r)) => r,
    };
    let status = resp.status();
    if !status.is_success() {
        let text = tokio::time::timeout_at(deadline, resp.text()).await.ok().and_then(Result::ok).unwrap_or_default();
        let kind = if status.is_client_error() { FailureKind::HttpClientError } else { FailureKind::HttpServerError };
        fail(&mut rec, kind, format!("HTTP {status}: {}", excerpt(&text)), Some(status.as_u16()));
        return rec;
    }
    // A server that ignores `stream: true` answers with one JSON body: not a stream to time.
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_ascii_lowercase();
    if !content_type.is_empty() && !content_type.contains("event-stream") {
        let text = tokio::time::timeout_at(deadline, resp.text()).await.ok().and_then(Result::ok).unwrap_or_default();
        fail(
            &mut rec,
            FailureKind::MalformedStream,
            format!(
                "the server answered {content_type}, not an event stream (does it ignore `stream: true`?): {}",
                excerpt(&text)
            ),
            None,
        );
        return rec;
    }
    let mut stream = resp.bytes_stream();
    let mut parser = sse::Parser::new();
    let mut last_token_ns: Option<u64> = None;
    let mut usage: Option<sse::Usage> = None;
    let mut counted_tokens: u64 = 0;
    let mut chunks: u64 = 0;
    // Chunks that carried text (a chat stream's first, role-only chunk carries none).
    let mut text_chunks: u64 = 0;
    // Usage on every choice chunk so far (continuous usage): only then does a usage jump mean
    // a chunk of several tokens.
    let mut usage_on_every_chunk = true;
    let mut done = false;
    let mut ended: Option<(FailureKind, String)> = None;
    'read: loop {
        let next = tokio::select! {
            n = tokio::time::timeout_at(deadline, stream.next()) => n,
            _ = abort.wait_for(|a| *a) => {
                ended = Some((FailureKind::Cancelled, format!("stopped by the user after {chunks} chunks")));
                break 'read;
            }
        };
        // Stamped as the bytes arrive, before any parsing.
        let now = since(origin);
        let (events, finished) = match next {
            Err(_) => {
                ended = Some((FailureKind::Timeout, timeout_msg()));
                break;
            }
            Ok(None) => (parser.finish().into_iter().collect::<Vec<_>>(), true),
            Ok(Some(Err(e))) => {
                // After a finish reason the answer is whole; only the closing lines are lost.
                if rec.finish_reason.is_none() {
                    ended = Some((
                        FailureKind::TruncatedStream,
                        format!("the stream broke off after {chunks} chunks: {}", describe_reqwest(&e)),
                    ));
                }
                break;
            }
            Ok(Some(Ok(bytes))) => (parser.feed(&bytes), false),
        };
        // All events of one read arrived together: one timestamp for them.
        for ev in events {
            match sse::interpret(&ev.data) {
                Chunk::Done => {
                    done = true;
                    break 'read;
                }
                Chunk::Text { text, finish_reason, usage: u } => {
                    chunks += 1;
                    match last_token_ns {
                        None => rec.ttft_ns = Some(now.saturating_sub(start_ns)),
                        Some(prev) => rec.itl_ns.push(now.saturating_sub(prev)),
                    }
                    match u {
                        Some(u) => {
                            if usage_on_every_chunk {
                                // A chunk of k tokens adds k−1 zero gaps (bounded: a server's
                                // absurd count must not exhaust memory).
                                let k = u.completion_tokens.saturating_sub(counted_tokens).min(1 << 16);
                                for _ in 1..k.max(1) {
                                    rec.itl_ns.push(0);
                                }
                            }
                            counted_tokens = counted_tokens.max(u.completion_tokens);
                            usage = Some(u);
                        }
                        None => usage_on_every_chunk = false,
                    }
                    if !text.is_empty() {
                        text_chunks += 1;
                    }
                    last_token_ns = Some(now);
                    rec.text.push_str(&text);
                    if let Some(f) = finish_reason {
                        rec.finish_reason = Some(f.into_owned());
                    }
                }
                Chunk::UsageOnly(u) => usage = Some(u),
                Chunk::Error(m) => {
                    ended =
                        Some((FailureKind::StreamError, format!("the server reported an error in the stream: {m}")));
                    break 'read;
                }
                Chunk::Malformed(m) => {
                    ended = Some((FailureKind::MalformedStream, m));
                    break 'read;
                }
            }
        }
        if finished {
            break;
        }
    }
    rec.e2e_ns = last_token_ns.unwrap_or_else(|| since(origin)).saturating_sub(start_ns);
    // Token counts: the server's usage, else the local tokenizer, else chunks.
    match usage {
        Some(u) => {
            rec.token_source = TokenSource::ServerUsage;
            rec.input_tokens = u32::try_from(u.prompt_tokens).unwrap_or(u32::MAX);
            rec.output_tokens = u32::try_from(u.completion_tokens).unwrap_or(u32::MAX);
        }
        // Counted from the text later (a local tokenizer, after the load): encoding here
        // would hold up every other stream's timestamps on this one thread.
        None => {
            rec.token_source = TokenSource::StreamChunks;
            rec.output_tokens = u32::try_from(text_chunks).unwrap_or(u32::MAX);
        }
    }
    if let Some((kind, message)) = ended {
        rec.failure = Some(Failure { kind, message, http_status: None });
    } else if !done && rec.finish_reason.is_none() {
        rec.failure = Some(Failure {
            kind: FailureKind::TruncatedStream,
            message: format!("the stream ended after {chunks} chunks without [DONE] or a finish reason"),
            http_status: None,
        });
    } else if text_chunks == 0 && counted_tokens == 0 {
        rec.failure = Some(Failure {
            kind: FailureKind::EmptyResponse,
            message: "the stream ended without generating anything".into(),
            http_status: None,
        });
    }
    rec
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_uuids_fixed_by_seed_and_index() {
        let id = request_uuid(42, 7);
        assert_eq!(id, request_uuid(42, 7), "the same run sends the same ids");
        assert_ne!(id, request_uuid(42, 8));
        assert_ne!(id, request_uuid(43, 7));
        let parts: Vec<&str> = id.split('-').collect();
        assert_eq!(parts.iter().map(|p| p.len()).collect::<Vec<_>>(), [8, 4, 4, 4, 12], "{id}");
        assert!(id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()));
        assert!(parts[2].starts_with('4'), "version 4: {id}");
        assert!(matches!(parts[3].as_bytes()[0], b'8' | b'9' | b'a' | b'b'), "variant 10: {id}");
        let mut seen = std::collections::HashSet::new();
        assert!((0..10_000).all(|i| seen.insert(request_uuid(1, i))), "no collisions over a run");
    }

    #[test]
    fn bodies_carry_usage_only_when_asked_and_the_extra_fields() {
        let p = GenerationParams { max_new_tokens: 5, ..Default::default() };
        let plain = body(Api::ChatCompletions, "m", "hi", &p, &BodyOptions::default());
        assert!(plain.get("stream_options").is_none() && plain["stream"] == json!(true));
        let mut extra = serde_json::Map::new();
        extra.insert("reasoning_effort".into(), json!("high"));
        extra.insert("chat_template_kwargs".into(), json!({"enable_thinking": true}));
        let b = body(Api::ChatCompletions, "m", "hi", &p, &BodyOptions { stream_usage: true, extra });
        assert_eq!(b["stream_options"]["include_usage"], json!(true));
        assert_eq!(
            (b["reasoning_effort"].clone(), b["chat_template_kwargs"]["enable_thinking"].clone()),
            (json!("high"), json!(true))
        );
    }
}
