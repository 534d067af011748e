//! On an NVIDIA GPU (a `--features cuda` build; ignored elsewhere): the engine's MXFP4 kernels
//! against the CPU reference, and every fixture against transformers' references on CUDA.
//! Run with `cargo test -p energy-star-engine-local --features cuda --test all -- --ignored gpu::`.

#![cfg(feature = "cuda")]

use candle_core::{DType, Device, Tensor};
use energy_star_engine_local::mxfp4::PackedExperts;
use energy_star_engine_local::mxfp4::device::{DeviceExperts, UNPACK_FROM_TOKENS};

use super::*;

fn gpu() -> Device {
    Device::new_cuda(0).expect("an NVIDIA GPU")
}

/// Random packed experts of odd sizes, with scales near 1.
fn experts(e: usize, rows: usize, cols: usize) -> PackedExperts {
    let groups = cols / 32;
    let mut s = 11u64;
    let mut next = || {
        s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        (s >> 33) as u8
    };
    let blocks: Vec<u8> = (0..e * rows * groups * 16).map(|_| next()).collect();
    let scales: Vec<u8> = (0..e * rows * groups).map(|_| 121 + next() % 10).collect();
    PackedExperts::new("w", blocks, &[e, rows, groups, 16], scales, &[e, rows, groups], (e, rows, cols)).expect("shape")
}

#[test]
#[ignore = "needs an NVIDIA GPU and a --features cuda build"]
fn gpu_mxfp4_kernels_match_the_cpu_reference() {
    for (e, rows, cols) in [(2, 37, 96), (3, 2880, 2880), (1, 5, 32)] {
        let w = experts(e, rows, cols);
        let d = DeviceExperts::upload(&w, &gpu()).expect("upload");
        for tokens in [1, 3, UNPACK_FROM_TOKENS - 1, UNPACK_FROM_TOKENS + 5] {
            let x: Vec<f32> = (0..tokens * cols).map(|i| ((i * 37 % 101) as f32) / 50.0 - 1.0).collect();
            for expert in 0..e {
                let want = w.matmul_t(expert, &x, tokens);
                for (dtype, tolerance) in [(DType::F32, 1e-4f32), (DType::BF16, 2e-2), (DType::F16, 5e-3)] {
                    let xt =
                        Tensor::from_vec(x.clone(), (tokens, cols), &gpu()).expect("x").to_dtype(dtype).expect("dtype");
                    let got: Vec<f32> = d
                        .matmul_t(expert, &xt)
                        .expect("product")
                        .to_dtype(DType::F32)
                        .expect("f32")
                        .flatten_all()
                        .expect("flat")
                        .to_vec1()
                        .expect("host");
                    let scale = want.iter().map(|v| v.abs()).fold(1f32, f32::max);
                    let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                    assert!(worst <= tolerance * scale, "{e}x{rows}x{cols}, {tokens} tokens, {dtype:?}: {worst}");
                }
            }
            let dense = d.dequantize(e - 1, DType::F32).expect("unpack").flatten_all().expect("flat");
            assert_eq!(dense.to_vec1::<f32>().expect("host"), w.dequantize(e - 1), "unpacking is exact in f32");
        }
    }
}

#[test]
#[ignore = "needs an NVIDIA GPU and a --features cuda build"]
fn gpu_every_fixture_matches_transformers_on_cuda() {
    for name in [
        "tiny-llama",
        "tiny-gpt-oss",
        "tiny-qwen3-moe",
        "tiny-mixtral",
        "tiny-phi3",
        "tiny-smollm3",
        "tiny-gemma3",
        "tiny-gemma3-mm",
    ] {
        let dir = fixture_named(name);
        let spec = LocalSpec {
            model: dir.display().to_string(),
            device: "cuda".into(),
            dtype: "float32".into(),
            processor: None,
        };
        let e = CandleEngine::open(&spec, &|_: &str| None).expect("loads on CUDA");
        let cases = cases_at(&dir);
        let prompts: Vec<String> = cases.iter().map(|c| c.prompt.clone()).collect();
        let out = e.generate(&prompts, &fixed(32)).expect("batch");
        for (c, r) in cases.iter().zip(&out.requests) {
            assert_eq!(r.output_ids, c.output_ids, "{name} on CUDA, batched: {:?}", c.prompt);
        }
    }
}
