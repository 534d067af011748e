//! CPU kernels for weights kept quantized as GGUF stores them.
//!
//! A quantized matrix product here does what llama.cpp's does: the activations are quantized
//! per 32-value block to 8 bits (`Q8_1`: a scale and the block's scaled sum), and each output is
//! a sum over blocks of integer dot products times the two scales, plus the weight block's
//! minimum times the activation block's sum. Weights are never expanded to floats.
//!
//! Every kernel has a scalar reference ([`scalar`]) that runs everywhere and defines the result;
//! the SIMD versions ([`x86`], the only module with `unsafe`) are chosen at run time when the
//! CPU has the features, and are tested against the reference on random blocks. They sum in a
//! different order, so they agree with it to float32 rounding (relative 1e-5), not bit for bit.
//!
//! Types: `Q4_1` weights (32 values: `d`, `m` as float16, 16 bytes of 4-bit `q`; value
//! `d·q + m`) against `Q8_1` activations. candle's CPU kernel for this pair is scalar; the others
//! GGUF files use (Q4_0, Q8_0, the K-quants) have SIMD kernels in candle.

mod scalar;
mod x86;

use half::f16;

/// Values per block of the 32-value types.
pub const BLOCK: usize = 32;

/// A `Q4_1` block as GGUF stores it (20 bytes).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct BlockQ4_1 {
    /// Scale, float16 bits.
    pub d: u16,
    /// Minimum, float16 bits.
    pub m: u16,
    /// Value `j` in the low nibble of byte `j`, value `j + 16` in its high nibble.
    pub qs: [u8; BLOCK / 2],
}

/// Bytes of one [`BlockQ4_1`] in a file.
pub const Q4_1_BYTES: usize = 20;

impl BlockQ4_1 {
    /// Reads blocks from GGUF's bytes (little-endian float16s, then the nibbles).
    pub fn parse(bytes: &[u8]) -> Result<Vec<BlockQ4_1>, String> {
        if !bytes.len().is_multiple_of(Q4_1_BYTES) {
            return Err(format!("{} bytes are not a whole number of Q4_1 blocks ({Q4_1_BYTES} bytes)", bytes.len()));
        }
        Ok(bytes
            .chunks_exact(Q4_1_BYTES)
            .map(|b| {
                let mut qs = [0u8; BLOCK / 2];
                qs.copy_from_slice(&b[4..]);
                BlockQ4_1 { d: u16::from_le_bytes([b[0], b[1]]), m: u16::from_le_bytes([b[2], b[3]]), qs }
            })
            .collect())
    }

    /// The block's 32 values.
    pub fn dequantize(&self) -> [f32; BLOCK] {
        let (d, m) = (f16::from_bits(self.d).to_f32(), f16::from_bits(self.m).to_f32());
        let mut out = [0f32; BLOCK];
        for (j, &q) in self.qs.iter().enumerate() {
            out[j] = f32::from(q & 0x0F) * d + m;
            out[j + BLOCK / 2] = f32::from(q >> 4) * d + m;
        }
        out
    }
}

/// A `Q8_1` block: 32 signed 8-bit values, their scale `d`, and `s = d · Σq`, float16 bits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct BlockQ8_1 {
    pub d: u16,
    pub s: u16,
    pub qs: [i8; BLOCK],
}

impl Default for BlockQ8_1 {
    fn default() -> Self {
        Self { d: 0, s: 0, qs: [0; BLOCK] }
    }
}

/// Quantizes `x` (a multiple of 32 long) into `out` as llama.cpp's `quantize_row_q8_1`:
/// per block `d = max|x| / 127`, `q = round(x / d)` (half away from zero), `s = d · Σq`.
pub fn quantize_q8_1(x: &[f32], out: &mut Vec<BlockQ8_1>) {
    out.clear();
    out.extend(x.chunks_exact(BLOCK).map(|xs| {
        let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
        let d = amax / 127.0;
        let id = if d != 0.0 { 1.0 / d } else { 0.0 };
        let mut qs = [0i8; BLOCK];
        let mut sum = 0i32;
        for (q, v) in qs.iter_mut().zip(xs) {
            *q = (v * id).round() as i8;
            sum += i32::from(*q);
        }
        BlockQ8_1 { d: f16::from_f32(d).to_bits(), s: f16::from_f32(sum as f32 * d).to_bits(), qs }
    }));
}

/// `Σ_blocks dot(w, a)`: a `Q4_1` row against a `Q8_1` row of the same length.
pub fn dot_q4_1_q8_1(w: &[BlockQ4_1], a: &[BlockQ8_1]) -> f32 {
    assert_eq!(w.len(), a.len(), "a weight row and an activation row of different lengths");
    if let Some(dot) = x86::dot_q4_1_q8_1(w, a) {
        return dot;
    }
    scalar::dot_q4_1_q8_1(w, a)
}

/// An activation row quantized to `Q8_1`, with its blocks' scales and sums as float32 so that
/// the many weight rows it meets do not convert them again.
#[derive(Debug, Clone, Default)]
pub struct Q8_1Row {
    pub blocks: Vec<BlockQ8_1>,
    pub d: Vec<f32>,
    pub s: Vec<f32>,
}

impl Q8_1Row {
    /// Quantizes `x` (a multiple of 32 long) as [`quantize_q8_1`].
    pub fn quantize(x: &[f32]) -> Self {
        let mut blocks = Vec::with_capacity(x.len() / BLOCK);
        quantize_q8_1(x, &mut blocks);
        let d = blocks.iter().map(|b| f16::from_bits(b.d).to_f32()).collect();
        let s = blocks.iter().map(|b| f16::from_bits(b.s).to_f32()).collect();
        Self { blocks, d, s }
    }
}

/// Four `Q4_1` rows against one activation row: the activation's bytes are loaded once for the
/// four. Each result equals [`dot_q4_1_q8_1`]'s for its row.
pub fn dot4_q4_1_q8_1(w: [&[BlockQ4_1]; 4], a: &Q8_1Row) -> [f32; 4] {
    for row in w {
        assert_eq!(row.len(), a.blocks.len(), "a weight row and an activation row of different lengths");
    }
    if let Some(dots) = x86::dot4_q4_1_q8_1(w, a) {
        return dots;
    }
    w.map(|row| scalar::dot_q4_1_q8_1(row, &a.blocks))
}

/// Which implementation [`dot_q4_1_q8_1`] runs on this CPU, for benchmarks and logs.
pub fn implementation() -> &'static str {
    if x86::available() { "avx2" } else { "scalar" }
}

pub use scalar::dot_q4_1_q8_1 as dot_q4_1_q8_1_scalar;

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn block_q4_1() -> impl Strategy<Value = BlockQ4_1> {
        (-2.0f32..2.0, -2.0f32..2.0, proptest::array::uniform16(any::<u8>())).prop_map(|(d, m, qs)| BlockQ4_1 {
            d: f16::from_f32(d).to_bits(),
            m: f16::from_f32(m).to_bits(),
            qs,
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        /// The dispatched kernel (AVX2 here when the CPU has it) against the scalar reference,
        /// on rows of 1 to 40 blocks.
        #[test]
        fn q4_1_dot_matches_the_reference(
            w in proptest::collection::vec(block_q4_1(), 1..40),
            seed in any::<u64>(),
        ) {
            let mut x = Vec::with_capacity(w.len() * BLOCK);
            let mut s = seed | 1;
            for _ in 0..w.len() * BLOCK {
                s ^= s << 13; s ^= s >> 7; s ^= s << 17;
                x.push(((s >> 11) as f32 / (1u64 << 53) as f32) * 6.0 - 3.0);
            }
            let mut a = Vec::new();
            quantize_q8_1(&x, &mut a);
            let reference = dot_q4_1_q8_1_scalar(&w, &a);
            let got = dot_q4_1_q8_1(&w, &a);
            let scale: f32 = w.iter().zip(&a).map(|(w, a)| {
                let dq = w.dequantize();
                let da = f16::from_bits(a.d).to_f32();
                dq.iter().zip(&a.qs).map(|(x, q)| (x * da * f32::from(*q)).abs()).sum::<f32>()
            }).sum::<f32>().max(1.0);
            prop_assert!((got - reference).abs() <= 1e-5 * scale, "{got} vs {reference} (scale {scale})");
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]

        /// Four rows at once give each row's reference result.
        #[test]
        fn q4_1_dot4_matches_the_reference(
            rows in proptest::collection::vec(proptest::collection::vec(block_q4_1(), 7), 4),
            x in proptest::collection::vec(-3.0f32..3.0, 7 * BLOCK),
        ) {
            let a = Q8_1Row::quantize(&x);
            let got = dot4_q4_1_q8_1([&rows[0], &rows[1], &rows[2], &rows[3]], &a);
            for (r, g) in rows.iter().zip(got) {
                let reference = dot_q4_1_q8_1_scalar(r, &a.blocks);
                prop_assert!((g - reference).abs() <= 1e-4 * reference.abs().max(10.0), "{g} vs {reference}");
            }
        }
    }

    #[test]
    fn the_reference_is_the_dequantized_dot_of_the_quantized_activations() {
        // The Q8_1 sum term: d_w·d_a·Σ q_w q_a + m_w · s_a = Σ (d_w q_w + m_w)(d_a q_a) when s_a
        // is exact, which float16 rounding of s makes approximate.
        let w: Vec<BlockQ4_1> = (0..3u8)
            .map(|i| BlockQ4_1 {
                d: f16::from_f32(0.25).to_bits(),
                m: f16::from_f32(-1.0 + f32::from(i)).to_bits(),
                qs: std::array::from_fn(|j| (j as u8).wrapping_mul(37).wrapping_add(i)),
            })
            .collect();
        let x: Vec<f32> = (0..96).map(|i| (i as f32 * 0.37).sin()).collect();
        let mut a = Vec::new();
        quantize_q8_1(&x, &mut a);
        let mut expected = 0f32;
        for (wb, ab) in w.iter().zip(&a) {
            let da = f16::from_bits(ab.d).to_f32();
            for (v, q) in wb.dequantize().iter().zip(&ab.qs) {
                expected += v * da * f32::from(*q);
            }
        }
        let got = dot_q4_1_q8_1_scalar(&w, &a);
        assert!((got - expected).abs() < 1e-2, "{got} vs {expected}");
        assert_eq!(implementation(), if std::is_x86_feature_detected!("avx2") { "avx2" } else { "scalar" });
    }

    #[test]
    fn blocks_parse_as_gguf_lays_them_out() {
        let mut bytes = vec![0u8; 40];
        bytes[0..2].copy_from_slice(&f16::from_f32(0.5).to_bits().to_le_bytes());
        bytes[2..4].copy_from_slice(&f16::from_f32(-1.0).to_bits().to_le_bytes());
        bytes[4] = 0x3A; // value 0 = 10, value 16 = 3
        let blocks = BlockQ4_1::parse(&bytes).expect("two blocks");
        assert_eq!(blocks.len(), 2);
        let v = blocks[0].dequantize();
        assert_eq!((v[0], v[16], v[1]), (10.0 * 0.5 - 1.0, 3.0 * 0.5 - 1.0, -1.0));
        assert!(BlockQ4_1::parse(&bytes[..39]).unwrap_err().contains("not a whole number"));
    }
}
