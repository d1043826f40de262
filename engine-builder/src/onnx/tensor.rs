//! ONNX TensorProto <-> jetrt tensors, and `.pb` tensor files.

use super::proto::{tensor_proto::DataLocation, TensorProto};
use crate::error::Error;
use half::f16;
use jetrt_engine::shape::{format_dims, volume};
use jetrt_engine::{DataType, Tensor, TensorData};
use prost::Message;
use std::path::{Component, Path};

/// The jetrt type of an ONNX element type code.
pub fn dtype_from_onnx(code: i32) -> Result<DataType, String> {
    Ok(match code {
        1 => DataType::F32,
        2 => DataType::U8,
        6 => DataType::I32,
        7 => DataType::I64,
        9 => DataType::Bool,
        10 => DataType::F16,
        other => {
            let name = super::proto::tensor_proto::DataType::try_from(other)
                .map(|d| d.as_str_name().to_lowercase())
                .unwrap_or_else(|_| format!("type code {other}"));
            return Err(format!(
                "element type {name} is not supported (jetrt supports float32, float16, int32, int64, uint8, bool)"
            ));
        }
    })
}

pub fn onnx_dtype(dt: DataType) -> i32 {
    match dt {
        DataType::F32 => 1,
        DataType::U8 => 2,
        DataType::I32 => 6,
        DataType::I64 => 7,
        DataType::Bool => 9,
        DataType::F16 => 10,
    }
}

/// Decodes a TensorProto; external data is read relative to `dir`.
pub fn tensor_from_proto(t: &TensorProto, dir: Option<&Path>) -> Result<Tensor, String> {
    let dtype = dtype_from_onnx(t.data_type)?;
    let dims: Vec<usize> = t
        .dims
        .iter()
        .map(|&d| usize::try_from(d).map_err(|_| format!("negative dim {d}")))
        .collect::<Result<_, _>>()?;
    let n = dims
        .iter()
        .try_fold(1usize, |a, &d| a.checked_mul(d))
        .filter(|&n| n.checked_mul(8).is_some())
        .ok_or_else(|| format!("dims {dims:?} are too large"))?;
    if t.segment.is_some() {
        return Err("segmented tensors are not supported".into());
    }
    if t.data_location == DataLocation::External as i32 {
        let bytes = read_external(t, dir, n * dtype.size())?;
        return Tensor::from_le_bytes(dtype, &dims, &bytes).map_err(|e| e.to_string());
    }
    if !t.raw_data.is_empty() || n == 0 {
        return Tensor::from_le_bytes(dtype, &dims, &t.raw_data).map_err(|e| e.to_string());
    }
    let count_err = |found: usize| {
        format!(
            "{} {} needs {n} values, the tensor holds {found}",
            dtype,
            format_dims(&dims)
        )
    };
    let data = match dtype {
        DataType::F32 => {
            if t.float_data.len() != n {
                return Err(count_err(t.float_data.len()));
            }
            TensorData::F32(t.float_data.clone())
        }
        DataType::I64 => {
            if t.int64_data.len() != n {
                return Err(count_err(t.int64_data.len()));
            }
            TensorData::I64(t.int64_data.clone())
        }
        _ => {
            // float16 (as raw bits), int32, uint8 and bool all live in int32_data.
            if t.int32_data.len() != n {
                return Err(count_err(t.int32_data.len()));
            }
            let v = &t.int32_data;
            match dtype {
                DataType::F16 => {
                    TensorData::F16(v.iter().map(|&b| f16::from_bits(b as u16)).collect())
                }
                DataType::I32 => TensorData::I32(v.clone()),
                DataType::U8 => TensorData::U8(v.iter().map(|&b| b as u8).collect()),
                _ => TensorData::Bool(v.iter().map(|&b| b != 0).collect()),
            }
        }
    };
    Tensor::new(dims, data).map_err(|e| e.to_string())
}

fn read_external(t: &TensorProto, dir: Option<&Path>, want: usize) -> Result<Vec<u8>, String> {
    let mut location = None;
    let (mut offset, mut length) = (0u64, None);
    for kv in &t.external_data {
        match kv.key.as_str() {
            "location" => location = Some(kv.value.clone()),
            "offset" => {
                offset = kv
                    .value
                    .parse()
                    .map_err(|_| format!("bad external offset '{}'", kv.value))?
            }
            "length" => {
                length = Some(
                    kv.value
                        .parse::<u64>()
                        .map_err(|_| format!("bad external length '{}'", kv.value))?,
                )
            }
            _ => {}
        }
    }
    let location = location.ok_or("external data without a location")?;
    let rel = Path::new(&location);
    if rel.is_absolute() || rel.components().any(|c| matches!(c, Component::ParentDir)) {
        return Err(format!(
            "external data location '{location}' must be a path inside the model's directory"
        ));
    }
    let path = dir.unwrap_or(Path::new(".")).join(rel);
    let len = length.unwrap_or(want as u64);
    if len != want as u64 {
        return Err(format!(
            "external data of {len} bytes where {want} are needed"
        ));
    }
    use std::io::{Read, Seek, SeekFrom};
    let mut f = std::fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
    // The claim is checked against the file before anything is allocated
    // for it: a few bytes of model must not ask for exabytes.
    let size = f
        .metadata()
        .map_err(|e| format!("{}: {e}", path.display()))?
        .len();
    if offset.checked_add(want as u64).is_none_or(|end| end > size) {
        return Err(format!(
            "{}: external data of {want} bytes at offset {offset} runs past the file's end ({size} bytes)",
            path.display()
        ));
    }
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    let mut buf = Vec::new();
    buf.try_reserve_exact(want)
        .map_err(|_| format!("cannot allocate {want} bytes for external data"))?;
    buf.resize(want, 0);
    f.read_exact(&mut buf).map_err(|e| {
        format!(
            "{}: cannot read {want} bytes at offset {offset}: {e}",
            path.display()
        )
    })?;
    Ok(buf)
}

/// A TensorProto holding `t` as raw little-endian data.
pub fn tensor_to_proto(t: &Tensor, name: &str) -> TensorProto {
    TensorProto {
        dims: t.shape().iter().map(|&d| d as i64).collect(),
        data_type: onnx_dtype(t.dtype()),
        name: name.to_string(),
        raw_data: t.to_le_bytes().into(),
        ..Default::default()
    }
}

/// Reads a `.pb` file holding one TensorProto; returns the tensor and its name.
pub fn read_pb(path: &Path) -> Result<(Tensor, String), Error> {
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    let bad = |msg: String| Error::Data {
        path: path.to_path_buf(),
        msg,
    };
    let proto = TensorProto::decode(bytes.as_slice())
        .map_err(|e| bad(format!("not a serialized ONNX TensorProto ({e})")))?;
    let t = tensor_from_proto(&proto, path.parent()).map_err(bad)?;
    if volume(t.shape()) != t.len() {
        return Err(bad("inconsistent tensor".into()));
    }
    Ok((t, proto.name))
}

/// Writes a tensor as a `.pb` TensorProto file.
pub fn write_pb(path: &Path, t: &Tensor, name: &str) -> Result<(), Error> {
    std::fs::write(path, tensor_to_proto(t, name).encode_to_vec()).map_err(|e| Error::io(path, e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_fields_and_raw_data_agree() {
        let raw = tensor_to_proto(&Tensor::from_i64(&[3], vec![1, -2, 3]).unwrap(), "x");
        let typed = TensorProto {
            dims: vec![3],
            data_type: 7,
            int64_data: vec![1, -2, 3],
            ..Default::default()
        };
        assert_eq!(
            tensor_from_proto(&raw, None).unwrap(),
            tensor_from_proto(&typed, None).unwrap()
        );
    }

    #[test]
    fn bad_tensors_are_errors() {
        let short = TensorProto {
            dims: vec![4],
            data_type: 1,
            float_data: vec![1.0],
            ..Default::default()
        };
        assert!(tensor_from_proto(&short, None).is_err());
        let neg = TensorProto {
            dims: vec![-1],
            data_type: 1,
            ..Default::default()
        };
        assert!(tensor_from_proto(&neg, None).is_err());
        let huge = TensorProto {
            dims: vec![1 << 40, 1 << 40],
            data_type: 1,
            ..Default::default()
        };
        assert!(tensor_from_proto(&huge, None).is_err());
        let double = TensorProto {
            dims: vec![1],
            data_type: 11,
            ..Default::default()
        };
        let e = tensor_from_proto(&double, None).unwrap_err();
        assert!(e.contains("double"), "{e}");
    }

    /// External data claiming more bytes than its file holds is an error
    /// before anything is allocated for it (2^60 bytes here), and the
    /// claim that fits reads back.
    #[test]
    fn external_data_is_checked_against_its_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("w.bin"), [0u8; 64]).unwrap();
        let entry = |k: &str, v: &str| super::super::proto::StringStringEntryProto {
            key: k.into(),
            value: v.into(),
        };
        let external = |dims: Vec<i64>, length: u64| TensorProto {
            dims,
            data_type: 2, // uint8
            data_location: DataLocation::External as i32,
            external_data: vec![
                entry("location", "w.bin"),
                entry("length", &length.to_string()),
            ],
            ..Default::default()
        };
        let huge = external(vec![1 << 30, 1 << 30], 1 << 60);
        let e = tensor_from_proto(&huge, Some(dir.path())).unwrap_err();
        assert!(e.contains("past the file's end"), "{e}");
        let past = external(vec![65], 65);
        assert!(tensor_from_proto(&past, Some(dir.path())).is_err());
        let fits = external(vec![64], 64);
        let t = tensor_from_proto(&fits, Some(dir.path())).unwrap();
        assert_eq!(t.shape(), &[64]);
    }
}
