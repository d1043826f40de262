//! Cast between element types.

use super::{Ctx, Op, OpResult};
use crate::dtype::DataType;
use crate::tensor::{Tensor, TensorData};
use half::f16;

pub struct Cast(pub DataType);

/// Converts a tensor's elements to `to`: floats to integers truncate toward
/// zero (saturating), anything to bool is `!= 0`.
pub fn cast(x: &Tensor, to: DataType) -> Result<Tensor, String> {
    if x.dtype() == to {
        return Ok(x.clone());
    }
    let data = match (x.data(), to) {
        (TensorData::I64(v), DataType::I32) => {
            TensorData::I32(v.iter().map(|&a| a as i32).collect())
        }
        (TensorData::I64(v), DataType::F32) => {
            TensorData::F32(v.iter().map(|&a| a as f32).collect())
        }
        (_, DataType::I64) => TensorData::I64(match x.data() {
            TensorData::F32(v) => v.iter().map(|&a| a as i64).collect(),
            TensorData::F16(v) => v.iter().map(|a| a.to_f32() as i64).collect(),
            _ => x.to_i64_vec(),
        }),
        (_, DataType::F32) => {
            TensorData::F32(x.to_f32().as_f32().map(<[f32]>::to_vec).unwrap_or_default())
        }
        (_, DataType::F16) => {
            TensorData::F16(x.to_f64_vec().into_iter().map(f16::from_f64).collect())
        }
        (_, DataType::I32) => TensorData::I32(match x.data() {
            TensorData::F32(v) => v.iter().map(|&a| a as i32).collect(),
            _ => x.to_f64_vec().into_iter().map(|a| a as i32).collect(),
        }),
        (_, DataType::U8) => TensorData::U8(match x.data() {
            TensorData::I64(v) => v.iter().map(|&a| a as u8).collect(),
            TensorData::I32(v) => v.iter().map(|&a| a as u8).collect(),
            _ => x.to_f64_vec().into_iter().map(|a| a as i64 as u8).collect(),
        }),
        (_, DataType::Bool) => {
            TensorData::Bool(x.to_f64_vec().into_iter().map(|a| a != 0.0).collect())
        }
    };
    Tensor::new(x.shape().to_vec(), data).map_err(|e| e.to_string())
}

impl Op for Cast {
    fn run(&self, _: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        Ok(vec![cast(inputs[0], self.0)?])
    }
}
