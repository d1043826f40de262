//! The engine crate's error type.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{}: {error}", path.display())]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
    /// An engine file that cannot be read: truncated, corrupt, foreign or too new.
    #[error("{}: {msg}", path.display())]
    EngineFile { path: PathBuf, msg: String },
    /// A timing cache file that cannot be read or written.
    #[error("timing cache {}: {msg}", path.display())]
    TimingCache { path: PathBuf, msg: String },
    /// A network that violates the IR's rules (bad reference, shape mismatch, ...).
    #[error("invalid network: {0}")]
    Network(String),
    /// A layer that cannot be built or run, with what went wrong.
    #[error("layer '{layer}' ({kind}): {msg}")]
    Layer {
        layer: String,
        kind: &'static str,
        msg: String,
    },
    /// A run-time input that does not match what the engine expects.
    #[error("input '{name}': {msg}")]
    Input { name: String, msg: String },
    #[error("the {backend} backend does not support {what}")]
    Unsupported { backend: &'static str, what: String },
    #[error("backend '{0}' is not compiled into this build of jetrt")]
    BackendNotCompiled(String),
    #[error("{0}")]
    Plugin(String),
    /// A GPU library call that failed, or a GPU that cannot be used, with
    /// what was being done.
    #[error("{0}")]
    Device(String),
    /// A tensor operation on mismatched shapes or types.
    #[error("{0}")]
    Tensor(String),
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error,
        }
    }
}
