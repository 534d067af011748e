//! Launches the MXFP4 kernels of `mxfp4.cu` (PTX built by build.rs) on candle's CUDA storage.
//! The only unsafe code of the engine's GPU path: device allocations the kernels fill and the
//! launches themselves. Checked against the float32 reference by the ignored GPU test in
//! `tests/all/gpu.rs`.

#![allow(unsafe_code)]

use candle_core::backend::BackendStorage;
use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView, DeviceRepr, LaunchConfig, PushKernelArg};
use candle_core::cuda_backend::{CudaStorageSlice, WrapErr};
use candle_core::{CudaDevice, CudaStorage, DType, Layout};

const PTX: &str = include_str!(concat!(env!("OUT_DIR"), "/mxfp4.ptx"));
const MODULE: &str = "energy_star_mxfp4";
/// Warps per block of the matvec kernel (`MXFP4_WARPS` in mxfp4.cu): one output row each.
const WARPS: usize = 8;

fn view<'a>(s: &'a CudaStorage, l: &Layout, what: &str) -> candle_core::Result<CudaView<'a, u8>> {
    let (from, to) =
        l.contiguous_offsets().ok_or_else(|| candle_core::Error::msg(format!("{what} is not contiguous")))?;
    match &s.slice {
        CudaStorageSlice::U8(v) => Ok(v.slice(from..to)),
        _ => candle_core::bail!("{what} must be u8, not {:?}", s.dtype()),
    }
}

fn dims(rows: usize, cols: usize) -> candle_core::Result<(u32, u32)> {
    match (u32::try_from(rows), u32::try_from(cols)) {
        (Ok(r), Ok(c)) => Ok((r, c)),
        _ => candle_core::bail!("mxfp4 weight of {rows} × {cols} is too large for the kernels' 32-bit sizes"),
    }
}

/// `y = x · Wᵀ` for `tokens` rows of `x` (contiguous, (tokens, cols)).
#[allow(clippy::too_many_arguments)]
pub fn matvec(
    x: &CudaStorage,
    xl: &Layout,
    b: &CudaStorage,
    bl: &Layout,
    s: &CudaStorage,
    sl: &Layout,
    tokens: usize,
    rows: usize,
    cols: usize,
) -> candle_core::Result<CudaStorage> {
    fn launch<T: DeviceRepr>(
        name: &str,
        dev: &CudaDevice,
        x: CudaView<'_, T>,
        blocks: &CudaView<'_, u8>,
        scales: &CudaView<'_, u8>,
        tokens: usize,
        rows: usize,
        cols: usize,
    ) -> candle_core::Result<CudaSlice<T>> {
        let (r, c) = dims(rows, cols)?;
        let func = dev.get_or_load_custom_func(name, MODULE, PTX)?;
        // SAFETY: `tokens × rows` elements, each written once by the kernel (one warp per row
        // and token, rows past the end return before writing) before anything reads them.
        let y = unsafe { dev.alloc::<T>(tokens * rows)? };
        let cfg = LaunchConfig {
            grid_dim: (rows.div_ceil(WARPS) as u32, tokens as u32, 1),
            block_dim: (32 * WARPS as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut builder = func.builder();
        builder.arg(&x);
        builder.arg(blocks);
        builder.arg(scales);
        builder.arg(&y);
        builder.arg(&r);
        builder.arg(&c);
        // SAFETY: the arguments match the kernel's signature (x: T*, blocks/scales: u8*, y: T*,
        // rows, cols: u32); `x` holds tokens × cols values, `blocks` rows × cols / 2 bytes and
        // `scales` rows × cols / 32 bytes of one expert (its contiguous view), `y` tokens × rows.
        unsafe { builder.launch(cfg) }.w()?;
        Ok(y)
    }
    let (from, to) = xl.contiguous_offsets().ok_or_else(|| candle_core::Error::msg("x is not contiguous"))?;
    let (blocks, scales) = (view(b, bl, "blocks")?, view(s, sl, "scales")?);
    let dev = x.device();
    let slice = match &x.slice {
        CudaStorageSlice::F32(v) => CudaStorageSlice::F32(launch(
            "mxfp4_matvec_f32",
            dev,
            v.slice(from..to),
            &blocks,
            &scales,
            tokens,
            rows,
            cols,
        )?),
        CudaStorageSlice::BF16(v) => CudaStorageSlice::BF16(launch(
            "mxfp4_matvec_bf16",
            dev,
            v.slice(from..to),
            &blocks,
            &scales,
            tokens,
            rows,
            cols,
        )?),
        CudaStorageSlice::F16(v) => CudaStorageSlice::F16(launch(
            "mxfp4_matvec_f16",
            dev,
            v.slice(from..to),
            &blocks,
            &scales,
            tokens,
            rows,
            cols,
        )?),
        _ => {
            candle_core::bail!("the mxfp4 product takes float32, bfloat16 or float16 activations, not {:?}", x.dtype())
        }
    };
    Ok(CudaStorage { slice, device: dev.clone() })
}

/// One expert unpacked into a dense (rows, cols) matrix of `dtype`.
pub fn dequantize(
    b: &CudaStorage,
    bl: &Layout,
    s: &CudaStorage,
    sl: &Layout,
    rows: usize,
    cols: usize,
    dtype: DType,
) -> candle_core::Result<CudaStorage> {
    fn launch<T: DeviceRepr>(
        name: &str,
        dev: &CudaDevice,
        blocks: &CudaView<'_, u8>,
        scales: &CudaView<'_, u8>,
        rows: usize,
        cols: usize,
    ) -> candle_core::Result<CudaSlice<T>> {
        let (r, c) = dims(rows, cols)?;
        let func = dev.get_or_load_custom_func(name, MODULE, PTX)?;
        // SAFETY: rows × cols elements, all written by the grid-stride loop (one thread per
        // packed byte writes its two values) before anything reads them.
        let out = unsafe { dev.alloc::<T>(rows * cols)? };
        let bytes = rows * cols / 2;
        let cfg = LaunchConfig {
            grid_dim: (bytes.div_ceil(256).min(65_535) as u32, 1, 1),
            block_dim: (256, 1, 1),
            shared_mem_bytes: 0,
        };
        let mut builder = func.builder();
        builder.arg(blocks);
        builder.arg(scales);
        builder.arg(&out);
        builder.arg(&r);
        builder.arg(&c);
        // SAFETY: the arguments match the kernel's signature (blocks/scales: u8*, out: T*, rows,
        // cols: u32) and the buffers hold rows × cols / 2, rows × cols / 32 and rows × cols
        // elements.
        unsafe { builder.launch(cfg) }.w()?;
        Ok(out)
    }
    let (blocks, scales) = (view(b, bl, "blocks")?, view(s, sl, "scales")?);
    let dev = b.device();
    let slice = match dtype {
        DType::F32 => CudaStorageSlice::F32(launch("mxfp4_dequant_f32", dev, &blocks, &scales, rows, cols)?),
        DType::BF16 => CudaStorageSlice::BF16(launch("mxfp4_dequant_bf16", dev, &blocks, &scales, rows, cols)?),
        DType::F16 => CudaStorageSlice::F16(launch("mxfp4_dequant_f16", dev, &blocks, &scales, rows, cols)?),
        other => candle_core::bail!("mxfp4 unpacks to float32, bfloat16 or float16, not {other:?}"),
    };
    Ok(CudaStorage { slice, device: dev.clone() })
}
