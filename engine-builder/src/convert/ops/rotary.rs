//! RotaryEmbedding (and SwiGLU, the other transformer block op of recent
//! opsets), decomposed. Rotary: the first `rotary_embedding_dim` values of
//! each head split into halves (or even and odd positions, interleaved)
//! x1, x2 and rotated by the cached angles of the token's position:
//! `x1 cos - x2 sin`, `x1 sin + x2 cos`; the rest passes through.

use super::Add;
use crate::convert::{ConvertError, NodeCtx};
use jetrt_engine::ir::{
    Activation, ElementWiseOp as E, GatherMode, LayerKind, SliceMode, TensorRef,
};

type R = Result<(), ConvertError>;
type T = Result<TensorRef, ConvertError>;

pub fn register(add: &mut Add<'_>) {
    add("RotaryEmbedding", 23, rotary_embedding);
    add("SwiGLU", 28, swiglu);
}

/// `len` values of the last dim from `start`, `stride` apart.
fn slice_last(
    ctx: &mut NodeCtx<'_>,
    x: TensorRef,
    dims: &[usize],
    start: usize,
    len: usize,
    stride: usize,
) -> T {
    let r = dims.len();
    let mut st = vec![0i64; r];
    st[r - 1] = start as i64;
    let mut size = dims.to_vec();
    size[r - 1] = len;
    let mut sd = vec![1i64; r];
    sd[r - 1] = stride as i64;
    ctx.slice(x, st, size, sd, SliceMode::StrictBounds)
}

fn rotary_embedding(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let dims = ctx.known_dims(x, "RotaryEmbedding's input")?;
    let heads = ctx.attr_int("num_heads", 0)?;
    // [batch, seq, heads, head_size]
    let (xs, bshd) = match dims[..] {
        [b, h, s, d] => (ctx.transpose(x, vec![0, 2, 1, 3])?, [b, s, h, d]),
        [b, s, hidden] => {
            let h = usize::try_from(heads)
                .ok()
                .filter(|&h| h > 0 && hidden % h == 0)
                .ok_or_else(|| {
                    ConvertError::new(format!("num_heads {heads} for a hidden size of {hidden}"))
                })?;
            let d = hidden / h;
            (
                ctx.reshape(x, vec![b as i64, s as i64, h as i64, d as i64])?,
                [b, s, h, d],
            )
        }
        _ => return Err(ConvertError::new("the input must be 3-D or 4-D")),
    };
    let [b, s, _, d] = bshd;
    let rot = match ctx.attr_int("rotary_embedding_dim", 0)? {
        0 => d,
        r => usize::try_from(r)
            .ok()
            .filter(|&r| r <= d && r % 2 == 0)
            .ok_or_else(|| {
                ConvertError::new(format!("rotary_embedding_dim {r} for heads of {d}"))
            })?,
    };
    let half = rot / 2;
    let interleaved = ctx.attr_int("interleaved", 0)? != 0;
    let mut cos = ctx.input(1)?;
    let mut sin = ctx.input(2)?;
    if let Some(pos) = ctx.opt_input(3)? {
        cos = ctx.gather(cos, pos, 0, GatherMode::Default)?;
        sin = ctx.gather(sin, pos, 0, GatherMode::Default)?;
    }
    for c in [cos, sin] {
        if ctx.known_dims(c, "a cache")? != [b, s, half] {
            return Err(ConvertError::new(format!(
                "the caches must be [{b}, {s}, {half}] once gathered"
            )));
        }
    }
    let cos = ctx.reshape(cos, vec![b as i64, s as i64, 1, half as i64])?;
    let sin = ctx.reshape(sin, vec![b as i64, s as i64, 1, half as i64])?;
    let (x1, x2) = if interleaved {
        (
            slice_last(ctx, xs, &bshd, 0, half, 2)?,
            slice_last(ctx, xs, &bshd, 1, half, 2)?,
        )
    } else {
        (
            slice_last(ctx, xs, &bshd, 0, half, 1)?,
            slice_last(ctx, xs, &bshd, half, half, 1)?,
        )
    };
    let c1 = ctx.ew(E::Prod, cos, x1)?;
    let s2 = ctx.ew(E::Prod, sin, x2)?;
    let real = ctx.ew(E::Sub, c1, s2)?;
    let s1 = ctx.ew(E::Prod, sin, x1)?;
    let c2 = ctx.ew(E::Prod, cos, x2)?;
    let imag = ctx.ew(E::Sum, s1, c2)?;
    let [bi, si, hi, _] = bshd.map(|v| v as i64);
    let rotated = if interleaved {
        let r = ctx.reshape(real, vec![bi, si, hi, half as i64, 1])?;
        let i = ctx.reshape(imag, vec![bi, si, hi, half as i64, 1])?;
        let pairs = ctx.add(LayerKind::Concatenation { axis: 4 }, vec![r, i])?;
        ctx.reshape(pairs, vec![bi, si, hi, rot as i64])?
    } else {
        ctx.add(LayerKind::Concatenation { axis: 3 }, vec![real, imag])?
    };
    let y = if rot < d {
        let rest = slice_last(ctx, xs, &bshd, rot, d - rot, 1)?;
        ctx.add(LayerKind::Concatenation { axis: 3 }, vec![rotated, rest])?
    } else {
        rotated
    };
    let y = match dims[..] {
        [_, _, _, _] => ctx.transpose(y, vec![0, 2, 1, 3])?,
        _ => ctx.reshape(y, dims.iter().map(|&v| v as i64).collect())?,
    };
    ctx.set_output(0, y)
}

/// `a * sigmoid(alpha * a) * b`.
fn swiglu(ctx: &mut NodeCtx<'_>) -> R {
    let a = ctx.input(0)?;
    let b = ctx.input(1)?;
    if ctx.shape(a) != ctx.shape(b) || ctx.dtype(a) != ctx.dtype(b) {
        return Err(ConvertError::new("A and B must have one shape and type"));
    }
    let alpha = ctx.attr_float("alpha", 1.0)?;
    let scaled = if alpha == 1.0 {
        a
    } else {
        let k = ctx.scalar(ctx.dtype(a), alpha as f64, ctx.rank(a))?;
        ctx.ew(E::Prod, a, k)?
    };
    let g = ctx.add(
        LayerKind::Activation {
            activation: Activation::Sigmoid,
        },
        vec![scaled],
    )?;
    let swish = ctx.ew(E::Prod, a, g)?;
    let y = ctx.ew(E::Prod, swish, b)?;
    ctx.set_output(0, y)
}
