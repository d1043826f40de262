//! ScatterElements (and its deprecated name Scatter) and ScatterND ->
//! Scatter, with ONNX's reductions (none, add, mul, max, min).

use super::Add;
use crate::convert::{ConvertError, NodeCtx};
use jetrt_engine::ir::{LayerKind, ScatterMode, ScatterReduction};

type R = Result<(), ConvertError>;

pub fn register(add: &mut Add<'_>) {
    add("Scatter", 9, scatter);
    add("ScatterElements", 11, scatter);
    add("ScatterND", 11, scatter);
}

fn scatter(ctx: &mut NodeCtx<'_>) -> R {
    let data = ctx.input(0)?;
    let idx = ctx.input(1)?;
    let upd = ctx.input(2)?;
    let nd = ctx.node.op_type == "ScatterND";
    let reduction = match ctx.attr_string("reduction")?.as_deref() {
        None | Some("none") => ScatterReduction::None,
        Some("add") => ScatterReduction::Add,
        Some("mul") => ScatterReduction::Mul,
        Some("max") => ScatterReduction::Max,
        Some("min") => ScatterReduction::Min,
        Some(other) => {
            return Err(ConvertError::new(format!(
                "reduction '{other}': none, add, mul, max or min"
            )))
        }
    };
    let (mode, axis) = if nd {
        (ScatterMode::Nd, 0)
    } else {
        let rank = ctx.rank(data);
        (
            ScatterMode::Element,
            ctx.axis(ctx.attr_int("axis", 0)?, rank)?,
        )
    };
    let y = ctx.add(
        LayerKind::Scatter {
            mode,
            axis,
            reduction,
        },
        vec![data, idx, upd],
    )?;
    ctx.set_output(0, y)
}
