//! What every inference engine shares: how to generate, what a batch's outcome holds (with the
//! host's timings), and the errors. The engines are their own crates, named by source:
//! `energy-star-engine-local` (candle on this machine) and `energy-star-engine-remote`
//! (OpenAI-compatible servers).
//!
//! Timings are the host's: a backend never times inference itself, so plugin overhead cannot
//! leak into latency figures.

pub use energy_star_types::{FailureKind, TokenCountSource};
use thiserror::Error;

/// How to generate.
#[derive(Debug, Clone, PartialEq)]
pub struct GenerationParams {
    pub max_new_tokens: u32,
    /// EOS is suppressed until this many tokens exist (transformers' `min_new_tokens`).
    pub min_new_tokens: u32,
    /// Generate `max_new_tokens` whatever the model emits (EOS is an ordinary token).
    pub ignore_eos: bool,
    /// Greedy when false.
    pub do_sample: bool,
    pub temperature: f32,
    pub top_p: f32,
    /// Sample among the k most probable tokens only (transformers' `top_k`, applied after the
    /// temperature and before top-p); none keeps all.
    pub top_k: Option<u32>,
    pub seed: Option<u64>,
    /// Truncate prompts that do not fit the context (keeping their beginning) instead of failing.
    pub truncate: bool,
}

impl Default for GenerationParams {
    fn default() -> Self {
        Self {
            max_new_tokens: 32,
            min_new_tokens: 0,
            ignore_eos: false,
            do_sample: false,
            temperature: 1.0,
            top_p: 1.0,
            top_k: None,
            seed: None,
            truncate: false,
        }
    }
}

/// One request, as an engine ran it: the one record of a request on the host side, for local
/// batches and remote loads alike. Times are ns: since the batch started (local) or since the
/// load's clock origin (remote).
#[derive(Debug, Clone, PartialEq)]
pub struct RequestOutcome {
    /// Index of the prompt in the list given.
    pub index: u32,
    /// The id sent as `X-Request-Id`; none for local engines.
    pub request_id: Option<String>,
    /// When the load's schedule meant to send it; none where nothing is scheduled (local).
    pub scheduled_ns: Option<u64>,
    /// When it started (was sent).
    pub start_ns: u64,
    /// Time to first token (a local batch's prefill); none when no token came.
    pub ttft_ns: Option<u64>,
    /// To the last token (or to the failure).
    pub e2e_ns: u64,
    /// The gaps between later tokens (chunks).
    pub itl_ns: Vec<u64>,
    pub input_tokens: u32,
    pub output_tokens: u32,
    pub token_source: TokenCountSource,
    /// Prompt tokens after truncation, and the generated ones, when the engine has them (local).
    pub input_ids: Vec<u32>,
    pub output_ids: Vec<u32>,
    pub text: String,
    /// Why generation stopped, as the engine or server says it ("stop", "length").
    pub finish_reason: Option<String>,
    pub failure: Option<Failure>,
    /// Whether the prompt was cut to fit the context.
    pub truncated: bool,
}

impl RequestOutcome {
    /// A request that has not run yet, at `index`.
    pub fn new(index: u32, token_source: TokenCountSource) -> Self {
        Self {
            index,
            request_id: None,
            scheduled_ns: None,
            start_ns: 0,
            ttft_ns: None,
            e2e_ns: 0,
            itl_ns: Vec::new(),
            input_tokens: 0,
            output_tokens: 0,
            token_source,
            input_ids: Vec::new(),
            output_ids: Vec::new(),
            text: String::new(),
            finish_reason: None,
            failure: None,
            truncated: false,
        }
    }

    /// Client queue time: waiting for a concurrency slot after the scheduled time; none where
    /// nothing was scheduled.
    pub fn queue_ns(&self) -> Option<u64> {
        self.scheduled_ns.map(|s| self.start_ns.saturating_sub(s))
    }
}

/// Why a request failed, by kind, with the server's words.
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    pub kind: FailureKind,
    pub message: String,
    pub http_status: Option<u16>,
}

/// A batch's outcome.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchOutcome {
    /// The prompt pass (all prompts together, with the first token's sampling), ns.
    pub prefill_ns: u64,
    /// Each later step, ns.
    pub decode_step_ns: Vec<u64>,
    pub requests: Vec<RequestOutcome>,
    /// Padded prompt length of the batch.
    pub padded_len: usize,
}

#[derive(Debug, Error)]
pub enum InferenceError {
    #[error("model {model}: {why}")]
    Model { model: String, why: String },
    #[error("tokenizer of {model}: {why}")]
    Tokenizer { model: String, why: String },
    #[error("device {device:?}: {why}")]
    Device { device: String, why: String },
    #[error("{0}")]
    Invalid(String),
    #[error("inference failed: {0}")]
    Compute(String),
    /// A remote server could not be reached or does not serve the model.
    #[error("{0}")]
    Unreachable(String),
}
