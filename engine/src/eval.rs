//! The IR's reference semantics on host tensors: what a layer, or a whole
//! network, computes. The engine builder folds constants with it and tests
//! judge backends against it; it is computed by the cpu backend's kernels,
//! which are the oracle every other backend is held to, but callers need
//! not (and cannot) reach into that backend.

use crate::backend::{cpu, Executor, RunConfig};
use crate::error::{Error, Result};
use crate::ir::{Layer, Network};
use crate::tensor::Tensor;
use std::sync::Arc;

/// Evaluates layer `layer` of `net` on concrete inputs.
pub fn eval_layer(net: &Network, layer: usize, inputs: &[&Tensor]) -> Result<Vec<Tensor>> {
    let l = net
        .layers
        .get(layer)
        .ok_or_else(|| Error::Network(format!("layer {layer} is not in '{}'", net.name)))?;
    cpu::eval_layer(net, l, inputs)
}

/// Evaluates a layer that refers to no weights (a shape computation), on
/// its own.
pub fn eval_weightless(layer: &Layer, inputs: &[&Tensor]) -> Result<Vec<Tensor>> {
    if !layer.kind.weights().is_empty() {
        return Err(Error::Layer {
            layer: layer.name.clone(),
            kind: layer.kind.name(),
            msg: "refers to weights, so it needs its network to be evaluated".into(),
        });
    }
    cpu::eval_layer(&Network::default(), layer, inputs)
}

/// Runs a whole network on host tensors (given in the order of its inputs)
/// on `threads` threads (`None`: every core).
pub fn eval_network(
    net: Arc<Network>,
    inputs: Vec<Tensor>,
    threads: Option<usize>,
) -> Result<Vec<Tensor>> {
    crate::engine::check_inputs(&net.inputs, &inputs)?;
    let mut ex = cpu::CpuExecutor::new(
        net,
        &RunConfig {
            threads,
            ..Default::default()
        },
    )?;
    ex.run(inputs)
}
