//! Gemm and MatMul -> MatrixMultiply (+ ElementWise for bias and scales).

use super::elementwise::elementwise;
use super::Add;
use crate::convert::{ConvertError, NodeCtx};
use jetrt_engine::ir::{ElementWiseOp as E, LayerKind, MatrixOp};

type R = Result<(), ConvertError>;

pub fn register(add: &mut Add<'_>) {
    add("Gemm", 1, gemm);
    add("MatMul", 1, matmul);
    add("Einsum", 12, einsum);
}

fn einsum(ctx: &mut NodeCtx<'_>) -> R {
    let equation = ctx
        .attr_string("equation")?
        .ok_or_else(|| ConvertError::new("the equation attribute is missing"))?;
    let inputs = ctx.inputs()?;
    let y = ctx.add(LayerKind::Einsum { equation }, inputs)?;
    ctx.set_output(0, y)
}

/// Y = alpha * op(A) op(B) + beta * C.
fn gemm(ctx: &mut NodeCtx<'_>) -> R {
    let a = ctx.input(0)?;
    let b = ctx.input(1)?;
    if ctx.rank(a) != 2 || ctx.rank(b) != 2 {
        return Err(ConvertError::new("Gemm takes 2-D A and B"));
    }
    let alpha = ctx.attr_float("alpha", 1.0)?;
    let beta = ctx.attr_float("beta", 1.0)?;
    let op = |t: i64| {
        if t != 0 {
            MatrixOp::Transpose
        } else {
            MatrixOp::None
        }
    };
    let op0 = op(ctx.attr_int("transA", 0)?);
    let op1 = op(ctx.attr_int("transB", 0)?);
    let mut y = ctx.add(LayerKind::MatrixMultiply { op0, op1 }, vec![a, b])?;
    if alpha != 1.0 {
        let s = ctx.scalar(ctx.dtype(y), alpha as f64, 2)?;
        y = ctx.add(LayerKind::ElementWise { op: E::Prod }, vec![y, s])?;
    }
    if let Some(c) = ctx.opt_input(2)? {
        let c = if beta != 1.0 {
            let s = ctx.scalar(ctx.dtype(c), beta as f64, ctx.rank(c))?;
            ctx.add(LayerKind::ElementWise { op: E::Prod }, vec![c, s])?
        } else {
            c
        };
        if beta != 0.0 {
            y = elementwise(ctx, E::Sum, y, c)?;
        }
    }
    ctx.set_output(0, y)
}

/// NumPy matmul: 1-D operands are vectors, batch dims broadcast.
fn matmul(ctx: &mut NodeCtx<'_>) -> R {
    let a = ctx.input(0)?;
    let b = ctx.input(1)?;
    let (ra, rb) = (ctx.rank(a), ctx.rank(b));
    if ra == 0 || rb == 0 {
        return Err(ConvertError::new("MatMul operands must have rank >= 1"));
    }
    let op0 = if ra == 1 {
        MatrixOp::Vector
    } else {
        MatrixOp::None
    };
    let op1 = if rb == 1 {
        MatrixOp::Vector
    } else {
        MatrixOp::None
    };
    // Batch ranks must agree: pad the shorter operand with leading 1s.
    let batch_rank = |r: usize| r.saturating_sub(2);
    let (ba, bb) = (batch_rank(ra), batch_rank(rb));
    let a = ctx.unsqueeze_front(a, bb.saturating_sub(ba))?;
    let b = ctx.unsqueeze_front(b, ba.saturating_sub(bb))?;
    let y = ctx.add(LayerKind::MatrixMultiply { op0, op1 }, vec![a, b])?;
    ctx.set_output(0, y)
}
