//! The Hugging Face Hub's cache on this machine: where `huggingface_hub` keeps models and
//! datasets (`HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`, laid out as
//! `models--ORG--NAME/{refs,snapshots}/...`), so energy-star and the Python tools share one
//! cache. Names of repos versus paths are told apart here too.

use std::path::{Path, PathBuf};

/// The hub cache folder.
pub fn hub_cache(env: &impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if let Some(d) = env("HF_HUB_CACHE").filter(|s| !s.is_empty()) {
        return Some(PathBuf::from(d));
    }
    if let Some(h) = env("HF_HOME").filter(|s| !s.is_empty()) {
        return Some(PathBuf::from(h).join("hub"));
    }
    env("HOME").filter(|s| !s.is_empty()).map(|h| PathBuf::from(h).join(".cache/huggingface/hub"))
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
    let commit = std::fs::read_to_string(repo.join("refs").join(rev))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| rev.to_string());
    let dir = snapshots.join(&commit);
    if dir.is_dir() {
        return Some(dir);
    }
    // No ref: the only snapshot, if there is exactly one.
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
}
