//! The results folder: atomic writes, safe names for files plugins ask to write, earlier runs
//! set aside, and the host's typed records ([`records`]).
//!
//! Every file energy-star writes goes through [`write_atomic`]: written beside its final name,
//! flushed, then renamed, so a reader (or a crash) never sees half a file and a failed write
//! leaves the previous version in place.

pub mod records;
pub mod repeats;

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ResultsError {
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot create results folder {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path} is not a record this energy-star reads: {why}")]
    Malformed { path: PathBuf, why: String },
    #[error("cannot set an earlier run aside: moving {from} to {to}: {source}; nothing was deleted")]
    Move { from: PathBuf, to: PathBuf, source: std::io::Error },
    #[error("file name {name:?} is not allowed: {why}")]
    BadName { name: String, why: &'static str },
}

/// Writes `bytes` to `path` atomically (temporary file in the same folder, fsync, rename).
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), ResultsError> {
    let err = |source| ResultsError::Write { path: path.to_path_buf(), source };
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty()).unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(err)?;
    let file_name = path.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let tmp = dir.join(format!(".{file_name}.tmp-{}", std::process::id()));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::File::create(&tmp)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        std::fs::rename(&tmp, path)?;
        // The rename itself is durable only once the folder is synced.
        std::fs::File::open(dir)?.sync_all()
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        err(e)
    })
}

/// Resolves a plugin-supplied relative file name inside `root`, refusing anything that could
/// escape it: absolute paths, `..`, empty names, and names of files the host itself owns.
pub fn resolve_inside(root: &Path, name: &str) -> Result<PathBuf, ResultsError> {
    let bad = |why| ResultsError::BadName { name: name.to_string(), why };
    if name.is_empty() {
        return Err(bad("empty"));
    }
    if name.contains('\0') {
        return Err(bad("contains a NUL byte"));
    }
    let rel = Path::new(name);
    let mut out = root.to_path_buf();
    for comp in rel.components() {
        match comp {
            Component::Normal(part) => out.push(part),
            Component::CurDir => {}
            Component::ParentDir => return Err(bad("contains `..`")),
            Component::RootDir | Component::Prefix(_) => return Err(bad("is absolute")),
        }
    }
    if out == root {
        return Err(bad("names the results folder itself"));
    }
    // Host-owned names are reserved as the first component too: a plugin making a folder
    // called `GPU_ENERGY_WH.txt` would block the host's own write.
    if let Some(first) =
        out.strip_prefix(root).ok().and_then(|r| r.components().next()).and_then(|c| c.as_os_str().to_str())
        && HOST_OWNED.contains(&first)
    {
        return Err(bad("is written by the host itself"));
    }
    // A symbolic link already in the folder must not lead outside it.
    let mut probe = root.to_path_buf();
    for comp in out.strip_prefix(root).unwrap_or(Path::new("")).components() {
        probe.push(comp);
        if probe.is_symlink() {
            return Err(bad("passes through a symbolic link"));
        }
    }
    Ok(out)
}

/// Files in the results folder that only the host writes.
pub const HOST_OWNED: &[&str] = &[
    "benchmark_report.json",
    "GPU_ENERGY_WH.txt",
    "GPU_ENERGY_SUMMARY.json",
    "run_status.json",
    "effective_config.yaml",
    "energy_meter.json",
    "energy_timeline.csv",
    "energy_windows.csv",
    PREVIOUS_RUNS,
    LEGACY_PREVIOUS_RUN,
];

/// Where earlier runs in a results folder are kept, each in its own never-reused folder.
pub const PREVIOUS_RUNS: &str = "previous-runs";

/// The single set-aside folder of energy-star before 0.2 (kept, and moved like any entry).
pub const LEGACY_PREVIOUS_RUN: &str = "previous-run";

/// Names that mark a folder as holding a run: the host's files, what the built-in backends and
/// `report` write, and the upstream tools' report names.
const RUN_MARKERS: &[&str] = &["benchmark.json", "benchmark_config.json", "requests.jsonl", "report.html", "figures"];

/// Whether a folder's entry names another run's output (so is set aside before a rerun).
fn is_run_marker(name: &str) -> bool {
    (HOST_OWNED.contains(&name) && name != PREVIOUS_RUNS) || RUN_MARKERS.contains(&name)
}

/// What [`set_aside_earlier_run`] did.
#[derive(Debug, Default, PartialEq)]
pub struct SetAside {
    /// The folder the earlier run went to, when there was one.
    pub moved_to: Option<PathBuf>,
    /// Entries left in place because nothing marks them as a run's (a folder that held no run).
    pub left_in_place: Vec<String>,
}

/// Moves every entry of an earlier run in `dir` (whatever wrote it) into its own new folder
/// `previous-runs/<start>-<n>/`, so that nothing measured is ever deleted and the top level
/// then holds only the coming run's files.
///
/// A folder counts as holding an earlier run when any entry is a run's (see [`RUN_MARKERS`]);
/// then everything but `previous-runs/` moves. A folder with only foreign entries (no run
/// there) is left alone and the entries are reported. `<start>` is the earlier run's start
/// from its `run_status.json`, else the oldest entry's modification time, in UTC; `n` makes
/// the name unique: a folder is created only if it did not exist, so none is ever reused.
pub fn set_aside_earlier_run(dir: &Path) -> Result<SetAside, ResultsError> {
    let read_err = |source| ResultsError::Read { path: dir.to_path_buf(), source };
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(SetAside::default()),
        Err(e) => return Err(read_err(e)),
    };
    let mut names: Vec<String> = Vec::new();
    for entry in entries {
        let name = entry.map_err(read_err)?.file_name().to_string_lossy().into_owned();
        if name != PREVIOUS_RUNS {
            names.push(name);
        }
    }
    names.sort();
    if names.is_empty() {
        return Ok(SetAside::default());
    }
    if !names.iter().any(|n| is_run_marker(n)) {
        return Ok(SetAside { moved_to: None, left_in_place: names });
    }
    let started = earlier_run_start(dir, &names);
    let root = dir.join(PREVIOUS_RUNS);
    ensure_dir(&root)?;
    let target = new_unique_folder(&root, &utc_stamp(started))?;
    for name in &names {
        let (from, to) = (dir.join(name), target.join(name));
        std::fs::rename(&from, &to).map_err(|source| ResultsError::Move { from, to, source })?;
    }
    // The moves are durable only once both folders are synced.
    for d in [&target, &dir.to_path_buf()] {
        let _ = std::fs::File::open(d).and_then(|f| f.sync_all());
    }
    Ok(SetAside { moved_to: Some(target), left_in_place: Vec::new() })
}

/// The earlier run's start (Unix s): its status says it, else the oldest entry's mtime.
fn earlier_run_start(dir: &Path, names: &[String]) -> f64 {
    let from_status = std::fs::read_to_string(dir.join("run_status.json"))
        .ok()
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("started_unix_s").and_then(serde_json::Value::as_f64));
    from_status.unwrap_or_else(|| {
        names
            .iter()
            .filter_map(|n| std::fs::symlink_metadata(dir.join(n)).and_then(|m| m.modified()).ok())
            .filter_map(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs_f64())
            .fold(f64::INFINITY, f64::min)
    })
}

/// Creates `root/<stem>-<n>` for the smallest free `n` (1, 2, ...) and returns it.
fn new_unique_folder(root: &Path, stem: &str) -> Result<PathBuf, ResultsError> {
    for n in 1u32.. {
        let candidate = root.join(format!("{stem}-{n}"));
        match std::fs::create_dir(&candidate) {
            Ok(()) => return Ok(candidate),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(source) => return Err(ResultsError::CreateDir { path: candidate, source }),
        }
    }
    unreachable!("u32 names run out only after four billion earlier runs")
}

/// `YYYY-MM-DDTHH-MM-SSZ` (no colons: they are not allowed in every file system's names).
pub fn utc_stamp(unix_s: f64) -> String {
    if !unix_s.is_finite() || unix_s < 0.0 {
        return "unknown-time".into();
    }
    let secs = unix_s as i64;
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (y, m, d) = civil_from_days(days);
    format!("{y:04}-{m:02}-{d:02}T{:02}-{:02}-{:02}Z", rem / 3600, rem % 3600 / 60, rem % 60)
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (yoe + era * 400 + i64::from(m <= 2), m, d)
}

/// Creates the results folder (and parents).
pub fn ensure_dir(path: &Path) -> Result<(), ResultsError> {
    std::fs::create_dir_all(path).map_err(|source| ResultsError::CreateDir { path: path.to_path_buf(), source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_that_escape_are_refused() {
        let root = Path::new("/r");
        for name in ["", "../x", "a/../../x", "/etc/passwd", "benchmark_report.json", "."] {
            assert!(resolve_inside(root, name).is_err(), "{name:?} was accepted");
        }
        assert_eq!(resolve_inside(root, "timeline/gpu0.csv").ok(), Some(PathBuf::from("/r/timeline/gpu0.csv")));
        // Host-owned names are only reserved at the top level.
        assert!(resolve_inside(root, "extra/benchmark_report.json").is_ok());
        assert!(resolve_inside(root, "GPU_ENERGY_WH.txt/x").is_err(), "a folder in place of a host file");
    }

    #[test]
    fn utc_stamps_are_calendar_dates() {
        assert_eq!(utc_stamp(0.0), "1970-01-01T00-00-00Z");
        assert_eq!(utc_stamp(951_782_400.0), "2000-02-29T00-00-00Z");
        assert_eq!(utc_stamp(1_796_184_000.5), "2026-12-02T04-00-00Z");
        assert_eq!(utc_stamp(f64::NAN), "unknown-time");
    }

    #[test]
    fn every_earlier_run_is_kept_in_its_own_folder() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        let run = |n: u32| {
            write_atomic(&d.join("run_status.json"), format!("{{\"started_unix_s\": 0, \"n\": {n}}}").as_bytes())
                .expect("status");
            write_atomic(&d.join("benchmark_report.json"), format!("{n}").as_bytes()).expect("report");
            write_atomic(&d.join("figures/power.svg"), b"<svg/>").expect("figure");
            write_atomic(&d.join("notes-from-a-third-party-backend.txt"), b"x").expect("other");
        };
        run(1);
        let first = set_aside_earlier_run(d).expect("set aside").moved_to.expect("moved");
        run(2);
        let second = set_aside_earlier_run(d).expect("set aside").moved_to.expect("moved");
        assert_eq!(first, d.join("previous-runs/1970-01-01T00-00-00Z-1"));
        assert_eq!(second, d.join("previous-runs/1970-01-01T00-00-00Z-2"), "never reused");
        for (folder, n) in [(&first, "1"), (&second, "2")] {
            assert_eq!(std::fs::read_to_string(folder.join("benchmark_report.json")).expect("kept"), n);
            assert!(
                folder.join("figures/power.svg").is_file()
                    && folder.join("notes-from-a-third-party-backend.txt").is_file()
            );
        }
        let top: Vec<_> = std::fs::read_dir(d).expect("ls").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(top, vec![std::ffi::OsString::from(PREVIOUS_RUNS)], "the top level is left for the next run");
        // Nothing to set aside: an empty or absent folder, or one without any run's files.
        assert_eq!(set_aside_earlier_run(&d.join("absent")).expect("absent"), SetAside::default());
        let foreign = tempfile::tempdir().expect("tempdir");
        std::fs::write(foreign.path().join("notes.txt"), "mine").expect("write");
        let done = set_aside_earlier_run(foreign.path()).expect("foreign");
        assert_eq!((done.moved_to, done.left_in_place), (None, vec!["notes.txt".to_string()]));
    }

    #[test]
    fn atomic_write_replaces_whole_file_and_leaves_no_temporary() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("a.json");
        write_atomic(&path, b"first").expect("write");
        write_atomic(&path, b"second").expect("write");
        assert_eq!(std::fs::read(&path).expect("read"), b"second");
        let names: Vec<_> = std::fs::read_dir(dir.path()).expect("ls").map(|e| e.expect("entry").file_name()).collect();
        assert_eq!(names, vec![std::ffi::OsString::from("a.json")]);
    }
}
