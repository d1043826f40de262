//! NegativeLogLikelihoodLoss and SoftmaxCrossEntropyLoss (a LogSoftmax
//! over the classes, then the same loss), decomposed: each position's
//! input at its target class by a gather along the class axis, negated,
//! weighted by its class's weight, ignored positions zeroed (and out of
//! the mean's weight sum), then reduced as asked.

use super::Add;
use crate::convert::{ConvertError, NodeCtx};
use jetrt_engine::ir::{ElementWiseOp as E, GatherMode, LayerKind, ReduceOp, TensorRef, UnaryOp};
use jetrt_engine::DataType;

type R = Result<(), ConvertError>;

pub fn register(add: &mut Add<'_>) {
    add("NegativeLogLikelihoodLoss", 12, nll_loss);
    add("SoftmaxCrossEntropyLoss", 12, softmax_cross_entropy);
}

fn nll_loss(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let y = loss(ctx, x)?;
    ctx.set_output(0, y)
}

fn softmax_cross_entropy(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    if ctx.rank(x) < 2 {
        return Err(ConvertError::new("the scores must be [N, C, ...]"));
    }
    // log(softmax(x)) over the classes: x - max - log(sum(exp(x - max))).
    let mx = ctx.reduce(ReduceOp::Max, &[1], true, x)?;
    let shifted = ctx.ew(E::Sub, x, mx)?;
    let e = ctx.un(UnaryOp::Exp, shifted)?;
    let s = ctx.reduce(ReduceOp::Sum, &[1], true, e)?;
    let ls = ctx.un(UnaryOp::Log, s)?;
    let log_prob = ctx.ew(E::Sub, shifted, ls)?;
    let y = loss(ctx, log_prob)?;
    ctx.set_output(0, y)?;
    if ctx.wants_output(1) {
        ctx.set_output(1, log_prob)?;
    }
    Ok(())
}

/// The loss of `x` ([N, C, d...], log-probabilities) at the node's
/// targets (input 1, [N, d...]) with its optional class weights (input 2).
fn loss(ctx: &mut NodeCtx<'_>, x: TensorRef) -> Result<TensorRef, ConvertError> {
    let dt = ctx.dtype(x);
    if !dt.is_float() {
        return Err(ConvertError::new(format!(
            "the input must be float, not {dt}"
        )));
    }
    let rank = ctx.rank(x);
    if rank < 2 {
        return Err(ConvertError::new("the input must be [N, C, ...]"));
    }
    let target = ctx.input(1)?;
    let tt = ctx.dtype(target);
    if !matches!(tt, DataType::I32 | DataType::I64) || ctx.rank(target) != rank - 1 {
        return Err(ConvertError::new("the target must be integer [N, d...]"));
    }
    let weight = ctx.opt_input(2)?;
    let ignore = if ctx.has_attr("ignore_index") {
        Some(ctx.attr_int("ignore_index", 0)?)
    } else {
        None
    };
    let reduction = ctx
        .attr_string("reduction")?
        .unwrap_or_else(|| "mean".into());
    // Positions not ignored, and the targets with ignored ones at class 0
    // (any valid index: their loss and weight are zeroed).
    let (target, keep) = match ignore {
        Some(ig) => {
            // Exact in f64: an index is far below 2^53.
            let igc = ctx.scalar(tt, ig as f64, rank - 1)?;
            let is_ig = ctx.ew(E::Equal, target, igc)?;
            let keep = ctx.add(LayerKind::Unary { op: UnaryOp::Not }, vec![is_ig])?;
            let zero = ctx.scalar(tt, 0.0, rank - 1)?;
            let t = ctx.add(LayerKind::Select, vec![keep, target, zero])?;
            (t, Some(ctx.cast(keep, dt)?))
        }
        None => (target, None),
    };
    let mut idx_dims: Vec<i64> = Vec::with_capacity(rank);
    let tshape = ctx.known_dims(target, "the target")?;
    idx_dims.push(tshape[0] as i64);
    idx_dims.push(1);
    idx_dims.extend(tshape[1..].iter().map(|&d| d as i64));
    let idx = ctx.reshape(target, idx_dims)?;
    let picked = ctx.gather(x, idx, 1, GatherMode::Element)?;
    let picked = ctx.reshape(picked, tshape.iter().map(|&d| d as i64).collect())?;
    let mut l = ctx.un(UnaryOp::Neg, picked)?;
    let w = match (weight, keep) {
        (Some(w), keep) => {
            let wt = ctx.gather(w, target, 0, GatherMode::Default)?;
            Some(match keep {
                Some(k) => ctx.ew(E::Prod, wt, k)?,
                None => wt,
            })
        }
        (None, keep) => keep,
    };
    if let Some(w) = w {
        l = ctx.ew(E::Prod, l, w)?;
    }
    let all: Vec<usize> = (0..rank - 1).collect();
    match reduction.as_str() {
        "none" => Ok(l),
        "sum" => ctx.reduce(ReduceOp::Sum, &all, false, l),
        "mean" => match w {
            Some(w) => {
                let s = ctx.reduce(ReduceOp::Sum, &all, false, l)?;
                let ws = ctx.reduce(ReduceOp::Sum, &all, false, w)?;
                ctx.ew(E::Div, s, ws)
            }
            None => ctx.reduce(ReduceOp::Avg, &all, false, l),
        },
        other => Err(ConvertError::new(format!(
            "reduction '{other}': none, sum or mean"
        ))),
    }
}
