//! MaxUnpool: each value written at its (flattened) index of a zero output,
//! as one element scatter into zeros made by a fill-mode slice (no
//! output-sized constant), then reshaped; an `output_shape` larger than
//! the inferred one pads the end with zeros, as ONNX's reference does.

use super::conv::window;
use super::Add;
use crate::convert::{ConvertError, NodeCtx};
use jetrt_engine::ir::{LayerKind, ScatterMode, ScatterReduction, SliceMode};

type R = Result<(), ConvertError>;

pub fn register(add: &mut Add<'_>) {
    add("MaxUnpool", 9, max_unpool);
}

fn max_unpool(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let idx = ctx.input(1)?;
    let dims = ctx.known_dims(x, "MaxUnpool's input")?;
    let rank = dims.len();
    if rank < 3 {
        return Err(ConvertError::new("the input must be [N, C, spatial...]"));
    }
    let k = rank - 2;
    let win = window(ctx, k, None)?;
    let mut inferred = dims[..2].to_vec();
    for d in 0..k {
        let v = (dims[d + 2] as i64 - 1) * win.strides[d] as i64 - (win.pre[d] + win.post[d])
            + win.kernel[d] as i64;
        inferred.push(
            usize::try_from(v)
                .ok()
                .filter(|&v| v > 0)
                .ok_or_else(|| ConvertError::new(format!("an output dim of {v}")))?,
        );
    }
    let total = inferred
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&t| t <= jetrt_engine::shape::MAX_ELEMENTS)
        .ok_or_else(|| ConvertError::new(format!("an output of {inferred:?} is too large")))?;
    let zeros = ctx.zeros(ctx.dtype(x), &[total])?;
    let flat_i = ctx.reshape(idx, vec![-1])?;
    let flat_x = ctx.reshape(x, vec![-1])?;
    let y = ctx.add(
        LayerKind::Scatter {
            mode: ScatterMode::Element,
            axis: 0,
            reduction: ScatterReduction::None,
        },
        vec![zeros, flat_i, flat_x],
    )?;
    let mut y = ctx.reshape(y, inferred.iter().map(|&d| d as i64).collect())?;
    if let Some(shape) = ctx.const_ints(2)? {
        let want: Vec<usize> = shape
            .iter()
            .map(|&d| usize::try_from(d).ok())
            .collect::<Option<_>>()
            .filter(|w: &Vec<usize>| w.len() == rank)
            .ok_or_else(|| ConvertError::new(format!("output_shape {shape:?}")))?;
        if want != inferred {
            y = ctx.slice(y, vec![0; rank], want, vec![1; rank], SliceMode::Fill)?;
        }
    } else if ctx.opt_input(2)?.is_some() {
        return Err(ctx.needs_const(2, "the output shape"));
    }
    ctx.set_output(0, y)
}
