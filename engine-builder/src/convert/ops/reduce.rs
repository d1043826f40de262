//! Reductions -> Reduce, and Softmax.

use super::Add;
use crate::convert::{ConvertError, NodeCtx};
use jetrt_engine::ir::{LayerKind, ReduceOp};
use jetrt_engine::shape::Dim;

type R = Result<(), ConvertError>;

pub fn register(add: &mut Add<'_>) {
    for op in [
        "ReduceMean",
        "ReduceSum",
        "ReduceMax",
        "ReduceMin",
        "ReduceProd",
    ] {
        add(op, 1, reduce);
    }
    add("Softmax", 1, softmax);
}

/// Resolves a reduction's axes: from the `axes` input (newer opsets) or
/// attribute, with `noop_with_empty_axes`. `None` means no reduction at all.
pub fn reduce_axes(
    ctx: &mut NodeCtx<'_>,
    rank: usize,
    input_since: u32,
) -> Result<Option<Vec<usize>>, ConvertError> {
    let axes = if ctx.opset >= input_since {
        match ctx.opt_input(1)? {
            Some(_) => Some(ctx.require_const(1, "the reduction axes")?.to_i64_vec()),
            None => None,
        }
    } else {
        ctx.attr_ints("axes")?
    };
    let axes = axes.unwrap_or_default();
    if axes.is_empty() {
        if ctx.attr_int("noop_with_empty_axes", 0)? != 0 {
            return Ok(None);
        }
        return Ok(Some((0..rank).collect()));
    }
    let mut v = axes
        .into_iter()
        .map(|a| ctx.axis(a, rank))
        .collect::<Result<Vec<_>, _>>()?;
    v.sort();
    v.dedup();
    Ok(Some(v))
}

fn reduce(ctx: &mut NodeCtx<'_>) -> R {
    let (op, since) = match ctx.node.op_type.as_str() {
        "ReduceMean" => (ReduceOp::Avg, 18),
        "ReduceSum" => (ReduceOp::Sum, 13),
        "ReduceMax" => (ReduceOp::Max, 18),
        "ReduceMin" => (ReduceOp::Min, 18),
        _ => (ReduceOp::Prod, 18),
    };
    let x = ctx.input(0)?;
    let rank = ctx.rank(x);
    let keep_dims = ctx.attr_int("keepdims", 1)? != 0;
    let y = match reduce_axes(ctx, rank, since)? {
        Some(axes) => ctx.add(
            LayerKind::Reduce {
                op,
                axes,
                keep_dims,
            },
            vec![x],
        )?,
        None => ctx.add(LayerKind::Identity, vec![x])?,
    };
    ctx.set_output(0, y)
}

/// Softmax along one axis (opset 13+), or over everything from `axis` on
/// (earlier opsets, which flatten to 2-D first).
fn softmax(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let rank = ctx.rank(x);
    if rank == 0 {
        return Err(ConvertError::new("softmax of a scalar"));
    }
    let default = if ctx.opset >= 13 { -1 } else { 1 };
    let axis = ctx.axis(ctx.attr_int("axis", default)?, rank)?;
    let y = if ctx.opset >= 13 || axis == rank - 1 {
        ctx.add(LayerKind::Softmax { axis }, vec![x])?
    } else {
        let dims = ctx.shape(x);
        let inner: Option<usize> = dims[axis..].iter().map(Dim::known).product();
        let inner = inner.ok_or_else(|| {
            ConvertError::new("softmax over dynamic dims needs fixed dims; use --shape")
        })?;
        let flat = ctx.reshape(x, vec![-1, inner as i64])?;
        let s = ctx.add(LayerKind::Softmax { axis: 1 }, vec![flat])?;
        ctx.reshape_to(s, &dims)?
    };
    ctx.set_output(0, y)
}
