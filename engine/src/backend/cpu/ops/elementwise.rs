//! ElementWise layers: two operands of equal rank with NumPy broadcasting.

use super::{f32_data, float_tensor, Ctx, Op, OpResult, PAR_CHUNK};
use crate::backend::cpu::util::{broadcast_dims, broadcast_strides, for_each_offset};
use crate::ir::ElementWiseOp as E;
use crate::tensor::{Tensor, TensorData};
use rayon::prelude::*;

pub struct ElementWise(pub E);

/// `f(a, b)` over the broadcast of `a` (dims `ad`) and `b` (dims `bd`).
pub fn broadcast_map<A, B, O>(
    a: &[A],
    ad: &[usize],
    b: &[B],
    bd: &[usize],
    f: impl Fn(A, B) -> O + Sync,
) -> Result<(Vec<usize>, Vec<O>), String>
where
    A: Copy + Sync,
    B: Copy + Sync,
    O: Send,
{
    let out = broadcast_dims(ad, bd)?;
    let n: usize = out.iter().product();
    let v = if ad == bd {
        if n >= 2 * PAR_CHUNK {
            a.par_iter()
                .zip(b.par_iter())
                .map(|(&x, &y)| f(x, y))
                .collect()
        } else {
            a.iter().zip(b).map(|(&x, &y)| f(x, y)).collect()
        }
    } else if b.len() == 1 && ad == out.as_slice() {
        let y = b[0];
        a.iter().map(|&x| f(x, y)).collect()
    } else if a.len() == 1 && bd == out.as_slice() {
        let x = a[0];
        b.iter().map(|&y| f(x, y)).collect()
    } else {
        let sa = broadcast_strides(ad, &out);
        let sb = broadcast_strides(bd, &out);
        let mut v = Vec::with_capacity(n);
        for_each_offset(&out, [&sa, &sb], |_, [i, j]| v.push(f(a[i], b[j])));
        v
    };
    Ok((out, v))
}

fn float_op(op: E, x: f32, y: f32) -> f32 {
    match op {
        E::Sum => x + y,
        E::Prod => x * y,
        E::Max => {
            if x.is_nan() || y.is_nan() {
                f32::NAN
            } else {
                x.max(y)
            }
        }
        E::Min => {
            if x.is_nan() || y.is_nan() {
                f32::NAN
            } else {
                x.min(y)
            }
        }
        E::Sub => x - y,
        E::Div => x / y,
        E::Pow => x.powf(y),
        E::FloorDiv => (x / y).floor(),
        _ => unreachable!("not an arithmetic op"),
    }
}

/// Integer arithmetic; division by zero gives 0 instead of trapping.
fn int_op(op: E, x: i64, y: i64) -> i64 {
    match op {
        E::Sum => x.wrapping_add(y),
        E::Prod => x.wrapping_mul(y),
        E::Max => x.max(y),
        E::Min => x.min(y),
        E::Sub => x.wrapping_sub(y),
        E::Div => x.checked_div(y).unwrap_or(0),
        E::FloorDiv => match x.checked_div(y) {
            Some(q) if (x % y != 0) && ((x < 0) != (y < 0)) => q - 1,
            Some(q) => q,
            None => 0,
        },
        E::Pow => {
            if y < 0 {
                match x {
                    1 => 1,
                    -1 => {
                        if y % 2 == 0 {
                            1
                        } else {
                            -1
                        }
                    }
                    _ => 0,
                }
            } else {
                x.wrapping_pow(y.min(u32::MAX as i64) as u32)
            }
        }
        _ => unreachable!("not an arithmetic op"),
    }
}

fn compare<T: PartialOrd>(op: E, x: T, y: T) -> bool {
    match op {
        E::Equal => x == y,
        E::Greater => x > y,
        E::Less => x < y,
        _ => unreachable!("not a comparison"),
    }
}

macro_rules! int_case {
    ($op:expr, $a:expr, $ad:expr, $b:expr, $bd:expr, $variant:ident, $t:ty) => {{
        let op = $op;
        if op.is_comparison() {
            let (d, v) = broadcast_map($a, $ad, $b, $bd, |x: $t, y: $t| compare(op, x, y))?;
            (d, TensorData::Bool(v))
        } else {
            let (d, v) = broadcast_map($a, $ad, $b, $bd, |x: $t, y: $t| {
                int_op(op, x as i64, y as i64) as $t
            })?;
            (d, TensorData::$variant(v))
        }
    }};
}

impl Op for ElementWise {
    fn run(&self, _: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        let (a, b) = (inputs[0], inputs[1]);
        let (ad, bd) = (a.shape(), b.shape());
        let op = self.0;
        let (dims, data) = match (a.data(), b.data()) {
            (TensorData::F32(_) | TensorData::F16(_), TensorData::F32(_) | TensorData::F16(_)) => {
                let (x, y) = (f32_data(a)?, f32_data(b)?);
                if op.is_comparison() {
                    let (d, v) = broadcast_map(&x, ad, &y, bd, |p, q| compare(op, p, q))?;
                    (d, TensorData::Bool(v))
                } else {
                    let (d, v) = broadcast_map(&x, ad, &y, bd, |p, q| float_op(op, p, q))?;
                    return Ok(vec![float_tensor(a.dtype(), d, v)?]);
                }
            }
            (TensorData::I32(x), TensorData::I32(y)) => int_case!(op, x, ad, y, bd, I32, i32),
            (TensorData::I64(x), TensorData::I64(y)) => int_case!(op, x, ad, y, bd, I64, i64),
            (TensorData::U8(x), TensorData::U8(y)) => int_case!(op, x, ad, y, bd, U8, u8),
            (TensorData::Bool(x), TensorData::Bool(y)) => {
                let f: fn(bool, bool) -> bool = match op {
                    E::And => |p, q| p && q,
                    E::Or => |p, q| p || q,
                    E::Xor => |p, q| p != q,
                    E::Equal => |p, q| p == q,
                    E::Greater => |p, q| p && !q,
                    E::Less => |p, q| !p && q,
                    _ => return Err(format!("{op:?} does not take bool operands")),
                };
                let (d, v) = broadcast_map(x, ad, y, bd, f)?;
                (d, TensorData::Bool(v))
            }
            _ => {
                return Err(format!(
                    "operands have different types: {} and {}",
                    a.dtype(),
                    b.dtype()
                ))
            }
        };
        Ok(vec![Tensor::new(dims, data).map_err(|e| e.to_string())?])
    }
}

/// `x >= 0 ? x : slope * x`, the slope broadcast onto x.
pub struct ParametricRelu;

impl Op for ParametricRelu {
    fn run(&self, _: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        let (x, s) = (inputs[0], inputs[1]);
        let (xv, sv) = (f32_data(x)?, f32_data(s)?);
        let (d, v) = broadcast_map(&xv, x.shape(), &sv, s.shape(), |a, b| {
            if a >= 0.0 {
                a
            } else {
                a * b
            }
        })?;
        Ok(vec![float_tensor(x.dtype(), d, v)?])
    }
}
