//! Scatter: ONNX ScatterElements (element mode) and ScatterND (nd mode),
//! with their reductions. Indices may be negative; one out of range is an
//! error naming it, not a write outside the data. Updates landing on one
//! position apply in their order.

use super::gather::norm;
use super::{f32_data, float_tensor, Ctx, Op, OpResult};
use crate::backend::cpu::util::strides;
use crate::ir::{ScatterMode, ScatterReduction as Red};
use crate::tensor::{Tensor, TensorData};

pub struct Scatter {
    pub mode: ScatterMode,
    pub axis: usize,
    pub reduction: Red,
}

impl Scatter {
    /// The data offset each update element goes to, in update order.
    fn targets(&self, dims: &[usize], idx: &Tensor, upd: &Tensor) -> Result<Vec<usize>, String> {
        let ds = strides(dims);
        let ix = idx.to_i64_vec();
        match self.mode {
            ScatterMode::Element => {
                let ud = upd.shape();
                if idx.shape() != ud || ud.len() != dims.len() {
                    return Err(
                        "indices and updates must have one shape, of the data's rank".into(),
                    );
                }
                let us = strides(ud);
                (0..ix.len())
                    .map(|lin| {
                        let mut off = 0;
                        for d in 0..ud.len() {
                            let c = if d == self.axis {
                                norm(ix[lin], dims[d])?
                            } else {
                                let c = (lin / us[d]) % ud[d];
                                if c >= dims[d] {
                                    return Err("the indices exceed the data's dims".to_string());
                                }
                                c
                            };
                            off += c * ds[d];
                        }
                        Ok(off)
                    })
                    .collect()
            }
            ScatterMode::Nd => {
                let k = *idx.shape().last().ok_or("indices must have a tuple dim")?;
                if k == 0 || k > dims.len() {
                    return Err(format!("index tuples of {k} for {}-D data", dims.len()));
                }
                let inner: usize = dims[k..].iter().product();
                let tuples = ix.len() / k;
                if upd.len() != tuples * inner {
                    return Err(format!(
                        "{} updates for {tuples} slices of {inner}",
                        upd.len()
                    ));
                }
                let mut out = Vec::with_capacity(upd.len());
                for t in 0..tuples {
                    let mut base = 0;
                    for j in 0..k {
                        base += norm(ix[t * k + j], dims[j])? * ds[j];
                    }
                    out.extend(base..base + inner);
                }
                Ok(out)
            }
        }
    }
}

fn fmax(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.max(b)
    }
}

fn fmin(a: f32, b: f32) -> f32 {
    if a.is_nan() || b.is_nan() {
        f32::NAN
    } else {
        a.min(b)
    }
}

/// Applies updates `u` at offsets `at` to `out` with `f`.
fn apply<T: Copy>(out: &mut [T], u: &[T], at: &[usize], f: impl Fn(T, T) -> T) {
    for (k, &o) in at.iter().enumerate() {
        out[o] = f(out[o], u[k]);
    }
}

macro_rules! int_reduce {
    ($out:expr, $u:expr, $at:expr, $red:expr) => {
        match $red {
            Red::None => apply($out, $u, $at, |_, b| b),
            Red::Add => apply($out, $u, $at, |a, b| a.wrapping_add(b)),
            Red::Mul => apply($out, $u, $at, |a, b| a.wrapping_mul(b)),
            Red::Max => apply($out, $u, $at, |a, b| a.max(b)),
            Red::Min => apply($out, $u, $at, |a, b| a.min(b)),
        }
    };
}

impl Op for Scatter {
    fn run(&self, _: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        let (x, idx, upd) = (inputs[0], inputs[1], inputs[2]);
        let dims = x.shape().to_vec();
        let at = self.targets(&dims, idx, upd)?;
        if x.dtype() != upd.dtype() {
            return Err("updates and data differ in type".into());
        }
        if self.reduction == Red::None {
            macro_rules! set {
                ($v:expr, $u:expr, $variant:ident) => {{
                    let mut out = $v.clone();
                    apply(&mut out, $u, &at, |_, b| b);
                    TensorData::$variant(out)
                }};
            }
            let data = match (x.data(), upd.data()) {
                (TensorData::F32(v), TensorData::F32(u)) => set!(v, u, F32),
                (TensorData::F16(v), TensorData::F16(u)) => set!(v, u, F16),
                (TensorData::I32(v), TensorData::I32(u)) => set!(v, u, I32),
                (TensorData::I64(v), TensorData::I64(u)) => set!(v, u, I64),
                (TensorData::U8(v), TensorData::U8(u)) => set!(v, u, U8),
                (TensorData::Bool(v), TensorData::Bool(u)) => set!(v, u, Bool),
                _ => return Err("updates and data differ in type".into()),
            };
            return Ok(vec![Tensor::new(dims, data).map_err(|e| e.to_string())?]);
        }
        let data = match (x.data(), upd.data(), self.reduction) {
            (TensorData::F32(_) | TensorData::F16(_), _, red) => {
                let mut out = f32_data(x)?.into_owned();
                let u = f32_data(upd)?;
                match red {
                    Red::Add => apply(&mut out, &u, &at, |a, b| a + b),
                    Red::Mul => apply(&mut out, &u, &at, |a, b| a * b),
                    Red::Max => apply(&mut out, &u, &at, fmax),
                    Red::Min => apply(&mut out, &u, &at, fmin),
                    Red::None => unreachable!("handled above"),
                }
                return Ok(vec![float_tensor(x.dtype(), dims, out)?]);
            }
            (TensorData::I32(v), TensorData::I32(u), red) => {
                let mut out = v.clone();
                int_reduce!(&mut out, u, &at, red);
                TensorData::I32(out)
            }
            (TensorData::I64(v), TensorData::I64(u), red) => {
                let mut out = v.clone();
                int_reduce!(&mut out, u, &at, red);
                TensorData::I64(out)
            }
            (TensorData::U8(v), TensorData::U8(u), red) => {
                let mut out = v.clone();
                int_reduce!(&mut out, u, &at, red);
                TensorData::U8(out)
            }
            (_, _, red) => return Err(format!("a {red:?} scatter of {}", x.dtype())),
        };
        Ok(vec![Tensor::new(dims, data).map_err(|e| e.to_string())?])
    }
}
