//! AVX2 kernels (with FMA and F16C), chosen at run time: the only `unsafe` of the workspace's
//! CPU code. Intrinsics need it for their pointer loads, each bounded by a fixed-size array it
//! reads, and for calling a function compiled for features the caller checked the CPU has.

#![allow(unsafe_code)]

use super::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ8_0, Q8Row};

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

macro_rules! dispatch {
    ($name:ident, $block:ty) => {
        /// Four rows with AVX2, or none where the CPU lacks the features.
        pub fn $name(w: [&[$block]; 4], a: &Q8Row) -> Option<[f32; 4]> {
            #[cfg(target_arch = "x86_64")]
            {
                if available() {
                    // SAFETY: the CPU has AVX2, FMA and F16C (checked just above), the features
                    // the kernel is compiled for; it reads only within the rows and `a`, up to
                    // the shortest of their lengths.
                    return Some(unsafe { avx2::$name(w, a) });
                }
            }
            let _ = (w, a);
            None
        }
    };
}

dispatch!(dot4_q4_0, BlockQ4_0);
dispatch!(dot4_q4_1, BlockQ4_1);
dispatch!(dot4_q5_0, BlockQ5_0);
dispatch!(dot4_q8_0, BlockQ8_0);

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use std::arch::x86_64::*;

    use super::{BlockQ4_0, BlockQ4_1, BlockQ5_0, BlockQ8_0, Q8Row};

    /// A float16 as float32.
    #[target_feature(enable = "avx2,fma,f16c")]
    fn f32_of(h: u16) -> f32 {
        _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128(i32::from(h))))
    }

    /// The eight lanes' sum.
    #[target_feature(enable = "avx2,fma,f16c")]
    fn hsum(acc: __m256) -> f32 {
        let quad = _mm_add_ps(_mm256_castps256_ps128(acc), _mm256_extractf128_ps(acc, 1));
        let pair = _mm_add_ps(quad, _mm_movehl_ps(quad, quad));
        _mm_cvtss_f32(_mm_add_ss(pair, _mm_movehdup_ps(pair)))
    }

    /// 32 nibbles as bytes 0..16: the low nibbles (values 0-15) then the high ones (16-31).
    #[target_feature(enable = "avx2,fma,f16c")]
    fn nibbles(qs: &[u8; 16]) -> __m256i {
        // SAFETY: `qs` is 16 bytes, the width of this unaligned load.
        let packed = unsafe { _mm_loadu_si128(qs.as_ptr().cast::<__m128i>()) };
        _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(packed, 4), packed), _mm256_set1_epi8(0x0F))
    }

    /// 32 bytes, 0xFF where the bit of `bits` at that index is set (llama.cpp's
    /// `bytes_from_bits_32`).
    #[target_feature(enable = "avx2,fma,f16c")]
    fn bytes_from_bits(bits: [u8; 4]) -> __m256i {
        let spread = _mm256_setr_epi8(
            0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3,
        );
        let bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(i32::from_le_bytes(bits)), spread);
        let all_but_one = _mm256_set1_epi64x(0x7fbf_dfef_f7fb_fdfe_u64 as i64);
        _mm256_cmpeq_epi8(_mm256_or_si256(bytes, all_but_one), _mm256_set1_epi64x(-1))
    }

    /// Signed bytes `x` · signed bytes `y`, as eight float lanes of partial sums: `maddubs`
    /// multiplies unsigned by signed, so `|x|` by `y` with `x`'s sign (`y` is an activation, at
    /// most 127 in magnitude, so no pair saturates).
    #[target_feature(enable = "avx2,fma,f16c")]
    fn signed_dot(x: __m256i, y: __m256i) -> __m256 {
        let pairs = _mm256_maddubs_epi16(_mm256_sign_epi8(x, x), _mm256_sign_epi8(y, x));
        _mm256_cvtepi32_ps(_mm256_madd_epi16(pairs, _mm256_set1_epi16(1)))
    }

    /// The shared loop of the symmetric types: per block the activation's bytes loaded once,
    /// each row's values as signed bytes (`values`), and `acc += d_w·d_a·Σ q_w q_a`.
    #[target_feature(enable = "avx2,fma,f16c")]
    fn dot4_signed<B>(w: [&[B]; 4], a: &Q8Row, values: impl Fn(&B) -> (__m256i, u16)) -> [f32; 4] {
        let n = w.iter().map(|r| r.len()).min().unwrap_or(0).min(a.qs.len()).min(a.d.len());
        let mut acc = [_mm256_setzero_ps(); 4];
        for (b, (qa, &da)) in a.qs.iter().zip(&a.d).take(n).enumerate() {
            // SAFETY: `qa` is 32 bytes, the width of this unaligned load.
            let y = unsafe { _mm256_loadu_si256(qa.as_ptr().cast::<__m256i>()) };
            for (r, row) in w.iter().enumerate() {
                let (x, d) = values(&row[b]);
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(f32_of(d) * da), signed_dot(x, y), acc[r]);
            }
        }
        acc.map(|v| hsum(v))
    }

    /// # Safety
    /// The CPU must have AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot4_q4_0(w: [&[BlockQ4_0]; 4], a: &Q8Row) -> [f32; 4] {
        dot4_signed(w, a, |x| (_mm256_sub_epi8(nibbles(&x.qs), _mm256_set1_epi8(8)), x.d))
    }

    /// # Safety
    /// The CPU must have AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot4_q5_0(w: [&[BlockQ5_0]; 4], a: &Q8Row) -> [f32; 4] {
        // A value is its nibble when its fifth bit is set, else the nibble − 16: the nibble
        // with the top four bits of the byte set.
        dot4_signed(w, a, |x| {
            let high = _mm256_andnot_si256(bytes_from_bits(x.qh), _mm256_set1_epi8(0xF0u8 as i8));
            (_mm256_or_si256(nibbles(&x.qs), high), x.d)
        })
    }

    /// # Safety
    /// The CPU must have AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot4_q8_0(w: [&[BlockQ8_0]; 4], a: &Q8Row) -> [f32; 4] {
        // SAFETY: `qs` is 32 bytes, the width of this unaligned load.
        dot4_signed(w, a, |x| (unsafe { _mm256_loadu_si256(x.qs.as_ptr().cast::<__m256i>()) }, x.d))
    }

    /// `Q4_1`'s values are unsigned (0..16), so `maddubs` takes them as they are; the minimum
    /// terms `m · s` are summed apart.
    ///
    /// # Safety
    /// The CPU must have AVX2, FMA and F16C.
    #[target_feature(enable = "avx2,fma,f16c")]
    pub unsafe fn dot4_q4_1(w: [&[BlockQ4_1]; 4], a: &Q8Row) -> [f32; 4] {
        let n = w.iter().map(|r| r.len()).min().unwrap_or(0).min(a.qs.len()).min(a.d.len()).min(a.s.len());
        let ones = _mm256_set1_epi16(1);
        let mut acc = [_mm256_setzero_ps(); 4];
        let mut mins = [0f32; 4];
        for (b, ((qa, &da), &sa)) in a.qs.iter().zip(&a.d).zip(&a.s).take(n).enumerate() {
            // SAFETY: `qa` is 32 bytes, the width of this unaligned load.
            let y = unsafe { _mm256_loadu_si256(qa.as_ptr().cast::<__m256i>()) };
            for (r, row) in w.iter().enumerate() {
                let x = &row[b];
                mins[r] += f32_of(x.m) * sa;
                let sums = _mm256_cvtepi32_ps(_mm256_madd_epi16(_mm256_maddubs_epi16(nibbles(&x.qs), y), ones));
                acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(f32_of(x.d) * da), sums, acc[r]);
            }
        }
        [hsum(acc[0]) + mins[0], hsum(acc[1]) + mins[1], hsum(acc[2]) + mins[2], hsum(acc[3]) + mins[3]]
    }
}
