//! Reductions -> Reduce (with Unary/ElementWise for L1, L2, log-sum-exp...),
//! Softmax and LogSoftmax, ArgMax/ArgMin and TopK -> TopK, CumSum and
//! CumProd -> Cumulative.

use super::Add;
use crate::convert::ctx::DimSrc;
use crate::convert::{ConvertError, NodeCtx};
use jetrt_engine::ir::{ElementWiseOp as E, LayerKind, ReduceOp, TensorRef, TopKOp, UnaryOp};
use jetrt_engine::shape::{known_dims, Dim};
use jetrt_engine::DataType;

type R = Result<(), ConvertError>;

pub fn register(add: &mut Add<'_>) {
    for op in [
        "ReduceMean",
        "ReduceSum",
        "ReduceMax",
        "ReduceMin",
        "ReduceProd",
        "ReduceL1",
        "ReduceL2",
        "ReduceSumSquare",
        "ReduceLogSum",
        "ReduceLogSumExp",
    ] {
        add(op, 1, reduce);
    }
    add("Softmax", 1, softmax);
    add("LogSoftmax", 1, log_softmax);
    add("ArgMax", 1, arg_extreme);
    add("ArgMin", 1, arg_extreme);
    add("TopK", 1, top_k);
    add("CumSum", 11, cum_sum);
    add("CumProd", 26, cum_sum);
}

/// Resolves a reduction's axes: from the `axes` input (newer opsets) or
/// attribute, with `noop_with_empty_axes`. `None` means no reduction at all.
pub fn reduce_axes(
    ctx: &mut NodeCtx<'_>,
    rank: usize,
    input_since: u32,
) -> Result<Option<Vec<usize>>, ConvertError> {
    let axes = if ctx.opset >= input_since {
        ctx.opt_const(1, "the reduction axes")?
            .map(|t| t.to_i64_vec())
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

/// The L1 (`|x|` summed) or L2 (`sqrt` of `x²` summed) norm of `x` over
/// `axes`: ReduceL1/ReduceL2, and LpNormalization's divisor.
pub(super) fn l_norm(
    ctx: &mut NodeCtx<'_>,
    l2: bool,
    x: TensorRef,
    axes: &[usize],
    keep_dims: bool,
) -> Result<TensorRef, ConvertError> {
    if l2 {
        let sq = ctx.ew(E::Prod, x, x)?;
        let s = ctx.reduce(ReduceOp::Sum, axes, keep_dims, sq)?;
        ctx.un(UnaryOp::Sqrt, s)
    } else {
        let a = ctx.un(UnaryOp::Abs, x)?;
        ctx.reduce(ReduceOp::Sum, axes, keep_dims, a)
    }
}

fn reduce(ctx: &mut NodeCtx<'_>) -> R {
    let op_type = ctx.node.op_type.clone();
    let (op, since) = match op_type.as_str() {
        "ReduceMean" => (ReduceOp::Avg, 18),
        "ReduceSum" => (ReduceOp::Sum, 13),
        "ReduceMax" => (ReduceOp::Max, 18),
        "ReduceMin" => (ReduceOp::Min, 18),
        "ReduceProd" => (ReduceOp::Prod, 18),
        _ => (ReduceOp::Sum, 18),
    };
    let x = ctx.input(0)?;
    let rank = ctx.rank(x);
    let keep_dims = ctx.attr_int("keepdims", 1)? != 0;
    let Some(axes) = reduce_axes(ctx, rank, since)? else {
        // No reduction: only the element-wise part (|x|, x², log x, ...).
        let y = match op_type.as_str() {
            "ReduceL1" => ctx.un(UnaryOp::Abs, x)?,
            "ReduceSumSquare" => ctx.ew(E::Prod, x, x)?,
            "ReduceL2" => ctx.un(UnaryOp::Abs, x)?,
            "ReduceLogSum" => ctx.un(UnaryOp::Log, x)?,
            _ => ctx.add(LayerKind::Identity, vec![x])?,
        };
        return ctx.set_output(0, y);
    };
    let red = |ctx: &mut NodeCtx<'_>, op: ReduceOp, t: TensorRef, keep_dims: bool| {
        ctx.reduce(op, &axes, keep_dims, t)
    };
    let y = match op_type.as_str() {
        "ReduceL1" => l_norm(ctx, false, x, &axes, keep_dims)?,
        "ReduceSumSquare" => {
            let sq = ctx.ew(E::Prod, x, x)?;
            red(ctx, op, sq, keep_dims)?
        }
        "ReduceL2" => l_norm(ctx, true, x, &axes, keep_dims)?,
        "ReduceLogSum" => {
            let s = red(ctx, op, x, keep_dims)?;
            ctx.un(UnaryOp::Log, s)?
        }
        "ReduceLogSumExp" => {
            // max + log(sum(exp(x - max))): no overflow for large inputs.
            let m = red(ctx, ReduceOp::Max, x, true)?;
            let d = ctx.add(LayerKind::ElementWise { op: E::Sub }, vec![x, m])?;
            let e = ctx.un(UnaryOp::Exp, d)?;
            let s = red(ctx, ReduceOp::Sum, e, true)?;
            let l = ctx.un(UnaryOp::Log, s)?;
            let y = ctx.add(LayerKind::ElementWise { op: E::Sum }, vec![l, m])?;
            if keep_dims {
                y
            } else {
                let parts: Vec<DimSrc> = (0..rank)
                    .filter(|a| !axes.contains(a))
                    .map(DimSrc::Of)
                    .collect();
                ctx.reshape_from(y, &parts)?
            }
        }
        _ => red(ctx, op, x, keep_dims)?,
    };
    ctx.set_output(0, y)
}

/// Softmax along one axis (opset 13+), or over everything from `axis` on
/// (earlier opsets, which flatten to 2-D first).
fn softmax(ctx: &mut NodeCtx<'_>) -> R {
    softmax_like(ctx, false)
}

/// log(softmax(x)), computed as x - max - log(sum(exp(x - max))).
fn log_softmax(ctx: &mut NodeCtx<'_>) -> R {
    softmax_like(ctx, true)
}

fn log_softmax_along(
    ctx: &mut NodeCtx<'_>,
    x: TensorRef,
    axis: usize,
) -> Result<TensorRef, ConvertError> {
    let m = ctx.reduce(ReduceOp::Max, &[axis], true, x)?;
    let d = ctx.add(LayerKind::ElementWise { op: E::Sub }, vec![x, m])?;
    let e = ctx.un(UnaryOp::Exp, d)?;
    let s = ctx.reduce(ReduceOp::Sum, &[axis], true, e)?;
    let l = ctx.un(UnaryOp::Log, s)?;
    ctx.add(LayerKind::ElementWise { op: E::Sub }, vec![d, l])
}

fn softmax_like(ctx: &mut NodeCtx<'_>, log: bool) -> R {
    let x = ctx.input(0)?;
    let rank = ctx.rank(x);
    if rank == 0 {
        return Err(ConvertError::new("softmax of a scalar"));
    }
    let default = if ctx.opset >= 13 { -1 } else { 1 };
    let axis = ctx.axis(ctx.attr_int("axis", default)?, rank)?;
    let along = |ctx: &mut NodeCtx<'_>, t: TensorRef, axis: usize| {
        if log {
            log_softmax_along(ctx, t, axis)
        } else {
            ctx.add(LayerKind::Softmax { axis }, vec![t])
        }
    };
    let y = if ctx.opset >= 13 || axis == rank - 1 {
        along(ctx, x, axis)?
    } else {
        let dims = ctx.shape(x);
        let inner: Option<usize> = dims[axis..].iter().map(Dim::known).product();
        let inner = inner.ok_or_else(|| {
            ConvertError::new("softmax over dynamic dims needs fixed dims; use --shape")
        })?;
        let flat = ctx.reshape(x, vec![-1, inner as i64])?;
        let s = along(ctx, flat, 1)?;
        match known_dims(&dims) {
            Some(d) => ctx.reshape(s, d.into_iter().map(|d| d as i64).collect())?,
            None => {
                let parts: Vec<DimSrc> = (0..rank).map(DimSrc::Of).collect();
                let shape = ctx.shape_tensor_from(x, &parts)?;
                ctx.reshape_dynamic(s, shape)?
            }
        }
    };
    ctx.set_output(0, y)
}

/// Output `slot` of the layer producing `t`.
pub(super) fn slot(t: TensorRef, slot: usize) -> TensorRef {
    match t {
        TensorRef::Layer(l, _) => TensorRef::Layer(l, slot),
        other => other,
    }
}

/// ArgMax/ArgMin: TopK with k = 1 (reading the axis backwards for
/// select_last_index), indices as int64.
fn arg_extreme(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let rank = ctx.rank(x);
    let axis = ctx.axis(ctx.attr_int("axis", 0)?, rank)?;
    let keep = ctx.attr_int("keepdims", 1)? != 0;
    let last = ctx.attr_int("select_last_index", 0)? != 0;
    let op = if ctx.node.op_type == "ArgMax" {
        TopKOp::Max
    } else {
        TopKOp::Min
    };
    let n = ctx.shape(x)[axis].known();
    let src = match (last, n) {
        (false, _) => x,
        (true, Some(n)) => super::shape::slice_axis(ctx, x, axis, n as i64 - 1, n, -1)?,
        (true, None) => {
            return Err(ConvertError::new(
                "select_last_index needs a fixed axis length",
            ))
        }
    };
    let top = ctx.add(LayerKind::TopK { op, k: 1, axis }, vec![src])?;
    let mut y = ctx.cast(slot(top, 1), DataType::I64)?;
    if let (true, Some(n)) = (last, n) {
        let hi = ctx.scalar(DataType::I64, n as f64 - 1.0, rank)?;
        y = ctx.add(LayerKind::ElementWise { op: E::Sub }, vec![hi, y])?;
    }
    if !keep {
        let parts: Vec<DimSrc> = (0..rank).filter(|&a| a != axis).map(DimSrc::Of).collect();
        y = ctx.reshape_from(y, &parts)?;
    }
    ctx.set_output(0, y)
}

fn top_k(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let rank = ctx.rank(x);
    let axis = ctx.axis(ctx.attr_int("axis", -1)?, rank)?;
    let k = if ctx.opset < 10 {
        ctx.attr_int("k", 0)?
    } else {
        let t = ctx.require_const(1, "k")?;
        t.to_i64_vec()
            .first()
            .copied()
            .ok_or_else(|| ConvertError::new("k is empty"))?
    };
    let k = usize::try_from(k).map_err(|_| ConvertError::new(format!("k = {k} is negative")))?;
    let largest = ctx.opset < 11 || ctx.attr_int("largest", 1)? != 0;
    let op = if largest { TopKOp::Max } else { TopKOp::Min };
    let top = ctx.add(LayerKind::TopK { op, k, axis }, vec![x])?;
    ctx.set_output(0, slot(top, 0))?;
    let idx = ctx.cast(slot(top, 1), DataType::I64)?;
    ctx.set_output(1, idx)
}

fn cum_sum(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let rank = ctx.rank(x);
    let a = ctx.require_const(1, "the axis")?;
    let axis = a
        .to_i64_vec()
        .first()
        .copied()
        .ok_or_else(|| ConvertError::new("axis is empty"))?;
    let axis = ctx.axis(axis, rank)?;
    let y = ctx.add(
        LayerKind::Cumulative {
            axis,
            exclusive: ctx.attr_int("exclusive", 0)? != 0,
            reverse: ctx.attr_int("reverse", 0)? != 0,
            product: ctx.node.op_type == "CumProd",
        },
        vec![x],
    )?;
    ctx.set_output(0, y)
}
