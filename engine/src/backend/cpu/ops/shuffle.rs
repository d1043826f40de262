//! Shuffle: transpose, reshape, transpose.

use super::{Ctx, Op, OpResult};
use crate::backend::cpu::util::{permute_dims, transpose};
use crate::ir::ShuffleParams;
use crate::tensor::{Tensor, TensorData};
use crate::with_data;

pub struct Shuffle(pub ShuffleParams);

/// Resolves TensorRT reshape dims (0 copies, -1 infers) for `input` dims.
pub fn resolve_reshape(
    input: &[usize],
    target: &[i64],
    zero_copies: bool,
) -> Result<Vec<usize>, String> {
    let total: usize = input.iter().product();
    let mut out = Vec::with_capacity(target.len());
    let mut infer = None;
    for (i, &t) in target.iter().enumerate() {
        out.push(match t {
            0 if zero_copies => *input
                .get(i)
                .ok_or_else(|| format!("reshape dim {i} copies a dim the input lacks"))?,
            -1 if infer.is_none() => {
                infer = Some(i);
                1
            }
            t if t >= 0 => t as usize,
            t => return Err(format!("invalid reshape dim {t}")),
        });
    }
    let known: usize = out.iter().product();
    if let Some(i) = infer {
        if known == 0 || !total.is_multiple_of(known) {
            return Err(format!(
                "cannot reshape {total} elements with dims {target:?}"
            ));
        }
        out[i] = total / known;
    } else if known != total {
        return Err(format!("cannot reshape {total} elements into {out:?}"));
    }
    Ok(out)
}

fn permute(t: Tensor, perm: &[usize]) -> Result<Tensor, String> {
    if perm.iter().enumerate().all(|(i, &p)| i == p) {
        return Ok(t);
    }
    let dims = t.shape().to_vec();
    let out = permute_dims(&dims, perm);
    let data = with_data!(t.data(), v => TensorData::from(transpose(v, &dims, perm)));
    Tensor::new(out, data).map_err(|e| e.to_string())
}

impl Op for Shuffle {
    fn run(&self, _: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        let p = &self.0;
        let mut t = inputs[0].clone();
        if let Some(perm) = &p.first_transpose {
            t = permute(t, perm)?;
        }
        let target: Option<Vec<i64>> = match inputs.get(1) {
            Some(d) => Some(d.to_i64_vec()),
            None => p.reshape.clone(),
        };
        if let Some(target) = target {
            let dims = resolve_reshape(t.shape(), &target, p.zero_is_placeholder)?;
            t = t.reshaped(dims).map_err(|e| e.to_string())?;
        }
        if let Some(perm) = &p.second_transpose {
            t = permute(t, perm)?;
        }
        Ok(vec![t])
    }
}
