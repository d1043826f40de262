//! Eight planes to one channel-interleaved buffer and back, for kernels
//! that vectorize across eight channels ([`super::taps::window8`]): 8x8
//! blocks transposed in registers where the CPU has AVX2, element by
//! element elsewhere.

/// `dst[i * 8 + l] = src[l][i]` for `i < n`.
///
/// # Panics
/// If a source is shorter than `n` or `dst` than `8 * n`.
#[inline(always)]
pub fn interleave8(src: [&[f32]; 8], n: usize, dst: &mut [f32]) {
    assert!(src.iter().all(|s| s.len() >= n) && dst.len() >= 8 * n);
    // Advanced by the vector loop where there is one.
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    let mut i = 0;
    #[cfg(target_arch = "x86_64")]
    {
        if super::simd::has_avx2() {
            while i + 8 <= n {
                let p: [*const f32; 8] = std::array::from_fn(|l| src[l][i..].as_ptr());
                // SAFETY: AVX2 checked; each source holds 8 floats from i and
                // dst 64 from 8i (lengths asserted above).
                unsafe { gather_avx2(p, dst[8 * i..].as_mut_ptr()) };
                i += 8;
            }
        }
    }
    for j in i..n {
        for (l, s) in src.iter().enumerate() {
            dst[j * 8 + l] = s[j];
        }
    }
}

/// `dst[l][i] = src[i * 8 + l]` for `i < n`: the inverse of [`interleave8`].
///
/// # Panics
/// If `src` is shorter than `8 * n` or a destination than `n`.
#[inline(always)]
pub fn deinterleave8(src: &[f32], n: usize, dst: [&mut [f32]; 8]) {
    assert!(src.len() >= 8 * n && dst.iter().all(|d| d.len() >= n));
    let mut dst = dst;
    // Advanced by the vector loop where there is one.
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    let mut i = 0;
    #[cfg(target_arch = "x86_64")]
    {
        if super::simd::has_avx2() {
            while i + 8 <= n {
                let p: [*mut f32; 8] = std::array::from_fn(|l| dst[l][i..].as_mut_ptr());
                // SAFETY: AVX2 checked; src holds 64 floats from 8i and each
                // destination 8 from i (lengths asserted above).
                unsafe { scatter_avx2(src[8 * i..].as_ptr(), p) };
                i += 8;
            }
        }
    }
    for j in i..n {
        for (l, d) in dst.iter_mut().enumerate() {
            d[j] = src[j * 8 + l];
        }
    }
}

/// Eight floats from each `src[l]`, transposed into 64 contiguous ones.
///
/// # Safety
/// AVX2 present; 8 readable floats at each `src[l]`, 64 writable at `dst`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn gather_avx2(src: [*const f32; 8], dst: *mut f32) {
    use std::arch::x86_64::*;
    // SAFETY: per the contract.
    unsafe {
        let r: [__m256; 8] = std::array::from_fn(|l| _mm256_loadu_ps(src[l]));
        let o = transpose(r);
        for (k, v) in o.iter().enumerate() {
            _mm256_storeu_ps(dst.add(8 * k), *v);
        }
    }
}

/// # Safety
/// AVX2 present; 64 readable floats at `src`, 8 writable at each `dst[l]`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
unsafe fn scatter_avx2(src: *const f32, dst: [*mut f32; 8]) {
    use std::arch::x86_64::*;
    // SAFETY: per the contract.
    unsafe {
        let r: [__m256; 8] = std::array::from_fn(|k| _mm256_loadu_ps(src.add(8 * k)));
        let o = transpose(r);
        for (l, v) in o.iter().enumerate() {
            _mm256_storeu_ps(dst[l], *v);
        }
    }
}

/// The transpose of eight 8-lane rows.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn transpose(r: [std::arch::x86_64::__m256; 8]) -> [std::arch::x86_64::__m256; 8] {
    use std::arch::x86_64::*;
    let t0 = _mm256_unpacklo_ps(r[0], r[1]);
    let t1 = _mm256_unpackhi_ps(r[0], r[1]);
    let t2 = _mm256_unpacklo_ps(r[2], r[3]);
    let t3 = _mm256_unpackhi_ps(r[2], r[3]);
    let t4 = _mm256_unpacklo_ps(r[4], r[5]);
    let t5 = _mm256_unpackhi_ps(r[4], r[5]);
    let t6 = _mm256_unpacklo_ps(r[6], r[7]);
    let t7 = _mm256_unpackhi_ps(r[6], r[7]);
    let s0 = _mm256_shuffle_ps::<0x44>(t0, t2);
    let s1 = _mm256_shuffle_ps::<0xEE>(t0, t2);
    let s2 = _mm256_shuffle_ps::<0x44>(t1, t3);
    let s3 = _mm256_shuffle_ps::<0xEE>(t1, t3);
    let s4 = _mm256_shuffle_ps::<0x44>(t4, t6);
    let s5 = _mm256_shuffle_ps::<0xEE>(t4, t6);
    let s6 = _mm256_shuffle_ps::<0x44>(t5, t7);
    let s7 = _mm256_shuffle_ps::<0xEE>(t5, t7);
    [
        _mm256_permute2f128_ps::<0x20>(s0, s4),
        _mm256_permute2f128_ps::<0x20>(s1, s5),
        _mm256_permute2f128_ps::<0x20>(s2, s6),
        _mm256_permute2f128_ps::<0x20>(s3, s7),
        _mm256_permute2f128_ps::<0x31>(s0, s4),
        _mm256_permute2f128_ps::<0x31>(s1, s5),
        _mm256_permute2f128_ps::<0x31>(s2, s6),
        _mm256_permute2f128_ps::<0x31>(s3, s7),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_and_matches_the_definition() {
        for n in [0, 1, 7, 8, 13, 16, 29] {
            let planes: Vec<Vec<f32>> = (0..8)
                .map(|l| (0..n).map(|i| (l * 100 + i) as f32).collect())
                .collect();
            let mut inter = vec![f32::NAN; 8 * n];
            interleave8(std::array::from_fn(|l| &planes[l][..]), n, &mut inter);
            for i in 0..n {
                for l in 0..8 {
                    assert_eq!(inter[i * 8 + l], planes[l][i], "n {n}, ({i}, {l})");
                }
            }
            let mut back = vec![vec![f32::NAN; n]; 8];
            let mut it = back.iter_mut();
            deinterleave8(
                &inter,
                n,
                std::array::from_fn(|_| &mut it.next().unwrap()[..]),
            );
            assert_eq!(back, planes, "n {n}");
        }
    }
}
