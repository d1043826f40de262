//! Compress with a constant condition: a gather of the slices whose
//! condition is true, along the axis (or of the flattened input). A
//! condition computed at run time would make the output's size depend on
//! data, which jetrt's shapes do not carry yet.

use super::Add;
use crate::convert::{ConvertError, NodeCtx};
use jetrt_engine::ir::GatherMode;
use jetrt_engine::Tensor;

type R = Result<(), ConvertError>;

pub fn register(add: &mut Add<'_>) {
    add("Compress", 9, compress);
}

fn compress(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let rank = ctx.rank(x);
    let cond = ctx.require_const(1, "the condition")?;
    if cond.shape().len() != 1 {
        return Err(ConvertError::new("the condition must be 1-D"));
    }
    let (x, axis) = match ctx.has_attr("axis") {
        true => (x, ctx.axis(ctx.attr_int("axis", 0)?, rank)?),
        false => (ctx.reshape(x, vec![-1])?, 0),
    };
    let len = ctx.shape(x)[axis]
        .known()
        .ok_or_else(|| ConvertError::new("Compress needs the axis's length fixed"))?;
    let keep: Vec<i64> = cond
        .to_f64_vec()
        .iter()
        .take(len)
        .enumerate()
        .filter(|(_, &c)| c != 0.0)
        .map(|(i, _)| i as i64)
        .collect();
    let n = keep.len();
    let idx = ctx.constant(Tensor::from_i64(&[n], keep)?);
    let y = ctx.gather(x, idx, axis, GatherMode::Default)?;
    ctx.set_output(0, y)
}
