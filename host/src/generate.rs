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
    let prompts: Vec<String> = match (&args.prompt, &args.prompts_file) {
        (Some(p), _) => vec![p.clone()],
        (None, Some(file)) => read_prompts(file)?,
        (None, None) => anyhow::bail!("give --prompt or --prompts-file"),
    };
    let spec = LocalSpec {
        model: args.model.clone(),
        device: args.device.clone(),
        dtype: args.dtype.clone(),
        processor: None,
    };
    let env = |k: &str| std::env::var(k).ok();
    crate::fetch::source(energy_star_hub::RepoKind::Model, &spec.model, &env)?;
    let engine = CandleEngine::open(&spec, &env)?;
    let params = GenerationParams {
        max_new_tokens: args.max_new_tokens,
        min_new_tokens: 0,
        ignore_eos: args.ignore_eos,
        do_sample: args.sample,
        temperature: args.temperature,
        top_p: args.top_p,
        seed: args.seed,
        truncate: args.truncate,
    };
    let mut tokens = 0usize;
    let started = std::time::Instant::now();
    for chunk in prompts.chunks(args.batch_size) {
        let out = engine.generate(chunk, &params)?;
        for (prompt, r) in chunk.iter().zip(&out.requests) {
            tokens += r.output_ids.len();
            if args.json {
                outln!(
                    "{}",
                    serde_json::json!({"prompt": prompt, "input_ids": r.input_ids, "output_ids": r.output_ids, "text": r.text})
                )?;
            } else {
                outln!("{prompt}{}", r.text)?;
            }
        }
    }
    if !args.json {
        let s = started.elapsed().as_secs_f64();
        eprintln!(
            "{} prompt(s), {tokens} new tokens in {s:.2} s ({:.1} tokens/s); model loaded in {:.2} s",
            prompts.len(),
            tokens as f64 / s,
            engine.load_s
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// Reads a JSONL file of `{"prompt": ...}` lines; errors name the line.
fn read_prompts(file: &Path) -> anyhow::Result<Vec<String>> {
    let text = std::fs::read_to_string(file).map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?;
    let mut out = Vec::new();
    for (n, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let v: serde_json::Value = serde_json::from_str(line)
            .map_err(|e| anyhow::anyhow!("{} line {}: not JSON: {e}", file.display(), n + 1))?;
        let p = v
            .get("prompt")
            .and_then(serde_json::Value::as_str)
            .ok_or_else(|| anyhow::anyhow!("{} line {}: no string field `prompt`", file.display(), n + 1))?;
        out.push(p.to_string());
    }
    if out.is_empty() {
        anyhow::bail!("{} has no prompts", file.display());
    }
    Ok(out)
}
