//! GGUF projections multiplied by `energy-star-kernels` instead of candle: `Q4_0`, `Q4_1` and
//! `Q5_0` weights, kept as stored, on the worker threads candle's own quantized matmuls run on.
//! Profiling SmolLM2's Q4_1 GGUF put 85 % of decode time in candle's scalar Q4_1 kernel;
//! llama.cpp's Q4_K_M files of models whose hidden size is not a multiple of 256 are mostly Q5_0,
//! another scalar kernel in candle (docs/benchmarks.md, "GGUF models on CPU"). `Q8_0` stays with
//! candle: its kernel decoded one sequence faster than this one here (99 against 74 tokens/s),
//! though slower in prefill; the K-quants too.

use std::sync::{Arc, Mutex};

use candle_core::quantized::{GgmlDType, QTensor};
use candle_core::{CpuStorage, CustomOp1, Layout, Shape, Tensor};
use energy_star_kernels::{BLOCK, BlockQ4_0, BlockQ4_1, BlockQ5_0, Q8Row, QuantBlock, dot, dot4, parse};

/// The weight's blocks, `out` rows of `in / 32`.
#[derive(Debug, Clone)]
enum Blocks {
    Q4_0(Arc<Vec<BlockQ4_0>>),
    Q4_1(Arc<Vec<BlockQ4_1>>),
    Q5_0(Arc<Vec<BlockQ5_0>>),
}

/// A `(out, in)` quantized weight matrix.
#[derive(Debug, Clone)]
pub struct QuantLinear {
    blocks: Blocks,
    out: usize,
    inp: usize,
}

impl QuantLinear {
    /// The weight of a GGUF tensor (dims `(out, in)`) of a type these kernels multiply, or none.
    pub fn from_qtensor(q: &QTensor) -> candle_core::Result<Option<Self>> {
        let (out, inp) = match q.shape().dims() {
            [out, inp] => (*out, *inp),
            _ => return Ok(None),
        };
        if !inp.is_multiple_of(BLOCK) {
            return Ok(None);
        }
        let bytes = q.data()?;
        let read = |what: Result<Blocks, String>| what.map_err(candle_core::Error::Msg);
        let blocks = match q.dtype() {
            GgmlDType::Q4_0 => read(parse::<BlockQ4_0>(&bytes).map(|b| Blocks::Q4_0(Arc::new(b))))?,
            GgmlDType::Q4_1 => read(parse::<BlockQ4_1>(&bytes).map(|b| Blocks::Q4_1(Arc::new(b))))?,
            GgmlDType::Q5_0 => read(parse::<BlockQ5_0>(&bytes).map(|b| Blocks::Q5_0(Arc::new(b))))?,
            _ => return Ok(None),
        };
        let l = Self { blocks, out, inp };
        if l.block_count() != out * inp / BLOCK {
            candle_core::bail!("{} blocks of {:?} for a {out}×{inp} matrix", l.block_count(), q.dtype());
        }
        Ok(Some(l))
    }

    fn block_count(&self) -> usize {
        match &self.blocks {
            Blocks::Q4_0(b) => b.len(),
            Blocks::Q4_1(b) => b.len(),
            Blocks::Q5_0(b) => b.len(),
        }
    }

    /// `parts` stacked into one matrix (their outputs side by side): the query, key and value
    /// projections, or gate and up, as one product, so the activations are quantized once and
    /// the workers started once. None unless the parts share their type and input size.
    pub fn stack(parts: &[&QuantLinear]) -> Option<QuantLinear> {
        fn cat<B: Copy>(parts: &[&Arc<Vec<B>>]) -> Arc<Vec<B>> {
            Arc::new(parts.iter().flat_map(|p| p.iter().copied()).collect())
        }
        let first = parts.first()?;
        if parts.iter().any(|p| p.inp != first.inp) {
            return None;
        }
        macro_rules! all_of {
            ($variant:ident) => {{
                let each: Option<Vec<_>> = parts
                    .iter()
                    .map(|p| match &p.blocks {
                        Blocks::$variant(b) => Some(b),
                        _ => None,
                    })
                    .collect();
                Blocks::$variant(cat(&each?))
            }};
        }
        let blocks = match &first.blocks {
            Blocks::Q4_0(_) => all_of!(Q4_0),
            Blocks::Q4_1(_) => all_of!(Q4_1),
            Blocks::Q5_0(_) => all_of!(Q5_0),
        };
        Some(Self { blocks, out: parts.iter().map(|p| p.out).sum(), inp: first.inp })
    }

    pub fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        x.contiguous()?.apply_op1_no_bwd(self)
    }

    /// `rows` (each `in` long) times the weight's transpose: `(rows, out)`, row-major.
    fn matmul(&self, x: &[f32]) -> Vec<f32> {
        let act: Vec<Q8Row> = x.chunks_exact(self.inp).map(Q8Row::quantize).collect();
        match &self.blocks {
            Blocks::Q4_0(b) => matmul(b, self.out, &act),
            Blocks::Q4_1(b) => matmul(b, self.out, &act),
            Blocks::Q5_0(b) => matmul(b, self.out, &act),
        }
    }
}

/// Work items are groups of four output features (the kernel's width), each computed for every
/// activation row, so a weight row is read once per item and reused across rows. Each worker's
/// range is put in place after.
fn matmul<B: QuantBlock>(blocks: &[B], out: usize, act: &[Q8Row]) -> Vec<f32> {
    let m = act.len();
    let kb = blocks.len() / out.max(1);
    let row = |o: usize| &blocks[o * kb..(o + 1) * kb];
    let parts: Mutex<Vec<(std::ops::Range<usize>, Vec<f32>)>> = Mutex::new(Vec::new());
    candle_core::utils::barrier_pool().execute_chunked(out.div_ceil(4), |groups| {
        let features = groups.start * 4..(groups.end * 4).min(out);
        let mut part = vec![0f32; features.len() * m];
        for (g, o) in features.clone().step_by(4).enumerate() {
            if o + 4 <= out {
                for (r, a) in act.iter().enumerate() {
                    let dots = dot4([row(o), row(o + 1), row(o + 2), row(o + 3)], a);
                    for (j, d) in dots.into_iter().enumerate() {
                        part[(g * 4 + j) * m + r] = d;
                    }
                }
            } else {
                for j in 0..out - o {
                    for (r, a) in act.iter().enumerate() {
                        part[(g * 4 + j) * m + r] = dot(row(o + j), a);
                    }
                }
            }
        }
        if let Ok(mut p) = parts.lock() {
            p.push((features, part));
        }
    });
    let mut y = vec![0f32; m * out];
    for (features, part) in parts.into_inner().unwrap_or_default() {
        for (i, o) in features.enumerate() {
            for r in 0..m {
                y[r * out + o] = part[i * m + r];
            }
        }
    }
    y
}

impl CustomOp1 for QuantLinear {
    fn name(&self) -> &'static str {
        "quantized-matmul"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(all), Some((start, end))) = (storage, layout.contiguous_offsets()) else {
            candle_core::bail!("quantized matmul: contiguous float32 activations are expected");
        };
        let dims = layout.shape().dims();
        if dims.last() != Some(&self.inp) {
            candle_core::bail!("quantized matmul: activations of shape {dims:?} for a weight of {} inputs", self.inp);
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
    fn each_type_is_the_dequantized_product_up_to_activation_quantization() {
        let dev = Device::Cpu;
        // 70 outputs: groups of four and a remainder of two.
        let w = Tensor::randn(0f32, 1.0, (70, 96), &dev).expect("w");
        for dtype in [GgmlDType::Q4_0, GgmlDType::Q4_1, GgmlDType::Q5_0] {
            let q = QTensor::quantize(&w, dtype).expect("quantize");
            let dense = q.dequantize(&dev).expect("dequantize");
            let ours = QuantLinear::from_qtensor(&q).expect("parse").expect("a kernel type");
            for shape in [vec![1usize, 96], vec![3, 5, 96]] {
                let x = Tensor::randn(0f32, 1.0, shape.as_slice(), &dev).expect("x");
                let a = ours.forward(&x).expect("ours");
                let b = x.broadcast_matmul(&dense.t().expect("t")).expect("dense");
                assert_eq!(a.dims(), b.dims());
                let scale = b.abs().and_then(|t| t.max_all()).and_then(|t| t.to_scalar::<f32>()).expect("scale");
                let d = (a - b).and_then(|d| d.abs()).and_then(|d| d.max_all()).and_then(|d| d.to_scalar::<f32>());
                let d = d.expect("diff");
                assert!(d < 0.01 * scale, "{dtype:?} {shape:?}: {d} of {scale}");
            }
        }
        let k_quant =
            QTensor::quantize(&Tensor::randn(0f32, 1.0, (4, 256), &dev).expect("w"), GgmlDType::Q4K).expect("q4k");
        assert!(QuantLinear::from_qtensor(&k_quant).expect("other type").is_none());
    }

    #[test]
    fn stacked_projections_give_the_parts_side_by_side() {
        let dev = Device::Cpu;
        let parts: Vec<QuantLinear> = [8usize, 4, 4]
            .iter()
            .map(|&o| {
                let w = Tensor::randn(0f32, 1.0, (o, 64), &dev).expect("w");
                QuantLinear::from_qtensor(&QTensor::quantize(&w, GgmlDType::Q5_0).expect("q"))
                    .expect("p")
                    .expect("q5_0")
            })
            .collect();
        let all = QuantLinear::stack(&parts.iter().collect::<Vec<_>>()).expect("same type");
        let x = Tensor::randn(0f32, 1.0, (2, 64), &dev).expect("x");
        let together: Vec<Vec<f32>> = all.forward(&x).and_then(|t| t.to_vec2()).expect("stacked");
        let apart: Vec<Vec<f32>> =
            Tensor::cat(&parts.iter().map(|p| p.forward(&x).expect("part")).collect::<Vec<_>>(), 1)
                .and_then(|t| t.to_vec2())
                .expect("parts");
        assert_eq!(together, apart);
        let other = QuantLinear::from_qtensor(
            &QTensor::quantize(&Tensor::randn(0f32, 1.0, (4, 64), &dev).expect("w"), GgmlDType::Q4_0).expect("q"),
        )
        .expect("p")
        .expect("q4_0");
        assert!(QuantLinear::stack(&[&parts[0], &other]).is_none(), "types differ");
    }
}
