//! Plugins: ops implemented outside the IR through jetrt's C ABI
//! (`plugins-cpp/include/jetrt_plugin.h`).
//!
//! The built-in plugins (NonMaxSuppression, RoiAlign, GridSample) are
//! linked in from the static library that `build.rs` builds with CMake; user
//! plugin libraries are loaded at run time ([`PluginLibrary::load`]) and
//! registered beside them. A plugin is found by name and version in the
//! process-wide [`registry`]; a [`PluginInstance`] is one configured
//! instance of it, through which every call into plugin code goes, each
//! result checked before it is used.

mod builtin;
mod ffi;
mod instance;
mod library;
mod record;
pub mod registry;

pub use instance::{
    CudaPlan, DeviceTensor, InferredDim, InferredOutput, InputDesc, PluginInstance,
};
pub use library::PluginLibrary;
pub use record::check_outputs;
pub use registry::{PluginEntry, PluginSource};

/// The C ABI version this build of jetrt speaks (`JETRT_PLUGIN_ABI_VERSION`).
pub const ABI_VERSION: u32 = ffi::ABI_VERSION;
