//! Normalization (layer, instance and group norm) and cumulative sums.

use super::{f32_data, float_tensor, Ctx, Op, OpResult};
use crate::backend::cpu::util::{broadcast_strides, for_each_offset, split_at_axis};
use crate::tensor::{Tensor, TensorData};

pub struct Normalization {
    pub axes: Vec<usize>,
    pub epsilon: f32,
    pub groups: usize,
}

impl Op for Normalization {
    fn run(&self, _: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        let (x, scale, bias) = (inputs[0], inputs[1], inputs[2]);
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
}

impl Op for Cumulative {
    fn run(&self, _: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        let x = inputs[0];
        let (outer, n, inner) = split_at_axis(x.shape(), self.axis);
        macro_rules! scan {
            ($v:expr, $zero:expr, $add:expr) => {{
                let v = $v;
                let mut out = v.clone();
                for o in 0..outer {
                    for i in 0..inner {
                        let mut acc = $zero;
                        for s in 0..n {
                            let j = if self.reverse { n - 1 - s } else { s };
                            let at = (o * n + j) * inner + i;
                            if self.exclusive {
                                out[at] = acc;
                                acc = $add(acc, v[at]);
                            } else {
                                acc = $add(acc, v[at]);
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
                    scan!(v, 0f32, |a: f32, b: f32| a + b),
                )?]);
            }
            TensorData::I32(v) => {
                TensorData::I32(scan!(v, 0i32, |a: i32, b: i32| a.wrapping_add(b)))
            }
            TensorData::I64(v) => {
                TensorData::I64(scan!(v, 0i64, |a: i64, b: i64| a.wrapping_add(b)))
            }
            TensorData::U8(v) => TensorData::U8(scan!(v, 0u8, |a: u8, b: u8| a.wrapping_add(b))),
            TensorData::Bool(_) => return Err("cannot sum bools".into()),
        };
        Ok(vec![
            Tensor::new(x.shape().to_vec(), data).map_err(|e| e.to_string())?
        ])
    }
}
