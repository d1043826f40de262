//! Plugin layers on the cpu backend: the plugin's CPU kernel, through the C
//! ABI, with its results checked against the types the layer records.

use super::{Ctx, Op, OpResult};
use crate::ir::{PluginDim, PluginParams};
use crate::plugin::{registry, PluginInstance};
use crate::tensor::Tensor;
use std::sync::Mutex;

pub struct PluginOp {
    params: PluginParams,
    /// One call at a time per instance, as the ABI promises plugins.
    instance: Mutex<PluginInstance>,
}

impl PluginOp {
    /// Re-creates the plugin from the parameters the layer holds.
    pub fn new(params: &PluginParams) -> Result<Self, String> {
        let entry = registry::require(params).map_err(|e| e.to_string())?;
        let instance =
            PluginInstance::deserialize(entry, &params.data).map_err(|e| e.to_string())?;
        Ok(PluginOp {
            params: params.clone(),
            instance: Mutex::new(instance),
        })
    }
}

impl Op for PluginOp {
    fn run(&self, _: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        let outs = self
            .instance
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .run_cpu(inputs)
            .map_err(|e| e.to_string())?;
        let spec = &self.params.outputs;
        if outs.len() != spec.len() {
            return Err(format!(
                "plugin {} produced {} outputs where the engine records {}",
                self.params.describe(),
                outs.len(),
                spec.len()
            ));
        }
        for (k, (t, o)) in outs.iter().zip(spec).enumerate() {
            let fits = t.shape().len() == o.dims.len()
                && t.shape().iter().zip(&o.dims).all(|(&n, d)| match d {
                    PluginDim::Known(m) => n == *m,
                    PluginDim::SameAs { input, axis } => inputs
                        .get(*input)
                        .and_then(|i| i.shape().get(*axis))
                        .is_some_and(|&m| m == n),
                    PluginDim::DataDependent { bound: Some(b) } => n <= *b,
                    PluginDim::DataDependent { bound: None } | PluginDim::Unknown => true,
                });
            if !fits || t.dtype() != o.dtype {
                return Err(format!(
                    "plugin {} produced output {k} as {} {}, which does not fit the engine's record {:?} {:?}",
                    self.params.describe(),
                    t.dtype(),
                    crate::shape::format_dims(t.shape()),
                    o.dtype,
                    o.dims
                ));
            }
        }
        Ok(outs)
    }
}
