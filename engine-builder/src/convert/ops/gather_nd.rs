//! GatherND as one Gather: the data's batch and indexed dims flattened into
//! one, and each index tuple (plus its batch element's offset) turned into
//! a position along it by a multiply with the dims' strides and a sum.

use super::Add;
use crate::convert::{ConvertError, NodeCtx};
use jetrt_engine::ir::{ElementWiseOp as E, GatherMode, LayerKind, ReduceOp};
use jetrt_engine::{DataType, Tensor, TensorData};

type R = Result<(), ConvertError>;

pub fn register(add: &mut Add<'_>) {
    add("GatherND", 11, gather_nd);
}

fn int_const(
    ctx: &mut NodeCtx<'_>,
    shape: Vec<usize>,
    v: Vec<i64>,
) -> Result<jetrt_engine::ir::TensorRef, ConvertError> {
    Ok(ctx.constant(Tensor::new(shape, TensorData::I64(v))?))
}

fn gather_nd(ctx: &mut NodeCtx<'_>) -> R {
    let data = ctx.input(0)?;
    let idx = ctx.input(1)?;
    let dd = ctx.known_dims(data, "GatherND's data")?;
    let id = ctx.known_dims(idx, "GatherND's indices")?;
    let b = usize::try_from(ctx.attr_int("batch_dims", 0)?)
        .map_err(|_| ConvertError::new("batch_dims is negative"))?;
    let (Some(&k), ir) = (id.last(), id.len()) else {
        return Err(ConvertError::new("the indices need at least one dim"));
    };
    if b >= ir || b + k > dd.len() || k == 0 || dd[..b] != id[..b] {
        return Err(ConvertError::new(format!(
            "indices {id:?} with batch_dims {b} do not index data {dd:?}"
        )));
    }
    let batch: usize = dd[..b].iter().product();
    let indexed = &dd[b..b + k];
    let span: usize = indexed.iter().product();
    let rest = &dd[b + k..];
    // The data as [batch * span, rest...].
    let mut flat: Vec<i64> = vec![(batch * span) as i64];
    flat.extend(rest.iter().map(|&d| d as i64));
    let data = ctx.reshape(data, flat)?;
    // Each tuple's position: negative indices counted from their dim's end.
    let i = ctx.cast(idx, DataType::I64)?;
    let mut shape = vec![1; ir];
    shape[ir - 1] = k;
    let dims = int_const(
        ctx,
        shape.clone(),
        indexed.iter().map(|&d| d as i64).collect(),
    )?;
    let mut strides = vec![1i64; k];
    for j in (0..k.saturating_sub(1)).rev() {
        strides[j] = strides[j + 1] * indexed[j + 1] as i64;
    }
    let strides = int_const(ctx, shape, strides)?;
    let i = ctx.wrap_negative(i, dims)?;
    let scaled = ctx.ew(E::Prod, i, strides)?;
    let mut pos = ctx.reduce(ReduceOp::Sum, &[ir - 1], false, scaled)?;
    if b > 0 {
        // Batch element n's tuples start at n * span.
        let mut shape = id[..b].to_vec();
        shape.extend(std::iter::repeat_n(1, ir - 1 - b));
        let offsets = (0..batch as i64).map(|n| n * span as i64).collect();
        let offsets = int_const(ctx, shape, offsets)?;
        pos = ctx.ew(E::Sum, pos, offsets)?;
    }
    let y = ctx.add(
        LayerKind::Gather {
            axis: 0,
            mode: GatherMode::Default,
        },
        vec![data, pos],
    )?;
    // Gather puts the positions' dims ([B..., M...]) before the rest: the
    // operator's output dims as they are.
    ctx.set_output(0, y)
}
