//! Plugin layers on the cpu backend: the plugin's CPU kernel, through the C
//! ABI, with its results checked against the types the layer records
//! ([`crate::plugin::check_outputs`]).

use super::{Ctx, Op, OpResult};
use crate::ir::PluginParams;
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
        let produced: Vec<(crate::dtype::DataType, &[usize])> =
            outs.iter().map(|t| (t.dtype(), t.shape())).collect();
        let dims: Vec<&[usize]> = inputs.iter().map(|t| t.shape()).collect();
        crate::plugin::check_outputs(&self.params, &produced, &dims)?;
        Ok(outs)
    }
}
