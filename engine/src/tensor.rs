//! Host tensors: a shape and a typed buffer.

use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::shape::{format_dims, volume};
use half::f16;

/// Typed element storage of a host tensor.
#[derive(Clone, Debug, PartialEq)]
pub enum TensorData {
    F32(Vec<f32>),
    F16(Vec<f16>),
    I32(Vec<i32>),
    I64(Vec<i64>),
    U8(Vec<u8>),
    Bool(Vec<bool>),
}

/// Runs `$body` with `$v` bound to the typed vector inside a `TensorData`.
#[macro_export]
macro_rules! with_data {
    ($data:expr, $v:ident => $body:expr) => {
        match $data {
            $crate::tensor::TensorData::F32($v) => $body,
            $crate::tensor::TensorData::F16($v) => $body,
            $crate::tensor::TensorData::I32($v) => $body,
            $crate::tensor::TensorData::I64($v) => $body,
            $crate::tensor::TensorData::U8($v) => $body,
            $crate::tensor::TensorData::Bool($v) => $body,
        }
    };
}

impl TensorData {
    pub fn dtype(&self) -> DataType {
        match self {
            TensorData::F32(_) => DataType::F32,
            TensorData::F16(_) => DataType::F16,
            TensorData::I32(_) => DataType::I32,
            TensorData::I64(_) => DataType::I64,
            TensorData::U8(_) => DataType::U8,
            TensorData::Bool(_) => DataType::Bool,
        }
    }

    pub fn len(&self) -> usize {
        with_data!(self, v => v.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn zeros(dtype: DataType, len: usize) -> Self {
        match dtype {
            DataType::F32 => TensorData::F32(vec![0.0; len]),
            DataType::F16 => TensorData::F16(vec![f16::ZERO; len]),
            DataType::I32 => TensorData::I32(vec![0; len]),
            DataType::I64 => TensorData::I64(vec![0; len]),
            DataType::U8 => TensorData::U8(vec![0; len]),
            DataType::Bool => TensorData::Bool(vec![false; len]),
        }
    }
}

/// A tensor in host memory, row-major.
#[derive(Clone, Debug, PartialEq)]
pub struct Tensor {
    shape: Vec<usize>,
    data: TensorData,
}

impl Tensor {
    /// A tensor from a shape and data whose length must match the shape's volume.
    pub fn new(shape: Vec<usize>, data: TensorData) -> Result<Self> {
        if volume(&shape) != data.len() {
            return Err(Error::Tensor(format!(
                "shape {} holds {} elements but {} were given",
                format_dims(&shape),
                volume(&shape),
                data.len()
            )));
        }
        Ok(Tensor { shape, data })
    }

    pub fn zeros(dtype: DataType, shape: &[usize]) -> Self {
        Tensor {
            shape: shape.to_vec(),
            data: TensorData::zeros(dtype, volume(shape)),
        }
    }

    pub fn from_f32(shape: &[usize], v: Vec<f32>) -> Result<Self> {
        Self::new(shape.to_vec(), TensorData::F32(v))
    }

    pub fn from_i64(shape: &[usize], v: Vec<i64>) -> Result<Self> {
        Self::new(shape.to_vec(), TensorData::I64(v))
    }

    pub fn scalar_f32(x: f32) -> Self {
        Tensor {
            shape: vec![],
            data: TensorData::F32(vec![x]),
        }
    }

    /// A 1-D int64 tensor, the type of TensorRT shape tensors.
    pub fn vec_i64(v: Vec<i64>) -> Self {
        Tensor {
            shape: vec![v.len()],
            data: TensorData::I64(v),
        }
    }

    pub fn dtype(&self) -> DataType {
        self.data.dtype()
    }

    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }

    pub fn len(&self) -> usize {
        self.data.len()
    }

    pub fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    pub fn data(&self) -> &TensorData {
        &self.data
    }

    pub fn data_mut(&mut self) -> &mut TensorData {
        &mut self.data
    }

    pub fn into_data(self) -> TensorData {
        self.data
    }

    /// The same elements under another shape of equal volume.
    pub fn reshaped(mut self, shape: Vec<usize>) -> Result<Self> {
        if volume(&shape) != self.len() {
            return Err(Error::Tensor(format!(
                "cannot reshape {} elements to {}",
                self.len(),
                format_dims(&shape)
            )));
        }
        self.shape = shape;
        Ok(self)
    }

    pub fn as_f32(&self) -> Option<&[f32]> {
        match &self.data {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_f32_mut(&mut self) -> Option<&mut [f32]> {
        match &mut self.data {
            TensorData::F32(v) => Some(v),
            _ => None,
        }
    }

    pub fn as_i64(&self) -> Option<&[i64]> {
        match &self.data {
            TensorData::I64(v) => Some(v),
            _ => None,
        }
    }

    /// Every element as f64 (exact for all our types but the widest int64s).
    pub fn to_f64_vec(&self) -> Vec<f64> {
        match &self.data {
            TensorData::F32(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::F16(v) => v.iter().map(|x| x.to_f64()).collect(),
            TensorData::I32(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::I64(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::U8(v) => v.iter().map(|&x| x as f64).collect(),
            TensorData::Bool(v) => v.iter().map(|&x| x as u8 as f64).collect(),
        }
    }

    /// Every element as i64; floats are truncated toward zero.
    pub fn to_i64_vec(&self) -> Vec<i64> {
        match &self.data {
            TensorData::F32(v) => v.iter().map(|&x| x as i64).collect(),
            TensorData::F16(v) => v.iter().map(|x| x.to_f32() as i64).collect(),
            TensorData::I32(v) => v.iter().map(|&x| x as i64).collect(),
            TensorData::I64(v) => v.clone(),
            TensorData::U8(v) => v.iter().map(|&x| x as i64).collect(),
            TensorData::Bool(v) => v.iter().map(|&x| x as i64).collect(),
        }
    }

    /// A float32 copy of this tensor, converting from any type.
    pub fn to_f32(&self) -> Tensor {
        let v = match &self.data {
            TensorData::F32(v) => v.clone(),
            TensorData::F16(v) => v.iter().map(|x| x.to_f32()).collect(),
            _ => self.to_f64_vec().into_iter().map(|x| x as f32).collect(),
        };
        Tensor {
            shape: self.shape.clone(),
            data: TensorData::F32(v),
        }
    }

    /// This tensor's elements converted to `to`, with the IR's Cast
    /// semantics every backend follows: floats to integers truncate toward
    /// zero and saturate (NaN becomes 0), integers narrow by wrapping, and
    /// anything becomes bool as `!= 0`.
    pub fn cast(&self, to: DataType) -> Tensor {
        if self.dtype() == to {
            return self.clone();
        }
        let data = match (&self.data, to) {
            (TensorData::I64(v), DataType::I32) => {
                TensorData::I32(v.iter().map(|&a| a as i32).collect())
            }
            (TensorData::I64(v), DataType::F32) => {
                TensorData::F32(v.iter().map(|&a| a as f32).collect())
            }
            (_, DataType::I64) => TensorData::I64(match &self.data {
                TensorData::F32(v) => v.iter().map(|&a| a as i64).collect(),
                TensorData::F16(v) => v.iter().map(|a| a.to_f32() as i64).collect(),
                _ => self.to_i64_vec(),
            }),
            (_, DataType::F32) => self.to_f32().data,
            (_, DataType::F16) => {
                TensorData::F16(self.to_f64_vec().into_iter().map(f16::from_f64).collect())
            }
            (_, DataType::I32) => TensorData::I32(match &self.data {
                TensorData::F32(v) => v.iter().map(|&a| a as i32).collect(),
                _ => self.to_f64_vec().into_iter().map(|a| a as i32).collect(),
            }),
            (_, DataType::U8) => TensorData::U8(match &self.data {
                TensorData::I64(v) => v.iter().map(|&a| a as u8).collect(),
                TensorData::I32(v) => v.iter().map(|&a| a as u8).collect(),
                _ => self
                    .to_f64_vec()
                    .into_iter()
                    .map(|a| a as i64 as u8)
                    .collect(),
            }),
            (_, DataType::Bool) => {
                TensorData::Bool(self.to_f64_vec().into_iter().map(|a| a != 0.0).collect())
            }
        };
        Tensor {
            shape: self.shape.clone(),
            data,
        }
    }

    /// The elements as they lie in memory: little-endian (every target
    /// jetrt builds for is), bools one byte each, 0 or 1.
    pub fn as_bytes(&self) -> &[u8] {
        match &self.data {
            TensorData::F32(v) => bytemuck::cast_slice(v),
            TensorData::F16(v) => bytemuck::cast_slice(v),
            TensorData::I32(v) => bytemuck::cast_slice(v),
            TensorData::I64(v) => bytemuck::cast_slice(v),
            TensorData::U8(v) => v,
            // SAFETY: a bool is one byte holding 0 or 1, so a slice of them
            // is a valid slice of as many bytes, borrowed for as long.
            TensorData::Bool(v) => unsafe {
                std::slice::from_raw_parts(v.as_ptr().cast(), v.len())
            },
        }
    }

    /// Element bytes, little-endian (bools as one byte 0 or 1).
    pub fn to_le_bytes(&self) -> Vec<u8> {
        match &self.data {
            TensorData::F32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::F16(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::I32(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::I64(v) => v.iter().flat_map(|x| x.to_le_bytes()).collect(),
            TensorData::U8(v) => v.clone(),
            TensorData::Bool(v) => v.iter().map(|&x| x as u8).collect(),
        }
    }

    /// A tensor from little-endian element bytes; the byte count must match.
    pub fn from_le_bytes(dtype: DataType, shape: &[usize], bytes: &[u8]) -> Result<Self> {
        let n = volume(shape);
        let want = n
            .checked_mul(dtype.size())
            .ok_or_else(|| Error::Tensor(format!("shape {} is too large", format_dims(shape))))?;
        if bytes.len() != want {
            return Err(Error::Tensor(format!(
                "{} {} needs {want} bytes, found {}",
                dtype,
                format_dims(shape),
                bytes.len()
            )));
        }
        fn read<const N: usize, T>(bytes: &[u8], f: fn([u8; N]) -> T) -> Vec<T> {
            bytes
                .chunks_exact(N)
                .map(|c| {
                    let mut a = [0u8; N];
                    a.copy_from_slice(c);
                    f(a)
                })
                .collect()
        }
        let data = match dtype {
            DataType::F32 => TensorData::F32(read(bytes, f32::from_le_bytes)),
            DataType::F16 => TensorData::F16(read(bytes, f16::from_le_bytes)),
            DataType::I32 => TensorData::I32(read(bytes, i32::from_le_bytes)),
            DataType::I64 => TensorData::I64(read(bytes, i64::from_le_bytes)),
            DataType::U8 => TensorData::U8(bytes.to_vec()),
            DataType::Bool => TensorData::Bool(bytes.iter().map(|&b| b != 0).collect()),
        };
        Ok(Tensor {
            shape: shape.to_vec(),
            data,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bytes_round_trip_every_dtype() {
        for dt in DataType::ALL {
            let t = Tensor::zeros(dt, &[2, 3]);
            let b = t.to_le_bytes();
            assert_eq!(b.len(), 6 * dt.size());
            assert_eq!(Tensor::from_le_bytes(dt, &[2, 3], &b).unwrap(), t);
        }
        let t = Tensor::from_f32(&[2], vec![1.5, -2.0]).unwrap();
        let back = Tensor::from_le_bytes(DataType::F32, &[2], &t.to_le_bytes()).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn wrong_length_is_an_error() {
        assert!(Tensor::from_f32(&[2, 2], vec![0.0; 3]).is_err());
        assert!(Tensor::from_le_bytes(DataType::I64, &[2], &[0; 15]).is_err());
    }
}

macro_rules! impl_from_vec {
    ($($t:ty => $v:ident),*) => {$(
        impl From<Vec<$t>> for TensorData {
            fn from(v: Vec<$t>) -> Self {
                TensorData::$v(v)
            }
        }
    )*};
}

impl_from_vec!(f32 => F32, f16 => F16, i32 => I32, i64 => I64, u8 => U8, bool => Bool);
