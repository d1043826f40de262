//! BatchNormalization (inference) -> Scale per channel.

use super::Add;
use crate::convert::{ConvertError, NodeCtx};
use jetrt_engine::ir::{LayerKind, ScaleMode, ScaleParams};
use jetrt_engine::Tensor;
use std::sync::Arc;

type R = Result<(), ConvertError>;

pub fn register(add: &mut Add<'_>) {
    add("BatchNormalization", 1, batch_norm);
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
        }),
        vec![x],
    )?;
    ctx.set_output(0, y)
}
