//! A mock of the Hugging Face Hub's HTTP API, the parts `huggingface_hub` (and energy-star)
//! use to download, with the Hub's status codes and headers:
//!
//! - `GET /api/{models|datasets}/ID/revision/REV[?blobs=true]`: `sha` and `siblings` with
//!   `size`, `blobId` and, for LFS files, `lfs.{sha256,size}`;
//! - `GET /api/{models|datasets}/ID/tree/REV?recursive=true`: the file listing recent
//!   `huggingface_hub` versions plan a snapshot from;
//! - `HEAD|GET /[datasets/]ID/resolve/REV/PATH`: a small file is served with `ETag` (its blob
//!   id) and `X-Repo-Commit`; an LFS file answers `302` to storage with `X-Linked-Etag` (its
//!   SHA-256), `X-Linked-Size` and `X-Repo-Commit`, and an `ETag` that is not the file's;
//! - `GET /storage/SHA256`: the bytes, honouring `Range: bytes=N-` (`206`, or `416`);
//! - errors as the Hub sends them: `401` + `X-Error-Code: RepoNotFound` for a repo that does not
//!   exist, `404` + `RevisionNotFound` / `EntryNotFound`, `401`/`403` + `GatedRepo`.
//!
//! Faults are set per file: drop the connection after some bytes (a given number of times),
//! or serve bytes that do not match the advertised SHA-256. Every request is logged.

use std::collections::HashMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full, StreamBody};
use hyper::body::{Frame, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use sha2::{Digest, Sha256};
use tokio::sync::oneshot;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Model,
    Dataset,
}

#[derive(Debug, Clone)]
pub struct MockFile {
    pub path: String,
    pub bytes: Vec<u8>,
    /// Stored with LFS (served from storage by redirect, checked by SHA-256).
    pub lfs: bool,
}

impl MockFile {
    fn sha256(&self) -> String {
        hex(&Sha256::digest(&self.bytes))
    }

    /// Stands in for git's blob id (a SHA-1 of `blob LEN\0` and the bytes): 40 hex digits that
    /// change with the content, which is all a client may rely on.
    fn blob_id(&self) -> String {
        let mut h = Sha256::new();
        h.update(format!("blob {}\0", self.bytes.len()));
        h.update(&self.bytes);
        hex(&h.finalize())[..40].to_string()
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[derive(Debug, Clone)]
pub struct MockRepo {
    pub kind: Kind,
    pub id: String,
    pub commit: String,
    /// Branches and tags, each at `commit` (the mock serves one commit per repo).
    pub refs: Vec<(String, String)>,
    pub files: Vec<MockFile>,
    /// Files need the token given to [`MockHub::start`]; the revision info stays public.
    pub gated: bool,
}

/// Files the Hub stores with LFS by default (its `.gitattributes`).
fn lfs_by_name(path: &str) -> bool {
    [".safetensors", ".parquet", ".gguf", ".bin", ".pt", ".pth", ".h5", ".msgpack", ".zip"]
        .iter()
        .any(|e| path.ends_with(e))
}

impl MockRepo {
    pub fn new(kind: Kind, id: &str, files: Vec<(String, Vec<u8>)>) -> Self {
        let files: Vec<MockFile> =
            files.into_iter().map(|(path, bytes)| MockFile { lfs: lfs_by_name(&path), path, bytes }).collect();
        let mut h = Sha256::new();
        h.update(id);
        for f in &files {
            h.update(&f.path);
            h.update(&f.bytes);
        }
        let commit = hex(&h.finalize())[..40].to_string();
        Self { kind, id: id.to_string(), refs: vec![("main".into(), commit.clone())], commit, files, gated: false }
    }

    /// Every file below `dir`, at its relative path.
    pub fn from_dir(kind: Kind, id: &str, dir: &Path) -> std::io::Result<Self> {
        fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, Vec<u8>)>) -> std::io::Result<()> {
            for e in std::fs::read_dir(dir)? {
                let p = e?.path();
                if p.is_dir() {
                    walk(root, &p, out)?;
                } else {
                    let rel = p.strip_prefix(root).map_err(std::io::Error::other)?;
                    out.push((rel.to_string_lossy().replace('\\', "/"), std::fs::read(&p)?));
                }
            }
            Ok(())
        }
        let mut files = Vec::new();
        walk(dir, dir, &mut files)?;
        files.sort();
        Ok(Self::new(kind, id, files))
    }

    pub fn gated(mut self) -> Self {
        self.gated = true;
        self
    }

    /// A branch or tag `name` at the repo's commit.
    pub fn with_ref(mut self, name: &str) -> Self {
        self.refs.push((name.into(), self.commit.clone()));
        self
    }

    fn commit_of(&self, rev: &str) -> Option<&str> {
        if rev == self.commit {
            return Some(&self.commit);
        }
        self.refs.iter().find(|(n, _)| n == rev).map(|(_, c)| c.as_str())
    }
}

/// One request as the mock saw it.
#[derive(Debug, Clone, PartialEq)]
pub struct Logged {
    pub method: String,
    pub path: String,
    pub range: Option<String>,
    pub authorized: bool,
}

#[derive(Default)]
struct Faults {
    /// File path → (bytes sent before the connection drops, times left).
    drop_after: HashMap<String, (usize, u32)>,
    corrupt: Vec<String>,
    /// File path → the size the revision info claims.
    sizes: HashMap<String, u64>,
}

struct Shared {
    repos: Vec<MockRepo>,
    token: Option<String>,
    faults: Mutex<Faults>,
    log: Mutex<Vec<Logged>>,
    addr: SocketAddr,
    /// Storage answers on its own port: another origin, as the Hub's CDN is.
    storage_addr: SocketAddr,
}

pub struct MockHub {
    shared: Arc<Shared>,
    shutdown: Option<oneshot::Sender<()>>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl MockHub {
    /// Serves `repos` on 127.0.0.1; gated repos accept `token`.
    pub fn start(repos: Vec<MockRepo>, token: Option<&str>) -> std::io::Result<Self> {
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let listener = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let storage = runtime.block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))?;
        let addr = listener.local_addr()?;
        let storage_addr = storage.local_addr()?;
        let shared = Arc::new(Shared {
            repos,
            token: token.map(str::to_string),
            faults: Mutex::new(Faults::default()),
            log: Mutex::new(Vec::new()),
            addr,
            storage_addr,
        });
        let (tx, rx) = oneshot::channel();
        let s = shared.clone();
        let thread = std::thread::Builder::new().name("mock-hub".into()).spawn(move || {
            let (stop_storage, storage_rx) = oneshot::channel();
            runtime.spawn(serve(storage, s.clone(), storage_rx));
            runtime.block_on(serve(listener, s, rx));
            let _ = stop_storage.send(());
            runtime.shutdown_background();
        })?;
        Ok(Self { shared, shutdown: Some(tx), thread: Some(thread) })
    }

    /// The endpoint, for `HF_ENDPOINT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.shared.addr)
    }

    /// The next `times` downloads of `path` stop after `bytes` bytes with a dropped connection.
    pub fn drop_after(&self, path: &str, bytes: usize, times: u32) {
        if let Ok(mut f) = self.shared.faults.lock() {
            f.drop_after.insert(path.to_string(), (bytes, times));
        }
    }

    /// `path` is served with one byte changed (its advertised SHA-256 stays the true one).
    pub fn corrupt(&self, path: &str) {
        if let Ok(mut f) = self.shared.faults.lock() {
            f.corrupt.push(path.to_string());
        }
    }

    /// The revision info claims `path` is `bytes` long (a model larger than the disk).
    pub fn advertise_size(&self, path: &str, bytes: u64) {
        if let Ok(mut f) = self.shared.faults.lock() {
            f.sizes.insert(path.to_string(), bytes);
        }
    }

    pub fn requests(&self) -> Vec<Logged> {
        self.shared.log.lock().map(|l| l.clone()).unwrap_or_default()
    }

    /// Requests that carried file bytes (GETs of resolve URLs and of storage).
    pub fn byte_requests(&self) -> Vec<Logged> {
        self.requests()
            .into_iter()
            .filter(|r| r.method == "GET" && (r.path.contains("/resolve/") || r.path.starts_with("/storage/")))
            .collect()
    }

    pub fn clear_log(&self) {
        if let Ok(mut l) = self.shared.log.lock() {
            l.clear();
        }
    }
}

impl Drop for MockHub {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

async fn serve(listener: tokio::net::TcpListener, shared: Arc<Shared>, mut stop: oneshot::Receiver<()>) {
    loop {
        tokio::select! {
            _ = &mut stop => return,
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let s = shared.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| handle(req, s.clone()));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                        .await;
                });
            }
        }
    }
}

type Body = BoxBody<Bytes, std::io::Error>;

fn full(bytes: impl Into<Bytes>) -> Body {
    Full::new(bytes.into()).map_err(|never: Infallible| match never {}).boxed()
}

fn respond(status: StatusCode, headers: &[(&str, String)], body: Body) -> Response<Body> {
    let mut r = Response::new(body);
    *r.status_mut() = status;
    for (k, v) in headers {
        if let (Ok(k), Ok(v)) =
            (hyper::header::HeaderName::try_from(*k), hyper::header::HeaderValue::try_from(v.as_str()))
        {
            r.headers_mut().insert(k, v);
        }
    }
    r
}

/// An error as the Hub sends it: the code and message in headers, `{"error": ...}` as body.
fn hub_error(status: StatusCode, code: &str, message: &str) -> Response<Body> {
    respond(
        status,
        &[
            ("x-error-code", code.into()),
            ("x-error-message", message.into()),
            ("content-type", "application/json".into()),
        ],
        full(serde_json::json!({ "error": message }).to_string()),
    )
}

async fn handle(req: Request<Incoming>, shared: Arc<Shared>) -> Result<Response<Body>, Infallible> {
    let path = req.uri().path().to_string();
    let header = |n: &str| req.headers().get(n).and_then(|v| v.to_str().ok()).map(str::to_string);
    let auth = header("authorization");
    let range = header("range");
    if let Ok(mut l) = shared.log.lock() {
        l.push(Logged {
            method: req.method().to_string(),
            path: req.uri().path_and_query().map(|p| p.to_string()).unwrap_or_default(),
            range: range.clone(),
            authorized: auth.is_some(),
        });
    }
    let head = req.method() == Method::HEAD;
    if req.method() != Method::GET && !head {
        return Ok(hub_error(StatusCode::METHOD_NOT_ALLOWED, "", "method not allowed"));
    }
    let decoded = percent_decode(&path);
    let resp = if let Some(rest) = decoded.strip_prefix("/api/models/") {
        api(&shared, Kind::Model, rest)
    } else if let Some(rest) = decoded.strip_prefix("/api/datasets/") {
        api(&shared, Kind::Dataset, rest)
    } else if let Some(sha) = decoded.strip_prefix("/storage/") {
        storage(&shared, sha, range.as_deref(), head)
    } else if let Some(rest) = decoded.strip_prefix("/datasets/") {
        resolve(&shared, Kind::Dataset, rest, auth.as_deref(), head)
    } else {
        resolve(&shared, Kind::Model, decoded.trim_start_matches('/'), auth.as_deref(), head)
    };
    Ok(resp)
}

fn percent_decode(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let escaped = (b[i] == b'%' && i + 3 <= b.len())
            .then(|| std::str::from_utf8(&b[i + 1..i + 3]).ok().and_then(|h| u8::from_str_radix(h, 16).ok()))
            .flatten();
        if let Some(v) = escaped {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

fn find<'a>(shared: &'a Shared, kind: Kind, id: &str) -> Option<&'a MockRepo> {
    shared.repos.iter().find(|r| r.kind == kind && r.id == id)
}

fn not_found_repo() -> Response<Body> {
    hub_error(
        StatusCode::UNAUTHORIZED,
        "RepoNotFound",
        "Repository Not Found for url. Please make sure you specified the correct `repo_id` and `repo_type`. If you are trying to access a private or gated repo, make sure you are authenticated.",
    )
}

fn api(shared: &Shared, kind: Kind, rest: &str) -> Response<Body> {
    if let Some((id, rev)) = rest.split_once("/tree/") {
        return tree(shared, kind, id, rev);
    }
    let Some((id, rev)) = rest.split_once("/revision/") else { return not_found_repo() };
    let Some(repo) = find(shared, kind, id) else { return not_found_repo() };
    let Some(commit) = repo.commit_of(rev) else {
        return hub_error(StatusCode::NOT_FOUND, "RevisionNotFound", &format!("Invalid rev id: {rev}"));
    };
    let sizes = shared.faults.lock().map(|f| f.sizes.clone()).unwrap_or_default();
    let siblings: Vec<serde_json::Value> = repo
        .files
        .iter()
        .map(|f| {
            let size = sizes.get(&f.path).copied().unwrap_or(f.bytes.len() as u64);
            let mut s = serde_json::json!({ "rfilename": f.path, "size": size, "blobId": f.blob_id() });
            if f.lfs {
                s["lfs"] = serde_json::json!({ "sha256": f.sha256(), "size": size, "pointerSize": 134 });
            }
            s
        })
        .collect();
    let body = serde_json::json!({ "id": repo.id, "sha": commit, "private": false, "gated": if repo.gated { serde_json::json!("manual") } else { serde_json::json!(false) }, "siblings": siblings });
    respond(StatusCode::OK, &[("content-type", "application/json".into())], full(body.to_string()))
}

/// `GET /api/{kind}s/ID/tree/REV[/PATH]?recursive=true`: the listing huggingface_hub 1.x and
/// later use to plan a snapshot (files with `oid`, `size` and `lfs`; folders as entries of
/// their own), in one page.
fn tree(shared: &Shared, kind: Kind, id: &str, rev_and_path: &str) -> Response<Body> {
    let Some(repo) = find(shared, kind, id) else { return not_found_repo() };
    let (rev, prefix) = rev_and_path.split_once('/').unwrap_or((rev_and_path, ""));
    if repo.commit_of(rev).is_none() {
        return hub_error(StatusCode::NOT_FOUND, "RevisionNotFound", &format!("Invalid rev id: {rev}"));
    }
    let mut dirs: Vec<String> = Vec::new();
    let mut entries: Vec<serde_json::Value> = Vec::new();
    for f in repo.files.iter().filter(|f| prefix.is_empty() || f.path.starts_with(&format!("{prefix}/"))) {
        let mut parts: Vec<&str> = f.path.split('/').collect();
        parts.pop();
        for n in 1..=parts.len() {
            let d = parts[..n].join("/");
            if !dirs.contains(&d) {
                dirs.push(d.clone());
                entries.push(serde_json::json!({ "type": "directory", "oid": "0".repeat(40), "size": 0, "path": d }));
            }
        }
        let mut e = serde_json::json!({ "type": "file", "oid": f.blob_id(), "size": f.bytes.len(), "path": f.path });
        if f.lfs {
            e["lfs"] = serde_json::json!({ "oid": f.sha256(), "size": f.bytes.len(), "pointerSize": 134 });
        }
        entries.push(e);
    }
    respond(
        StatusCode::OK,
        &[("content-type", "application/json".into())],
        full(serde_json::Value::Array(entries).to_string()),
    )
}

fn resolve(shared: &Shared, kind: Kind, rest: &str, auth: Option<&str>, head: bool) -> Response<Body> {
    let Some((id, tail)) = rest.split_once("/resolve/") else { return not_found_repo() };
    let Some(repo) = find(shared, kind, id) else { return not_found_repo() };
    if repo.gated {
        let kind_word = if kind == Kind::Model { "model" } else { "dataset" };
        match (auth, &shared.token) {
            (None, _) => {
                return hub_error(
                    StatusCode::UNAUTHORIZED,
                    "GatedRepo",
                    &format!(
                        "Access to {kind_word} {id} is restricted. You must have access to it and be authenticated to access it. Please log in."
                    ),
                );
            }
            (Some(a), Some(t)) if a == format!("Bearer {t}") => {}
            (Some(_), _) => {
                return hub_error(
                    StatusCode::FORBIDDEN,
                    "GatedRepo",
                    &format!(
                        "Access to {kind_word} {id} is restricted and you are not in the authorized list. Visit https://huggingface.co/{id} to ask for access."
                    ),
                );
            }
        }
    }
    let Some((rev, file)) = tail.split_once('/') else { return not_found_repo() };
    let Some(commit) = repo.commit_of(rev) else {
        return hub_error(StatusCode::NOT_FOUND, "RevisionNotFound", &format!("Invalid rev id: {rev}"));
    };
    let Some(f) = repo.files.iter().find(|f| f.path == file) else {
        return hub_error(StatusCode::NOT_FOUND, "EntryNotFound", &format!("{file} does not exist on \"{rev}\""));
    };
    if f.lfs {
        let sha = f.sha256();
        return respond(
            StatusCode::FOUND,
            &[
                ("location", format!("http://{}/storage/{sha}", shared.storage_addr)),
                ("x-linked-etag", format!("\"{sha}\"")),
                ("x-linked-size", f.bytes.len().to_string()),
                ("x-repo-commit", commit.to_string()),
                ("etag", "W/\"not-the-file\"".into()),
            ],
            full(Bytes::new()),
        );
    }
    let headers = [
        ("etag", format!("\"{}\"", f.blob_id())),
        ("x-repo-commit", commit.to_string()),
        ("content-length", f.bytes.len().to_string()),
    ];
    let body = if head { full(Bytes::new()) } else { full(f.bytes.clone()) };
    respond(StatusCode::OK, &headers, body)
}

fn storage(shared: &Shared, sha: &str, range: Option<&str>, head: bool) -> Response<Body> {
    let Some(f) = shared.repos.iter().flat_map(|r| &r.files).find(|f| f.lfs && f.sha256() == sha) else {
        return respond(StatusCode::NOT_FOUND, &[], full("no such object"));
    };
    let len = f.bytes.len();
    let start = match range.and_then(|r| r.strip_prefix("bytes=")).and_then(|r| r.strip_suffix('-')) {
        Some(n) => match n.parse::<usize>() {
            Ok(n) if n < len => Some(n),
            _ => {
                return respond(
                    StatusCode::RANGE_NOT_SATISFIABLE,
                    &[("content-range", format!("bytes */{len}"))],
                    full(Bytes::new()),
                );
            }
        },
        None => None,
    };
    let mut bytes = f.bytes.clone();
    let (drop_after, corrupt) = match shared.faults.lock() {
        Ok(mut faults) => {
            let drop = match faults.drop_after.get_mut(&f.path) {
                Some((n, times)) if *times > 0 => {
                    *times -= 1;
                    Some(*n)
                }
                _ => None,
            };
            (drop, faults.corrupt.contains(&f.path))
        }
        Err(_) => (None, false),
    };
    if corrupt && !bytes.is_empty() {
        bytes[len / 2] ^= 0xff;
    }
    let from = start.unwrap_or(0);
    let part = Bytes::from(bytes).slice(from..);
    let (status, mut headers) = match start {
        Some(n) => (StatusCode::PARTIAL_CONTENT, vec![("content-range", format!("bytes {n}-{}/{len}", len - 1))]),
        None => (StatusCode::OK, vec![]),
    };
    headers.push(("content-length", part.len().to_string()));
    headers.push(("accept-ranges", "bytes".into()));
    if head {
        return respond(status, &headers, full(Bytes::new()));
    }
    let body = match drop_after {
        Some(n) if n < part.len() => {
            let head = part.slice(..n);
            // The bytes before the drop are given time to reach the client; then the
            // connection is aborted mid-body.
            let frames = futures_util::stream::unfold(0u8, move |step| {
                let head = head.clone();
                async move {
                    match step {
                        0 => Some((Ok(Frame::data(head)), 1)),
                        1 => {
                            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                            Some((
                                Err(std::io::Error::new(
                                    std::io::ErrorKind::ConnectionReset,
                                    "mock-hub dropped the connection",
                                )),
                                2,
                            ))
                        }
                        _ => None,
                    }
                }
            });
            StreamBody::new(frames).boxed()
        }
        _ => full(part),
    };
    respond(status, &headers, body)
}
