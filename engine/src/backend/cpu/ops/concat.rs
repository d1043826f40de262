//! Concatenation along one axis.

use super::{Ctx, Op, OpResult};
use crate::tensor::{Tensor, TensorData};

pub struct Concat {
    pub axis: usize,
}

/// Appends `src`'s elements in `block`-sized runs to `dst`'s runs: the
/// interleave that concatenation along an inner axis is.
fn interleave<T: Copy>(parts: &[(&[T], usize)], outer: usize) -> Vec<T> {
    let total: usize = parts.iter().map(|(v, _)| v.len()).sum();
    let mut out = Vec::with_capacity(total);
    for o in 0..outer {
        for (v, block) in parts {
            out.extend_from_slice(&v[o * block..(o + 1) * block]);
        }
    }
    out
}

impl Op for Concat {
    fn run(&self, ctx: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        let first = inputs[0];
        let dims = first.shape();
        let axis = self.axis;
        let mut out_dims = dims.to_vec();
        out_dims[axis] = 0;
        for t in inputs {
            let d = t.shape();
            if t.dtype() != first.dtype()
                || d.len() != dims.len()
                || d.iter()
                    .zip(dims)
                    .enumerate()
                    .any(|(i, (a, b))| i != axis && a != b)
            {
                return Err(format!(
                    "cannot concatenate {d:?} with {dims:?} along axis {axis}"
                ));
            }
            out_dims[axis] += d[axis];
        }
        let outer: usize = dims[..axis].iter().product();
        let inner: usize = dims[axis + 1..].iter().product();
        macro_rules! cat {
            ($variant:ident) => {{
                let parts: Vec<(&[_], usize)> = inputs
                    .iter()
                    .map(|t| match t.data() {
                        TensorData::$variant(v) => (v.as_slice(), t.shape()[axis] * inner),
                        _ => unreachable!("types checked above"),
                    })
                    .collect();
                TensorData::$variant(interleave(&parts, outer))
            }};
        }
        let data = match first.data() {
            TensorData::F32(_) => {
                // Into a recycled buffer: a fresh large one costs a page fault per
                // page on every run.
                let parts: Vec<(&[f32], usize)> = inputs
                    .iter()
                    .filter_map(|t| match t.data() {
                        TensorData::F32(v) => Some((v.as_slice(), t.shape()[axis] * inner)),
                        _ => None,
                    })
                    .collect();
                let mut out = ctx.take_f32(parts.iter().map(|(v, _)| v.len()).sum());
                let mut at = 0;
                for o in 0..outer {
                    for (v, block) in &parts {
                        out[at..at + block].copy_from_slice(&v[o * block..(o + 1) * block]);
                        at += block;
                    }
                }
                TensorData::F32(out)
            }
            TensorData::F16(_) => cat!(F16),
            TensorData::I32(_) => cat!(I32),
            TensorData::I64(_) => cat!(I64),
            TensorData::U8(_) => cat!(U8),
            TensorData::Bool(_) => cat!(Bool),
        };
        Ok(vec![Tensor::new(out_dims, data).map_err(|e| e.to_string())?])
    }
}
