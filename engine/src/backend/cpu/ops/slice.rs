//! Slice with static start, size and stride, and TensorRT's bounds modes.

use super::{Ctx, Op, OpResult};
use crate::backend::cpu::util::{for_each_offset, strides};
use crate::ir::axis_map::slice_source;
use crate::ir::SliceParams;
use crate::tensor::{Tensor, TensorData};
use crate::with_data;

pub struct Slice(pub SliceParams);

impl Op for Slice {
    fn run(&self, _: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        let x = inputs[0];
        let dynamic;
        let p = if inputs.len() == 4 {
            let size = inputs[2]
                .to_i64_vec()
                .into_iter()
                .map(|v| usize::try_from(v).map_err(|_| format!("negative slice size {v}")))
                .collect::<Result<Vec<_>, _>>()?;
            dynamic = SliceParams {
                start: inputs[1].to_i64_vec(),
                size,
                stride: inputs[3].to_i64_vec(),
                ..self.0.clone()
            };
            &dynamic
        } else {
            &self.0
        };
        let dims = x.shape();
        if p.start.len() != dims.len() || p.size.len() != dims.len() || p.stride.len() != dims.len()
        {
            return Err(format!(
                "slice of rank {} on a tensor of rank {}",
                p.start.len(),
                dims.len()
            ));
        }
        if let Some(t) = in_bounds_slice(x, p) {
            return Ok(vec![t?]);
        }
        // Per dim, the source index of each output coordinate.
        let mut maps = Vec::with_capacity(dims.len());
        for (d, &n) in dims.iter().enumerate() {
            let m: Result<Vec<Option<usize>>, String> = (0..p.size[d])
                .map(|i| slice_source(p.mode, p.start[d], p.stride[d], i, n))
                .collect();
            maps.push(m?);
        }
        let s = strides(dims);
        let total: usize = p.size.iter().product();
        // Source offset of every output element (None where filled).
        let mut offsets: Vec<Option<usize>> = Vec::with_capacity(total);
        let mut idx = vec![0usize; dims.len()];
        for _ in 0..total {
            let mut off = Some(0usize);
            for d in 0..dims.len() {
                off = off.zip(maps[d][idx[d]]).map(|(o, i)| o + i * s[d]);
            }
            offsets.push(off);
            for d in (0..dims.len()).rev() {
                idx[d] += 1;
                if idx[d] < p.size[d] {
                    break;
                }
                idx[d] = 0;
            }
        }
        let f = p.fill;
        macro_rules! pick {
            ($variant:ident, $v:expr, $fill:expr) => {{
                let fill = $fill;
                TensorData::$variant(offsets.iter().map(|o| o.map_or(fill, |o| $v[o])).collect())
            }};
        }
        let data = match x.data() {
            TensorData::F32(v) => pick!(F32, v, f as f32),
            TensorData::F16(v) => pick!(F16, v, half::f16::from_f64(f)),
            TensorData::I32(v) => pick!(I32, v, f as i32),
            TensorData::I64(v) => pick!(I64, v, f as i64),
            TensorData::U8(v) => pick!(U8, v, f as u8),
            TensorData::Bool(v) => pick!(Bool, v, f != 0.0),
        };
        Ok(vec![
            Tensor::new(p.size.clone(), data).map_err(|e| e.to_string())?
        ])
    }
}

/// A slice that never leaves the input and never steps backwards (the Split,
/// crop and broadcast cases): runs along the last dim are copied (or
/// gathered) straight from the input. `None` when it does not apply.
fn in_bounds_slice(x: &Tensor, p: &SliceParams) -> Option<Result<Tensor, String>> {
    let dims = x.shape();
    let r = dims.len();
    if r == 0 || p.size.contains(&0) {
        return None;
    }
    for (d, &n) in dims.iter().enumerate() {
        let (st, sd) = (p.start[d], p.stride[d]);
        let last = st.checked_add((p.size[d] as i64 - 1).checked_mul(sd)?)?;
        if st < 0 || sd < 0 || st >= n as i64 || last >= n as i64 {
            return None;
        }
    }
    let s = strides(dims);
    let base: usize = (0..r).map(|d| p.start[d] as usize * s[d]).sum();
    let steps: Vec<usize> = (0..r).map(|d| p.stride[d] as usize * s[d]).collect();
    let (inner, step) = (p.size[r - 1], steps[r - 1]);
    let data = with_data!(x.data(), v => {
        let mut out = Vec::with_capacity(p.size.iter().product());
        for_each_offset(&p.size[..r - 1], [&steps[..r - 1]], |_, [o]| {
            let at = base + o;
            if step == 1 {
                out.extend_from_slice(&v[at..at + inner]);
            } else {
                out.extend((0..inner).map(|j| v[at + j * step]));
            }
        });
        TensorData::from(out)
    });
    Some(Tensor::new(p.size.clone(), data).map_err(|e| e.to_string()))
}
