//! Kernel throughput from cache: four-row dot products over a 1536 × 576 weight matrix (SmolLM2's
//! MLP shape, 0.5-1 MB, so it stays in L2/L3) against one quantized activation row, on one
//! thread. What the kernels cost per block, apart from memory bandwidth and the engine around
//! them. Run: `cargo bench -p energy-star-kernels --bench kernels`.

use std::time::Instant;

use energy_star_kernels::*;

fn run<B: QuantBlock>(make: impl Fn(usize) -> B) {
    let (rows, kb) = (1536usize, 18usize);
    let w: Vec<B> = (0..rows * kb).map(&make).collect();
    let x: Vec<f32> = (0..kb * BLOCK).map(|i| (i as f32 * 0.37).sin()).collect();
    let a = Q8Row::quantize(&x);
    let mut sink = 0f32;
    let iters = 2000;
    let t = Instant::now();
    for _ in 0..iters {
        for o in (0..rows).step_by(4) {
            let r = |k: usize| &w[(o + k) * kb..(o + k + 1) * kb];
            sink += dot4([r(0), r(1), r(2), r(3)], &a)[0];
        }
    }
    let s = t.elapsed().as_secs_f64();
    let bytes = (rows * kb * B::BYTES) as f64 * f64::from(iters);
    println!(
        "| {} | {} | {:.2} | {:.1} |",
        B::NAME,
        implementation(),
        s * 1e9 / (f64::from(iters) * (rows * kb) as f64),
        bytes / s / 1e9
    );
    std::hint::black_box(sink);
}

fn main() {
    println!("| type | kernel | ns per block | GB/s of weights |");
    println!("|---|---|---|---|");
    run(|i| BlockQ4_0 { d: 0x3c00, qs: std::array::from_fn(|j| (i + j) as u8) });
    run(|i| BlockQ4_1 { d: 0x3c00, m: 0x3c00, qs: std::array::from_fn(|j| (i + j) as u8) });
    run(|i| BlockQ5_0 { d: 0x3c00, qh: [1, 2, 3, i as u8], qs: std::array::from_fn(|j| (i + j) as u8) });
    run(|i| BlockQ8_0 { d: 0x3c00, qs: std::array::from_fn(|j| ((i + j) % 200) as i8 - 100) });
}
