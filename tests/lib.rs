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
    pub fn explain(&self) -> String {
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
        "HF_TOKEN",
        "HUGGING_FACE_HUB_TOKEN",
        "HF_TOKEN_PATH",
        "HF_HUB_OFFLINE",
        "COUNTRY_ISO_CODE",
    ] {
        c.env_remove(var);
    }
    // No test reaches the real Hub: unless a test names its mock, the endpoint is a closed port.
    c.env("HF_ENDPOINT", "http://127.0.0.1:9");
    c.env("ENERGY_STAR_CACHE_DIR", cache_dir());
    for (k, v) in env {
        c.env(k, v);
    }
    c
}

/// The built-in plugins, as (kind, name).
pub const BUILTIN_PLUGINS: [(&str, &str); 5] = [
    ("backend", "optimum"),
    ("backend", "pytorch"),
    ("backend", "vllm"),
    ("summarizer", "optimum"),
    ("summarizer", "ai_energy_benchmarks"),
];

/// `energy-star plugins --json ARGS`: one JSON object per plugin.
pub fn plugin_listing(cwd: &Path, args: &[&str], env: &[(&str, &str)]) -> Vec<serde_json::Value> {
    let mut all = vec!["plugins", "--json"];
    all.extend_from_slice(args);
    let run = energy_star(cwd, &all, env).success();
    run.stdout().lines().map(|l| serde_json::from_str(l).expect("one JSON object per line")).collect()
}

/// The plugin of `kind` and `name` in a listing.
pub fn listed<'a>(list: &'a [serde_json::Value], kind: &str, name: &str) -> Option<&'a serde_json::Value> {
    list.iter().find(|p| p["kind"] == kind && p["name"] == name)
}

/// A small run of the offline default config (`text_generation_offline`) on `backend`: 4 prompts
/// of exactly `new_tokens` new tokens after one warmup. `flags` go before the config name
/// (`--plugin-dir ...`), `overrides` after it (`scenario.iterations=3`, `--results-dir X`).
pub fn small_offline_run(cwd: &Path, backend: &str, new_tokens: u32, flags: &[&str], overrides: &[&str]) -> Run {
    let max = format!("scenario.generate_kwargs.max_new_tokens={new_tokens}");
    let min = format!("scenario.generate_kwargs.min_new_tokens={new_tokens}");
    let mut args: Vec<&str> = flags.to_vec();
    args.extend(["--config-name", "text_generation_offline", "scenario.num_samples=4", &max, &min]);
    args.push("scenario.warmup_runs=1");
    args.extend_from_slice(overrides);
    energy_star(cwd, &args, &[("BENCHMARK_BACKEND", backend)])
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

/// A broken plugin file of one kind, and the words its warning must contain.
pub struct JunkPlugin {
    pub file: &'static str,
    pub reason: &'static str,
}

/// The summarizer world's exports as a core module: every function traps, `$start` (if any)
/// runs when the component is instantiated, `$imports` adds imports.
fn summarizer_core_module(start: &str, imports: &str) -> Vec<u8> {
    let start_section = if start.is_empty() { String::new() } else { format!("(func $start {start}) (start $start)") };
    let wat = format!(
        r#"(module
            {imports}
            (memory (export "memory") 1)
            (func (export "cabi_realloc") (param i32 i32 i32 i32) (result i32) unreachable)
            (func (export "energy-star:plugin/summarizer@0.1.0#info") (result i32) unreachable)
            (func (export "energy-star:plugin/summarizer@0.1.0#detect") (param i32 i32) (result f32) unreachable)
            (func (export "energy-star:plugin/summarizer@0.1.0#summarize") (param i32 i32) (result i32) unreachable)
            {start_section})"#
    );
    wat::parse_str(&wat).unwrap_or_else(|e| panic!("junk module: {e}"))
}

/// Wraps a core module into a component of `world` (in the 0.1.0 WIT, or in `extra_wit`,
/// which may use it), as `wasm-tools component new` does.
fn componentize(mut module: Vec<u8>, extra_wit: Option<&str>, world: &str) -> Vec<u8> {
    let mut resolve = wit_parser::Resolve::default();
    let (api, _) = resolve.push_dir(root().join("wit/energy-star-plugin@0.1.0")).expect("parse the 0.1.0 WIT");
    let package = match extra_wit {
        Some(text) => resolve.push_str("junk.wit", text).expect("parse the junk WIT"),
        None => api,
    };
    let world = resolve.select_world(&[package], Some(world)).expect("world");
    wit_component::embed_component_metadata(&mut module, &resolve, world, wit_component::StringEncoding::UTF8)
        .expect("embed the component type");
    wit_component::ComponentEncoder::default()
        .module(&module)
        .and_then(|e| e.validate(true).encode())
        .unwrap_or_else(|e| panic!("componentize: {e:#}"))
}

/// Writes one broken plugin file of every kind a user might drop into a plugin folder, and
/// returns them with the words each one's reason must contain.
pub fn write_junk_plugins(dir: &Path) -> Vec<JunkPlugin> {
    let write = |name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).expect("write junk plugin");
    write("text.wasm", b"hello, I am text");
    // A valid empty core module: magic, version 1, layer 0.
    write("core-module.wasm", b"\0asm\x01\0\0\0");
    write("garbage-component.wasm", b"\0asm\x0d\0\x01\0\x07garbage");
    std::fs::copy(&guests().wrong_api_summarizer, dir.join("other-api.wasm")).expect("copy");
    let world = "summarizer-plugin";
    write("info-traps.wasm", &componentize(summarizer_core_module("", ""), None, world));
    write("start-traps.wasm", &componentize(summarizer_core_module("unreachable", ""), None, world));
    write("start-loops.wasm", &componentize(summarizer_core_module("(loop $l (br $l))", ""), None, world));
    let grow = "(drop (memory.grow (i32.const 65000)))";
    write("start-exhausts-memory.wasm", &componentize(summarizer_core_module(grow, ""), None, world));
    let unknown_import = r#"(import "test:junk/gpu-direct" "poke" (func))"#;
    let extra = "package test:junk;\ninterface gpu-direct { poke: func(); }\n\
                 world needs-more { import gpu-direct; export energy-star:plugin/summarizer@0.1.0; }\n";
    write("unknown-import.wasm", &componentize(summarizer_core_module("", unknown_import), Some(extra), "needs-more"));
    vec![
        JunkPlugin { file: "text.wasm", reason: "not a WebAssembly file" },
        JunkPlugin { file: "core-module.wasm", reason: "core WebAssembly module, not a component" },
        JunkPlugin { file: "garbage-component.wasm", reason: "not a valid component" },
        JunkPlugin { file: "other-api.wasm", reason: "was built for energy-star plugin API" },
        JunkPlugin { file: "info-traps.wasm", reason: "trapped in info" },
        JunkPlugin { file: "start-traps.wasm", reason: "trapped in instantiate" },
        JunkPlugin { file: "start-loops.wasm", reason: "without calling the host in instantiate" },
        JunkPlugin { file: "start-exhausts-memory.wasm", reason: "exceeded its memory limit" },
        JunkPlugin { file: "unknown-import.wasm", reason: "needs host interfaces this energy-star does not provide" },
    ]
}
