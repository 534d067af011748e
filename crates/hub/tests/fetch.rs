//! Fetches against a mock of the Hub's HTTP API (`tests/mock-hub`): the protocol as
//! `huggingface_hub` uses it, its errors, and the cache layout it writes. No test reaches the
//! real Hub.

use std::path::{Path, PathBuf};

use energy_star_hub::{FetchProgress, HubError, HubSettings, PlannedFile, RepoKind, RepoRef, Selection, Silent, fetch};
use energy_star_mock_hub::{Kind, MockHub, MockRepo};

/// Bytes that differ per seed, so every blob is its own.
fn noise(seed: u8, len: usize) -> Vec<u8> {
    let mut x = u32::from(seed).wrapping_mul(2_654_435_761).wrapping_add(1);
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            x as u8
        })
        .collect()
}

fn f(path: &str, bytes: Vec<u8>) -> (String, Vec<u8>) {
    (path.to_string(), bytes)
}

/// A sharded model with what the engine reads and what it does not.
fn sharded_model() -> MockRepo {
    let index = r#"{"metadata": {}, "weight_map": {"a.weight": "model-00001-of-00002.safetensors", "b.weight": "model-00002-of-00002.safetensors"}}"#;
    MockRepo::new(
        Kind::Model,
        "org/tiny",
        vec![
            f("config.json", br#"{"model_type": "llama"}"#.to_vec()),
            f("generation_config.json", b"{}".to_vec()),
            f("tokenizer.json", b"{\"version\": \"1.0\"}".to_vec()),
            f("tokenizer_config.json", b"{}".to_vec()),
            f("model.safetensors.index.json", index.as_bytes().to_vec()),
            f("model-00001-of-00002.safetensors", noise(1, 300_000)),
            f("model-00002-of-00002.safetensors", noise(2, 200_000)),
            f("pytorch_model.bin", noise(3, 1000)),
            f("original/consolidated.safetensors", noise(4, 1000)),
            f("README.md", b"# tiny".to_vec()),
        ],
    )
    .with_ref("v1")
}

fn dataset() -> MockRepo {
    MockRepo::new(
        Kind::Dataset,
        "EnergyStarAI/text_generation",
        vec![
            f("README.md", b"---\nconfigs: []\n---".to_vec()),
            f("data/train-00000-of-00001.parquet", noise(5, 50_000)),
            f("data/test-00000-of-00001.parquet", noise(6, 10_000)),
        ],
    )
}

fn settings(hub: &MockHub, cache: &Path) -> HubSettings {
    HubSettings {
        endpoint: hub.url(),
        token: None,
        offline: false,
        cache: cache.to_path_buf(),
        parallel_files: 4,
        retries: 3,
    }
}

fn model(spec: &str) -> RepoRef {
    RepoRef::parse(RepoKind::Model, spec, None).expect("repo id")
}

fn cache_files(root: &Path) -> Vec<String> {
    let mut out = Vec::new();
    fn walk(root: &Path, dir: &Path, out: &mut Vec<String>) {
        for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            if p.is_dir() && !p.is_symlink() {
                walk(root, &p, out);
            } else {
                out.push(p.strip_prefix(root).expect("below").to_string_lossy().to_string());
            }
        }
    }
    walk(root, root, &mut out);
    out.sort();
    out
}

#[test]
fn a_sharded_model_lands_in_huggingface_hubs_layout_with_only_what_the_engine_reads() {
    let hub = MockHub::start(vec![sharded_model()], None).expect("mock hub");
    let cache = tempfile::tempdir().expect("tmp");
    let got = fetch(&settings(&hub, cache.path()), &model("org/tiny"), &Selection::Model, &Silent).expect("fetched");
    let repo = cache.path().join("models--org--tiny");
    assert_eq!(got.snapshot, repo.join("snapshots").join(&got.commit));
    assert_eq!(std::fs::read_to_string(repo.join("refs/main")).expect("ref"), got.commit);
    let names: Vec<&str> = got.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(
        names,
        [
            "config.json",
            "generation_config.json",
            "model.safetensors.index.json",
            "tokenizer.json",
            "tokenizer_config.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors"
        ]
    );
    assert!(got.files.iter().all(|f| f.downloaded));
    assert_eq!(got.bytes_downloaded, got.files.iter().map(|f| f.bytes).sum::<u64>());
    // Shards are LFS blobs named by their SHA-256, linked relatively from the snapshot.
    let shard = got.snapshot.join("model-00001-of-00002.safetensors");
    let target = std::fs::read_link(&shard).expect("a symlink");
    let sha = target.file_name().expect("blob").to_string_lossy().to_string();
    assert!(target.starts_with("../../blobs") && sha.len() == 64, "{}", target.display());
    assert_eq!(std::fs::read(&shard).expect("read"), noise(1, 300_000));
    // Nothing else was asked for, and nothing partial is left.
    let asked: Vec<String> = hub.requests().iter().map(|r| r.path.clone()).collect();
    assert!(
        !asked.iter().any(|p| p.contains("pytorch_model.bin") || p.contains("original/") || p.contains("README")),
        "{asked:?}"
    );
    assert!(!cache_files(&repo).iter().any(|p| p.ends_with(".incomplete")), "{:?}", cache_files(&repo));
}

#[test]
fn a_datasets_split_is_fetched_as_its_parquet_files() {
    let hub = MockHub::start(vec![dataset()], None).expect("mock hub");
    let cache = tempfile::tempdir().expect("tmp");
    let repo = RepoRef::parse(RepoKind::Dataset, "EnergyStarAI/text_generation", None).expect("id");
    let split = Selection::Dataset { config: String::new(), split: Some("train".into()) };
    let got = fetch(&settings(&hub, cache.path()), &repo, &split, &Silent).expect("fetched");
    assert_eq!(got.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["data/train-00000-of-00001.parquet"]);
    assert!(got.snapshot.starts_with(cache.path().join("datasets--EnergyStarAI--text_generation/snapshots")));
    assert!(hub.requests().iter().any(|r| r.path.starts_with("/datasets/EnergyStarAI/text_generation/resolve/")));
    // Every split, as a run whose plan names only the dataset fetches it.
    let all = Selection::Dataset { config: String::new(), split: None };
    let got = fetch(&settings(&hub, cache.path()), &repo, &all, &Silent).expect("fetched");
    assert_eq!(got.files.len(), 2);
    assert_eq!(got.files.iter().filter(|f| f.downloaded).count(), 1, "the train split was already there");
}

#[derive(Default)]
struct Recorder(std::sync::Mutex<Vec<String>>);
impl FetchProgress for Recorder {
    fn planned(&self, _: &RepoRef, files: &[PlannedFile]) {
        for p in files {
            self.0.lock().expect("lock").push(format!("plan {} {:?} from {}", p.path, p.bytes, p.resumed_from));
        }
    }
    fn retrying(&self, file: &str, attempt: u32, _why: &str) {
        self.0.lock().expect("lock").push(format!("retry {file} {attempt}"));
    }
    fn done(&self, file: &str, bytes: u64) {
        self.0.lock().expect("lock").push(format!("done {file} {bytes}"));
    }
}

#[test]
fn a_dropped_connection_resumes_where_it_stopped_within_a_fetch_and_across_fetches() {
    let hub = MockHub::start(vec![sharded_model()], None).expect("mock hub");
    let cache = tempfile::tempdir().expect("tmp");
    let shard = "model-00001-of-00002.safetensors";
    // Within one fetch: the retry asks for the rest only.
    hub.drop_after(shard, 100_000, 1);
    let progress = Recorder::default();
    let got = fetch(&settings(&hub, cache.path()), &model("org/tiny"), &Selection::Model, &progress).expect("fetched");
    assert_eq!(std::fs::read(got.snapshot.join(shard)).expect("read"), noise(1, 300_000));
    let ranges: Vec<Option<String>> =
        hub.byte_requests().iter().filter(|r| r.path.starts_with("/storage/")).map(|r| r.range.clone()).collect();
    assert!(ranges.contains(&Some("bytes=100000-".into())), "{ranges:?}");
    assert!(progress.0.lock().expect("lock").iter().any(|l| l == &format!("retry {shard} 1")));

    // Across fetches: a fetch that gives up keeps the partial blob, and the next resumes it.
    let cache = tempfile::tempdir().expect("tmp");
    let mut no_retries = settings(&hub, cache.path());
    no_retries.retries = 0;
    hub.drop_after(shard, 120_000, 1);
    hub.clear_log();
    let err = fetch(&no_retries, &model("org/tiny"), &Selection::Model, &Silent).unwrap_err();
    assert!(matches!(err, HubError::Network { .. }), "{err}");
    let repo = cache.path().join("models--org--tiny");
    let partials: Vec<String> = cache_files(&repo).into_iter().filter(|p| p.ends_with(".incomplete")).collect();
    assert_eq!(partials.len(), 1, "{:?}", cache_files(&repo));
    assert!(!cache_files(&repo).iter().any(|p| p.ends_with(shard)), "no link to a partial blob");
    let progress = Recorder::default();
    fetch(&no_retries, &model("org/tiny"), &Selection::Model, &progress).expect("resumed");
    assert!(
        progress
            .0
            .lock()
            .expect("lock")
            .iter()
            .any(|l| l.starts_with(&format!("plan {shard} Some(300000) from 120000")))
    );
    assert!(hub.byte_requests().iter().any(|r| r.range.as_deref() == Some("bytes=120000-")));
}

#[test]
fn a_wrong_checksum_deletes_the_partial_blob_and_names_the_file() {
    let hub = MockHub::start(vec![sharded_model()], None).expect("mock hub");
    let cache = tempfile::tempdir().expect("tmp");
    hub.corrupt("model-00002-of-00002.safetensors");
    let err = fetch(&settings(&hub, cache.path()), &model("org/tiny"), &Selection::Model, &Silent).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, HubError::Checksum { .. }) && msg.contains("model-00002-of-00002.safetensors"), "{msg}");
    let files = cache_files(&cache.path().join("models--org--tiny"));
    assert!(
        !files.iter().any(|p| p.ends_with(".incomplete") || p.ends_with("model-00002-of-00002.safetensors")),
        "{files:?}"
    );
}

#[test]
fn a_gated_model_says_what_to_do_and_whether_a_token_was_sent() {
    let hub = MockHub::start(vec![sharded_model().gated()], Some("hf_good")).expect("mock hub");
    let cache = tempfile::tempdir().expect("tmp");
    let mut s = settings(&hub, cache.path());
    let err = fetch(&s, &model("org/tiny"), &Selection::Model, &Silent).unwrap_err();
    let msg = err.to_string();
    assert!(
        matches!(err, HubError::Gated { status: 401, token_sent: false, .. })
            && msg.contains("accept its licence")
            && msg.contains(&format!("{}/org/tiny", hub.url()))
            && msg.contains("no token was sent"),
        "{msg}"
    );
    let token = |v: &str| {
        HubSettings::from_env(&|k: &str| match k {
            "HF_TOKEN" => Some(v.to_string()),
            "HF_HUB_CACHE" => Some(cache.path().to_string_lossy().to_string()),
            _ => None,
        })
        .expect("settings")
        .token
    };
    s.token = token("hf_wrong");
    let err = fetch(&s, &model("org/tiny"), &Selection::Model, &Silent).unwrap_err();
    assert!(matches!(err, HubError::Gated { status: 403, token_sent: true, .. }), "{err}");
    assert!(err.to_string().contains("that account has no access yet"), "{err}");
    s.token = token("hf_good");
    hub.clear_log();
    fetch(&s, &model("org/tiny"), &Selection::Model, &Silent).expect("with access");
    // The token goes to the Hub, never to the storage it redirects to.
    let reqs = hub.requests();
    assert!(reqs.iter().filter(|r| r.path.contains("/resolve/")).all(|r| r.authorized));
    assert!(reqs.iter().filter(|r| r.path.starts_with("/storage/")).all(|r| !r.authorized), "{reqs:?}");
}

#[test]
fn missing_repos_revisions_and_files_are_named() {
    let no_tokenizer = MockRepo::new(
        Kind::Model,
        "org/no-tok",
        vec![
            f("config.json", b"{}".to_vec()),
            f("tokenizer.model", b"x".to_vec()),
            f("model.safetensors", noise(7, 10)),
        ],
    );
    let hub = MockHub::start(vec![sharded_model(), no_tokenizer], None).expect("mock hub");
    let cache = tempfile::tempdir().expect("tmp");
    let s = settings(&hub, cache.path());
    let err = fetch(&s, &model("org/tinny"), &Selection::Model, &Silent).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, HubError::RepoNotFound { .. }) && msg.contains("typo") && msg.contains("./tinny"), "{msg}");
    let err = fetch(&s, &model("org/tiny@v9"), &Selection::Model, &Silent).unwrap_err();
    assert!(matches!(err, HubError::RevisionNotFound { .. }) && err.to_string().contains("\"v9\""), "{err}");
    let err = fetch(&s, &model("org/no-tok"), &Selection::Model, &Silent).unwrap_err();
    assert!(err.to_string().contains("has no tokenizer.json") && err.to_string().contains("tokenizer.model"), "{err}");
    let err = fetch(&s, &model("org/tiny"), &Selection::Files(vec!["tiny-Q4_0.gguf".into()]), &Silent).unwrap_err();
    assert!(matches!(err, HubError::FileNotFound { .. }) && err.to_string().contains("tiny-Q4_0.gguf"), "{err}");
    // Refusals before a byte: nothing half-written in the cache.
    let written = cache_files(cache.path());
    assert!(!written.iter().any(|p| p.contains("blobs/") && !p.contains(".energy-star-probe")), "{written:?}");
}

#[test]
fn a_revision_pin_fetches_that_commit_and_a_pinned_commit_in_the_cache_needs_no_network() {
    let repo = sharded_model();
    let commit = repo.commit.clone();
    let hub = MockHub::start(vec![repo], None).expect("mock hub");
    let cache = tempfile::tempdir().expect("tmp");
    let s = settings(&hub, cache.path());
    let got = fetch(&s, &model("org/tiny@v1"), &Selection::Model, &Silent).expect("tag");
    assert_eq!(got.commit, commit);
    let refs = cache.path().join("models--org--tiny/refs");
    assert_eq!(std::fs::read_to_string(refs.join("v1")).expect("tag ref"), commit);
    assert!(!refs.join("main").exists(), "a pin writes its own ref only");
    hub.clear_log();
    let got = fetch(&s, &model(&format!("org/tiny@{commit}")), &Selection::Model, &Silent).expect("commit");
    assert!(!got.asked_the_hub && hub.requests().is_empty(), "{:?}", hub.requests());
    assert_eq!(got.bytes_downloaded, 0);
}

#[test]
fn offline_mode_never_touches_the_network() {
    let hub = MockHub::start(vec![sharded_model()], None).expect("mock hub");
    let cache = tempfile::tempdir().expect("tmp");
    let mut s = settings(&hub, cache.path());
    s.offline = true;
    let err = fetch(&s, &model("org/tiny"), &Selection::Model, &Silent).unwrap_err();
    assert!(matches!(err, HubError::Offline { .. }) && err.to_string().contains("HF_HUB_OFFLINE=1"), "{err}");
    assert!(hub.requests().is_empty());
    // No network and no flag: the error says what to do on such a node.
    let mut away = settings(&hub, cache.path());
    away.endpoint = "http://127.0.0.1:9".into();
    away.retries = 0;
    let err = fetch(&away, &model("org/tiny"), &Selection::Model, &Silent).unwrap_err();
    assert!(matches!(err, HubError::Network { .. }) && err.to_string().contains("run with HF_HUB_OFFLINE=1"), "{err}");
    s.offline = false;
    fetch(&s, &model("org/tiny"), &Selection::Model, &Silent).expect("online");
    hub.clear_log();
    s.offline = true;
    let got = fetch(&s, &model("org/tiny"), &Selection::Model, &Silent).expect("from the cache");
    assert!(!got.asked_the_hub && hub.requests().is_empty());
    assert!(got.snapshot.join("model-00002-of-00002.safetensors").is_file());
}

#[test]
fn two_fetches_share_one_cache_and_the_second_downloads_nothing() {
    let hub = MockHub::start(vec![sharded_model(), dataset()], None).expect("mock hub");
    let cache = tempfile::tempdir().expect("tmp");
    let s = settings(&hub, cache.path());
    fetch(&s, &model("org/tiny"), &Selection::Model, &Silent).expect("first");
    hub.clear_log();
    let again = fetch(&s, &model("org/tiny"), &Selection::Model, &Silent).expect("second");
    assert_eq!(again.bytes_downloaded, 0);
    assert!(hub.byte_requests().is_empty(), "{:?}", hub.byte_requests());
    // The Hub out of reach: the cached copy is used, and said so.
    let mut away = s.clone();
    away.endpoint = "http://127.0.0.1:9".into();
    away.retries = 0;
    let got = fetch(&away, &model("org/tiny"), &Selection::Model, &Silent).expect("from the cache");
    assert!(!got.asked_the_hub && got.warnings[0].contains("using the cached copy"), "{:?}", got.warnings);
}

/// Writes a snapshot as huggingface_hub does: blobs by etag, relative symlinks, refs/main.
fn write_as_huggingface_hub(cache: &Path, repo: &MockRepo, with_etag: impl Fn(&str, &[u8]) -> String) -> PathBuf {
    let root = cache.join(format!("models--{}", repo.id.replace('/', "--")));
    let snapshot = root.join("snapshots").join(&repo.commit);
    std::fs::create_dir_all(root.join("blobs")).expect("mkdir");
    std::fs::create_dir_all(root.join("refs")).expect("mkdir");
    std::fs::write(root.join("refs/main"), &repo.commit).expect("ref");
    for file in &repo.files {
        let etag = with_etag(&file.path, &file.bytes);
        std::fs::write(root.join("blobs").join(&etag), &file.bytes).expect("blob");
        let link = snapshot.join(&file.path);
        std::fs::create_dir_all(link.parent().expect("parent")).expect("mkdir");
        let depth = file.path.split('/').count() + 1;
        std::os::unix::fs::symlink(format!("{}blobs/{etag}", "../".repeat(depth)), &link).expect("symlink");
    }
    snapshot
}

#[test]
fn a_cache_written_by_huggingface_hub_is_read_without_downloading() {
    let repo = sharded_model();
    let hub = MockHub::start(vec![repo.clone()], None).expect("mock hub");
    let cache = tempfile::tempdir().expect("tmp");
    let snapshot = write_as_huggingface_hub(cache.path(), &repo, |path, bytes| {
        use sha2::Digest;
        let sha = format!("{:x}", sha2::Sha256::digest(bytes));
        if path.ends_with(".safetensors") || path.ends_with(".bin") { sha } else { sha[..40].to_string() }
    });
    let got = fetch(&settings(&hub, cache.path()), &model("org/tiny"), &Selection::Model, &Silent).expect("fetched");
    assert_eq!(got.snapshot, snapshot);
    assert_eq!(got.bytes_downloaded, 0);
    assert!(hub.byte_requests().is_empty(), "{:?}", hub.byte_requests());
}

#[test]
fn a_full_disk_and_an_unwritable_cache_are_refused_before_a_byte() {
    let hub = MockHub::start(vec![sharded_model()], None).expect("mock hub");
    let cache = tempfile::tempdir().expect("tmp");
    // The file system has less room than the model: the Hub says how big it is.
    hub.advertise_size("model-00001-of-00002.safetensors", u64::MAX / 4);
    let err = fetch(&settings(&hub, cache.path()), &model("org/tiny"), &Selection::Model, &Silent).unwrap_err();
    assert!(matches!(err, HubError::DiskFull { .. }) && err.to_string().contains("HF_HUB_CACHE"), "{err}");
    assert!(!hub.byte_requests().iter().any(|r| r.path.starts_with("/storage/")), "no shard was fetched");
    // A cache below a file cannot be created (root ignores permission bits, so a mode would not do).
    let file = cache.path().join("a-file");
    std::fs::write(&file, b"").expect("write");
    let err = fetch(&settings(&hub, &file.join("hub")), &model("org/tiny"), &Selection::Model, &Silent).unwrap_err();
    assert!(matches!(err, HubError::CacheNotWritable { .. }) && err.to_string().contains("not writable"), "{err}");
}

/// Asks to stop once a file has 50,000 bytes, as Ctrl-C does in a run.
#[derive(Default)]
struct StopAfterBytes(std::sync::atomic::AtomicU64);
impl FetchProgress for StopAfterBytes {
    fn at(&self, _file: &str, bytes: u64) {
        self.0.fetch_max(bytes, std::sync::atomic::Ordering::SeqCst);
    }
    fn stop_requested(&self) -> bool {
        self.0.load(std::sync::atomic::Ordering::SeqCst) >= 50_000
    }
}

#[test]
fn a_stop_keeps_what_was_downloaded_for_the_next_fetch() {
    let hub = MockHub::start(vec![sharded_model()], None).expect("mock hub");
    let cache = tempfile::tempdir().expect("tmp");
    let s = HubSettings { parallel_files: 1, ..settings(&hub, cache.path()) };
    let err = fetch(&s, &model("org/tiny"), &Selection::Model, &StopAfterBytes::default()).unwrap_err();
    assert!(matches!(err, HubError::Interrupted { .. }) && err.to_string().contains("resumes"), "{err}");
    let blobs = cache.path().join("models--org--tiny/blobs");
    let kept: Vec<u64> = std::fs::read_dir(&blobs)
        .expect("blobs")
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().ends_with(".incomplete"))
        .map(|e| e.metadata().expect("meta").len())
        .collect();
    assert!(kept.iter().any(|n| *n >= 50_000), "the bytes before the stop are kept: {kept:?}");
    hub.clear_log();
    let got = fetch(&s, &model("org/tiny"), &Selection::Model, &Silent).expect("fetched after the stop");
    assert!(got.snapshot.join("model-00002-of-00002.safetensors").is_file());
    let resumed = hub
        .byte_requests()
        .iter()
        .any(|r| r.range.as_deref().is_some_and(|x| x.starts_with("bytes=") && x != "bytes=0-"));
    assert!(resumed, "the next fetch resumes: {:?}", hub.byte_requests());
}

#[test]
fn names_that_would_leave_the_cache_are_ignored_and_one_blob_is_fetched_once() {
    let same = noise(10, 30_000);
    let repo = MockRepo::new(
        Kind::Dataset,
        "org/hostile",
        vec![
            f("../../escape.parquet", noise(11, 100)),
            f("/tmp/absolute.parquet", noise(12, 100)),
            f("data/train-00000-of-00002.parquet", same.clone()),
            f("data/train-00001-of-00002.parquet", same),
        ],
    );
    let hub = MockHub::start(vec![repo], None).expect("mock hub");
    let root = tempfile::tempdir().expect("tmp");
    let cache = root.path().join("cache");
    let repo = RepoRef::parse(RepoKind::Dataset, "org/hostile", None).expect("id");
    let all = Selection::Dataset { config: String::new(), split: None };
    let got = fetch(&settings(&hub, &cache), &repo, &all, &Silent).expect("fetched");
    assert!(
        got.warnings.iter().any(|w| w.contains("would leave the cache") && w.contains("escape")),
        "{:?}",
        got.warnings
    );
    assert_eq!(got.files.len(), 2);
    assert!(!root.path().join("escape.parquet").exists() && !std::path::Path::new("/tmp/absolute.parquet").exists());
    let gets = hub.byte_requests().into_iter().filter(|r| r.path.starts_with("/storage/")).count();
    assert_eq!(gets, 1, "two files with the same bytes are one blob, fetched once");
}

#[test]
fn a_gguf_file_is_fetched_with_the_tokenizer_beside_it() {
    let repo = MockRepo::new(
        Kind::Model,
        "org/tiny-GGUF",
        vec![
            f("tiny.Q4_0.gguf", noise(8, 40_000)),
            f("tiny.Q8_0.gguf", noise(9, 70_000)),
            f("tokenizer.json", b"{}".to_vec()),
            f("README.md", b"#".to_vec()),
        ],
    );
    let hub = MockHub::start(vec![repo], None).expect("mock hub");
    let cache = tempfile::tempdir().expect("tmp");
    let (id, file) = energy_star_hub::split_gguf_id("org/tiny-GGUF/tiny.Q4_0.gguf").expect("a gguf id");
    let got = fetch(&settings(&hub, cache.path()), &model(&id), &Selection::Gguf(file), &Silent).expect("fetched");
    assert_eq!(got.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(), ["tiny.Q4_0.gguf", "tokenizer.json"]);
    assert_eq!(
        energy_star_hub::cached_gguf(cache.path(), "org/tiny-GGUF/tiny.Q4_0.gguf"),
        Some(got.snapshot.join("tiny.Q4_0.gguf"))
    );
    assert!(!hub.requests().iter().any(|r| r.path.contains("Q8_0")), "only the file named");
}

#[test]
fn random_weights_fetch_the_config_and_processor_only() {
    // An old BERT-style repo as many task models are: a WordPiece vocabulary and pickled weights.
    let old = MockRepo::new(
        Kind::Model,
        "org/old-bert",
        vec![
            f("config.json", br#"{"model_type": "bert"}"#.to_vec()),
            f("vocab.txt", b"[PAD]\n[UNK]\n".to_vec()),
            f("tokenizer_config.json", b"{}".to_vec()),
            f("pytorch_model.bin", noise(9, 400_000)),
        ],
    );
    let hub = MockHub::start(vec![old, sharded_model()], None).expect("mock hub");
    let cache = tempfile::tempdir().expect("tmp");
    let s = settings(&hub, cache.path());
    let got = fetch(&s, &model("org/old-bert"), &Selection::ModelWithoutWeights, &Silent).expect("no weights");
    let names: Vec<&str> = got.files.iter().map(|f| f.path.as_str()).collect();
    assert_eq!(names, ["config.json", "tokenizer_config.json", "vocab.txt"]);
    assert!(got.bytes_downloaded < 1000, "{}", got.bytes_downloaded);
    // With weights, the same repo is refused by name before a byte of it is fetched.
    let err = fetch(&s, &model("org/old-bert"), &Selection::Model, &Silent).unwrap_err().to_string();
    assert!(err.contains("pytorch_model.bin") && err.contains("no_weights"), "{err}");
    let got = fetch(&s, &model("org/tiny"), &Selection::ModelWithoutWeights, &Silent).expect("no shards");
    assert!(got.files.iter().all(|f| !f.path.ends_with(".safetensors")), "{:?}", got.files);
}
