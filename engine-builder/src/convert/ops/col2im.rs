//! Col2Im: columns of sliding blocks summed back into an image, as one
//! element scatter with addition into zeros of the padded image (the
//! column-to-position map constant: the image and block shapes are), then
//! the padding cut away.

use super::Add;
use crate::convert::{ConvertError, NodeCtx};
use jetrt_engine::ir::{LayerKind, ScatterMode, ScatterReduction, SliceMode};
use jetrt_engine::Tensor;

type R = Result<(), ConvertError>;

/// The most column elements mapped (batch x channels x blocks x columns).
const MAX_MAP: usize = 1 << 26;

pub fn register(add: &mut Add<'_>) {
    add("Col2Im", 18, col2im);
}

fn positive(v: Vec<i64>, what: &str) -> Result<Vec<usize>, ConvertError> {
    v.iter()
        .map(|&d| usize::try_from(d).ok().filter(|&d| d > 0))
        .collect::<Option<_>>()
        .ok_or_else(|| ConvertError::new(format!("{what} {v:?} must be positive")))
}

fn col2im(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let dims = ctx.known_dims(x, "Col2Im's input")?;
    let [n, ck, l] = dims[..] else {
        return Err(ConvertError::new("the input must be [N, C x block, L]"));
    };
    let image = positive(
        ctx.require_const(1, "the image shape")?.to_i64_vec(),
        "image_shape",
    )?;
    let block = positive(
        ctx.require_const(2, "the block shape")?.to_i64_vec(),
        "block_shape",
    )?;
    let k = image.len();
    if block.len() != k || k == 0 {
        return Err(ConvertError::new(
            "image_shape and block_shape differ in length",
        ));
    }
    let dil = positive(
        ctx.attr_ints("dilations")?.unwrap_or(vec![1; k]),
        "dilations",
    )?;
    let strides = positive(ctx.attr_ints("strides")?.unwrap_or(vec![1; k]), "strides")?;
    let pads = ctx.attr_ints("pads")?.unwrap_or(vec![0; 2 * k]);
    if dil.len() != k || strides.len() != k || pads.len() != 2 * k || pads.iter().any(|&p| p < 0) {
        return Err(ConvertError::new(
            "dilations, strides and pads do not fit the image",
        ));
    }
    let bsize: usize = block.iter().product();
    if ck % bsize != 0 {
        return Err(ConvertError::new(format!(
            "{ck} rows are not channels of {bsize} block values"
        )));
    }
    let c = ck / bsize;
    let padded: Vec<usize> = (0..k)
        .map(|d| image[d] + (pads[d] + pads[k + d]) as usize)
        .collect();
    // Block positions along each dim, their product the column count.
    let mut grid = Vec::with_capacity(k);
    for d in 0..k {
        let span = dil[d] * (block[d] - 1) + 1;
        if padded[d] < span {
            return Err(ConvertError::new("a block larger than the padded image"));
        }
        grid.push((padded[d] - span) / strides[d] + 1);
    }
    if grid.iter().product::<usize>() != l {
        return Err(ConvertError::new(format!(
            "{l} columns where the shapes give {}",
            grid.iter().product::<usize>()
        )));
    }
    let total = n
        .checked_mul(ck)
        .and_then(|v| v.checked_mul(l))
        .filter(|&v| v <= MAX_MAP)
        .ok_or_else(|| ConvertError::new("too many column values to map"))?;
    let plane: usize = padded.iter().product();
    let unravel = |mut i: usize, shape: &[usize]| {
        let mut out = vec![0usize; shape.len()];
        for d in (0..shape.len()).rev() {
            out[d] = i % shape[d];
            i /= shape[d];
        }
        out
    };
    // Position in [C, padded...] of each (row, column) of one batch element.
    let mut map = Vec::with_capacity(total);
    for _ in 0..n {
        for row in 0..ck {
            let (ch, kk) = (row / bsize, unravel(row % bsize, &block));
            for col in 0..l {
                let pos = unravel(col, &grid);
                let mut off = 0usize;
                for d in 0..k {
                    off = off * padded[d] + pos[d] * strides[d] + kk[d] * dil[d];
                }
                map.push((ch * plane + off) as i64);
            }
        }
    }
    let dt = ctx.dtype(x);
    let zeros = ctx.zeros(dt, &[n, c * plane])?;
    let idx = ctx.constant(Tensor::from_i64(&[n, ck * l], map)?);
    let upd = ctx.reshape(x, vec![n as i64, (ck * l) as i64])?;
    let img = ctx.add(
        LayerKind::Scatter {
            mode: ScatterMode::Element,
            axis: 1,
            reduction: ScatterReduction::Add,
        },
        vec![zeros, idx, upd],
    )?;
    let mut shape = vec![n as i64, c as i64];
    shape.extend(padded.iter().map(|&d| d as i64));
    let img = ctx.reshape(img, shape)?;
    let mut start = vec![0i64, 0];
    start.extend(pads[..k].iter().copied());
    let mut size = vec![n, c];
    size.extend(&image);
    let y = ctx.slice(img, start, size, vec![1; k + 2], SliceMode::StrictBounds)?;
    ctx.set_output(0, y)
}
