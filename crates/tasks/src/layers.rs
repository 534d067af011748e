//! Small layers the task models share.

use candle_core::{CpuStorage, CustomOp1, DType, Layout, Module, Shape, Tensor};
use candle_nn::VarBuilder;
use rayon::prelude::*;

/// A dense layer with its bias. Inputs of any rank run as one 2-D matrix product over all their
/// rows: candle's own `Linear` broadcasts the weight into one product per batch row.
#[derive(Debug, Clone)]
pub struct Linear {
    inner: candle_nn::Linear,
    out: usize,
}

/// A dense layer with its bias, `weight` (out, in).
pub fn linear(vb: VarBuilder, inp: usize, out: usize) -> candle_core::Result<Linear> {
    Ok(Linear { inner: candle_nn::Linear::new(vb.get((out, inp), "weight")?, Some(vb.get(out, "bias")?)), out })
}

impl Linear {
    /// One layer computing `parts` side by side (their outputs concatenated): a query, key and
    /// value projection of the same input as one matrix product.
    pub fn fused(parts: &[Linear]) -> candle_core::Result<Linear> {
        let weights: Vec<&Tensor> = parts.iter().map(|p| p.inner.weight()).collect();
        let biases = parts.iter().map(|p| p.inner.bias().cloned()).collect::<Option<Vec<Tensor>>>();
        let bias = match biases {
            Some(b) => Some(Tensor::cat(&b, 0)?),
            None => None,
        };
        let out = parts.iter().map(|p| p.out).sum();
        Ok(Linear { inner: candle_nn::Linear::new(Tensor::cat(&weights, 0)?, bias), out })
    }
}

impl Module for Linear {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let dims = x.dims();
        if dims.len() <= 2 {
            return self.inner.forward(x);
        }
        let (lead, last) = dims.split_at(dims.len() - 1);
        let rows: usize = lead.iter().product();
        let y = self.inner.forward(&x.reshape((rows, last[0]))?)?;
        let mut shape = lead.to_vec();
        shape.push(self.out);
        y.reshape(shape)
    }
}

/// LayerNorm with weight and bias; older BERT checkpoints name them `gamma` and `beta`.
#[derive(Debug, Clone)]
pub struct LayerNorm {
    inner: candle_nn::LayerNorm,
}

impl LayerNorm {
    pub fn load(vb: VarBuilder, size: usize, eps: f64) -> candle_core::Result<Self> {
        let (w, b) = if !vb.contains_tensor("weight") && vb.contains_tensor("gamma") {
            ("gamma", "beta")
        } else {
            ("weight", "bias")
        };
        Ok(Self { inner: candle_nn::LayerNorm::new(vb.get(size, w)?, vb.get(size, b)?, eps) })
    }
}

impl Module for LayerNorm {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        self.inner.forward(x)
    }
}

/// A convolution with an optional bias, weight (out, in, k, k). A 1×1 convolution of stride 1
/// is one matrix product per image (channels-first, an image already is channels × pixels); on
/// the CPU the others gather their columns (im2col) on rayon's threads and multiply once per
/// image, in float32 whatever the model's dtype (candle's own CPU convolution gathers on one
/// thread, which was a third of DETR's time, and has no bfloat16 product); on a GPU, candle's.
#[derive(Debug, Clone)]
pub struct Conv {
    weight: Tensor,
    /// (1, out, 1, 1).
    bias: Option<Tensor>,
    stride: usize,
    padding: usize,
}

impl Conv {
    pub fn new(weight: Tensor, bias: Option<Tensor>, stride: usize, padding: usize) -> candle_core::Result<Self> {
        let out = weight.dim(0)?;
        let bias = match bias {
            Some(b) => Some(b.reshape((1, out, 1, 1))?),
            None => None,
        };
        Ok(Self { weight, bias, stride, padding })
    }
}

impl Module for Conv {
    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (out, _, k, _) = self.weight.dims4()?;
        let y = if k == 1 && self.stride == 1 && self.padding == 0 {
            let (b, c, h, w) = x.dims4()?;
            let kernel = self.weight.reshape((out, c))?.broadcast_left(b)?;
            kernel.matmul(&x.reshape((b, c, h * w))?)?.reshape((b, out, h, w))?
        } else if x.device().is_cpu() {
            let dtype = x.dtype();
            let weight = self.weight.to_dtype(DType::F32)?;
            gathered_conv2d(&x.to_dtype(DType::F32)?, &weight, self.stride, self.padding)?.to_dtype(dtype)?
        } else {
            x.conv2d(&self.weight, self.padding, self.stride, 1, 1)?
        };
        match &self.bias {
            Some(b) => y.broadcast_add(b),
            None => Ok(y),
        }
    }
}

/// A k×k convolution of float32 images as im2col and one matrix product per image: the columns
/// `(channel, ky, kx) × output pixel` gathered on rayon's threads, then multiplied by the kernel
/// as `(out, c·k·k)`, which gives channels-first output directly.
fn gathered_conv2d(x: &Tensor, weight: &Tensor, stride: usize, padding: usize) -> candle_core::Result<Tensor> {
    let (b, c, h, w) = x.dims4()?;
    let (out, wc, k, k2) = weight.dims4()?;
    if wc != c || k != k2 {
        candle_core::bail!("convolution of {c} channels with a kernel of shape {:?}", weight.dims());
    }
    let oh = (h + 2 * padding - k) / stride + 1;
    let ow = (w + 2 * padding - k) / stride + 1;
    let kernel = weight.reshape((out, c * k * k))?;
    let pixels = x.flatten_all()?.to_vec1::<f32>()?;
    let mut outputs = Vec::with_capacity(b);
    for image in pixels.chunks_exact(c * h * w) {
        let mut cols = vec![0f32; c * k * k * oh * ow];
        cols.par_chunks_mut(oh * ow).enumerate().for_each(|(row, col)| {
            let (ci, ky, kx) = (row / (k * k), (row / k) % k, row % k);
            let plane = &image[ci * h * w..(ci + 1) * h * w];
            for oy in 0..oh {
                let Some(iy) = (oy * stride + ky).checked_sub(padding).filter(|&iy| iy < h) else { continue };
                let src = &plane[iy * w..(iy + 1) * w];
                let dst = &mut col[oy * ow..(oy + 1) * ow];
                for (ox, d) in dst.iter_mut().enumerate() {
                    if let Some(ix) = (ox * stride + kx).checked_sub(padding).filter(|&ix| ix < w) {
                        *d = src[ix];
                    }
                }
            }
        });
        let cols = Tensor::from_vec(cols, (c * k * k, oh * ow), x.device())?;
        outputs.push(kernel.matmul(&cols)?.reshape((out, oh, ow))?);
    }
    Tensor::stack(&outputs, 0)
}

/// GELU with the exact erf (transformers' "gelu"). On the CPU in float32 it runs on rayon's
/// threads with candle's own erf, so its values are `Tensor::gelu_erf`'s: candle runs that op on
/// one thread, which made it a third of a small encoder's time.
pub fn gelu_erf(x: &Tensor) -> candle_core::Result<Tensor> {
    if x.device().is_cpu() && x.dtype() == DType::F32 {
        x.contiguous()?.apply_op1_no_bwd(&ParallelGeluErf)
    } else {
        x.gelu_erf()
    }
}

struct ParallelGeluErf;

/// Elements per task: large enough that scheduling is noise.
const GELU_CHUNK: usize = 1 << 14;

fn gelu_erf_f32(v: f32) -> f32 {
    (candle_core::cpu::erf::erf_f32(v * std::f32::consts::FRAC_1_SQRT_2) + 1.) * 0.5 * v
}

impl CustomOp1 for ParallelGeluErf {
    fn name(&self) -> &'static str {
        "parallel-gelu-erf"
    }

    fn cpu_fwd(&self, storage: &CpuStorage, layout: &Layout) -> candle_core::Result<(CpuStorage, Shape)> {
        let (CpuStorage::F32(all), Some((start, end))) = (storage, layout.contiguous_offsets()) else {
            candle_core::bail!("parallel gelu: a contiguous float32 tensor is expected");
        };
        let src = &all[start..end];
        let mut out = vec![0f32; src.len()];
        out.par_chunks_mut(GELU_CHUNK).zip(src.par_chunks(GELU_CHUNK)).for_each(|(o, i)| {
            for (o, &x) in o.iter_mut().zip(i) {
                *o = gelu_erf_f32(x);
            }
        });
        Ok((CpuStorage::F32(out), layout.shape().clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    #[test]
    fn the_gathered_convolution_equals_candles() {
        for (c, h, w, out, k, stride, pad) in [
            (3, 17, 23, 5, 7, 2, 3),
            (4, 9, 8, 6, 3, 1, 1),
            (4, 10, 13, 3, 3, 2, 1),
            (2, 5, 5, 2, 1, 2, 0),
            (3, 16, 16, 4, 4, 4, 0),
        ] {
            let x = Tensor::randn(0f32, 1.0, (2, c, h, w), &Device::Cpu).expect("x");
            let wt = Tensor::randn(0f32, 1.0, (out, c, k, k), &Device::Cpu).expect("w");
            let ours = gathered_conv2d(&x, &wt, stride, pad).expect("ours");
            let candle = x.conv2d(&wt, pad, stride, 1, 1).expect("candle");
            assert_eq!(ours.dims(), candle.dims(), "{c} {h}x{w} k{k} s{stride}");
            let d = (ours - candle).and_then(|d| d.abs()).and_then(|d| d.max_all()).and_then(|d| d.to_scalar::<f32>());
            assert!(d.expect("diff") < 1e-4, "{c} {h}x{w} k{k} s{stride}");
        }
    }

    #[test]
    fn parallel_gelu_and_flattened_linear_match_candles_own() {
        let x = Tensor::randn(0f32, 3.0, (3, 5, 40_000), &Device::Cpu).expect("randn");
        let ours: Vec<f32> = gelu_erf(&x).and_then(|t| t.flatten_all()).and_then(|t| t.to_vec1()).expect("ours");
        let candle: Vec<f32> = x.gelu_erf().and_then(|t| t.flatten_all()).and_then(|t| t.to_vec1()).expect("candle");
        assert_eq!(ours, candle, "bit for bit");
        // A transposed (non-contiguous) input.
        let t = x.transpose(0, 1).expect("t");
        assert_eq!(
            gelu_erf(&t).and_then(|t| t.flatten_all()).and_then(|t| t.to_vec1::<f32>()).expect("ours"),
            t.gelu_erf().and_then(|t| t.flatten_all()).and_then(|t| t.to_vec1::<f32>()).expect("candle")
        );
        let w = Tensor::randn(0f32, 1.0, (7, 16), &Device::Cpu).expect("w");
        let b = Tensor::randn(0f32, 1.0, 7, &Device::Cpu).expect("b");
        let ours = Linear { inner: candle_nn::Linear::new(w.clone(), Some(b.clone())), out: 7 };
        let theirs = candle_nn::Linear::new(w, Some(b));
        let x = Tensor::randn(0f32, 1.0, (2, 3, 4, 16), &Device::Cpu).expect("x");
        let (a, c) = (ours.forward(&x).expect("ours"), theirs.forward(&x).expect("candle"));
        assert_eq!(a.dims(), c.dims());
        let d = (a - c).and_then(|d| d.abs()).and_then(|d| d.max_all()).and_then(|d| d.to_scalar::<f32>()).expect("d");
        assert!(d < 1e-5, "{d}");
    }
}
