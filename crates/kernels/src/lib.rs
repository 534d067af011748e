//! CPU kernels for weights kept quantized as GGUF stores them.
//!
//! A quantized matrix product here does what llama.cpp's does: the activations are quantized
//! per 32-value block to 8 bits ([`Q8Row`]: a scale, and for `Q4_1` the block's scaled sum), and
//! each output is a sum over blocks of integer dot products times the two scales (plus, for
//! `Q4_1`, the weight block's minimum times the activation block's sum). Weights are never
//! expanded to floats.
//!
//! Every kernel has a scalar reference ([`scalar`]) that runs everywhere and defines the result;
//! the SIMD versions ([`x86`], the only module with `unsafe`) are chosen at run time when the
//! CPU has AVX2, FMA and F16C, and are tested against the reference on random blocks. They sum in
//! a different order, so they agree with it to float32 rounding, not bit for bit.
//!
//! Types (32 values a block, scales float16): `Q4_0` (`d·(q − 8)`, 4-bit q), `Q4_1` (`d·q + m`),
//! `Q5_0` (`d·(q − 16)`, the fifth bits packed in `qh`), `Q8_0` (`d·q`, 8-bit signed q). The
//! local engine uses the first three; for `Q8_0` candle's kernel decoded a single sequence faster
//! on the machine measured (docs/benchmarks.md).

mod scalar;
mod x86;

use half::f16;

/// Values per block.
pub const BLOCK: usize = 32;

/// A weight block type as GGUF stores it.
pub trait QuantBlock: Copy + Send + Sync + std::fmt::Debug + 'static {
    /// GGUF's name of the type.
    const NAME: &'static str;
    /// Bytes of one block in a file.
    const BYTES: usize;
    /// One block from exactly [`QuantBlock::BYTES`] bytes (little-endian scales first).
    fn read(bytes: &[u8]) -> Self;
    /// The block's 32 values.
    fn dequantize(&self) -> [f32; BLOCK];
    /// The reference dot product of a row with a quantized activation row.
    fn dot_scalar(w: &[Self], a: &Q8Row) -> f32;
    /// Four rows at once with SIMD, where this CPU has it.
    fn dot4_simd(w: [&[Self]; 4], a: &Q8Row) -> Option<[f32; 4]>;
}

/// Blocks of type `B` from GGUF's bytes.
pub fn parse<B: QuantBlock>(bytes: &[u8]) -> Result<Vec<B>, String> {
    if !bytes.len().is_multiple_of(B::BYTES) {
        return Err(format!("{} bytes are not a whole number of {} blocks ({} bytes)", bytes.len(), B::NAME, B::BYTES));
    }
    Ok(bytes.chunks_exact(B::BYTES).map(B::read).collect())
}

fn half(bytes: &[u8], at: usize) -> u16 {
    u16::from_le_bytes([bytes[at], bytes[at + 1]])
}

fn f32_of(h: u16) -> f32 {
    f16::from_bits(h).to_f32()
}

/// `Q4_0`: `d·(q − 8)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct BlockQ4_0 {
    pub d: u16,
    /// Value `j` in the low nibble of byte `j`, value `j + 16` in its high nibble.
    pub qs: [u8; BLOCK / 2],
}

/// `Q4_1`: `d·q + m`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct BlockQ4_1 {
    pub d: u16,
    pub m: u16,
    pub qs: [u8; BLOCK / 2],
}

/// `Q5_0`: `d·(q − 16)`, q's low four bits as `Q4_0`'s nibbles and bit `j` of `qh` its fifth.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[repr(C)]
pub struct BlockQ5_0 {
    pub d: u16,
    pub qh: [u8; 4],
    pub qs: [u8; BLOCK / 2],
}

/// `Q8_0`: `d·q`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(C)]
pub struct BlockQ8_0 {
    pub d: u16,
    pub qs: [i8; BLOCK],
}

impl Default for BlockQ8_0 {
    fn default() -> Self {
        Self { d: 0, qs: [0; BLOCK] }
    }
}

fn nibbles(qs: &[u8; BLOCK / 2]) -> [u8; BLOCK] {
    let mut q = [0u8; BLOCK];
    for (j, &b) in qs.iter().enumerate() {
        q[j] = b & 0x0F;
        q[j + BLOCK / 2] = b >> 4;
    }
    q
}

impl QuantBlock for BlockQ4_0 {
    const NAME: &'static str = "Q4_0";
    const BYTES: usize = 18;
    fn read(b: &[u8]) -> Self {
        let mut qs = [0u8; BLOCK / 2];
        qs.copy_from_slice(&b[2..18]);
        Self { d: half(b, 0), qs }
    }
    fn dequantize(&self) -> [f32; BLOCK] {
        let d = f32_of(self.d);
        nibbles(&self.qs).map(|q| (f32::from(q) - 8.0) * d)
    }
    fn dot_scalar(w: &[Self], a: &Q8Row) -> f32 {
        scalar::dot_q4_0(w, a)
    }
    fn dot4_simd(w: [&[Self]; 4], a: &Q8Row) -> Option<[f32; 4]> {
        x86::dot4_q4_0(w, a)
    }
}

impl QuantBlock for BlockQ4_1 {
    const NAME: &'static str = "Q4_1";
    const BYTES: usize = 20;
    fn read(b: &[u8]) -> Self {
        let mut qs = [0u8; BLOCK / 2];
        qs.copy_from_slice(&b[4..20]);
        Self { d: half(b, 0), m: half(b, 2), qs }
    }
    fn dequantize(&self) -> [f32; BLOCK] {
        let (d, m) = (f32_of(self.d), f32_of(self.m));
        nibbles(&self.qs).map(|q| f32::from(q) * d + m)
    }
    fn dot_scalar(w: &[Self], a: &Q8Row) -> f32 {
        scalar::dot_q4_1(w, a)
    }
    fn dot4_simd(w: [&[Self]; 4], a: &Q8Row) -> Option<[f32; 4]> {
        x86::dot4_q4_1(w, a)
    }
}

impl BlockQ5_0 {
    /// The 5-bit values, 0..32.
    fn values(&self) -> [u8; BLOCK] {
        let high = u32::from_le_bytes(self.qh);
        let mut q = nibbles(&self.qs);
        for (j, v) in q.iter_mut().enumerate() {
            *v |= (((high >> j) & 1) as u8) << 4;
        }
        q
    }
}

impl QuantBlock for BlockQ5_0 {
    const NAME: &'static str = "Q5_0";
    const BYTES: usize = 22;
    fn read(b: &[u8]) -> Self {
        let (mut qh, mut qs) = ([0u8; 4], [0u8; BLOCK / 2]);
        qh.copy_from_slice(&b[2..6]);
        qs.copy_from_slice(&b[6..22]);
        Self { d: half(b, 0), qh, qs }
    }
    fn dequantize(&self) -> [f32; BLOCK] {
        let d = f32_of(self.d);
        self.values().map(|q| (f32::from(q) - 16.0) * d)
    }
    fn dot_scalar(w: &[Self], a: &Q8Row) -> f32 {
        scalar::dot_q5_0(w, a)
    }
    fn dot4_simd(w: [&[Self]; 4], a: &Q8Row) -> Option<[f32; 4]> {
        x86::dot4_q5_0(w, a)
    }
}

impl QuantBlock for BlockQ8_0 {
    const NAME: &'static str = "Q8_0";
    const BYTES: usize = 34;
    fn read(b: &[u8]) -> Self {
        let mut qs = [0i8; BLOCK];
        for (q, &x) in qs.iter_mut().zip(&b[2..34]) {
            *q = x as i8;
        }
        Self { d: half(b, 0), qs }
    }
    fn dequantize(&self) -> [f32; BLOCK] {
        let d = f32_of(self.d);
        self.qs.map(|q| f32::from(q) * d)
    }
    fn dot_scalar(w: &[Self], a: &Q8Row) -> f32 {
        scalar::dot_q8_0(w, a)
    }
    fn dot4_simd(w: [&[Self]; 4], a: &Q8Row) -> Option<[f32; 4]> {
        x86::dot4_q8_0(w, a)
    }
}

/// An activation row quantized to 8 bits per 32-value block as llama.cpp's
/// `quantize_row_q8_0`/`q8_1` do: `d = max|x| / 127` (stored as float16, as GGUF's `Q8` blocks
/// store it), `q = round(x / d)` (half away from zero), and `s = d · Σq` (float16, `Q8_1`'s
/// sum, which `Q4_1` needs), both kept here as float32.
#[derive(Debug, Clone, Default)]
pub struct Q8Row {
    pub qs: Vec<[i8; BLOCK]>,
    pub d: Vec<f32>,
    pub s: Vec<f32>,
}

impl Q8Row {
    /// Quantizes `x` (a multiple of 32 long).
    pub fn quantize(x: &[f32]) -> Self {
        let n = x.len() / BLOCK;
        let mut row = Self { qs: Vec::with_capacity(n), d: Vec::with_capacity(n), s: Vec::with_capacity(n) };
        for xs in x.chunks_exact(BLOCK) {
            let amax = xs.iter().fold(0f32, |m, v| m.max(v.abs()));
            let d = amax / 127.0;
            let id = if d != 0.0 { 1.0 / d } else { 0.0 };
            let mut qs = [0i8; BLOCK];
            let mut sum = 0i32;
            for (q, v) in qs.iter_mut().zip(xs) {
                *q = (v * id).round() as i8;
                sum += i32::from(*q);
            }
            row.qs.push(qs);
            row.d.push(f16::from_f32(d).to_f32());
            row.s.push(f16::from_f32(sum as f32 * d).to_f32());
        }
        row
    }

    pub fn len(&self) -> usize {
        self.qs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.qs.is_empty()
    }
}

/// A weight row against an activation row of the same length.
pub fn dot<B: QuantBlock>(w: &[B], a: &Q8Row) -> f32 {
    assert_eq!(w.len(), a.len(), "a weight row and an activation row of different lengths");
    B::dot4_simd([w, w, w, w], a).map(|d| d[0]).unwrap_or_else(|| B::dot_scalar(w, a))
}

/// Four weight rows against one activation row: the activation's bytes are loaded once for the
/// four. Each result is [`dot`]'s for its row.
pub fn dot4<B: QuantBlock>(w: [&[B]; 4], a: &Q8Row) -> [f32; 4] {
    for row in w {
        assert_eq!(row.len(), a.len(), "a weight row and an activation row of different lengths");
    }
    B::dot4_simd(w, a).unwrap_or_else(|| w.map(|row| B::dot_scalar(row, a)))
}

/// Which implementation the kernels run on this CPU, for benchmarks and logs.
pub fn implementation() -> &'static str {
    if x86::available() { "avx2" } else { "scalar" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn scale() -> impl Strategy<Value = u16> {
        (-2.0f32..2.0).prop_map(|x| f16::from_f32(x).to_bits())
    }

    fn q4_0() -> impl Strategy<Value = BlockQ4_0> {
        (scale(), proptest::array::uniform16(any::<u8>())).prop_map(|(d, qs)| BlockQ4_0 { d, qs })
    }
    fn q4_1() -> impl Strategy<Value = BlockQ4_1> {
        (scale(), scale(), proptest::array::uniform16(any::<u8>())).prop_map(|(d, m, qs)| BlockQ4_1 { d, m, qs })
    }
    fn q5_0() -> impl Strategy<Value = BlockQ5_0> {
        (scale(), proptest::array::uniform4(any::<u8>()), proptest::array::uniform16(any::<u8>()))
            .prop_map(|(d, qh, qs)| BlockQ5_0 { d, qh, qs })
    }
    fn q8_0() -> impl Strategy<Value = BlockQ8_0> {
        (scale(), proptest::array::uniform32(any::<i8>())).prop_map(|(d, qs)| BlockQ8_0 { d, qs })
    }

    /// The exact sum `Σ w·(d_a q_a)` over dequantized weights (what the integer kernels compute,
    /// up to `Q4_1`'s float16 sum) and its scale, for tolerances.
    fn exact<B: QuantBlock>(w: &[B], a: &Q8Row) -> (f64, f64) {
        let (mut sum, mut mag) = (0f64, 0f64);
        for (b, (qs, d)) in w.iter().zip(a.qs.iter().zip(&a.d)) {
            for (v, q) in b.dequantize().iter().zip(qs) {
                let t = f64::from(*v) * f64::from(*d) * f64::from(*q);
                sum += t;
                mag += t.abs();
            }
        }
        (sum, mag.max(1.0))
    }

    fn check<B: QuantBlock>(rows: &[Vec<B>], x: &[f32]) -> Result<(), TestCaseError> {
        let a = Q8Row::quantize(x);
        let four = dot4([&rows[0], &rows[1], &rows[2], &rows[3]], &a);
        for (row, got) in rows.iter().zip(four) {
            let reference = B::dot_scalar(row, &a);
            let (exact, mag) = exact(row, &a);
            prop_assert!(
                (f64::from(got) - f64::from(reference)).abs() <= 1e-5 * mag,
                "{} simd {got} vs {reference}",
                B::NAME
            );
            prop_assert!((f64::from(dot(row, &a)) - f64::from(reference)).abs() <= 1e-5 * mag);
            // Q4_1's minimum term uses the float16 sum; the others are exact up to float32.
            let tol = if B::NAME == "Q4_1" { 2e-3 } else { 1e-5 };
            prop_assert!(
                (f64::from(reference) - exact).abs() <= tol * mag,
                "{} reference {reference} vs {exact}",
                B::NAME
            );
        }
        Ok(())
    }

    fn activations(blocks: usize) -> impl Strategy<Value = Vec<f32>> {
        proptest::collection::vec(-3.0f32..3.0, blocks * BLOCK)
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(96))]

        /// Each type on rows of 1 to 19 blocks: the SIMD kernel (here, when the CPU has AVX2)
        /// against the scalar reference, and the reference against the exact sum.
        #[test]
        fn q4_0_kernels((rows, x) in (1usize..20).prop_flat_map(|n| (proptest::collection::vec(proptest::collection::vec(q4_0(), n), 4), activations(n)))) {
            check(&rows, &x)?;
        }

        #[test]
        fn q4_1_kernels((rows, x) in (1usize..20).prop_flat_map(|n| (proptest::collection::vec(proptest::collection::vec(q4_1(), n), 4), activations(n)))) {
            check(&rows, &x)?;
        }

        #[test]
        fn q5_0_kernels((rows, x) in (1usize..20).prop_flat_map(|n| (proptest::collection::vec(proptest::collection::vec(q5_0(), n), 4), activations(n)))) {
            check(&rows, &x)?;
        }

        #[test]
        fn q8_0_kernels((rows, x) in (1usize..20).prop_flat_map(|n| (proptest::collection::vec(proptest::collection::vec(q8_0(), n), 4), activations(n)))) {
            check(&rows, &x)?;
        }
    }

    #[test]
    fn blocks_parse_as_gguf_lays_them_out() {
        let mut bytes = vec![0u8; 40];
        bytes[0..2].copy_from_slice(&f16::from_f32(0.5).to_bits().to_le_bytes());
        bytes[2..4].copy_from_slice(&f16::from_f32(-1.0).to_bits().to_le_bytes());
        bytes[4] = 0x3A; // value 0 = 10, value 16 = 3
        let blocks = parse::<BlockQ4_1>(&bytes).expect("two blocks");
        assert_eq!(blocks.len(), 2);
        let v = blocks[0].dequantize();
        assert_eq!((v[0], v[16], v[1]), (10.0 * 0.5 - 1.0, 3.0 * 0.5 - 1.0, -1.0));
        assert!(parse::<BlockQ4_1>(&bytes[..39]).unwrap_err().contains("not a whole number"));
        // Q5_0: the fifth bit of value j is bit j of qh.
        let mut b5 = vec![0u8; 22];
        b5[0..2].copy_from_slice(&f16::from_f32(1.0).to_bits().to_le_bytes());
        b5[2] = 0b0000_0001; // value 0 gets 16
        b5[6] = 0x21; // value 0 = 1 (+16), value 16 = 2
        let v = parse::<BlockQ5_0>(&b5).expect("q5_0")[0].dequantize();
        assert_eq!((v[0], v[16], v[1]), (1.0, 2.0 - 16.0, -16.0));
        assert_eq!(implementation(), if cfg!(target_arch = "x86_64") && x86::available() { "avx2" } else { "scalar" });
    }
}
