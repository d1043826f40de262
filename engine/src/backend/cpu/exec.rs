//! Runs a network layer by layer on the cpu, in a thread pool of its own.

use super::ops::{self, Ctx, Op};
use crate::backend::{Executor, RunConfig};
use crate::error::{Error, Result};
use crate::ir::{LayerKind, Network, TensorRef};
use crate::tensor::Tensor;
use std::collections::HashMap;
use std::sync::Arc;

pub struct CpuExecutor {
    net: Arc<Network>,
    /// Per layer: its kernel, or its value for Constant layers.
    steps: Vec<Step>,
    /// Per tensor, the index of the last layer that reads it; network outputs
    /// are never freed early.
    last_use: HashMap<TensorRef, usize>,
    pool: rayon::ThreadPool,
    threads: usize,
}

enum Step {
    Const(Tensor),
    Run(Box<dyn Op>),
}

impl CpuExecutor {
    pub fn new(net: Arc<Network>, cfg: &RunConfig) -> Result<Self> {
        let mut steps = Vec::with_capacity(net.layers.len());
        for l in &net.layers {
            steps.push(match &l.kind {
                LayerKind::Constant { weights } => {
                    Step::Const(net.weights(*weights).as_ref().clone())
                }
                _ => Step::Run(ops::prepare(&net, l).map_err(|msg| Error::Layer {
                    layer: l.name.clone(),
                    kind: l.kind.name(),
                    msg,
                })?),
            });
        }
        let mut last_use = HashMap::new();
        for (i, l) in net.layers.iter().enumerate() {
            for &t in &l.inputs {
                last_use.insert(t, i);
            }
        }
        for o in &net.outputs {
            last_use.insert(o.tensor, usize::MAX);
        }
        let threads = cfg
            .threads
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
            .max(1);
        let pool = rayon::ThreadPoolBuilder::new()
            .num_threads(threads)
            .thread_name(|i| format!("jetrt-cpu-{i}"))
            .build()
            .map_err(|e| Error::Network(format!("cannot start {threads} cpu threads: {e}")))?;
        Ok(CpuExecutor {
            net,
            steps,
            last_use,
            pool,
            threads,
        })
    }

    fn run_layers(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>> {
        let net = &self.net;
        let mut inputs: Vec<Option<Tensor>> = inputs.into_iter().map(Some).collect();
        let mut values: Vec<Vec<Option<Tensor>>> = net
            .layers
            .iter()
            .map(|l| vec![None; l.outputs.len()])
            .collect();
        let ctx = Ctx {
            threads: self.threads,
        };
        for (i, (layer, step)) in net.layers.iter().zip(&self.steps).enumerate() {
            let Step::Run(op) = step else { continue };
            let err = |msg: String| Error::Layer {
                layer: layer.name.clone(),
                kind: layer.kind.name(),
                msg,
            };
            let outs = {
                let mut args = Vec::with_capacity(layer.inputs.len());
                for &t in &layer.inputs {
                    let v = match t {
                        TensorRef::Input(k) => inputs.get(k).and_then(Option::as_ref),
                        TensorRef::Layer(l, s) => match &self.steps[l] {
                            Step::Const(c) => Some(c),
                            Step::Run(_) => values[l][s].as_ref(),
                        },
                    };
                    args.push(v.ok_or_else(|| err(format!("input {t:?} is not available")))?);
                }
                op.run(&ctx, &args).map_err(err)?
            };
            if outs.len() != layer.outputs.len() {
                return Err(err(format!(
                    "produced {} outputs, expected {}",
                    outs.len(),
                    layer.outputs.len()
                )));
            }
            for (slot, (t, info)) in outs.into_iter().zip(&layer.outputs).enumerate() {
                if t.dtype() != info.dtype {
                    return Err(err(format!(
                        "produced {} where {} was expected",
                        t.dtype(),
                        info.dtype
                    )));
                }
                values[i][slot] = Some(t);
            }
            for &t in &layer.inputs {
                if self.last_use.get(&t) == Some(&i) {
                    match t {
                        TensorRef::Input(k) => inputs[k] = None,
                        TensorRef::Layer(l, s) => values[l][s] = None,
                    }
                }
            }
        }
        let mut outputs = Vec::with_capacity(net.outputs.len());
        for o in &net.outputs {
            let v = match o.tensor {
                TensorRef::Input(k) => inputs.get(k).and_then(Option::as_ref),
                TensorRef::Layer(l, s) => match &self.steps[l] {
                    Step::Const(c) => Some(c),
                    Step::Run(_) => values[l][s].as_ref(),
                },
            };
            outputs.push(
                v.cloned().ok_or_else(|| {
                    Error::Network(format!("output '{}' was not computed", o.name))
                })?,
            );
        }
        Ok(outputs)
    }
}

impl Executor for CpuExecutor {
    fn run(&mut self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>> {
        self.pool.install(|| self.run_layers(inputs))
    }
}
