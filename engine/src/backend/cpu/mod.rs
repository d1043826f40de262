//! The cpu backend: pure Rust, always compiled in, the embedded default and
//! the oracle other backends are tested against. It computes in float32
//! (float16 tensors are stored as such and widened for arithmetic).

pub(crate) mod act;
mod buffers;
mod exec;
mod fuse;
pub(crate) mod gelu;
mod gemm;
mod keep_warm;
mod ops;
mod sgemm;
mod simd;
mod taps;
mod transpose8;
mod util;

pub use exec::CpuExecutor;

use super::{Backend, BackendKind, BuildConfig, Capabilities, Executor, Precision, RunConfig};
use crate::engine_file::PlanKey;
use crate::error::{Error, Result};
use crate::ir::Network;
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub struct CpuBackend;

/// What a cpu plan records. Kernels are prepared when the plan is loaded.
#[derive(Serialize, Deserialize)]
struct CpuPlan {
    format: u32,
}

const PLAN_FORMAT: u32 = 1;

impl Backend for CpuBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Cpu
    }

    fn probe(&self) -> Result<()> {
        Ok(())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            precisions: &[Precision::Fp32],
            max_rank: usize::MAX,
            device_io: false,
        }
    }

    fn plan_key(&self) -> Result<PlanKey> {
        Ok(PlanKey {
            backend: "cpu".into(),
            device: std::env::consts::ARCH.into(),
            version: crate::VERSION.into(),
        })
    }

    fn build(&self, net: &Network, cfg: &BuildConfig) -> Result<Vec<u8>> {
        self.capabilities().check_precision("cpu", cfg.precision)?;
        // Preparing every kernel once checks the network runs here.
        CpuExecutor::new(
            Arc::new(net.clone()),
            &RunConfig {
                threads: Some(1),
                ..Default::default()
            },
        )?;
        Ok(serde_json::to_vec(&CpuPlan {
            format: PLAN_FORMAT,
        })
        .expect("plan serializes"))
    }

    fn load(&self, net: Arc<Network>, plan: &[u8], cfg: &RunConfig) -> Result<Box<dyn Executor>> {
        let p: CpuPlan = serde_json::from_slice(plan)
            .map_err(|e| Error::Network(format!("unreadable cpu plan: {e}")))?;
        if p.format != PLAN_FORMAT {
            return Err(Error::Network(format!(
                "cpu plan format {} is not {PLAN_FORMAT}; rebuild the engine",
                p.format
            )));
        }
        Ok(Box::new(CpuExecutor::new(net, cfg)?))
    }
}

/// Evaluates one layer of `net` on concrete inputs: how the builder folds
/// constants with the same kernels the engine runs (see [`crate::eval`]).
pub fn eval_layer(net: &Network, l: &crate::ir::Layer, inputs: &[&Tensor]) -> Result<Vec<Tensor>> {
    let err = |msg: String| Error::Layer {
        layer: l.name.clone(),
        kind: l.kind.name(),
        msg,
    };
    let op = ops::prepare(net, l).map_err(err)?;
    let buffers = buffers::Buffers::default();
    op.run(&ops::Ctx::new(1, &buffers), inputs).map_err(err)
}
