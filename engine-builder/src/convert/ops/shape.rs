//! Data movement and shape arithmetic: Reshape, Flatten, Transpose,
//! Squeeze, Unsqueeze, Concat, Split, Slice, Shape, Gather, Identity,
//! Dropout, Constant, Cast.

use super::Add;
use crate::convert::ctx::DimSrc;
use crate::convert::{ConvertError, NodeCtx};
use crate::onnx::dtype_from_onnx;
use jetrt_engine::ir::{
    ElementWiseOp, GatherMode, LayerKind, ReduceOp, ShuffleParams, SliceMode, SliceParams,
    TensorRef,
};
use jetrt_engine::shape::{known_dims, Dim};
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
    add("CastLike", 15, cast_like);
    add("Size", 1, size);
    add("ConstantOfShape", 9, constant_of_shape);
    add("Range", 11, range);
    add("Expand", 8, expand);
    add("Tile", 6, tile);
    add("Pad", 2, pad);
    add("GatherElements", 11, gather_elements);
    add("DepthToSpace", 1, depth_to_space);
    add("SpaceToDepth", 1, space_to_depth);
    add("Trilu", 14, trilu);
}

/// The element count of a tensor, as an int64 scalar.
fn size(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let s = ctx.add(LayerKind::Shape, vec![x])?;
    let y = ctx.add(
        LayerKind::Reduce {
            op: ReduceOp::Prod,
            axes: vec![0],
            keep_dims: false,
        },
        vec![s],
    )?;
    ctx.set_output(0, y)
}

/// A constant tensor of the given dims, filled with the `value` attribute.
fn constant_of_shape(ctx: &mut NodeCtx<'_>) -> R {
    let dims = ctx.require_const(0, "the shape")?.to_i64_vec();
    let dims: Vec<usize> = dims
        .into_iter()
        .map(|d| usize::try_from(d).map_err(|_| ConvertError::new(format!("negative dim {d}"))))
        .collect::<Result<_, _>>()?;
    let value = match ctx.attr_tensor("value")? {
        Some(v) if v.len() == 1 => v,
        Some(_) => return Err(ConvertError::new("value must hold one element")),
        None => Tensor::scalar_f32(0.0),
    };
    let n: usize = dims.iter().product();
    let data =
        jetrt_engine::with_data!(value.data(), v => jetrt_engine::TensorData::from(vec![v[0]; n]));
    let y = ctx.constant(Tensor::new(dims, data)?);
    ctx.set_output(0, y)
}

/// Range(start, limit, delta), computed at build time.
fn range(ctx: &mut NodeCtx<'_>) -> R {
    let start = ctx.require_const(0, "the start")?;
    let limit = ctx.require_const(1, "the limit")?;
    let delta = ctx.require_const(2, "the delta")?;
    let first = |t: &Tensor| t.to_f64_vec().first().copied().unwrap_or(0.0);
    let (s, l, d) = (first(&start), first(&limit), first(&delta));
    if d == 0.0 {
        return Err(ConvertError::new("delta is zero"));
    }
    let n = ((l - s) / d).ceil().max(0.0) as usize;
    let data = match start.dtype() {
        DataType::F32 | DataType::F16 => {
            // Accumulate as the ONNX definition does, in the input type.
            let (s, d) = (s as f32, d as f32);
            jetrt_engine::TensorData::F32((0..n).map(|i| s + i as f32 * d).collect())
        }
        DataType::I32 => jetrt_engine::TensorData::I32(
            (0..n).map(|i| (s as i32) + i as i32 * d as i32).collect(),
        ),
        DataType::I64 => {
            let (s, d) = (start.to_i64_vec()[0], delta.to_i64_vec()[0]);
            jetrt_engine::TensorData::I64((0..n as i64).map(|i| s + i * d).collect())
        }
        other => {
            return Err(ConvertError::new(format!(
                "Range of {other} is not supported"
            )))
        }
    };
    let mut t = Tensor::new(vec![n], data)?;
    if start.dtype() == DataType::F16 {
        t = t.cast(DataType::F16);
    }
    let y = ctx.constant(t);
    ctx.set_output(0, y)
}

/// A Slice with stride 0 along broadcast dims: how TensorRT expands.
fn broadcast_to(
    ctx: &mut NodeCtx<'_>,
    x: TensorRef,
    target: &[Dim],
) -> Result<TensorRef, ConvertError> {
    let rank = target.len();
    let r = ctx.rank(x);
    let x = ctx.unsqueeze_front(x, rank - r)?;
    let dims = ctx.shape(x);
    let stride: Vec<i64> = dims
        .iter()
        .zip(target)
        .map(|(d, t)| {
            if *d == Dim::Known(1) && *t != Dim::Known(1) {
                0
            } else {
                1
            }
        })
        .collect();
    let parts: Vec<DimSrc> = target
        .iter()
        .enumerate()
        .map(|(i, t)| match t {
            Dim::Known(n) => DimSrc::Const(*n as i64),
            // A dynamic target dim is the input's own.
            _ => DimSrc::Of(i),
        })
        .collect();
    slice_with(
        ctx,
        x,
        vec![0; rank],
        &parts,
        stride,
        SliceMode::StrictBounds,
        0.0,
    )
}

/// A Slice whose sizes may be read from `x` at run time.
fn slice_with(
    ctx: &mut NodeCtx<'_>,
    x: TensorRef,
    start: Vec<i64>,
    size: &[DimSrc],
    stride: Vec<i64>,
    mode: SliceMode,
    fill: f64,
) -> Result<TensorRef, ConvertError> {
    let known: Option<Vec<usize>> = size
        .iter()
        .map(|p| match p {
            DimSrc::Const(c) => usize::try_from(*c).ok(),
            DimSrc::Of(i) => ctx.shape(x)[*i].known(),
        })
        .collect();
    let rank = start.len();
    let params = |size: Vec<usize>| SliceParams {
        start: start.clone(),
        size,
        stride: stride.clone(),
        mode,
        fill,
    };
    match known {
        Some(size) => ctx.add(LayerKind::Slice(params(size)), vec![x]),
        None => {
            let sz = ctx.shape_tensor_from(x, size)?;
            let st = ctx.constant(Tensor::vec_i64(start.clone()));
            let sd = ctx.constant(Tensor::vec_i64(stride.clone()));
            ctx.add(LayerKind::Slice(params(vec![0; rank])), vec![x, st, sz, sd])
        }
    }
}

fn expand(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let shape = ctx.require_const(1, "the shape")?.to_i64_vec();
    let xd = ctx.shape(x);
    let rank = xd.len().max(shape.len());
    // Bidirectional broadcast of the input dims with the given ones.
    let pad = |v: &[Dim], n: usize| -> Vec<Dim> {
        let mut out = vec![Dim::Known(1); n - v.len()];
        out.extend_from_slice(v);
        out
    };
    let given: Vec<Dim> = shape
        .iter()
        .map(|&d| {
            usize::try_from(d)
                .map(Dim::Known)
                .map_err(|_| ConvertError::new(format!("negative dim {d}")))
        })
        .collect::<Result<_, _>>()?;
    let (a, b) = (pad(&xd, rank), pad(&given, rank));
    let target = jetrt_engine::ir::infer::broadcast_shapes(&a, &b).map_err(ConvertError::new)?;
    let y = broadcast_to(ctx, x, &target)?;
    ctx.set_output(0, y)
}

/// Tile: a Slice in wrap mode over `repeats` times the input.
fn tile(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let repeats = ctx.require_const(1, "the repeats")?.to_i64_vec();
    let dims = ctx.known_dims(x, "Tile")?;
    if repeats.len() != dims.len() || repeats.iter().any(|&r| r < 0) {
        return Err(ConvertError::new(
            "repeats must have one non-negative entry per dim",
        ));
    }
    let size: Vec<DimSrc> = dims
        .iter()
        .zip(&repeats)
        .map(|(&d, &r)| DimSrc::Const(d as i64 * r))
        .collect();
    let y = slice_with(
        ctx,
        x,
        vec![0; dims.len()],
        &size,
        vec![1; dims.len()],
        SliceMode::Wrap,
        0.0,
    )?;
    ctx.set_output(0, y)
}

/// Pad: a Slice starting before the input and reaching past it, in fill,
/// reflect, clamp (edge) or wrap mode, as TensorRT pads.
fn pad(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let rank = ctx.rank(x);
    let mode = ctx
        .attr_string("mode")?
        .unwrap_or_else(|| "constant".into());
    let (pads, value) = if ctx.opset < 11 {
        let p = ctx
            .attr_ints(if ctx.opset < 2 { "paddings" } else { "pads" })?
            .unwrap_or_default();
        (p, ctx.attr_float("value", 0.0)? as f64)
    } else {
        let p = ctx.require_const(1, "the pads")?.to_i64_vec();
        let v = ctx
            .opt_const(2, "the constant value")?
            .and_then(|t| t.to_f64_vec().first().copied())
            .unwrap_or(0.0);
        (p, v)
    };
    let axes: Vec<usize> = match ctx.opt_const(3, "the axes")? {
        Some(a) if ctx.opset >= 18 => a
            .to_i64_vec()
            .into_iter()
            .map(|a| ctx.axis(a, rank))
            .collect::<Result<_, _>>()?,
        _ => (0..rank).collect(),
    };
    if pads.len() != 2 * axes.len() {
        return Err(ConvertError::new(format!(
            "{} pads for {} axes",
            pads.len(),
            axes.len()
        )));
    }
    let mode = match mode.as_str() {
        "constant" => SliceMode::Fill,
        "reflect" => SliceMode::Reflect,
        "edge" => SliceMode::Clamp,
        "wrap" => SliceMode::Wrap,
        other => return Err(ConvertError::new(format!("unknown pad mode '{other}'"))),
    };
    let mut start = vec![0i64; rank];
    let mut grow = vec![0i64; rank];
    for (k, &a) in axes.iter().enumerate() {
        start[a] = -pads[k];
        grow[a] = pads[k] + pads[axes.len() + k];
    }
    let dims = ctx.shape(x);
    let y = match known_dims(&dims) {
        Some(d) => {
            let size: Vec<DimSrc> = d
                .iter()
                .zip(&grow)
                .map(|(&n, &g)| DimSrc::Const(n as i64 + g))
                .collect();
            slice_with(ctx, x, start, &size, vec![1; rank], mode, value)?
        }
        None => {
            // Sizes are the run-time dims plus the padding.
            let s = ctx.add(LayerKind::Shape, vec![x])?;
            let g = ctx.constant(Tensor::vec_i64(grow));
            let size = ctx.add(
                LayerKind::ElementWise {
                    op: ElementWiseOp::Sum,
                },
                vec![s, g],
            )?;
            let st = ctx.constant(Tensor::vec_i64(start));
            let sd = ctx.constant(Tensor::vec_i64(vec![1; rank]));
            ctx.add(
                LayerKind::Slice(SliceParams {
                    start: vec![0; rank],
                    size: vec![0; rank],
                    stride: vec![1; rank],
                    mode,
                    fill: value,
                }),
                vec![x, st, size, sd],
            )?
        }
    };
    ctx.set_output(0, y)
}

fn gather_elements(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let idx = ctx.input(1)?;
    let axis = ctx.axis(ctx.attr_int("axis", 0)?, ctx.rank(x))?;
    let y = ctx.gather(x, idx, axis, GatherMode::Element)?;
    ctx.set_output(0, y)
}

/// Reshape, transpose, reshape: one Shuffle (reshape then transpose) and a
/// reshape.
fn rearrange(
    ctx: &mut NodeCtx<'_>,
    x: TensorRef,
    split: Vec<i64>,
    perm: Vec<usize>,
    out: Vec<i64>,
) -> Result<TensorRef, ConvertError> {
    let t = ctx.add(
        LayerKind::Shuffle(ShuffleParams {
            first_transpose: None,
            reshape: Some(split),
            second_transpose: Some(perm),
            zero_is_placeholder: false,
        }),
        vec![x],
    )?;
    ctx.reshape(t, out)
}

fn block_size(ctx: &NodeCtx<'_>) -> Result<i64, ConvertError> {
    let b = ctx.attr_int("blocksize", 0)?;
    if b <= 0 {
        return Err(ConvertError::new("blocksize must be positive"));
    }
    Ok(b)
}

fn depth_to_space(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let d = ctx.known_dims(x, "DepthToSpace")?;
    let b = block_size(ctx)?;
    let [n, c, h, w] = d[..] else {
        return Err(ConvertError::new("DepthToSpace takes a 4-D input"));
    };
    let (n, c, h, w) = (n as i64, c as i64, h as i64, w as i64);
    if c % (b * b) != 0 {
        return Err(ConvertError::new(format!(
            "{c} channels do not divide by blocksize² = {}",
            b * b
        )));
    }
    let crd = ctx.attr_string("mode")?.as_deref() == Some("CRD");
    let (split, perm) = if crd {
        (vec![n, c / (b * b), b, b, h, w], vec![0, 1, 4, 2, 5, 3])
    } else {
        (vec![n, b, b, c / (b * b), h, w], vec![0, 3, 4, 1, 5, 2])
    };
    let y = rearrange(ctx, x, split, perm, vec![n, c / (b * b), h * b, w * b])?;
    ctx.set_output(0, y)
}

fn space_to_depth(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let d = ctx.known_dims(x, "SpaceToDepth")?;
    let b = block_size(ctx)?;
    let [n, c, h, w] = d[..] else {
        return Err(ConvertError::new("SpaceToDepth takes a 4-D input"));
    };
    let (n, c, h, w) = (n as i64, c as i64, h as i64, w as i64);
    if h % b != 0 || w % b != 0 {
        return Err(ConvertError::new(format!(
            "{h}x{w} does not divide by blocksize {b}"
        )));
    }
    // Depth-column-row (the default) or, since opset 28, column-row-depth.
    let perm = if ctx.attr_string("mode")?.as_deref() == Some("CRD") {
        vec![0, 1, 3, 5, 2, 4]
    } else {
        vec![0, 3, 5, 1, 2, 4]
    };
    let y = rearrange(
        ctx,
        x,
        vec![n, c, h / b, b, w / b, b],
        perm,
        vec![n, c * b * b, h / b, w / b],
    )?;
    ctx.set_output(0, y)
}

/// Trilu: a Select with a constant triangular mask over the last two dims.
fn trilu(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let dims = ctx.shape(x);
    let rank = dims.len();
    if rank < 2 {
        return Err(ConvertError::new("Trilu needs a rank >= 2 input"));
    }
    let (rows, cols) = match (dims[rank - 2].known(), dims[rank - 1].known()) {
        (Some(r), Some(c)) => (r, c),
        _ => {
            return Err(ConvertError::new(
                "Trilu needs fixed matrix dims; give them with --shape",
            ))
        }
    };
    let k = match ctx.opt_const(1, "k")? {
        Some(t) => t.to_i64_vec().first().copied().unwrap_or(0),
        None => 0,
    };
    let upper = ctx.attr_int("upper", 1)? != 0;
    let mask: Vec<bool> = (0..rows * cols)
        .map(|i| {
            let (r, c) = ((i / cols) as i64, (i % cols) as i64);
            if upper {
                c - r >= k
            } else {
                c - r <= k
            }
        })
        .collect();
    let mut mdims = vec![1; rank - 2];
    mdims.extend([rows, cols]);
    let m = ctx.constant(Tensor::new(mdims, jetrt_engine::TensorData::Bool(mask))?);
    let zero = ctx.scalar(ctx.dtype(x), 0.0, rank)?;
    let y = ctx.add(LayerKind::Select, vec![m, x, zero])?;
    ctx.set_output(0, y)
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
        ctx.opt_const(1, "the split sizes")?.map(|t| t.to_i64_vec())
    } else {
        ctx.attr_ints("split")?
    } {
        Some(s) => s
            .into_iter()
            .map(|v| usize::try_from(v).map_err(|_| ConvertError::new("negative split size")))
            .collect::<Result<_, _>>()?,
        None => {
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
            ctx.opt_const(3, "the axes")?.map(|t| t.to_i64_vec()),
            ctx.opt_const(4, "the steps")?.map(|t| t.to_i64_vec()),
        )
    };
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
    let y = ctx.gather(x, idx, axis, GatherMode::Default)?;
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
        // At inference every element is kept: the mask is all true.
        let x = ctx.input(0)?;
        let dims = ctx.known_dims(x, "Dropout's mask output")?;
        let n = dims.iter().product();
        let m = ctx.constant(Tensor::new(
            dims,
            jetrt_engine::TensorData::Bool(vec![true; n]),
        )?);
        ctx.set_output(1, m)?;
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

/// Cast to the type of input 1.
fn cast_like(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let like = ctx.input(1)?;
    let to = ctx.dtype(like);
    let y = ctx.add(LayerKind::Cast { to }, vec![x])?;
    ctx.set_output(0, y)
}

fn cast(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let to = dtype_from_onnx(ctx.attr_int("to", 0)? as i32).map_err(ConvertError::new)?;
    let y = ctx.add(LayerKind::Cast { to }, vec![x])?;
    ctx.set_output(0, y)
}
