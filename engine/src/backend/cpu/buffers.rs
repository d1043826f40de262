//! Float buffers recycled between layers and runs: a value's memory returns
//! here when its last reader is done, and the next layer that needs as much
//! takes it back, so a context's steady state allocates nothing.

use std::sync::Mutex;

/// Buffers kept at most; beyond this the smallest are freed.
const MAX_KEPT: usize = 64;

#[derive(Default)]
pub struct Buffers {
    free: Mutex<Vec<Vec<f32>>>,
}

impl Buffers {
    /// A buffer of `n` floats with unspecified (initialized) contents: the
    /// smallest free one that fits, else a new one.
    pub fn take(&self, n: usize) -> Vec<f32> {
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        let best = free
            .iter()
            .enumerate()
            .filter(|(_, v)| v.capacity() >= n)
            .min_by_key(|(_, v)| v.capacity())
            .map(|(i, _)| i);
        match best {
            Some(i) => {
                let mut v = free.swap_remove(i);
                drop(free);
                if v.len() >= n {
                    v.truncate(n);
                } else {
                    v.resize(n, 0.0);
                }
                v
            }
            None => {
                drop(free);
                vec![0.0; n]
            }
        }
    }

    /// Returns a buffer for reuse.
    pub fn give(&self, v: Vec<f32>) {
        if v.capacity() == 0 {
            return;
        }
        let mut free = self.free.lock().unwrap_or_else(|e| e.into_inner());
        free.push(v);
        if free.len() > MAX_KEPT {
            let smallest = free
                .iter()
                .enumerate()
                .min_by_key(|(_, v)| v.capacity())
                .map(|(i, _)| i)
                .unwrap_or(0);
            free.swap_remove(smallest);
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
}
