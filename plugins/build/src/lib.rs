//! Compiles plugin crates to `wasm32-wasip2` components from a build script.
//!
//! A build script cannot ask its own cargo for another target, so it runs a nested cargo into a
//! separate target folder (wasmtime's `test-programs/artifacts` does the same). The nested cargo
//! shares the workspace's `Cargo.lock` when the crates are workspace members; a crate outside the
//! workspace (a third-party plugin) uses its own.
//!
//! Used by `host/build.rs` (built-in plugins, embedded in the binary) and `tests/build.rs` (test
//! guests). Errors are returned as text for the build script to print and panic on, which is how
//! a build script fails.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Rust target plugins are built for.
pub const TARGET: &str = "wasm32-wasip2";

/// The cargo profile built-in plugins use (defined in the workspace `Cargo.toml`).
pub const PROFILE: &str = "plugin";

/// One build: either packages of a workspace, or a stand-alone crate by its manifest.
pub struct PluginBuild<'a> {
    /// `Cargo.toml` of the workspace or crate to build.
    pub manifest: &'a Path,
    /// Packages to build (`-p`); empty to build the manifest's own package.
    pub packages: &'a [&'a str],
    /// Cargo profile; `None` for `release`.
    pub profile: Option<&'a str>,
    /// Target folder for the nested build, kept apart from the outer build's to avoid its lock.
    pub target_dir: &'a Path,
}

impl PluginBuild<'_> {
    /// Runs the nested cargo and returns the path of each package's `.wasm`, in `packages` order
    /// (or the single crate's when `packages` is empty; `crate_name` names it then).
    pub fn run(&self, crate_names: &[&str]) -> Result<Vec<PathBuf>, String> {
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let mut cmd = Command::new(cargo);
        cmd.arg("build")
            .arg("--target")
            .arg(TARGET)
            .arg("--manifest-path")
            .arg(self.manifest)
            .arg("--target-dir")
            .arg(self.target_dir);
        let profile = self.profile.unwrap_or("release");
        cmd.arg("--profile").arg(profile);
        for p in self.packages {
            cmd.arg("-p").arg(p);
        }
        // The outer build's flags are for the host target; they must not leak into the guest
        // build (e.g. `-C target-cpu=native` or coverage instrumentation).
        for var in [
            "CARGO_ENCODED_RUSTFLAGS",
            "RUSTFLAGS",
            "CARGO_BUILD_RUSTFLAGS",
            "CARGO_TARGET_DIR",
            "CARGO_BUILD_TARGET",
            "CARGO_MAKEFLAGS",
            "MAKEFLAGS",
            "MFLAGS",
            "RUSTC_WORKSPACE_WRAPPER",
        ] {
            cmd.env_remove(var);
        }
        let output = cmd.output().map_err(|e| format!("could not start cargo to build plugins: {e}"))?;
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            let hint = if stderr.contains("wasm32-wasip2") && stderr.contains("target may not be installed")
                || stderr.contains("can't find crate for `core`")
                || stderr.contains("can't find crate for `std`")
            {
                "\nhint: the wasm32-wasip2 target is missing; run `rustup target add wasm32-wasip2`"
            } else {
                ""
            };
            return Err(format!("building plugins ({}) for {TARGET} failed:\n{stderr}{hint}", self.manifest.display()));
        }
        let dir = self.target_dir.join(TARGET).join(profile);
        crate_names
            .iter()
            .map(|name| {
                let path = dir.join(format!("{}.wasm", name.replace('-', "_")));
                if path.is_file() {
                    Ok(path)
                } else {
                    Err(format!("cargo built plugins but {} is missing", path.display()))
                }
            })
            .collect()
    }
}

/// Tells cargo to rerun the build script when anything under `path` changes.
pub fn rerun_if_changed(path: &Path) {
    println!("cargo:rerun-if-changed={}", path.display());
}
