//! jetrt's engine: the network IR, the engine file, and the backends that run it.
//!
//! The crate knows nothing of ONNX: `engine-builder` lowers models into a
//! [`ir::Network`], which a [`backend::Backend`] builds into a plan; an
//! [`engine::Engine`] file carries both, and an [`engine::Context`] runs it.

pub mod backend;
pub mod dtype;
pub mod engine;
pub mod engine_file;
pub mod error;
pub mod eval;
pub mod ir;
pub mod plugin;
pub mod preprocess;
pub mod resolve;
pub mod shape;
pub mod tensor;

pub use dtype::DataType;
pub use error::{Error, Result};
pub use tensor::{Tensor, TensorData};

/// The version of jetrt that wrote an engine; part of every plan key.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

// Tensors cross to devices, files and plugins as their in-memory bytes,
// which the formats define as little-endian.
#[cfg(not(target_endian = "little"))]
compile_error!("jetrt supports little-endian targets only");
