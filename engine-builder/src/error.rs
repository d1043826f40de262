//! The engine-builder library's error type.

use std::fmt;
use std::path::PathBuf;

/// An ONNX node no converter handles.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UnsupportedOp {
    pub node: String,
    pub op_type: String,
    pub domain: String,
    pub opset: u32,
}

impl fmt::Display for UnsupportedOp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let domain = if self.domain.is_empty() {
            "ai.onnx"
        } else {
            &self.domain
        };
        write!(
            f,
            "{} (node '{}', {} opset {})",
            self.op_type, self.node, domain, self.opset
        )
    }
}

fn list_unsupported(ops: &[UnsupportedOp]) -> String {
    let mut s = format!(
        "the model uses {} node(s) no converter supports:",
        ops.len()
    );
    for o in ops {
        s.push_str("\n  ");
        s.push_str(&o.to_string());
    }
    s.push_str("\n(`engine-builder ops` lists what is supported; a custom converter can be registered for the rest)");
    if ops.iter().any(|o| !o.domain.is_empty()) {
        s.push_str(
            "\n(a node of a custom domain runs as the plugin of the same name: pass the library that provides it with --plugin LIB)",
        );
    }
    s
}

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// A file that is not a usable ONNX model.
    #[error("{}: {msg}", path.display())]
    Model { path: PathBuf, msg: String },
    /// A data file (a `.pb` tensor, `meta.json`, labels) that cannot be used.
    #[error("{}: {msg}", path.display())]
    Data { path: PathBuf, msg: String },
    #[error("{}", list_unsupported(.0))]
    Unsupported(Vec<UnsupportedOp>),
    /// A converter that cannot lower a node.
    #[error("node '{node}' ({op_type}): {msg}")]
    Convert {
        node: String,
        op_type: String,
        msg: String,
        /// The ONNX value that must be known at build time, when that is
        /// what stopped the conversion.
        needs_const: Option<String>,
    },
    /// Build options that do not fit the model.
    #[error("{0}")]
    Options(String),
    #[error(transparent)]
    Engine(#[from] jetrt_engine::Error),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error,
        }
    }
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
