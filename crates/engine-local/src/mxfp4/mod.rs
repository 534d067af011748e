//! MXFP4 expert weights as gpt-oss checkpoints store them, kept packed in memory.
//!
//! The OCP microscaling format: blocks of 32 values share one scale byte (an E8M0 power of two,
//! 2^(byte − 127)), and each value is a 4-bit E2M1 float. A checkpoint stores, per weight,
//! `NAME_blocks` (u8, `[experts, rows, groups, 16]`: two values per byte, the low nibble first)
//! and `NAME_scales` (u8, `[experts, rows, groups]`), where each row is one output feature and
//! its `groups × 32` columns are the input features: the layout transformers' dequantization
//! (`convert_moe_packed_tensors`) reads, before it transposes to `[experts, in, out]`.
//!
//! Packed, an expert weight takes 17/32 of a byte per value, an eighth of float32: what lets
//! gpt-oss-120b's experts fit one 80 GB GPU. Products decode one row at a time into a small
//! buffer that feeds a dot product with every token, so no dequantized matrix is ever held.

pub mod device;

#[cfg(feature = "cuda")]
mod cuda;

/// The 16 E2M1 values, by code: sign bit 3, exponent bits 2–1, mantissa bit 0.
pub const FP4_VALUES: [f32; 16] =
    [0.0, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, -0.0, -0.5, -1.0, -1.5, -2.0, -3.0, -4.0, -6.0];

/// Values that share one scale.
pub const BLOCK: usize = 32;

/// One packed weight of every expert: `experts × rows × cols` values.
#[derive(Debug, Clone)]
pub struct PackedExperts {
    blocks: Vec<u8>,
    scales: Vec<u8>,
    pub experts: usize,
    /// Output features.
    pub rows: usize,
    /// Input features, a multiple of 32.
    pub cols: usize,
}

impl PackedExperts {
    /// Checks the stored shapes against the expected `experts × rows × cols`; `name` is the
    /// weight's name for errors.
    pub fn new(
        name: &str,
        blocks: Vec<u8>,
        blocks_shape: &[usize],
        scales: Vec<u8>,
        scales_shape: &[usize],
        (experts, rows, cols): (usize, usize, usize),
    ) -> Result<Self, String> {
        if cols % BLOCK != 0 {
            return Err(format!("{name}: {cols} input features are not a multiple of MXFP4's block of {BLOCK}"));
        }
        let groups = cols / BLOCK;
        let want_blocks = [experts, rows, groups, BLOCK / 2];
        let want_scales = [experts, rows, groups];
        if blocks_shape != want_blocks {
            return Err(format!(
                "{name}_blocks has shape {blocks_shape:?}; the config needs {want_blocks:?} ([experts, out, in/32, 16])"
            ));
        }
        if scales_shape != want_scales {
            return Err(format!(
                "{name}_scales has shape {scales_shape:?}; the config needs {want_scales:?} ([experts, out, in/32])"
            ));
        }
        if blocks.len() != want_blocks.iter().product::<usize>()
            || scales.len() != want_scales.iter().product::<usize>()
        {
            return Err(format!("{name}: the stored bytes do not fill the stated shapes"));
        }
        Ok(Self { blocks, scales, experts, rows, cols })
    }

    /// Bytes held.
    pub fn packed_bytes(&self) -> usize {
        self.blocks.len() + self.scales.len()
    }

    /// Writes row `row` of expert `expert`, dequantized, into `out` (`cols` long).
    pub fn decode_row(&self, expert: usize, row: usize, out: &mut [f32]) {
        let groups = self.cols / BLOCK;
        let first_group = (expert * self.rows + row) * groups;
        for g in 0..groups {
            let scale = scale_of(self.scales[first_group + g]);
            let bytes = &self.blocks[(first_group + g) * (BLOCK / 2)..(first_group + g + 1) * (BLOCK / 2)];
            let dest = &mut out[g * BLOCK..(g + 1) * BLOCK];
            for (pair, byte) in dest.chunks_exact_mut(2).zip(bytes) {
                pair[0] = FP4_VALUES[(byte & 0x0f) as usize] * scale;
                pair[1] = FP4_VALUES[(byte >> 4) as usize] * scale;
            }
        }
    }

    /// Expert `expert`'s whole weight, `rows × cols`, row-major (for devices without a packed
    /// product, and for tests).
    pub fn dequantize(&self, expert: usize) -> Vec<f32> {
        let mut out = vec![0f32; self.rows * self.cols];
        for (r, row) in out.chunks_exact_mut(self.cols).enumerate() {
            self.decode_row(expert, r, row);
        }
        out
    }

    /// `x · Wᵀ` for expert `expert`: `x` is `m × cols` row-major, the result `m × rows`. Rows of
    /// the weight are split across threads; each decodes its rows once for all `m` tokens.
    pub fn matmul_t(&self, expert: usize, x: &[f32], m: usize) -> Vec<f32> {
        debug_assert_eq!(x.len(), m * self.cols);
        let mut out_t = vec![0f32; self.rows * m];
        let threads = std::thread::available_parallelism().map_or(1, |n| n.get()).min(self.rows.max(1));
        // Below this much work a thread costs more than it saves.
        let threads = if self.rows * self.cols * m < 1 << 16 { 1 } else { threads };
        let rows_per = self.rows.div_ceil(threads);
        std::thread::scope(|s| {
            for (chunk_i, chunk) in out_t.chunks_mut(rows_per * m).enumerate() {
                s.spawn(move || {
                    let mut w = vec![0f32; self.cols];
                    for (i, dest) in chunk.chunks_exact_mut(m).enumerate() {
                        self.decode_row(expert, chunk_i * rows_per + i, &mut w);
                        for (t, d) in dest.iter_mut().enumerate() {
                            *d = dot(&w, &x[t * self.cols..(t + 1) * self.cols]);
                        }
                    }
                });
            }
        });
        // out_t is rows × m; the caller wants m × rows.
        let mut out = vec![0f32; m * self.rows];
        for r in 0..self.rows {
            for t in 0..m {
                out[t * self.rows + r] = out_t[r * m + t];
            }
        }
        out
    }
}

/// E8M0: 2^(byte − 127). 255 is NaN in the format; checkpoints do not use it.
fn scale_of(byte: u8) -> f32 {
    f32::from_bits(if byte == 0 { 1 << 22 } else { (byte as u32) << 23 })
}

/// A dot product in eight lanes, so the compiler can vectorise it.
fn dot(a: &[f32], b: &[f32]) -> f32 {
    let mut lanes = [0f32; 8];
    let (ca, cb) = (a.chunks_exact(8), b.chunks_exact(8));
    let (ra, rb) = (ca.remainder(), cb.remainder());
    for (x, y) in ca.zip(cb) {
        for i in 0..8 {
            lanes[i] += x[i] * y[i];
        }
    }
    let tail: f32 = ra.iter().zip(rb).map(|(x, y)| x * y).sum();
    lanes.iter().sum::<f32>() + tail
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scales_are_powers_of_two_including_the_subnormal_ends() {
        assert_eq!(scale_of(127), 1.0);
        assert_eq!(scale_of(128), 2.0);
        assert_eq!(scale_of(120), 2f32.powi(-7));
        assert_eq!(scale_of(1), 2f32.powi(-126));
        assert_eq!(scale_of(0), 2f32.powi(-127));
    }

    /// Bytes chosen by hand: each value's code, nibble order and scale are visible.
    #[test]
    fn rows_decode_low_nibble_first_with_their_blocks_scale() {
        // 1 expert, 2 rows, 32 columns: row 0 scale 2^0, row 1 scale 2^-2.
        let mut blocks = vec![0u8; 2 * 16];
        blocks[0] = 0x71; // low 0x1 = +0.5, high 0x7 = +6
        blocks[1] = 0x8f; // low 0xf = -6, high 0x8 = -0
        blocks[16] = 0x2a; // low 0xa = -1, high 0x2 = +1
        let w = PackedExperts::new("w", blocks, &[1, 2, 1, 16], vec![127, 125], &[1, 2, 1], (1, 2, 32)).expect("shape");
        let d = w.dequantize(0);
        assert_eq!(&d[..4], &[0.5, 6.0, -6.0, -0.0]);
        assert!(d[3].is_sign_negative());
        assert_eq!(&d[32..34], &[-0.25, 0.25]);
        assert!(d[4..32].iter().all(|v| *v == 0.0));
    }

    /// A small deterministic generator, so the test needs no dependency.
    fn bytes(n: usize, seed: u64) -> Vec<u8> {
        let mut s = seed;
        (0..n)
            .map(|_| {
                s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                (s >> 33) as u8
            })
            .collect()
    }

    #[test]
    fn the_packed_product_equals_the_product_with_the_dequantized_weight() {
        for (experts, rows, cols, m) in [(3, 5, 32, 1), (2, 37, 96, 7), (1, 300, 64, 3), (2, 64, 256, 17)] {
            let groups = cols / BLOCK;
            let blocks = bytes(experts * rows * groups * 16, 7);
            // Scales near 1 keep the products in a range where f32 sums are compared tightly.
            let scales: Vec<u8> = bytes(experts * rows * groups, 11).into_iter().map(|b| 122 + b % 8).collect();
            let w = PackedExperts::new(
                "w",
                blocks,
                &[experts, rows, groups, 16],
                scales,
                &[experts, rows, groups],
                (experts, rows, cols),
            )
            .expect("shape");
            let x: Vec<f32> = bytes(m * cols, 3).into_iter().map(|b| b as f32 / 64.0 - 2.0).collect();
            for e in 0..experts {
                let dense = w.dequantize(e);
                let got = w.matmul_t(e, &x, m);
                for t in 0..m {
                    for r in 0..rows {
                        let want: f64 =
                            (0..cols).map(|c| f64::from(x[t * cols + c]) * f64::from(dense[r * cols + c])).sum();
                        let g = f64::from(got[t * rows + r]);
                        assert!(
                            (g - want).abs() <= 1e-5 * want.abs().max(1.0),
                            "{experts}x{rows}x{cols} m={m}: {g} vs {want}"
                        );
                    }
                }
            }
        }
    }

    #[test]
    fn shapes_that_do_not_match_the_config_are_named() {
        let err = PackedExperts::new("gate_up_proj", vec![0; 64], &[1, 4, 1, 16], vec![0; 4], &[1, 4, 1], (2, 4, 32))
            .unwrap_err();
        assert!(err.contains("gate_up_proj_blocks has shape [1, 4, 1, 16]") && err.contains("[2, 4, 1, 16]"), "{err}");
        let err = PackedExperts::new("down_proj", vec![0; 64], &[1, 4, 1, 16], vec![0; 3], &[1, 3, 1], (1, 4, 32))
            .unwrap_err();
        assert!(err.contains("down_proj_scales has shape [1, 3, 1]"), "{err}");
        let err = PackedExperts::new("w", vec![], &[], vec![], &[], (1, 4, 40)).unwrap_err();
        assert!(err.contains("not a multiple"), "{err}");
    }
}
