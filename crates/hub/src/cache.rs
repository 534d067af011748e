//! The cache layout `huggingface_hub` writes and reads, shared both ways with the Python tools:
//!
//! ```text
//! HUB_CACHE/models--ORG--NAME/
//!   blobs/ETAG                      the bytes (ETAG: the LFS SHA-256, or the git blob id)
//!   blobs/ETAG.incomplete           a download in progress, resumed from its length
//!   refs/BRANCH                     the commit the branch pointed at when last fetched
//!   snapshots/COMMIT/PATH -> ../../blobs/ETAG   relative symlinks, one per file
//! ```

use std::path::{Path, PathBuf};

use crate::HubError;

/// `HF_HOME`, else `XDG_CACHE_HOME/huggingface`, else `~/.cache/huggingface`.
pub fn hf_home(env: &impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    let set = |k: &str| env(k).filter(|s| !s.trim().is_empty());
    if let Some(h) = set("HF_HOME") {
        return Some(PathBuf::from(h));
    }
    if let Some(x) = set("XDG_CACHE_HOME") {
        return Some(PathBuf::from(x).join("huggingface"));
    }
    set("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface"))
}

/// The hub cache folder: `HF_HUB_CACHE`, else `HF_HOME/hub` (see [`hf_home`]).
pub fn hub_cache(env: &impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(d) = env("HF_HUB_CACHE").filter(|s| !s.trim().is_empty()) {
        return Some(PathBuf::from(d));
    }
    hf_home(env).map(|h| h.join("hub"))
}

/// `ORG/NAME[@REV]` → the snapshot folder in the cache, if it is there.
pub fn cached_snapshot(cache: &Path, kind: &str, id: &str) -> Option<PathBuf> {
    let (name, rev) = id.split_once('@').unwrap_or((id, "main"));
    // A revision is one path component: never `..` or a path that leaves the cache.
    if rev.is_empty() || rev.contains('/') || rev.contains('\\') || rev.contains("..") || name.contains("..") {
        return None;
    }
    let repo = cache.join(format!("{kind}--{}", name.replace('/', "--")));
    let snapshots = repo.join("snapshots");
    // A revision is a branch (refs/NAME holds the commit) or a commit itself.
    let from_ref = std::fs::read_to_string(repo.join("refs").join(rev)).map(|s| s.trim().to_string()).ok();
    let dir = snapshots.join(from_ref.as_deref().unwrap_or(rev));
    if dir.is_dir() {
        return Some(dir);
    }
    // A pin (a commit, a tag, another branch) means that snapshot or none; only the default
    // branch of a cache copied without its refs falls back to the one snapshot there is.
    if rev != "main" || from_ref.is_some() {
        return None;
    }
    let entries: Vec<PathBuf> =
        std::fs::read_dir(&snapshots).ok()?.flatten().map(|e| e.path()).filter(|p| p.is_dir()).collect();
    (entries.len() == 1).then(|| entries[0].clone())
}

/// Whether `name` can be a Hugging Face repo id (`NAME` or `ORG/NAME`, optionally `@REV`)
/// rather than a path: a path is absolute, starts with `.` or `~`, or has more than one `/`.
pub fn looks_like_hub_id(name: &str) -> bool {
    let id = name.split_once('@').map_or(name, |(n, _)| n);
    !id.is_empty()
        && !id.starts_with(['/', '.', '~'])
        && !id.contains('\\')
        && id.split('/').count() <= 2
        && id.split('/').all(|part| !part.is_empty())
}

/// `ORG/NAME/PATH.gguf[@REV]` (a GGUF file inside a Hub repo, as the Hub's URLs spell it) →
/// (`ORG/NAME[@REV]`, `PATH.gguf`); `None` for anything else.
pub fn split_gguf_id(spec: &str) -> Option<(String, String)> {
    let (path, rev) = match spec.rsplit_once('@') {
        Some((p, r)) if !r.contains('/') => (p, Some(r)),
        _ => (spec, None),
    };
    let mut parts = path.splitn(3, '/');
    let (org, name, file) = (parts.next()?, parts.next()?, parts.next()?);
    let id = format!("{org}/{name}");
    let ok = file.ends_with(".gguf")
        && looks_like_hub_id(&id)
        && !file.split('/').any(|p| p.is_empty() || p == "." || p == "..");
    ok.then(|| (rev.map_or(id.clone(), |r| format!("{id}@{r}")), file.to_string()))
}

/// The cached copy of a GGUF file named by [`split_gguf_id`]'s form, if it is there.
pub fn cached_gguf(cache: &Path, spec: &str) -> Option<PathBuf> {
    let (id, file) = split_gguf_id(spec)?;
    Some(cached_snapshot(cache, "models", &id)?.join(file)).filter(|p| p.is_file())
}

/// One repo's folder in the cache, and the operations a download needs on it.
pub(crate) struct RepoCache {
    pub root: PathBuf,
}

impl RepoCache {
    pub fn new(cache: &Path, folder: &str) -> Self {
        Self { root: cache.join(folder) }
    }

    pub fn blob(&self, etag: &str) -> PathBuf {
        self.root.join("blobs").join(etag)
    }

    pub fn incomplete(&self, etag: &str) -> PathBuf {
        self.root.join("blobs").join(format!("{etag}.incomplete"))
    }

    pub fn snapshot(&self, commit: &str) -> PathBuf {
        self.root.join("snapshots").join(commit)
    }

    /// Creates the folders and proves they are writable, before any byte is fetched.
    pub fn prepare(&self, commit: &str) -> Result<(), HubError> {
        for dir in [self.root.join("blobs"), self.snapshot(commit), self.root.join("refs")] {
            std::fs::create_dir_all(&dir)
                .map_err(|e| HubError::CacheNotWritable { path: dir.clone(), why: e.to_string() })?;
        }
        let probe = self.root.join("blobs").join(format!(".energy-star-probe-{}", std::process::id()));
        std::fs::write(&probe, b"")
            .map_err(|e| HubError::CacheNotWritable { path: self.root.join("blobs"), why: e.to_string() })?;
        let _ = std::fs::remove_file(&probe);
        Ok(())
    }

    /// The file at `snapshots/COMMIT/PATH`, if it is there and its blob is whole.
    pub fn cached_file(&self, commit: &str, path: &str, size: Option<u64>) -> Option<PathBuf> {
        let p = self.snapshot(commit).join(path);
        let meta = std::fs::metadata(&p).ok()?;
        (meta.is_file() && size.is_none_or(|s| s == meta.len())).then_some(p)
    }

    /// Holds `.locks/REPO/ETAG.lock` (huggingface_hub's lock file) exclusively until dropped,
    /// so processes sharing the cache never write one blob at once.
    pub async fn lock(&self, etag: &str) -> Result<std::fs::File, HubError> {
        let folder = self.root.file_name().map(|n| n.to_os_string()).unwrap_or_default();
        let dir = self.root.parent().unwrap_or(&self.root).join(".locks").join(folder);
        std::fs::create_dir_all(&dir)
            .map_err(|e| HubError::CacheNotWritable { path: dir.clone(), why: e.to_string() })?;
        let path = dir.join(format!("{etag}.lock"));
        let file = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| HubError::io(&path, e))?;
        tokio::task::spawn_blocking(move || {
            #[cfg(unix)]
            rustix::fs::flock(&file, rustix::fs::FlockOperation::LockExclusive)
                .map_err(|e| HubError::io(&path, e.into()))?;
            Ok(file)
        })
        .await
        .map_err(|e| HubError::Invalid(format!("lock task failed: {e}")))?
    }

    /// Points `snapshots/COMMIT/PATH` at `blobs/ETAG`, replacing what was there in one rename.
    pub fn link(&self, commit: &str, path: &str, etag: &str) -> Result<PathBuf, HubError> {
        if !crate::http::is_safe_repo_path(path) || !crate::http::is_blob_name(etag) {
            return Err(HubError::Invalid(format!(
                "refusing to link {path:?} to blob {etag:?}: not a safe repo path and blob name"
            )));
        }
        let link = self.snapshot(commit).join(path);
        let parent = link.parent().unwrap_or(&self.root).to_path_buf();
        std::fs::create_dir_all(&parent).map_err(|e| HubError::io(&parent, e))?;
        let tmp = parent.join(format!(
            ".{}.energy-star-{}",
            link.file_name().and_then(|n| n.to_str()).unwrap_or("file"),
            std::process::id()
        ));
        let _ = std::fs::remove_file(&tmp);
        #[cfg(unix)]
        {
            // Relative, as huggingface_hub writes it: the cache stays valid when moved.
            let depth = path.split('/').count() + 1;
            let target = PathBuf::from(format!("{}blobs/{etag}", "../".repeat(depth)));
            std::os::unix::fs::symlink(&target, &tmp).map_err(|e| HubError::io(&tmp, e))?;
        }
        #[cfg(not(unix))]
        std::fs::copy(self.blob(etag), &tmp).map_err(|e| HubError::io(&tmp, e))?;
        std::fs::rename(&tmp, &link).map_err(|e| HubError::io(&link, e))?;
        Ok(link)
    }

    /// `refs/REVISION` ← `commit`, written whole or not at all.
    pub fn write_ref(&self, revision: &str, commit: &str) -> Result<(), HubError> {
        let refs = self.root.join("refs");
        let tmp = refs.join(format!(".{revision}.energy-star-{}", std::process::id()));
        std::fs::write(&tmp, commit).map_err(|e| HubError::io(&tmp, e))?;
        let dest = refs.join(revision);
        std::fs::rename(&tmp, &dest).map_err(|e| HubError::io(&dest, e))
    }
}

/// Bytes free for an unprivileged user on the file system that holds `path` (or its nearest
/// existing ancestor), if the system says.
pub(crate) fn free_bytes(path: &Path) -> Option<u64> {
    let mut p = path.to_path_buf();
    while !p.exists() {
        p = p.parent()?.to_path_buf();
    }
    #[cfg(unix)]
    {
        let s = rustix::fs::statvfs(&p).ok()?;
        Some(s.f_bavail.saturating_mul(s.f_frsize))
    }
    #[cfg(not(unix))]
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_paths_are_told_apart() {
        for id in ["gpt2", "openai/gpt-oss-20b", "org/name@abc123"] {
            assert!(looks_like_hub_id(id), "{id}");
        }
        for path in ["/models/x", "./x", "../x", "~/x", "a/b/c", "a//b", "", "org/"] {
            assert!(!looks_like_hub_id(path), "{path}");
        }
    }

    #[test]
    fn a_gguf_file_is_named_inside_its_repo() {
        assert_eq!(split_gguf_id("org/m-GGUF/m.Q4_0.gguf"), Some(("org/m-GGUF".into(), "m.Q4_0.gguf".into())));
        assert_eq!(split_gguf_id("org/m/q/m.gguf@v1"), Some(("org/m@v1".into(), "q/m.gguf".into())));
        for not in ["org/m", "m.gguf", "/abs/m.gguf", "./org/m/x.gguf", "org/m/../x.gguf", "org/m/x.bin"] {
            assert_eq!(split_gguf_id(not), None, "{not}");
        }
    }

    #[test]
    fn cache_folders_follow_huggingface_hub() {
        let env = |vars: &'static [(&'static str, &'static str)]| {
            move |k: &str| vars.iter().find(|(n, _)| *n == k).map(|(_, v)| v.to_string())
        };
        assert_eq!(hub_cache(&env(&[("HF_HUB_CACHE", "/c"), ("HF_HOME", "/h")])), Some(PathBuf::from("/c")));
        assert_eq!(hub_cache(&env(&[("HF_HOME", "/h"), ("XDG_CACHE_HOME", "/x")])), Some(PathBuf::from("/h/hub")));
        assert_eq!(
            hub_cache(&env(&[("XDG_CACHE_HOME", "/x"), ("HOME", "/u")])),
            Some(PathBuf::from("/x/huggingface/hub"))
        );
        assert_eq!(hub_cache(&env(&[("HOME", "/u")])), Some(PathBuf::from("/u/.cache/huggingface/hub")));
        assert_eq!(hub_cache(&env(&[])), None);
    }

    #[test]
    fn links_are_relative_and_replace_what_was_there() {
        let tmp = tempfile::tempdir().expect("tmp");
        let repo = RepoCache::new(tmp.path(), "datasets--o--n");
        repo.prepare("c1").expect("prepare");
        std::fs::write(repo.blob("1111111111111111111111111111111111111111"), b"one").expect("blob");
        std::fs::write(repo.blob("2222222222222222222222222222222222222222"), b"two!").expect("blob");
        let link = repo.link("c1", "data/train.parquet", "1111111111111111111111111111111111111111").expect("link");
        #[cfg(unix)]
        assert_eq!(
            std::fs::read_link(&link).expect("symlink"),
            PathBuf::from("../../../blobs/1111111111111111111111111111111111111111")
        );
        assert_eq!(std::fs::read(&link).expect("read"), b"one");
        repo.link("c1", "data/train.parquet", "2222222222222222222222222222222222222222").expect("relink");
        assert_eq!(repo.cached_file("c1", "data/train.parquet", Some(4)), Some(link.clone()));
        assert_eq!(repo.cached_file("c1", "data/train.parquet", Some(3)), None);
        assert!(repo.link("c1", "../x", &"1".repeat(40)).is_err() && repo.link("c1", "y", "../../etc").is_err());
        repo.write_ref("main", "c1").expect("ref");
        assert_eq!(cached_snapshot(tmp.path(), "datasets", "o/n"), Some(repo.snapshot("c1")));
        assert!(free_bytes(&tmp.path().join("not/yet")).is_some_and(|b| b > 0));
    }
}
