//! BatchNormalization (inference) -> Scale per channel.

use super::Add;
use crate::convert::{ConvertError, NodeCtx};
use jetrt_engine::ir::{
    ElementWiseOp, LayerKind, ReduceOp, ScaleMode, ScaleParams, TensorRef, UnaryOp,
};
use jetrt_engine::shape::Dim;
use jetrt_engine::Tensor;
use std::sync::Arc;

type R = Result<(), ConvertError>;

pub fn register(add: &mut Add<'_>) {
    add("BatchNormalization", 1, batch_norm);
    add("LayerNormalization", 17, layer_norm);
    add("InstanceNormalization", 1, instance_norm);
    add("GroupNormalization", 18, group_norm);
}

fn normalization(
    ctx: &mut NodeCtx<'_>,
    x: TensorRef,
    scale: TensorRef,
    bias: TensorRef,
    axes: Vec<usize>,
    groups: usize,
) -> R {
    let epsilon = ctx.attr_float("epsilon", 1e-5)?;
    let y = ctx.add(
        LayerKind::Normalization {
            axes,
            epsilon,
            groups,
        },
        vec![x, scale, bias],
    )?;
    ctx.set_output(0, y)
}

/// A per-channel vector reshaped to [1, C, 1, ...] for a rank-`rank` input.
fn per_channel(
    ctx: &mut NodeCtx<'_>,
    v: TensorRef,
    rank: usize,
) -> Result<TensorRef, ConvertError> {
    let c = ctx.shape(v);
    if c.len() != 1 {
        return Err(ConvertError::new("scale and bias must be 1-D"));
    }
    let mut dims = vec![Dim::Known(1); rank];
    dims[1] = c[0].clone();
    ctx.reshape_to(v, &dims)
}

/// LayerNormalization over the dims from `axis` on.
fn layer_norm(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let rank = ctx.rank(x);
    let axis = ctx.axis(ctx.attr_int("axis", -1)?, rank)?;
    let scale = ctx.input(1)?;
    let bias = match ctx.opt_input(2)? {
        Some(b) => b,
        None => ctx.scalar(ctx.dtype(x), 0.0, 1)?,
    };
    let mut sb = Vec::new();
    for t in [scale, bias] {
        let r = ctx.rank(t);
        if r > rank {
            return Err(ConvertError::new(
                "scale or bias has a higher rank than the input",
            ));
        }
        sb.push(ctx.unsqueeze_front(t, rank - r)?);
    }
    normalization(ctx, x, sb[0], sb[1], (axis..rank).collect(), 1)?;
    if ctx.wants_output(1) || ctx.wants_output(2) {
        // The statistics, when asked for: mean and 1/sqrt(variance + eps)
        // with the normalized dims kept as 1.
        let axes: Vec<usize> = (axis..rank).collect();
        let red = |ctx: &mut NodeCtx<'_>, t: TensorRef| ctx.reduce(ReduceOp::Avg, &axes, true, t);
        let mean = red(ctx, x)?;
        ctx.set_output(1, mean)?;
        let d = ctx.add(
            LayerKind::ElementWise {
                op: ElementWiseOp::Sub,
            },
            vec![x, mean],
        )?;
        let sq = ctx.add(
            LayerKind::ElementWise {
                op: ElementWiseOp::Prod,
            },
            vec![d, d],
        )?;
        let var = red(ctx, sq)?;
        let eps = ctx.attr_float("epsilon", 1e-5)? as f64;
        let e = ctx.scalar(ctx.dtype(x), eps, rank)?;
        let ve = ctx.add(
            LayerKind::ElementWise {
                op: ElementWiseOp::Sum,
            },
            vec![var, e],
        )?;
        let sd = ctx.add(LayerKind::Unary { op: UnaryOp::Sqrt }, vec![ve])?;
        let inv = ctx.add(LayerKind::Unary { op: UnaryOp::Recip }, vec![sd])?;
        ctx.set_output(2, inv)?;
    }
    Ok(())
}

fn instance_norm(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let rank = ctx.rank(x);
    if rank < 3 {
        return Err(ConvertError::new(
            "instance normalization needs spatial dims",
        ));
    }
    let scale = ctx.input(1)?;
    let scale = per_channel(ctx, scale, rank)?;
    let bias = ctx.input(2)?;
    let bias = per_channel(ctx, bias, rank)?;
    normalization(ctx, x, scale, bias, (2..rank).collect(), 1)
}

/// GroupNormalization: opset 18 takes one scale per group (repeated here
/// over the group's channels), opset 21 one per channel.
fn group_norm(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let rank = ctx.rank(x);
    if rank < 3 {
        return Err(ConvertError::new("group normalization needs spatial dims"));
    }
    let groups = usize::try_from(ctx.attr_int("num_groups", 0)?)
        .ok()
        .filter(|&g| g > 0)
        .ok_or_else(|| ConvertError::new("num_groups must be positive"))?;
    let c = ctx.shape(x)[1]
        .known()
        .ok_or_else(|| ConvertError::new("group normalization needs a fixed channel count"))?;
    if c % groups != 0 {
        return Err(ConvertError::new(format!(
            "{c} channels do not split into {groups} groups"
        )));
    }
    let mut sb = Vec::new();
    for i in [1, 2] {
        let v = if ctx.opset < 21 {
            let t = ctx.require_const(i, if i == 1 { "the scale" } else { "the bias" })?;
            if t.len() != groups {
                return Err(ConvertError::new(format!(
                    "opset {} takes one scale and bias per group",
                    ctx.opset
                )));
            }
            let per: Vec<f64> = t.to_f64_vec();
            let v: Vec<f32> = (0..c).map(|ch| per[ch / (c / groups)] as f32).collect();
            let t = Tensor::from_f32(&[c], v)?.cast(ctx.dtype(x));
            ctx.constant(t)
        } else {
            ctx.input(i)?
        };
        sb.push(per_channel(ctx, v, rank)?);
    }
    normalization(ctx, x, sb[0], sb[1], (2..rank).collect(), groups)
}

/// y = (x - mean) / sqrt(var + eps) * gamma + beta, folded into one scale
/// and one shift per channel.
fn batch_norm(ctx: &mut NodeCtx<'_>) -> R {
    if ctx.attr_int("training_mode", 0)? != 0 || ctx.wants_output(1) {
        return Err(ConvertError::new(
            "training mode is not supported; export the model in eval mode",
        ));
    }
    if ctx.opset < 7 && ctx.attr_int("spatial", 1)? == 0 {
        return Err(ConvertError::new(
            "spatial=0 (per-activation statistics) is not supported",
        ));
    }
    let x = ctx.input(0)?;
    let eps = ctx.attr_float("epsilon", 1e-5)? as f64;
    let get = |ctx: &mut NodeCtx<'_>, i: usize, what: &str| -> Result<Vec<f64>, ConvertError> {
        Ok(ctx.require_const(i, what)?.to_f64_vec())
    };
    let gamma = get(ctx, 1, "the scale")?;
    let beta = get(ctx, 2, "the bias")?;
    let mean = get(ctx, 3, "the running mean")?;
    let var = get(ctx, 4, "the running variance")?;
    let c = gamma.len();
    if [beta.len(), mean.len(), var.len()].iter().any(|&n| n != c) {
        return Err(ConvertError::new(
            "scale, bias, mean and variance differ in length",
        ));
    }
    if ctx.rank(x) < 2 {
        return Err(ConvertError::new("input must have a channel dim"));
    }
    let scale: Vec<f32> = (0..c)
        .map(|i| (gamma[i] / (var[i] + eps).sqrt()) as f32)
        .collect();
    let shift: Vec<f32> = (0..c)
        .map(|i| (beta[i] - mean[i] * scale[i] as f64) as f32)
        .collect();
    let scale = ctx.constant_weights(Arc::new(Tensor::from_f32(&[c], scale)?));
    let shift = ctx.constant_weights(Arc::new(Tensor::from_f32(&[c], shift)?));
    let y = ctx.add(
        LayerKind::Scale(ScaleParams {
            mode: ScaleMode::Channel,
            shift: Some(shift),
            scale: Some(scale),
            power: None,
            channel_axis: 1,
            activation: None,
        }),
        vec![x],
    )?;
    ctx.set_output(0, y)
}
