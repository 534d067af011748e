//! The Hub's HTTP protocol as `huggingface_hub` speaks it: revision info from the API, a file's
//! metadata from a `HEAD` on its resolve URL (`X-Repo-Commit`, `X-Linked-Etag` / `ETag`,
//! `X-Linked-Size`, the redirect to storage), and its bytes from a `GET` that resumes with `Range`.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use futures_util::StreamExt;
use reqwest::header::{self, HeaderMap};

use crate::{HubError, HubSettings, RepoRef};

/// One file as the revision info lists it.
#[derive(Debug, Clone, serde::Deserialize)]
pub struct Sibling {
    pub rfilename: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(rename = "blobId", default)]
    pub blob_id: Option<String>,
    #[serde(default)]
    pub lfs: Option<Lfs>,
}

#[derive(Debug, Clone, serde::Deserialize)]
pub struct Lfs {
    pub sha256: String,
    pub size: u64,
}

impl Sibling {
    pub fn size(&self) -> Option<u64> {
        self.lfs.as_ref().map(|l| l.size).or(self.size)
    }

    /// The blob name the cache gives it: the LFS SHA-256, else the git blob id; None unless it
    /// is one (a name from the server becomes a path in the cache).
    pub fn etag(&self) -> Option<&str> {
        self.lfs.as_ref().map(|l| l.sha256.as_str()).or(self.blob_id.as_deref()).filter(|e| is_blob_name(e))
    }
}

/// A git blob id (40 hex digits) or a SHA-256 (64): the only names a blob may have here.
pub fn is_blob_name(e: &str) -> bool {
    matches!(e.len(), 40 | 64) && e.bytes().all(|b| b.is_ascii_hexdigit())
}

/// A repo path that stays inside a snapshot: relative, '/'-separated, no empty, `.` or `..`
/// part (huggingface_hub refuses the same).
pub fn is_safe_repo_path(p: &str) -> bool {
    !p.is_empty()
        && !p.starts_with('/')
        && !p.contains(['\\', '\0'])
        && p.split('/').all(|part| !part.is_empty() && part != "." && part != "..")
}

#[derive(Debug, serde::Deserialize)]
pub struct RevisionInfo {
    pub sha: String,
    #[serde(default)]
    pub siblings: Vec<Sibling>,
}

/// What a `HEAD` on a resolve URL says.
#[derive(Debug, Clone)]
pub struct FileMeta {
    pub etag: String,
    pub size: Option<u64>,
    pub commit: Option<String>,
    /// Where the bytes are (the storage URL after a redirect, or the resolve URL itself).
    pub location: reqwest::Url,
}

pub struct Http<'a> {
    settings: &'a HubSettings,
    /// No redirects: the Hub's headers on its own 3xx are the metadata.
    api: reqwest::Client,
    /// Follows redirects; drops the token when one leaves the endpoint's origin.
    bytes: reqwest::Client,
}

/// Whether a failure is worth another attempt (the network, or the server's 5xx).
pub enum Failure {
    Retry(HubError),
    Fatal(HubError),
}

fn network(what: &str, e: reqwest::Error) -> HubError {
    // reqwest's Display hides the cause ("error sending request"); the chain says what happened.
    let mut why = e.to_string();
    let mut src = std::error::Error::source(&e);
    while let Some(s) = src {
        why.push_str(&format!(": {s}"));
        src = s.source();
    }
    HubError::Network { what: what.to_string(), why }
}

fn header_str<'h>(h: &'h HeaderMap, name: &str) -> Option<&'h str> {
    h.get(name).and_then(|v| v.to_str().ok()).map(str::trim).filter(|v| !v.is_empty())
}

/// `W/"abc"` → `abc`.
fn normalize_etag(e: &str) -> String {
    e.trim().trim_start_matches("W/").trim_matches('"').to_string()
}

impl<'a> Http<'a> {
    pub fn new(settings: &'a HubSettings) -> Result<Self, HubError> {
        let agent = format!("energy-star/{}; hf_hub-compatible", env!("CARGO_PKG_VERSION"));
        let build = |redirects: reqwest::redirect::Policy| {
            reqwest::Client::builder()
                .user_agent(agent.clone())
                .connect_timeout(Duration::from_secs(10))
                .read_timeout(Duration::from_secs(60))
                .redirect(redirects)
                .build()
                .map_err(|e| HubError::Invalid(format!("cannot start an HTTP client: {e}")))
        };
        Ok(Self {
            settings,
            api: build(reqwest::redirect::Policy::none())?,
            bytes: build(reqwest::redirect::Policy::limited(10))?,
        })
    }

    fn same_origin(&self, url: &reqwest::Url) -> bool {
        reqwest::Url::parse(&self.settings.endpoint).is_ok_and(|e| {
            e.scheme() == url.scheme()
                && e.host() == url.host()
                && e.port_or_known_default() == url.port_or_known_default()
        })
    }

    /// The token goes to the endpoint's own origin only, never to storage elsewhere.
    fn authorize(&self, req: reqwest::RequestBuilder, url: &reqwest::Url) -> reqwest::RequestBuilder {
        match (&self.settings.token, self.same_origin(url)) {
            (Some(t), true) => req.bearer_auth(&t.value),
            _ => req,
        }
    }

    fn token_sent(&self) -> bool {
        self.settings.token.is_some()
    }

    /// Turns an error response into what it means, with the Hub's `X-Error-Code` when given.
    async fn error(&self, repo: &RepoRef, commit: &str, file: Option<&str>, resp: reqwest::Response) -> HubError {
        let status = resp.status().as_u16();
        let url = resp.url().to_string();
        let code = header_str(resp.headers(), "x-error-code").unwrap_or("").to_string();
        let header_msg = header_str(resp.headers(), "x-error-message").map(str::to_string);
        let body = resp.text().await.unwrap_or_default();
        let message = header_msg.unwrap_or_else(|| {
            // The Hub's JSON errors are {"error": "..."}.
            serde_json::from_str::<serde_json::Value>(&body)
                .ok()
                .and_then(|v| v.get("error").and_then(|e| e.as_str()).map(str::to_string))
                .unwrap_or_else(|| body.chars().take(300).collect())
        });
        let endpoint = self.settings.endpoint.clone();
        let from_hub = reqwest::Url::parse(&url).is_ok_and(|u| self.same_origin(&u));
        // A bare 403 means gated only from the Hub itself; from storage it is an expired URL.
        let gated = code == "GatedRepo" || (code.is_empty() && status == 403 && from_hub);
        match (code.as_str(), status, file) {
            _ if gated => HubError::Gated {
                repo: repo.id.clone(),
                page: repo.page(),
                endpoint,
                status,
                token_sent: self.token_sent(),
                message,
            },
            ("RevisionNotFound", ..) => {
                HubError::RevisionNotFound { repo: repo.id.clone(), revision: repo.revision.clone(), endpoint }
            }
            ("EntryNotFound", ..) | ("", 404, Some(_)) => HubError::FileNotFound {
                repo: repo.id.clone(),
                commit: commit.to_string(),
                file: file.unwrap_or("?").to_string(),
                hint: String::new(),
            },
            // The Hub answers 401 for a repo that does not exist (or is private) to anyone
            // without access, so a missing repo and a private one look alike.
            ("RepoNotFound", ..) | ("", 401 | 404, None) => HubError::RepoNotFound {
                repo: repo.id.clone(),
                name: repo.id.rsplit('/').next().unwrap_or(&repo.id).to_string(),
                endpoint,
                token_sent: self.token_sent(),
                // With a token, a 401 may mean the token itself is refused: the Hub's words say.
                message: if self.token_sent() { message } else { String::new() },
            },
            _ => HubError::Http {
                what: format!("{} {}", repo.id, file.unwrap_or("revision info")),
                url,
                status,
                body: message,
            },
        }
    }

    pub async fn revision_info(&self, repo: &RepoRef) -> Result<RevisionInfo, Failure> {
        let url = repo.revision_url(&self.settings.endpoint);
        let parsed = reqwest::Url::parse(&url).map_err(|e| Failure::Fatal(HubError::Invalid(format!("{url}: {e}"))))?;
        let what = format!("asking {} for {} at {}", self.settings.endpoint, repo.id, repo.revision);
        let resp = self
            .authorize(self.api.get(parsed.clone()), &parsed)
            .timeout(Duration::from_secs(60))
            .send()
            .await
            .map_err(|e| Failure::Retry(network(&what, e)))?;
        if resp.status().is_server_error() || resp.status().as_u16() == 429 {
            return Err(Failure::Retry(self.error(repo, &repo.revision, None, resp).await));
        }
        if !resp.status().is_success() {
            return Err(Failure::Fatal(self.error(repo, &repo.revision, None, resp).await));
        }
        let text = resp.text().await.map_err(|e| Failure::Retry(network(&what, e)))?;
        let info: RevisionInfo = serde_json::from_str(&text).map_err(|e| {
            Failure::Fatal(HubError::Invalid(format!("{url} answered with revision info energy-star cannot read: {e}")))
        })?;
        if !crate::repo::is_commit(&info.sha) {
            return Err(Failure::Fatal(HubError::Invalid(format!(
                "{url} gave {:?} as the commit, not a commit id",
                info.sha
            ))));
        }
        Ok(info)
    }

    /// `HEAD` on the resolve URL, through the Hub's own relative redirects (a renamed repo) but
    /// not into storage: the storage redirect carries the metadata.
    pub async fn file_meta(&self, repo: &RepoRef, commit: &str, file: &str) -> Result<FileMeta, Failure> {
        let fatal = |e| Failure::Fatal(e);
        let mut url = reqwest::Url::parse(&repo.resolve_url(&self.settings.endpoint, commit, file))
            .map_err(|e| fatal(HubError::Invalid(e.to_string())))?;
        let what = format!("asking {} about {file} of {}", self.settings.endpoint, repo.id);
        for _ in 0..5 {
            let resp = self
                .authorize(self.api.head(url.clone()), &url)
                .header(header::ACCEPT_ENCODING, "identity")
                .timeout(Duration::from_secs(60))
                .send()
                .await
                .map_err(|e| Failure::Retry(network(&what, e)))?;
            let h = resp.headers();
            let status = resp.status();
            let linked = header_str(h, "x-linked-etag");
            let etag = linked.or_else(|| header_str(h, "etag")).map(normalize_etag);
            let size = header_str(h, "x-linked-size")
                .or_else(|| if linked.is_none() { header_str(h, "content-length") } else { None })
                .and_then(|s| s.parse().ok());
            let commit_header = header_str(h, "x-repo-commit").map(str::to_string);
            if status.is_redirection() {
                let loc = header_str(h, "location")
                    .ok_or_else(|| fatal(HubError::Invalid(format!("{url} redirects without a Location"))))?;
                let next =
                    url.join(loc).map_err(|e| fatal(HubError::Invalid(format!("{url} redirects to {loc}: {e}"))))?;
                if let Some(etag) = etag.filter(|e| linked.is_some() && is_blob_name(e)) {
                    return Ok(FileMeta { etag, size, commit: commit_header, location: next });
                }
                url = next;
                continue;
            }
            if status.is_server_error() || status.as_u16() == 429 {
                return Err(Failure::Retry(self.error(repo, commit, Some(file), resp).await));
            }
            if !status.is_success() {
                return Err(fatal(self.error(repo, commit, Some(file), resp).await));
            }
            let etag = etag.filter(|e| is_blob_name(e)).ok_or_else(|| {
                fatal(HubError::Invalid(format!("{url} gives no ETag: is HF_ENDPOINT a Hugging Face Hub?")))
            })?;
            return Ok(FileMeta { etag, size, commit: commit_header, location: url });
        }
        Err(fatal(HubError::Invalid(format!("{url}: too many redirects"))))
    }

    /// Appends the rest of the file to `partial`, resuming from its length. `at` is told the
    /// file's length so far after every chunk written, and answers whether to go on (a stop
    /// leaves the partial file for the next fetch to resume).
    pub async fn download(
        &self,
        repo: &RepoRef,
        commit: &str,
        file: &str,
        meta: &FileMeta,
        partial: &Path,
        at: &(dyn Fn(u64) -> bool + Sync),
    ) -> Result<(), Failure> {
        let io = |e| Failure::Fatal(HubError::io(partial, e));
        let have = std::fs::metadata(partial).map(|m| m.len()).unwrap_or(0);
        if meta.size.is_some_and(|s| have > s) {
            std::fs::remove_file(partial).map_err(io)?;
            return Box::pin(self.download(repo, commit, file, meta, partial, at)).await;
        }
        if have > 0 && meta.size == Some(have) {
            return Ok(());
        }
        let what = format!("downloading {file} of {}", repo.id);
        let mut req = self
            .authorize(self.bytes.get(meta.location.clone()), &meta.location)
            .header(header::ACCEPT_ENCODING, "identity");
        if have > 0 {
            req = req.header(header::RANGE, format!("bytes={have}-"));
        }
        let resp = req.send().await.map_err(|e| Failure::Retry(network(&what, e)))?;
        let status = resp.status();
        let append = match status.as_u16() {
            206 => {
                let from = header_str(resp.headers(), "content-range")
                    .and_then(|r| r.strip_prefix("bytes "))
                    .and_then(|r| r.split('-').next())
                    .and_then(|n| n.parse::<u64>().ok());
                if from != Some(have) {
                    std::fs::remove_file(partial).map_err(io)?;
                    return Err(Failure::Retry(HubError::Network {
                        what,
                        why: format!("the server resumed at {from:?}, not at byte {have}"),
                    }));
                }
                true
            }
            200 => false,
            416 => {
                // The partial does not fit the file as it is now: start again.
                std::fs::remove_file(partial).map_err(io)?;
                return Err(Failure::Retry(HubError::Network {
                    what,
                    why: "the server refused to resume (416)".into(),
                }));
            }
            // A storage URL that expired (403/410 from storage) is asked for again by the retry.
            s if s >= 500 || s == 429 || (matches!(s, 403 | 410) && !self.same_origin(resp.url())) => {
                return Err(Failure::Retry(self.error(repo, commit, Some(file), resp).await));
            }
            _ => return Err(Failure::Fatal(self.error(repo, commit, Some(file), resp).await)),
        };
        let mut out = std::fs::OpenOptions::new()
            .create(true)
            .append(append)
            .write(true)
            .truncate(!append)
            .open(partial)
            .map_err(io)?;
        let mut written = if append { have } else { 0 };
        let stopped = || Failure::Fatal(HubError::Interrupted { repo: repo.id.clone() });
        if !at(written) {
            return Err(stopped());
        }
        let mut body = resp.bytes_stream();
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| Failure::Retry(network(&what, e)))?;
            out.write_all(&chunk).map_err(io)?;
            written += chunk.len() as u64;
            if !at(written) {
                out.sync_all().map_err(io)?;
                return Err(stopped());
            }
        }
        out.sync_all().map_err(io)?;
        Ok(())
    }
}
