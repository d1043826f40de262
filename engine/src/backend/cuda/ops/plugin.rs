//! Plugin layers: the plugin's CUDA kernel on the context's stream, or,
//! for a plugin built without one, its CPU kernel on copies of the data (a
//! host round trip that waits for the stream; logged once). Outputs are
//! checked against the layer's record either way.

use super::{Arg, Kernel, PlanCx, RunCx};
use crate::backend::cuda::device::cu;
use crate::error::{Error, Result};
use crate::ir::PluginParams;
use crate::plugin::{self, registry, CudaPlan, DeviceTensor, InputDesc, PluginInstance};
use crate::tensor::Tensor;
use cudarc::driver::result;

pub struct Plugin {
    params: PluginParams,
    instance: PluginInstance,
    plan: Option<CudaPlan>,
    /// The dims each output is allocated at (a data-dependent dim at its
    /// bound); a run starts from them, whatever the last one produced.
    alloc: Vec<Vec<usize>>,
}

impl Plugin {
    pub fn new(p: &PluginParams) -> Result<Self> {
        let entry = registry::require(p)?;
        let instance = PluginInstance::deserialize(entry, &p.data)?;
        if !instance.has_cuda() {
            log::info!(
                "plugin {} has no CUDA kernel in this build; it runs on the CPU, copying its data to and from the GPU",
                p.describe()
            );
        }
        Ok(Plugin {
            params: p.clone(),
            instance,
            plan: None,
            alloc: Vec::new(),
        })
    }

    fn check(&self, ins: &[Arg], outs: &[Arg]) -> Result<()> {
        let produced: Vec<_> = outs.iter().map(|a| (a.dtype, a.dims.as_slice())).collect();
        let dims: Vec<&[usize]> = ins.iter().map(|a| a.dims.as_slice()).collect();
        plugin::check_outputs(&self.params, &produced, &dims).map_err(Error::Plugin)
    }

    fn run_on_host(&mut self, rc: &RunCx<'_>, ins: &[Arg], outs: &mut [Arg]) -> Result<()> {
        // SAFETY: the stream is the context's own and alive.
        cu("waiting for the stream", unsafe {
            result::stream::synchronize(rc.stream)
        })?;
        let mut host = Vec::with_capacity(ins.len());
        for a in ins {
            let mut bytes = vec![0u8; a.len() * a.dtype.size()];
            if !bytes.is_empty() {
                // SAFETY: `a` is device memory holding these bytes; the copy
                // completes before it returns.
                cu("copying plugin inputs to the host", unsafe {
                    result::memcpy_dtoh_sync(&mut bytes, a.ptr)
                })?;
            }
            host.push(Tensor::from_le_bytes(a.dtype, &a.dims, &bytes)?);
        }
        let refs: Vec<&Tensor> = host.iter().collect();
        let results = self.instance.run_cpu(&refs)?;
        if results.len() != outs.len() {
            return Err(Error::Plugin(format!(
                "plugin {} produced {} outputs where the engine records {}",
                self.params.describe(),
                results.len(),
                outs.len()
            )));
        }
        for (o, t) in outs.iter_mut().zip(&results) {
            let bytes = t.as_bytes();
            if bytes.len() > o.len() * o.dtype.size() || t.dtype() != o.dtype {
                return Err(Error::Plugin(format!(
                    "plugin {} produced more than its output holds",
                    self.params.describe()
                )));
            }
            if !bytes.is_empty() {
                // SAFETY: `o` holds at least `bytes` (checked above); the copy
                // completes before it returns.
                cu("copying plugin outputs to the GPU", unsafe {
                    result::memcpy_htod_sync(o.ptr, bytes)
                })?;
            }
            o.dims = t.shape().to_vec();
        }
        self.check(ins, outs)
    }
}

impl Kernel for Plugin {
    fn plan(&mut self, pc: &mut PlanCx<'_>, ins: &[Arg], outs: &[Arg]) -> Result<()> {
        self.alloc = outs.iter().map(|a| a.dims.clone()).collect();
        if !self.instance.has_cuda() {
            return Ok(());
        }
        let descs: Vec<InputDesc> = ins
            .iter()
            .map(|a| InputDesc {
                dtype: a.dtype,
                dims: a.dims.iter().map(|&d| Some(d)).collect(),
            })
            .collect();
        let plan = self.instance.cuda_plan(&descs)?;
        pc.need_workspace(plan.workspace);
        self.plan = Some(plan);
        Ok(())
    }

    fn enqueue(&mut self, rc: &RunCx<'_>, ins: &[Arg], outs: &mut [Arg]) -> Result<()> {
        for (o, d) in outs.iter_mut().zip(&self.alloc) {
            o.dims.clone_from(d);
        }
        let Some(plan) = &self.plan else {
            return self.run_on_host(rc, ins, outs);
        };
        let inputs: Vec<DeviceTensor> = ins
            .iter()
            .map(|a| DeviceTensor {
                dtype: a.dtype,
                dims: a.dims.clone(),
                ptr: a.ptr,
            })
            .collect();
        let ptrs: Vec<u64> = outs.iter().map(|a| a.ptr).collect();
        // SAFETY: the inputs and outputs are device memory of the dims the
        // plan allocated (the executor sized them from the same inference),
        // the workspace holds plan.workspace bytes, and the stream is this
        // context's; all outlive the work.
        let dims = unsafe {
            self.instance
                .run_cuda(plan, &inputs, &ptrs, rc.workspace, rc.stream.cast())?
        };
        for (o, d) in outs.iter_mut().zip(dims) {
            o.dims = d;
        }
        self.check(ins, outs)
    }
}
