//! jetrtd's configuration: a TOML file with a `version` key and the tables
//! `[daemon]`, `[engines.NAME]`, `[sources.NAME]` and `[pipelines.NAME]`.
//!
//! [`raw`] is the file as written (unknown keys rejected), [`validate`]
//! checks values and cross-references and resolves relative paths against
//! the file's folder, giving a [`Config`]; [`check`] lists what can only be
//! a warning on the machine at hand (missing files, absent cameras).
//! Every error names the file, the line and the key.

pub mod check;
pub mod error;
pub mod raw;
pub mod types;
pub mod validate;

pub use check::{check, Warning};
pub use error::{ConfigError, Problem};
pub use types::*;
pub use validate::{load, parse};

/// The config format version this build reads.
pub const CONFIG_VERSION: i64 = 1;
