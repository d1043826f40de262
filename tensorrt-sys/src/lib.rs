//! FFI to the C shim over TensorRT's C++ API.
//!
//! The shim (built by CMake when TensorRT is found) is linked only with the
//! `shim` feature. Without it this crate exposes just [`AVAILABLE`], so the
//! rest of the workspace compiles on machines without TensorRT.

/// Whether this build links the TensorRT shim.
pub const AVAILABLE: bool = cfg!(feature = "shim");
