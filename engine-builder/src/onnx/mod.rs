//! Reading ONNX: the protobuf model, its tensors, and `.pb` tensor files.

pub mod ops_list;
#[allow(clippy::all, missing_docs)]
pub mod proto;
mod tensor;

pub use tensor::{
    dtype_from_onnx, onnx_dtype, read_pb, tensor_from_proto, tensor_to_proto, write_pb,
};

use crate::error::Error;
use prost::Message;
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use std::path::{Path, PathBuf};

/// The newest ONNX IR version this build knows; newer models get a warning.
pub const MAX_IR_VERSION: i64 = 14;
/// The newest default-domain opset converters are declared for.
pub const MAX_OPSET: u32 = 28;

/// A parsed ONNX model and where it came from.
pub struct OnnxModel {
    pub proto: proto::ModelProto,
    pub path: PathBuf,
    /// SHA-256 of the file, hex.
    pub hash: String,
    /// Opset version per domain; the default domain is `""`.
    pub opsets: HashMap<String, u32>,
}

/// `""` for the default domain under either of its names.
pub fn normalize_domain(d: &str) -> &str {
    if d == "ai.onnx" {
        ""
    } else {
        d
    }
}

impl OnnxModel {
    /// Reads and checks an ONNX model file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self, Error> {
        let path = path.as_ref();
        let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
        Self::from_bytes(bytes, path)
    }

    pub fn from_bytes(bytes: Vec<u8>, path: &Path) -> Result<Self, Error> {
        let bad = |msg: String| Error::Model {
            path: path.to_path_buf(),
            msg,
        };
        if bytes.is_empty() {
            return Err(bad(
                "the file is empty; export the model again with torch.onnx.export".into(),
            ));
        }
        let hash = hex(&Sha256::digest(&bytes));
        let proto = proto::ModelProto::decode(prost::bytes::Bytes::from(bytes)).map_err(|e| {
            bad(format!(
                "not a valid ONNX model: protobuf decoding failed ({e}); the file may be truncated or not an ONNX file"
            ))
        })?;
        if proto.opset_import.is_empty() || proto.ir_version <= 0 {
            return Err(bad(
                "not a valid ONNX model: it declares no IR version or operator sets".into(),
            ));
        }
        let graph = proto
            .graph
            .as_ref()
            .ok_or_else(|| bad("not a valid ONNX model: it has no graph".into()))?;
        if graph.output.is_empty() {
            return Err(bad("the model's graph has no outputs".into()));
        }
        if proto.ir_version > MAX_IR_VERSION {
            log::warn!(
                "{}: IR version {} is newer than this build knows ({MAX_IR_VERSION}); converting anyway",
                path.display(),
                proto.ir_version
            );
        }
        let mut opsets = HashMap::new();
        for o in &proto.opset_import {
            let v = u32::try_from(o.version).map_err(|_| {
                bad(format!(
                    "invalid opset version {} for domain '{}'",
                    o.version, o.domain
                ))
            })?;
            opsets.insert(normalize_domain(&o.domain).to_string(), v);
        }
        Ok(OnnxModel {
            proto,
            path: path.to_path_buf(),
            hash,
            opsets,
        })
    }

    pub fn graph(&self) -> &proto::GraphProto {
        // `load` refuses models without a graph.
        self.proto.graph.as_ref().expect("checked at load")
    }

    /// The directory external tensor data is resolved against.
    pub fn dir(&self) -> &Path {
        self.path.parent().unwrap_or(Path::new("."))
    }

    /// The model's name: the graph's, else the file stem.
    pub fn name(&self) -> String {
        let g = &self.graph().name;
        if !g.is_empty() && g != "main_graph" {
            return g.clone();
        }
        self.path
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .filter(|s| s != "model")
            .or_else(|| {
                self.path
                    .parent()
                    .and_then(|p| p.file_name())
                    .map(|s| s.to_string_lossy().into_owned())
            })
            .unwrap_or_else(|| "model".into())
    }
}

pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}
