//! engine-builder: ONNX models (as `torch.onnx.export` writes them) into
//! jetrt engines.
//!
//! [`onnx`] reads models, [`convert`] lowers their graphs through a
//! [`convert::Registry`] of per-op converters into the network IR,
//! [`optimize`] rewrites the IR, and [`build`] ties it all to a backend and
//! produces an [`jetrt_engine::engine::Engine`].

pub mod allowlist;
pub mod build;
pub mod compare;
pub mod convert;
pub mod error;
pub mod onnx;
pub mod optimize;
pub mod pipe;
pub mod testcase;

pub use error::{Error, Result};
