//! DFT along one axis as matrix products by constant cosine and sine
//! tables (the signal's length is known when converting): forward,
//! inverse, one-sided (the first L/2 + 1 bins) and the one-sided inverse
//! (a real signal from half a spectrum), the input zero-padded or cut to
//! `dft_length` as numpy's `fft(n=...)` does.

use super::Add;
use crate::convert::{ConvertError, NodeCtx};
use jetrt_engine::ir::{ElementWiseOp as E, LayerKind, MatrixOp, SliceMode, TensorRef};
use jetrt_engine::Tensor;

type R = Result<(), ConvertError>;

/// The most entries one table holds (four tables at most).
const MAX_TABLE: usize = 1 << 22;

pub fn register(add: &mut Add<'_>) {
    add("DFT", 17, dft);
}

fn scalar_input(ctx: &mut NodeCtx<'_>, i: usize, what: &str) -> Result<Option<i64>, ConvertError> {
    match ctx.opt_const(i, what)? {
        None if ctx.opt_input(i)?.is_some() => Err(ctx.needs_const(i, what)),
        None => Ok(None),
        Some(t) => match t.to_i64_vec().as_slice() {
            [v] => Ok(Some(*v)),
            _ => Err(ConvertError::new(format!("{what} is not a scalar"))),
        },
    }
}

fn dft(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.float_input(0)?;
    let dims = ctx.known_dims(x, "DFT's input")?;
    let r = dims.len();
    let c = dims[r - 1];
    if r < 3 || !(1..=2).contains(&c) {
        return Err(ConvertError::new(
            "the input must be [batch, ..., signal, 1 or 2] (real or complex)",
        ));
    }
    let axis = if ctx.opset >= 20 {
        scalar_input(ctx, 2, "the axis")?.unwrap_or(-2)
    } else {
        ctx.attr_int("axis", 1)?
    };
    let axis = ctx.axis(axis, r)?;
    if axis == 0 || axis == r - 1 {
        return Err(ConvertError::new(format!(
            "axis {axis}: not the batch or the complex dim"
        )));
    }
    let inverse = ctx.attr_int("inverse", 0)? != 0;
    let onesided = ctx.attr_int("onesided", 0)? != 0;
    let n = dims[axis];
    let len = match scalar_input(ctx, 1, "the DFT length")? {
        Some(l) => usize::try_from(l)
            .ok()
            .filter(|&l| l > 0)
            .ok_or_else(|| ConvertError::new(format!("a DFT length of {l}")))?,
        None if inverse && onesided => 2 * n.saturating_sub(1).max(1),
        None => n,
    };
    let out = if onesided && !inverse {
        len / 2 + 1
    } else {
        len
    };
    if n.checked_mul(out).is_none_or(|e| e > MAX_TABLE) {
        return Err(ConvertError::new(format!(
            "a {n} x {out} table is too large (at most {MAX_TABLE} entries)"
        )));
    }
    // Tables [n, out]: output bin (or sample) k from input j.
    let l = len as f64;
    let theta = |j: usize, k: usize| 2.0 * std::f64::consts::PI * ((j * k) % len) as f64 / l;
    // Which input rows take part, and their weight (irfft doubles the
    // bins that stand for two).
    let weight = |j: usize| -> f64 {
        if inverse && onesided {
            if j > len / 2 {
                0.0
            } else if j == 0 || 2 * j == len {
                1.0
            } else {
                2.0
            }
        } else if j < len {
            1.0
        } else {
            0.0
        }
    };
    let scale = if inverse { 1.0 / l } else { 1.0 };
    let table = |f: &dyn Fn(f64) -> f64| -> Vec<f32> {
        let mut t = vec![0f32; n * out];
        for j in 0..n {
            let w = weight(j) * scale;
            for k in 0..out {
                t[j * out + k] = (w * f(theta(j, k))) as f32;
            }
        }
        t
    };
    let sign = if inverse { 1.0 } else { -1.0 };
    // (a + ib) e^{sign i theta}: re = a cos - sign b sin, im = sign a sin + b cos.
    let c_rr = table(&|t| t.cos());
    let c_ir = table(&|t| -sign * t.sin());
    let c_ri = table(&|t| sign * t.sin());
    let c_ii = c_rr.clone();
    // The signal axis last, the rest flattened: [m, n] real and imaginary.
    let mut perm: Vec<usize> = (0..r - 1).filter(|&d| d != axis).collect();
    perm.push(axis);
    perm.push(r - 1);
    let xt = ctx.transpose(x, perm.clone())?;
    let m: usize = perm[..r - 2].iter().map(|&d| dims[d]).product();
    let mut pdims: Vec<usize> = perm.iter().map(|&d| dims[d]).collect();
    let part = |ctx: &mut NodeCtx<'_>, i: usize| -> Result<TensorRef, ConvertError> {
        let mut start = vec![0i64; r];
        start[r - 1] = i as i64;
        let mut size = pdims.clone();
        size[r - 1] = 1;
        let s = ctx.slice(xt, start, size, vec![1; r], SliceMode::StrictBounds)?;
        ctx.reshape(s, vec![m as i64, n as i64])
    };
    let dt = ctx.dtype(x);
    let mat =
        |ctx: &mut NodeCtx<'_>, a: TensorRef, t: Vec<f32>| -> Result<TensorRef, ConvertError> {
            let w = ctx.constant(Tensor::from_f32(&[n, out], t)?.cast(dt));
            ctx.add(
                LayerKind::MatrixMultiply {
                    op0: MatrixOp::None,
                    op1: MatrixOp::None,
                },
                vec![a, w],
            )
        };
    let re = part(ctx, 0)?;
    let im = if c == 2 { Some(part(ctx, 1)?) } else { None };
    let mut y_re = mat(ctx, re, c_rr)?;
    if let Some(im) = im {
        let t = mat(ctx, im, c_ir)?;
        y_re = ctx.ew(E::Sum, y_re, t)?;
    }
    let y = if inverse && onesided {
        ctx.reshape(y_re, vec![m as i64, out as i64, 1])?
    } else {
        let mut y_im = mat(ctx, re, c_ri)?;
        if let Some(im) = im {
            let t = mat(ctx, im, c_ii)?;
            y_im = ctx.ew(E::Sum, y_im, t)?;
        }
        let a = ctx.reshape(y_re, vec![m as i64, out as i64, 1])?;
        let b = ctx.reshape(y_im, vec![m as i64, out as i64, 1])?;
        ctx.add(LayerKind::Concatenation { axis: 2 }, vec![a, b])?
    };
    // Back to the permuted dims with the new length and complex dim, then
    // to the input's order.
    pdims[r - 2] = out;
    pdims[r - 1] = if inverse && onesided { 1 } else { 2 };
    let y = ctx.reshape(y, pdims.iter().map(|&d| d as i64).collect())?;
    let mut back = vec![0usize; r];
    for (i, &p) in perm.iter().enumerate() {
        back[p] = i;
    }
    let y = ctx.transpose(y, back)?;
    ctx.set_output(0, y)
}
