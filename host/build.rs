//! Builds the built-in plugins for wasm32-wasip2 and writes `builtin_plugins.rs`, which embeds
//! them, so one `energy-star` binary works alone.

use std::path::PathBuf;

use energy_star_plugin_build::{PROFILE, PluginBuild, rerun_if_changed};

/// (package, kind) of every built-in plugin.
const BUILTINS: &[(&str, &str)] = &[
    ("energy-star-summarizer-optimum", "summarizer"),
    ("energy-star-summarizer-ai-energy-benchmarks", "summarizer"),
    ("energy-star-backend-optimum", "backend"),
    ("energy-star-backend-pytorch", "backend"),
    ("energy-star-backend-vllm", "backend"),
];

fn main() {
    let manifest_dir = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR"));
    let root = manifest_dir.parent().expect("host/ lives in the workspace root").to_path_buf();
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    rerun_if_changed(&root.join("plugins"));
    rerun_if_changed(&root.join("wit"));
    rerun_if_changed(&root.join("Cargo.lock"));

    let target_dir = root.join("target").join("plugins");
    let packages: Vec<&str> = BUILTINS.iter().map(|(p, _)| *p).collect();
    let build = PluginBuild {
        manifest: &root.join("Cargo.toml"),
        packages: &packages,
        profile: Some(PROFILE),
        target_dir: &target_dir,
    };
    let wasm = match build.run(&packages) {
        Ok(paths) => paths,
        Err(e) => {
            // A clean message, not a panic and a backtrace: this is the user's setup, not a bug.
            eprintln!("error: {e}");
            std::process::exit(1);
        }
    };
    let mut code =
        String::from("/// Built-in plugins embedded at build time.\npub const BUILTIN_PLUGINS: &[Builtin] = &[\n");
    for ((package, _kind), path) in BUILTINS.iter().zip(&wasm) {
        code.push_str(&format!(
            "    Builtin {{ package: {package:?}, wasm: include_bytes!({:?}) }},\n",
            path.display().to_string()
        ));
    }
    code.push_str("];\n");
    std::fs::write(out_dir.join("builtin_plugins.rs"), code).expect("write builtin_plugins.rs");
    println!("cargo:rustc-env=ENERGY_STAR_COMMIT={}", build_commit(&root));
}

/// The commit the binary is built from, for bundles' manifests: `ENERGY_STAR_COMMIT` when the
/// build sets it (an image built without `.git`), else git's HEAD at build time, else "unknown".
/// Uncommitted changes are not detected (watching the index would rebuild on every `git add`).
fn build_commit(root: &std::path::Path) -> String {
    println!("cargo:rerun-if-env-changed=ENERGY_STAR_COMMIT");
    if let Some(c) = std::env::var("ENERGY_STAR_COMMIT").ok().filter(|c| !c.trim().is_empty()) {
        return c.trim().to_string();
    }
    let git = |args: &[&str]| {
        std::process::Command::new("git")
            .args(args)
            .current_dir(root)
            .output()
            .ok()
            .filter(|o| o.status.success())
            .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
    };
    // A new commit or checkout moves these files; the build then reads HEAD again.
    if let Some(dir) = git(&["rev-parse", "--git-dir"]) {
        let dir = root.join(dir);
        println!("cargo:rerun-if-changed={}", dir.join("HEAD").display());
        if let Some(r) = git(&["symbolic-ref", "-q", "HEAD"]) {
            println!("cargo:rerun-if-changed={}", dir.join(r).display());
        }
    }
    git(&["rev-parse", "HEAD"]).unwrap_or_else(|| "unknown".into())
}
