// MXFP4 expert weights on NVIDIA GPUs, kept packed in GPU memory (what lets gpt-oss-120b's
// experts fit one 80 GB GPU). Compiled to PTX by build.rs (nvcc) in builds with the `cuda`
// feature; launched from mxfp4/cuda.rs through cudarc.
//
// Layout (as gpt-oss checkpoints store it, see mod.rs): for one expert, `blocks` is
// [rows][groups][16] bytes, two E2M1 values per byte (low nibble first), and `scales` is
// [rows][groups] E8M0 bytes (2^(byte - 127)), one per 32 values. A row is one output feature;
// its groups × 32 columns are the input features.
//
// Two kernels per activation type:
// - mxfp4_matvec_*: y[t][r] = sum_c x[t][c] * W[r][c] for a few tokens t, one warp per output
//   row, each lane decoding whole 32-value groups straight into the dot product: the weight is
//   read once per token from memory (or L2) and never written out dense. Used for decoding.
// - mxfp4_dequant_*: W written dense (rows × cols) in the activation type, for a product with
//   many tokens, which cuBLAS then does better than a per-row loop (prefill).
// Both accumulate in float32.

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>

#define MXFP4_BLOCK 32
#define MXFP4_WARPS 8

__constant__ float MXFP4_VALUES[16] = {0.0f,  0.5f,  1.0f,  1.5f,  2.0f,  3.0f,  4.0f,  6.0f,
                                       -0.0f, -0.5f, -1.0f, -1.5f, -2.0f, -3.0f, -4.0f, -6.0f};

// E8M0, as the CPU path decodes it: 2^(byte - 127), byte 0 being the subnormal 2^-127.
__device__ __forceinline__ float mxfp4_scale(uint8_t byte) {
    return __uint_as_float(byte == 0 ? 0x00400000u : ((uint32_t)byte << 23));
}

__device__ __forceinline__ float to_f32(float x) { return x; }
__device__ __forceinline__ float to_f32(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_f32(__half x) { return __half2float(x); }

template <typename T> __device__ __forceinline__ T from_f32(float x);
template <> __device__ __forceinline__ float from_f32<float>(float x) { return x; }
template <> __device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float x) { return __float2bfloat16(x); }
template <> __device__ __forceinline__ __half from_f32<__half>(float x) { return __float2half(x); }

// grid (ceil(rows / MXFP4_WARPS), tokens), block 32 × MXFP4_WARPS.
template <typename T>
__device__ void mxfp4_matvec(const T *__restrict__ x, const uint8_t *__restrict__ blocks,
                             const uint8_t *__restrict__ scales, T *__restrict__ y, uint32_t rows,
                             uint32_t cols) {
    const uint32_t lane = threadIdx.x % 32;
    const uint32_t row = blockIdx.x * MXFP4_WARPS + threadIdx.x / 32;
    const uint32_t token = blockIdx.y;
    if (row >= rows) {
        return;
    }
    const uint32_t groups = cols / MXFP4_BLOCK;
    const T *xt = x + (size_t)token * cols;
    const uint8_t *row_blocks = blocks + (size_t)row * groups * (MXFP4_BLOCK / 2);
    const uint8_t *row_scales = scales + (size_t)row * groups;
    float acc = 0.0f;
    for (uint32_t g = lane; g < groups; g += 32) {
        const float scale = mxfp4_scale(row_scales[g]);
        // 16 bytes of one group: 16-byte aligned, as every group starts at a multiple of 16.
        const uint4 packed = *reinterpret_cast<const uint4 *>(row_blocks + (size_t)g * (MXFP4_BLOCK / 2));
        const uint32_t words[4] = {packed.x, packed.y, packed.z, packed.w};
        const T *xg = xt + (size_t)g * MXFP4_BLOCK;
        float sum = 0.0f;
#pragma unroll
        for (int w = 0; w < 4; ++w) {
#pragma unroll
            for (int b = 0; b < 4; ++b) {
                const uint32_t byte = (words[w] >> (8 * b)) & 0xffu;
                const int col = (w * 4 + b) * 2;
                sum += MXFP4_VALUES[byte & 0x0fu] * to_f32(xg[col]);
                sum += MXFP4_VALUES[byte >> 4] * to_f32(xg[col + 1]);
            }
        }
        acc += sum * scale;
    }
#pragma unroll
    for (int offset = 16; offset > 0; offset /= 2) {
        acc += __shfl_down_sync(0xffffffffu, acc, offset);
    }
    if (lane == 0) {
        y[(size_t)token * rows + row] = from_f32<T>(acc);
    }
}

// One thread per packed byte (two values); grid-stride over rows × cols / 2 bytes.
template <typename T>
__device__ void mxfp4_dequant(const uint8_t *__restrict__ blocks, const uint8_t *__restrict__ scales,
                              T *__restrict__ out, uint32_t rows, uint32_t cols) {
    const size_t bytes = (size_t)rows * cols / 2;
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < bytes; i += (size_t)gridDim.x * blockDim.x) {
        // Byte i holds values 2i and 2i + 1 of the row-major matrix; its group is (2i) / 32.
        const float scale = mxfp4_scale(scales[(2 * i) / MXFP4_BLOCK]);
        const uint8_t byte = blocks[i];
        out[2 * i] = from_f32<T>(MXFP4_VALUES[byte & 0x0fu] * scale);
        out[2 * i + 1] = from_f32<T>(MXFP4_VALUES[byte >> 4] * scale);
    }
}

#define MXFP4_KERNELS(NAME, T)                                                                      \
    extern "C" __global__ void mxfp4_matvec_##NAME(const T *x, const uint8_t *blocks, const uint8_t *scales, \
                                                   T *y, uint32_t rows, uint32_t cols) {            \
        mxfp4_matvec<T>(x, blocks, scales, y, rows, cols);                                          \
    }                                                                                               \
    extern "C" __global__ void mxfp4_dequant_##NAME(const uint8_t *blocks, const uint8_t *scales, T *out, \
                                                    uint32_t rows, uint32_t cols) {                 \
        mxfp4_dequant<T>(blocks, scales, out, rows, cols);                                          \
    }

MXFP4_KERNELS(f32, float)
MXFP4_KERNELS(bf16, __nv_bfloat16)
MXFP4_KERNELS(f16, __half)
