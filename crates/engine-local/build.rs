//! Builds the engine's own CUDA kernels (`src/mxfp4/mxfp4.cu`) to PTX with nvcc, in builds with
//! the `cuda` feature only; the default build needs no CUDA toolkit.
//!
//! nvcc is found as candle's kernels find it (`NVCC`, `CUDA_HOME`/`CUDA_PATH`/`CUDA_ROOT`, then
//! `PATH`); the PTX targets `CUDA_COMPUTE_CAP` (e.g. 90), else the first GPU nvidia-smi reports,
//! else 80, the oldest architecture with the bfloat16 instructions the kernels use.

use std::path::PathBuf;
use std::process::Command;

const KERNELS: &str = "src/mxfp4/mxfp4.cu";

fn main() {
    println!("cargo::rerun-if-changed={KERNELS}");
    println!("cargo::rerun-if-env-changed=CUDA_COMPUTE_CAP");
    println!("cargo::rerun-if-env-changed=NVCC");
    if std::env::var_os("CARGO_FEATURE_CUDA").is_none() {
        return;
    }
    let out = PathBuf::from(std::env::var_os("OUT_DIR").expect("cargo sets OUT_DIR")).join("mxfp4.ptx");
    let nvcc = nvcc();
    let cap = compute_cap();
    let status = Command::new(&nvcc)
        .args(["--ptx", "-O3", "-std=c++17", &format!("-arch=compute_{cap}"), "-o"])
        .arg(&out)
        .arg(KERNELS)
        .status()
        .unwrap_or_else(|e| {
            panic!(
                "the `cuda` feature compiles {KERNELS} with nvcc, which did not start ({}): {e}; \
                 install a CUDA toolkit or set NVCC / CUDA_HOME",
                nvcc.display()
            )
        });
    assert!(status.success(), "nvcc failed on {KERNELS} ({status})");
}

fn nvcc() -> PathBuf {
    if let Some(n) = std::env::var_os("NVCC") {
        return n.into();
    }
    for var in ["CUDA_HOME", "CUDA_PATH", "CUDA_ROOT"] {
        if let Some(root) = std::env::var_os(var) {
            let candidate = PathBuf::from(root).join("bin/nvcc");
            if candidate.is_file() {
                return candidate;
            }
        }
    }
    "nvcc".into()
}

fn compute_cap() -> String {
    if let Ok(cap) = std::env::var("CUDA_COMPUTE_CAP") {
        return cap.replace('.', "");
    }
    Command::new("nvidia-smi")
        .args(["--query-gpu=compute_cap", "--format=csv,noheader"])
        .output()
        .ok()
        .filter(|o| o.status.success())
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(|l| l.trim().replace('.', "")))
        .filter(|c| !c.is_empty())
        .unwrap_or_else(|| "80".into())
}
