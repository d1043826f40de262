//! Resize: nearest, N-linear and cubic, one axis at a time (each mode is
//! separable, so resizing axis by axis equals the N-D formula).

use super::{f32_data, float_tensor, Ctx, Op, OpResult};
use crate::backend::cpu::util::split_at_axis;
use crate::ir::{
    CoordinateTransform as Ct, NearestRounding, ResizeMode, ResizeOutput, ResizeParams,
    ResizeSelector,
};
use crate::tensor::{Tensor, TensorData};

pub struct Resize(pub ResizeParams);

/// Output positions of one axis: taps (input index, weight), and whether the
/// position falls outside the input (tf_crop_and_resize extrapolation).
struct AxisMap {
    taps: Vec<Vec<(usize, f32)>>,
    outside: Vec<bool>,
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

fn axis_map(p: &ResizeParams, axis: usize, rank: usize, n: usize, m: usize, scale: f64) -> AxisMap {
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

impl Resize {
    /// Output dims and the scale each axis uses in its coordinate formula.
    fn plan(
        &self,
        dims: &[usize],
        sizes: Option<&Tensor>,
    ) -> Result<(Vec<usize>, Vec<f64>), String> {
        let r = dims.len();
        match (&self.0.output, sizes) {
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
                let s = match &self.0.coordinate_scales {
                    Some(s) if s.len() == r => s.iter().map(|&v| v as f64).collect(),
                    _ => ratios(dims, d),
                };
                Ok((d.clone(), s))
            }
            (ResizeOutput::FromInput, Some(t)) => {
                let d: Vec<usize> = t
                    .to_i64_vec()
                    .into_iter()
                    .map(|v| usize::try_from(v).map_err(|_| format!("negative output dim {v}")))
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
}

fn ratios(input: &[usize], output: &[usize]) -> Vec<f64> {
    input
        .iter()
        .zip(output)
        .map(|(&i, &o)| if i == 0 { 1.0 } else { o as f64 / i as f64 })
        .collect()
}

/// Resizes one axis of `v` (dims `dims`) through `map`.
fn resize_axis<T: Copy + Default>(
    v: &[T],
    dims: &[usize],
    axis: usize,
    map: &AxisMap,
    mix: impl Fn(&[(usize, f32)], &dyn Fn(usize) -> T) -> T,
) -> Vec<T> {
    let (outer, n, inner) = split_at_axis(dims, axis);
    let m = map.taps.len();
    let mut out = Vec::with_capacity(outer * m * inner);
    for o in 0..outer {
        let base = o * n * inner;
        for taps in &map.taps {
            for i in 0..inner {
                out.push(mix(taps, &|k| v[base + k * inner + i]));
            }
        }
    }
    out
}

impl Op for Resize {
    fn run(&self, _: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        let x = inputs[0];
        let p = &self.0;
        let in_dims = x.shape().to_vec();
        let (out_dims, scales) = self.plan(&in_dims, inputs.get(1).copied())?;
        let r = in_dims.len();
        let mut dims = in_dims.clone();
        let mut maps = Vec::new();
        for a in 0..r {
            let identity = in_dims[a] == out_dims[a]
                && scales[a] == 1.0
                && p.coordinate_transform != Ct::TfCropAndResize;
            if identity {
                continue;
            }
            if in_dims[a] == 0 && out_dims[a] > 0 {
                return Err(format!("cannot resize an empty dim {a} to {}", out_dims[a]));
            }
            maps.push((a, axis_map(p, a, r, in_dims[a], out_dims[a], scales[a])));
        }
        let outside_any = maps.iter().any(|(_, m)| m.outside.iter().any(|&o| o));
        let data = match (p.mode, x.data()) {
            (ResizeMode::Nearest, data)
                if !matches!(data, TensorData::F32(_) | TensorData::F16(_)) || !outside_any =>
            {
                // Nearest never mixes values: move elements, whatever their type.
                macro_rules! nearest {
                    ($variant:ident, $v:expr) => {{
                        let mut v = $v.clone();
                        for (a, map) in &maps {
                            v = resize_axis(&v, &dims, *a, map, |t, get| get(t[0].0));
                            dims[*a] = map.taps.len();
                        }
                        TensorData::$variant(v)
                    }};
                }
                match data {
                    TensorData::F32(v) => nearest!(F32, v),
                    TensorData::F16(v) => nearest!(F16, v),
                    TensorData::I32(v) => nearest!(I32, v),
                    TensorData::I64(v) => nearest!(I64, v),
                    TensorData::U8(v) => nearest!(U8, v),
                    TensorData::Bool(v) => nearest!(Bool, v),
                }
            }
            _ => {
                let mut v = f32_data(x)?.into_owned();
                for (a, map) in &maps {
                    v = resize_axis(&v, &dims, *a, map, |t, get| {
                        t.iter().map(|&(k, w)| w * get(k)).sum()
                    });
                    dims[*a] = map.taps.len();
                }
                if outside_any {
                    apply_extrapolation(&mut v, &out_dims, &maps, p.extrapolation_value);
                }
                return Ok(vec![float_tensor(x.dtype(), out_dims, v)?]);
            }
        };
        Ok(vec![Tensor::new(out_dims, data).map_err(|e| e.to_string())?])
    }
}

/// Sets every output element whose position lies outside the input on any
/// axis to the extrapolation value.
fn apply_extrapolation(v: &mut [f32], dims: &[usize], maps: &[(usize, AxisMap)], value: f32) {
    let strides = crate::backend::cpu::util::strides(dims);
    for (i, x) in v.iter_mut().enumerate() {
        if maps
            .iter()
            .any(|(a, m)| m.outside[(i / strides[*a]) % dims[*a]])
        {
            *x = value;
        }
    }
}
