//! The reference kernels: plain Rust, any CPU. They define what the SIMD kernels compute, in
//! llama.cpp's formulas (`ggml_vec_dot_*_q8_*`): an integer dot product per block, times the
//! two scales.

use half::f16;

use super::{BLOCK, BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ8_0, Q8Row};

fn f32_of(h: u16) -> f32 {
    f16::from_bits(h).to_f32()
}

/// Σ_j q_w[j]·q_a[j] over a block, with the weight's values given as bytes offset by `bias`.
fn int_dot(q: &[u8; BLOCK], bias: i32, a: &[i8; BLOCK]) -> i32 {
    q.iter().zip(a).map(|(&w, &x)| (i32::from(w) - bias) * i32::from(x)).sum()
}

fn unpack(qs: &[u8; BLOCK / 2]) -> [u8; BLOCK] {
    let mut q = [0u8; BLOCK];
    for (j, &b) in qs.iter().enumerate() {
        q[j] = b & 0x0F;
        q[j + BLOCK / 2] = b >> 4;
    }
    q
}

pub fn dot_q4_0(w: &[BlockQ4_0], a: &Q8Row) -> f32 {
    w.iter()
        .zip(a.qs.iter().zip(&a.d))
        .map(|(x, (qa, da))| f32_of(x.d) * da * int_dot(&unpack(&x.qs), 8, qa) as f32)
        .sum()
}

/// Plus `m · s`: the minimum times the activation block's scaled sum.
pub fn dot_q4_1(w: &[BlockQ4_1], a: &Q8Row) -> f32 {
    w.iter()
        .zip(a.qs.iter().zip(a.d.iter().zip(&a.s)))
        .map(|(x, (qa, (da, sa)))| f32_of(x.d) * da * int_dot(&unpack(&x.qs), 0, qa) as f32 + f32_of(x.m) * sa)
        .sum()
}

pub fn dot_q5_0(w: &[BlockQ5_0], a: &Q8Row) -> f32 {
    w.iter()
        .zip(a.qs.iter().zip(&a.d))
        .map(|(x, (qa, da))| {
            let high = u32::from_le_bytes(x.qh);
            let mut q = unpack(&x.qs);
            for (j, v) in q.iter_mut().enumerate() {
                *v |= (((high >> j) & 1) as u8) << 4;
            }
            f32_of(x.d) * da * int_dot(&q, 16, qa) as f32
        })
        .sum()
}

pub fn dot_q8_0(w: &[BlockQ8_0], a: &Q8Row) -> f32 {
    w.iter()
        .zip(a.qs.iter().zip(&a.d))
        .map(|(x, (qa, da))| {
            let sum: i32 = x.qs.iter().zip(qa).map(|(&p, &q)| i32::from(p) * i32::from(q)).sum();
            f32_of(x.d) * da * sum as f32
        })
        .sum()
}
