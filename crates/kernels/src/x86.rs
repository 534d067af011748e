//! AVX2 kernels (with FMA and F16C), chosen at run time. The only `unsafe` of the workspace's
//! CPU code: intrinsics need it, and each use is bounded by the slice lengths checked before.

#![allow(unsafe_code)]

use super::{BlockQ4_1, BlockQ8_1, Q8_1Row};

/// Whether this CPU runs the AVX2 kernels.
pub fn available() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::is_x86_feature_detected!("avx2")
            && std::is_x86_feature_detected!("fma")
            && std::is_x86_feature_detected!("f16c")
    }
    #[cfg(not(target_arch = "x86_64"))]
    {
        false
    }
}

/// The AVX2 dot product, or none where the CPU lacks the features.
pub fn dot_q4_1_q8_1(w: &[BlockQ4_1], a: &[BlockQ8_1]) -> Option<f32> {
    #[cfg(target_arch = "x86_64")]
    {
        if available() {
            // SAFETY: the CPU has AVX2, FMA and F16C (checked just above), which is all
            // `avx2::dot_q4_1_q8_1` is compiled for; it reads only within `w` and `a`.
            return Some(unsafe { avx2::dot_q4_1_q8_1(w, a) });
        }
    }
    let _ = (w, a);
    None
}

/// Four rows at once with AVX2, or none where the CPU lacks the features.
pub fn dot4_q4_1_q8_1(w: [&[BlockQ4_1]; 4], a: &Q8_1Row) -> Option<[f32; 4]> {
    #[cfg(target_arch = "x86_64")]
    {
        if available() {
            // SAFETY: the CPU has AVX2, FMA and F16C (checked just above); the kernel reads
            // only within the rows and `a`, whose lengths the caller checked equal.
            return Some(unsafe { avx2::dot4_q4_1_q8_1(w, a) });
        }
    }
    let _ = (w, a);
    None
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BlockQ4_1, BlockQ8_1, Q8_1Row};

    /// One block pair per step, as llama.cpp's AVX2 `ggml_vec_dot_q4_1_q8_1`: the 32 nibbles
    /// widened to bytes (low nibbles are values 0-15, high ones 16-31, matching the Q8_1
    /// order), `maddubs` (unsigned × signed bytes into 16-bit pair sums, at most 2·15·127 so no
    /// saturation), `madd` with ones into eight 32-bit sums, converted and multiplied by the
    /// scales' product into eight float accumulators; the minimum terms summed apart.
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot_q4_1_q8_1(w: &[BlockQ4_1], a: &[BlockQ8_1]) -> f32 {
        let n = w.len().min(a.len());
        let low = _mm256_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let mut acc = _mm256_setzero_ps();
        let mut mins = 0f32;
        for i in 0..n {
            let (x, y) = (&w[i], &a[i]);
            // d_x, m_x, d_y, s_y: four float16s converted at once.
            let halves = _mm_set_epi16(0, 0, 0, 0, y.s as i16, y.d as i16, x.m as i16, x.d as i16);
            let mut f = [0f32; 4];
            // SAFETY: `f` holds four floats, what an unaligned 128-bit store writes.
            unsafe { _mm_storeu_ps(f.as_mut_ptr(), _mm_cvtph_ps(halves)) };
            mins += f[1] * f[3];
            // SAFETY: `x.qs` is 16 bytes and `y.qs` 32, the widths of these unaligned loads.
            let (packed, qy) = unsafe {
                (_mm_loadu_si128(x.qs.as_ptr().cast::<__m128i>()), _mm256_loadu_si256(y.qs.as_ptr().cast::<__m256i>()))
            };
            let nibbles = _mm256_set_m128i(_mm_srli_epi16(packed, 4), packed);
            let qx = _mm256_and_si256(nibbles, low);
            let pairs = _mm256_maddubs_epi16(qx, qy);
            let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, ones));
            acc = _mm256_fmadd_ps(_mm256_set1_ps(f[0] * f[2]), sums, acc);
        }
        hsum(acc) + mins
    }

    /// The eight lanes' sum.
    #[target_feature(enable = "avx2,fma,f16c")]
    fn hsum(acc: __m256) -> f32 {
        let quad = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
        let one = _mm_add_ss(pair, _mm_movehdup_ps(pair));
        _mm_cvtss_f32(one)
    }

    /// [`dot_q4_1_q8_1`] for four weight rows: per block the activation's 32 bytes are loaded
    /// once, its scale and sum come converted (`Q8_1Row`), and each row's scale and minimum
    /// are converted together by one F16C instruction.
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot4_q4_1_q8_1(w: [&[BlockQ4_1]; 4], a: &Q8_1Row) -> [f32; 4] {
        let n = w.iter().map(|r| r.len()).min().unwrap_or(0).min(a.blocks.len()).min(a.d.len()).min(a.s.len());
        let low = _mm256_set1_epi8(0x0F);
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut mins = [0f32; 4];
        for (b, ((ya, &dy), &sy)) in a.blocks.iter().zip(&a.d).zip(&a.s).take(n).enumerate() {
            // SAFETY: `qs` is 32 bytes, the width of this unaligned load.
            let qy = unsafe { _mm256_loadu_si256(ya.qs.as_ptr().cast::<__m256i>()) };
            for (r, row) in w.iter().enumerate() {
                let x = &row[b];
                // d in lane 0, m in lane 1.
                let dm = _mm_cvtph_ps(_mm_cvtsi32_si128((u32::from(x.d) | u32::from(x.m) << 16) as i32));
                let dx = _mm_cvtss_f32(dm);
                mins[r] += _mm_cvtss_f32(_mm_movehdup_ps(dm)) * sy;
                // SAFETY: `qs` is 16 bytes, the width of this unaligned load.
                let packed = unsafe { _mm_loadu_si128(x.qs.as_ptr().cast::<__m128i>()) };
                let qx = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), low);
                let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(qx, qy), ones));
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(dx * dy), sums, acc[r]);
            }
        }
        [hsum(acc[0]) + mins[0], hsum(acc[1]) + mins[1], hsum(acc[2]) + mins[2], hsum(acc[3]) + mins[3]]
    }
}
