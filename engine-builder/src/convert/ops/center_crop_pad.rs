//! CenterCropPad: each named axis cropped or zero-padded to its target
//! size about its centre (the odd element cut or added at the end), as
//! one Slice in fill mode: a crop starts inside the input, a pad before
//! it (a negative start, the outside filled with zeros).

use super::Add;
use crate::convert::{ConvertError, NodeCtx};
use jetrt_engine::ir::SliceMode;

type R = Result<(), ConvertError>;

pub fn register(add: &mut Add<'_>) {
    add("CenterCropPad", 18, center_crop_pad);
}

fn center_crop_pad(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let rank = ctx.rank(x);
    let dims = ctx.known_dims(x, "CenterCropPad's input")?;
    let target = ctx.require_const(1, "the target shape")?.to_i64_vec();
    let axes: Vec<usize> = match ctx.attr_ints("axes")? {
        Some(a) => a
            .into_iter()
            .map(|a| ctx.axis(a, rank))
            .collect::<Result<_, _>>()?,
        None => (0..rank).collect(),
    };
    if target.len() != axes.len() {
        return Err(ConvertError::new(format!(
            "{} target sizes for {} axes",
            target.len(),
            axes.len()
        )));
    }
    let mut start = vec![0i64; rank];
    let mut size = dims.clone();
    for (&a, &t) in axes.iter().zip(&target) {
        let t = usize::try_from(t)
            .map_err(|_| ConvertError::new(format!("a negative target size {t}")))?;
        let d = dims[a];
        start[a] = if t <= d {
            ((d - t) / 2) as i64
        } else {
            -(((t - d) / 2) as i64)
        };
        size[a] = t;
    }
    let y = ctx.slice(x, start, size, vec![1; rank], SliceMode::Fill)?;
    ctx.set_output(0, y)
}
