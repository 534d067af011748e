//! What can go wrong between energy-star and the Hub, each said so that a user knows what to do.

use std::path::PathBuf;

/// A fetch that did not complete. Nothing half-written is left in the cache: partial blobs are
/// kept only under `*.incomplete` (to resume), and a blob that fails its checksum is deleted.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error(
        "{repo} is not in the Hugging Face cache at {cache}, and HF_HUB_OFFLINE=1 forbids downloading it (fetch it on a machine with network access: `energy-star fetch {repo}`)"
    )]
    Offline { repo: String, cache: PathBuf },

    #[error(
        "{repo} was not found on {endpoint}{}{}: check the id for a typo, or pass a local folder instead (a path such as ./{name} or /models/{name})",
        if *.token_sent { " (a token was sent)" } else { " (no token was sent; a private repo needs HF_TOKEN)" },
        if .message.is_empty() { String::new() } else { format!("; the Hub says: {}", .message) }
    )]
    RepoNotFound { repo: String, name: String, endpoint: String, token_sent: bool, message: String },

    #[error("{repo} has no revision {revision:?} on {endpoint} (a branch, tag or full commit id)")]
    RevisionNotFound { repo: String, revision: String, endpoint: String },

    #[error("{repo} at {commit} has no {file}{hint}")]
    FileNotFound { repo: String, commit: String, file: String, hint: String },

    #[error(
        "{repo} is gated (HTTP {status}): accept its licence on its page ({endpoint}/{page}) with the account whose token energy-star uses; {}{}",
        if *.token_sent { "a token was sent, so that account has no access yet" } else { "no token was sent: set HF_TOKEN or log in with `hf auth login`" },
        if .message.is_empty() { String::new() } else { format!(" (the Hub says: {})", .message) }
    )]
    Gated { repo: String, page: String, endpoint: String, status: u16, token_sent: bool, message: String },

    #[error(
        "{file} of {repo} failed its SHA-256 check (the Hub says {expected}, the bytes received hash to {actual}); the partial blob was deleted"
    )]
    Checksum { repo: String, file: String, expected: String, actual: String },

    #[error("{file} of {repo} arrived with {actual} bytes, the Hub says {expected}; the partial blob was deleted")]
    Size { repo: String, file: String, expected: u64, actual: u64 },

    #[error(
        "not enough disk space for {repo}: {need} bytes to download, {free} bytes free on {}; free space or set HF_HUB_CACHE to a larger disk",
        .path.display()
    )]
    DiskFull { repo: String, need: u64, free: u64, path: PathBuf },

    #[error(
        "the Hugging Face cache folder {} is not writable ({why}); set HF_HUB_CACHE or HF_HOME to a folder this user can write",
        .path.display()
    )]
    CacheNotWritable { path: PathBuf, why: String },

    #[error("{what} failed: {why}")]
    Network { what: String, why: String },

    #[error(
        "stopped while fetching {repo}: what was downloaded is kept in the cache (partial files as *.incomplete), and the next fetch resumes it"
    )]
    Interrupted { repo: String },

    #[error("{what}: HTTP {status} from {url}{}", if .body.is_empty() { String::new() } else { format!(": {}", .body) })]
    Http { what: String, url: String, status: u16, body: String },

    #[error("{0}")]
    Invalid(String),

    #[error("{}: {why}", .path.display())]
    Io { path: PathBuf, why: String },
}

impl HubError {
    pub(crate) fn io(path: impl Into<PathBuf>, e: std::io::Error) -> Self {
        let path = path.into();
        if e.kind() == std::io::ErrorKind::StorageFull {
            return HubError::Io {
                path,
                why: format!("{e}: the disk is full; free space or set HF_HUB_CACHE to a larger disk"),
            };
        }
        HubError::Io { path, why: e.to_string() }
    }
}
