//! Helpers for the integration tests: the real `energy-star` binary, the test guests (built
//! from `tests/guests` as a third party would build them), and a command runner that prints
//! everything when a check fails.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

/// The workspace root.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("tests/ is in the workspace").to_path_buf()
}

/// The samples and fixtures the tests read, inside the checkout (`tests/fixtures`).
pub fn fixtures() -> PathBuf {
    root().join("tests").join("fixtures")
}

/// `target/` and the profile folder the tests were built into.
pub fn target_and_profile() -> (PathBuf, String) {
    let exe = std::env::current_exe().expect("test executable path");
    // target/<profile>/deps/all-<hash>
    let profile_dir = exe.parent().and_then(Path::parent).expect("target/<profile>/deps");
    let profile = profile_dir.file_name().and_then(|n| n.to_str()).unwrap_or("debug").to_string();
    (profile_dir.parent().expect("target").to_path_buf(), profile)
}

fn cargo() -> Command {
    let mut c = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    c.current_dir(root());
    c
}

/// The `energy-star` binary, built (or confirmed up to date) once per test run, so a test
/// never runs a stale binary.
pub fn bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        let (target, profile) = target_and_profile();
        let mut c = cargo();
        c.args(["build", "-p", "energy-star", "--bin", "energy-star", "--target-dir"]).arg(&target);
        if profile == "release" {
            c.arg("--release");
        }
        let out = c.output().expect("run cargo build");
        assert!(out.status.success(), "building energy-star failed:\n{}", String::from_utf8_lossy(&out.stderr));
        target.join(&profile).join("energy-star")
    })
}

/// Paths of the test guests' `.wasm` files.
pub struct Guests {
    pub codecarbon_summarizer: PathBuf,
    pub echo_backend: PathBuf,
    pub hostile_summarizer: PathBuf,
    pub optimum_override: PathBuf,
    pub wrong_api_summarizer: PathBuf,
}

/// Builds the test guests once per run (a nested cargo into `target/test-guests`).
pub fn guests() -> &'static Guests {
    static GUESTS: OnceLock<Guests> = OnceLock::new();
    GUESTS.get_or_init(|| {
        let (target, _) = target_and_profile();
        let names =
            ["codecarbon-summarizer", "echo-backend", "hostile-summarizer", "optimum-override", "wrong-api-summarizer"];
        let build = energy_star_plugin_build::PluginBuild {
            manifest: &root().join("tests/guests/Cargo.toml"),
            packages: &[],
            profile: None,
            target_dir: &target.join("test-guests"),
        };
        let paths = build.run(&names).unwrap_or_else(|e| panic!("{e}"));
        let mut it = paths.into_iter();
        let mut next = || it.next().expect("one path per guest");
        Guests {
            codecarbon_summarizer: next(),
            echo_backend: next(),
            hostile_summarizer: next(),
            optimum_override: next(),
            wrong_api_summarizer: next(),
        }
    })
}

/// A compile cache shared by the tests of one run (its own folder, never the user's).
pub fn cache_dir() -> &'static Path {
    static DIR: OnceLock<tempfile::TempDir> = OnceLock::new();
    DIR.get_or_init(|| tempfile::tempdir().expect("cache tempdir")).path()
}

/// A finished command with everything needed to explain a failed check.
pub struct Run {
    pub cmd: String,
    pub output: Output,
}

impl Run {
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }
    pub fn code(&self) -> Option<i32> {
        self.output.status.code()
    }
    fn explain(&self) -> String {
        format!(
            "command: {}\nexit: {:?}\n--- stdout\n{}\n--- stderr\n{}",
            self.cmd,
            self.code(),
            self.stdout(),
            self.stderr()
        )
    }
    /// Asserts exit code 0 and returns self.
    pub fn success(self) -> Self {
        assert_eq!(self.code(), Some(0), "expected success\n{}", self.explain());
        self
    }
    /// Asserts exit code `code` and that stderr contains every `needle`.
    pub fn fails_with(self, code: i32, needles: &[&str]) -> Self {
        assert_eq!(self.code(), Some(code), "expected exit {code}\n{}", self.explain());
        let err = self.stderr();
        for n in needles {
            assert!(err.contains(n), "stderr lacks {n:?}\n{}", self.explain());
        }
        // A guest's panic message is quoted in errors; the host's own threads must never panic.
        assert!(
            !err.contains("thread 'main'") && !err.contains("thread 'energy-star"),
            "the host panicked\n{}",
            self.explain()
        );
        self
    }
}

/// Runs `energy-star` in `cwd` with a clean environment (no variables of ours leak in).
pub fn energy_star(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = command(cwd, args, env);
    let cmd = format!("{} {}", bin().display(), args.join(" "));
    let output = c.output().expect("spawn energy-star");
    Run { cmd, output }
}

/// Runs `energy-star` with its stdout closed by the reader before it prints (`| head -c 0`).
pub fn energy_star_with_closed_stdout(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Run {
    let mut c = command(cwd, args, env);
    c.stdout(std::process::Stdio::piped()).stderr(std::process::Stdio::piped());
    let mut child = c.spawn().expect("spawn energy-star");
    drop(child.stdout.take());
    let output = child.wait_with_output().expect("wait for energy-star");
    Run { cmd: format!("{} {} | head -c 0", bin().display(), args.join(" ")), output }
}

fn command(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Command {
    let mut c = Command::new(bin());
    c.current_dir(cwd).args(args);
    for var in [
        "BENCHMARK_BACKEND",
        "VLLM_ENDPOINT",
        "VLLM_API_KEY",
        "OPENAI_API_KEY",
        "ENERGY_STAR_CONFIG_DIR",
        "RESULTS_DIR",
        "ENERGY_STAR_PLUGIN_PATH",
        "ENERGY_STAR_PLUGIN_MEMORY_MIB",
        "ENERGY_STAR_PLUGIN_TIME_LIMIT_S",
    ] {
        c.env_remove(var);
    }
    c.env("ENERGY_STAR_CACHE_DIR", cache_dir());
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// A folder holding copies of `files` (renamed to `name`), e.g. a results folder with a report.
pub fn folder_with(files: &[(&Path, &str)]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (src, name) in files {
        let dest = dir.path().join(name);
        if let Some(parent) = dest.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::copy(src, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
    }
    dir
}

/// Reads a JSON file.
pub fn read_json(path: &Path) -> serde_json::Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("read {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()))
}
