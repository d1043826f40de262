//! Float buffers recycled between layers and runs: a value's memory returns
//! here when its last reader is done, and the next layer that needs as much
//! takes it back, so a context's steady state allocates nothing.

use std::sync::Mutex;

/// Buffers kept at most; beyond this the smallest are freed.
const MAX_KEPT: usize = 64;

/// Buffers handed out whose initialized length is remembered, at most.
const MAX_TRACKED: usize = 256;

#[derive(Default)]
pub struct Buffers {
    pool: Mutex<Pool>,
}

#[derive(Default)]
struct Pool {
    /// Free buffers, each with how many of its floats have been written
    /// (a buffer stays written when it is truncated: floats have no drop).
    free: Vec<(Vec<f32>, usize)>,
    /// (address, written length) of buffers handed out, so that a buffer
    /// taken short and given back keeps counting as written as far as it was.
    out: Vec<(usize, usize)>,
}

impl Buffers {
    /// A buffer of `n` floats with unspecified (initialized) contents: the
    /// smallest free one that fits, else a new one. Only floats never
    /// written before are zeroed: a layer's output buffer is not cleared on
    /// every run.
    pub fn take(&self, n: usize) -> Vec<f32> {
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let best = pool
            .free
            .iter()
            .enumerate()
            .filter(|(_, (v, _))| v.capacity() >= n)
            .min_by_key(|(_, (v, _))| v.capacity())
            .map(|(i, _)| i);
        let (mut v, written) = match best {
            Some(i) => pool.free.swap_remove(i),
            None => (Vec::with_capacity(n), 0),
        };
        let known = written.min(n);
        // SAFETY: the first `written` floats of this allocation were written
        // before (and floats are valid for any bits), and known <= capacity.
        unsafe { v.set_len(known) };
        v.resize(n, 0.0);
        if pool.out.len() >= MAX_TRACKED {
            pool.out.remove(0);
        }
        pool.out.push((v.as_ptr() as usize, written.max(n)));
        v
    }

    /// Returns a buffer for reuse.
    pub fn give(&self, v: Vec<f32>) {
        if v.capacity() == 0 {
            return;
        }
        let mut pool = self.pool.lock().unwrap_or_else(|e| e.into_inner());
        let addr = v.as_ptr() as usize;
        let mut written = v.len();
        if let Some(i) = pool.out.iter().position(|&(a, _)| a == addr) {
            written = written.max(pool.out.swap_remove(i).1);
        }
        let written = written.min(v.capacity());
        pool.free.push((v, written));
        if pool.free.len() > MAX_KEPT {
            let smallest = pool
                .free
                .iter()
                .enumerate()
                .min_by_key(|(_, (v, _))| v.capacity())
                .map(|(i, _)| i)
                .unwrap_or(0);
            pool.free.swap_remove(smallest);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reuses_the_smallest_fit() {
        let b = Buffers::default();
        let big = b.take(1000);
        let small = b.take(10);
        let (pb, ps) = (big.as_ptr(), small.as_ptr());
        b.give(big);
        b.give(small);
        let v = b.take(8);
        assert_eq!((v.as_ptr(), v.len()), (ps, 8));
        let w = b.take(900);
        assert_eq!((w.as_ptr(), w.len()), (pb, 900));
        let fresh = b.take(5000);
        assert_eq!(fresh.len(), 5000);
    }

    #[test]
    fn a_buffer_taken_short_keeps_its_contents_when_taken_long_again() {
        let b = Buffers::default();
        let mut v = b.take(100);
        v.iter_mut().enumerate().for_each(|(i, x)| *x = i as f32);
        let p = v.as_ptr();
        b.give(v);
        let short = b.take(10);
        assert_eq!(short.as_ptr(), p);
        b.give(short);
        // Written as far as 100 before: nothing is cleared, nothing lost.
        let long = b.take(100);
        assert_eq!(long.as_ptr(), p);
        assert_eq!(long[99], 99.0);
        b.give(long);
        // Beyond what was ever written, a fresh buffer is zeroed.
        let fresh = b.take(200);
        assert!(fresh.iter().all(|&x| x == 0.0));
    }
}
