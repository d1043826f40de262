//! The cuda backend (feature `cuda`): cuDNN for convolutions, cuBLAS for
//! matrix products, and kernels compiled by NVRTC from the sources in
//! `kernels/` for every other layer; one stream per execution context.
//!
//! Libraries are loaded at run time (cudarc's dynamic loading), so a build
//! needs no CUDA installed, and a machine without a GPU, driver or library
//! gets an error saying which, never a crash (see `probe`).

mod cublas;
mod cudnn;
mod device;
mod exec;
mod graph;
mod launch;
mod nvrtc;
mod ops;
mod probe;
mod profile;

use super::{Backend, BackendKind, BuildConfig, Capabilities, Executor, Precision, RunConfig};
use crate::engine_file::PlanKey;
use crate::error::{Error, Result};
use crate::ir::Network;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub use exec::CudaExecutor;

/// The cuda backend on one GPU.
pub struct CudaBackend {
    device: usize,
}

impl CudaBackend {
    pub fn new(device: usize) -> Self {
        CudaBackend { device }
    }
}

/// What a cuda plan records: kernels are compiled (or read from the
/// cache) and weights uploaded when it is loaded.
#[derive(Serialize, Deserialize)]
struct CudaPlan {
    format: u32,
    precision: Precision,
    #[serde(default)]
    workspace: Option<usize>,
}

const PLAN_FORMAT: u32 = 1;

impl Backend for CudaBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Cuda
    }

    fn probe(&self) -> Result<()> {
        device::Gpu::open(self.device).map(|_| ())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            precisions: &[Precision::Fp32, Precision::Fp16],
            max_rank: ops::MAX_RANK,
            device_io: true,
        }
    }

    fn plan_key(&self) -> Result<PlanKey> {
        let gpu = device::Gpu::open(self.device)?;
        Ok(PlanKey {
            backend: "cuda".into(),
            device: gpu.arch_name(),
            version: crate::VERSION.into(),
        })
    }

    fn build(&self, net: &Network, cfg: &BuildConfig) -> Result<Vec<u8>> {
        // Loading the network here checks every layer runs on this GPU
        // and leaves its kernels compiled in the cache.
        let run = RunConfig {
            device: self.device,
            ..Default::default()
        };
        CudaExecutor::new(net, cfg.precision, cfg.workspace, &run)?;
        serde_json::to_vec(&CudaPlan {
            format: PLAN_FORMAT,
            precision: cfg.precision,
            workspace: cfg.workspace,
        })
        .map_err(|e| Error::Network(format!("cannot write the cuda plan: {e}")))
    }

    fn load(&self, net: Arc<Network>, plan: &[u8], cfg: &RunConfig) -> Result<Box<dyn Executor>> {
        let p: CudaPlan = serde_json::from_slice(plan)
            .map_err(|e| Error::Network(format!("unreadable cuda plan: {e}")))?;
        if p.format != PLAN_FORMAT {
            return Err(Error::Network(format!(
                "cuda plan format {} is not {PLAN_FORMAT}; rebuild the engine",
                p.format
            )));
        }
        Ok(Box::new(CudaExecutor::new(
            &net,
            p.precision,
            p.workspace,
            cfg,
        )?))
    }
}
