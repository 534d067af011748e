//! `energy-star generate`: run a model on prompts, to check it before a long run.

use std::path::Path;
use std::process::ExitCode;

use energy_star_engine::GenerationParams;
use energy_star_engine_local::{CandleEngine, LocalSpec};

use crate::cli::GenerateArgs;

pub fn command(args: &GenerateArgs) -> anyhow::Result<ExitCode> {
    if args.batch_size == 0 {
        anyhow::bail!("--batch-size must be at least 1");
    }
    let inputs: Vec<Input> = match (&args.prompt, &args.prompts_file) {
        (Some(p), _) => vec![Input::Prompt(p.clone())],
        (None, Some(file)) => read_inputs(file, args.chat)?,
        (None, None) => anyhow::bail!("give --prompt or --prompts-file"),
    };
    let kwargs = template_kwargs(&args.template_kwargs)?;
    let spec = LocalSpec {
        model: args.model.clone(),
        device: args.device.clone(),
        dtype: args.dtype.clone(),
        processor: None,
    };
    let env = |k: &str| std::env::var(k).ok();
    crate::fetch::source(crate::fetch::Wanted::Model, &spec.model, &env)?;
    let engine = CandleEngine::open(&spec, &env)?;
    let params = GenerationParams {
        max_new_tokens: args.max_new_tokens,
        min_new_tokens: 0,
        ignore_eos: args.ignore_eos,
        do_sample: args.sample,
        temperature: args.temperature,
        top_p: args.top_p,
        top_k: args.top_k,
        seed: args.seed,
        truncate: args.truncate,
    };
    let now = energy_star_engine_local::chat::template_now(&env).map_err(anyhow::Error::msg)?;
    // Each input as the engine sees it: its label (for sampling seeds and output) and token ids.
    let mut encoded: Vec<(String, Vec<u32>)> = Vec::with_capacity(inputs.len());
    let mut warned: Vec<String> = Vec::new();
    for input in &inputs {
        let ids = match (input, args.chat) {
            (Input::Prompt(p), false) => engine.encode(p, true)?,
            (Input::Messages(_), false) => anyhow::bail!("`messages` needs --chat"),
            (_, true) => {
                let chat = engine.apply_chat_template(&input.messages(), &kwargs, now)?;
                for k in chat.unused_kwargs {
                    if !warned.contains(&k) {
                        eprintln!(
                            "warning: the chat template ({}) never reads --template-kwarg {k}",
                            chat.template_origin
                        );
                        warned.push(k);
                    }
                }
                chat.input_ids
            }
        };
        encoded.push((input.label(), ids));
    }
    let mut tokens = 0usize;
    let started = std::time::Instant::now();
    for (chunk, inputs) in encoded.chunks(args.batch_size).zip(inputs.chunks(args.batch_size)) {
        let labels: Vec<String> = chunk.iter().map(|(l, _)| l.clone()).collect();
        let ids: Vec<Vec<u32>> = chunk.iter().map(|(_, ids)| ids.clone()).collect();
        let out = engine.generate_ids(&labels, ids, &params)?;
        for ((label, input), r) in labels.iter().zip(inputs).zip(&out.requests) {
            tokens += r.output_ids.len();
            if args.json {
                outln!(
                    "{}",
                    serde_json::json!({"prompt": input.json(), "input_ids": r.input_ids, "output_ids": r.output_ids, "text": r.text})
                )?;
            } else {
                outln!("{label}{}", r.text)?;
            }
        }
    }
    if !args.json {
        let s = started.elapsed().as_secs_f64();
        eprintln!(
            "{} prompt(s), {tokens} new tokens in {s:.2} s ({:.1} tokens/s); model loaded in {:.2} s",
            inputs.len(),
            tokens as f64 / s,
            engine.load_s
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// One input: a prompt, or (with --chat) a whole conversation.
enum Input {
    Prompt(String),
    Messages(serde_json::Value),
}

impl Input {
    /// The conversation a chat template renders: a prompt is one user message.
    fn messages(&self) -> serde_json::Value {
        match self {
            Input::Prompt(p) => serde_json::json!([{"role": "user", "content": p}]),
            Input::Messages(m) => m.clone(),
        }
    }

    /// The text shown before the output, and that seeds sampling.
    fn label(&self) -> String {
        match self {
            Input::Prompt(p) => p.clone(),
            Input::Messages(m) => m.to_string(),
        }
    }

    fn json(&self) -> serde_json::Value {
        match self {
            Input::Prompt(p) => serde_json::Value::String(p.clone()),
            Input::Messages(m) => m.clone(),
        }
    }
}

/// `--template-kwarg K=V` pairs as a JSON object, each value typed as a config override's.
fn template_kwargs(pairs: &[String]) -> anyhow::Result<serde_json::Map<String, serde_json::Value>> {
    let mut out = serde_json::Map::new();
    for pair in pairs {
        let (k, v) = pair
            .split_once('=')
            .filter(|(k, _)| !k.trim().is_empty())
            .ok_or_else(|| anyhow::anyhow!("--template-kwarg {pair:?} is not K=V"))?;
        let value = energy_star_config::overrides::parse_value(v)
            .map_err(|e| anyhow::anyhow!("--template-kwarg {pair:?}: {e}"))?;
        out.insert(k.trim().to_string(), value);
    }
    Ok(out)
}

/// Reads a JSONL file of `{"prompt": ...}` lines, or with `chat` also `{"messages": [...]}`;
/// errors name the line.
fn read_inputs(file: &Path, chat: bool) -> anyhow::Result<Vec<Input>> {
    let text = std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let at = || format!("{} line {}", file.display(), n + 1);
        let v: serde_json::Value =
            serde_json::from_str(line).map_err(|e| anyhow::anyhow!("{}: not JSON: {e}", at()))?;
        if let Some(messages) = v.get("messages") {
            if !chat {
                anyhow::bail!("{}: `messages` needs --chat (the model's chat template renders them)", at());
            }
            let well_formed = messages.as_array().is_some_and(|list| {
                !list.is_empty()
                    && list.iter().all(|m| {
                        m.get("role").is_some_and(serde_json::Value::is_string)
                            && m.get("content").is_some_and(serde_json::Value::is_string)
                    })
            });
            if !well_formed {
                anyhow::bail!(
                    "{}: `messages` must be a non-empty list of {{\"role\": ..., \"content\": ...}} strings",
                    at()
                );
            }
            out.push(Input::Messages(messages.clone()));
            continue;
        }
        let p = v
            .get("prompt")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| anyhow::anyhow!("{}: no string field `prompt`", at()))?;
        out.push(Input::Prompt(p.to_string()));
    }
    if out.is_empty() {
        anyhow::bail!("{} has no prompts", file.display());
    }
    Ok(out)
}
