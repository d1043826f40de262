//! Select: `condition ? then : else`, broadcast over equal ranks.

use super::{Ctx, Op, OpResult};
use crate::backend::cpu::util::{broadcast_dims, broadcast_strides, for_each_offset};
use crate::tensor::{Tensor, TensorData};

pub struct Select;

impl Op for Select {
    fn run(&self, _: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        let (c, a, b) = (inputs[0], inputs[1], inputs[2]);
        let TensorData::Bool(cond) = c.data() else {
            return Err(format!("condition must be bool, got {}", c.dtype()));
        };
        let out = broadcast_dims(&broadcast_dims(c.shape(), a.shape())?, b.shape())?;
        let (sc, sa, sb) = (
            broadcast_strides(c.shape(), &out),
            broadcast_strides(a.shape(), &out),
            broadcast_strides(b.shape(), &out),
        );
        macro_rules! pick {
            ($variant:ident, $x:expr, $y:expr) => {{
                let mut v = Vec::with_capacity(out.iter().product());
                for_each_offset(&out, [&sc, &sa, &sb], |_, [i, j, k]| {
                    v.push(if cond[i] { $x[j] } else { $y[k] })
                });
                TensorData::$variant(v)
            }};
        }
        let data = match (a.data(), b.data()) {
            (TensorData::F32(x), TensorData::F32(y)) => pick!(F32, x, y),
            (TensorData::F16(x), TensorData::F16(y)) => pick!(F16, x, y),
            (TensorData::I32(x), TensorData::I32(y)) => pick!(I32, x, y),
            (TensorData::I64(x), TensorData::I64(y)) => pick!(I64, x, y),
            (TensorData::U8(x), TensorData::U8(y)) => pick!(U8, x, y),
            (TensorData::Bool(x), TensorData::Bool(y)) => pick!(Bool, x, y),
            _ => {
                return Err(format!(
                    "then and else types differ: {} and {}",
                    a.dtype(),
                    b.dtype()
                ))
            }
        };
        Ok(vec![Tensor::new(out, data).map_err(|e| e.to_string())?])
    }
}
