//! Element types a tensor can hold.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Element type of a tensor. The set mirrors what TensorRT networks carry
/// (plus uint8 for image inputs); float16 is a storage type that the cpu
/// backend computes in float32.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DataType {
    F32,
    F16,
    I32,
    I64,
    U8,
    Bool,
}

impl DataType {
    pub const ALL: [DataType; 6] = [
        DataType::F32,
        DataType::F16,
        DataType::I32,
        DataType::I64,
        DataType::U8,
        DataType::Bool,
    ];

    /// Size of one element in bytes.
    pub fn size(self) -> usize {
        match self {
            DataType::F32 | DataType::I32 => 4,
            DataType::F16 => 2,
            DataType::I64 => 8,
            DataType::U8 | DataType::Bool => 1,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            DataType::F32 => "float32",
            DataType::F16 => "float16",
            DataType::I32 => "int32",
            DataType::I64 => "int64",
            DataType::U8 => "uint8",
            DataType::Bool => "bool",
        }
    }

    pub fn is_float(self) -> bool {
        matches!(self, DataType::F32 | DataType::F16)
    }

    pub fn is_integer(self) -> bool {
        matches!(self, DataType::I32 | DataType::I64 | DataType::U8)
    }
}

impl fmt::Display for DataType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}
