//! Data movement and shape arithmetic: Reshape, Flatten, Transpose,
//! Squeeze, Unsqueeze, Concat, Split, Slice, Shape, Gather, Identity,
//! Dropout, Constant, Cast.

use super::Add;
use crate::convert::ctx::DimSrc;
use crate::convert::{ConvertError, NodeCtx};
use crate::onnx::dtype_from_onnx;
use jetrt_engine::ir::{
    GatherMode, LayerKind, ReduceOp, ShuffleParams, SliceMode, SliceParams, TensorRef,
};
use jetrt_engine::shape::Dim;
use jetrt_engine::{DataType, Tensor};

type R = Result<(), ConvertError>;

pub fn register(add: &mut Add<'_>) {
    add("Reshape", 1, reshape);
    add("Flatten", 1, flatten);
    add("Transpose", 1, transpose);
    add("Squeeze", 1, squeeze);
    add("Unsqueeze", 1, unsqueeze);
    add("Concat", 1, concat);
    add("Split", 1, split);
    add("Slice", 1, slice);
    add("Shape", 1, shape);
    add("Gather", 1, gather);
    add("Identity", 1, identity);
    add("Dropout", 1, dropout);
    add("Constant", 1, constant);
    add("Cast", 1, cast);
}

fn reshape(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let allow_zero = ctx.opset >= 14 && ctx.attr_int("allowzero", 0)? != 0;
    let (reshape, extra) = if ctx.opset < 5 {
        let s = ctx
            .attr_ints("shape")?
            .ok_or_else(|| ConvertError::new("shape attribute is missing"))?;
        (Some(s), None)
    } else {
        let s = ctx.input(1)?;
        match ctx.const_value(s)? {
            Some(v) => (Some(v.to_i64_vec()), None),
            None => (None, Some(ctx.cast(s, DataType::I64)?)),
        }
    };
    let inputs = std::iter::once(x).chain(extra).collect();
    let y = ctx.add(
        LayerKind::Shuffle(ShuffleParams {
            first_transpose: None,
            reshape,
            second_transpose: None,
            zero_is_placeholder: !allow_zero,
        }),
        inputs,
    )?;
    ctx.set_output(0, y)
}

/// Product of a run of dims, as one known number if it is.
fn known_product(dims: &[Dim]) -> Option<i64> {
    dims.iter().map(|d| d.known().map(|n| n as i64)).product()
}

fn flatten(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let dims = ctx.shape(x);
    let rank = dims.len();
    let axis = ctx.attr_int("axis", 1)?;
    let axis = if axis == rank as i64 {
        rank
    } else {
        ctx.axis(axis, rank.max(1))?
    };
    let (front, back) = (known_product(&dims[..axis]), known_product(&dims[axis..]));
    let y = match (front, back) {
        (Some(f), Some(b)) => ctx.reshape(x, vec![f, b])?,
        (_, Some(b)) => ctx.reshape(x, vec![-1, b])?,
        (Some(f), _) => ctx.reshape(x, vec![f, -1])?,
        (None, None) => {
            // [prod(front), -1] from the run-time shape.
            let shape = ctx.add(LayerKind::Shape, vec![x])?;
            let head = ctx.add(
                LayerKind::Slice(SliceParams {
                    start: vec![0],
                    size: vec![axis],
                    stride: vec![1],
                    mode: SliceMode::StrictBounds,
                    fill: 0.0,
                }),
                vec![shape],
            )?;
            let f = ctx.add(
                LayerKind::Reduce {
                    op: ReduceOp::Prod,
                    axes: vec![0],
                    keep_dims: true,
                },
                vec![head],
            )?;
            let minus_one = ctx.constant(Tensor::vec_i64(vec![-1]));
            let dims = ctx.add(LayerKind::Concatenation { axis: 0 }, vec![f, minus_one])?;
            ctx.reshape_dynamic(x, dims)?
        }
    };
    ctx.set_output(0, y)
}

fn transpose(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let rank = ctx.rank(x);
    let perm = match ctx.attr_ints("perm")? {
        Some(p) => p
            .into_iter()
            .map(|a| ctx.axis(a, rank))
            .collect::<Result<Vec<_>, _>>()?,
        None => (0..rank).rev().collect(),
    };
    let y = ctx.add(
        LayerKind::Shuffle(ShuffleParams {
            first_transpose: Some(perm),
            reshape: None,
            second_transpose: None,
            zero_is_placeholder: true,
        }),
        vec![x],
    )?;
    ctx.set_output(0, y)
}

/// Axes from the attribute (before `input_since`) or the constant input 1.
fn axes_operand(ctx: &mut NodeCtx<'_>, input_since: u32) -> Result<Option<Vec<i64>>, ConvertError> {
    if ctx.opset >= input_since {
        match ctx.opt_input(1)? {
            Some(_) => Ok(Some(ctx.require_const(1, "the axes")?.to_i64_vec())),
            None => Ok(None),
        }
    } else {
        ctx.attr_ints("axes")
    }
}

fn squeeze(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let dims = ctx.shape(x);
    let rank = dims.len();
    let axes: Vec<usize> = match axes_operand(ctx, 13)? {
        Some(a) => a
            .into_iter()
            .map(|a| ctx.axis(a, rank))
            .collect::<Result<_, _>>()?,
        None => {
            if dims.iter().any(|d| !d.is_known()) {
                return Err(ConvertError::new(
                    "Squeeze without axes needs fixed dims; give them with --shape",
                ));
            }
            (0..rank).filter(|&i| dims[i] == Dim::Known(1)).collect()
        }
    };
    for &a in &axes {
        if let Dim::Known(n) = dims[a] {
            if n != 1 {
                return Err(ConvertError::new(format!(
                    "cannot squeeze axis {a} of size {n}"
                )));
            }
        }
    }
    let parts: Vec<DimSrc> = (0..rank)
        .filter(|i| !axes.contains(i))
        .map(DimSrc::Of)
        .collect();
    let y = ctx.reshape_from(x, &parts)?;
    ctx.set_output(0, y)
}

fn unsqueeze(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let rank = ctx.rank(x);
    let axes = axes_operand(ctx, 13)?.ok_or_else(|| ConvertError::new("axes are required"))?;
    let out_rank = rank + axes.len();
    let mut axes: Vec<usize> = axes
        .into_iter()
        .map(|a| ctx.axis(a, out_rank))
        .collect::<Result<_, _>>()?;
    axes.sort();
    if axes.windows(2).any(|w| w[0] == w[1]) {
        return Err(ConvertError::new("axes repeat"));
    }
    let mut src = 0;
    let parts: Vec<DimSrc> = (0..out_rank)
        .map(|i| {
            if axes.contains(&i) {
                DimSrc::Const(1)
            } else {
                src += 1;
                DimSrc::Of(src - 1)
            }
        })
        .collect();
    let y = ctx.reshape_from(x, &parts)?;
    ctx.set_output(0, y)
}

fn concat(ctx: &mut NodeCtx<'_>) -> R {
    let inputs = ctx.inputs()?;
    let first = *inputs
        .first()
        .ok_or_else(|| ConvertError::new("needs at least one input"))?;
    let rank = ctx.rank(first);
    let axis = ctx
        .axis(
            ctx.attr_int("axis", if ctx.opset < 4 { 1 } else { i64::MIN })?,
            rank,
        )
        .map_err(|_| ConvertError::new("axis is missing or out of range"))?;
    let y = ctx.add(LayerKind::Concatenation { axis }, inputs)?;
    ctx.set_output(0, y)
}

/// A Slice of `x` along `axis` (start, len, stride); other dims whole, even
/// when dynamic.
pub fn slice_axis(
    ctx: &mut NodeCtx<'_>,
    x: TensorRef,
    axis: usize,
    start: i64,
    len: usize,
    step: i64,
) -> Result<TensorRef, ConvertError> {
    let dims = ctx.shape(x);
    let rank = dims.len();
    let mut starts = vec![0i64; rank];
    let mut strides = vec![1i64; rank];
    starts[axis] = start;
    strides[axis] = step;
    let sizes: Option<Vec<usize>> = dims
        .iter()
        .enumerate()
        .map(|(i, d)| if i == axis { Some(len) } else { d.known() })
        .collect();
    let params = |size: Vec<usize>| SliceParams {
        start: starts.clone(),
        size,
        stride: strides.clone(),
        mode: SliceMode::StrictBounds,
        fill: 0.0,
    };
    match sizes {
        Some(size) => ctx.add(LayerKind::Slice(params(size)), vec![x]),
        None => {
            let parts: Vec<DimSrc> = (0..rank)
                .map(|i| {
                    if i == axis {
                        DimSrc::Const(len as i64)
                    } else {
                        DimSrc::Of(i)
                    }
                })
                .collect();
            let size = ctx.shape_tensor_from(x, &parts)?;
            let st = ctx.constant(Tensor::vec_i64(starts.clone()));
            let sd = ctx.constant(Tensor::vec_i64(strides.clone()));
            ctx.add(
                LayerKind::Slice(params(vec![0; rank])),
                vec![x, st, size, sd],
            )
        }
    }
}

fn split(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let rank = ctx.rank(x);
    let axis = ctx.axis(ctx.attr_int("axis", 0)?, rank)?;
    let n = ctx.shape(x)[axis].known().ok_or_else(|| {
        ConvertError::new("Split along a dynamic dim needs fixed dims; give them with --shape")
    })?;
    let outputs = ctx.node.output.len();
    let sizes: Vec<usize> = match if ctx.opset >= 13 {
        ctx.const_ints(1)?
    } else {
        ctx.attr_ints("split")?
    } {
        Some(s) => s
            .into_iter()
            .map(|v| usize::try_from(v).map_err(|_| ConvertError::new("negative split size")))
            .collect::<Result<_, _>>()?,
        None => {
            if ctx.opset >= 13 && ctx.opt_input(1)?.is_some() {
                return Err(ConvertError::new("split sizes must be known at build time"));
            }
            let parts = if ctx.opset >= 18 {
                ctx.attr_int("num_outputs", outputs as i64)? as usize
            } else {
                outputs
            };
            if parts == 0 {
                return Err(ConvertError::new("no outputs to split into"));
            }
            // Equal chunks; the last one smaller when the dim does not divide (opset 18).
            let chunk = n.div_ceil(parts);
            (0..parts)
                .map(|i| chunk.min(n.saturating_sub(i * chunk)))
                .collect()
        }
    };
    if sizes.iter().sum::<usize>() != n || sizes.len() != outputs {
        return Err(ConvertError::new(format!(
            "split sizes {sizes:?} do not cover the dim of {n} with {outputs} outputs"
        )));
    }
    let mut start = 0;
    for (i, &len) in sizes.iter().enumerate() {
        let y = slice_axis(ctx, x, axis, start as i64, len, 1)?;
        ctx.set_output(i, y)?;
        start += len;
    }
    Ok(())
}

/// ONNX Slice with clamped starts/ends; the sliced dims must be known.
fn slice(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let dims = ctx.shape(x);
    let rank = dims.len();
    let (starts, ends, axes, steps) = if ctx.opset < 10 {
        (
            ctx.attr_ints("starts")?
                .ok_or_else(|| ConvertError::new("starts are required"))?,
            ctx.attr_ints("ends")?
                .ok_or_else(|| ConvertError::new("ends are required"))?,
            ctx.attr_ints("axes")?,
            None,
        )
    } else {
        (
            ctx.require_const(1, "the starts")?.to_i64_vec(),
            ctx.require_const(2, "the ends")?.to_i64_vec(),
            ctx.const_ints(3)?,
            ctx.const_ints(4)?,
        )
    };
    if ctx.opset >= 10
        && (ctx.opt_input(3)?.is_some() && axes.is_none()
            || ctx.opt_input(4)?.is_some() && steps.is_none())
    {
        return Err(ConvertError::new(
            "axes and steps must be known at build time",
        ));
    }
    let axes: Vec<usize> = match axes {
        Some(a) => a
            .into_iter()
            .map(|a| ctx.axis(a, rank))
            .collect::<Result<_, _>>()?,
        None => (0..starts.len()).collect(),
    };
    let steps = steps.unwrap_or(vec![1; axes.len()]);
    if starts.len() != axes.len() || ends.len() != axes.len() || steps.len() != axes.len() {
        return Err(ConvertError::new(
            "starts, ends, axes and steps differ in length",
        ));
    }
    let mut y = x;
    let mut plan = Vec::new();
    for (k, &a) in axes.iter().enumerate() {
        let (s, e, st) = (starts[k], ends[k], steps[k]);
        if st == 0 {
            return Err(ConvertError::new("slice step 0"));
        }
        let n = match dims[a].known() {
            Some(n) => n as i64,
            // A whole dynamic dim (start 0 to "end") is no slice at all.
            None if s == 0 && st == 1 && e >= i32::MAX as i64 => continue,
            None => {
                return Err(ConvertError::new(
                    "slicing a dynamic dim needs fixed dims; give them with --shape",
                ))
            }
        };
        let norm = |v: i64| if v < 0 { v + n } else { v };
        let (start, len) = if st > 0 {
            let (s, e) = (norm(s).clamp(0, n), norm(e).clamp(0, n));
            (s, if e > s { (e - s + st - 1) / st } else { 0 })
        } else {
            let (s, e) = (norm(s).clamp(0, n - 1), norm(e).clamp(-1, n - 1));
            (
                s,
                if s > e {
                    (s - e + (-st) - 1) / (-st)
                } else {
                    0
                },
            )
        };
        plan.push((a, start, len as usize, st));
    }
    if plan.is_empty() {
        y = ctx.add(LayerKind::Identity, vec![x])?;
    }
    // One Slice per sliced axis keeps every layer expressible with dynamic other dims.
    for (a, start, len, st) in plan {
        y = slice_axis(ctx, y, a, start, len, st)?;
    }
    ctx.set_output(0, y)
}

fn shape(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let rank = ctx.rank(x) as i64;
    let mut y = ctx.add(LayerKind::Shape, vec![x])?;
    if ctx.opset >= 15 {
        let clamp = |v: i64| (if v < 0 { v + rank } else { v }).clamp(0, rank);
        let start = clamp(ctx.attr_int("start", 0)?);
        let end = clamp(ctx.attr_int("end", rank)?);
        if (start, end) != (0, rank) {
            let len = (end - start).max(0) as usize;
            y = slice_axis(ctx, y, 0, start, len, 1)?;
        }
    }
    ctx.set_output(0, y)
}

fn gather(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let idx = ctx.input(1)?;
    let rank = ctx.rank(x);
    let axis = ctx.axis(ctx.attr_int("axis", 0)?, rank)?;
    // Constant indices are normalized to be non-negative, as TensorRT requires.
    let idx = match (ctx.const_value(idx)?, ctx.shape(x)[axis].known()) {
        (Some(v), Some(n)) if v.to_i64_vec().iter().any(|&i| i < 0) => {
            let fixed: Vec<i64> = v
                .to_i64_vec()
                .into_iter()
                .map(|i| if i < 0 { i + n as i64 } else { i })
                .collect();
            ctx.constant(Tensor::from_i64(v.shape(), fixed)?)
        }
        _ => idx,
    };
    let y = ctx.add(
        LayerKind::Gather {
            axis,
            mode: GatherMode::Default,
        },
        vec![x, idx],
    )?;
    ctx.set_output(0, y)
}

fn identity(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let y = ctx.add(LayerKind::Identity, vec![x])?;
    ctx.set_output(0, y)
}

/// Dropout is the identity at inference.
fn dropout(ctx: &mut NodeCtx<'_>) -> R {
    let training = if ctx.opset >= 12 {
        ctx.const_input(2)?
            .map(|t| t.to_i64_vec().first().copied().unwrap_or(0) != 0)
    } else {
        Some(ctx.attr_int("is_test", 1)? == 0 && ctx.opset < 7)
    };
    if training == Some(true) || (training.is_none() && ctx.opt_input(2)?.is_some()) {
        return Err(ConvertError::new(
            "training mode is not supported; export the model in eval mode",
        ));
    }
    if ctx.wants_output(1) {
        return Err(ConvertError::new("the mask output is not supported"));
    }
    identity(ctx)
}

fn constant(ctx: &mut NodeCtx<'_>) -> R {
    let t = if let Some(t) = ctx.attr_tensor("value")? {
        t
    } else if ctx.has_attr("value_float") {
        Tensor::scalar_f32(ctx.attr_float("value_float", 0.0)?)
    } else if let Some(v) = ctx.attr_floats("value_floats")? {
        Tensor::from_f32(&[v.len()], v)?
    } else if ctx.has_attr("value_int") {
        Tensor::from_i64(&[], vec![ctx.attr_int("value_int", 0)?])?
    } else if let Some(v) = ctx.attr_ints("value_ints")? {
        Tensor::vec_i64(v)
    } else {
        return Err(ConvertError::new(
            "only tensor, float(s) and int(s) constants are supported (not strings or sparse tensors)",
        ));
    };
    let y = ctx.constant(t);
    ctx.set_output(0, y)
}

fn cast(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let to = dtype_from_onnx(ctx.attr_int("to", 0)? as i32).map_err(ConvertError::new)?;
    let y = ctx.add(LayerKind::Cast { to }, vec![x])?;
    ctx.set_output(0, y)
}
