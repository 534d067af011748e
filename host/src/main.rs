//! The `energy-star` binary: parse, dispatch, print errors, set the exit code. The only place
//! where errors become text on stderr.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use energy_star::cli::{
    Cli, Command, GLOBAL_FLAGS, GLOBAL_OPTIONS_WITH_VALUE, GenerateArgs, PluginOptions, SUBCOMMANDS,
};
use energy_star::measure::{self, MeasurePlan};
use energy_star::plugins::{self, PluginKind, PluginRuntime, PluginSet, RuntimeOptions, SandboxLimits};
use energy_star::run::{self, RunPlan};
use energy_star::summary;

/// `print!` that returns the write's error instead of panicking: a closed stdout (`| head`)
/// then ends the command quietly in [`main`], as coreutils and ripgrep do.
macro_rules! out {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        write!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// `println!` with the write's error returned, as [`out!`].
macro_rules! outln {
    ($($arg:tt)*) => {{
        use std::io::Write as _;
        writeln!(std::io::stdout().lock(), $($arg)*)
    }};
}

/// Whether an error is stdout closed by its reader.
fn is_broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| c.downcast_ref::<std::io::Error>().is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe))
}

fn main() -> ExitCode {
    let mut args: Vec<std::ffi::OsString> = std::env::args_os().collect();
    // `run` may be implied, as the container's entrypoint passes the arguments of `run`:
    // find the first argument that is not a global option, and insert `run` before it unless
    // it names a subcommand.
    let mut i = 1;
    while let Some(arg) = args.get(i).and_then(|a| a.to_str()) {
        if GLOBAL_OPTIONS_WITH_VALUE.contains(&arg) {
            i += 2;
        } else if GLOBAL_FLAGS.contains(&arg)
            || GLOBAL_OPTIONS_WITH_VALUE.iter().any(|o| arg.starts_with(&format!("{o}=")))
        {
            i += 1;
        } else {
            break;
        }
    }
    if let Some(first) = args.get(i).and_then(|a| a.to_str()) {
        let is_known = SUBCOMMANDS.contains(&first) || matches!(first, "-h" | "--help" | "-V" | "--version");
        if !is_known {
            args.insert(i, "run".into());
        }
    }
    let cli = Cli::parse_from(args);
    match dispatch(cli) {
        Ok(code) => code,
        Err(e) if is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("Error: {e}");
            ExitCode::from(1)
        }
    }
}

fn runtime(opts: &PluginOptions) -> anyhow::Result<PluginRuntime> {
    if !(opts.plugin_time_limit_s > 0.0 && opts.plugin_time_limit_s <= 86_400.0) {
        anyhow::bail!(
            "--plugin-time-limit-s must be more than 0 and at most 86400 seconds, got {}",
            opts.plugin_time_limit_s
        );
    }
    if opts.plugin_memory_mib == 0 {
        anyhow::bail!("--plugin-memory-mib must be at least 1");
    }
    let options = RuntimeOptions {
        limits: SandboxLimits {
            memory_bytes: opts.plugin_memory_mib.saturating_mul(1 << 20),
            time_limit: Duration::from_secs_f64(opts.plugin_time_limit_s),
        },
        cache_dir: if opts.no_compile_cache { None } else { plugins::runtime::default_cache_dir() },
    };
    Ok(PluginRuntime::new(options)?)
}

fn discover(rt: &PluginRuntime, opts: &PluginOptions) -> anyhow::Result<PluginSet> {
    let env_path = std::env::var("ENERGY_STAR_PLUGIN_PATH").ok();
    let default = PathBuf::from(plugins::DEFAULT_PLUGIN_DIR);
    let dirs = plugins::plugin_dirs(&opts.plugin_dirs, env_path.as_deref(), Some(&default));
    let set = PluginSet::discover(rt, &dirs)?;
    if opts.strict_plugins {
        return Ok(set.strict()?);
    }
    for b in &set.broken {
        eprintln!("warning: skipping plugin {}", b.describe());
    }
    Ok(set)
}

fn env_path(name: &str) -> Option<PathBuf> {
    std::env::var_os(name).filter(|v| !v.is_empty()).map(PathBuf::from)
}

fn dispatch(cli: Cli) -> anyhow::Result<ExitCode> {
    // `measure` needs no plugins.
    if let Command::Measure(args) = &cli.command {
        let plan = MeasurePlan {
            gpus: args.gpus.clone(),
            interval: Duration::from_millis(args.interval_ms),
            idle_s: args.idle,
            output: args.output.clone(),
            rapl: !args.no_rapl,
            replay: args.replay.clone(),
            command: args.command.clone(),
        };
        let done = measure::run(&plan)?;
        out!("{}", measure::report(&done, &plan.command))?;
        return Ok(match &done.command {
            Some((_, Some(code), false)) => ExitCode::from(u8::try_from(*code).unwrap_or(1)),
            Some((_, _, true)) => ExitCode::from(130),
            Some((_, None, false)) => ExitCode::from(1),
            None => ExitCode::SUCCESS,
        });
    }
    if let Command::Generate(args) = &cli.command {
        return generate(args);
    }
    if let Command::Report(args) = &cli.command {
        let target =
            args.target.clone().or_else(|| env_path("RESULTS_DIR")).unwrap_or_else(|| PathBuf::from("results"));
        let done = energy_star::report::write_report(&target)?;
        outln!("report: {}", done.html.display())?;
        for f in &done.figures {
            outln!("figure: {}", f.display())?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Rate(args) = &cli.command {
        let text =
            std::fs::read_to_string(&args.table).map_err(|e| anyhow::anyhow!("{}: {e}", args.table.display()))?;
        let (rows, metric) = energy_star::rate::rate_csv(&text, args.metric.as_deref())
            .map_err(|e| anyhow::anyhow!("{}: {e}", args.table.display()))?;
        let out = energy_star::rate::to_csv(&rows, &metric);
        for r in rows.iter().filter(|r| r.energy.is_none()) {
            eprintln!("warning: {} has no {metric}: no stars", r.model);
        }
        match &args.output {
            Some(p) => {
                energy_star::results::write_atomic(p, out.as_bytes())?;
                let rated = rows.iter().filter(|r| r.stars.is_some()).count();
                let unrated = if rated < rows.len() {
                    format!(" ({} without a figure)", rows.len() - rated)
                } else {
                    String::new()
                };
                outln!("rated {rated} of {} models by {metric}{unrated}: {}", rows.len(), p.display())?;
            }
            None => out!("{out}")?,
        }
        return Ok(ExitCode::SUCCESS);
    }
    if let Command::Batch(args) = &cli.command {
        return batch(args);
    }
    if let Command::Plugins(energy_star::cli::PluginsArgs {
        action: Some(energy_star::cli::PluginsAction::New { name, kind, dir }),
        ..
    }) = &cli.command
    {
        let root = plugins::scaffold::scaffold(dir, name, kind).map_err(anyhow::Error::msg)?;
        outln!(
            "made {kind} plugin {name} in {}\nbuild it: cd {} && cargo build --release --target wasm32-wasip2",
            root.display(),
            root.display()
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let rt = runtime(&cli.plugins)?;
    let set = discover(&rt, &cli.plugins)?;
    match cli.command {
        Command::Plugins(args) => {
            print_plugins(&set, args.json)?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Summarize(args) => {
            let target = args.target.or_else(|| env_path("RESULTS_DIR")).unwrap_or_else(|| PathBuf::from("results"));
            let done = summary::summarize(&rt, &set, &target)?;
            out!("{}", summary::banner(&done))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Measure(_) | Command::Generate(_) | Command::Report(_) | Command::Rate(_) | Command::Batch(_) => {
            unreachable!("handled above")
        }
        Command::Run(args) => {
            // First Ctrl-C: the backend stops at its next host call and the run is written as
            // incomplete; a second one quits at once.
            let presses = std::sync::atomic::AtomicU32::new(0);
            let _ = ctrlc::set_handler(move || {
                if presses.fetch_add(1, std::sync::atomic::Ordering::SeqCst) == 0 {
                    eprintln!("\nenergy-star: stopping at the backend's next host call; Ctrl-C again to quit now");
                    plugins::interrupt();
                } else {
                    std::process::exit(130);
                }
            });
            let plan = RunPlan {
                config_dir: args.config_dir,
                config_name: args.config_name,
                overrides: args.overrides,
                results_dir: args.results_dir,
                results_dir_env: env_path("RESULTS_DIR"),
                backend: std::env::var("BENCHMARK_BACKEND").ok(),
            };
            let done = run::run(&rt, &set, &plan, |k| std::env::var(k).ok())?;
            out!("{}", summary::banner(&done.summary))?;
            outln!("results: {}", done.results_dir.display())?;
            if !done.complete {
                eprintln!("warning: the run is incomplete; see {}", done.results_dir.join("run_status.json").display());
                return Ok(ExitCode::from(1));
            }
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn batch(args: &energy_star::cli::BatchArgs) -> anyhow::Result<ExitCode> {
    use energy_star::batch;
    use energy_star::cli::Emit;
    let text = std::fs::read_to_string(&args.models).map_err(|e| anyhow::anyhow!("{}: {e}", args.models.display()))?;
    let mut rows = batch::parse_models(&text).map_err(|e| anyhow::anyhow!("{}: {e}", args.models.display()))?;
    if let Some(m) = &args.model_name {
        rows.retain(|r| r.model.contains(m.as_str()));
    }
    if let Some(c) = &args.class {
        rows.retain(|r| r.class.eq_ignore_ascii_case(c));
    }
    if rows.is_empty() {
        anyhow::bail!("no model of {} is left after --model-name/--class", args.models.display());
    }
    let opts = batch::BatchOptions {
        config_name: args.config_name.clone(),
        config_dir: args.config_dir.clone(),
        backend: args.backend.clone().filter(|b| !b.is_empty()),
        num_prompts: args.num_prompts,
        extra: args.overrides.clone(),
    };
    let out = &args.output_dir;
    if args.collect {
        let (master, found, missing, failed) = batch::collect_all(&rows, out).map_err(anyhow::Error::msg)?;
        outln!("{}: {found} runs collected ({failed} failed or incomplete), {missing} missing", master.display())?;
        return Ok(if missing == 0 && failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) });
    }
    if let Some(kind) = args.emit {
        if args.gpus == 0 {
            anyhow::bail!("--gpus must be at least 1");
        }
        let cluster = batch::ClusterOptions {
            image: args.image.clone(),
            gpus: args.gpus,
            namespace: args.namespace.clone(),
            results_claim: args.results_claim.clone(),
            hf_cache_claim: args.hf_cache_claim.clone(),
            vllm_endpoint: std::env::var("VLLM_ENDPOINT").ok().filter(|e| !e.is_empty()),
        };
        match kind {
            Emit::K8s => {
                let dir = out.join("k8s");
                energy_star::results::ensure_dir(&dir)?;
                for (name, yaml) in batch::kubernetes_jobs(&rows, &opts, &cluster) {
                    energy_star::results::write_atomic(&dir.join(&name), yaml.as_bytes())?;
                }
                outln!("{} Kubernetes Jobs in {}: kubectl apply -f {}", rows.len(), dir.display(), dir.display())?;
            }
            Emit::Slurm => {
                let dir = out.join("slurm");
                energy_star::results::ensure_dir(&dir)?;
                let root = args.results_root.clone().unwrap_or_else(|| out.clone());
                let (script, lines) = batch::slurm_array(&rows, &opts, &cluster, &root.display().to_string());
                energy_star::results::write_atomic(&dir.join("energy_star_array.sbatch"), script.as_bytes())?;
                energy_star::results::write_atomic(&dir.join("energy_star_array.args"), lines.as_bytes())?;
                outln!(
                    "Slurm array of {} tasks in {}: cd {} && sbatch energy_star_array.sbatch",
                    rows.len(),
                    dir.display(),
                    dir.display()
                )?;
            }
        }
        return Ok(ExitCode::SUCCESS);
    }
    // Ctrl-C reaches the running child too (same process group); the batch stops after it.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let s2 = stop.clone();
    let _ = ctrlc::set_handler(move || s2.store(true, std::sync::atomic::Ordering::SeqCst));
    let exe = std::env::current_exe()?;
    let done = batch::run_local(&exe, &rows, &opts, out, &|| stop.load(std::sync::atomic::Ordering::SeqCst))
        .map_err(anyhow::Error::msg)?;
    outln!(
        "{}: {} run, {} skipped (done before), {} failed{}",
        done.master.display(),
        done.ran,
        done.skipped,
        done.failed,
        if done.interrupted { ", interrupted" } else { "" }
    )?;
    Ok(if done.failed == 0 && !done.interrupted { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn generate(args: &GenerateArgs) -> anyhow::Result<ExitCode> {
    use energy_star::inference::GenerationParams;
    use energy_star::inference::local::{CandleEngine, LocalSpec};
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
    let engine = CandleEngine::open(&spec, &|k: &str| std::env::var(k).ok())?;
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
fn read_prompts(file: &std::path::Path) -> anyhow::Result<Vec<String>> {
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

fn print_plugins(set: &PluginSet, json: bool) -> std::io::Result<()> {
    if json {
        for p in &set.plugins {
            let m = &p.meta;
            let line = serde_json::json!({
                "name": m.name,
                "kind": m.kind.as_str(),
                "version": m.version,
                "api_version": m.api_version,
                "origin": m.origin.to_string(),
                "replaces": m.replaces.iter().map(|o| o.to_string()).collect::<Vec<_>>(),
                "formats": m.formats,
                "required_settings": m.required_settings.iter().map(|s| s.name.clone()).collect::<Vec<_>>(),
                "description": m.description,
            });
            outln!("{line}")?;
        }
        for b in &set.broken {
            let line = serde_json::json!({
                "broken": true,
                "kind": b.kind.map(PluginKind::as_str),
                "origin": b.path.display().to_string(),
                "error": b.error.to_string(),
            });
            outln!("{line}")?;
        }
        return Ok(());
    }
    outln!("{:<24} {:<11} {:<9} {:<5} ORIGIN", "NAME", "KIND", "VERSION", "API")?;
    for kind in [PluginKind::Backend, PluginKind::Summarizer] {
        for p in set.of_kind(kind) {
            let m = &p.meta;
            let mut origin = m.origin.to_string();
            if !m.replaces.is_empty() {
                origin.push_str(&format!(
                    " (replaces {})",
                    m.replaces.iter().map(|o| o.to_string()).collect::<Vec<_>>().join(", ")
                ));
            }
            outln!("{:<24} {:<11} {:<9} {:<5} {origin}", m.name, m.kind.as_str(), m.version, m.api_version)?;
        }
    }
    if !set.broken.is_empty() {
        outln!("\nBroken, skipped ({}):", set.broken.len())?;
        for b in &set.broken {
            outln!("  {}", b.describe())?;
        }
    }
    outln!("\nAPI versions accepted: {}", plugins::bindings::ACCEPTED_API_VERSIONS.join(", "))
}
