//! Activation and Unary layers: one function per element.

use super::{f32_data, float_tensor, Ctx, Op, OpResult, PAR_CHUNK};
use crate::backend::cpu::act::Act;
use crate::ir::UnaryOp;
use crate::tensor::{Tensor, TensorData};
use rayon::prelude::*;

/// Applies `f` to every element of `v` in place, in parallel when large.
pub fn map_inplace(v: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
    if v.len() >= 2 * PAR_CHUNK {
        v.par_chunks_mut(PAR_CHUNK)
            .for_each(|c| c.iter_mut().for_each(|x| *x = f(*x)));
    } else {
        v.iter_mut().for_each(|x| *x = f(*x));
    }
}

/// An activation, or a function the cpu plan fused (HardSwish).
pub struct ActivationOp(pub Act);

/// `f` over `x` into a buffer from the context, in parallel when large.
pub fn map_f32(ctx: &Ctx<'_>, x: &[f32], f: impl Fn(f32) -> f32 + Sync) -> Vec<f32> {
    let mut out = ctx.take_f32(x.len());
    if x.len() >= 2 * PAR_CHUNK && ctx.threads > 1 {
        out.par_chunks_mut(PAR_CHUNK)
            .zip(x.par_chunks(PAR_CHUNK))
            .for_each(|(o, i)| crate::fast!(o.iter_mut().zip(i).for_each(|(o, &v)| *o = f(v))));
    } else {
        crate::fast!(out.iter_mut().zip(x).for_each(|(o, &v)| *o = f(v)));
    }
    out
}

/// `f` over `v` in place, in parallel chunks, vectorized where `f` allows.
pub fn map_in_place(ctx: &Ctx<'_>, v: &mut [f32], f: impl Fn(f32) -> f32 + Sync) {
    if v.len() >= 2 * PAR_CHUNK && ctx.threads > 1 {
        v.par_chunks_mut(PAR_CHUNK)
            .for_each(|o| crate::fast!(o.iter_mut().for_each(|o| *o = f(*o))));
    } else {
        crate::fast!(v.iter_mut().for_each(|o| *o = f(*o)));
    }
}

impl Op for ActivationOp {
    fn run(&self, ctx: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        let x = inputs[0];
        let xv = f32_data(x)?;
        let out = crate::with_act!(self.0, |f| map_f32(ctx, &xv, f));
        Ok(vec![float_tensor(x.dtype(), x.shape().to_vec(), out)?])
    }
}

pub struct Unary(pub UnaryOp);

fn float_unary(op: UnaryOp, x: f32) -> f32 {
    match op {
        UnaryOp::Exp => x.exp(),
        UnaryOp::Log => x.ln(),
        UnaryOp::Sqrt => x.sqrt(),
        UnaryOp::Recip => 1.0 / x,
        UnaryOp::Abs => x.abs(),
        UnaryOp::Neg => -x,
        UnaryOp::Sin => x.sin(),
        UnaryOp::Cos => x.cos(),
        UnaryOp::Tan => x.tan(),
        UnaryOp::Sinh => x.sinh(),
        UnaryOp::Cosh => x.cosh(),
        UnaryOp::Asin => x.asin(),
        UnaryOp::Acos => x.acos(),
        UnaryOp::Atan => x.atan(),
        UnaryOp::Asinh => x.asinh(),
        UnaryOp::Acosh => x.acosh(),
        UnaryOp::Atanh => x.atanh(),
        UnaryOp::Ceil => x.ceil(),
        UnaryOp::Floor => x.floor(),
        UnaryOp::Erf => libm::erff(x),
        UnaryOp::Sign => {
            if x > 0.0 {
                1.0
            } else if x < 0.0 {
                -1.0
            } else {
                x
            }
        }
        // Halves go to the even neighbour, as ONNX Round asks.
        UnaryOp::Round => x.round_ties_even(),
        UnaryOp::Not | UnaryOp::IsInf | UnaryOp::IsNan => unreachable!("not a float-to-float op"),
    }
}

impl Op for Unary {
    fn run(&self, _: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        let x = inputs[0];
        let shape = x.shape().to_vec();
        let op = self.0;
        let data = match (op, x.data()) {
            (UnaryOp::Not, TensorData::Bool(v)) => TensorData::Bool(v.iter().map(|b| !b).collect()),
            (UnaryOp::IsInf, _) => {
                TensorData::Bool(f32_data(x)?.iter().map(|v| v.is_infinite()).collect())
            }
            (UnaryOp::IsNan, _) => {
                TensorData::Bool(f32_data(x)?.iter().map(|v| v.is_nan()).collect())
            }
            (UnaryOp::Abs | UnaryOp::Neg | UnaryOp::Sign, TensorData::I32(v)) => {
                TensorData::I32(v.iter().map(|&a| int_unary(op, a as i64) as i32).collect())
            }
            (UnaryOp::Abs | UnaryOp::Neg | UnaryOp::Sign, TensorData::I64(v)) => {
                TensorData::I64(v.iter().map(|&a| int_unary(op, a)).collect())
            }
            (UnaryOp::Abs | UnaryOp::Sign, TensorData::U8(v)) => {
                TensorData::U8(v.iter().map(|&a| int_unary(op, a as i64) as u8).collect())
            }
            (_, TensorData::F32(_) | TensorData::F16(_)) => {
                let mut v = f32_data(x)?.into_owned();
                map_inplace(&mut v, |a| float_unary(op, a));
                return Ok(vec![float_tensor(x.dtype(), shape, v)?]);
            }
            (op, _) => return Err(format!("{op:?} does not take {}", x.dtype())),
        };
        Ok(vec![Tensor::new(shape, data).map_err(|e| e.to_string())?])
    }
}

fn int_unary(op: UnaryOp, a: i64) -> i64 {
    match op {
        UnaryOp::Abs => a.wrapping_abs(),
        UnaryOp::Neg => a.wrapping_neg(),
        _ => a.signum(),
    }
}
