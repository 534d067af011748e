//! The reference kernels: plain Rust, any CPU. They define what the SIMD kernels compute.

use half::f16;

use super::{BlockQ4_1, BlockQ8_1};

/// `Σ_blocks d_w·d_a·Σ_j q_w[j]·q_a[j] + m_w·s_a`, as llama.cpp's `ggml_vec_dot_q4_1_q8_1`.
pub fn dot_q4_1_q8_1(w: &[BlockQ4_1], a: &[BlockQ8_1]) -> f32 {
    let mut sum = 0f32;
    for (x, y) in w.iter().zip(a) {
        let mut acc = 0i32;
        for (j, &q) in x.qs.iter().enumerate() {
            acc += i32::from(q & 0x0F) * i32::from(y.qs[j]);
            acc += i32::from(q >> 4) * i32::from(y.qs[j + 16]);
        }
        let (dx, mx) = (f16::from_bits(x.d).to_f32(), f16::from_bits(x.m).to_f32());
        let (dy, sy) = (f16::from_bits(y.d).to_f32(), f16::from_bits(y.s).to_f32());
        sum += dx * dy * acc as f32 + mx * sy;
    }
    sum
}
