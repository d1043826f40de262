//! Resize: nearest, N-linear and cubic, one axis at a time (each mode is
//! separable, so resizing axis by axis equals the N-D formula).

use super::{f32_data, float_tensor, Ctx, Op, OpResult};
use crate::backend::cpu::util::split_at_axis;
use crate::ir::axis_map::{resize_axis_map, resize_plan, AxisMap};
use crate::ir::{CoordinateTransform as Ct, ResizeMode, ResizeParams};
use crate::tensor::{Tensor, TensorData};

pub struct Resize(pub ResizeParams);

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
        let sizes = inputs.get(1).map(|t| t.to_i64_vec());
        let (out_dims, scales) = resize_plan(p, &in_dims, sizes.as_deref())?;
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
            maps.push((
                a,
                resize_axis_map(p, a, r, in_dims[a], out_dims[a], scales[a]),
            ));
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
