//! Reduce and Softmax layers.

use super::{f32_data, float_tensor, Ctx, Op, OpResult};
use crate::backend::cpu::util::{split_at_axis, strides};
use crate::ir::ReduceOp;
use crate::tensor::{Tensor, TensorData};
use rayon::prelude::*;

pub struct Reduce {
    pub op: ReduceOp,
    pub axes: Vec<usize>,
    pub keep_dims: bool,
}

impl Reduce {
    fn out_dims(&self, dims: &[usize]) -> (Vec<usize>, Vec<usize>) {
        let kept: Vec<usize> = dims
            .iter()
            .enumerate()
            .map(|(i, &d)| if self.axes.contains(&i) { 1 } else { d })
            .collect();
        let shape = if self.keep_dims {
            kept.clone()
        } else {
            dims.iter()
                .enumerate()
                .filter(|(i, _)| !self.axes.contains(i))
                .map(|(_, &d)| d)
                .collect()
        };
        (kept, shape)
    }

    /// Folds every input element into its output slot with `f`, starting from `init`.
    fn fold<T: Copy + Sync, A: Copy + Send + Sync>(
        &self,
        v: &[T],
        dims: &[usize],
        init: A,
        f: impl Fn(A, T) -> A + Sync,
    ) -> Vec<A> {
        let (kept, _) = self.out_dims(dims);
        let ostr = strides(&kept);
        // Map each input dim to its output stride (0 on reduced axes).
        let map: Vec<usize> = (0..dims.len())
            .map(|i| if self.axes.contains(&i) { 0 } else { ostr[i] })
            .collect();
        let mut acc = vec![init; kept.iter().product()];
        // Reducing only trailing axes: each output is one contiguous run.
        let first_reduced = self.axes.iter().copied().min().unwrap_or(dims.len());
        let trailing = (first_reduced..dims.len()).all(|a| self.axes.contains(&a));
        if trailing {
            let run: usize = dims[first_reduced..].iter().product();
            if run > 0 {
                acc.par_iter_mut()
                    .zip(v.par_chunks(run))
                    .with_min_len((4096 / run).max(1))
                    .for_each(|(slot, chunk)| {
                        *slot = chunk.iter().fold(*slot, |a, &x| f(a, x));
                    });
            }
            return acc;
        }
        crate::backend::cpu::util::for_each_offset(dims, [&map], |i, [o]| acc[o] = f(acc[o], v[i]));
        acc
    }
}

impl Reduce {
    /// The length of the contiguous run each output sums, when the reduced
    /// axes are exactly the trailing ones.
    fn trailing_run(&self, dims: &[usize]) -> Option<usize> {
        let first = self.axes.iter().copied().min()?;
        (first..dims.len())
            .all(|a| self.axes.contains(&a))
            .then(|| dims[first..].iter().product())
    }
}

/// The sum of `v` in f64, over eight independent lanes so that it is not one
/// long chain of dependent additions.
fn sum_f64(v: &[f32]) -> f64 {
    let mut lanes = [0f64; 8];
    let chunks = v.chunks_exact(8);
    let tail = chunks.remainder();
    for c in chunks {
        for (l, &x) in lanes.iter_mut().zip(c) {
            *l += x as f64;
        }
    }
    lanes.iter().sum::<f64>() + tail.iter().map(|&x| x as f64).sum::<f64>()
}

impl Op for Reduce {
    fn run(&self, _: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        let x = inputs[0];
        let dims = x.shape();
        let (_, shape) = self.out_dims(dims);
        let count: usize = self.axes.iter().map(|&a| dims[a]).product();
        let data = match x.data() {
            TensorData::F32(_) | TensorData::F16(_) => {
                let v = f32_data(x)?;
                // Sums accumulate in f64: means over large planes stay within 1e-6.
                let out: Vec<f32> = match self.op {
                    ReduceOp::Sum | ReduceOp::Avg if self.trailing_run(dims).is_some() => {
                        let run = self.trailing_run(dims).unwrap_or(1).max(1);
                        let scale = if self.op == ReduceOp::Avg {
                            1.0 / count as f64
                        } else {
                            1.0
                        };
                        let mut out = vec![0f32; v.len() / run];
                        out.par_iter_mut()
                            .zip(v.par_chunks(run))
                            .with_min_len((4096 / run).max(1))
                            .for_each(|(o, chunk)| *o = (sum_f64(chunk) * scale) as f32);
                        out
                    }
                    ReduceOp::Sum => self
                        .fold(&v, dims, 0f64, |a, x| a + x as f64)
                        .into_iter()
                        .map(|s| s as f32)
                        .collect(),
                    ReduceOp::Avg => self
                        .fold(&v, dims, 0f64, |a, x| a + x as f64)
                        .into_iter()
                        .map(|s| (s / count as f64) as f32)
                        .collect(),
                    ReduceOp::Prod => self.fold(&v, dims, 1f32, |a, x| a * x),
                    ReduceOp::Max => self.fold(&v, dims, f32::NEG_INFINITY, |a, x| {
                        if x > a || x.is_nan() {
                            x
                        } else {
                            a
                        }
                    }),
                    ReduceOp::Min => self.fold(&v, dims, f32::INFINITY, |a, x| {
                        if x < a || x.is_nan() {
                            x
                        } else {
                            a
                        }
                    }),
                };
                return Ok(vec![float_tensor(x.dtype(), shape, out)?]);
            }
            TensorData::I64(v) => TensorData::I64(self.int_reduce(v, dims, count)?),
            TensorData::I32(v) => {
                let w: Vec<i64> = v.iter().map(|&a| a as i64).collect();
                TensorData::I32(
                    self.int_reduce(&w, dims, count)?
                        .into_iter()
                        .map(|a| a as i32)
                        .collect(),
                )
            }
            TensorData::U8(v) => {
                let w: Vec<i64> = v.iter().map(|&a| a as i64).collect();
                TensorData::U8(
                    self.int_reduce(&w, dims, count)?
                        .into_iter()
                        .map(|a| a as u8)
                        .collect(),
                )
            }
            // Max of bools is "any", min is "all".
            TensorData::Bool(v) => {
                let out = match self.op {
                    ReduceOp::Max => self.fold(v, dims, false, |a, x| a || x),
                    ReduceOp::Min => self.fold(v, dims, true, |a, x| a && x),
                    op => return Err(format!("{op:?} does not take bool tensors")),
                };
                TensorData::Bool(out)
            }
        };
        Ok(vec![Tensor::new(shape, data).map_err(|e| e.to_string())?])
    }
}

impl Reduce {
    fn int_reduce(&self, v: &[i64], dims: &[usize], count: usize) -> Result<Vec<i64>, String> {
        Ok(match self.op {
            ReduceOp::Sum => self.fold(v, dims, 0i64, |a, x| a.wrapping_add(x)),
            ReduceOp::Avg => self
                .fold(v, dims, 0i64, |a, x| a.wrapping_add(x))
                .into_iter()
                .map(|s| s.checked_div(count as i64).unwrap_or(0))
                .collect(),
            ReduceOp::Prod => self.fold(v, dims, 1i64, |a, x| a.wrapping_mul(x)),
            ReduceOp::Max => self.fold(v, dims, i64::MIN, |a, x| a.max(x)),
            ReduceOp::Min => self.fold(v, dims, i64::MAX, |a, x| a.min(x)),
        })
    }
}

pub struct Softmax {
    pub axis: usize,
}

impl Op for Softmax {
    fn run(&self, _: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        let x = inputs[0];
        let (outer, len, inner) = split_at_axis(x.shape(), self.axis);
        let mut v = f32_data(x)?.into_owned();
        if len > 0 && inner > 0 {
            v.par_chunks_mut(len * inner).for_each(|block| {
                for j in 0..inner {
                    let mut m = f32::NEG_INFINITY;
                    for i in 0..len {
                        m = m.max(block[i * inner + j]);
                    }
                    let mut s = 0f32;
                    for i in 0..len {
                        let e = (block[i * inner + j] - m).exp();
                        block[i * inner + j] = e;
                        s += e;
                    }
                    for i in 0..len {
                        block[i * inner + j] /= s;
                    }
                }
            });
        }
        debug_assert!(outer * len * inner == v.len());
        Ok(vec![float_tensor(x.dtype(), x.shape().to_vec(), v)?])
    }
}
