//! Normalization (layer, instance and group norm) and cumulative sums.

use super::{f32_data, float_tensor, Ctx, Op, OpResult};
use crate::backend::cpu::util::{broadcast_strides, for_each_offset, split_at_axis};
use crate::backend::norm_rows::{self, Rows};
use crate::tensor::{Tensor, TensorData};
use rayon::prelude::*;

pub struct Normalization {
    pub axes: Vec<usize>,
    pub epsilon: f32,
    pub groups: usize,
}

/// Rows normalized per parallel task at least.
const ROWS_PER_TASK: usize = 16;

/// A normalization over trailing dims, as rows: each row's mean and
/// variance in float64 (as the general path), then one pass of
/// `(x - mean) * inv * scale + bias` in float32, rows in parallel.
fn norm_rows(
    xv: &[f32],
    r: Rows,
    eps: f32,
    (sv, bv): (&[f32], &[f32]),
    threads: usize,
) -> Vec<f32> {
    let mut out = vec![0f32; xv.len()];
    let n = r.cols as f64;
    let tasks = (r.rows / ROWS_PER_TASK).clamp(1, threads.max(1) * 4);
    let per = r.rows.div_ceil(tasks).max(1) * r.cols;
    let one = |(o, x): (&mut [f32], &[f32])| {
        for (o, x) in o.chunks_exact_mut(r.cols).zip(x.chunks_exact(r.cols)) {
            let mean = x.iter().map(|&v| v as f64).sum::<f64>() / n;
            let var = x
                .iter()
                .map(|&v| (v as f64 - mean) * (v as f64 - mean))
                .sum::<f64>()
                / n;
            let inv = (1.0 / (var + eps as f64).sqrt()) as f32;
            let mean = mean as f32;
            for (j, (o, &v)) in o.iter_mut().zip(x).enumerate() {
                *o = (v - mean) * inv * sv[j * r.scale_step] + bv[j * r.bias_step];
            }
        }
    };
    if tasks > 1 {
        out.par_chunks_mut(per)
            .zip(xv.par_chunks(per))
            .for_each(one);
    } else {
        one((&mut out, xv));
    }
    out
}

impl Op for Normalization {
    fn run(&self, ctx: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        let (x, scale, bias) = (inputs[0], inputs[1], inputs[2]);
        let dims = x.shape();
        let as_rows = norm_rows::rows(dims, &self.axes, self.groups, scale.shape(), bias.shape());
        if let Some(r) = as_rows.filter(|r| r.cols > 0) {
            let (xv, sv, bv) = (f32_data(x)?, f32_data(scale)?, f32_data(bias)?);
            let out = norm_rows(&xv, r, self.epsilon, (&sv, &bv), ctx.threads);
            return Ok(vec![float_tensor(x.dtype(), dims.to_vec(), out)?]);
        }
        self.general(x, scale, bias)
    }
}

impl Normalization {
    /// Any statistics split: a key per element, sums in float64.
    fn general(&self, x: &Tensor, scale: &Tensor, bias: &Tensor) -> OpResult {
        let dims = x.shape();
        let xv = f32_data(x)?;
        // Statistics group: same index on every non-normalized dim, and for
        // grouped norms, the same channel group.
        let cpg = if self.groups > 1 {
            dims[1] / self.groups
        } else {
            1
        };
        let key_dims: Vec<usize> = dims
            .iter()
            .enumerate()
            .map(|(i, &d)| {
                if self.axes.contains(&i) {
                    1
                } else if i == 1 && self.groups > 1 {
                    self.groups
                } else {
                    d
                }
            })
            .collect();
        let key_strides = crate::backend::cpu::util::strides(&key_dims);
        let map: Vec<usize> = (0..dims.len())
            .map(|i| if key_dims[i] == 1 { 0 } else { key_strides[i] })
            .collect();
        let groups: usize = key_dims.iter().product();
        let mut keys = Vec::with_capacity(xv.len());
        if self.groups > 1 {
            // The channel coordinate counts groups, not channels.
            let ch_stride: usize = dims[2..].iter().product();
            let batch_stride = dims[1] * ch_stride;
            for i in 0..xv.len() {
                let n = i / batch_stride;
                let c = (i / ch_stride) % dims[1];
                let mut k = n * key_strides[0] + (c / cpg) * key_strides[1];
                let rest = i % ch_stride;
                let mut r = rest;
                for d in (2..dims.len()).rev() {
                    let idx = r % dims[d];
                    r /= dims[d];
                    k += idx * map[d];
                }
                keys.push(k);
            }
        } else {
            for_each_offset(dims, [&map], |_, [k]| keys.push(k));
        }
        let mut sum = vec![0f64; groups];
        let mut cnt = vec![0usize; groups];
        for (v, &k) in xv.iter().zip(&keys) {
            sum[k] += *v as f64;
            cnt[k] += 1;
        }
        let mean: Vec<f64> = sum
            .iter()
            .zip(&cnt)
            .map(|(s, &c)| s / c.max(1) as f64)
            .collect();
        let mut var = vec![0f64; groups];
        for (v, &k) in xv.iter().zip(&keys) {
            let d = *v as f64 - mean[k];
            var[k] += d * d;
        }
        let inv: Vec<f64> = var
            .iter()
            .zip(&cnt)
            .map(|(v, &c)| 1.0 / (v / c.max(1) as f64 + self.epsilon as f64).sqrt())
            .collect();
        let (sv, bv) = (f32_data(scale)?, f32_data(bias)?);
        let (ss, bs) = (
            broadcast_strides(scale.shape(), dims),
            broadcast_strides(bias.shape(), dims),
        );
        let mut out = vec![0f32; xv.len()];
        for_each_offset(dims, [&ss, &bs], |i, [si, bi]| {
            let k = keys[i];
            out[i] = ((xv[i] as f64 - mean[k]) * inv[k]) as f32 * sv[si] + bv[bi];
        });
        Ok(vec![float_tensor(x.dtype(), dims.to_vec(), out)?])
    }
}

pub struct Cumulative {
    pub axis: usize,
    pub exclusive: bool,
    pub reverse: bool,
    pub product: bool,
}

impl Op for Cumulative {
    fn run(&self, _: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        let x = inputs[0];
        let (outer, n, inner) = split_at_axis(x.shape(), self.axis);
        // Sums from 0, products from 1 (each type's wrapping ops).
        macro_rules! scan {
            ($v:expr, $zero:expr, $one:expr, $add:expr, $mul:expr) => {{
                let v = $v;
                let mut out = v.clone();
                let (start, step) = if self.product {
                    ($one, $mul as fn(_, _) -> _)
                } else {
                    ($zero, $add as fn(_, _) -> _)
                };
                for o in 0..outer {
                    for i in 0..inner {
                        let mut acc = start;
                        for s in 0..n {
                            let j = if self.reverse { n - 1 - s } else { s };
                            let at = (o * n + j) * inner + i;
                            if self.exclusive {
                                out[at] = acc;
                                acc = step(acc, v[at]);
                            } else {
                                acc = step(acc, v[at]);
                                out[at] = acc;
                            }
                        }
                    }
                }
                out
            }};
        }
        let data = match x.data() {
            TensorData::F32(_) | TensorData::F16(_) => {
                let v = f32_data(x)?.into_owned();
                return Ok(vec![float_tensor(
                    x.dtype(),
                    x.shape().to_vec(),
                    scan!(v, 0f32, 1f32, |a: f32, b: f32| a + b, |a: f32, b: f32| a
                        * b),
                )?]);
            }
            TensorData::I32(v) => TensorData::I32(scan!(
                v,
                0i32,
                1i32,
                |a: i32, b: i32| a.wrapping_add(b),
                |a: i32, b: i32| a.wrapping_mul(b)
            )),
            TensorData::I64(v) => TensorData::I64(scan!(
                v,
                0i64,
                1i64,
                |a: i64, b: i64| a.wrapping_add(b),
                |a: i64, b: i64| a.wrapping_mul(b)
            )),
            TensorData::U8(v) => TensorData::U8(scan!(
                v,
                0u8,
                1u8,
                |a: u8, b: u8| a.wrapping_add(b),
                |a: u8, b: u8| a.wrapping_mul(b)
            )),
            TensorData::Bool(_) => return Err("cannot sum bools".into()),
        };
        Ok(vec![
            Tensor::new(x.shape().to_vec(), data).map_err(|e| e.to_string())?
        ])
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::buffers::Buffers;

    /// The row path gives the general path's values: rows of one to many
    /// values, scale and bias per element or one for all, one task and
    /// several.
    #[test]
    fn row_norms_match_the_general_path() {
        let buffers = Buffers::default();
        let ctx = Ctx::new(2, &buffers);
        let cases: [(&[usize], &[usize], bool); 5] = [
            (&[1, 56, 56, 96], &[3], true),
            (&[1, 7, 7, 768], &[3], true),
            (&[3, 5], &[1], false),
            (&[2, 3, 4], &[1, 2], true),
            (&[40, 1], &[1], true),
        ];
        for (dims, axes, per_element) in cases {
            let n: usize = dims.iter().product();
            let x: Vec<f32> = (0..n)
                .map(|i| ((i * 37) % 101) as f32 * 0.07 + (i % 7) as f32)
                .collect();
            let sd: Vec<usize> = (0..dims.len())
                .map(|i| {
                    if per_element && axes.contains(&i) {
                        dims[i]
                    } else {
                        1
                    }
                })
                .collect();
            let m: usize = sd.iter().product();
            let s = Tensor::from_f32(&sd, (0..m).map(|i| 1.0 + i as f32 * 0.01).collect()).unwrap();
            let b = Tensor::from_f32(&sd, (0..m).map(|i| i as f32 * -0.02).collect()).unwrap();
            let xt = Tensor::from_f32(dims, x).unwrap();
            let op = Normalization {
                axes: axes.to_vec(),
                epsilon: 1e-6,
                groups: 1,
            };
            assert!(
                norm_rows::rows(dims, axes, 1, &sd, &sd).is_some(),
                "{dims:?}"
            );
            let fast = op.run(&ctx, &[&xt, &s, &b]).unwrap().remove(0);
            let want = op.general(&xt, &s, &b).unwrap().remove(0);
            for (k, (a, w)) in fast
                .as_f32()
                .unwrap()
                .iter()
                .zip(want.as_f32().unwrap())
                .enumerate()
            {
                assert!(
                    (a - w).abs() <= 1e-5 * w.abs().max(1.0),
                    "{dims:?} element {k}: {a} vs {w}"
                );
            }
        }
    }
}
