//! `energy-star plugins`: the plugins in effect and the broken files skipped; `plugins new`
//! scaffolds a crate. Also where every command gets its plugin runtime and set.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use energy_star_plugin_host::{
    self as host, Builtin, PluginKind, PluginRuntime, PluginSet, RuntimeOptions, SandboxLimits,
};

use crate::cli::{PluginOptions, PluginsAction, PluginsArgs};

include!(concat!(env!("OUT_DIR"), "/builtin_plugins.rs"));

pub fn command(opts: &PluginOptions, args: PluginsArgs) -> anyhow::Result<ExitCode> {
    if let Some(PluginsAction::New { name, kind, dir }) = &args.action {
        let root = crate::scaffold::scaffold(dir, name, kind).map_err(anyhow::Error::msg)?;
        outln!(
            "made {kind} plugin {name} in {}\nbuild it: cd {} && cargo build --release --target wasm32-wasip2",
            root.display(),
            root.display()
        )?;
        return Ok(ExitCode::SUCCESS);
    }
    let (_rt, set) = load(opts)?;
    print_plugins(&set, args.json)?;
    Ok(ExitCode::SUCCESS)
}

/// The plugin runtime with the user's limits, and the plugins in effect: built-ins and
/// drop-ins, broken files named on stderr (or refused with `--strict-plugins`).
pub fn load(opts: &PluginOptions) -> anyhow::Result<(PluginRuntime, PluginSet)> {
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
        cache_dir: if opts.no_compile_cache { None } else { host::runtime::default_cache_dir() },
    };
    let rt = PluginRuntime::new(options)?;
    let env_path = std::env::var("ENERGY_STAR_PLUGIN_PATH").ok();
    let default = PathBuf::from(host::DEFAULT_PLUGIN_DIR);
    let dirs = host::plugin_dirs(&opts.plugin_dirs, env_path.as_deref(), Some(&default));
    let set = PluginSet::discover(&rt, BUILTIN_PLUGINS, &dirs)?;
    if opts.strict_plugins {
        return Ok((rt, set.strict()?));
    }
    for b in &set.broken {
        eprintln!("warning: skipping plugin {}", b.describe());
    }
    Ok((rt, set))
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
                "sha256": m.sha256,
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
    outln!("\nAPI versions accepted: {}", host::wit::ACCEPTED_API_VERSIONS.join(", "))
}
