//! Errors of the daemon library. Each names the thing at fault (a file, a
//! pipeline, a source, a client request) and, where it helps, what to do.

use std::path::PathBuf;

pub type Result<T, E = Error> = std::result::Result<T, E>;

#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error(transparent)]
    Config(#[from] crate::config::ConfigError),
    #[error("engine '{name}': {msg}")]
    Engine { name: String, msg: String },
    #[error("source '{name}': {msg}")]
    Source { name: String, msg: String },
    #[error("pipeline '{name}': {msg}")]
    Pipeline { name: String, msg: String },
    #[error("socket {path}: {msg}")]
    Socket { path: PathBuf, msg: String },
    #[error("{path}: {error}")]
    Io {
        path: PathBuf,
        error: std::io::Error,
    },
}

impl Error {
    pub fn io(path: impl Into<PathBuf>, error: std::io::Error) -> Self {
        Error::Io {
            path: path.into(),
            error,
        }
    }
}
