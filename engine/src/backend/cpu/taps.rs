//! Weighted sums of shifted rows: `out[j] = bias + sum_t w[t] * rows[t][j]`,
//! the inner loop of direct convolutions (a depthwise KxK window is K*K
//! taps, each a row of the input shifted by the tap's column). Every output
//! is summed in registers and stored once, 8 (AVX2) or 4 (NEON) at a time;
//! a ragged end is covered by one more full vector ending at the last
//! output, which recomputes a few outputs rather than falling back to
//! scalar code.

/// Computes `out[j] = bias + sum_t w[t] * rows[t][j]` for every `j`.
///
/// # Panics
/// If a row is shorter than `out`.
#[inline(always)]
pub fn tap_sum<const T: usize>(rows: &[&[f32]; T], w: &[f32; T], bias: f32, out: &mut [f32]) {
    let n = out.len();
    assert!(
        rows.iter().all(|r| r.len() >= n),
        "every tap row covers the output"
    );
    #[cfg(target_arch = "x86_64")]
    {
        if n >= 8 && super::simd::has_avx2() {
            // SAFETY: the CPU has AVX2 and FMA (checked), and every row holds at
            // least n >= 8 values (asserted above).
            return unsafe { avx2(rows, w, bias, out) };
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if n >= 4 {
            // SAFETY: NEON is part of the aarch64 baseline, and every row holds
            // at least n >= 4 values (asserted above).
            return unsafe { neon(rows, w, bias, out) };
        }
    }
    scalar(rows, w, bias, out)
}

#[inline(always)]
fn scalar<const T: usize>(rows: &[&[f32]; T], w: &[f32; T], bias: f32, out: &mut [f32]) {
    for (j, o) in out.iter_mut().enumerate() {
        let mut v = bias;
        for t in 0..T {
            v += w[t] * rows[t][j];
        }
        *o = v;
    }
}

/// # Safety
/// The CPU must have AVX2 and FMA; `out.len() >= 8` and every row at least
/// `out.len()` long.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2<const T: usize>(rows: &[&[f32]; T], w: &[f32; T], bias: f32, out: &mut [f32]) {
    use std::arch::x86_64::*;
    let n = out.len();
    let wv: [__m256; T] = std::array::from_fn(|t| _mm256_set1_ps(w[t]));
    let b = _mm256_set1_ps(bias);
    let mut j = 0;
    loop {
        // The last vector ends at n, overlapping the one before if n % 8 != 0.
        let at = j.min(n - 8);
        // Two accumulators halve the FMA dependency chain.
        let (mut a0, mut a1) = (b, _mm256_setzero_ps());
        let mut t = 0;
        while t + 1 < T {
            // SAFETY: at + 8 <= n <= every row's length.
            unsafe {
                a0 = _mm256_fmadd_ps(wv[t], _mm256_loadu_ps(rows[t].as_ptr().add(at)), a0);
                a1 = _mm256_fmadd_ps(wv[t + 1], _mm256_loadu_ps(rows[t + 1].as_ptr().add(at)), a1);
            }
            t += 2;
        }
        if t < T {
            // SAFETY: as above.
            a0 = unsafe { _mm256_fmadd_ps(wv[t], _mm256_loadu_ps(rows[t].as_ptr().add(at)), a0) };
        }
        // SAFETY: at + 8 <= n = out.len().
        unsafe { _mm256_storeu_ps(out.as_mut_ptr().add(at), _mm256_add_ps(a0, a1)) };
        if at + 8 >= n {
            break;
        }
        j += 8;
    }
}

/// # Safety
/// `out.len() >= 4` and every row at least `out.len()` long.
#[cfg(target_arch = "aarch64")]
unsafe fn neon<const T: usize>(rows: &[&[f32]; T], w: &[f32; T], bias: f32, out: &mut [f32]) {
    use std::arch::aarch64::*;
    let n = out.len();
    let mut j = 0;
    loop {
        let at = j.min(n - 4);
        // SAFETY: at + 4 <= n <= every row's length, and out.len() == n.
        unsafe {
            let (mut a0, mut a1) = (vdupq_n_f32(bias), vdupq_n_f32(0.0));
            let mut t = 0;
            while t + 1 < T {
                a0 = vfmaq_n_f32(a0, vld1q_f32(rows[t].as_ptr().add(at)), w[t]);
                a1 = vfmaq_n_f32(a1, vld1q_f32(rows[t + 1].as_ptr().add(at)), w[t + 1]);
                t += 2;
            }
            if t < T {
                a0 = vfmaq_n_f32(a0, vld1q_f32(rows[t].as_ptr().add(at)), w[t]);
            }
            vst1q_f32(out.as_mut_ptr().add(at), vaddq_f32(a0, a1));
        }
        if at + 4 >= n {
            break;
        }
        j += 4;
    }
}

/// Channels interleaved by eight: group `g` of a [`window8`] input is the
/// eight floats `x[8 * g..8 * g + 8]`, one per channel.
pub const C8: usize = 8;

/// Computes, for every output `p < out.len() / 8` and channel `l < 8`,
/// `out[8p + l] = bias[l] + sum_t w[t][l] * x[8 (p * step + offs[t]) + l]`:
/// one output row of a depthwise window over eight interleaved channels.
///
/// # Panics
/// If a group the sum reads lies beyond `x`.
#[inline(always)]
pub fn window8<const T: usize>(
    x: &[f32],
    offs: &[usize; T],
    step: usize,
    w: &[[f32; C8]; T],
    bias: &[f32; C8],
    out: &mut [f32],
) {
    let n = out.len() / C8;
    if n == 0 {
        return;
    }
    let last = offs.iter().max().copied().unwrap_or(0) + (n - 1) * step;
    assert!(
        (last + 1) * C8 <= x.len(),
        "every window lies inside the input"
    );
    #[cfg(target_arch = "x86_64")]
    {
        if super::simd::has_avx2() {
            // SAFETY: the CPU has AVX2 and FMA (checked); every group read is at
            // most `last`, inside x (asserted above); out holds n groups.
            return unsafe { window8_avx2(x, offs, step, w, bias, &mut out[..n * C8]) };
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        // SAFETY: NEON is baseline on aarch64; bounds as asserted above.
        return unsafe { window8_neon(x, offs, step, w, bias, &mut out[..n * C8]) };
    }
    #[allow(unreachable_code)]
    for (p, o) in out.chunks_exact_mut(C8).enumerate() {
        let mut acc = *bias;
        for t in 0..T {
            let g = &x[(p * step + offs[t]) * C8..][..C8];
            for l in 0..C8 {
                acc[l] += w[t][l] * g[l];
            }
        }
        o.copy_from_slice(&acc);
    }
}

/// # Safety
/// AVX2 and FMA present; every group `p * step + offs[t]` for `p < n` lies
/// inside `x`; `out.len() == 8 n`.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn window8_avx2<const T: usize>(
    x: &[f32],
    offs: &[usize; T],
    step: usize,
    w: &[[f32; C8]; T],
    bias: &[f32; C8],
    out: &mut [f32],
) {
    use std::arch::x86_64::*;
    // SAFETY (for every load and store below): the caller guarantees the
    // groups read lie inside x and that out holds n groups.
    unsafe {
        let wv: [__m256; T] = std::array::from_fn(|t| _mm256_loadu_ps(w[t].as_ptr()));
        let b = _mm256_loadu_ps(bias.as_ptr());
        let xp = x.as_ptr();
        for p in 0..out.len() / C8 {
            let base = p * step;
            let (mut a0, mut a1) = (b, _mm256_setzero_ps());
            let mut t = 0;
            while t + 1 < T {
                a0 = _mm256_fmadd_ps(wv[t], _mm256_loadu_ps(xp.add((base + offs[t]) * C8)), a0);
                a1 = _mm256_fmadd_ps(
                    wv[t + 1],
                    _mm256_loadu_ps(xp.add((base + offs[t + 1]) * C8)),
                    a1,
                );
                t += 2;
            }
            if t < T {
                a0 = _mm256_fmadd_ps(wv[t], _mm256_loadu_ps(xp.add((base + offs[t]) * C8)), a0);
            }
            _mm256_storeu_ps(out.as_mut_ptr().add(p * C8), _mm256_add_ps(a0, a1));
        }
    }
}

/// # Safety
/// Every group `p * step + offs[t]` for `p < n` lies inside `x`;
/// `out.len() == 8 n`.
#[cfg(target_arch = "aarch64")]
unsafe fn window8_neon<const T: usize>(
    x: &[f32],
    offs: &[usize; T],
    step: usize,
    w: &[[f32; C8]; T],
    bias: &[f32; C8],
    out: &mut [f32],
) {
    use std::arch::aarch64::*;
    // SAFETY (for every load and store below): the caller guarantees the
    // groups read lie inside x and that out holds n groups.
    unsafe {
        let xp = x.as_ptr();
        for p in 0..out.len() / C8 {
            let base = p * step;
            let mut lo = vld1q_f32(bias.as_ptr());
            let mut hi = vld1q_f32(bias.as_ptr().add(4));
            for t in 0..T {
                let g = xp.add((base + offs[t]) * C8);
                lo = vfmaq_f32(lo, vld1q_f32(w[t].as_ptr()), vld1q_f32(g));
                hi = vfmaq_f32(hi, vld1q_f32(w[t].as_ptr().add(4)), vld1q_f32(g.add(4)));
            }
            vst1q_f32(out.as_mut_ptr().add(p * C8), lo);
            vst1q_f32(out.as_mut_ptr().add(p * C8 + 4), hi);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn check<const T: usize>(n: usize) {
        let rows: Vec<Vec<f32>> = (0..T)
            .map(|t| {
                (0..n + 3)
                    .map(|j| ((j * 7 + t * 3) % 11) as f32 - 5.0)
                    .collect()
            })
            .collect();
        let refs: [&[f32]; T] = std::array::from_fn(|t| &rows[t][..]);
        let w: [f32; T] = std::array::from_fn(|t| 0.25 * t as f32 - 1.0);
        let mut got = vec![f32::NAN; n];
        tap_sum(&refs, &w, 0.5, &mut got);
        let mut want = vec![0.0; n];
        scalar(&refs, &w, 0.5, &mut want);
        for (j, (g, e)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - e).abs() <= 1e-5 * e.abs().max(1.0),
                "T={T} n={n} j={j}: {g} vs {e}"
            );
        }
    }

    #[test]
    fn window8_matches_a_direct_sum() {
        // A 3-tap window at stride 2 over 20 groups of 8 channels.
        let x: Vec<f32> = (0..20 * C8).map(|i| ((i * 13) % 17) as f32 - 8.0).collect();
        let offs = [0, 1, 5];
        let w: [[f32; C8]; 3] =
            std::array::from_fn(|t| std::array::from_fn(|l| (t * 8 + l) as f32 * 0.1 - 1.0));
        let bias: [f32; C8] = std::array::from_fn(|l| l as f32);
        for n in [1, 2, 7] {
            let mut out = vec![f32::NAN; n * C8];
            window8(&x, &offs, 2, &w, &bias, &mut out);
            for p in 0..n {
                for l in 0..C8 {
                    let mut want = bias[l];
                    for t in 0..3 {
                        want += w[t][l] * x[(p * 2 + offs[t]) * C8 + l];
                    }
                    let got = out[p * C8 + l];
                    assert!(
                        (got - want).abs() <= 1e-5 * want.abs().max(1.0),
                        "{got} vs {want}"
                    );
                }
            }
        }
    }

    #[test]
    fn matches_scalar_over_lengths_and_tap_counts() {
        for n in [0, 1, 3, 4, 5, 7, 8, 9, 15, 16, 17, 54, 112] {
            check::<1>(n);
            check::<3>(n);
            check::<9>(n);
            check::<25>(n);
        }
    }
}
