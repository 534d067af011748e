//! `energy-star fetch`, and the fetch a run makes of its plan's models and datasets before it
//! starts: into the Hugging Face cache that `huggingface_hub` shares (crates/hub), never
//! inside a metered window.

use std::collections::HashMap;
use std::io::IsTerminal;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Mutex;
use std::time::Instant;

use energy_star_hub::{
    FetchProgress, Fetched, HubError, HubSettings, PlannedFile, RepoKind, RepoRef, Selection, looks_like_hub_id,
    split_gguf_id,
};
use energy_star_results::records::{RunPlan, SourceOrigin, SourceRecord};
use indicatif::{MultiProgress, ProgressBar, ProgressStyle};

use crate::cli::FetchArgs;

pub fn command(args: &FetchArgs) -> anyhow::Result<ExitCode> {
    let env = |k: &str| std::env::var(k).ok();
    let settings = HubSettings::from_env(&env)?;
    let kind = if args.dataset { RepoKind::Dataset } else { RepoKind::Model };
    let gguf = split_gguf_id(&args.id).filter(|_| kind == RepoKind::Model);
    let id = gguf.as_ref().map_or(args.id.as_str(), |(id, _)| id.as_str());
    let repo = RepoRef::parse(kind, id, args.revision.as_deref())?;
    let selection = match (kind, args.files.is_empty()) {
        (_, false) => Selection::Files(args.files.clone()),
        (RepoKind::Model, true) if gguf.is_some() => Selection::Gguf(gguf.map(|(_, f)| f).unwrap_or_default()),
        (RepoKind::Model, true) if args.no_weights => Selection::ModelWithoutWeights,
        (RepoKind::Model, true) => Selection::Model,
        (RepoKind::Dataset, true) => {
            Selection::Dataset { config: args.config.clone().unwrap_or_default(), split: args.split.clone() }
        }
    };
    let fetched = fetch_with_progress(&settings, &repo, &selection)?;
    if args.json {
        outln!("{}", serde_json::to_string_pretty(&fetched)?)?;
        return Ok(ExitCode::SUCCESS);
    }
    outln!(
        "{} {} at {} ({}) in {}",
        kind.name(),
        fetched.id,
        fetched.commit,
        if fetched.revision == fetched.commit { "pinned".to_string() } else { fetched.revision.clone() },
        fetched.snapshot.display()
    )?;
    for f in &fetched.files {
        outln!(
            "  {:<48} {:>12}  {}",
            f.path,
            human_bytes(f.bytes),
            if f.downloaded { "downloaded" } else { "cached" }
        )?;
    }
    outln!(
        "{} downloaded{}",
        human_bytes(fetched.bytes_downloaded),
        if fetched.asked_the_hub { String::new() } else { " (the cache answered alone)".to_string() }
    )?;
    Ok(ExitCode::SUCCESS)
}

/// Fetches with bars on a terminal, one log line per file otherwise; warnings to stderr.
fn fetch_with_progress(settings: &HubSettings, repo: &RepoRef, selection: &Selection) -> Result<Fetched, HubError> {
    let progress: Box<dyn FetchProgress> =
        if std::io::stderr().is_terminal() { Box::new(Bars::new()) } else { Box::new(LogLines::default()) };
    let fetched = energy_star_hub::fetch(settings, repo, selection, progress.as_ref())?;
    for w in &fetched.warnings {
        eprintln!("energy-star: warning: {w}");
    }
    Ok(fetched)
}

/// Fetches what a run's plan names from the Hub (ids not in the cache, or a branch that may
/// have moved), before the run starts, and says where each came from. `weights`: whether the
/// models' weights are read (not with `backend.no_weights`).
pub fn plan_sources(
    plan: &RunPlan,
    weights: bool,
    env: &impl Fn(&str) -> Option<String>,
) -> Result<Vec<SourceRecord>, HubError> {
    let model = if weights { Wanted::Model } else { Wanted::ModelWithoutWeights };
    let models = plan.models.iter().map(|m| (model, m));
    let datasets = plan.datasets.iter().map(|d| (Wanted::Dataset, d));
    models.chain(datasets).map(|(wanted, name)| source(wanted, name, env)).collect()
}

/// What a run or a command reads of a repo.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wanted {
    Model,
    /// Config and processor: random weights are built from them.
    ModelWithoutWeights,
    Dataset,
}

impl Wanted {
    fn kind(self) -> RepoKind {
        match self {
            Wanted::Model | Wanted::ModelWithoutWeights => RepoKind::Model,
            Wanted::Dataset => RepoKind::Dataset,
        }
    }
}

/// Where a model or dataset named `name` comes from, fetched from the Hub first when it is a
/// Hub id: built in, a local path, or the Hub.
pub fn source(wanted: Wanted, name: &str, env: &impl Fn(&str) -> Option<String>) -> Result<SourceRecord, HubError> {
    let kind = wanted.kind();
    let record = |origin, path: Option<String>| SourceRecord {
        kind: kind.name().into(),
        name: name.to_string(),
        origin,
        revision: None,
        commit: None,
        path,
        bytes_downloaded: 0,
    };
    let built_in = match kind {
        RepoKind::Model => name == energy_star_engine_local::toy::TOY_MODEL,
        RepoKind::Dataset => name == energy_star_datasets::TOY_PROMPTS,
    };
    if built_in {
        return Ok(record(SourceOrigin::BuiltIn, None));
    }
    let gguf = split_gguf_id(name).filter(|_| kind == RepoKind::Model);
    // A dataset name with a data file's extension is a path (as the dataset reader says).
    let data_file = kind == RepoKind::Dataset
        && Path::new(name)
            .extension()
            .and_then(|e| e.to_str())
            .is_some_and(|e| energy_star_hub::select::DATA_EXTENSIONS.contains(&e));
    if Path::new(name).exists() || data_file || !(looks_like_hub_id(name) || gguf.is_some()) {
        return Ok(record(SourceOrigin::Local, Some(name.to_string())));
    }
    let settings = HubSettings::from_env(env)?;
    let repo = RepoRef::parse(kind, gguf.as_ref().map_or(name, |(id, _)| id.as_str()), None)?;
    // The plan names datasets, not splits: every split's data files (the leaderboard's
    // datasets have one split).
    let selection = match (kind, gguf) {
        (RepoKind::Model, Some((_, file))) => Selection::Gguf(file),
        (RepoKind::Model, None) if wanted == Wanted::ModelWithoutWeights => Selection::ModelWithoutWeights,
        (RepoKind::Model, None) => Selection::Model,
        (RepoKind::Dataset, _) => Selection::Dataset { config: String::new(), split: None },
    };
    let f = fetch_with_progress(&settings, &repo, &selection)?;
    Ok(SourceRecord {
        revision: Some(f.revision.clone()),
        commit: Some(f.commit.clone()),
        path: Some(f.snapshot.display().to_string()),
        bytes_downloaded: f.bytes_downloaded,
        ..record(SourceOrigin::Hub, None)
    })
}

pub fn human_bytes(b: u64) -> String {
    indicatif::HumanBytes(b).to_string()
}

/// One line per file on stderr, for logs.
#[derive(Default)]
struct LogLines {
    started: Mutex<HashMap<String, Instant>>,
}

impl FetchProgress for LogLines {
    fn planned(&self, repo: &RepoRef, files: &[PlannedFile]) {
        let total: u64 = files.iter().map(|f| f.bytes.unwrap_or(0)).sum();
        eprintln!("energy-star: fetching {} ({} files, {}) from the Hub", repo.id, files.len(), human_bytes(total));
        if let Ok(mut s) = self.started.lock() {
            for f in files {
                s.insert(f.path.clone(), Instant::now());
                if f.resumed_from > 0 {
                    eprintln!("energy-star: resuming {} from {}", f.path, human_bytes(f.resumed_from));
                }
            }
        }
    }
    fn done(&self, file: &str, bytes: u64) {
        let s = self.started.lock().ok().and_then(|s| s.get(file).map(|t| t.elapsed().as_secs_f64())).unwrap_or(0.0);
        let rate = if s > 0.0 { format!(", {}/s", human_bytes((bytes as f64 / s) as u64)) } else { String::new() };
        eprintln!("energy-star: fetched {file} ({}{rate})", human_bytes(bytes));
    }
    fn retrying(&self, file: &str, attempt: u32, why: &str) {
        eprintln!("energy-star: {file}: {why}; retrying (attempt {attempt})");
    }
    fn stop_requested(&self) -> bool {
        energy_star_plugin_host::interrupted()
    }
}

/// Bars on a terminal: one per file and the total, with rate and time left.
struct Bars {
    multi: MultiProgress,
    total: Mutex<Option<ProgressBar>>,
    files: Mutex<HashMap<String, (ProgressBar, u64)>>,
}

impl Bars {
    fn new() -> Self {
        Self { multi: MultiProgress::new(), total: Mutex::new(None), files: Mutex::new(HashMap::new()) }
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template).unwrap_or_else(|_| ProgressStyle::default_bar()).progress_chars("=> ")
}

impl FetchProgress for Bars {
    fn planned(&self, repo: &RepoRef, files: &[PlannedFile]) {
        let total: u64 = files.iter().map(|f| f.bytes.unwrap_or(0)).sum();
        let bar = self.multi.add(ProgressBar::new(total));
        bar.set_style(style("{msg:36!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}"));
        bar.set_message(format!("{} (total)", repo.id));
        bar.set_position(files.iter().map(|f| f.resumed_from).sum());
        if let Ok(mut files_map) = self.files.lock() {
            for f in files {
                let b = self.multi.add(ProgressBar::new(f.bytes.unwrap_or(0)));
                b.set_style(style("  {msg:34!} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} ETA {eta}"));
                b.set_message(f.path.clone());
                b.set_position(f.resumed_from);
                files_map.insert(f.path.clone(), (b, f.resumed_from));
            }
        }
        if let Ok(mut t) = self.total.lock() {
            *t = Some(bar);
        }
    }
    fn at(&self, file: &str, bytes: u64) {
        let delta = match self.files.lock() {
            Ok(mut m) => match m.get_mut(file) {
                Some((bar, last)) => {
                    bar.set_position(bytes);
                    let d = bytes as i128 - *last as i128;
                    *last = bytes;
                    d
                }
                None => 0,
            },
            Err(_) => 0,
        };
        if let Ok(t) = self.total.lock()
            && let Some(t) = t.as_ref()
        {
            let pos = (t.position() as i128 + delta).max(0) as u64;
            t.set_position(pos);
        }
    }
    fn done(&self, file: &str, _bytes: u64) {
        if let Ok(m) = self.files.lock()
            && let Some((bar, _)) = m.get(file)
        {
            bar.finish();
        }
    }
    fn retrying(&self, file: &str, attempt: u32, why: &str) {
        let _ = self.multi.println(format!("energy-star: {file}: {why}; retrying (attempt {attempt})"));
    }
    fn stop_requested(&self) -> bool {
        energy_star_plugin_host::interrupted()
    }
}

impl Drop for Bars {
    fn drop(&mut self) {
        if let Ok(t) = self.total.lock()
            && let Some(t) = t.as_ref()
        {
            t.finish();
        }
    }
}
