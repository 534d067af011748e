//! `energy-star batch`: a list of models run one after another into one
//! `master_results.csv` (AI Energy Score's batch runner and results aggregator, with their
//! columns), resuming where a previous batch stopped; or, for many machines, the same list as
//! Kubernetes Jobs or a Slurm array whose results `--collect` brings back together.
//!
//! energy-star does not schedule jobs across machines: the cluster's scheduler does. Every
//! path (local, Kubernetes, Slurm) runs the same argument list per model
//! ([`model_overrides`]), so their results are the same kind of folder.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use serde_json::json;

use energy_star_results::records::{
    self, ENERGY_RECORD, EnergyRecord, RUN_RECORD, RUN_STATUS, RunRecord, RunState, RunStatus, SUMMARY, SummaryRecord,
};
use energy_star_results::write_atomic;
use energy_star_types::DeviceKind;

use crate::cli::{BatchArgs, Emit};

/// `energy-star batch`.
pub fn command(args: &BatchArgs) -> anyhow::Result<ExitCode> {
    let text = std::fs::read_to_string(&args.models).map_err(|e| anyhow::anyhow!("{}: {e}", args.models.display()))?;
    let mut rows = parse_models(&text).map_err(|e| anyhow::anyhow!("{}: {e}", args.models.display()))?;
    if let Some(m) = &args.model_name {
        rows.retain(|r| r.model.contains(m.as_str()));
    }
    if let Some(c) = &args.class {
        rows.retain(|r| r.class.eq_ignore_ascii_case(c));
    }
    if rows.is_empty() {
        anyhow::bail!("no model of {} is left after --model-name/--class", args.models.display());
    }
    let opts = BatchOptions {
        config_name: args.config_name.clone(),
        config_dir: args.config_dir.clone(),
        backend: args.backend.clone().filter(|b| !b.is_empty()),
        num_prompts: args.num_prompts,
        extra: args.overrides.clone(),
    };
    let out = &args.output_dir;
    if args.collect {
        let (master, found, missing, failed) = collect_all(&rows, out).map_err(anyhow::Error::msg)?;
        outln!("{}: {found} runs collected ({failed} failed or incomplete), {missing} missing", master.display())?;
        return Ok(if missing == 0 && failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) });
    }
    if let Some(kind) = args.emit {
        if args.gpus == 0 {
            anyhow::bail!("--gpus must be at least 1");
        }
        let cluster = ClusterOptions {
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
                energy_star_results::ensure_dir(&dir)?;
                for (name, yaml) in kubernetes_jobs(&rows, &opts, &cluster) {
                    energy_star_results::write_atomic(&dir.join(&name), yaml.as_bytes())?;
                }
                outln!("{} Kubernetes Jobs in {}: kubectl apply -f {}", rows.len(), dir.display(), dir.display())?;
            }
            Emit::Slurm => {
                let dir = out.join("slurm");
                energy_star_results::ensure_dir(&dir)?;
                let root = args.results_root.clone().unwrap_or_else(|| out.clone());
                let (script, lines) = slurm_array(&rows, &opts, &cluster, &root.display().to_string());
                energy_star_results::write_atomic(&dir.join("energy_star_array.sbatch"), script.as_bytes())?;
                energy_star_results::write_atomic(&dir.join("energy_star_array.args"), lines.as_bytes())?;
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
    let done = run_local(&exe, &rows, &opts, out, &|| stop.load(std::sync::atomic::Ordering::SeqCst))
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

/// One model to run.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelRow {
    pub model: String,
    pub class: String,
    pub task: String,
    pub reasoning: bool,
    /// `reasoning_params` from the list's chat-template column.
    pub reasoning_params: Vec<(String, String)>,
}

impl ModelRow {
    /// `on`/`off`, as the results table's `reasoning_state`.
    pub fn state(&self) -> &'static str {
        if self.reasoning { "on" } else { "off" }
    }

    /// A folder and job name: lowercase letters, digits and dashes.
    pub fn slug(&self) -> String {
        let mut s: String =
            self.model.to_ascii_lowercase().chars().map(|c| if c.is_ascii_alphanumeric() { c } else { '-' }).collect();
        while s.contains("--") {
            s = s.replace("--", "-");
        }
        let s = s.trim_matches('-').to_string();
        format!("{}-{}", s, self.state())
    }
}

/// Reads a model list: AI Energy Score's (`Models to Add`, `Class`, `Task`, `Reasoning
/// State`, `Chat Template`) or a plain one (`model`, optional `class`, `task`, `reasoning`).
pub fn parse_models(text: &str) -> Result<Vec<ModelRow>, String> {
    let mut rdr = csv::ReaderBuilder::new().flexible(true).from_reader(text.as_bytes());
    let headers = rdr.headers().map_err(|e| format!("the model list's header does not read: {e}"))?.clone();
    let find = |names: &[&str]| headers.iter().position(|h| names.iter().any(|n| h.trim().eq_ignore_ascii_case(n)));
    let model_i = find(&["Models to Add", "model", "model_name"]).ok_or_else(|| {
        format!(
            "no model column (`model` or `Models to Add`); the columns are: {}",
            headers.iter().collect::<Vec<_>>().join(", ")
        )
    })?;
    let class_i = find(&["class", "model_class"]);
    let task_i = find(&["task"]);
    let state_i = find(&["Reasoning State", "reasoning", "reasoning_state"]);
    let template_i = find(&["Chat Template"]);
    let mut rows = Vec::new();
    let mut seen = BTreeSet::new();
    for (n, rec) in rdr.records().enumerate() {
        let line = n + 2;
        let rec = rec.map_err(|e| format!("model list row {line}: {e}"))?;
        let cell = |i: Option<usize>| i.and_then(|i| rec.get(i)).map(str::trim).unwrap_or("").to_string();
        let raw = cell(Some(model_i));
        if raw.is_empty() {
            continue;
        }
        let model = raw
            .trim_start_matches("https://huggingface.co/")
            .trim_start_matches("http://huggingface.co/")
            .trim_end_matches('/')
            .to_string();
        if model.contains(char::is_whitespace) || model.contains(',') {
            return Err(format!("model list row {line}: {raw:?} is not a model id"));
        }
        let state = cell(state_i).to_ascii_lowercase();
        let reasoning = state.starts_with("on") || state == "true" || state == "yes";
        let template = cell(template_i);
        let mut params = Vec::new();
        let mut in_params = false;
        for l in template.lines() {
            let t = l.trim();
            if t.starts_with("reasoning_params:") {
                in_params = true;
            } else if in_params && let Some((k, v)) = t.split_once(':') {
                params.push((k.trim().to_string(), v.trim().to_string()));
            }
        }
        let task = cell(task_i);
        let row = ModelRow {
            model,
            class: cell(class_i),
            task: if task.is_empty() { "text_gen".into() } else { task },
            reasoning,
            reasoning_params: params,
        };
        if !seen.insert(row.slug()) {
            return Err(format!("model list row {line}: {} ({}) is listed twice", row.model, row.state()));
        }
        rows.push(row);
    }
    if rows.is_empty() {
        return Err("the model list names no models".into());
    }
    Ok(rows)
}

/// What every run of a batch shares.
#[derive(Debug, Clone, Default)]
pub struct BatchOptions {
    pub config_name: String,
    pub config_dir: Option<PathBuf>,
    pub backend: Option<String>,
    pub num_prompts: Option<u32>,
    /// Overrides added to every run (after the batch's own).
    pub extra: Vec<String>,
}

/// The overrides for one model, as AI Energy Score's batch runner passes them: reasoning on
/// asks for up to 8192 new tokens, off for exactly 10.
pub fn model_overrides(row: &ModelRow, opts: &BatchOptions) -> Vec<String> {
    let mut o = vec![format!("backend.model={}", row.model)];
    if let Some(n) = opts.num_prompts {
        o.push(format!("scenario.num_samples={n}"));
    }
    if row.reasoning {
        o.push("++scenario.reasoning=True".into());
        for (k, v) in &row.reasoning_params {
            o.push(format!("++scenario.reasoning_params.{k}={v}"));
        }
        o.push("scenario.generate_kwargs.max_new_tokens=8192".into());
        o.push("scenario.generate_kwargs.min_new_tokens=1".into());
    } else {
        o.push("++scenario.reasoning=False".into());
        o.push("scenario.generate_kwargs.max_new_tokens=10".into());
        o.push("scenario.generate_kwargs.min_new_tokens=10".into());
    }
    o.extend(opts.extra.iter().cloned());
    o
}

/// The full argument list of `energy-star` for one model, results in `results_dir`.
pub fn run_args(row: &ModelRow, opts: &BatchOptions, results_dir: &str) -> Vec<String> {
    let mut a = vec!["run".to_string()];
    if let Some(d) = &opts.config_dir {
        a.push("--config-dir".into());
        a.push(d.display().to_string());
    }
    a.extend(["--config-name".to_string(), opts.config_name.clone(), "--results-dir".into(), results_dir.to_string()]);
    a.extend(model_overrides(row, opts));
    a
}

/// `master_results.csv`'s columns: AI Energy Score's aggregator's, then where the energy
/// came from, whether the run was complete, its folder, and where `co2_emissions_g`'s grid
/// factor came from (added after energy-star 0.2.0's tables, which are still read).
pub const COLUMNS: &[&str] = &[
    "model_name",
    "model_class",
    "task",
    "reasoning_state",
    "total_prompts",
    "successful_prompts",
    "failed_prompts",
    "total_duration_seconds",
    "avg_total_time",
    "avg_time_to_first_token",
    "total_tokens",
    "total_prompt_tokens",
    "total_completion_tokens",
    "throughput_tokens_per_second",
    "gpu_energy_wh",
    "wh_per_1000_queries",
    "co2_emissions_g",
    "tokens_per_joule",
    "avg_energy_per_prompt_wh",
    "timestamp",
    "error_message",
    "gpu_energy_source",
    "complete",
    "results_dir",
    "carbon_intensity_source",
];

/// The columns of tables written before `carbon_intensity_source`.
const COLUMNS_BEFORE_CARBON: usize = 24;

fn cell(v: Option<f64>) -> String {
    v.filter(|x| x.is_finite()).map(|x| format!("{x}")).unwrap_or_default()
}

/// A host record of a run folder; none when absent or unreadable (the row then says less).
fn record<T: serde::de::DeserializeOwned>(dir: &Path, name: &str) -> Option<T> {
    records::read_record(&dir.join(name)).ok().flatten()
}

/// One results row from a run's folder (whatever state it is in), from the host's records
/// only: the status, the run record's facts, the energy record and the summary.
pub fn collect_row(row: &ModelRow, dir: &Path, error: Option<String>) -> Vec<String> {
    let status: Option<RunStatus> = record(dir, RUN_STATUS);
    let run: Option<RunRecord> = record(dir, RUN_RECORD);
    let meter: Option<EnergyRecord> = record(dir, ENERGY_RECORD);
    let summary: Option<SummaryRecord> = record(dir, SUMMARY);
    let facts = run.as_ref().and_then(|r| r.facts.as_ref());
    let gpu_wh = summary.as_ref().and_then(|s| s.total);
    let requests = facts.and_then(|f| f.requests);
    let tokens = facts.and_then(|f| f.tokens);
    let n = |v: Option<u64>| v.map(|x| x as f64);
    let total_prompts = n(requests.map(|r| r.total));
    let successful = n(requests.map(|r| r.succeeded));
    let total_tokens = n(tokens.map(|t| t.input + t.output));
    let duration_s = facts.and_then(|f| f.workload_ns).map(|ns| ns as f64 / 1e9);
    let complete = status.as_ref().map(|st| st.state == RunState::Complete);
    let error = error.or_else(|| {
        status.as_ref().filter(|st| st.state != RunState::Complete).map(|st| {
            let reasons: Vec<String> = st.incomplete_reasons.iter().chain(&st.problems).cloned().collect();
            if reasons.is_empty() {
                st.error.clone().unwrap_or_else(|| format!("run {}", st.state.as_str()))
            } else {
                reasons.join("; ")
            }
        })
    });
    let per_prompt_wh = gpu_wh.zip(successful.filter(|n| *n > 0.0)).map(|(w, n)| w / n);
    // As upstream's column: the report's `emissions_g_co2eq`, CodeCarbon's figure over GPU, CPU
    // and RAM at the device; empty when the grid intensity is unknown.
    let emissions = summary.as_ref().and_then(|s| s.details().ok()).and_then(|d| d.emissions);
    let co2_g = emissions.as_ref().and_then(|e| e.all_devices_g_co2eq);
    let carbon_source = emissions.as_ref().map(carbon_source).unwrap_or_default();
    vec![
        row.model.clone(),
        row.class.clone(),
        row.task.clone(),
        row.state().to_string(),
        cell(total_prompts),
        cell(successful),
        cell(n(requests.map(|r| r.failed + r.not_sent))),
        cell(duration_s),
        cell(facts.and_then(|f| f.mean_e2e_ns).map(|ns| ns as f64 / 1e9)),
        cell(facts.and_then(|f| f.mean_ttft_ns).map(|ns| ns as f64 / 1e9)),
        cell(total_tokens),
        cell(n(tokens.map(|t| t.input))),
        cell(n(tokens.map(|t| t.output))),
        cell(total_tokens.zip(duration_s.filter(|d| *d > 0.0)).map(|(t, d)| t / d)),
        cell(gpu_wh),
        cell(per_prompt_wh.map(|w| w * 1000.0)),
        cell(co2_g),
        cell(total_tokens.zip(gpu_wh.filter(|w| *w > 0.0)).map(|(t, w)| t / (w * 3600.0))),
        cell(per_prompt_wh),
        status.as_ref().and_then(|st| st.finished_unix_s).map(|t| format!("{t:.0}")).unwrap_or_default(),
        error.unwrap_or_default(),
        meter.as_ref().and_then(|m| m.source_of(DeviceKind::Gpu)).map(|s| s.as_str().to_string()).unwrap_or_default(),
        complete.map(|c| c.to_string()).unwrap_or_default(),
        dir.display().to_string(),
        carbon_source,
    ]
}

/// `co2_emissions_g`'s grid factor and where it came from, or why there is none.
fn carbon_source(e: &energy_star_results::records::EmissionsRecord) -> String {
    match &e.intensity {
        Some(i) => {
            let place = i.location.as_ref().map(|l| format!(" {l}")).unwrap_or_default();
            format!("{:.2} g/kWh{place} ({}; {})", i.g_co2eq_per_kwh, i.note, i.source)
        }
        None => format!("none: {}", e.unknown_reason.as_deref().unwrap_or("no grid carbon intensity")),
    }
}

/// Reads an existing `master_results.csv` (for resuming).
pub fn read_master(path: &Path) -> Result<Vec<Vec<String>>, String> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(format!("{}: {e}", path.display())),
    };
    let mut rdr = csv::Reader::from_reader(text.as_bytes());
    let headers = rdr.headers().map_err(|e| format!("{}: {e}", path.display()))?.clone();
    let found: Vec<&str> = headers.iter().collect();
    let older = found.as_slice() == &COLUMNS[..COLUMNS_BEFORE_CARBON];
    if found != COLUMNS && !older {
        return Err(format!(
            "{} has other columns than a batch writes; move it away or pick another --output-dir",
            path.display()
        ));
    }
    rdr.records()
        .map(|r| {
            r.map(|r| {
                let mut row: Vec<String> = r.iter().map(str::to_string).collect();
                // An older table's rows get the new column, empty: its source is not recorded.
                row.resize(COLUMNS.len(), String::new());
                row
            })
            .map_err(|e| format!("{}: {e}", path.display()))
        })
        .collect()
}

pub fn write_master(path: &Path, rows: &[Vec<String>]) -> Result<(), String> {
    let mut w = csv::Writer::from_writer(Vec::new());
    w.write_record(COLUMNS).map_err(|e| e.to_string())?;
    for r in rows {
        w.write_record(r).map_err(|e| e.to_string())?;
    }
    let bytes = w.into_inner().map_err(|e| e.to_string())?;
    write_atomic(path, &bytes).map_err(|e| e.to_string())
}

/// A cell of a master row, by column name.
fn cell_of<'a>(r: &'a [String], column: &str) -> Option<&'a str> {
    COLUMNS.iter().position(|c| *c == column).and_then(|i| r.get(i)).map(String::as_str)
}

/// Whether a master row is a finished, complete run (resume skips it).
pub fn is_done(r: &[String]) -> bool {
    cell_of(r, "error_message").is_some_and(str::is_empty) && cell_of(r, "complete") == Some("true")
}

/// Whether a master row is the run of `model` with reasoning `state`.
fn is_row_of(r: &[String], model: &str, state: &str) -> bool {
    cell_of(r, "model_name") == Some(model) && cell_of(r, "reasoning_state") == Some(state)
}

/// Puts `new` in place of the row for the same model and state, or appends it.
pub fn upsert(rows: &mut Vec<Vec<String>>, new: Vec<String>) {
    let (model, state) = (
        cell_of(&new, "model_name").unwrap_or("").to_string(),
        cell_of(&new, "reasoning_state").unwrap_or("").to_string(),
    );
    match rows.iter_mut().find(|r| is_row_of(r, &model, &state)) {
        Some(r) => *r = new,
        None => rows.push(new),
    }
}

/// Options of the cluster manifests.
#[derive(Debug, Clone)]
pub struct ClusterOptions {
    pub image: String,
    pub gpus: u32,
    pub namespace: Option<String>,
    /// PersistentVolumeClaim mounted at /results.
    pub results_claim: String,
    /// PersistentVolumeClaim mounted as the Hugging Face cache, when given.
    pub hf_cache_claim: Option<String>,
    pub vllm_endpoint: Option<String>,
}

/// A Job name (63 characters at most); long ones are cut and end in a hash of the whole, so
/// two models that share a long prefix (or one model with reasoning on and off) never collide.
fn dns_name(s: &str) -> String {
    let name = format!("energy-star-{s}");
    if name.len() <= 63 {
        return name;
    }
    // FNV-1a: stable across builds and platforms.
    let hash = name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3));
    let mut head: String = name.chars().take(54).collect();
    while head.ends_with('-') {
        head.pop();
    }
    format!("{head}-{:08x}", hash as u32)
}

/// One Kubernetes Job per model (`batch/v1`), as YAML files named `NN-slug.yaml`.
pub fn kubernetes_jobs(rows: &[ModelRow], opts: &BatchOptions, c: &ClusterOptions) -> Vec<(String, String)> {
    rows.iter()
        .enumerate()
        .map(|(i, row)| {
            let slug = row.slug();
            let mut args = run_args(row, opts, &format!("/results/individual_runs/{slug}"));
            args.remove(0); // the image's entrypoint implies `run`
            let mut env = vec![json!({"name": "HF_HOME", "value": "/home/user/.cache/huggingface"}), json!({"name": "RESULTS_DIR", "value": "/results"})];
            if let Some(b) = &opts.backend {
                env.push(json!({"name": "BENCHMARK_BACKEND", "value": b}));
            }
            if let Some(e) = &c.vllm_endpoint {
                env.push(json!({"name": "VLLM_ENDPOINT", "value": e}));
            }
            let mut mounts = vec![json!({"name": "results", "mountPath": "/results"})];
            let mut volumes = vec![json!({"name": "results", "persistentVolumeClaim": {"claimName": c.results_claim}})];
            if let Some(h) = &c.hf_cache_claim {
                mounts.push(json!({"name": "hf-cache", "mountPath": "/home/user/.cache/huggingface"}));
                volumes.push(json!({"name": "hf-cache", "persistentVolumeClaim": {"claimName": h}}));
            }
            let gpus = c.gpus.to_string();
            let mut metadata = json!({"name": dns_name(&slug), "labels": {"app.kubernetes.io/name": "energy-star", "energy-star/model": slug.chars().take(63).collect::<String>().trim_end_matches('-')}});
            if let Some(ns) = &c.namespace {
                metadata["namespace"] = json!(ns);
            }
            let job = json!({
                "apiVersion": "batch/v1",
                "kind": "Job",
                "metadata": metadata,
                "spec": {
                    // A retry would measure the model twice into one folder: failures are
                    // looked at, not retried.
                    "backoffLimit": 0,
                    "template": {
                        "metadata": {"labels": {"app.kubernetes.io/name": "energy-star"}},
                        "spec": {
                            "restartPolicy": "Never",
                            "securityContext": {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 1000},
                            "containers": [{
                                "name": "energy-star",
                                "image": c.image,
                                "args": args,
                                "env": env,
                                "resources": {"limits": {"nvidia.com/gpu": gpus}, "requests": {"nvidia.com/gpu": gpus}},
                                "volumeMounts": mounts,
                            }],
                            "volumes": volumes,
                        },
                    },
                },
            });
            let yaml = serde_norway::to_string(&job).unwrap_or_default();
            (format!("{:03}-{slug}.yaml", i + 1), format!("# energy-star batch: {} ({})\n{yaml}", row.model, row.state()))
        })
        .collect()
}

fn shell_quote(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:+,@%".contains(c)) {
        s.to_string()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

/// A Slurm array script and its argument file: task N runs line N+1.
pub fn slurm_array(rows: &[ModelRow], opts: &BatchOptions, c: &ClusterOptions, results_root: &str) -> (String, String) {
    let lines: String = rows
        .iter()
        .map(|row| {
            let args = run_args(row, opts, &format!("{results_root}/individual_runs/{}", row.slug()));
            args.iter().map(|a| shell_quote(a)).collect::<Vec<_>>().join(" ") + "\n"
        })
        .collect();
    let backend =
        opts.backend.as_deref().map(|b| format!("export BENCHMARK_BACKEND={}\n", shell_quote(b))).unwrap_or_default();
    let endpoint =
        c.vllm_endpoint.as_deref().map(|e| format!("export VLLM_ENDPOINT={}\n", shell_quote(e))).unwrap_or_default();
    let script = format!(
        r#"#!/bin/bash
# energy-star batch as a Slurm array: one task per model, {n} models.
# Submit from the folder holding energy_star_array.args:  sbatch energy_star_array.sbatch
# The runner is `energy-star` on PATH, or the container through Apptainer when SIF is set:
#   SIF=energy_star.sif sbatch energy_star_array.sbatch   (apptainer build energy_star.sif docker://{image})
# Results go to {results_root}/individual_runs/<model>; then on any node:
#   energy-star batch MODELS.csv --collect --output-dir {results_root}
#SBATCH --job-name=energy-star
#SBATCH --array=0-{last}%1
#SBATCH --gres=gpu:{gpus}
#SBATCH --exclusive
#SBATCH --output=energy-star-%A_%a.out
set -euo pipefail
{backend}{endpoint}ARGS_LINE=$(sed -n "$((SLURM_ARRAY_TASK_ID + 1))p" energy_star_array.args)
eval "set -- $ARGS_LINE"
if [ -n "${{SIF:-}}" ]; then
  exec apptainer exec --nv "$SIF" energy-star "$@"
else
  exec energy-star "$@"
fi
"#,
        n = rows.len(),
        last = rows.len().saturating_sub(1),
        gpus = c.gpus,
        image = c.image,
    );
    (script, lines)
}

/// How a local batch went.
#[derive(Debug, Default)]
pub struct LocalDone {
    pub ran: usize,
    pub skipped: usize,
    pub failed: usize,
    pub interrupted: bool,
    pub master: PathBuf,
}

/// Runs every model not already done, one after another, as child processes of `exe` (a
/// failing or crashing run cannot take the batch down), each with its own results folder and
/// log; `master_results.csv` is rewritten atomically after each. `stop` is polled between runs.
pub fn run_local(
    exe: &Path,
    rows: &[ModelRow],
    opts: &BatchOptions,
    out: &Path,
    stop: &dyn Fn() -> bool,
) -> Result<LocalDone, String> {
    let master = out.join("master_results.csv");
    std::fs::create_dir_all(out.join("logs")).map_err(|e| format!("{}: {e}", out.join("logs").display()))?;
    std::fs::create_dir_all(out.join("individual_runs"))
        .map_err(|e| format!("{}: {e}", out.join("individual_runs").display()))?;
    let mut table = read_master(&master)?;
    let mut done = LocalDone { master: master.clone(), ..LocalDone::default() };
    for row in rows {
        if table.iter().any(|r| is_row_of(r, &row.model, row.state()) && is_done(r)) {
            eprintln!("energy-star batch: {} ({}) is done already; skipped", row.model, row.state());
            done.skipped += 1;
            continue;
        }
        if stop() {
            done.interrupted = true;
            break;
        }
        let dir = out.join("individual_runs").join(row.slug());
        let log_path = out.join("logs").join(format!("{}.log", row.slug()));
        let log = std::fs::File::create(&log_path).map_err(|e| format!("{}: {e}", log_path.display()))?;
        let log_err = log.try_clone().map_err(|e| format!("{}: {e}", log_path.display()))?;
        let args = run_args(row, opts, &dir.display().to_string());
        eprintln!("energy-star batch: {} ({}) → {}", row.model, row.state(), dir.display());
        let mut cmd = std::process::Command::new(exe);
        cmd.args(&args).stdout(log).stderr(log_err);
        match &opts.backend {
            Some(b) => cmd.env("BENCHMARK_BACKEND", b),
            None => cmd.env_remove("BENCHMARK_BACKEND"),
        };
        let error = match cmd.status() {
            Ok(st) if st.success() => None,
            Ok(st) => Some(failure_in_log(&log_path).unwrap_or_else(|| {
                format!(
                    "exit {}; see {}",
                    st.code().map(|c| c.to_string()).unwrap_or_else(|| "by signal".into()),
                    log_path.display()
                )
            })),
            Err(e) => Some(format!("cannot start {}: {e}", exe.display())),
        };
        done.ran += 1;
        if error.is_some() {
            done.failed += 1;
        }
        upsert(&mut table, collect_row(row, &dir, error));
        write_master(&master, &table)?;
    }
    Ok(done)
}

/// The errors and warnings a run printed in its log, when it printed any.
fn failure_in_log(log: &Path) -> Option<String> {
    let tail: String = std::fs::read_to_string(log)
        .ok()?
        .lines()
        .filter(|l| l.starts_with("Error:") || l.starts_with("warning:"))
        .collect::<Vec<_>>()
        .join(" ");
    (!tail.is_empty()).then_some(tail)
}

/// `--collect`: the table from the run folders already there (after cluster jobs). A run
/// refused before it made its folder (its plan could not run) is found by its log.
pub fn collect_all(rows: &[ModelRow], out: &Path) -> Result<(PathBuf, usize, usize, usize), String> {
    let master = out.join("master_results.csv");
    let mut table = Vec::new();
    let (mut found, mut missing) = (0, 0);
    for row in rows {
        let dir = out.join("individual_runs").join(row.slug());
        let log = out.join("logs").join(format!("{}.log", row.slug()));
        if dir.is_dir() {
            found += 1;
            upsert(&mut table, collect_row(row, &dir, None));
        } else if let Some(error) = failure_in_log(&log) {
            found += 1;
            upsert(&mut table, collect_row(row, &dir, Some(error)));
        } else {
            missing += 1;
            upsert(&mut table, collect_row(row, &dir, Some(format!("no results folder at {}", dir.display()))));
        }
    }
    write_master(&master, &table)?;
    let failed = table.iter().filter(|r| !is_done(r)).count() - missing;
    Ok((master, found, missing, failed))
}

#[cfg(test)]
mod tests {
    use super::*;

    const AIES: &str = ",Models to Add,Priority (1=hi),Class,Task,Reasoning State,Chat Template\n\
        0,https://huggingface.co/openai/gpt-oss-20b,1,B,text_gen,On (High),\"  reasoning: True\n  reasoning_params:\n    reasoning_effort: high\"\n\
        1,https://huggingface.co/HuggingFaceTB/SmolLM2-1.7B-Instruct,2,A,text_gen,N/A,\n";

    #[test]
    fn ai_energy_score_lists_are_read() {
        let rows = parse_models(AIES).expect("parse");
        assert_eq!(rows.len(), 2);
        assert_eq!(
            (rows[0].model.as_str(), rows[0].class.as_str(), rows[0].reasoning),
            ("openai/gpt-oss-20b", "B", true)
        );
        assert_eq!(rows[0].reasoning_params, vec![("reasoning_effort".to_string(), "high".to_string())]);
        assert_eq!(rows[0].slug(), "openai-gpt-oss-20b-on");
        assert!(!rows[1].reasoning);
        let o = model_overrides(&rows[0], &BatchOptions { num_prompts: Some(10), ..Default::default() });
        assert!(
            o.contains(&"++scenario.reasoning_params.reasoning_effort=high".to_string())
                && o.contains(&"scenario.generate_kwargs.max_new_tokens=8192".to_string())
        );
        assert!(o.contains(&"scenario.num_samples=10".to_string()));
    }

    #[test]
    fn bad_lists_are_refused() {
        assert!(parse_models("name\nx\n").unwrap_err().contains("no model column"));
        assert!(parse_models("model\n").unwrap_err().contains("names no models"));
        assert!(parse_models("model\na/b\na/b\n").unwrap_err().contains("listed twice"));
        assert!(parse_models("model\n\"a b\"\n").unwrap_err().contains("not a model id"));
    }

    #[test]
    fn resume_keeps_finished_rows_and_replaces_failed_ones() {
        let mut rows = vec![vec!["a".to_string(); COLUMNS.len()]];
        rows[0][3] = "off".into();
        rows[0][20] = String::new();
        rows[0][22] = "true".into();
        assert!(is_done(&rows[0]));
        let mut failed = rows[0].clone();
        failed[20] = "boom".into();
        upsert(&mut rows, failed);
        assert_eq!(rows.len(), 1);
        assert!(!is_done(&rows[0]));
    }

    #[test]
    fn tables_written_before_the_carbon_column_are_still_resumed() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("master_results.csv");
        let old_header = COLUMNS[..COLUMNS_BEFORE_CARBON].join(",");
        let old_row = vec!["x"; COLUMNS_BEFORE_CARBON].join(",");
        std::fs::write(&path, format!("{old_header}\n{old_row}\n")).expect("write");
        let rows = read_master(&path).expect("an older table reads");
        assert_eq!((rows.len(), rows[0].len(), rows[0][COLUMNS.len() - 1].as_str()), (1, COLUMNS.len(), ""));
        std::fs::write(&path, "model_name,other\n").expect("write");
        assert!(read_master(&path).unwrap_err().contains("other columns"));
    }

    #[test]
    fn slurm_lines_quote_their_arguments() {
        assert_eq!(shell_quote("backend.model=a/b"), "backend.model=a/b");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert!(dns_name(&"x".repeat(80)).len() <= 63);
        let long = "redhatai-meta-llama-3-1-8b-instruct-quantized-w4a16";
        let (on, off) = (dns_name(&format!("{long}-on")), dns_name(&format!("{long}-off")));
        assert_ne!(on, off);
        assert!(on.len() <= 63 && off.len() <= 63);
        assert_eq!(dns_name("short-off"), "energy-star-short-off");
    }
}
