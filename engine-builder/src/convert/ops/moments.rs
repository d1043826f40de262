//! Normalizations by a norm or moments of their input, decomposed into
//! reductions and element-wise layers (TensorRT's parser does the same):
//! LpNormalization, MeanVarianceNormalization, RMSNormalization, and LRN
//! (its sum over neighbouring channels as a 1x1 convolution by a band of
//! ones).

use super::Add;
use crate::convert::{ConvertError, NodeCtx};
use jetrt_engine::ir::{ConvParams, ElementWiseOp as E, LayerKind, ReduceOp, UnaryOp};
use jetrt_engine::Tensor;
use std::sync::Arc;

/// The most channels LRN's band of ones (C x C weights) is built for.
const LRN_MAX_CHANNELS: usize = 4096;

type R = Result<(), ConvertError>;

pub fn register(add: &mut Add<'_>) {
    add("LpNormalization", 1, lp_norm);
    add("MeanVarianceNormalization", 9, mean_variance_norm);
    add("RMSNormalization", 23, rms_norm);
    add("LRN", 1, lrn);
}

/// `x / ||x||_p` along one axis, p 1 or 2.
fn lp_norm(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.float_input(0)?;
    let rank = ctx.rank(x);
    let axis = ctx.axis(ctx.attr_int("axis", -1)?, rank)?;
    let l2 = match ctx.attr_int("p", 2)? {
        1 => false,
        2 => true,
        p => {
            return Err(ConvertError::new(format!(
                "p = {p}: only 1 and 2 are defined"
            )))
        }
    };
    let norm = super::reduce::l_norm(ctx, l2, x, &[axis], true)?;
    // A zero norm (every value 0) divides by 1, giving the zeros as they
    // are (the operator's reference outputs 0, not NaN).
    let zero = ctx.scalar(ctx.dtype(x), 0.0, rank)?;
    let one = ctx.scalar(ctx.dtype(x), 1.0, rank)?;
    let is_zero = ctx.ew(E::Equal, norm, zero)?;
    let norm = ctx.add(LayerKind::Select, vec![is_zero, one, norm])?;
    let y = ctx.ew(E::Div, x, norm)?;
    ctx.set_output(0, y)
}

/// `(x - E[x]) / (sqrt(E[x^2] - E[x]^2) + 1e-9)` over `axes` (default
/// N, H, W), as the operator's function body computes it.
fn mean_variance_norm(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.float_input(0)?;
    let rank = ctx.rank(x);
    let axes = match ctx.attr_ints("axes")? {
        Some(a) => {
            let mut v = a
                .into_iter()
                .map(|a| ctx.axis(a, rank))
                .collect::<Result<Vec<_>, _>>()?;
            v.sort();
            v.dedup();
            v
        }
        None if rank == 4 => vec![0, 2, 3],
        None => {
            return Err(ConvertError::new(format!(
                "the default axes (0, 2, 3) need a 4-D input, not {rank}-D"
            )))
        }
    };
    let mean = ctx.reduce(ReduceOp::Avg, &axes, true, x)?;
    let sq = ctx.ew(E::Prod, x, x)?;
    let mean_sq = ctx.reduce(ReduceOp::Avg, &axes, true, sq)?;
    let sq_mean = ctx.ew(E::Prod, mean, mean)?;
    let var = ctx.ew(E::Sub, mean_sq, sq_mean)?;
    let sd = ctx.un(UnaryOp::Sqrt, var)?;
    let eps = ctx.scalar(ctx.dtype(x), 1e-9, rank)?;
    let den = ctx.ew(E::Sum, sd, eps)?;
    let d = ctx.ew(E::Sub, x, mean)?;
    let y = ctx.ew(E::Div, d, den)?;
    ctx.set_output(0, y)
}

/// `x / sqrt(E[x^2] + epsilon) * scale` over the dims from `axis` on.
fn rms_norm(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.float_input(0)?;
    let rank = ctx.rank(x);
    let axis = ctx.axis(ctx.attr_int("axis", -1)?, rank)?;
    let eps = ctx.attr_float("epsilon", 1e-5)? as f64;
    let scale = ctx.input(1)?;
    let r = ctx.rank(scale);
    if r > rank {
        return Err(ConvertError::new(
            "the scale has a higher rank than the input",
        ));
    }
    let scale = ctx.unsqueeze_front(scale, rank - r)?;
    let axes: Vec<usize> = (axis..rank).collect();
    let sq = ctx.ew(E::Prod, x, x)?;
    let ms = ctx.reduce(ReduceOp::Avg, &axes, true, sq)?;
    let e = ctx.scalar(ctx.dtype(x), eps, rank)?;
    let ms = ctx.ew(E::Sum, ms, e)?;
    let rms = ctx.un(UnaryOp::Sqrt, ms)?;
    let n = ctx.ew(E::Div, x, rms)?;
    let y = ctx.ew(E::Prod, n, scale)?;
    ctx.set_output(0, y)
}

/// LRN: `x / (bias + alpha / size * sum(x^2 over the size channels around
/// c))^beta`, the window clipped at the edges.
fn lrn(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.float_input(0)?;
    let rank = ctx.rank(x);
    if !(3..=5).contains(&rank) {
        return Err(ConvertError::new(format!(
            "LRN takes a 3-D to 5-D input, not {rank}-D"
        )));
    }
    let c = ctx.shape(x)[1]
        .known()
        .filter(|&c| (1..=LRN_MAX_CHANNELS).contains(&c))
        .ok_or_else(|| {
            ConvertError::new(format!(
                "LRN needs a fixed channel count of 1..={LRN_MAX_CHANNELS}"
            ))
        })?;
    let size = ctx.attr_int("size", 0)?;
    if !(1..=c as i64 * 2 + 1).contains(&size) {
        return Err(ConvertError::new(format!(
            "size {size} is not in 1..={}",
            c * 2 + 1
        )));
    }
    let alpha = ctx.attr_float("alpha", 1e-4)? as f64;
    let beta = ctx.attr_float("beta", 0.75)? as f64;
    let bias = ctx.attr_float("bias", 1.0)? as f64;
    // Channel c sums channels c - floor((size-1)/2) ..= c + ceil((size-1)/2).
    let (below, above) = ((size - 1) / 2, (size - 1) - (size - 1) / 2);
    let sp = rank - 2;
    let mut w = vec![0f32; c * c];
    for o in 0..c as i64 {
        for i in (o - below).max(0)..=(o + above).min(c as i64 - 1) {
            w[(o * c as i64 + i) as usize] = 1.0;
        }
    }
    let mut wd = vec![c, c];
    wd.extend(std::iter::repeat_n(1, sp));
    let w = Tensor::from_f32(&wd, w)?.cast(ctx.dtype(x));
    let kernel = ctx.constant_weights(Arc::new(w));
    let sq = ctx.ew(E::Prod, x, x)?;
    let sum = ctx.add(
        LayerKind::Convolution(ConvParams {
            out_channels: c,
            kernel_size: vec![1; sp],
            stride: vec![1; sp],
            pre_padding: vec![0; sp],
            post_padding: vec![0; sp],
            dilation: vec![1; sp],
            groups: 1,
            kernel,
            bias: None,
            activation: None,
        }),
        vec![sq],
    )?;
    let dt = ctx.dtype(x);
    let k = ctx.scalar(dt, alpha / size as f64, rank)?;
    let b = ctx.scalar(dt, bias, rank)?;
    let e = ctx.scalar(dt, beta, rank)?;
    let scaled = ctx.ew(E::Prod, sum, k)?;
    let base = ctx.ew(E::Sum, scaled, b)?;
    let den = ctx.ew(E::Pow, base, e)?;
    let y = ctx.ew(E::Div, x, den)?;
    ctx.set_output(0, y)
}
