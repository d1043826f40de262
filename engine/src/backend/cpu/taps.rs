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
    // Q vectors at a time: Q independent accumulator chains keep both FMA
    // units busy despite their latency.
    #[inline(always)]
    unsafe fn block<const Q: usize, const T: usize>(
        rows: &[&[f32]; T],
        wv: &[__m256; T],
        b: __m256,
        j: usize,
        out: *mut f32,
    ) {
        let mut acc = [b; Q];
        for t in 0..T {
            for (q, a) in acc.iter_mut().enumerate() {
                // SAFETY: the caller guarantees j + 8Q <= every row's length.
                let x = unsafe { _mm256_loadu_ps(rows[t].as_ptr().add(j + 8 * q)) };
                *a = _mm256_fmadd_ps(wv[t], x, *a);
            }
        }
        for (q, a) in acc.iter().enumerate() {
            // SAFETY: the caller guarantees j + 8Q <= the output's length.
            unsafe { _mm256_storeu_ps(out.add(j + 8 * q), *a) };
        }
    }
    while j + 32 <= n {
        // SAFETY: j + 32 <= n <= every row's length and out's.
        unsafe { block::<4, T>(rows, &wv, b, j, out.as_mut_ptr()) };
        j += 32;
    }
    if j + 16 <= n {
        // SAFETY: j + 16 <= n, as above.
        unsafe { block::<2, T>(rows, &wv, b, j, out.as_mut_ptr()) };
        j += 16;
    }
    if j >= n {
        return;
    }
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

/// Output planes [`tap_sum_m`] computes together: each stream load feeds
/// this many FMAs.
pub const M: usize = 4;

/// [`tap_sum`] for [`M`] outputs reading the same streams with their own
/// weights: `outs[m][j] = bias[m] + sum_t w[t][m] * rows[t][j]`.
///
/// # Panics
/// If a row is shorter than the outputs, or the outputs differ in length.
#[inline(always)]
pub fn tap_sum_m<const T: usize>(
    rows: &[&[f32]; T],
    w: &[[f32; M]; T],
    bias: &[f32; M],
    outs: [&mut [f32]; M],
) {
    let n = outs[0].len();
    assert!(
        outs.iter().all(|o| o.len() == n) && rows.iter().all(|r| r.len() >= n),
        "every tap row covers the outputs"
    );
    #[cfg(target_arch = "x86_64")]
    {
        if n >= 8 && super::simd::has_avx2() {
            // SAFETY: AVX2 and FMA checked; lengths asserted above, n >= 8.
            return unsafe { avx2_m(rows, w, bias, outs) };
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        if n >= 4 {
            // SAFETY: NEON is baseline on aarch64; lengths asserted, n >= 4.
            return unsafe { neon_m(rows, w, bias, outs) };
        }
    }
    for (m, out) in outs.into_iter().enumerate() {
        for (j, o) in out.iter_mut().enumerate() {
            let mut v = bias[m];
            for t in 0..T {
                v += w[t][m] * rows[t][j];
            }
            *o = v;
        }
    }
}

/// # Safety
/// AVX2 and FMA present; every output `n >= 8` long, every row at least n.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_m<const T: usize>(
    rows: &[&[f32]; T],
    w: &[[f32; M]; T],
    bias: &[f32; M],
    outs: [&mut [f32]; M],
) {
    use std::arch::x86_64::*;
    let n = outs[0].len();
    // Weights broadcast once, read as memory operands of the FMAs.
    let wv: [[__m256; M]; T] =
        std::array::from_fn(|t| std::array::from_fn(|m| _mm256_set1_ps(w[t][m])));
    let optr: [*mut f32; M] = std::array::from_fn(|m| outs[m].as_ptr() as *mut f32);
    // Two vectors of positions per step: 2 * M independent accumulators keep
    // both FMA units busy despite their latency.
    let mut j = 0;
    while j + 16 <= n {
        let b: [__m256; M] = std::array::from_fn(|m| _mm256_set1_ps(bias[m]));
        let (mut a0, mut a1) = (b, b);
        for t in 0..T {
            // SAFETY: j + 16 <= n <= every row's length.
            let (x0, x1) = unsafe {
                let p = rows[t].as_ptr().add(j);
                (_mm256_loadu_ps(p), _mm256_loadu_ps(p.add(8)))
            };
            for m in 0..M {
                a0[m] = _mm256_fmadd_ps(wv[t][m], x0, a0[m]);
                a1[m] = _mm256_fmadd_ps(wv[t][m], x1, a1[m]);
            }
        }
        for m in 0..M {
            // SAFETY: j + 16 <= n, the length of every output.
            unsafe {
                _mm256_storeu_ps(optr[m].add(j), a0[m]);
                _mm256_storeu_ps(optr[m].add(j + 8), a1[m]);
            }
        }
        j += 16;
    }
    // The rest, one vector at a time, the last one ending at n.
    while j < n {
        let at = j.min(n - 8);
        let mut acc: [__m256; M] = std::array::from_fn(|m| _mm256_set1_ps(bias[m]));
        for t in 0..T {
            // SAFETY: at + 8 <= n <= every row's length.
            let x = unsafe { _mm256_loadu_ps(rows[t].as_ptr().add(at)) };
            for m in 0..M {
                acc[m] = _mm256_fmadd_ps(wv[t][m], x, acc[m]);
            }
        }
        for m in 0..M {
            // SAFETY: at + 8 <= n, the length of every output.
            unsafe { _mm256_storeu_ps(optr[m].add(at), acc[m]) };
        }
        j += 8;
    }
}

/// # Safety
/// Every output `n >= 4` long, every row at least n.
#[cfg(target_arch = "aarch64")]
unsafe fn neon_m<const T: usize>(
    rows: &[&[f32]; T],
    w: &[[f32; M]; T],
    bias: &[f32; M],
    outs: [&mut [f32]; M],
) {
    use std::arch::aarch64::*;
    let n = outs[0].len();
    let optr: [*mut f32; M] = std::array::from_fn(|m| outs[m].as_ptr() as *mut f32);
    let mut j = 0;
    loop {
        let at = j.min(n - 4);
        // SAFETY: at + 4 <= n <= every row's and output's length.
        unsafe {
            let mut acc: [float32x4_t; M] = std::array::from_fn(|m| vdupq_n_f32(bias[m]));
            for t in 0..T {
                let x = vld1q_f32(rows[t].as_ptr().add(at));
                let wt = vld1q_f32(w[t].as_ptr());
                acc[0] = vfmaq_laneq_f32::<0>(acc[0], x, wt);
                acc[1] = vfmaq_laneq_f32::<1>(acc[1], x, wt);
                acc[2] = vfmaq_laneq_f32::<2>(acc[2], x, wt);
                acc[3] = vfmaq_laneq_f32::<3>(acc[3], x, wt);
            }
            for m in 0..M {
                vst1q_f32(optr[m].add(at), acc[m]);
            }
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
        let n = out.len() / C8;
        // Q positions at a time: Q independent accumulator chains keep both
        // FMA units busy despite their latency.
        #[inline(always)]
        unsafe fn block<const Q: usize, const T: usize>(
            xp: *const f32,
            offs: &[usize; T],
            step: usize,
            wv: &[__m256; T],
            b: __m256,
            p: usize,
            out: *mut f32,
        ) {
            // SAFETY: as for window8_avx2, for positions p..p + Q.
            unsafe {
                let mut acc = [b; Q];
                for t in 0..T {
                    for (q, a) in acc.iter_mut().enumerate() {
                        let g = _mm256_loadu_ps(xp.add(((p + q) * step + offs[t]) * C8));
                        *a = _mm256_fmadd_ps(wv[t], g, *a);
                    }
                }
                for (q, a) in acc.iter().enumerate() {
                    _mm256_storeu_ps(out.add((p + q) * C8), *a);
                }
            }
        }
        let mut p = 0;
        while p + 8 <= n {
            block::<8, T>(xp, offs, step, &wv, b, p, out.as_mut_ptr());
            p += 8;
        }
        if p + 4 <= n {
            block::<4, T>(xp, offs, step, &wv, b, p, out.as_mut_ptr());
            p += 4;
        }
        for p in p..n {
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
    fn tap_sum_m_matches_scalar() {
        for n in [1, 3, 4, 7, 8, 13, 16, 29, 112] {
            let rows: Vec<Vec<f32>> = (0..27)
                .map(|t| {
                    (0..n + 2)
                        .map(|j| ((j * 5 + t * 7) % 13) as f32 - 6.0)
                        .collect()
                })
                .collect();
            let refs: [&[f32]; 27] = std::array::from_fn(|t| &rows[t][..]);
            let w: [[f32; M]; 27] =
                std::array::from_fn(|t| std::array::from_fn(|m| (t * M + m) as f32 * 0.01 - 0.5));
            let bias: [f32; M] = std::array::from_fn(|m| m as f32);
            let mut got = vec![vec![f32::NAN; n]; M];
            let [a, b, c, d] = &mut got[..] else {
                unreachable!()
            };
            tap_sum_m(&refs, &w, &bias, [a, b, c, d]);
            for m in 0..M {
                let wm: [f32; 27] = std::array::from_fn(|t| w[t][m]);
                let mut want = vec![0.0; n];
                scalar(&refs, &wm, bias[m], &mut want);
                for j in 0..n {
                    let (g, e) = (got[m][j], want[j]);
                    assert!(
                        (g - e).abs() <= 1e-5 * e.abs().max(1.0),
                        "n={n} m={m} j={j}"
                    );
                }
            }
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
