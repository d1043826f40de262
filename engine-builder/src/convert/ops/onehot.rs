//! Tensors of ones at chosen places: OneHot and Hardmax (a comparison of
//! the indices with a constant ramp along the axis), EyeLike (a constant).

use super::Add;
use crate::convert::{ConvertError, NodeCtx};
use crate::onnx::dtype_from_onnx;
use jetrt_engine::ir::{ElementWiseOp as E, LayerKind, TensorRef, TopKOp};
use jetrt_engine::{DataType, Tensor, TensorData};

type R = Result<(), ConvertError>;

/// The most values along a one-hot axis (and rows or columns of an
/// EyeLike) a model may ask for: a ramp constant of that many values.
const MAX_DEPTH: usize = 1 << 24;

pub fn register(add: &mut Add<'_>) {
    add("OneHot", 9, one_hot);
    add("Hardmax", 13, hardmax);
    add("EyeLike", 9, eye_like);
}

/// `[0, 1, .., n - 1]` as int64 along `axis` of `rank` dims (1 elsewhere).
fn ramp(
    ctx: &mut NodeCtx<'_>,
    n: usize,
    axis: usize,
    rank: usize,
) -> Result<TensorRef, ConvertError> {
    let mut shape = vec![1; rank];
    shape[axis] = n;
    let t = Tensor::new(shape, TensorData::I64((0..n as i64).collect()))?;
    Ok(ctx.constant(t))
}

/// `indices` with a new dim of 1 at `axis`.
fn unsqueeze_at(
    ctx: &mut NodeCtx<'_>,
    t: TensorRef,
    axis: usize,
) -> Result<TensorRef, ConvertError> {
    use crate::convert::ctx::DimSrc;
    let rank = ctx.rank(t);
    let mut parts: Vec<DimSrc> = (0..rank).map(DimSrc::Of).collect();
    parts.insert(axis, DimSrc::Const(1));
    ctx.reshape_from(t, &parts)
}

/// A count from a constant (depth, rows): whole, positive, within bounds.
fn count(v: f64, what: &str) -> Result<usize, ConvertError> {
    if v.fract() != 0.0 || !(1.0..=MAX_DEPTH as f64).contains(&v) {
        return Err(ConvertError::new(format!(
            "{what} {v} is not a whole number in 1..={MAX_DEPTH}"
        )));
    }
    Ok(v as usize)
}

/// OneHot(indices, depth, values): `values[1]` where the index (negative
/// ones counted from `depth`) equals the position along the new axis,
/// `values[0]` elsewhere (also for indices out of range).
fn one_hot(ctx: &mut NodeCtx<'_>) -> R {
    let idx = ctx.input(0)?;
    let depth = ctx.require_const(1, "the depth")?;
    let values = ctx.require_const(2, "the values")?;
    let depth = match depth.to_f64_vec().as_slice() {
        [d] => count(*d, "depth")?,
        _ => return Err(ConvertError::new("depth must hold one value")),
    };
    if values.len() != 2 {
        return Err(ConvertError::new(format!(
            "values must hold two values (off, on), not {}",
            values.len()
        )));
    }
    let rank = ctx.rank(idx);
    let axis = ctx.axis(ctx.attr_int("axis", -1)?, rank + 1)?;
    // Float indices are cast (toward zero), as the operator says.
    let i = ctx.cast(idx, DataType::I64)?;
    let d = ctx.scalar(DataType::I64, depth as f64, rank)?;
    let i = ctx.wrap_negative(i, d)?;
    let i = unsqueeze_at(ctx, i, axis)?;
    let r = ramp(ctx, depth, axis, rank + 1)?;
    let hit = ctx.ew(E::Equal, i, r)?;
    let dt = values.dtype();
    let v = values.to_f64_vec();
    let off = ctx.scalar(dt, v[0], rank + 1)?;
    let on = ctx.scalar(dt, v[1], rank + 1)?;
    let y = ctx.add(LayerKind::Select, vec![hit, on, off])?;
    ctx.set_output(0, y)
}

/// Hardmax along one axis: 1 at the first largest value, 0 elsewhere.
fn hardmax(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let rank = ctx.rank(x);
    let axis = ctx.axis(ctx.attr_int("axis", -1)?, rank)?;
    let n = ctx.shape(x)[axis]
        .known()
        .ok_or_else(|| ConvertError::new("Hardmax needs a fixed length along its axis"))?;
    // TopK keeps the lower index first among equal values.
    let top = ctx.add(
        LayerKind::TopK {
            op: TopKOp::Max,
            k: 1,
            axis,
        },
        vec![x],
    )?;
    let at = ctx.cast(super::reduce::slot(top, 1), DataType::I64)?;
    let r = ramp(ctx, n, axis, rank)?;
    let hit = ctx.ew(E::Equal, at, r)?;
    let y = ctx.cast(hit, ctx.dtype(x))?;
    ctx.set_output(0, y)
}

/// EyeLike: a constant of the input's (fixed) 2-D dims with ones on
/// diagonal `k`, of the `dtype` attribute's type or the input's.
fn eye_like(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let dims = ctx.known_dims(x, "EyeLike's input")?;
    let [rows, cols] = dims[..] else {
        return Err(ConvertError::new(format!(
            "EyeLike takes a 2-D input, not {}-D",
            dims.len()
        )));
    };
    count(rows as f64, "rows")?;
    count(cols as f64, "columns")?;
    let dt = if ctx.has_attr("dtype") {
        let code = ctx.attr_int("dtype", 0)?;
        let code = i32::try_from(code)
            .map_err(|_| ConvertError::new(format!("dtype {code} is not an ONNX type")))?;
        dtype_from_onnx(code).map_err(ConvertError::new)?
    } else {
        ctx.dtype(x)
    };
    let k = ctx.attr_int("k", 0)?;
    let v: Vec<f32> = (0..rows * cols)
        .map(|i| {
            let (r, c) = ((i / cols) as i64, (i % cols) as i64);
            if c - r == k {
                1.0
            } else {
                0.0
            }
        })
        .collect();
    let t = Tensor::from_f32(&[rows, cols], v)?.cast(dt);
    let y = ctx.constant(t);
    ctx.set_output(0, y)
}
