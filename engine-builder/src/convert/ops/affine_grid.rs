//! AffineGrid: the sampling grid of `theta` (per batch element, a 2x3 or
//! 3x4 affine map) over the normalized coordinates of an output of the
//! constant `size`: one matrix product of the constant homogeneous base
//! grid (x, y[, z], 1 per position) by each transposed theta.

use super::Add;
use crate::convert::{ConvertError, NodeCtx};
use jetrt_engine::ir::{LayerKind, MatrixOp};
use jetrt_engine::Tensor;

type R = Result<(), ConvertError>;

/// The most grid positions built (a 4096 x 4096 image).
const MAX_POSITIONS: usize = 1 << 24;

pub fn register(add: &mut Add<'_>) {
    add("AffineGrid", 20, affine_grid);
}

/// Normalized coordinates of `n` positions in [-1, 1]: the corner pixels'
/// centres at the ends (align_corners), or the pixels' centres.
fn coords(n: usize, align_corners: bool) -> Vec<f64> {
    (0..n)
        .map(|i| {
            if align_corners {
                if n == 1 {
                    -1.0
                } else {
                    -1.0 + 2.0 * i as f64 / (n - 1) as f64
                }
            } else {
                -1.0 + (2 * i + 1) as f64 / n as f64
            }
        })
        .collect()
}

fn affine_grid(ctx: &mut NodeCtx<'_>) -> R {
    let theta = ctx.input(0)?;
    let size = ctx.require_const(1, "the output size")?.to_i64_vec();
    let spatial: Vec<usize> = match size.as_slice() {
        [_, _, rest @ ..] if rest.len() == 2 || rest.len() == 3 => rest
            .iter()
            .map(|&d| usize::try_from(d).ok().filter(|&d| d > 0))
            .collect::<Option<_>>()
            .ok_or_else(|| ConvertError::new(format!("size {size:?} has a dim below 1")))?,
        _ => {
            return Err(ConvertError::new(format!(
                "size {size:?}: [N, C, H, W] or [N, C, D, H, W]"
            )))
        }
    };
    let k = spatial.len();
    let positions = spatial
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&p| p <= MAX_POSITIONS)
        .ok_or_else(|| {
            ConvertError::new(format!("a grid of {spatial:?} positions is too large"))
        })?;
    let align = ctx.attr_int("align_corners", 0)? != 0;
    let axes: Vec<Vec<f64>> = spatial.iter().map(|&n| coords(n, align)).collect();
    // Row p holds (x, y[, z], 1) of position p, x along the last dim.
    let mut base = Vec::with_capacity(positions * (k + 1));
    for p in 0..positions {
        let mut rest = p;
        let mut idx = vec![0usize; k];
        for d in (0..k).rev() {
            idx[d] = rest % spatial[d];
            rest /= spatial[d];
        }
        for d in (0..k).rev() {
            base.push(axes[d][idx[d]] as f32);
        }
        base.push(1.0);
    }
    let g = Tensor::from_f32(&[1, positions, k + 1], base)?.cast(ctx.dtype(theta));
    let g = ctx.constant(g);
    let grid = ctx.add(
        LayerKind::MatrixMultiply {
            op0: MatrixOp::None,
            op1: MatrixOp::Transpose,
        },
        vec![g, theta],
    )?;
    let mut dims = vec![size[0]];
    dims.extend(spatial.iter().map(|&d| d as i64));
    dims.push(k as i64);
    let y = ctx.reshape(grid, dims)?;
    ctx.set_output(0, y)
}
