//! GEMM micro-kernels: `tile[MR][NR] = sum_k a[k][0..MR] * b[k][0..NR]` over
//! packed panels. One generic kernel, compiled per instruction set with the
//! tile size that fills that set's registers; the best one this CPU has is
//! picked once at run time.

use std::sync::OnceLock;

/// A micro-kernel and the tile shape and depth blocking it wants.
pub struct Kernel {
    pub name: &'static str,
    pub mr: usize,
    pub nr: usize,
    /// Depth (k) block: keeps an NR-column panel of B in L1.
    pub kc: usize,
    /// # Safety
    /// `a` must point to `kc * mr` readable floats, `b` to `kc * nr`, and
    /// `tile` to `mr * nr` writable ones.
    pub run: unsafe fn(kc: usize, a: *const f32, b: *const f32, tile: *mut f32),
    /// The same sums written (or added) straight into C with the epilogue
    /// applied in registers, for full tiles; kernels without one go through
    /// the tile buffer.
    pub direct: Option<unsafe fn(kc: usize, a: *const f32, b: *const f32, to: &Direct)>,
}

/// Where a direct kernel puts a full MR x NR tile: row r, column j at
/// `c + r * ldc + j`. Only the AVX-512 kernel has a direct form, so other
/// targets build these and never read them.
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub struct Direct {
    pub c: *mut f32,
    pub ldc: usize,
    /// Add to what C holds (a later depth block) rather than overwrite it.
    pub accumulate: bool,
    /// Apply the epilogue (the last depth block): add `bias[r]` (when not
    /// null) and `res[r * ldr + j]` (when not null), then clamp to
    /// `[lo, hi]` when `clamp`.
    pub finish: bool,
    pub bias: *const f32,
    pub res: *const f32,
    pub ldr: usize,
    pub clamp: bool,
    pub lo: f32,
    pub hi: f32,
}

/// The portable kernel body, left to the compiler to vectorize.
#[inline(always)]
unsafe fn micro<const MR: usize, const NR: usize>(
    kc: usize,
    a: *const f32,
    b: *const f32,
    tile: *mut f32,
) {
    let mut acc = [[0f32; NR]; MR];
    for k in 0..kc {
        // SAFETY: the caller guarantees kc panels of MR (a) and NR (b) floats.
        let (ak, bk) = unsafe {
            (
                &*(a.add(k * MR) as *const [f32; MR]),
                &*(b.add(k * NR) as *const [f32; NR]),
            )
        };
        for r in 0..MR {
            let x = ak[r];
            for j in 0..NR {
                acc[r][j] += x * bk[j];
            }
        }
    }
    for (r, row) in acc.iter().enumerate() {
        for (j, v) in row.iter().enumerate() {
            // SAFETY: the caller guarantees MR * NR writable floats.
            unsafe { *tile.add(r * NR + j) = *v };
        }
    }
}

/// The tile kernel: the direct one writing a plain 8 x 32 tile.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn avx512(kc: usize, a: *const f32, b: *const f32, tile: *mut f32) {
    let to = Direct {
        c: tile,
        ldc: 32,
        accumulate: false,
        finish: false,
        bias: std::ptr::null(),
        res: std::ptr::null(),
        ldr: 0,
        clamp: false,
        lo: 0.0,
        hi: 0.0,
    };
    // SAFETY: forwarded contract; `to` is a full 8 x 32 tile at pitch 32.
    unsafe { avx512_direct(kc, a, b, &to) }
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn avx512_direct(kc: usize, a: *const f32, b: *const f32, to: &Direct) {
    use std::arch::x86_64::*;
    // 8 rows x 2 vectors of 16: 16 accumulators, 2 B vectors, 1 broadcast.
    macro_rules! kernel {
        ($($r:literal),*) => {{
            let z = _mm512_setzero_ps();
            let mut c = [[z; 2]; 8];
            for k in 0..kc {
                // SAFETY: the caller guarantees kc*8 floats at a and kc*32 at b.
                unsafe {
                    let (bp, ap) = (b.add(k * 32), a.add(k * 8));
                    let (b0, b1) = (_mm512_loadu_ps(bp), _mm512_loadu_ps(bp.add(16)));
                    $(
                        let x = _mm512_set1_ps(*ap.add($r));
                        c[$r][0] = _mm512_fmadd_ps(x, b0, c[$r][0]);
                        c[$r][1] = _mm512_fmadd_ps(x, b1, c[$r][1]);
                    )*
                }
            }
            let (lo, hi) = (_mm512_set1_ps(to.lo), _mm512_set1_ps(to.hi));
            // SAFETY: the caller guarantees an 8 x 32 tile of C at to.c (row
            // pitch ldc), 8 biases and an 8 x 32 residual tile where given.
            unsafe {
                $(
                    let row = to.c.add($r * to.ldc);
                    let (mut v0, mut v1) = (c[$r][0], c[$r][1]);
                    if to.accumulate {
                        v0 = _mm512_add_ps(v0, _mm512_loadu_ps(row));
                        v1 = _mm512_add_ps(v1, _mm512_loadu_ps(row.add(16)));
                    }
                    if to.finish {
                        if !to.bias.is_null() {
                            let bv = _mm512_set1_ps(*to.bias.add($r));
                            v0 = _mm512_add_ps(v0, bv);
                            v1 = _mm512_add_ps(v1, bv);
                        }
                        if !to.res.is_null() {
                            let rp = to.res.add($r * to.ldr);
                            v0 = _mm512_add_ps(v0, _mm512_loadu_ps(rp));
                            v1 = _mm512_add_ps(v1, _mm512_loadu_ps(rp.add(16)));
                        }
                        if to.clamp {
                            // max(v, lo) maps NaN to lo, as f32::max does.
                            v0 = _mm512_min_ps(_mm512_max_ps(v0, lo), hi);
                            v1 = _mm512_min_ps(_mm512_max_ps(v1, lo), hi);
                        }
                    }
                    _mm512_storeu_ps(row, v0);
                    _mm512_storeu_ps(row.add(16), v1);
                )*
            }
        }};
    }
    kernel!(0, 1, 2, 3, 4, 5, 6, 7)
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2(kc: usize, a: *const f32, b: *const f32, tile: *mut f32) {
    use std::arch::x86_64::*;
    // 6 rows x 2 vectors of 8: 12 accumulators, 2 B vectors, 1 broadcast.
    macro_rules! kernel {
        ($($r:literal),*) => {{
            let z = _mm256_setzero_ps();
            let mut c = [[z; 2]; 6];
            for k in 0..kc {
                // SAFETY: the caller guarantees kc*6 floats at a and kc*16 at b.
                unsafe {
                    let (bp, ap) = (b.add(k * 16), a.add(k * 6));
                    let (b0, b1) = (_mm256_loadu_ps(bp), _mm256_loadu_ps(bp.add(8)));
                    $(
                        let x = _mm256_broadcast_ss(&*ap.add($r));
                        c[$r][0] = _mm256_fmadd_ps(x, b0, c[$r][0]);
                        c[$r][1] = _mm256_fmadd_ps(x, b1, c[$r][1]);
                    )*
                }
            }
            // SAFETY: the caller guarantees 6*16 writable floats at tile.
            unsafe {
                $(
                    _mm256_storeu_ps(tile.add($r * 16), c[$r][0]);
                    _mm256_storeu_ps(tile.add($r * 16 + 8), c[$r][1]);
                )*
            }
        }};
    }
    kernel!(0, 1, 2, 3, 4, 5)
}

#[cfg(target_arch = "aarch64")]
unsafe fn neon(kc: usize, a: *const f32, b: *const f32, tile: *mut f32) {
    use std::arch::aarch64::*;
    // 8 rows x 3 vectors of 4: 24 accumulators; A as two vectors whose lanes
    // feed fused multiply-adds by element.
    macro_rules! kernel {
        ($(($r:literal, $half:literal, $lane:literal)),*) => {{
            // SAFETY: NEON is baseline on aarch64.
            let z = unsafe { vdupq_n_f32(0.0) };
            let mut c = [[z; 3]; 8];
            for k in 0..kc {
                // SAFETY: the caller guarantees kc*8 floats at a and kc*12 at b.
                unsafe {
                    let (bp, ap) = (b.add(k * 12), a.add(k * 8));
                    let bv = [vld1q_f32(bp), vld1q_f32(bp.add(4)), vld1q_f32(bp.add(8))];
                    let av = [vld1q_f32(ap), vld1q_f32(ap.add(4))];
                    $(
                        c[$r][0] = vfmaq_laneq_f32::<$lane>(c[$r][0], bv[0], av[$half]);
                        c[$r][1] = vfmaq_laneq_f32::<$lane>(c[$r][1], bv[1], av[$half]);
                        c[$r][2] = vfmaq_laneq_f32::<$lane>(c[$r][2], bv[2], av[$half]);
                    )*
                }
            }
            // SAFETY: the caller guarantees 8*12 writable floats at tile.
            unsafe {
                $(
                    vst1q_f32(tile.add($r * 12), c[$r][0]);
                    vst1q_f32(tile.add($r * 12 + 4), c[$r][1]);
                    vst1q_f32(tile.add($r * 12 + 8), c[$r][2]);
                )*
            }
        }};
    }
    kernel!(
        (0, 0, 0),
        (1, 0, 1),
        (2, 0, 2),
        (3, 0, 3),
        (4, 1, 0),
        (5, 1, 1),
        (6, 1, 2),
        (7, 1, 3)
    )
}

#[allow(dead_code)]
unsafe fn portable(kc: usize, a: *const f32, b: *const f32, tile: *mut f32) {
    // SAFETY: forwarded contract.
    unsafe { micro::<4, 8>(kc, a, b, tile) }
}

/// The best kernel for this CPU (`JETRT_CPU_KERNEL=portable` forces the
/// portable one, to test it).
pub fn kernel() -> &'static Kernel {
    static K: OnceLock<Kernel> = OnceLock::new();
    K.get_or_init(|| {
        let forced = std::env::var("JETRT_CPU_KERNEL").ok();
        let k = select(forced.as_deref());
        log::debug!("cpu GEMM micro-kernel: {} ({}x{})", k.name, k.mr, k.nr);
        k
    })
}

fn select(forced: Option<&str>) -> Kernel {
    let portable = Kernel {
        name: "portable",
        mr: 4,
        nr: 8,
        kc: 256,
        run: portable,
        direct: None,
    };
    if forced == Some("portable") {
        return portable;
    }
    #[cfg(target_arch = "x86_64")]
    {
        if forced != Some("avx2") && std::arch::is_x86_feature_detected!("avx512f") {
            return Kernel {
                name: "avx512",
                mr: 8,
                nr: 32,
                kc: 256,
                run: avx512,
                direct: Some(avx512_direct),
            };
        }
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            return Kernel {
                name: "avx2",
                mr: 6,
                nr: 16,
                kc: 256,
                run: avx2,
                direct: None,
            };
        }
    }
    #[cfg(target_arch = "aarch64")]
    {
        return Kernel {
            name: "neon",
            mr: 8,
            nr: 12,
            kc: 256,
            run: neon,
            direct: None,
        };
    }
    #[allow(unreachable_code)]
    portable
}

/// Every kernel this CPU can run, for tests.
#[cfg(test)]
pub fn all() -> Vec<Kernel> {
    let mut v = vec![select(Some("portable"))];
    #[cfg(target_arch = "x86_64")]
    {
        if std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
        {
            v.push(select(Some("avx2")));
        }
    }
    let best = select(None);
    if !v.iter().any(|k| k.name == best.name) {
        v.push(best);
    }
    v
}
