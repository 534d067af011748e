//! Server-sent events as OpenAI-compatible servers really send them, parsed incrementally:
//! events split across reads (even inside a UTF-8 character or between `\r` and `\n`), `:`
//! keep-alive comments, multi-line `data`, a last event without its blank line, then each
//! event's data read as a completion chunk: text, a usage-only chunk, `[DONE]`, or an error.

use std::borrow::Cow;

use serde::Deserialize;
use serde_json::Value;

/// One dispatched event.
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The `event:` field, when the server sent one.
    pub event: Option<String>,
    /// The `data:` lines joined with `\n`.
    pub data: String,
}

/// An incremental SSE parser: feed it bytes as they arrive.
#[derive(Debug, Default)]
pub struct Parser {
    line: Vec<u8>,
    data: Option<String>,
    event: Option<String>,
    /// The last byte fed was `\r`: a following `\n` belongs to the same line end.
    after_cr: bool,
    /// `:` comment lines seen (keep-alives), for diagnostics.
    pub comments: u64,
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds bytes; returns the events completed by them.
    pub fn feed(&mut self, bytes: &[u8]) -> Vec<Event> {
        let mut out = Vec::new();
        for &b in bytes {
            match b {
                b'\n' if self.after_cr => self.after_cr = false,
                b'\n' | b'\r' => {
                    self.after_cr = b == b'\r';
                    let line = std::mem::take(&mut self.line);
                    if let Some(e) = self.line_done(&line) {
                        out.push(e);
                    }
                }
                _ => {
                    self.after_cr = false;
                    self.line.push(b);
                }
            }
        }
        out
    }

    /// The stream ended: an event still open (no blank line after it) is dispatched.
    pub fn finish(&mut self) -> Option<Event> {
        let line = std::mem::take(&mut self.line);
        let from_line = if line.is_empty() { None } else { self.line_done(&line) };
        from_line.or_else(|| self.dispatch())
    }

    fn dispatch(&mut self) -> Option<Event> {
        let event = self.event.take();
        self.data.take().map(|data| Event { event, data })
    }

    fn line_done(&mut self, raw: &[u8]) -> Option<Event> {
        if raw.is_empty() {
            return self.dispatch();
        }
        // Lines are split on bytes that never occur inside a UTF-8 sequence, so a complete line
        // is complete UTF-8 unless the server sent invalid text.
        let line = String::from_utf8_lossy(raw);
        if line.starts_with(':') {
            self.comments += 1;
            return None;
        }
        let (field, value) = match line.split_once(':') {
            Some((f, v)) => (f, v.strip_prefix(' ').unwrap_or(v)),
            None => (line.as_ref(), ""),
        };
        match field {
            "data" => match &mut self.data {
                Some(d) => {
                    d.push('\n');
                    d.push_str(value);
                }
                None => self.data = Some(value.to_string()),
            },
            "event" => self.event = Some(value.to_string()),
            _ => {} // id, retry and unknown fields do not matter for one-shot requests
        }
        None
    }
}

/// What one event's data says; text borrows from the event's data when it can.
#[derive(Debug, Clone, PartialEq)]
pub enum Chunk<'a> {
    /// `[DONE]`: the stream is over.
    Done,
    /// Generated text (completions `text` or chat `delta.content`; may be empty, e.g. a role
    /// chunk), with the finish reason when the choice ended, and usage when attached.
    Text { text: Cow<'a, str>, finish_reason: Option<Cow<'a, str>>, usage: Option<Usage> },
    /// A chunk with usage and no choices (`stream_options.include_usage`).
    UsageOnly(Usage),
    /// The server reported an error inside the stream.
    Error(String),
    /// Not JSON, or JSON of no known shape.
    Malformed(String),
}

/// Token counts as the server reports them.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Usage {
    pub prompt_tokens: u64,
    pub completion_tokens: u64,
}

// Typed and borrowing: the client parses one of these per token at thousands of requests per
// second, so no `Value` trees on the hot path. Unknown fields are ignored, as servers add them.
#[derive(Deserialize)]
struct RawChunk<'a> {
    #[serde(borrow, default)]
    choices: Option<Vec<RawChoice<'a>>>,
    #[serde(default)]
    usage: Option<RawUsage>,
    #[serde(default)]
    error: Option<Value>,
    #[serde(borrow, default)]
    object: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    message: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawChoice<'a> {
    #[serde(borrow, default)]
    text: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    delta: Option<RawDelta<'a>>,
    #[serde(borrow, default)]
    finish_reason: Option<Cow<'a, str>>,
}

/// Chat deltas: reasoning models (gpt-oss on vLLM) stream `reasoning_content` (or
/// `reasoning`) before `content`; those are generated tokens too.
#[derive(Deserialize)]
struct RawDelta<'a> {
    #[serde(borrow, default)]
    content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning_content: Option<Cow<'a, str>>,
    #[serde(borrow, default)]
    reasoning: Option<Cow<'a, str>>,
}

#[derive(Deserialize)]
struct RawUsage {
    #[serde(default)]
    prompt_tokens: Option<u64>,
    #[serde(default)]
    completion_tokens: Option<u64>,
}

impl RawUsage {
    fn usage(&self) -> Option<Usage> {
        Some(Usage { prompt_tokens: self.prompt_tokens.unwrap_or(0), completion_tokens: self.completion_tokens? })
    }
}

/// Reads one event's data as an OpenAI completion or chat-completion chunk.
pub fn interpret(data: &str) -> Chunk<'_> {
    let data = data.trim();
    if data == "[DONE]" {
        return Chunk::Done;
    }
    let c: RawChunk = match serde_json::from_str(data) {
        Ok(c) => c,
        Err(e) => {
            return Chunk::Malformed(format!("not a JSON chunk ({e}): {}", data.chars().take(120).collect::<String>()));
        }
    };
    if let Some(err) = c.error.filter(|e| !e.is_null()) {
        let msg = err.get("message").and_then(Value::as_str).map(str::to_string).unwrap_or_else(|| err.to_string());
        return Chunk::Error(msg);
    }
    if c.object.as_deref() == Some("error") {
        return Chunk::Error(c.message.map(Cow::into_owned).unwrap_or_else(|| "error".into()));
    }
    let usage = c.usage.as_ref().and_then(RawUsage::usage);
    match c.choices {
        Some(choices) if choices.is_empty() => match usage {
            Some(u) => Chunk::UsageOnly(u),
            None => Chunk::Malformed("a chunk with no choices and no usage".into()),
        },
        Some(mut choices) => {
            let first = choices.swap_remove(0);
            let text = first
                .text
                .or_else(|| {
                    first
                        .delta
                        .and_then(|d| d.content.filter(|c| !c.is_empty()).or(d.reasoning_content).or(d.reasoning))
                })
                .unwrap_or_default();
            Chunk::Text { text, finish_reason: first.finish_reason, usage }
        }
        None => match usage {
            // Some servers send the final usage without a `choices` key at all.
            Some(u) => Chunk::UsageOnly(u),
            None => Chunk::Malformed("a chunk without `choices`".into()),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(chunks: &[&[u8]]) -> (Vec<Event>, Parser) {
        let mut p = Parser::new();
        let mut out = Vec::new();
        for c in chunks {
            out.extend(p.feed(c));
        }
        out.extend(p.finish());
        (out, p)
    }

    #[test]
    fn events_split_anywhere_give_the_same_result() {
        let stream = "data: {\"choices\":[{\"text\":\"héllo\"}]}\r\n\r\n: ping\n\ndata: a\ndata: b\n\nevent: x\ndata: [DONE]\n\n";
        let whole = all(&[stream.as_bytes()]).0;
        assert_eq!(whole.len(), 3);
        assert_eq!(whole[1].data, "a\nb");
        assert_eq!(whole[2].event.as_deref(), Some("x"));
        // Every split point, including inside "é" and between \r and \n.
        let bytes = stream.as_bytes();
        for cut in 0..bytes.len() {
            let (events, p) = all(&[&bytes[..cut], &bytes[cut..]]);
            assert_eq!(events, whole, "split at byte {cut}");
            assert_eq!(p.comments, 1);
        }
        // Byte by byte.
        let bytes_one: Vec<&[u8]> = bytes.chunks(1).collect();
        assert_eq!(all(&bytes_one).0, whole);
    }

    #[test]
    fn a_last_event_without_its_blank_line_is_kept() {
        let (events, _) = all(&[b"data: {\"choices\":[]}\n\ndata: [DONE]"]);
        assert_eq!(events.len(), 2);
        assert_eq!(interpret(&events[1].data), Chunk::Done);
    }

    #[test]
    fn chunks_of_every_shape() {
        assert_eq!(
            interpret(r#"{"choices":[{"index":0,"text":" world","finish_reason":null}]}"#),
            Chunk::Text { text: " world".into(), finish_reason: None, usage: None }
        );
        assert_eq!(
            interpret(
                r#"{"choices":[{"delta":{"content":"Hi"},"finish_reason":"length"}],"usage":{"prompt_tokens":5,"completion_tokens":1}}"#
            ),
            Chunk::Text {
                text: "Hi".into(),
                finish_reason: Some("length".into()),
                usage: Some(Usage { prompt_tokens: 5, completion_tokens: 1 })
            }
        );
        assert_eq!(
            interpret(r#"{"choices":[{"delta":{"role":"assistant"}}]}"#),
            Chunk::Text { text: "".into(), finish_reason: None, usage: None }
        );
        assert_eq!(
            interpret(
                r#"{"id":"x","choices":[],"usage":{"prompt_tokens":12,"completion_tokens":64,"total_tokens":76}}"#
            ),
            Chunk::UsageOnly(Usage { prompt_tokens: 12, completion_tokens: 64 })
        );
        assert_eq!(
            interpret(r#"{"error":{"message":"model overloaded","code":503}}"#),
            Chunk::Error("model overloaded".into())
        );
        assert_eq!(interpret(r#"{"object":"error","message":"bad request"}"#), Chunk::Error("bad request".into()));
        assert!(matches!(interpret("{\"choices\": [{\"text\": \"cut"), Chunk::Malformed(_)));
        assert!(matches!(interpret(r#"{"foo": 1}"#), Chunk::Malformed(_)));
        assert_eq!(
            interpret(r#"{"usage":{"prompt_tokens":1,"completion_tokens":2}}"#),
            Chunk::UsageOnly(Usage { prompt_tokens: 1, completion_tokens: 2 })
        );
        assert_eq!(interpret(" [DONE] "), Chunk::Done);
        // Reasoning deltas are generated text; an `error: null` is no error.
        assert_eq!(
            interpret(r#"{"choices":[{"delta":{"content":null,"reasoning_content":"think"}}],"error":null}"#),
            Chunk::Text { text: "think".into(), finish_reason: None, usage: None }
        );
        // Escapes are decoded.
        assert_eq!(
            interpret(r#"{"choices":[{"text":"a\"b\u00e9"}]}"#),
            Chunk::Text { text: "a\"bé".into(), finish_reason: None, usage: None }
        );
    }
}
