//! Runs a network on the cpu, in a thread pool of its own: one step per
//! layer, except where the plan fuses a convolution with the residual
//! addition (and activation) that follow it.

use super::buffers::Buffers;
use super::ops::{self, Ctx, Op};
use crate::backend::{Executor, RunConfig};
use crate::error::{Error, Result};
use crate::ir::{LayerKind, Network, TensorRef};
use crate::tensor::{Tensor, TensorData};
use std::collections::HashMap;
use std::sync::Arc;

pub struct CpuExecutor {
    net: Arc<Network>,
    steps: Vec<Step>,
    /// Per tensor, the index of the last step that reads it; network outputs
    /// are never freed early.
    last_use: HashMap<TensorRef, usize>,
    buffers: Buffers,
    pool: rayon::ThreadPool,
    threads: usize,
    /// Per step, (total seconds, runs), when profiling.
    times: Option<std::sync::Mutex<Vec<(f64, usize)>>>,
    /// The bound-I/O state (see [`Executor`]).
    io: BoundIo,
}

/// Inputs bound as bytes and the outputs of the last run on them.
#[derive(Default)]
struct BoundIo {
    dims: Option<Vec<Vec<usize>>>,
    inputs: Vec<Vec<u8>>,
    /// The last run's outputs, while the dims it ran on are the bound ones.
    outputs: Option<Vec<Tensor>>,
}

enum Kernel {
    /// A Constant layer's value, kept for the life of the plan.
    Const(Tensor),
    Run(Box<dyn Op>),
    /// A convolution with a fused epilogue: its inputs are the image and,
    /// when given, a residual added before the activation.
    Conv(Box<ops::conv::Conv>),
    /// Folded into a later step.
    Skip,
}

struct Step {
    kernel: Kernel,
    /// The tensors the kernel reads.
    inputs: Vec<TensorRef>,
    /// The layers a fused step runs besides its own, for profiles.
    fused: Vec<usize>,
}

impl CpuExecutor {
    pub fn new(net: Arc<Network>, cfg: &RunConfig) -> Result<Self> {
        let layer_err = |l: usize, msg: String| Error::Layer {
            layer: net.layers[l].name.clone(),
            kind: net.layers[l].kind.name(),
            msg,
        };
        let mut steps: Vec<Option<Step>> = (0..net.layers.len()).map(|_| None).collect();
        for f in super::fuse::plan(&net) {
            for &l in &f.skipped {
                steps[l] = Some(Step {
                    kernel: Kernel::Skip,
                    inputs: vec![],
                    fused: vec![],
                });
            }
            steps[f.at] = Some(match f.what {
                super::fuse::Fused::Conv {
                    conv,
                    residual,
                    act,
                } => {
                    let LayerKind::Convolution(p) = &net.layers[conv].kind else {
                        unreachable!("fusions start at convolutions")
                    };
                    let op = ops::conv::Conv::with_act(&net, &net.layers[conv], p, act)
                        .map_err(|m| layer_err(conv, m))?;
                    Step {
                        kernel: Kernel::Conv(Box::new(op)),
                        inputs: std::iter::once(net.layers[conv].inputs[0])
                            .chain(residual)
                            .collect(),
                        fused: f.skipped.clone(),
                    }
                }
                super::fuse::Fused::Linear {
                    mm,
                    weights,
                    bias,
                    act,
                } => {
                    let LayerKind::MatrixMultiply { op1, .. } = net.layers[mm].kind else {
                        unreachable!("Linear fusions start at products")
                    };
                    let constant = |c: usize| match &net.layers[c].kind {
                        LayerKind::Constant { weights } => Ok(net.weights(*weights).clone()),
                        _ => Err(layer_err(c, "not a constant".into())),
                    };
                    let w = constant(weights)?;
                    let b = bias.map(constant).transpose()?;
                    let op = ops::linear::Linear::new(&w, op1, b.as_deref(), act)
                        .map_err(|m| layer_err(mm, m))?;
                    // The weights and bias are part of the kernel; profiles
                    // list the layers it computes.
                    let computed =
                        |l: &usize| !matches!(net.layers[*l].kind, LayerKind::Constant { .. });
                    Step {
                        kernel: Kernel::Run(Box::new(op)),
                        inputs: vec![net.layers[mm].inputs[0]],
                        fused: f.skipped.iter().copied().filter(computed).collect(),
                    }
                }
                super::fuse::Fused::HardSwish { x, act } => Step {
                    kernel: Kernel::Run(Box::new(ops::activation::ActivationOp(act))),
                    inputs: vec![x],
                    fused: f.skipped.clone(),
                },
            });
        }
        for (i, l) in net.layers.iter().enumerate() {
            if steps[i].is_some() {
                continue;
            }
            let kernel = match &l.kind {
                LayerKind::Constant { weights } => {
                    Kernel::Const(net.weights(*weights).as_ref().clone())
                }
                _ => Kernel::Run(ops::prepare(&net, l).map_err(|m| layer_err(i, m))?),
            };
            steps[i] = Some(Step {
                kernel,
                inputs: l.inputs.clone(),
                fused: vec![],
            });
        }
        let steps: Vec<Step> = steps
            .into_iter()
            .map(|s| s.expect("every layer has a step"))
            .collect();
        let mut last_use = HashMap::new();
        for (i, s) in steps.iter().enumerate() {
            for &t in &s.inputs {
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
        let times = cfg
            .profile
            .then(|| std::sync::Mutex::new(vec![(0.0, 0); net.layers.len()]));
        Ok(CpuExecutor {
            net,
            steps,
            last_use,
            buffers: Buffers::default(),
            pool,
            threads,
            times,
            io: BoundIo::default(),
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
        let ctx = Ctx::new(self.threads, &self.buffers);
        for (i, (layer, step)) in net.layers.iter().zip(&self.steps).enumerate() {
            let err = |msg: String| Error::Layer {
                layer: layer.name.clone(),
                kind: layer.kind.name(),
                msg,
            };
            let started = self.times.as_ref().map(|_| std::time::Instant::now());
            let outs = {
                let mut args = Vec::with_capacity(step.inputs.len());
                for &t in &step.inputs {
                    let v = match t {
                        TensorRef::Input(k) => inputs.get(k).and_then(Option::as_ref),
                        TensorRef::Layer(l, s) => match &self.steps[l].kernel {
                            Kernel::Const(c) => Some(c),
                            _ => values[l][s].as_ref(),
                        },
                    };
                    args.push(v.ok_or_else(|| err(format!("input {t:?} is not available")))?);
                }
                match &step.kernel {
                    Kernel::Const(_) | Kernel::Skip => continue,
                    Kernel::Run(op) => op.run(&ctx, &args).map_err(err)?,
                    Kernel::Conv(conv) => {
                        let res = match args.get(1) {
                            Some(r) => Some(
                                r.as_f32()
                                    .ok_or_else(|| err("residual is not float32".into()))?,
                            ),
                            None => None,
                        };
                        vec![conv.forward(&ctx, args[0], res).map_err(err)?]
                    }
                }
            };
            if let (Some(t), Some(times)) = (started, &self.times) {
                let mut times = times.lock().unwrap_or_else(|e| e.into_inner());
                times[i].0 += t.elapsed().as_secs_f64();
                times[i].1 += 1;
            }
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
            for &t in &step.inputs {
                if self.last_use.get(&t) == Some(&i) {
                    // Buffers the plan made go back for reuse; the caller's inputs
                    // are just dropped, so the pool never grows by them.
                    match t {
                        TensorRef::Input(k) => drop(inputs[k].take()),
                        TensorRef::Layer(l, s) => {
                            if let Some(TensorData::F32(v)) =
                                values[l][s].take().map(Tensor::into_data)
                            {
                                self.buffers.give(v);
                            }
                        }
                    }
                }
            }
        }
        let mut outputs = Vec::with_capacity(net.outputs.len());
        for o in &net.outputs {
            let v = match o.tensor {
                TensorRef::Input(k) => inputs.get(k).and_then(Option::as_ref),
                TensorRef::Layer(l, s) => match &self.steps[l].kernel {
                    Kernel::Const(c) => Some(c),
                    _ => values[l][s].as_ref(),
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

impl CpuExecutor {
    fn run_in_pool(&self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>> {
        let others = self.threads - 1;
        self.pool.install(|| {
            let _warm = (others > 0).then(|| super::keep_warm::KeepWarm::start(others));
            self.run_layers(inputs)
        })
    }

    fn output_decl(&self, o: usize) -> Result<&crate::ir::Output> {
        self.net
            .outputs
            .get(o)
            .ok_or_else(|| Error::Network(format!("the network has no output {o}")))
    }
}

impl Executor for CpuExecutor {
    fn set_input_dims(&mut self, dims: &[Vec<usize>]) -> Result<()> {
        let mut bufs = Vec::with_capacity(dims.len());
        for (decl, d) in self.net.inputs.iter().zip(dims) {
            let bytes =
                crate::resolve::tensor_bytes(decl.info.dtype, d).ok_or_else(|| Error::Input {
                    name: decl.name.clone(),
                    msg: format!("dims {} are too large", crate::shape::format_dims(d)),
                })?;
            bufs.push(vec![0u8; bytes as usize]);
        }
        self.io = BoundIo {
            dims: Some(dims.to_vec()),
            inputs: bufs,
            outputs: None,
        };
        Ok(())
    }

    fn input_dims(&self) -> Option<&[Vec<usize>]> {
        self.io.dims.as_deref()
    }

    fn input_host(&mut self, i: usize) -> Result<&mut [u8]> {
        self.io
            .inputs
            .get_mut(i)
            .map(|v| v.as_mut_slice())
            .ok_or_else(|| {
                Error::Network(format!("input {i} is not bound (set the input dims first)"))
            })
    }

    fn enqueue(&mut self) -> Result<()> {
        let dims = self
            .io
            .dims
            .clone()
            .ok_or_else(|| Error::Network("no input dims are set".into()))?;
        let inputs = self
            .net
            .inputs
            .iter()
            .zip(&dims)
            .zip(&self.io.inputs)
            .map(|((decl, d), bytes)| Tensor::from_le_bytes(decl.info.dtype, d, bytes))
            .collect::<Result<Vec<_>>>()?;
        self.io.outputs = None;
        let outs = self.run_in_pool(inputs)?;
        self.io.outputs = Some(outs);
        Ok(())
    }

    fn synchronize(&mut self) -> Result<()> {
        Ok(())
    }

    fn output_count(&self) -> usize {
        self.net.outputs.len()
    }

    fn output_dtype(&self, o: usize) -> crate::dtype::DataType {
        self.net
            .outputs
            .get(o)
            .map_or(crate::dtype::DataType::F32, |d| {
                self.net.info(d.tensor).dtype
            })
    }

    fn output_dims(&self, o: usize) -> Result<Vec<usize>> {
        let decl = self.output_decl(o)?;
        if let Some(outs) = &self.io.outputs {
            return Ok(outs[o].shape().to_vec());
        }
        let dims = self
            .io
            .dims
            .as_ref()
            .ok_or_else(|| Error::Network("no input dims are set".into()))?;
        let host = crate::resolve::HostPlan::of(&self.net);
        // Shape inputs' values, from what the caller has written.
        let values: Vec<Option<Arc<Tensor>>> = self
            .net
            .inputs
            .iter()
            .zip(dims)
            .zip(&self.io.inputs)
            .zip(&host.inputs)
            .map(|(((decl, d), bytes), &shape)| {
                shape
                    .then(|| Tensor::from_le_bytes(decl.info.dtype, d, bytes).map(Arc::new))
                    .transpose()
            })
            .collect::<Result<_>>()?;
        let r = crate::resolve::resolve(&self.net, &self.net.weights, &host, dims, &values)?;
        Ok(r.dims(decl.tensor).to_vec())
    }

    fn output_host(&self, o: usize) -> Result<&[u8]> {
        self.output_decl(o)?;
        self.io
            .outputs
            .as_ref()
            .map(|outs| outs[o].as_bytes())
            .ok_or_else(|| Error::Network("no run has finished on the bound inputs".into()))
    }

    fn run(&mut self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>> {
        self.run_in_pool(inputs)
    }

    fn reset_layer_times(&mut self) {
        if let Some(t) = &self.times {
            let mut t = t.lock().unwrap_or_else(|e| e.into_inner());
            t.iter_mut().for_each(|v| *v = (0.0, 0));
        }
    }

    fn layer_times(&self) -> Option<Vec<crate::backend::LayerTime>> {
        let times = self
            .times
            .as_ref()?
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        Some(
            self.net
                .layers
                .iter()
                .zip(&self.steps)
                .zip(times.iter())
                .filter(|(_, (_, n))| *n > 0)
                .map(|((l, step), &(s, n))| {
                    // A fused step is shown as its first layer (the convolution)
                    // followed by the layers it absorbed, this one last.
                    let chain: Vec<&crate::ir::Layer> = step
                        .fused
                        .iter()
                        .map(|&f| &self.net.layers[f])
                        .chain(std::iter::once(l))
                        .collect();
                    let names: Vec<&str> = chain.iter().map(|l| l.name.as_str()).collect();
                    let kinds: Vec<&str> = chain.iter().map(|l| l.kind.name()).collect();
                    let (shown, names, kind) = (chain[0], names.join("+"), kinds.join("+"));
                    crate::backend::LayerTime {
                        layer: names,
                        kind,
                        detail: describe(shown),
                        total_ms: s * 1e3,
                        runs: n,
                    }
                })
                .collect(),
        )
    }
}

/// A layer's salient parameters and output dims, for profiles.
fn describe(l: &crate::ir::Layer) -> String {
    let dims = l
        .outputs
        .first()
        .map(|o| crate::shape::format_shape(&o.shape))
        .unwrap_or_default();
    let params = match &l.kind {
        LayerKind::Convolution(p) | LayerKind::Deconvolution(p) => {
            let k: Vec<String> = p.kernel_size.iter().map(|v| v.to_string()).collect();
            let s: Vec<String> = p.stride.iter().map(|v| v.to_string()).collect();
            let g = if p.groups > 1 {
                format!(" g{}", p.groups)
            } else {
                String::new()
            };
            format!("k{} s{}{g} ", k.join("x"), s.join("x"))
        }
        LayerKind::ElementWise { op } => format!("{op:?} "),
        LayerKind::Activation { activation } => format!("{activation:?} "),
        LayerKind::Pooling(p) => format!("{:?} k{:?} ", p.pool_type, p.window),
        _ => String::new(),
    };
    format!("{params}-> {dims}")
}
