//! What every inference engine shares: how to generate, what a batch's outcome holds (with the
//! host's timings), and the errors. The engines are their own crates, named by source:
//! `energy-star-engine-local` (candle on this machine) and `energy-star-engine-remote`
//! (OpenAI-compatible servers).
//!
//! Timings are the host's: a backend never times inference itself, so plugin overhead cannot
//! leak into latency figures.

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
            seed: None,
            truncate: false,
        }
    }
}

/// One request's outcome within a batch.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct RequestOutcome {
    /// Prompt tokens after truncation.
    pub input_ids: Vec<u32>,
    pub output_ids: Vec<u32>,
    pub text: String,
    /// Time to first token, ns (the batch's prefill).
    pub ttft_ns: u64,
    /// Until this request's last token, ns.
    pub e2e_ns: u64,
    /// Time of each later token, ns.
    pub itl_ns: Vec<u64>,
    /// Whether the prompt was cut to fit the context.
    pub truncated: bool,
}

/// A batch's outcome.
#[derive(Debug, Clone, PartialEq, Default)]
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
