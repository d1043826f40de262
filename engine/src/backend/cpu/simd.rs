//! Running loops with the vector instructions this CPU has. The crate is
//! built for the baseline of its target (SSE2 on x86-64), so that one binary
//! runs everywhere; hot loops are wrapped in [`fast`], which re-enters them
//! through a function compiled for AVX2 and FMA when the CPU has both, so the
//! compiler vectorizes them 8 wide (NEON is baseline on aarch64 already).

/// Whether AVX2 and FMA are usable here (checked once).
#[cfg(target_arch = "x86_64")]
pub(crate) fn has_avx2() -> bool {
    use std::sync::OnceLock;
    static YES: OnceLock<bool> = OnceLock::new();
    *YES.get_or_init(|| {
        std::arch::is_x86_feature_detected!("avx2") && std::arch::is_x86_feature_detected!("fma")
    })
}

/// Runs `f`, compiled with AVX2 and FMA where the CPU has them. Pass the
/// loop itself as `#[inline(always)] || ...` (the [`fast!`](crate::fast)
/// macro does): it must be inlined into the wrapper to be compiled for it.
#[inline(always)]
pub fn fast<R>(f: impl FnOnce() -> R) -> R {
    #[cfg(target_arch = "x86_64")]
    {
        if has_avx2() {
            // SAFETY: the CPU supports avx2 and fma, checked above.
            return unsafe { with_avx2(f) };
        }
    }
    f()
}

#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn with_avx2<R>(f: impl FnOnce() -> R) -> R {
    f()
}

/// Runs the block compiled with AVX2 and FMA where the CPU has them (see
/// [`fast`]); everything it calls must be `#[inline(always)]` too.
#[macro_export]
macro_rules! fast {
    ($($body:tt)*) => {
        $crate::backend::cpu::simd::fast(#[inline(always)] || { $($body)* })
    };
}

/// A thread's scratch buffer, moved out of its thread-local slot while a
/// task uses it and put back when dropped. Using it instead of
/// `LocalKey::with` keeps the task's loops out of a separate closure, which
/// would not be compiled by [`fast`]'s wrapper.
pub struct Scratch {
    key: &'static std::thread::LocalKey<std::cell::RefCell<Vec<f32>>>,
    buf: Vec<f32>,
}

impl Scratch {
    /// The buffer of `key` on this thread, at least `len` long.
    #[inline(always)]
    pub fn take(
        key: &'static std::thread::LocalKey<std::cell::RefCell<Vec<f32>>>,
        len: usize,
    ) -> Self {
        let mut buf = key.with(|c| std::mem::take(&mut *c.borrow_mut()));
        if buf.len() < len {
            buf.resize(len, 0.0);
        }
        Scratch { key, buf }
    }
}

impl std::ops::Deref for Scratch {
    type Target = [f32];

    fn deref(&self) -> &[f32] {
        &self.buf
    }
}

impl std::ops::DerefMut for Scratch {
    fn deref_mut(&mut self) -> &mut [f32] {
        &mut self.buf
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let buf = std::mem::take(&mut self.buf);
        self.key.with(|c| *c.borrow_mut() = buf);
    }
}

/// Copies a run of any length without a library call for short ones
/// (padding and im2col copy many short rows): whole vectors, the last one
/// overlapping the one before where the length is not a multiple of 8.
///
/// # Panics
/// If `s` is shorter than `d`.
#[inline(always)]
pub fn copy_run(d: &mut [f32], s: &[f32]) {
    let n = d.len();
    let s = &s[..n];
    if n >= 256 {
        d.copy_from_slice(s);
    } else if n >= 8 {
        let mut i = 0;
        while i + 8 <= n {
            d[i..i + 8].copy_from_slice(&s[i..i + 8]);
            i += 8;
        }
        if i < n {
            d[n - 8..].copy_from_slice(&s[n - 8..]);
        }
    } else {
        for (a, b) in d.iter_mut().zip(s) {
            *a = *b;
        }
    }
}

/// Zeroes the first `lead` and the last `trail` values of `row`, without a
/// library call when both are at most 16 and the row holds 16 (the border
/// of a padded row, before its interior is written over the rest; it may
/// zero more than asked).
#[inline(always)]
pub fn zero_ends(row: &mut [f32], lead: usize, trail: usize) {
    let n = row.len();
    if n >= 8 && lead <= 8 && trail <= 8 {
        row[..8].copy_from_slice(&[0.0; 8]);
        row[n - 8..].copy_from_slice(&[0.0; 8]);
    } else if n >= 16 && lead <= 16 && trail <= 16 {
        row[..16].copy_from_slice(&[0.0; 16]);
        row[n - 16..].copy_from_slice(&[0.0; 16]);
    } else {
        row[..lead].fill(0.0);
        row[n - trail..].fill(0.0);
    }
}
