//! Einsum by direct summation over every letter's range: exact, and fast
//! enough for the small contractions models use it for.

use super::{Ctx, Op, OpResult};
use crate::ir::einsum;
use crate::tensor::{Tensor, TensorData};
use std::collections::HashMap;

pub struct Einsum(pub String);

impl Op for Einsum {
    fn run(&self, _: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        let ranks: Vec<usize> = inputs.iter().map(|t| t.rank()).collect();
        let e = einsum::parse(&self.0, &ranks)?;
        // The size of every letter (1-dims broadcast).
        let mut size: HashMap<char, usize> = HashMap::new();
        for (t, letters) in inputs.iter().zip(&e.inputs) {
            for (&d, c) in t.shape().iter().zip(letters) {
                let s = size.entry(*c).or_insert(d);
                if *s == 1 {
                    *s = d;
                } else if d != 1 && d != *s {
                    return Err(format!("letter '{c}' stands for both {s} and {d}"));
                }
            }
        }
        let mut letters: Vec<char> = e.output.clone();
        for l in e.inputs.iter().flatten() {
            if !letters.contains(l) {
                letters.push(*l);
            }
        }
        let sizes: Vec<usize> = letters.iter().map(|c| size[c]).collect();
        // Per operand, the stride each letter moves it by (0 when broadcast).
        let strides: Vec<Vec<usize>> = inputs
            .iter()
            .zip(&e.inputs)
            .map(|(t, ls)| {
                let st = crate::backend::cpu::util::strides(t.shape());
                letters
                    .iter()
                    .map(|c| {
                        ls.iter()
                            .enumerate()
                            .filter(|(i, l)| *l == c && t.shape()[*i] != 1)
                            .map(|(i, _)| st[i])
                            .sum()
                    })
                    .collect()
            })
            .collect();
        let out_dims: Vec<usize> = e.output.iter().map(|c| size[c]).collect();
        let out_len: usize = out_dims.iter().product();
        let inner: usize = sizes[e.output.len()..].iter().product();
        let vals: Vec<Vec<f64>> = inputs.iter().map(|t| t.to_f64_vec()).collect();
        let mut out = vec![0f64; out_len];
        let mut idx = vec![0usize; letters.len()];
        for o in out.iter_mut().take(out_len) {
            for _ in 0..inner {
                let mut p = 1f64;
                for (v, st) in vals.iter().zip(&strides) {
                    let off: usize = idx.iter().zip(st).map(|(i, s)| i * s).sum();
                    p *= v[off];
                }
                *o += p;
                // Advance the summed letters, then (on wrap) the output ones.
                let mut d = letters.len();
                while d > 0 {
                    d -= 1;
                    idx[d] += 1;
                    if idx[d] < sizes[d] {
                        break;
                    }
                    idx[d] = 0;
                }
            }
        }
        let first = inputs.first().ok_or("no operands")?;
        let data = match first.data() {
            TensorData::F32(_) => TensorData::F32(out.into_iter().map(|x| x as f32).collect()),
            TensorData::F16(_) => {
                TensorData::F16(out.into_iter().map(half::f16::from_f64).collect())
            }
            TensorData::I32(_) => TensorData::I32(out.into_iter().map(|x| x as i32).collect()),
            TensorData::I64(_) => TensorData::I64(out.into_iter().map(|x| x as i64).collect()),
            TensorData::U8(_) => TensorData::U8(out.into_iter().map(|x| x as u8).collect()),
            TensorData::Bool(_) => return Err("einsum does not take bool".into()),
        };
        Ok(vec![Tensor::new(out_dims, data).map_err(|e| e.to_string())?])
    }
}
