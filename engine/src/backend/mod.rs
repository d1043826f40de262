//! Backends: build a network into a plan for a device, then run it.
//!
//! The cpu backend is always compiled in; GPU backends are features. Asking
//! for one that is not compiled in gives [`Error::BackendNotCompiled`], so
//! callers need no `cfg` of their own.

pub mod cpu;

use crate::engine_file::PlanKey;
use crate::error::{Error, Result};
use crate::ir::Network;
use crate::tensor::Tensor;
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
}

impl fmt::Display for BackendKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Options for building a plan.
#[derive(Clone, Debug, Default)]
pub struct BuildConfig {
    pub fp16: bool,
}

/// Options for running a plan.
#[derive(Clone, Debug, Default)]
pub struct RunConfig {
    /// Worker threads (cpu backend); `None` uses every core.
    pub threads: Option<usize>,
    /// Record the time each layer takes (see [`Executor::layer_times`]).
    pub profile: bool,
}

/// Time spent in one layer over every run since the context was made.
#[derive(Clone, Debug)]
pub struct LayerTime {
    pub layer: String,
    pub kind: String,
    /// Parameters and output dims, for telling layers apart.
    pub detail: String,
    pub total_ms: f64,
    pub runs: usize,
}

pub trait Backend: Send + Sync {
    fn kind(&self) -> BackendKind;
    /// Whether the backend can run on this machine, and if not, why.
    fn probe(&self) -> Result<()>;
    /// The key a plan built here carries; plans with another key are rebuilt.
    fn plan_key(&self) -> PlanKey;
    /// Builds `net` into a serialized plan.
    fn build(&self, net: &Network, cfg: &BuildConfig) -> Result<Vec<u8>>;
    /// Loads a plan built by this backend for `net`.
    fn load(&self, net: Arc<Network>, plan: &[u8], cfg: &RunConfig) -> Result<Box<dyn Executor>>;
}

/// A loaded plan ready to run, with its own buffers and threads.
pub trait Executor: Send {
    /// Runs the network on inputs already checked against its input types.
    fn run(&mut self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>>;

    /// Per-layer times, when the context was made with `profile`.
    fn layer_times(&self) -> Option<Vec<LayerTime>> {
        None
    }
}

/// The backend of `kind`, if compiled into this build.
pub fn backend(kind: BackendKind) -> Result<Box<dyn Backend>> {
    match kind {
        BackendKind::Cpu => Ok(Box::new(cpu::CpuBackend)),
        other => Err(Error::BackendNotCompiled(other.name().into())),
    }
}

/// The most capable backend compiled in and usable here; the cpu backend
/// when nothing better is.
pub fn auto() -> Box<dyn Backend> {
    for kind in BackendKind::PREFERENCE {
        if let Ok(b) = backend(kind) {
            if b.probe().is_ok() {
                return b;
            }
        }
    }
    Box::new(cpu::CpuBackend)
}
