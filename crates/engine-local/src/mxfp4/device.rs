//! Packed MXFP4 experts held on the model's device, multiplied without unpacking a whole model:
//! on CUDA by the engine's own kernels (`mxfp4.cu`, compiled to PTX by build.rs and launched
//! through cudarc), which decode 4-bit values straight into the dot product for decoding and
//! unpack one expert at a time for cuBLAS when many tokens share it (prefill). gpt-oss-120b's
//! experts stay at 17/32 byte per weight, so the model fits one 80 GB GPU.
//!
//! The operations also run on the CPU with a float32 reference, so that their plumbing (expert
//! offsets, shapes, the token threshold) is tested without a GPU; the CPU engine itself uses the
//! faster threaded product in `mod.rs`.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Device, IndexOp, Layout, Shape, Tensor};

use super::{BLOCK, PackedExperts, scale_of};

/// Tokens from which a product unpacks the expert for a dense matmul rather than decoding it
/// once per token: a warp per row re-reads the packed row for every token, so past a handful of
/// tokens one unpacked copy (rows × cols in the activation type, freed after the product) and a
/// cuBLAS matmul cost less.
pub const UNPACK_FROM_TOKENS: usize = 16;

/// Every expert's packed weight on one device.
#[derive(Debug, Clone)]
pub struct DeviceExperts {
    /// u8 (experts, rows, cols / 2).
    blocks: Tensor,
    /// u8 (experts, rows, cols / 32).
    scales: Tensor,
    pub rows: usize,
    pub cols: usize,
}

impl DeviceExperts {
    /// Copies `w`'s bytes to `device`, as stored.
    pub fn upload(w: &PackedExperts, device: &Device) -> candle_core::Result<Self> {
        let groups = w.cols / BLOCK;
        Ok(Self {
            blocks: Tensor::from_slice(&w.blocks, (w.experts, w.rows, groups * BLOCK / 2), device)?,
            scales: Tensor::from_slice(&w.scales, (w.experts, w.rows, groups), device)?,
            rows: w.rows,
            cols: w.cols,
        })
    }

    pub fn packed_bytes(&self) -> usize {
        self.blocks.elem_count() + self.scales.elem_count()
    }

    /// `x · W[expert]ᵀ`: `x` (tokens, cols) → (tokens, rows), in `x`'s dtype.
    pub fn matmul_t(&self, expert: usize, x: &Tensor) -> candle_core::Result<Tensor> {
        let (tokens, cols) = x.dims2()?;
        if cols != self.cols {
            candle_core::bail!("mxfp4 product: {cols} input features for a weight of {}", self.cols);
        }
        if tokens >= UNPACK_FROM_TOKENS {
            return x.matmul(&self.dequantize(expert, x.dtype())?.t()?);
        }
        let x = x.contiguous()?;
        x.apply_op3_no_bwd(&self.blocks.i(expert)?, &self.scales.i(expert)?, &MatVec { rows: self.rows, cols })
    }

    /// Expert `expert`'s weight unpacked, (rows, cols) in `dtype`.
    pub fn dequantize(&self, expert: usize, dtype: DType) -> candle_core::Result<Tensor> {
        self.blocks
            .i(expert)?
            .apply_op2_no_bwd(&self.scales.i(expert)?, &Dequantize { rows: self.rows, cols: self.cols, dtype })
    }
}

/// `y = x · Wᵀ` with W packed: the decode-time kernel.
struct MatVec {
    rows: usize,
    cols: usize,
}

/// W unpacked into a dense matrix of `dtype`.
struct Dequantize {
    rows: usize,
    cols: usize,
    dtype: DType,
}

/// A storage's bytes from its layout's start, which must be contiguous.
fn bytes<'a>(s: &'a CpuStorage, l: &Layout, what: &str) -> candle_core::Result<&'a [u8]> {
    let (from, to) =
        l.contiguous_offsets().ok_or_else(|| candle_core::Error::msg(format!("{what} is not contiguous")))?;
    match s {
        CpuStorage::U8(v) => Ok(&v[from..to]),
        other => candle_core::bail!("{what} must be u8, not {:?}", other.dtype()),
    }
}

/// Row `row` of a packed expert, decoded as mod.rs decodes it.
fn decode_row(blocks: &[u8], scales: &[u8], cols: usize, row: usize, out: &mut [f32]) {
    let groups = cols / BLOCK;
    for g in 0..groups {
        let scale = scale_of(scales[row * groups + g]);
        let first = (row * groups + g) * BLOCK / 2;
        for (k, byte) in blocks[first..first + BLOCK / 2].iter().enumerate() {
            out[g * BLOCK + 2 * k] = super::FP4_VALUES[(byte & 0x0f) as usize] * scale;
            out[g * BLOCK + 2 * k + 1] = super::FP4_VALUES[(byte >> 4) as usize] * scale;
        }
    }
}

impl CustomOp3 for MatVec {
    fn name(&self) -> &'static str {
        "mxfp4-matvec"
    }

    /// The float32 reference.
    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        b: &CpuStorage,
        bl: &Layout,
        s: &CpuStorage,
        sl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (tokens, cols) = xl.shape().dims2()?;
        if cols != self.cols {
            candle_core::bail!("mxfp4 product: {cols} input features for a weight of {}", self.cols);
        }
        let (from, to) = xl.contiguous_offsets().ok_or_else(|| candle_core::Error::msg("x is not contiguous"))?;
        let CpuStorage::F32(xs) = x else {
            candle_core::bail!("the CPU reference of the mxfp4 product takes float32, not {:?}", x.dtype())
        };
        let xs = &xs[from..to];
        let (blocks, scales) = (bytes(b, bl, "blocks")?, bytes(s, sl, "scales")?);
        let mut w = vec![0f32; cols];
        let mut y = vec![0f32; tokens * self.rows];
        for r in 0..self.rows {
            decode_row(blocks, scales, cols, r, &mut w);
            for t in 0..tokens {
                y[t * self.rows + r] = w.iter().zip(&xs[t * cols..(t + 1) * cols]).map(|(a, b)| a * b).sum();
            }
        }
        Ok((CpuStorage::F32(y), Shape::from((tokens, self.rows))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        x: &candle_core::CudaStorage,
        xl: &Layout,
        b: &candle_core::CudaStorage,
        bl: &Layout,
        s: &candle_core::CudaStorage,
        sl: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let (tokens, _) = xl.shape().dims2()?;
        let y = super::cuda::matvec(x, xl, b, bl, s, sl, tokens, self.rows, self.cols)?;
        Ok((y, Shape::from((tokens, self.rows))))
    }
}

impl CustomOp2 for Dequantize {
    fn name(&self) -> &'static str {
        "mxfp4-dequantize"
    }

    /// The float32 reference (other dtypes are converted by the caller on CPU).
    fn cpu_fwd(
        &self,
        b: &CpuStorage,
        bl: &Layout,
        s: &CpuStorage,
        sl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        if self.dtype != DType::F32 {
            candle_core::bail!("the CPU reference of mxfp4 unpacking writes float32, not {:?}", self.dtype)
        }
        let (blocks, scales) = (bytes(b, bl, "blocks")?, bytes(s, sl, "scales")?);
        let mut out = vec![0f32; self.rows * self.cols];
        for (r, row) in out.chunks_exact_mut(self.cols).enumerate() {
            decode_row(blocks, scales, self.cols, r, row);
        }
        Ok((CpuStorage::F32(out), Shape::from((self.rows, self.cols))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        b: &candle_core::CudaStorage,
        bl: &Layout,
        s: &candle_core::CudaStorage,
        sl: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let out = super::cuda::dequantize(b, bl, s, sl, self.rows, self.cols, self.dtype)?;
        Ok((out, Shape::from((self.rows, self.cols))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn experts() -> PackedExperts {
        let (experts, rows, cols) = (3, 40, 96);
        let groups = cols / BLOCK;
        let mut s = 5u64;
        let mut next = || {
            s = s.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            (s >> 33) as u8
        };
        let blocks: Vec<u8> = (0..experts * rows * groups * 16).map(|_| next()).collect();
        let scales: Vec<u8> = (0..experts * rows * groups).map(|_| 122 + next() % 8).collect();
        PackedExperts::new(
            "w",
            blocks,
            &[experts, rows, groups, 16],
            scales,
            &[experts, rows, groups],
            (experts, rows, cols),
        )
        .expect("shape")
    }

    /// The device path (both sides of its token threshold) gives the packed CPU product's
    /// numbers for every expert, so the experts' offsets and the shapes are right.
    #[test]
    fn device_products_equal_the_packed_cpu_product() {
        let w = experts();
        let d = DeviceExperts::upload(&w, &Device::Cpu).expect("upload");
        assert_eq!(d.packed_bytes(), w.packed_bytes());
        for tokens in [1, 3, UNPACK_FROM_TOKENS + 4] {
            let x: Vec<f32> = (0..tokens * w.cols).map(|i| ((i * 37 % 101) as f32) / 50.0 - 1.0).collect();
            let xt = Tensor::from_vec(x.clone(), (tokens, w.cols), &Device::Cpu).expect("x");
            for e in 0..w.experts {
                let want = w.matmul_t(e, &x, tokens);
                let got: Vec<f32> =
                    d.matmul_t(e, &xt).expect("product").flatten_all().expect("flat").to_vec1().expect("v");
                let worst = got.iter().zip(&want).map(|(a, b)| (a - b).abs()).fold(0f32, f32::max);
                assert!(worst < 1e-4, "expert {e}, {tokens} tokens: differs by {worst}");
            }
        }
        let dense =
            d.dequantize(1, DType::F32).expect("unpack").flatten_all().expect("flat").to_vec1::<f32>().expect("v");
        assert_eq!(dense, w.dequantize(1));
        let wrong = Tensor::zeros((2, 64), DType::F32, &Device::Cpu).expect("x");
        assert!(d.matmul_t(0, &wrong).unwrap_err().to_string().contains("64 input features for a weight of 96"));
    }
}
