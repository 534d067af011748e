//! `energy-star bundle RESULTS_DIR -o FILE.zip`: the run's files with a manifest a submitter can
//! attest to (each file's SHA-256, energy-star's version and commit, the plugins that ran with
//! their hashes, the model and dataset revisions, the machine as the run recorded it); and
//! `energy-star bundle --verify FILE.zip`, which checks every hash and says what changed.
//!
//! The manifest describes the run from the host's own records (run record, status, energy
//! record, summary), never from the machine that happens to make the bundle.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use energy_star_results::records::{
    self, ENERGY_RECORD, EnergyRecord, MachineDescription, RUN_RECORD, RUN_STATUS, RunRecord, RunStatus, SUMMARY,
    SourceRecord, SummaryRecord,
};
use energy_star_results::{LEGACY_PREVIOUS_RUN, PREVIOUS_RUNS, write_atomic};
use energy_star_types::DeviceKind;
use serde::{Deserialize, Serialize};
use thiserror::Error;

use crate::cli::BundleArgs;

/// The manifest's name inside the bundle.
pub const MANIFEST: &str = "MANIFEST.json";
/// The manifest's format.
pub const FORMAT: &str = "energy-star-bundle/1";
/// The largest file a bundle takes (a day's timeline at 100 ms is far below).
const MAX_FILE_BYTES: u64 = 4 << 30;

#[derive(Debug, Error)]
pub enum BundleError {
    #[error("{0} is not a folder")]
    NotAFolder(PathBuf),
    #[error("{0} is not a results folder of energy-star: it has no run_status.json")]
    NotARun(PathBuf),
    #[error("cannot read {path}: {why}")]
    Read { path: PathBuf, why: String },
    #[error("{0} already exists; a bundle never replaces a file (choose another -o)")]
    Exists(PathBuf),
    #[error("{path} is not a bundle of energy-star: {why}")]
    NotABundle { path: PathBuf, why: String },
    #[error("cannot write {path}: {why}")]
    Write { path: PathBuf, why: String },
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileEntry {
    /// Relative to the results folder, `/`-separated.
    pub path: String,
    pub bytes: u64,
    pub sha256: String,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PluginEntry {
    /// `backend` or `summarizer`.
    pub role: String,
    /// `kind name version (origin)`.
    pub label: String,
    pub sha256: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MachineEntry {
    /// GPU names as the meter saw them; empty for a run without GPUs.
    pub gpus: Vec<String>,
    /// The NVIDIA driver's version; none without one (or for a run recorded by a host before
    /// plugin API 0.2.2, which did not describe the machine).
    pub gpu_driver: Option<String>,
    pub cpu: Option<String>,
    /// Each device's energy source (`gpu0: nvml-energy-counter`, `cpu: rapl`, ...).
    pub energy_sources: Vec<String>,
    /// The machine as the run described it before it started: OS, CPU model and count, memory,
    /// every GPU with its memory, driver and CUDA versions.
    #[serde(default)]
    pub description: Option<MachineDescription>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub format: String,
    pub created_utc: String,
    pub energy_star_version: String,
    pub energy_star_commit: String,
    pub config_name: Option<String>,
    pub run_state: Option<String>,
    pub plugins: Vec<PluginEntry>,
    /// Where the model and dataset came from (the Hub commit each resolved to).
    pub sources: Vec<SourceRecord>,
    pub machine: MachineEntry,
    pub files: Vec<FileEntry>,
}

/// `energy-star bundle`.
pub fn command(args: &BundleArgs) -> anyhow::Result<ExitCode> {
    if let Some(zip) = &args.verify {
        let v = verify(zip)?;
        for line in &v.problems {
            outln!("CHANGED {line}")?;
        }
        if v.problems.is_empty() {
            outln!("ok: {} files match {} ({} {})", v.checked, MANIFEST, v.manifest.format, zip.display())?;
            return Ok(ExitCode::SUCCESS);
        }
        eprintln!("energy-star: {} does not match its manifest: {} problem(s)", zip.display(), v.problems.len());
        return Ok(ExitCode::from(1));
    }
    let dir = crate::results_target(args.target.clone());
    let out = args.output.clone().unwrap_or_else(|| PathBuf::from("energy-star-bundle.zip"));
    let (m, manifest_sha256) = create(&dir, &out)?;
    outln!("bundle: {} ({} files, manifest {MANIFEST})", out.display(), m.files.len())?;
    outln!("manifest SHA-256: {manifest_sha256} (what a submitter attests to)")?;
    Ok(ExitCode::SUCCESS)
}

fn sha256_hex(bytes: &[u8]) -> String {
    energy_star_plugin_host::sha256_hex(bytes)
}

/// The run's files: everything in the folder and below, but earlier runs and temporary files.
fn run_files(dir: &Path) -> Result<Vec<(String, PathBuf)>, BundleError> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, PathBuf)>) -> Result<(), BundleError> {
        let read = |e: std::io::Error| BundleError::Read { path: dir.to_path_buf(), why: e.to_string() };
        let mut entries: Vec<_> = std::fs::read_dir(dir).map_err(read)?.collect::<Result<_, _>>().map_err(read)?;
        entries.sort_by_key(|e| e.file_name());
        for e in entries {
            let name = e.file_name().to_string_lossy().into_owned();
            let path = e.path();
            let top = dir == root;
            if name.starts_with('.') || (top && (name == PREVIOUS_RUNS || name == LEGACY_PREVIOUS_RUN)) {
                continue;
            }
            let kind = e.file_type().map_err(read)?;
            if kind.is_dir() {
                walk(root, &path, out)?;
            } else if kind.is_file() {
                let rel = path.strip_prefix(root).unwrap_or(&path);
                let rel = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect::<Vec<_>>().join("/");
                out.push((rel, path));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    Ok(out)
}

/// The manifest's description of the run, from the host's records.
fn describe_run(dir: &Path, files: Vec<FileEntry>) -> Result<Manifest, BundleError> {
    let read_err = |name: &str, e: energy_star_results::ResultsError| BundleError::Read {
        path: dir.join(name),
        why: e.to_string(),
    };
    let status: Option<RunStatus> = records::read_record(&dir.join(RUN_STATUS)).map_err(|e| read_err(RUN_STATUS, e))?;
    let status = status.ok_or_else(|| BundleError::NotARun(dir.to_path_buf()))?;
    let record: Option<RunRecord> = records::read_record(&dir.join(RUN_RECORD)).map_err(|e| read_err(RUN_RECORD, e))?;
    let meter: Option<EnergyRecord> =
        records::read_record(&dir.join(ENERGY_RECORD)).map_err(|e| read_err(ENERGY_RECORD, e))?;
    let summary: Option<SummaryRecord> = records::read_record(&dir.join(SUMMARY)).map_err(|e| read_err(SUMMARY, e))?;
    let mut plugins = Vec::new();
    if let Some(r) = &record {
        plugins.push(PluginEntry {
            role: "backend".into(),
            label: r.backend.clone(),
            sha256: r.backend_sha256.clone(),
        });
    }
    if let Some(d) = summary.as_ref().and_then(|s| s.details().ok()) {
        plugins.push(PluginEntry { role: "summarizer".into(), label: d.summarizer, sha256: d.summarizer_sha256 });
    }
    let names = |k: DeviceKind| -> Vec<String> {
        meter
            .as_ref()
            .map(|m| m.devices.iter().filter(|d| d.kind == k).map(|d| d.name.clone()).collect())
            .unwrap_or_default()
    };
    let description = record.as_ref().and_then(|r| r.machine.clone());
    let machine = MachineEntry {
        gpus: names(DeviceKind::Gpu),
        gpu_driver: description.as_ref().and_then(|m| m.gpu_driver_version.clone()),
        cpu: description
            .as_ref()
            .and_then(|m| m.cpu_model.clone())
            .or_else(|| names(DeviceKind::Cpu).into_iter().next()),
        energy_sources: meter
            .as_ref()
            .map(|m| m.devices.iter().map(|d| format!("{}: {}", d.device, d.source.as_str())).collect())
            .unwrap_or_default(),
        description,
    };
    let now =
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_secs_f64()).unwrap_or(0.0);
    Ok(Manifest {
        format: FORMAT.into(),
        created_utc: energy_star_results::utc_stamp(now),
        energy_star_version: env!("CARGO_PKG_VERSION").into(),
        energy_star_commit: env!("ENERGY_STAR_COMMIT").into(),
        config_name: Some(status.config_name.clone()),
        run_state: Some(status.state.as_str().to_string()),
        plugins,
        sources: record.map(|r| r.sources).unwrap_or_default(),
        machine,
        files,
    })
}

/// Writes the bundle of `dir` to `out` (atomically; never over an existing file); returns the
/// manifest and its SHA-256.
pub fn create(dir: &Path, out: &Path) -> Result<(Manifest, String), BundleError> {
    if !dir.is_dir() {
        return Err(BundleError::NotAFolder(dir.to_path_buf()));
    }
    if out.exists() {
        return Err(BundleError::Exists(out.to_path_buf()));
    }
    let out_abs = std::path::absolute(out).unwrap_or_else(|_| out.to_path_buf());
    let mut contents = Vec::new();
    for (rel, path) in run_files(dir)? {
        if std::path::absolute(&path).is_ok_and(|p| p == out_abs) {
            continue;
        }
        let read = |why: String| BundleError::Read { path: path.clone(), why };
        let len = std::fs::metadata(&path).map_err(|e| read(e.to_string()))?.len();
        if len > MAX_FILE_BYTES {
            return Err(read(format!("{len} bytes: larger than a bundle takes ({MAX_FILE_BYTES})")));
        }
        let bytes = std::fs::read(&path).map_err(|e| read(e.to_string()))?;
        contents.push((rel, bytes));
    }
    let files = contents
        .iter()
        .map(|(rel, b)| FileEntry { path: rel.clone(), bytes: b.len() as u64, sha256: sha256_hex(b) })
        .collect();
    let manifest = describe_run(dir, files)?;
    let write_err = |e: String| BundleError::Write { path: out.to_path_buf(), why: e };
    let mut zip = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let options = zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Deflated);
    let manifest_json = serde_json::to_vec_pretty(&manifest).map_err(|e| write_err(e.to_string()))?;
    zip.start_file(MANIFEST, options).map_err(|e| write_err(e.to_string()))?;
    zip.write_all(&manifest_json).map_err(|e| write_err(e.to_string()))?;
    for (rel, bytes) in &contents {
        zip.start_file(format!("run/{rel}"), options).map_err(|e| write_err(e.to_string()))?;
        zip.write_all(bytes).map_err(|e| write_err(e.to_string()))?;
    }
    let cursor = zip.finish().map_err(|e| write_err(e.to_string()))?;
    write_atomic(out, cursor.get_ref()).map_err(|e| write_err(e.to_string()))?;
    Ok((manifest, sha256_hex(&manifest_json)))
}

/// What `--verify` found.
#[derive(Debug)]
pub struct Verified {
    pub manifest: Manifest,
    pub checked: usize,
    /// One line per file changed, missing or added; empty when the bundle matches.
    pub problems: Vec<String>,
}

/// Checks every file of a bundle against its manifest.
pub fn verify(path: &Path) -> Result<Verified, BundleError> {
    let not = |why: String| BundleError::NotABundle { path: path.to_path_buf(), why };
    let file =
        std::fs::File::open(path).map_err(|e| BundleError::Read { path: path.to_path_buf(), why: e.to_string() })?;
    let mut zip = zip::ZipArchive::new(file).map_err(|e| not(format!("not a zip archive ({e})")))?;
    let manifest: Manifest = {
        let mut m = zip.by_name(MANIFEST).map_err(|_| not(format!("it has no {MANIFEST}")))?;
        let mut text = String::new();
        m.read_to_string(&mut text).map_err(|e| not(format!("{MANIFEST} is unreadable ({e})")))?;
        serde_json::from_str(&text).map_err(|e| not(format!("{MANIFEST} is not a manifest ({e})")))?
    };
    if manifest.format != FORMAT {
        return Err(not(format!("its manifest is {:?}, this energy-star reads {FORMAT}", manifest.format)));
    }
    let mut problems = Vec::new();
    let mut seen = Vec::new();
    for i in 0..zip.len() {
        let mut entry = zip.by_index(i).map_err(|e| not(format!("entry {i} is unreadable ({e})")))?;
        let name = entry.name().map_err(|e| not(format!("entry {i} has an unreadable name ({e})")))?.to_string();
        if name == MANIFEST || entry.is_dir() {
            continue;
        }
        let Some(rel) = name.strip_prefix("run/") else {
            problems.push(format!("{name}: not in the manifest (added after the bundle was made)"));
            continue;
        };
        let mut bytes = Vec::new();
        if let Err(e) = entry.read_to_end(&mut bytes) {
            // A corrupted deflate stream or a failed CRC check: the zip's own integrity check.
            problems.push(format!("{rel}: unreadable ({e})"));
            seen.push(rel.to_string());
            continue;
        }
        match manifest.files.iter().find(|f| f.path == rel) {
            None => problems.push(format!("{rel}: not in the manifest (added after the bundle was made)")),
            Some(f) => {
                let sha = sha256_hex(&bytes);
                if sha != f.sha256 || bytes.len() as u64 != f.bytes {
                    problems.push(format!(
                        "{rel}: SHA-256 {sha} ({} bytes), the manifest says {} ({} bytes)",
                        bytes.len(),
                        f.sha256,
                        f.bytes
                    ));
                }
            }
        }
        seen.push(rel.to_string());
    }
    for f in &manifest.files {
        if !seen.contains(&f.path) {
            problems.push(format!("{}: in the manifest but missing from the bundle", f.path));
        }
    }
    Ok(Verified { checked: manifest.files.len(), manifest, problems })
}
