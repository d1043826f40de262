//! Backends: build a network into a plan for a device, then run it.
//!
//! The cpu backend is always compiled in; GPU backends are features. Asking
//! for one that is not compiled in gives [`Error::BackendNotCompiled`], so
//! callers need no `cfg` of their own. Every backend's internals are private
//! to this crate: the builder and its passes see only these traits.

mod config;
pub(crate) mod cpu;
#[cfg(feature = "cuda")]
pub(crate) mod cuda;
mod executor;
pub(crate) mod norm_rows;

pub use config::{BuildConfig, Capabilities, Precision, RunConfig, Tactics};
pub use cpu::CpuBackend;
pub use executor::{Executor, LayerTime};

use crate::engine_file::PlanKey;
use crate::error::{Error, Result};
use crate::ir::Network;
use std::fmt;
use std::sync::Arc;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BackendKind {
    Cpu,
    Cuda,
    TensorRt,
}

impl BackendKind {
    /// In order of preference for `--backend auto`.
    pub const PREFERENCE: [BackendKind; 3] =
        [BackendKind::TensorRt, BackendKind::Cuda, BackendKind::Cpu];

    pub fn name(self) -> &'static str {
        match self {
            BackendKind::Cpu => "cpu",
            BackendKind::Cuda => "cuda",
            BackendKind::TensorRt => "tensorrt",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::PREFERENCE.into_iter().find(|k| k.name() == s)
    }

    /// Whether this build of jetrt has the backend at all.
    pub fn is_compiled(self) -> bool {
        match self {
            BackendKind::Cpu => true,
            BackendKind::Cuda => cfg!(feature = "cuda"),
            BackendKind::TensorRt => false,
        }
    }
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

pub trait Backend: Send + Sync {
    fn kind(&self) -> BackendKind;
    /// Whether the backend can run on this machine, and if not, why.
    fn probe(&self) -> Result<()>;
    /// What the backend can do; callers ask this rather than testing its kind.
    fn capabilities(&self) -> Capabilities;
    /// The key a plan built here carries; plans with another key are rebuilt.
    fn plan_key(&self) -> Result<PlanKey>;
    /// Builds `net` into a serialized plan.
    fn build(&self, net: &Network, cfg: &BuildConfig) -> Result<Vec<u8>>;
    /// Loads a plan built by this backend for `net`.
    fn load(&self, net: Arc<Network>, plan: &[u8], cfg: &RunConfig) -> Result<Box<dyn Executor>>;
}

/// The backend of `kind` on device 0, if compiled into this build.
pub fn backend(kind: BackendKind) -> Result<Box<dyn Backend>> {
    backend_on(kind, 0)
}

/// The backend of `kind` on device `device` (an index among the machine's
/// GPUs; the cpu backend has only device 0).
pub fn backend_on(kind: BackendKind, device: usize) -> Result<Box<dyn Backend>> {
    match kind {
        BackendKind::Cpu if device == 0 => Ok(Box::new(CpuBackend)),
        BackendKind::Cpu => Err(Error::Unsupported {
            backend: "cpu",
            what: format!("device {device} (the cpu backend has only device 0)"),
        }),
        #[cfg(feature = "cuda")]
        BackendKind::Cuda => Ok(Box::new(cuda::CudaBackend::new(device))),
        other => Err(Error::BackendNotCompiled(other.name().into())),
    }
}

/// The most capable backend compiled in and usable here; the cpu backend
/// when nothing better is. Each one passed over is logged with its reason.
pub fn auto() -> Box<dyn Backend> {
    auto_on(0)
}

/// As [`auto`], on device `device` for the GPU backends.
pub fn auto_on(device: usize) -> Box<dyn Backend> {
    for kind in BackendKind::PREFERENCE {
        if kind == BackendKind::Cpu || !kind.is_compiled() {
            continue;
        }
        match backend_on(kind, device).and_then(|b| b.probe().map(|_| b)) {
            Ok(b) => return b,
            Err(e) => log::info!("backend auto: not {kind}: {e}"),
        }
    }
    Box::new(CpuBackend)
}
