//! Binary and variadic arithmetic, comparisons, logic and bitwise integer
//! ops -> ElementWise.

use super::Add;
use crate::convert::{ConvertError, NodeCtx};
use jetrt_engine::ir::{ElementWiseOp as E, LayerKind, TensorRef, UnaryOp};
use jetrt_engine::shape::Dim;

type R = Result<(), ConvertError>;

pub fn register(add: &mut Add<'_>) {
    for (op, since) in [
        ("Add", 1),
        ("Sub", 1),
        ("Mul", 1),
        ("Div", 1),
        ("Pow", 1),
        ("Equal", 1),
        ("Greater", 1),
        ("Less", 1),
        ("And", 1),
        ("Or", 1),
        ("Xor", 1),
        ("GreaterOrEqual", 12),
        ("LessOrEqual", 12),
        ("BitwiseAnd", 18),
        ("BitwiseOr", 18),
        ("BitwiseXor", 18),
        ("BitShift", 11),
    ] {
        add(op, since, binary);
    }
    add("BitwiseNot", 18, bitwise_not);
    for op in ["Max", "Min", "Sum", "Mean"] {
        add(op, 1, variadic);
    }
    add("Where", 9, where_);
    add("Mod", 10, modulo);
    add("PRelu", 1, prelu);
}

/// Where(cond, x, y) -> Select, all three brought to one rank.
fn where_(ctx: &mut NodeCtx<'_>) -> R {
    let c = ctx.input(0)?;
    let a = ctx.input(1)?;
    let b = ctx.input(2)?;
    let rank = ctx.rank(c).max(ctx.rank(a)).max(ctx.rank(b));
    let mut v = Vec::new();
    for t in [c, a, b] {
        let r = ctx.rank(t);
        v.push(ctx.unsqueeze_front(t, rank - r)?);
    }
    let y = ctx.add(LayerKind::Select, v)?;
    ctx.set_output(0, y)
}

/// Mod: the result takes the divisor's sign (fmod=0, Python's %) or the
/// dividend's (fmod=1, C's fmod). Built from ElementWise and Unary layers,
/// as TensorRT has no modulo.
fn modulo(ctx: &mut NodeCtx<'_>) -> R {
    let a = ctx.input(0)?;
    let b = ctx.input(1)?;
    let fmod = ctx.attr_int("fmod", 0)? != 0;
    let float = ctx.dtype(a).is_float();
    let (a, b) = ctx.broadcast_pair(a, b)?;
    // q = a / b rounded toward -inf (fmod=0) or toward zero (fmod=1).
    let q = if float && !fmod {
        let d = ctx.add(LayerKind::ElementWise { op: E::Div }, vec![a, b])?;
        ctx.add(LayerKind::Unary { op: UnaryOp::Floor }, vec![d])?
    } else if float {
        let d = ctx.add(LayerKind::ElementWise { op: E::Div }, vec![a, b])?;
        let s = ctx.add(LayerKind::Unary { op: UnaryOp::Sign }, vec![d])?;
        let m = ctx.add(LayerKind::Unary { op: UnaryOp::Abs }, vec![d])?;
        let f = ctx.add(LayerKind::Unary { op: UnaryOp::Floor }, vec![m])?;
        ctx.add(LayerKind::ElementWise { op: E::Prod }, vec![s, f])?
    } else {
        let op = if fmod { E::Div } else { E::FloorDiv };
        ctx.add(LayerKind::ElementWise { op }, vec![a, b])?
    };
    let bq = ctx.add(LayerKind::ElementWise { op: E::Prod }, vec![b, q])?;
    let y = ctx.add(LayerKind::ElementWise { op: E::Sub }, vec![a, bq])?;
    ctx.set_output(0, y)
}

fn prelu(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let s = ctx.input(1)?;
    let (rx, rs) = (ctx.rank(x), ctx.rank(s));
    if rs > rx {
        return Err(ConvertError::new("slope has a higher rank than the input"));
    }
    let s = ctx.unsqueeze_front(s, rx - rs)?;
    let y = ctx.add(LayerKind::ParametricRelu, vec![x, s])?;
    ctx.set_output(0, y)
}

/// `a op b` with NumPy broadcasting (and, before opset 7, the legacy
/// `broadcast`/`axis` attributes).
pub fn elementwise(
    ctx: &mut NodeCtx<'_>,
    op: E,
    a: TensorRef,
    b: TensorRef,
) -> Result<TensorRef, ConvertError> {
    let b = if ctx.dtype(a) != ctx.dtype(b) && op == E::Pow {
        ctx.cast(b, ctx.dtype(a))?
    } else {
        b
    };
    let (a, b) = if ctx.opset < 7 && ctx.attr_int("broadcast", 0)? == 1 {
        let (ra, rb) = (ctx.rank(a), ctx.rank(b));
        let axis = match ctx.attr_int("axis", i64::MIN)? {
            i64::MIN => ra.saturating_sub(rb),
            ax => ctx.axis(ax, ra)?,
        };
        if axis + rb > ra {
            return Err(ConvertError::new("legacy broadcast axis does not fit"));
        }
        let mut dims = vec![Dim::Known(1); ra];
        dims[axis..axis + rb].clone_from_slice(&ctx.shape(b));
        let b = ctx.reshape_to(b, &dims)?;
        (a, b)
    } else {
        ctx.broadcast_pair(a, b)?
    };
    ctx.add(LayerKind::ElementWise { op }, vec![a, b])
}

fn binary(ctx: &mut NodeCtx<'_>) -> R {
    let a = ctx.input(0)?;
    let b = ctx.input(1)?;
    let (op, negate) = match ctx.node.op_type.as_str() {
        "Add" => (E::Sum, false),
        "Sub" => (E::Sub, false),
        "Mul" => (E::Prod, false),
        "Div" => (E::Div, false),
        "Pow" => (E::Pow, false),
        "Equal" => (E::Equal, false),
        "Greater" => (E::Greater, false),
        "Less" => (E::Less, false),
        "And" => (E::And, false),
        "Or" => (E::Or, false),
        "Xor" => (E::Xor, false),
        "BitwiseAnd" => (E::And, false),
        "BitwiseOr" => (E::Or, false),
        "BitwiseXor" => (E::Xor, false),
        "BitShift" => match ctx.attr_string("direction")?.as_deref() {
            Some("LEFT") => (E::ShiftLeft, false),
            Some("RIGHT") => (E::ShiftRight, false),
            other => {
                return Err(ConvertError::new(format!(
                    "direction {other:?}: LEFT or RIGHT"
                )))
            }
        },
        "GreaterOrEqual" => (E::Less, true),
        "LessOrEqual" => (E::Greater, true),
        other => return Err(ConvertError::new(format!("{other} is not a binary op"))),
    };
    let mut y = elementwise(ctx, op, a, b)?;
    if negate {
        y = ctx.add(LayerKind::Unary { op: UnaryOp::Not }, vec![y])?;
    }
    ctx.set_output(0, y)
}

/// `x ^ ~0`: every bit flipped (integers only).
fn bitwise_not(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let dt = ctx.dtype(x);
    let ones = match dt {
        jetrt_engine::DataType::U8 => jetrt_engine::TensorData::U8(vec![u8::MAX]),
        jetrt_engine::DataType::I32 => jetrt_engine::TensorData::I32(vec![-1]),
        jetrt_engine::DataType::I64 => jetrt_engine::TensorData::I64(vec![-1]),
        other => {
            return Err(ConvertError::new(format!(
                "BitwiseNot takes integer tensors, not {other}"
            )))
        }
    };
    let dims = vec![1; ctx.rank(x)];
    let ones = ctx.constant(jetrt_engine::Tensor::new(dims, ones)?);
    let y = ctx.ew(E::Xor, x, ones)?;
    ctx.set_output(0, y)
}

fn variadic(ctx: &mut NodeCtx<'_>) -> R {
    let op = match ctx.node.op_type.as_str() {
        "Max" => E::Max,
        "Min" => E::Min,
        _ => E::Sum,
    };
    let inputs = ctx.inputs()?;
    let (first, rest) = inputs
        .split_first()
        .ok_or_else(|| ConvertError::new("needs at least one input"))?;
    let mut y = *first;
    for &t in rest {
        y = elementwise(ctx, op, y, t)?;
    }
    if ctx.node.op_type == "Mean" && inputs.len() > 1 {
        let n = ctx.scalar(ctx.dtype(y), inputs.len() as f64, ctx.rank(y))?;
        y = ctx.add(LayerKind::ElementWise { op: E::Div }, vec![y, n])?;
    }
    if y == *first {
        y = ctx.add(LayerKind::Identity, vec![y])?;
    }
    ctx.set_output(0, y)
}
