//! Fetching a repo's files into the cache: what the engine or the dataset reader needs, at one
//! commit, each file resumable, verified and written whole, several at once. Nothing here runs
//! inside a metered window: a run fetches while its plan is checked, before anything is metered.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::StreamExt;
use sha2::{Digest, Sha256};

use crate::cache::{RepoCache, free_bytes};
use crate::http::{Failure, Http, Sibling};
use crate::select::{self, Weights};
use crate::{HubError, HubSettings, RepoKind, RepoRef, cached_snapshot};

/// What to take from a repo.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Selection {
    /// What the engines read: config, generation config, tokenizer or image processor files,
    /// chat template, the safetensors weights (one file, or the index and the shards it names).
    Model,
    /// [`Selection::Model`] without the weights: what a model with random weights
    /// (`backend.no_weights`) is built from.
    ModelWithoutWeights,
    /// The data files of a split, or of every split when `split` is `None`.
    Dataset { config: String, split: Option<String> },
    /// These files exactly.
    Files(Vec<String>),
    /// A GGUF file, and the repo's `tokenizer.json` beside it when it has one (the engine
    /// reads the tokenizer from there).
    Gguf(String),
}

/// One file of a fetch.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct FetchedFile {
    /// Path in the repo.
    pub path: String,
    pub bytes: u64,
    /// Whether its bytes came over the network in this fetch (else from the cache).
    pub downloaded: bool,
}

/// A repo's files in the cache at one commit.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Fetched {
    pub kind: RepoKind,
    pub id: String,
    /// As asked (`main` unless pinned).
    pub revision: String,
    /// The commit the revision resolved to.
    pub commit: String,
    pub snapshot: PathBuf,
    pub files: Vec<FetchedFile>,
    pub bytes_downloaded: u64,
    /// False when the cache answered alone (offline, a pinned commit already there, or the
    /// Hub out of reach with a cached copy).
    pub asked_the_hub: bool,
    pub warnings: Vec<String>,
}

/// A file about to be fetched: its path, size and the bytes already in a partial blob.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedFile {
    pub path: String,
    pub bytes: Option<u64>,
    pub resumed_from: u64,
}

/// Told what a fetch is doing, from several downloads at once.
pub trait FetchProgress: Send + Sync {
    /// The files about to be downloaded (the cached ones are not listed).
    fn planned(&self, _repo: &RepoRef, _files: &[PlannedFile]) {}
    /// A file's length so far.
    fn at(&self, _file: &str, _bytes: u64) {}
    /// A file is whole and in the snapshot.
    fn done(&self, _file: &str, _bytes: u64) {}
    /// A retry after a dropped connection or a server error.
    fn retrying(&self, _file: &str, _attempt: u32, _why: &str) {}
    /// Whether the user asked to stop (Ctrl-C): downloads stop at their next chunk.
    fn stop_requested(&self) -> bool {
        false
    }
}

/// No progress.
pub struct Silent;
impl FetchProgress for Silent {}

/// Fetches `selection` of `repo` into the cache and says where it is.
pub fn fetch(
    settings: &HubSettings,
    repo: &RepoRef,
    selection: &Selection,
    progress: &dyn FetchProgress,
) -> Result<Fetched, HubError> {
    let spec = format!("{}@{}", repo.id, repo.revision);
    let cached = cached_snapshot(&settings.cache, repo.kind.plural(), &spec).filter(|s| complete(s, selection));
    if settings.offline {
        return match cached {
            Some(snapshot) => from_cache(repo, snapshot, selection, Vec::new()),
            None => Err(HubError::Offline { repo: repo.id.clone(), cache: settings.cache.clone() }),
        };
    }
    // A commit never changes: a complete snapshot of it needs no question to the Hub.
    if let Some(snapshot) = cached.clone().filter(|_| repo.revision_is_commit()) {
        return from_cache(repo, snapshot, selection, Vec::new());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("energy-star-hub")
        .enable_all()
        .build()
        .map_err(|e| HubError::Invalid(format!("cannot start the download runtime: {e}")))?;
    let http = Http::new(settings)?;
    let info = match runtime.block_on(with_retries(settings, progress, "revision info", || http.revision_info(repo))) {
        Ok(info) => info,
        // As huggingface_hub: the Hub out of reach, a cached copy is used, and said so.
        Err(HubError::Http { what, status, body, .. }) if status >= 500 && cached.is_some() => {
            let snapshot = cached.unwrap_or_default();
            let warning = format!(
                "{what}: the Hub answered HTTP {status} ({body}); using the cached copy at {}",
                snapshot.display()
            );
            return from_cache(repo, snapshot, selection, vec![warning]);
        }
        Err(HubError::Network { what, why }) if cached.is_some() => {
            let snapshot = cached.unwrap_or_default();
            let warning = format!("{what} failed ({why}); using the cached copy at {}", snapshot.display());
            return from_cache(repo, snapshot, selection, vec![warning]);
        }
        Err(HubError::Network { what, why }) => {
            return Err(HubError::Network {
                what,
                why: format!(
                    "{why} (is {} reachable from here? On a node without network access, fetch on one with it, `energy-star fetch {}`, and run with HF_HUB_OFFLINE=1)",
                    settings.endpoint, repo.id
                ),
            });
        }
        Err(e) => return Err(e),
    };
    let job = Job { settings, repo, http: &http, commit: info.sha.clone(), progress };
    // A name that would leave the snapshot folder (absolute, `..`) is never a path here.
    let (safe, unsafe_names): (Vec<&Sibling>, Vec<&Sibling>) =
        info.siblings.iter().partition(|s| crate::http::is_safe_repo_path(&s.rfilename));
    let mut warnings = Vec::new();
    if !unsafe_names.is_empty() {
        let names: Vec<&str> = unsafe_names.iter().map(|s| s.rfilename.as_str()).collect();
        warnings.push(format!(
            "{} lists file names that would leave the cache, ignored: {}",
            repo.id,
            names.join(", ")
        ));
    }
    let siblings: HashMap<&str, &Sibling> = safe.iter().map(|s| (s.rfilename.as_str(), *s)).collect();
    let paths: Vec<&str> = safe.iter().map(|s| s.rfilename.as_str()).collect();
    let cache = RepoCache::new(&settings.cache, &repo.cache_folder());
    let (first, weights) = match selection {
        Selection::Model | Selection::ModelWithoutWeights => {
            select::model_files(&paths, &repo.id, &job.commit, *selection == Selection::Model)?
        }
        Selection::Dataset { config, split } => {
            let files = match split {
                Some(s) => select::split_data_files(&paths, config, s),
                None => select::all_data_files(&paths, config),
            };
            if files.is_empty() {
                return Err(HubError::FileNotFound {
                    repo: repo.id.clone(),
                    commit: job.commit.clone(),
                    file: match split {
                        Some(s) => format!("data file for split {s:?}"),
                        None => "data file".into(),
                    },
                    hint: " (.parquet, .jsonl, .json or .csv)".into(),
                });
            }
            (files.into_iter().map(str::to_string).collect(), None)
        }
        Selection::Files(files) => (files.clone(), None),
        Selection::Gguf(file) => {
            let mut files = vec![file.clone()];
            if siblings.contains_key("tokenizer.json") {
                files.push("tokenizer.json".into());
            }
            (files, None)
        }
    };
    let mut fetched = runtime.block_on(job.files(&cache, &siblings, &first))?;
    if weights == Some(Weights::Sharded) {
        let index = cache.snapshot(&job.commit).join(select::SAFETENSORS_INDEX);
        let text = std::fs::read_to_string(&index).map_err(|e| HubError::io(&index, e))?;
        let shards = select::index_shards(&text)
            .map_err(|why| HubError::Invalid(format!("{} of {} {why}", select::SAFETENSORS_INDEX, repo.id)))?;
        fetched.extend(runtime.block_on(job.files(&cache, &siblings, &shards))?);
    }
    let ref_path = cache.root.join("refs").join(&repo.revision);
    let ref_is_current = std::fs::read_to_string(&ref_path).is_ok_and(|r| r.trim() == job.commit);
    if repo.revision != job.commit && !ref_is_current {
        cache.write_ref(&repo.revision, &job.commit)?;
    }
    Ok(Fetched {
        kind: repo.kind,
        id: repo.id.clone(),
        revision: repo.revision.clone(),
        snapshot: cache.snapshot(&job.commit),
        commit: job.commit,
        bytes_downloaded: fetched.iter().filter(|f| f.downloaded).map(|f| f.bytes).sum(),
        files: fetched,
        asked_the_hub: true,
        warnings,
    })
}

/// Whether a snapshot already holds what `selection` needs.
fn complete(snapshot: &Path, selection: &Selection) -> bool {
    let is_file = |f: &str| snapshot.join(f).is_file();
    match selection {
        Selection::ModelWithoutWeights => is_file("config.json") && select::PROCESSOR_FILES.iter().any(|f| is_file(f)),
        Selection::Model => {
            is_file("config.json")
                && select::PROCESSOR_FILES.iter().any(|f| is_file(f))
                && (is_file(select::SAFETENSORS)
                    || std::fs::read_to_string(snapshot.join(select::SAFETENSORS_INDEX))
                        .ok()
                        .and_then(|t| select::index_shards(&t).ok())
                        .is_some_and(|shards| shards.iter().all(|s| is_file(s))))
        }
        Selection::Dataset { config, split } => {
            let files = list_files(snapshot);
            let paths: Vec<&str> = files.iter().map(String::as_str).collect();
            match split {
                Some(s) => !select::split_data_files(&paths, config, s).is_empty(),
                None => !select::all_data_files(&paths, config).is_empty(),
            }
        }
        Selection::Files(files) => files.iter().all(|f| is_file(f)),
        Selection::Gguf(file) => is_file(file),
    }
}

/// Files below `dir`, '/'-separated, three levels deep at most (the layouts datasets use).
pub fn list_files(dir: &Path) -> Vec<String> {
    fn walk(dir: &Path, prefix: &str, depth: usize, out: &mut Vec<String>) {
        let Ok(entries) = std::fs::read_dir(dir) else { return };
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().to_string();
            let p = e.path();
            if p.is_dir() && depth > 0 {
                walk(&p, &format!("{prefix}{name}/"), depth - 1, out);
            } else if p.is_file() {
                out.push(format!("{prefix}{name}"));
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, "", 2, &mut out);
    out.sort();
    out
}

fn from_cache(
    repo: &RepoRef,
    snapshot: PathBuf,
    selection: &Selection,
    warnings: Vec<String>,
) -> Result<Fetched, HubError> {
    let commit = snapshot.file_name().map(|n| n.to_string_lossy().to_string()).unwrap_or_default();
    let files = list_files(&snapshot);
    let wanted: Vec<String> = match selection {
        Selection::Files(f) => f.clone(),
        Selection::Gguf(f) => {
            std::iter::once(f.clone()).chain(files.into_iter().filter(|p| p == "tokenizer.json")).collect()
        }
        _ => files,
    };
    Ok(Fetched {
        kind: repo.kind,
        id: repo.id.clone(),
        revision: repo.revision.clone(),
        commit,
        files: wanted
            .into_iter()
            .map(|path| FetchedFile {
                bytes: std::fs::metadata(snapshot.join(&path)).map(|m| m.len()).unwrap_or(0),
                path,
                downloaded: false,
            })
            .collect(),
        snapshot,
        bytes_downloaded: 0,
        asked_the_hub: false,
        warnings,
    })
}

/// Runs `attempt` until it succeeds, fails for good, or the retries are spent; waits 0.4 s,
/// 0.8 s, 1.6 s, 3.2 s, then 5 s between attempts.
async fn with_retries<T, F, Fut>(
    settings: &HubSettings,
    progress: &dyn FetchProgress,
    what: &str,
    mut attempt: F,
) -> Result<T, HubError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, Failure>>,
{
    let mut n = 0;
    loop {
        match attempt().await {
            Ok(v) => return Ok(v),
            Err(Failure::Fatal(e)) => return Err(e),
            Err(Failure::Retry(e)) if n >= settings.retries => return Err(e),
            Err(Failure::Retry(e)) => {
                n += 1;
                progress.retrying(what, n, &e.to_string());
                tokio::time::sleep(Duration::from_millis((200u64 << n.min(5)).min(5000))).await;
            }
        }
    }
}

struct Job<'a> {
    settings: &'a HubSettings,
    repo: &'a RepoRef,
    http: &'a Http<'a>,
    commit: String,
    progress: &'a dyn FetchProgress,
}

impl Job<'_> {
    /// Fetches `files` (repo paths), the cached ones from the cache, the rest several at once.
    async fn files(
        &self,
        cache: &RepoCache,
        siblings: &HashMap<&str, &Sibling>,
        files: &[String],
    ) -> Result<Vec<FetchedFile>, HubError> {
        let mut out = Vec::new();
        // (path, its listing, other paths with the same blob): each blob is fetched once.
        let mut todo: Vec<(&str, &Sibling, Vec<String>)> = Vec::new();
        let mut prepared = false;
        let prepare = |prepared: &mut bool| -> Result<(), HubError> {
            if !*prepared {
                cache.prepare(&self.commit)?;
                *prepared = true;
            }
            Ok(())
        };
        for f in files {
            let sib = siblings.get(f.as_str()).copied().ok_or_else(|| HubError::FileNotFound {
                repo: self.repo.id.clone(),
                commit: self.commit.clone(),
                file: f.clone(),
                hint: String::new(),
            })?;
            if let Some(p) = cache.cached_file(&self.commit, f, sib.size()) {
                out.push(FetchedFile { path: f.clone(), bytes: file_len(&p), downloaded: false });
                continue;
            }
            // The bytes may be in the cache under another commit or file name already.
            if let Some(etag) = sib.etag().filter(|e| blob_whole(&cache.blob(e), sib.size())) {
                prepare(&mut prepared)?;
                cache.link(&self.commit, f, etag)?;
                out.push(FetchedFile { path: f.clone(), bytes: sib.size().unwrap_or(0), downloaded: false });
                continue;
            }
            match todo.iter_mut().find(|(_, s, _)| s.etag().is_some() && s.etag() == sib.etag()) {
                Some((_, _, also)) => also.push(f.clone()),
                None => todo.push((f.as_str(), sib, Vec::new())),
            }
        }
        if todo.is_empty() {
            return Ok(out);
        }
        prepare(&mut prepared)?;
        let planned: Vec<PlannedFile> = todo
            .iter()
            .map(|(f, s, _)| PlannedFile {
                path: f.to_string(),
                bytes: s.size(),
                resumed_from: s.etag().map(|e| file_len(&cache.incomplete(e))).unwrap_or(0),
            })
            .collect();
        let need: u64 = planned.iter().map(|p| p.bytes.unwrap_or(0).saturating_sub(p.resumed_from)).sum();
        let blobs = cache.root.join("blobs");
        if let Some(free) = free_bytes(&blobs).filter(|free| need > *free) {
            return Err(HubError::DiskFull { repo: self.repo.id.clone(), need, free, path: blobs });
        }
        self.progress.planned(self.repo, &planned);
        // Every download runs to its end even when another fails: a failure costs only its
        // own file, and the others are whole in the cache for the next attempt.
        let results: Vec<Result<Vec<FetchedFile>, HubError>> =
            futures_util::stream::iter(todo.into_iter().map(|(f, s, also)| self.one(cache, f, s, also)))
                .buffer_unordered(self.settings.parallel_files.max(1))
                .collect()
                .await;
        for r in results {
            out.extend(r?);
        }
        out.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(out)
    }

    /// One blob: its bytes into `blobs/ETAG.incomplete` (resumed across attempts and runs),
    /// under a lock that other processes sharing the cache respect, its checks, then the blob
    /// renamed whole and linked into the snapshot at `file` and at every path in `also` (the
    /// same bytes under other names).
    async fn one(
        &self,
        cache: &RepoCache,
        file: &str,
        sib: &Sibling,
        also: Vec<String>,
    ) -> Result<Vec<FetchedFile>, HubError> {
        if sib.lfs.is_some() && sib.etag().is_none() {
            return Err(HubError::Invalid(format!(
                "the Hub gave {file} of {} an LFS hash that is not a SHA-256",
                self.repo.id
            )));
        }
        let blob_name = match sib.etag() {
            Some(e) => e.to_string(),
            None => {
                with_retries(self.settings, self.progress, file, || self.http.file_meta(self.repo, &self.commit, file))
                    .await?
                    .etag
            }
        };
        let _lock = cache.lock(&blob_name).await?;
        let done = |bytes: u64, downloaded: bool| -> Result<Vec<FetchedFile>, HubError> {
            let mut out = Vec::new();
            for path in std::iter::once(file.to_string()).chain(also.iter().cloned()) {
                cache.link(&self.commit, &path, &blob_name)?;
                out.push(FetchedFile { path, bytes, downloaded });
            }
            self.progress.done(file, bytes);
            Ok(out)
        };
        // Another process may have fetched it while this one waited for the lock.
        if blob_whole(&cache.blob(&blob_name), sib.size()) {
            return done(file_len(&cache.blob(&blob_name)), false);
        }
        let partial = cache.incomplete(&blob_name);
        let at = |bytes: u64| {
            self.progress.at(file, bytes);
            !self.progress.stop_requested()
        };
        let (partial_ref, at_ref) = (&partial, &at);
        // Each attempt asks the Hub again, so a storage URL that expired is renewed.
        let size = with_retries(self.settings, self.progress, file, || async move {
            let meta = self.http.file_meta(self.repo, &self.commit, file).await?;
            if let Some(c) = meta.commit.as_deref().filter(|c| *c != self.commit) {
                return Err(Failure::Fatal(HubError::Invalid(format!(
                    "{file} of {} resolved to commit {c}, not {} as the revision info said: the repo changed during the fetch; run again",
                    self.repo.id, self.commit
                ))));
            }
            let meta = crate::http::FileMeta { size: sib.size().or(meta.size), ..meta };
            self.http.download(self.repo, &self.commit, file, &meta, partial_ref, at_ref).await?;
            Ok(meta.size)
        })
        .await?;
        let actual_size = file_len(&partial);
        let discard = || {
            let _ = std::fs::remove_file(&partial);
        };
        if let Some(expected) = size.filter(|s| *s != actual_size) {
            discard();
            return Err(HubError::Size {
                repo: self.repo.id.clone(),
                file: file.into(),
                expected,
                actual: actual_size,
            });
        }
        if let Some(lfs) = &sib.lfs {
            let actual = sha256_of(&partial).await?;
            if !actual.eq_ignore_ascii_case(&lfs.sha256) {
                discard();
                return Err(HubError::Checksum {
                    repo: self.repo.id.clone(),
                    file: file.into(),
                    expected: lfs.sha256.clone(),
                    actual,
                });
            }
        }
        let blob = cache.blob(&blob_name);
        std::fs::rename(&partial, &blob).map_err(|e| HubError::io(&blob, e))?;
        done(actual_size, true)
    }
}

fn file_len(p: &Path) -> u64 {
    std::fs::metadata(p).map(|m| m.len()).unwrap_or(0)
}

fn blob_whole(p: &Path, size: Option<u64>) -> bool {
    std::fs::metadata(p).is_ok_and(|m| m.is_file() && size.is_none_or(|s| s == m.len()))
}

/// The file's SHA-256, read off the async workers.
async fn sha256_of(p: &Path) -> Result<String, HubError> {
    let path = p.to_path_buf();
    tokio::task::spawn_blocking(move || {
        let mut f = std::fs::File::open(&path).map_err(|e| HubError::io(&path, e))?;
        let mut h = Sha256::new();
        std::io::copy(&mut f, &mut h).map_err(|e| HubError::io(&path, e))?;
        Ok(format!("{:x}", h.finalize()))
    })
    .await
    .map_err(|e| HubError::Invalid(format!("checksum task failed: {e}")))?
}
