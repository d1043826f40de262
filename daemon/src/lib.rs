//! jetrtd, jetrt's on-device daemon, as a library: configuration, engines,
//! frame sources, pipelines, the Unix socket server and its protocol, the
//! systemd integration, and a client. The `jetrtd` and `jetrtctl` binaries
//! are thin layers over it.
//!
//! Threads and channels, no async runtime: each source and each pipeline
//! runs on its own thread, each client has a reader and a writer thread, and
//! everything between them is a bounded crossbeam channel, so that no slow
//! part can stall another.

pub mod building;
pub mod client;
pub mod config;
pub mod engines;
pub mod error;
pub mod frame;
pub mod health;
pub mod hub;
pub mod latest;
pub mod notify;
pub mod pipeline;
pub mod pixel;
pub mod postprocess;
pub mod protocol;
pub mod runtime;
pub mod server;
pub mod sources;
pub mod stats;

pub use error::{Error, Result};

/// The daemon's version (that of the jetrt workspace).
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
