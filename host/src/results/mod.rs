//! The results folder: atomic writes, safe names for files plugins ask to write, and the run
//! status that marks a run complete or not.
//!
//! Every file energy-star writes goes through [`write_atomic`]: written beside its final name,
//! flushed, then renamed, so a reader (or a crash) never sees half a file and a failed write
//! leaves the previous version in place.

use std::io::Write;
use std::path::{Component, Path, PathBuf};

use thiserror::Error;

#[derive(Debug, Error)]
pub enum ResultsError {
    #[error("cannot write {path}: {source}")]
    Write { path: PathBuf, source: std::io::Error },
    #[error("cannot create results folder {path}: {source}")]
    CreateDir { path: PathBuf, source: std::io::Error },
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
    "previous-run",
];

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
