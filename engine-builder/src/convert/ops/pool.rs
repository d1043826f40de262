//! MaxPool, AveragePool, GlobalAveragePool, GlobalMaxPool.

use super::conv::window;
use super::Add;
use crate::convert::{ConvertError, NodeCtx};
use jetrt_engine::ir::{LayerKind, PoolKind, PoolParams, ReduceOp};
use jetrt_engine::DataType;

type R = Result<(), ConvertError>;

pub fn register(add: &mut Add<'_>) {
    add("MaxPool", 1, max_pool);
    add("AveragePool", 1, average_pool);
    add("GlobalAveragePool", 1, global_pool);
    add("GlobalMaxPool", 1, global_pool);
}

fn pool(ctx: &mut NodeCtx<'_>, kind: PoolKind) -> R {
    let x = ctx.input(0)?;
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
    if kind == PoolKind::Max && (ctx.attr_int("storage_order", 0)? != 0 || ctx.wants_output(1)) {
        return Err(ConvertError::new(
            "the Indices output (and storage_order) are not supported",
        ));
    }
    let exclude_padding = ctx.attr_int("count_include_pad", 0)? == 0;
    // Pooling layers take floats: integer max pooling runs on a float copy,
    // exact for every uint8 and int32 value below 2^24.
    let dtype = ctx.dtype(x);
    let x = if kind == PoolKind::Max && !dtype.is_float() {
        ctx.cast(x, DataType::F32)?
    } else {
        x
    };
    let y = ctx.add(
        LayerKind::Pooling(PoolParams {
            pool_type: kind,
            window: win.kernel,
            stride: win.strides,
            pre_padding: win.pre.iter().map(|&p| p as usize).collect(),
            post_padding: win.post.iter().map(|&p| p as usize).collect(),
            round_up: ctx.attr_int("ceil_mode", 0)? != 0,
            exclude_padding,
        }),
        vec![x],
    )?;
    let y = ctx.cast(y, dtype)?;
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
