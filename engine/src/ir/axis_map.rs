//! Where each output position of a Slice or Resize layer reads from, axis
//! by axis: these layers' semantics, shared by every backend. The cpu
//! kernels walk the maps directly; device backends upload them as tables.

use super::{
    CoordinateTransform as Ct, NearestRounding, ResizeMode, ResizeOutput, ResizeParams,
    ResizeSelector, SliceMode,
};

/// Where output coordinate `i` of one dim reads from, or `None` to fill.
pub fn slice_source(
    mode: SliceMode,
    start: i64,
    stride: i64,
    i: usize,
    n: usize,
) -> Result<Option<usize>, String> {
    let pos = start + i as i64 * stride;
    let n = n as i64;
    if (0..n).contains(&pos) {
        return Ok(Some(pos as usize));
    }
    Ok(match mode {
        SliceMode::StrictBounds => return Err(format!("slice reads index {pos} of a dim of {n}")),
        SliceMode::Fill => None,
        SliceMode::Clamp if n > 0 => Some(pos.clamp(0, n - 1) as usize),
        SliceMode::Wrap if n > 0 => Some(pos.rem_euclid(n) as usize),
        SliceMode::Reflect if n == 1 => Some(0),
        SliceMode::Reflect if n > 1 => {
            let period = 2 * (n - 1);
            let m = pos.rem_euclid(period);
            Some(if m < n { m } else { period - m } as usize)
        }
        _ => None,
    })
}

/// Output positions of one axis: taps (input index, weight), and whether the
/// position falls outside the input (tf_crop_and_resize extrapolation).
pub struct AxisMap {
    pub taps: Vec<Vec<(usize, f32)>>,
    pub outside: Vec<bool>,
}

/// The input coordinate output index `j` maps to: ONNX Resize's formulas,
/// where the "output length" is the unrounded `n * scale` except for
/// half_pixel_symmetric's adjustment, as the ONNX reference computes them.
fn source_coord(
    p: &ResizeParams,
    axis: usize,
    rank: usize,
    j: usize,
    n: usize,
    m: usize,
    scale: f64,
) -> f64 {
    let (j, nf) = (j as f64, n as f64);
    let ow = nf * scale;
    match p.coordinate_transform {
        Ct::HalfPixel if p.selector == ResizeSelector::Upper && ow == 1.0 => -0.5,
        Ct::HalfPixel => (j + 0.5) / scale - 0.5,
        Ct::AlignCorners if ow == 1.0 => 0.0,
        Ct::AlignCorners => j * (nf - 1.0) / (ow - 1.0),
        Ct::Asymmetric => j / scale,
        Ct::TfHalfPixelForNn => (j + 0.5) / scale,
        Ct::HalfPixelSymmetric => {
            let adjustment = m as f64 / ow;
            let center = nf / 2.0;
            center * (1.0 - adjustment) + (j + 0.5) / scale - 0.5
        }
        Ct::TfCropAndResize => {
            let roi = p.roi.as_deref().unwrap_or(&[]);
            let (start, end) = (
                roi.get(axis).copied().unwrap_or(0.0) as f64,
                roi.get(rank + axis).copied().unwrap_or(1.0) as f64,
            );
            let x = if ow == 1.0 {
                (end - start) * (nf - 1.0) / 2.0
            } else {
                j * (end - start) * (nf - 1.0) / (ow - 1.0)
            };
            x + start * (nf - 1.0)
        }
    }
}

fn cubic_weights(t: f64, a: f64) -> [f64; 4] {
    let w = |x: f64| {
        let x = x.abs();
        if x <= 1.0 {
            ((a + 2.0) * x - (a + 3.0)) * x * x + 1.0
        } else if x < 2.0 {
            ((a * x - 5.0 * a) * x + 8.0 * a) * x - 4.0 * a
        } else {
            0.0
        }
    };
    [w(t + 1.0), w(t), w(1.0 - t), w(2.0 - t)]
}

/// The taps of every output position along `axis` (input length `n`,
/// output length `m`, `scale` in the coordinate formula).
pub fn resize_axis_map(
    p: &ResizeParams,
    axis: usize,
    rank: usize,
    n: usize,
    m: usize,
    scale: f64,
) -> AxisMap {
    let last = n.saturating_sub(1) as i64;
    let clamp = |i: i64| i.clamp(0, last) as usize;
    let mut taps = Vec::with_capacity(m);
    let mut outside = Vec::with_capacity(m);
    for j in 0..m {
        let x = source_coord(p, axis, rank, j, n, m, scale);
        outside.push(p.coordinate_transform == Ct::TfCropAndResize && (x < 0.0 || x > last as f64));
        taps.push(match p.mode {
            ResizeMode::Nearest => {
                let f = x.floor();
                let i = match p.nearest_rounding {
                    NearestRounding::HalfDown if x - f == 0.5 => f,
                    NearestRounding::HalfDown | NearestRounding::HalfUp => (x + 0.5).floor(),
                    NearestRounding::Floor => f,
                    NearestRounding::Ceil => x.ceil(),
                };
                vec![(clamp(i as i64), 1.0)]
            }
            ResizeMode::Linear => {
                let x = x.clamp(0.0, last as f64);
                let x0 = x.floor();
                let w1 = (x - x0) as f32;
                vec![(clamp(x0 as i64), 1.0 - w1), (clamp(x0 as i64 + 1), w1)]
            }
            ResizeMode::Cubic => {
                let x0 = x.floor();
                let w = cubic_weights(x - x0, p.cubic_coeff as f64);
                let mut t: Vec<(i64, f64)> =
                    (0..4).map(|k| (x0 as i64 - 1 + k as i64, w[k])).collect();
                if p.exclude_outside {
                    t.retain(|(i, _)| (0..=last).contains(i));
                    let s: f64 = t.iter().map(|(_, w)| w).sum();
                    if s != 0.0 {
                        t.iter_mut().for_each(|(_, w)| *w /= s);
                    }
                }
                t.into_iter().map(|(i, w)| (clamp(i), w as f32)).collect()
            }
        });
    }
    AxisMap { taps, outside }
}

/// A Resize layer's output dims for input `dims`, and the scale each axis
/// uses in its coordinate formula; `sizes` is the value of the layer's
/// output-dims input, when it has one.
pub fn resize_plan(
    p: &ResizeParams,
    dims: &[usize],
    sizes: Option<&[i64]>,
) -> Result<(Vec<usize>, Vec<f64>), String> {
    let r = dims.len();
    match (&p.output, sizes) {
        (ResizeOutput::Scales(s), _) => {
            if s.len() != r {
                return Err(format!("{} scales for rank {r}", s.len()));
            }
            let out = dims
                .iter()
                .zip(s)
                .map(|(&d, &s)| (d as f64 * s as f64).floor() as usize)
                .collect();
            Ok((out, s.iter().map(|&s| s as f64).collect()))
        }
        (ResizeOutput::Dims(d), _) => {
            let s = match &p.coordinate_scales {
                Some(s) if s.len() == r => s.iter().map(|&v| v as f64).collect(),
                _ => ratios(dims, d),
            };
            Ok((d.clone(), s))
        }
        (ResizeOutput::FromInput, Some(t)) => {
            let d: Vec<usize> = t
                .iter()
                .map(|&v| usize::try_from(v).map_err(|_| format!("negative output dim {v}")))
                .collect::<Result<_, _>>()?;
            if d.len() != r {
                return Err(format!("{} output dims for rank {r}", d.len()));
            }
            let s = ratios(dims, &d);
            Ok((d, s))
        }
        (ResizeOutput::FromInput, None) => Err("output dims input is missing".into()),
    }
}

fn ratios(input: &[usize], output: &[usize]) -> Vec<f64> {
    input
        .iter()
        .zip(output)
        .map(|(&i, &o)| if i == 0 { 1.0 } else { o as f64 / i as f64 })
        .collect()
}
