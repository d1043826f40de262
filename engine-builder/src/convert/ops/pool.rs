//! MaxPool, AveragePool, LpPool and their global forms. LpPool is
//! `(sum |x|^p)^(1/p)` over the window: an average pooling that counts the
//! padding, times the window's size, between the two powers (a dilated
//! window: a depthwise convolution by ones).

use super::conv::window;
use super::Add;
use crate::convert::{ConvertError, NodeCtx};
use jetrt_engine::ir::{
    ConvParams, ElementWiseOp as E, LayerKind, PoolKind, PoolParams, ReduceOp, TensorRef, UnaryOp,
};
use jetrt_engine::{DataType, Tensor};

type R = Result<(), ConvertError>;

pub fn register(add: &mut Add<'_>) {
    add("MaxPool", 1, max_pool);
    add("AveragePool", 1, average_pool);
    add("GlobalAveragePool", 1, global_pool);
    add("GlobalMaxPool", 1, global_pool);
    add("LpPool", 2, lp_pool);
    add("GlobalLpPool", 2, global_lp_pool);
}

/// The Pooling layer of `kind` the node's window attributes describe over
/// `x` (rank 3 or more, undilated windows).
fn params(
    ctx: &mut NodeCtx<'_>,
    x: TensorRef,
    kind: PoolKind,
    exclude_padding: bool,
) -> Result<PoolParams, ConvertError> {
    let rank = ctx.rank(x);
    if rank < 3 {
        return Err(ConvertError::new(format!(
            "pooling needs a rank >= 3 input, got {rank}"
        )));
    }
    let k = rank - 2;
    let mut win = window(ctx, k, None)?;
    if win.dilations.iter().any(|&d| d != 1) {
        return Err(ConvertError::new("dilated pooling is not supported"));
    }
    let spatial: Option<Vec<usize>> = ctx.shape(x)[2..].iter().map(|d| d.known()).collect();
    win.resolve_auto_pad(spatial)?;
    Ok(PoolParams {
        pool_type: kind,
        window: win.kernel,
        stride: win.strides,
        pre_padding: win.pre.iter().map(|&p| p as usize).collect(),
        post_padding: win.post.iter().map(|&p| p as usize).collect(),
        round_up: ctx.attr_int("ceil_mode", 0)? != 0,
        exclude_padding,
    })
}

fn pool(ctx: &mut NodeCtx<'_>, kind: PoolKind) -> R {
    let x = ctx.input(0)?;
    if kind == PoolKind::Max && (ctx.attr_int("storage_order", 0)? != 0 || ctx.wants_output(1)) {
        return Err(ConvertError::new(
            "the Indices output (and storage_order) are not supported",
        ));
    }
    let exclude_padding = ctx.attr_int("count_include_pad", 0)? == 0;
    let p = params(ctx, x, kind, exclude_padding)?;
    // Pooling layers take floats: integer max pooling runs on a float copy,
    // exact for every uint8 and int32 value below 2^24.
    let dtype = ctx.dtype(x);
    let x = if kind == PoolKind::Max && !dtype.is_float() {
        ctx.cast(x, DataType::F32)?
    } else {
        x
    };
    let y = ctx.add(LayerKind::Pooling(p), vec![x])?;
    let y = ctx.cast(y, dtype)?;
    ctx.set_output(0, y)
}

/// LpPool's and GlobalLpPool's `p` (an integer, 2 by default) and the
/// float input.
fn lp_input(ctx: &mut NodeCtx<'_>) -> Result<(TensorRef, i64), ConvertError> {
    let x = ctx.float_input(0)?;
    let p = ctx.attr_int("p", 2)?;
    if p < 1 {
        return Err(ConvertError::new(format!("p = {p}: it must be 1 or more")));
    }
    Ok((x, p))
}

/// `|x|^p` (x * x for p = 2).
fn lp_power(ctx: &mut NodeCtx<'_>, x: TensorRef, p: i64) -> Result<TensorRef, ConvertError> {
    match p {
        2 => ctx.ew(E::Prod, x, x),
        _ => {
            let a = ctx.un(UnaryOp::Abs, x)?;
            if p == 1 {
                return Ok(a);
            }
            let e = ctx.scalar(ctx.dtype(x), p as f64, ctx.rank(x))?;
            ctx.ew(E::Pow, a, e)
        }
    }
}

/// `s^(1/p)` (the square root for p = 2).
fn lp_root(ctx: &mut NodeCtx<'_>, s: TensorRef, p: i64) -> Result<TensorRef, ConvertError> {
    match p {
        1 => Ok(s),
        2 => ctx.un(UnaryOp::Sqrt, s),
        _ => {
            let e = ctx.scalar(ctx.dtype(s), 1.0 / p as f64, ctx.rank(s))?;
            ctx.ew(E::Pow, s, e)
        }
    }
}

fn lp_pool(ctx: &mut NodeCtx<'_>) -> R {
    let (x, p) = lp_input(ctx)?;
    let powered = lp_power(ctx, x, p)?;
    let dilated = ctx
        .attr_ints("dilations")?
        .is_some_and(|d| d.iter().any(|&v| v != 1));
    let sum = if dilated {
        dilated_window_sum(ctx, powered)?
    } else {
        let params = params(ctx, x, PoolKind::Average, false)?;
        let area: usize = params.window.iter().product();
        let mean = ctx.add(LayerKind::Pooling(params), vec![powered])?;
        let n = ctx.scalar(ctx.dtype(x), area as f64, ctx.rank(x))?;
        ctx.ew(E::Prod, mean, n)?
    };
    let y = lp_root(ctx, sum, p)?;
    ctx.set_output(0, y)
}

/// The most filter values a dilated window sum builds (channels x window).
const MAX_WINDOW_WEIGHTS: usize = 1 << 24;

/// The sum over each dilated window of `x`: a depthwise convolution by
/// ones (pooling layers have no dilation).
fn dilated_window_sum(ctx: &mut NodeCtx<'_>, x: TensorRef) -> Result<TensorRef, ConvertError> {
    let rank = ctx.rank(x);
    if rank < 3 {
        return Err(ConvertError::new(format!(
            "pooling needs a rank >= 3 input, got {rank}"
        )));
    }
    if ctx.attr_int("ceil_mode", 0)? != 0 {
        return Err(ConvertError::new(
            "ceil_mode with dilations is not supported",
        ));
    }
    let k = rank - 2;
    let mut win = window(ctx, k, None)?;
    let spatial: Option<Vec<usize>> = ctx.shape(x)[2..].iter().map(|d| d.known()).collect();
    win.resolve_auto_pad(spatial)?;
    let c = ctx.shape(x)[1]
        .known()
        .ok_or_else(|| ConvertError::new("dilated LpPool needs a fixed channel count"))?;
    let n = win
        .kernel
        .iter()
        .try_fold(c, |a, &d| a.checked_mul(d))
        .filter(|&n| n <= MAX_WINDOW_WEIGHTS)
        .ok_or_else(|| {
            ConvertError::new(format!(
                "{c} channels of {:?} windows is too many weights",
                win.kernel
            ))
        })?;
    let mut dims = vec![c, 1];
    dims.extend(&win.kernel);
    let ones = Tensor::from_f32(&dims, vec![1.0; n])?.cast(ctx.dtype(x));
    let kernel = ctx.constant_weights(std::sync::Arc::new(ones));
    ctx.add(
        LayerKind::Convolution(ConvParams {
            out_channels: c,
            kernel_size: win.kernel,
            stride: win.strides,
            pre_padding: win.pre,
            post_padding: win.post,
            dilation: win.dilations,
            groups: c,
            kernel,
            bias: None,
            activation: None,
        }),
        vec![x],
    )
}

fn global_lp_pool(ctx: &mut NodeCtx<'_>) -> R {
    let (x, p) = lp_input(ctx)?;
    let rank = ctx.rank(x);
    if rank < 3 {
        return Err(ConvertError::new(format!(
            "global pooling needs a rank >= 3 input, got {rank}"
        )));
    }
    let powered = lp_power(ctx, x, p)?;
    let axes: Vec<usize> = (2..rank).collect();
    let sum = ctx.reduce(ReduceOp::Sum, &axes, true, powered)?;
    let y = lp_root(ctx, sum, p)?;
    ctx.set_output(0, y)
}

fn max_pool(ctx: &mut NodeCtx<'_>) -> R {
    pool(ctx, PoolKind::Max)
}

fn average_pool(ctx: &mut NodeCtx<'_>) -> R {
    pool(ctx, PoolKind::Average)
}

/// A reduction over every spatial axis, as onnx-tensorrt lowers it: works
/// for dynamic spatial dims too.
fn global_pool(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let rank = ctx.rank(x);
    if rank < 3 {
        return Err(ConvertError::new(format!(
            "global pooling needs a rank >= 3 input, got {rank}"
        )));
    }
    let op = if ctx.node.op_type == "GlobalMaxPool" {
        ReduceOp::Max
    } else {
        ReduceOp::Avg
    };
    let y = ctx.add(
        LayerKind::Reduce {
            op,
            axes: (2..rank).collect(),
            keep_dims: true,
        },
        vec![x],
    )?;
    ctx.set_output(0, y)
}
