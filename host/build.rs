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
}
