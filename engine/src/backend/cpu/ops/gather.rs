//! Gather: default (ONNX Gather) and element (ONNX GatherElements) modes.

use super::{Ctx, Op, OpResult};
use crate::backend::cpu::util::{split_at_axis, strides};
use crate::ir::GatherMode;
use crate::tensor::{Tensor, TensorData};
use crate::with_data;

pub struct Gather {
    pub axis: usize,
    pub mode: GatherMode,
}

/// Normalizes a possibly negative index into `0..n`.
pub(super) fn norm(i: i64, n: usize) -> Result<usize, String> {
    let j = if i < 0 { i + n as i64 } else { i };
    usize::try_from(j)
        .ok()
        .filter(|&j| j < n)
        .ok_or_else(|| format!("index {i} is out of range for a dim of {n}"))
}

impl Op for Gather {
    fn run(&self, _: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        let (x, idx) = (inputs[0], inputs[1]);
        let dims = x.shape();
        let axis = self.axis;
        let indices = idx.to_i64_vec();
        let n = dims[axis];
        let (shape, data) = match self.mode {
            GatherMode::Default => {
                let (outer, _, inner) = split_at_axis(dims, axis);
                let ix: Vec<usize> = indices
                    .iter()
                    .map(|&i| norm(i, n))
                    .collect::<Result<_, _>>()?;
                let mut shape = dims[..axis].to_vec();
                shape.extend_from_slice(idx.shape());
                shape.extend_from_slice(&dims[axis + 1..]);
                let data = with_data!(x.data(), v => {
                    let mut out = Vec::with_capacity(outer * ix.len() * inner);
                    for o in 0..outer {
                        for &i in &ix {
                            let start = (o * n + i) * inner;
                            out.extend_from_slice(&v[start..start + inner]);
                        }
                    }
                    TensorData::from(out)
                });
                (shape, data)
            }
            GatherMode::Element => {
                let id = idx.shape();
                if id.len() != dims.len() {
                    return Err("indices must have the data's rank".into());
                }
                let ds = strides(dims);
                let is = strides(id);
                let mut offs = Vec::with_capacity(indices.len());
                for (lin, &i) in indices.iter().enumerate() {
                    let mut off = 0;
                    for d in 0..id.len() {
                        let c = (lin / is[d]) % id[d];
                        let c = if d == axis {
                            norm(i, n)?
                        } else {
                            if c >= dims[d] {
                                return Err("indices exceed the data's dims".into());
                            }
                            c
                        };
                        off += c * ds[d];
                    }
                    offs.push(off);
                }
                let data = with_data!(x.data(), v => TensorData::from(offs.iter().map(|&o| v[o]).collect::<Vec<_>>()));
                (id.to_vec(), data)
            }
        };
        Ok(vec![Tensor::new(shape, data).map_err(|e| e.to_string())?])
    }
}
