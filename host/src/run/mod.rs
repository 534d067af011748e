//! `energy-star run`: select the backend plugin (`BENCHMARK_BACKEND`), check the settings it
//! requires, compose the config, run it, write the report and the run status, and summarize.
//!
//! Nothing measured is lost: the run status is written before the backend starts and again at
//! the end, files the backend wrote stay when it fails, and the report is written atomically.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::json;
use thiserror::Error;

use crate::config::{self, ConfigError, ConfigSource};
use crate::plugins::{HostServices, Plugin, PluginError, PluginKind, PluginRuntime, PluginSet};
use crate::results::{self, ResultsError, write_atomic};
use crate::summary::{self, SummaryError};

/// The backend used when `BENCHMARK_BACKEND` is unset or empty.
pub const DEFAULT_BACKEND: &str = "optimum";

#[derive(Debug, Error)]
pub enum RunError {
    /// The wording matches AI Energy Score's entrypoint, which scripts look for.
    #[error("Unknown BENCHMARK_BACKEND={name}\nValid options: {valid}")]
    UnknownBackend { name: String, valid: String },
    #[error("{message}")]
    MissingSetting { message: String },
    #[error(transparent)]
    Config(#[from] ConfigError),
    #[error(transparent)]
    Results(#[from] ResultsError),
    #[error("backend run failed: {source}\nthe run is marked incomplete in {status}; files written before the failure are kept")]
    Backend { source: Box<PluginError>, status: PathBuf },
    #[error("the report was written to {report} but could not be summarized: {source}")]
    Summary { report: PathBuf, source: Box<SummaryError> },
}

/// Picks the backend plugin by name (`BENCHMARK_BACKEND`, default `optimum`).
pub fn select_backend<'a>(plugins: &'a PluginSet, requested: Option<&str>) -> Result<&'a Plugin, RunError> {
    let name = requested.map(str::trim).filter(|s| !s.is_empty()).unwrap_or(DEFAULT_BACKEND);
    plugins.find(PluginKind::Backend, name).ok_or_else(|| RunError::UnknownBackend {
        name: name.to_string(),
        valid: plugins.of_kind(PluginKind::Backend).map(|p| p.meta.name.clone()).collect::<Vec<_>>().join(", "),
    })
}

/// Reads every setting the backend requires; the first missing one is an error in the
/// backend's own words.
pub fn required_settings(plugin: &Plugin, env: impl Fn(&str) -> Option<String>) -> Result<Vec<(String, String)>, RunError> {
    plugin
        .meta
        .required_settings
        .iter()
        .map(|s| match env(&s.name).filter(|v| !v.trim().is_empty()) {
            Some(v) => Ok((s.name.clone(), v)),
            None => Err(RunError::MissingSetting {
                message: if s.missing_message.trim().is_empty() {
                    format!("{} environment variable must be set for the {} backend", s.name, plugin.meta.name)
                } else {
                    s.missing_message.clone()
                },
            }),
        })
        .collect()
}

/// Everything `run` needs, resolved from the command line and environment.
pub struct RunPlan {
    pub config_dir: Option<PathBuf>,
    pub config_name: String,
    pub overrides: Vec<String>,
    /// `--results-dir`, if given.
    pub results_dir: Option<PathBuf>,
    /// `RESULTS_DIR`, if set.
    pub results_dir_env: Option<PathBuf>,
    pub backend: Option<String>,
}

/// Where results go: `--results-dir`, else an explicit `hydra.run.dir=` override (the original
/// entrypoint appends `hydra.run.dir=/results`), else `RESULTS_DIR`, else `./results`.
pub fn results_dir(plan: &RunPlan) -> PathBuf {
    if let Some(d) = &plan.results_dir {
        return d.clone();
    }
    let from_override = plan.overrides.iter().rev().find_map(|o| {
        let o = o.trim_start_matches('+');
        o.strip_prefix("hydra.run.dir=").map(|v| PathBuf::from(v.trim_matches(['\'', '"'])))
    });
    from_override.or_else(|| plan.results_dir_env.clone()).unwrap_or_else(|| PathBuf::from("results"))
}

fn now_s() -> f64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0)
}

fn write_status(dir: &Path, status: &serde_json::Value) -> Result<PathBuf, ResultsError> {
    let path = dir.join("run_status.json");
    let mut text = serde_json::to_string_pretty(status).unwrap_or_default();
    text.push('\n');
    write_atomic(&path, text.as_bytes())?;
    Ok(path)
}

/// What a finished run produced.
pub struct RunReport {
    pub results_dir: PathBuf,
    pub complete: bool,
    pub summary: summary::Summarized,
}

/// Runs the plan: backend chosen and settings checked before anything is written.
pub fn run(rt: &PluginRuntime, plugins: &PluginSet, plan: &RunPlan, env: impl Fn(&str) -> Option<String>) -> Result<RunReport, RunError> {
    let backend = select_backend(plugins, plan.backend.as_deref())?;
    let settings = required_settings(backend, &env)?;
    let source = ConfigSource { dir: plan.config_dir.clone() };
    let cfg = config::compose(&source, &plan.config_name, &plan.overrides)?;
    let dir = results_dir(plan);
    results::ensure_dir(&dir)?;
    write_atomic(&dir.join("effective_config.yaml"), cfg.to_yaml().as_bytes())?;
    let started = now_s();
    let mut status = json!({
        "complete": false,
        "state": "running",
        "backend": backend.meta.label(),
        "config_name": cfg.name,
        "config_source": cfg.source,
        "started_unix_s": started,
    });
    let status_path = write_status(&dir, &status)?;

    let services = HostServices::new(&backend.meta.name, dir.clone());
    let config_json = serde_json::to_string(&cfg.tree).unwrap_or_default();
    let outcome = backend.run_backend(rt, services, &config_json, settings);
    status["finished_unix_s"] = json!(now_s());
    status["files_written_by_backend"] = json!(outcome.written);
    status["incomplete_reasons"] = json!(outcome.incomplete);
    let output = match outcome.result {
        Ok(o) => o,
        Err(source) => {
            status["state"] = json!("failed");
            status["error"] = json!(source.to_string());
            let status = write_status(&dir, &status)?;
            return Err(RunError::Backend { source: Box::new(source), status });
        }
    };
    let report_path = dir.join("benchmark_report.json");
    write_atomic(&report_path, output.report_json.as_bytes())?;
    let complete = output.complete && outcome.incomplete.is_empty();
    status["complete"] = json!(complete);
    status["state"] = json!(if complete { "complete" } else { "incomplete" });
    write_status(&dir, &status)?;
    let _ = status_path;
    let summary = summary::summarize(rt, plugins, &dir).map_err(|source| RunError::Summary { report: report_path, source: Box::new(source) })?;
    Ok(RunReport { results_dir: dir, complete, summary })
}
