//! QuantizeLinear, DequantizeLinear and DynamicQuantizeLinear, decomposed
//! into float arithmetic, rounding (half to even), clamping and casts:
//! per-tensor or per-axis scales, uint8 (and, dequantizing, int32)
//! integers, per-block scales (opset 21's block_size) repeated along
//! their axis. jetrt tensors have no int8 type yet, so int8 models are
//! refused with that reason.

use super::Add;
use crate::convert::{ConvertError, NodeCtx};
use jetrt_engine::ir::{ElementWiseOp as E, GatherMode, ReduceOp, TensorRef, UnaryOp};
use jetrt_engine::{DataType, Tensor};

type R = Result<(), ConvertError>;
type T = Result<TensorRef, ConvertError>;

pub fn register(add: &mut Add<'_>) {
    add("QuantizeLinear", 10, quantize);
    add("DequantizeLinear", 10, dequantize);
    add("DynamicQuantizeLinear", 11, dynamic_quantize);
}

/// `s` (a scale or zero point: a scalar, one value per element of the
/// axis, or one per block of `block_size` elements along it) brought to
/// `x`'s rank so that it broadcasts onto `x`; blocks are repeated along
/// the axis by a gather.
fn along_axis(ctx: &mut NodeCtx<'_>, s: TensorRef, x: TensorRef) -> T {
    let rank = ctx.rank(x);
    let block = ctx.attr_int("block_size", 0)?;
    match ctx.rank(s) {
        0 if block == 0 => ctx.reshape(s, vec![1; rank]),
        1 if block == 0 => {
            let axis = ctx.axis(ctx.attr_int("axis", 1)?, rank)?;
            let n = ctx.shape(s)[0]
                .known()
                .ok_or_else(|| ConvertError::new("a per-axis scale of unknown length"))?;
            let mut dims = vec![1i64; rank];
            dims[axis] = n as i64;
            ctx.reshape(s, dims)
        }
        r if r == rank && block > 0 => {
            let axis = ctx.axis(ctx.attr_int("axis", 1)?, rank)?;
            let d = ctx.shape(x)[axis].known().ok_or_else(|| {
                ConvertError::new("blocked quantization along an axis of unknown length")
            })?;
            let blocks = ctx.shape(s)[axis].known();
            if blocks != Some(d.div_ceil(block as usize)) {
                return Err(ConvertError::new(format!(
                    "{blocks:?} blocks of {block} for an axis of {d}"
                )));
            }
            let idx: Vec<i64> = (0..d as i64).map(|j| j / block).collect();
            let idx = ctx.constant(Tensor::from_i64(&[d], idx)?);
            ctx.gather(s, idx, axis, GatherMode::Default)
        }
        r => Err(ConvertError::new(format!(
            "a {r}-D scale or zero point with block_size {block} for a {rank}-D input"
        ))),
    }
}

fn integer(dt: DataType, what: &str) -> Result<(), ConvertError> {
    match dt {
        DataType::U8 => Ok(()),
        other => Err(ConvertError::new(format!(
            "{what} of {other}: jetrt quantizes to uint8 (int8 is not a jetrt tensor type yet)"
        ))),
    }
}

/// `clamp(round(v) + zp, 0, 255)` as uint8, `v` and `zp` float.
fn saturate_u8(ctx: &mut NodeCtx<'_>, v: TensorRef, zp: Option<TensorRef>) -> T {
    let mut q = ctx.un(UnaryOp::Round, v)?;
    if let Some(zp) = zp {
        q = ctx.ew(E::Sum, q, zp)?;
    }
    let dt = ctx.dtype(q);
    let rank = ctx.rank(q);
    let lo = ctx.scalar(dt, 0.0, rank)?;
    let hi = ctx.scalar(dt, 255.0, rank)?;
    let q = ctx.ew(E::Max, q, lo)?;
    let q = ctx.ew(E::Min, q, hi)?;
    ctx.cast(q, DataType::U8)
}

fn quantize(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let fx = if ctx.dtype(x).is_float() {
        x
    } else {
        ctx.cast(x, DataType::F32)?
    };
    let scale = ctx.input(1)?;
    let scale = ctx.cast(scale, ctx.dtype(fx))?;
    let scale = along_axis(ctx, scale, x)?;
    let zp = ctx.opt_input(2)?;
    let out = match ctx.attr_int("output_dtype", 0)? {
        0 => zp.map_or(DataType::U8, |z| ctx.dtype(z)),
        code => crate::onnx::dtype_from_onnx(code as i32).map_err(ConvertError::new)?,
    };
    integer(out, "quantizing")?;
    let zp = match zp {
        Some(z) => {
            integer(ctx.dtype(z), "a zero point")?;
            let z = ctx.cast(z, ctx.dtype(fx))?;
            Some(along_axis(ctx, z, x)?)
        }
        None => None,
    };
    let v = ctx.ew(E::Div, fx, scale)?;
    let y = saturate_u8(ctx, v, zp)?;
    ctx.set_output(0, y)
}

fn dequantize(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let dt = ctx.dtype(x);
    if !matches!(dt, DataType::U8 | DataType::I32) {
        return Err(ConvertError::new(format!(
            "dequantizing {dt}: jetrt takes uint8 and int32 (int8 is not a jetrt tensor type yet)"
        )));
    }
    let scale = ctx.input(1)?;
    let ft = ctx.dtype(scale);
    if !ft.is_float() {
        return Err(ConvertError::new(format!("a scale of {ft}")));
    }
    let scale = along_axis(ctx, scale, x)?;
    let mut v = ctx.cast(x, ft)?;
    if let Some(z) = ctx.opt_input(2)? {
        if ctx.dtype(z) != dt {
            return Err(ConvertError::new(
                "the zero point's type is not the input's",
            ));
        }
        let z = ctx.cast(z, ft)?;
        let z = along_axis(ctx, z, x)?;
        v = ctx.ew(E::Sub, v, z)?;
    }
    let y = ctx.ew(E::Prod, v, scale)?;
    ctx.set_output(0, y)
}

/// uint8 quantization with the scale and zero point that map the range of
/// `x` (widened to include 0) onto 0..=255.
fn dynamic_quantize(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let dt = ctx.dtype(x);
    if !dt.is_float() {
        return Err(ConvertError::new(format!(
            "DynamicQuantizeLinear takes floats, not {dt}"
        )));
    }
    let rank = ctx.rank(x);
    let all: Vec<usize> = (0..rank).collect();
    let flat = if rank == 0 {
        ctx.reshape(x, vec![1])?
    } else {
        x
    };
    let axes = if rank == 0 { vec![0] } else { all };
    let mx = ctx.reduce(ReduceOp::Max, &axes, false, flat)?;
    let mn = ctx.reduce(ReduceOp::Min, &axes, false, flat)?;
    let zero = ctx.scalar(dt, 0.0, 0)?;
    let mx = ctx.ew(E::Max, mx, zero)?;
    let mn = ctx.ew(E::Min, mn, zero)?;
    let range = ctx.ew(E::Sub, mx, mn)?;
    let q = ctx.scalar(dt, 255.0, 0)?;
    let scale = ctx.ew(E::Div, range, q)?;
    let neg = ctx.ew(E::Sub, zero, mn)?;
    let zf = ctx.ew(E::Div, neg, scale)?;
    let zp = saturate_u8(ctx, zf, None)?;
    // The zero point as the float it is once rounded and clamped.
    let zpf = ctx.cast(zp, dt)?;
    let s = ctx.reshape(scale, vec![1; rank])?;
    let z = ctx.reshape(zpf, vec![1; rank])?;
    let v = ctx.ew(E::Div, x, s)?;
    let y = saturate_u8(ctx, v, Some(z))?;
    ctx.set_output(0, y)?;
    ctx.set_output(1, scale)?;
    ctx.set_output(2, zp)
}
