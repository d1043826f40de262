//! The cuda backend's execution context: one stream, one cuBLAS and one
//! cuDNN handle, the network's constants and weights on the device (no
//! host copy of them is kept), and, for the input dims last set, a plan:
//! every tensor's place in one arena (laid out from tensor lifetimes),
//! the layers' tables and scratch, and pinned host buffers for the I/O.
//! A run enqueues copies and kernels on the stream and allocates nothing.

use super::cublas::Blas;
use super::cudnn::Dnn;
use super::device::{cu, human, DeviceBuf, Gpu, PinnedBuf, Stream};
use super::frame::{FrameBinding, FrameMemory};
use super::graph::Graph;
use super::layout;
use super::linear_residual::{self, LinearResidual};
use super::ops::elementwise::Cast;
use super::ops::{self, Arg, Builder, Kernel, ParamBlob, PlanCx, RunCx};
use super::profile::Profiler;
use super::tactics::{Search, Tactics};
use crate::backend::{Executor, LayerTime, Precision, RunConfig};
use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::ir::{fusion, Layer, LayerKind, Network, TensorRef, WeightShapes};
use crate::resolve::{self, HostPlan, Resolved, MAX_HOST_ELEMENTS};
use crate::tensor::Tensor;
use cudarc::driver::result;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Default scratch limit for one layer: enough for cuDNN's fast
/// algorithms on camera-sized inputs, small beside a Jetson's memory.
pub const DEFAULT_WORKSPACE: usize = 256 << 20;
const ALIGN: usize = 256;

/// The tensors a step reads (with whether its kernel reads each on the
/// device, not as a shape operand on the host) and writes.
#[derive(Clone, Default)]
struct StepIo {
    ins: Vec<(TensorRef, bool)>,
    outs: Vec<TensorRef>,
}

/// A device layer and the tensors it reads and writes.
struct Step {
    layer: usize,
    in_refs: Vec<TensorRef>,
    ins: Vec<Arg>,
    outs: Vec<Arg>,
}

/// How a plan's runs are enqueued.
enum Replay {
    /// Eagerly, layer by layer; `runs` so far (the first run is eager, so
    /// libraries have done their one-time setup before a capture).
    Eager {
        runs: usize,
    },
    Captured(Graph),
    /// Eagerly for good: the network cannot be captured (why is logged).
    Never,
}

/// Everything planned for one set of input dims (and shape-input values).
struct Plan {
    replay: Replay,
    resolved: Resolved,
    /// The values of the shape inputs it was made for.
    shape_values: Vec<Option<Arc<Tensor>>>,
    /// Kept alive while the plan's pointers refer into them.
    _arena: DeviceBuf,
    _params: DeviceBuf,
    workspace: DeviceBuf,
    errors: DeviceBuf,
    /// Arena addresses of every tensor that has one.
    slots: HashMap<TensorRef, u64>,
    /// float32 staging of inputs and outputs a float16 plan converts.
    staging_in: Vec<Option<u64>>,
    staging_out: Vec<Option<u64>>,
    steps: Vec<Step>,
    host_out: Vec<PinnedBuf>,
    /// Output dims as the last run produced them.
    out_dims: Vec<Vec<usize>>,
    arena_bytes: usize,
}

pub struct CudaExecutor {
    // Field order is drop order: the plan and kernels (device memory)
    // before the handles and the stream they were made on.
    plan: Option<Plan>,
    kernels: Vec<Option<Box<dyn Kernel>>>,
    /// Per layer with a kernel: the tensors its step reads (and whether
    /// each is read on the device) and writes. A fused step, at the place
    /// of its last layer, reads and writes across the layers it replaces.
    io: Vec<StepIo>,
    /// Per layer: its step runs on channels-last operands and takes their
    /// dims in storage order (`layout.rs`).
    storage_order: Vec<bool>,
    /// The layers each fused step runs, by the place it runs at.
    fused: HashMap<usize, Vec<usize>>,
    /// Tensors that are views of another's bytes (a reshape, or a permute
    /// that moves no data between layouts), by the tensor whose arena slot
    /// they share; their layers run no kernel.
    views: HashMap<TensorRef, TensorRef>,
    consts: HashMap<usize, DeviceBuf>,
    profiler: Option<Profiler>,
    err_host: Option<PinnedBuf>,
    cast: Cast,
    blas: Blas,
    dnn: Dnn,
    stream: Stream,
    gpu: Arc<Gpu>,
    /// The network without its weights' values (kept only for small ones).
    net: Network,
    weights: WeightShapes,
    host: HostPlan,
    device_reads: HashSet<TensorRef>,
    /// Pinned buffers the inputs are written to, for the dims set.
    host_in: Vec<PinnedBuf>,
    precision: Precision,
    workspace_limit: usize,
    tactics: Tactics,
    weight_bytes: usize,
    dims: Option<Vec<Vec<usize>>>,
    bound_in: Vec<Option<u64>>,
    bound_out: Vec<Option<u64>>,
    /// The device buffers `keep_io_on_device` bound, inputs then outputs.
    own_io: Vec<DeviceBuf>,
    /// An input fed from camera frames converted on the device.
    frame: Option<FrameBinding>,
    /// Why runs are not captured into CUDA graphs, if they are not.
    no_graphs: Option<String>,
}

/// A chain of layers one step runs (`ir::fusion`): from `first` through
/// `r`'s Sum and activation.
struct Chain {
    first: usize,
    r: fusion::Residual,
    /// A Linear's bias (`bias_of`: the Sum's other operand is a constant
    /// the kernel holds), else a convolution's residual (`residual_of`).
    bias: bool,
}

/// The network's tensors as the layout assignment asks about them.
struct NetTensors<'a>(&'a Network);

impl layout::Tensors for NetTensors<'_> {
    fn rank4(&self, t: TensorRef) -> bool {
        self.0.info(t).shape.len() == 4
    }

    fn either(&self, t: TensorRef) -> bool {
        let s = &self.0.info(t).shape;
        let k = |i: usize| s.get(i).and_then(|d| d.known());
        s.len() == 4 && (k(1) == Some(1) || (k(2) == Some(1) && k(3) == Some(1)))
    }

    fn thin(&self, t: TensorRef) -> bool {
        let s = &self.0.info(t).shape;
        s.get(1)
            .and_then(|d| d.known())
            .is_some_and(|c| c <= layout::THIN)
    }
}

/// The layers whose output can share its input's arena slot, by their
/// output, with the tensor it shares: shuffles that move no data (a
/// reshape, or a permute between channels-last storage and
/// `[N, H, W, C]` that the layouts let run as one) of a tensor a step
/// writes. A network input (which may live in the caller's memory), a
/// constant or a plugin's output is copied as before.
fn views_of(
    net: &Network,
    stepped: &[bool],
    roles: &[layout::Role],
    layouts: &layout::Layouts,
) -> HashMap<TensorRef, TensorRef> {
    let mut views: HashMap<TensorRef, TensorRef> = HashMap::new();
    for (i, l) in net.layers.iter().enumerate() {
        let LayerKind::Shuffle(p) = &l.kind else {
            continue;
        };
        let moves_none = match roles[i] {
            layout::Role::ToLast | layout::Role::FromLast => layouts.step_nhwc(i),
            _ => ops::is_reshape(p) && !layouts.step_nhwc(i),
        };
        if !stepped[i] || !moves_none || l.outputs.len() != 1 {
            continue;
        }
        let Some(&x) = l.inputs.first() else {
            continue;
        };
        let of = views.get(&x).copied().unwrap_or(x);
        if let TensorRef::Layer(j, _) = of {
            // A plugin's output dims may depend on its data: not known
            // when the plan is made.
            let fixed = !matches!(
                net.layers[j].kind,
                LayerKind::Constant { .. } | LayerKind::Plugin(_)
            );
            if stepped[j] && fixed {
                views.insert(TensorRef::Layer(i, 0), of);
            }
        }
    }
    views
}

/// Names layer `l` in an error that does not name a layer yet.
fn in_layer(l: &Layer) -> impl Fn(Error) -> Error + '_ {
    move |e| match e {
        e @ Error::Layer { .. } => e,
        other => Error::Layer {
            layer: l.name.clone(),
            kind: l.kind.name(),
            msg: other.to_string(),
        },
    }
}

impl CudaExecutor {
    pub fn new(
        net: &Network,
        precision: Precision,
        workspace: Option<usize>,
        cfg: &RunConfig,
        search: Search,
    ) -> Result<Self> {
        let gpu = Gpu::open(cfg.device)?;
        let tactics = Tactics::new(&gpu, search)?;
        let stream = Stream::new(&gpu)?;
        let blas = Blas::new(&gpu, stream.raw)?;
        let dnn = Dnn::new(&gpu, stream.raw)?;
        let host = HostPlan::of(net);
        let device_reads = resolve::device_readers(net, &host);
        let b = Builder {
            gpu: &gpu,
            net,
            precision,
        };
        let mut kernels: Vec<Option<Box<dyn Kernel>>> = Vec::with_capacity(net.layers.len());
        let mut io: Vec<StepIo> = vec![StepIo::default(); net.layers.len()];
        let mut consts = HashMap::new();
        let mut weight_bytes = 0usize;
        // Convolutions with a residual epilogue and Linears with their bias:
        // one step at the place of the chain's last layer; the others run
        // nothing.
        let consumers = net.consumers();
        let mut fused_at: HashMap<usize, Chain> = HashMap::new();
        let mut replaced = vec![false; net.layers.len()];
        for i in 0..net.layers.len() {
            if host.layers[i] || replaced[i] {
                continue;
            }
            let found = fusion::residual_of(net, &consumers, i)
                .map(|r| (r, false))
                .or_else(|| fusion::bias_of(net, &consumers, i).map(|r| (r, true)));
            if let Some((r, bias)) = found {
                let chain = [i, r.add, r.last()];
                if chain
                    .iter()
                    .any(|&c| replaced[c] || fused_at.contains_key(&c))
                {
                    continue;
                }
                replaced[i] = true;
                replaced[r.add] = r.last() != r.add;
                fused_at.insert(r.last(), Chain { first: i, r, bias });
            }
        }
        // Each step's inputs and outputs, then the layout of its tensors,
        // then its kernel (which may depend on the layouts).
        let mut stepped: Vec<bool> = (0..net.layers.len())
            .map(|i| {
                !(matches!(net.layers[i].kind, LayerKind::Constant { .. })
                    || host.layers[i]
                    || (replaced[i] && !fused_at.contains_key(&i)))
            })
            .collect();
        for (i, l) in net.layers.iter().enumerate() {
            if !stepped[i] {
                continue;
            }
            io[i] = match fused_at.get(&i) {
                // A product's bias is a constant its kernel holds.
                Some(c) if c.bias => StepIo {
                    ins: net.layers[c.first]
                        .inputs
                        .iter()
                        .map(|&t| (t, true))
                        .collect(),
                    outs: vec![TensorRef::Layer(i, 0)],
                },
                Some(c) => StepIo {
                    ins: vec![(net.layers[c.first].inputs[0], true), (c.r.residual, true)],
                    outs: vec![TensorRef::Layer(i, 0)],
                },
                None => StepIo {
                    ins: l
                        .inputs
                        .iter()
                        .enumerate()
                        .map(|(k, &t)| (t, !resolve::reads_on_host(l, k)))
                        .collect(),
                    outs: (0..l.outputs.len())
                        .map(|s| TensorRef::Layer(i, s))
                        .collect(),
                },
            };
        }
        // A fused step's is its first layer's.
        let roles: Vec<layout::Role> = (0..net.layers.len())
            .map(|i| {
                let l = fused_at
                    .get(&i)
                    .map_or(&net.layers[i], |c| &net.layers[c.first]);
                ops::layout_role(&b, l)
            })
            .collect();
        let layouts = if precision == Precision::Fp16
            && !std::env::var("JETRT_CUDA_LAYOUT").is_ok_and(|v| v == "nchw")
        {
            let shapes: Vec<Option<layout::StepShape>> = (0..net.layers.len())
                .map(|i| {
                    if !stepped[i] {
                        return None;
                    }
                    Some(layout::StepShape {
                        role: roles[i],
                        ins: io[i].ins.iter().filter(|x| x.1).map(|x| x.0).collect(),
                        outs: io[i].outs.clone(),
                    })
                })
                .collect();
            let io_tensors: HashSet<TensorRef> = (0..net.inputs.len())
                .map(TensorRef::Input)
                .chain(net.outputs.iter().map(|o| o.tensor))
                .collect();
            layout::assign(&shapes, &NetTensors(net), &io_tensors)
        } else {
            layout::Layouts::default()
        };
        let mut views = views_of(net, &stepped, &roles, &layouts);
        // Linears whose product adds the residual after them (ConvNeXt's
        // blocks): the product writes the Sum's output, and the permute
        // between them and the Sum run nothing.
        let mut into_sum: HashMap<usize, LinearResidual> = HashMap::new();
        {
            let plan = linear_residual::Plan {
                net,
                consumers: &consumers,
                stepped: &stepped,
                roles: &roles,
                layouts: &layouts,
                views: &views,
            };
            let mut ats: Vec<usize> = fused_at
                .iter()
                .filter(|(_, c)| c.bias && c.r.act.is_none())
                .map(|(&at, _)| at)
                .collect();
            ats.sort_unstable();
            for at in ats {
                if let Some(lr) = linear_residual::find(&plan, at) {
                    if !into_sum.values().any(|o| o.sum == lr.sum) {
                        into_sum.insert(at, lr);
                    }
                }
            }
        }
        for (&at, lr) in &into_sum {
            views.remove(&TensorRef::Layer(lr.shuffle, 0));
            stepped[lr.shuffle] = false;
            stepped[lr.sum] = false;
            io[at].ins.push((lr.residual, true));
            io[at].outs = vec![TensorRef::Layer(lr.sum, 0)];
        }
        for (i, l) in net.layers.iter().enumerate() {
            let wrap = in_layer(l);
            if let LayerKind::Constant { weights } = &l.kind {
                if !host.layers[i] || device_reads.contains(&TensorRef::Layer(i, 0)) {
                    let t = net.weights(*weights);
                    let buf = b
                        .upload(t, None, &format!("constant '{}'", l.name))
                        .map_err(wrap)?;
                    weight_bytes += buf.bytes;
                    consts.insert(i, buf);
                }
                kernels.push(None);
                continue;
            }
            if !stepped[i] || views.contains_key(&TensorRef::Layer(i, 0)) {
                kernels.push(None);
                continue;
            }
            let nhwc = layouts.step_nhwc(i);
            let (weighted, kernel) = match fused_at.get(&i) {
                Some(c) if c.bias => {
                    let TensorRef::Layer(bias, _) = c.r.residual else {
                        return Err(Error::Network("a fused bias that is not a layer's".into()));
                    };
                    let ml = &net.layers[c.first];
                    let residual = into_sum.contains_key(&i);
                    (
                        ml,
                        ops::build_fused_matmul(&b, ml, bias, c.r.act.map(|a| a.1), residual),
                    )
                }
                Some(c) => {
                    let cl = &net.layers[c.first];
                    let lay = ops::conv::Layout {
                        x_nhwc: layouts.is_nhwc(cl.inputs[0]),
                        y_nhwc: nhwc,
                    };
                    (cl, ops::build_fused_conv(&b, cl, c.r.act.map(|a| a.1), lay))
                }
                None => {
                    let x_nhwc = l.inputs.first().is_some_and(|&t| layouts.is_nhwc(t));
                    (l, ops::build(&b, l, nhwc, x_nhwc))
                }
            };
            for w in weighted.kind.weights() {
                let t = net.weights(w);
                weight_bytes += t.len() * b.storage(t.dtype()).size();
            }
            kernels.push(Some(kernel.map_err(wrap)?));
        }
        if !views.is_empty() {
            log::debug!("cuda: {} layers are views of their inputs", views.len());
        }
        if !layouts.steps.is_empty() {
            log::debug!(
                "cuda: {} of {} steps run on channels-last tensors",
                layouts.steps.len(),
                stepped.iter().filter(|&&s| s).count()
            );
        }
        // Steps whose kernels take their operands' dims in storage order.
        let storage_order: Vec<bool> = (0..net.layers.len())
            .map(|i| layouts.step_nhwc(i) && roles[i] == layout::Role::Either)
            .collect();
        let cast = Cast::new(&b)?;
        let mut stripped = net.clone();
        stripped.weights.clear();
        let profiler = if cfg.profile {
            // Each step's layout, for the profile: where a tensor changes
            // layout, and which steps run channels-last (none in a plan
            // without channels-last tensors).
            let notes = if layouts.steps.is_empty() {
                Vec::new()
            } else {
                (0..net.layers.len())
                    .map(|i| {
                        let y = layouts.step_nhwc(i);
                        let x = net.layers[i]
                            .inputs
                            .first()
                            .is_some_and(|&t| layouts.is_nhwc(t));
                        match (x, y) {
                            (true, true) => "nhwc",
                            (false, true) => "nchw>nhwc",
                            (true, false) => "nhwc>nchw",
                            (false, false) => "nchw",
                        }
                    })
                    .collect()
            };
            Some(Profiler::new(&gpu, net.layers.len(), notes)?)
        } else {
            None
        };
        log::debug!(
            "cuda context on {}: {} of weights and constants",
            gpu.describe(),
            human(weight_bytes)
        );
        let plugins: Vec<&str> = net
            .layers
            .iter()
            .filter(|l| matches!(l.kind, LayerKind::Plugin(_)))
            .map(|l| l.name.as_str())
            .collect();
        let no_graphs = if cfg.profile {
            Some("profiling times each layer on its own".to_string())
        } else if std::env::var("JETRT_CUDA_GRAPHS").is_ok_and(|v| v == "0") {
            Some("JETRT_CUDA_GRAPHS=0".to_string())
        } else if !plugins.is_empty() {
            // A plugin may wait for the stream (data-dependent outputs) or
            // run on the host; neither can be captured.
            Some(format!(
                "plugin layers ({}) may synchronize with the host",
                plugins.join(", ")
            ))
        } else {
            None
        };
        if let Some(why) = &no_graphs {
            log::info!("cuda: runs are not captured into CUDA graphs: {why}");
        }
        Ok(CudaExecutor {
            plan: None,
            kernels,
            io,
            storage_order,
            fused: fused_at
                .iter()
                .map(|(&at, c)| {
                    let mut v = vec![c.first, c.r.add];
                    v.extend(c.r.act.map(|a| a.0));
                    v.extend(
                        into_sum
                            .get(&at)
                            .map(|lr| [lr.shuffle, lr.sum])
                            .into_iter()
                            .flatten(),
                    );
                    (at, v)
                })
                .collect(),
            views,
            consts,
            profiler,
            err_host: None,
            cast,
            blas,
            dnn,
            stream,
            weights: WeightShapes::of(&net.weights, MAX_HOST_ELEMENTS),
            net: stripped,
            host,
            device_reads,
            host_in: Vec::new(),
            precision,
            workspace_limit: workspace.unwrap_or(DEFAULT_WORKSPACE),
            tactics,
            weight_bytes,
            dims: None,
            own_io: Vec::new(),
            bound_in: vec![None; net.inputs.len()],
            bound_out: vec![None; net.outputs.len()],
            frame: None,
            no_graphs,
            gpu,
        })
    }

    fn storage(&self, dt: DataType) -> DataType {
        ops::storage(self.precision, dt)
    }

    /// How many layers are views of their inputs (run no kernel).
    #[cfg(test)]
    pub fn view_count(&self) -> usize {
        self.views.len()
    }

    /// How many Linear steps add the residual after them.
    #[cfg(test)]
    pub fn linear_residuals(&self) -> usize {
        self.fused.values().filter(|v| v.len() == 4).count()
    }

    /// The tensor whose arena slot `t` lives in: itself unless a view.
    fn root(&self, t: TensorRef) -> TensorRef {
        self.views.get(&t).copied().unwrap_or(t)
    }

    /// The algorithm choices planning has made or read.
    pub fn tactics(&self) -> &Tactics {
        &self.tactics
    }

    fn plan_for(
        &mut self,
        dims: &[Vec<usize>],
        shape_values: Vec<Option<Arc<Tensor>>>,
    ) -> Result<Plan> {
        let net = &self.net;
        let r = resolve::resolve(net, &self.weights, &self.host, dims, &shape_values)?;
        let end = net.layers.len() + 1;
        // Which tensors need arena space, and from when to when.
        let mut want: Vec<(TensorRef, usize, usize, usize)> = Vec::new(); // (t, bytes, first, last)
        let mut last: HashMap<TensorRef, usize> = HashMap::new();
        // Of those, the host-computed ones the device reads.
        let mut uploads: HashSet<TensorRef> = HashSet::new();
        for (i, l) in net.layers.iter().enumerate() {
            if self.kernels[i].is_none() {
                continue;
            }
            for &(t, on_device) in &self.io[i].ins {
                if !on_device {
                    continue;
                }
                if r.data_dependent.contains(&t) {
                    return Err(Error::Layer {
                        layer: l.name.clone(),
                        kind: l.kind.name(),
                        msg: "reads a tensor whose dims depend on data (a plugin's output); the cuda backend takes such tensors only as network outputs".into(),
                    });
                }
                let e = last.entry(self.root(t)).or_insert(0);
                *e = (*e).max(i + 1);
            }
        }
        for o in &net.outputs {
            last.insert(self.root(o.tensor), end);
        }
        let bytes_of = |t: TensorRef| -> usize {
            let dt = self.storage(net.info(t).dtype);
            r.dims(t).iter().product::<usize>() * dt.size()
        };
        for i in 0..net.inputs.len() {
            let t = TensorRef::Input(i);
            want.push((t, bytes_of(t), 0, last.get(&t).copied().unwrap_or(0)));
        }
        for (i, l) in net.layers.iter().enumerate() {
            // What a step writes lives from its step on (a fused step's
            // outputs may be a later layer's).
            if self.kernels[i].is_some() {
                for &t in &self.io[i].outs {
                    if !self.views.contains_key(&t) {
                        let until = last.get(&t).copied().unwrap_or(i + 1);
                        want.push((t, bytes_of(t), i + 1, until));
                    }
                }
                continue;
            }
            for s in 0..l.outputs.len() {
                let t = TensorRef::Layer(i, s);
                if self.consts.contains_key(&i) || self.views.contains_key(&t) {
                    continue;
                }
                if self.device_reads.contains(&t) {
                    // Uploaded once per plan: alive for every run.
                    want.push((t, bytes_of(t), 0, end));
                    uploads.insert(t);
                }
            }
        }
        // Staging for the float32 side of a float16 plan's I/O.
        let mut staging: Vec<(usize, usize, usize, bool, usize)> = Vec::new(); // (index, bytes, first, is_input, last)
        for (i, d) in net.inputs.iter().enumerate() {
            if self.storage(d.info.dtype) != d.info.dtype {
                let n: usize = r.inputs[i].iter().product();
                staging.push((i, n * d.info.dtype.size(), 0, true, 0));
            }
        }
        for (o, out) in net.outputs.iter().enumerate() {
            let dt = net.info(out.tensor).dtype;
            if self.storage(dt) != dt {
                let n: usize = r.dims(out.tensor).iter().product();
                staging.push((o, n * dt.size(), end, false, end));
            }
        }
        let mut blocks: Vec<(usize, usize, usize)> = want.iter().map(|w| (w.1, w.2, w.3)).collect();
        blocks.extend(staging.iter().map(|s| (s.1, s.2, s.4)));
        let (offsets, arena_bytes) = layout(&blocks);
        let arena = DeviceBuf::new(&self.gpu, arena_bytes, "the activations")?;
        let mut slots = HashMap::new();
        for (w, &off) in want.iter().zip(&offsets) {
            slots.insert(w.0, arena.ptr + off as u64);
        }
        for (&v, &of) in &self.views {
            if let Some(&p) = slots.get(&of) {
                slots.insert(v, p);
            }
        }
        let mut staging_in = vec![None; net.inputs.len()];
        let mut staging_out = vec![None; net.outputs.len()];
        for (s, &off) in staging.iter().zip(&offsets[want.len()..]) {
            let at = Some(arena.ptr + off as u64);
            if s.3 {
                staging_in[s.0] = at;
            } else {
                staging_out[s.0] = at;
            }
        }
        // Host-computed tensors the device reads, converted and uploaded.
        for w in &want {
            if uploads.contains(&w.0) && w.1 > 0 {
                let v = r
                    .values
                    .get(&w.0)
                    .ok_or_else(|| Error::Network(format!("tensor {:?} has no host value", w.0)))?;
                let v = v.cast(self.storage(v.dtype()));
                // SAFETY: the slot holds w.1 bytes, the value's size.
                cu("uploading a shape tensor", unsafe {
                    result::memcpy_htod_sync(slots[&w.0], v.as_bytes())
                })?;
            }
        }
        let ptr_of = |t: TensorRef| -> u64 {
            if let TensorRef::Layer(i, 0) = t {
                if let Some(c) = self.consts.get(&i) {
                    return c.ptr;
                }
            }
            slots.get(&t).copied().unwrap_or(0)
        };
        // Every device layer's arguments, and its plan.
        let mut blob = ParamBlob::default();
        let mut steps = Vec::new();
        let mut pc = PlanCx {
            gpu: &self.gpu,
            dnn: &self.dnn,
            blas: &self.blas,
            params: &mut blob,
            workspace: 0,
            workspace_limit: self.workspace_limit,
            tactics: &mut self.tactics,
            host_inputs: Vec::new(),
        };
        for (i, l) in net.layers.iter().enumerate() {
            let Some(kernel) = self.kernels[i].as_mut() else {
                continue;
            };
            let stored = self.storage_order[i];
            let arg = |t: TensorRef| Arg {
                ptr: ptr_of(t),
                dims: if stored && r.dims(t).len() == 4 {
                    layout::to_nhwc(r.dims(t))
                } else {
                    r.dims(t).to_vec()
                },
                dtype: ops::storage(self.precision, net.info(t).dtype),
            };
            let sio = &self.io[i];
            let ins: Vec<Arg> = sio.ins.iter().map(|&(t, _)| arg(t)).collect();
            let outs: Vec<Arg> = sio.outs.iter().map(|&t| arg(t)).collect();
            pc.host_inputs = sio
                .ins
                .iter()
                .map(|(t, _)| r.values.get(t).cloned())
                .collect();
            kernel.plan(&mut pc, &ins, &outs).map_err(in_layer(l))?;
            steps.push(Step {
                layer: i,
                in_refs: sio.ins.iter().map(|&(t, _)| t).collect(),
                ins,
                outs,
            });
        }
        let workspace_bytes = pc.workspace;
        let workspace = DeviceBuf::new(&self.gpu, workspace_bytes, "layer scratch")?;
        let params = DeviceBuf::upload(&self.gpu, &blob.bytes, "layer tables")?;
        let errors = DeviceBuf::new(&self.gpu, 4 * net.layers.len().max(1), "error words")?;
        if self
            .err_host
            .as_ref()
            .is_none_or(|h| h.len() < errors.bytes)
        {
            self.err_host = Some(PinnedBuf::new(&self.gpu, errors.bytes)?);
        }
        let host_out = net
            .outputs
            .iter()
            .map(|o| {
                let n: usize = r.dims(o.tensor).iter().product();
                PinnedBuf::new(&self.gpu, n * net.info(o.tensor).dtype.size())
            })
            .collect::<Result<Vec<_>>>()?;
        let out_dims = net
            .outputs
            .iter()
            .map(|o| r.dims(o.tensor).to_vec())
            .collect();
        log::debug!(
            "cuda plan for {dims:?}: {} of activations, {} of scratch, {} of tables",
            human(arena_bytes),
            human(workspace_bytes),
            human(blob.bytes.len())
        );
        Ok(Plan {
            replay: if self.no_graphs.is_some() {
                Replay::Never
            } else {
                Replay::Eager { runs: 0 }
            },
            resolved: r,
            shape_values,
            _arena: arena,
            _params: params,
            workspace,
            errors,
            slots,
            staging_in,
            staging_out,
            steps,
            host_out,
            out_dims,
            arena_bytes,
        })
    }

    /// Enqueues one run: the plan's graph when it has one, else eagerly,
    /// capturing a graph on the second eager run of a plan.
    fn run(&mut self) -> Result<()> {
        let stream = self.stream.raw;
        let plan = self
            .plan
            .as_mut()
            .ok_or_else(|| Error::Network("no input dims are set".into()))?;
        match &mut plan.replay {
            Replay::Captured(g) => return g.launch(stream),
            Replay::Eager { runs } if *runs >= 1 => {}
            Replay::Eager { runs } => {
                *runs += 1;
                return self.run_eagerly();
            }
            Replay::Never => return self.run_eagerly(),
        }
        let gpu = self.gpu.clone();
        let captured = Graph::capture(&gpu, stream, || self.run_eagerly());
        let plan = self
            .plan
            .as_mut()
            .ok_or_else(|| Error::Network("no input dims are set".into()))?;
        match captured {
            Ok(g) => {
                g.launch(stream)?;
                plan.replay = Replay::Captured(g);
                Ok(())
            }
            Err(e) => {
                log::warn!("cuda: this network's runs cannot be captured into a CUDA graph ({e}); they run layer by layer");
                plan.replay = Replay::Never;
                self.run_eagerly()
            }
        }
    }

    fn run_eagerly(&mut self) -> Result<()> {
        self.run_steps()?;
        self.copy_outputs()
    }

    /// Where tensor `t` lives for a run: the caller's device memory for a
    /// bound input that needs no conversion, a constant's own buffer, or
    /// its arena slot.
    fn tensor_ptr(&self, plan: &Plan, t: TensorRef) -> u64 {
        match t {
            TensorRef::Input(i) => {
                let dt = self.net.inputs[i].info.dtype;
                match self.bound_in[i] {
                    Some(p) if self.storage(dt) == dt => p,
                    _ => plan.slots.get(&t).copied().unwrap_or(0),
                }
            }
            TensorRef::Layer(i, s) => match self.consts.get(&i) {
                Some(c) if s == 0 => c.ptr,
                _ => plan.slots.get(&t).copied().unwrap_or(0),
            },
        }
    }

    /// Points every step argument that reads a network input at where the
    /// input lives now (after a device binding changed).
    fn refresh_inputs(&mut self) {
        let Some(mut plan) = self.plan.take() else {
            return;
        };
        for i in 0..self.net.inputs.len() {
            let t = TensorRef::Input(i);
            let ptr = self.tensor_ptr(&plan, t);
            for s in &mut plan.steps {
                for (a, r) in s.ins.iter_mut().zip(&s.in_refs) {
                    if *r == t {
                        a.ptr = ptr;
                    }
                }
            }
        }
        self.plan = Some(plan);
    }

    fn run_steps(&mut self) -> Result<()> {
        let plan = self
            .plan
            .as_mut()
            .ok_or_else(|| Error::Network("no input dims are set".into()))?;
        let stream = self.stream.raw;
        self.gpu.bind()?;
        // SAFETY: the error words are this plan's device buffer.
        cu("clearing the error words", unsafe {
            result::memset_d8_async(plan.errors.ptr, 0, plan.errors.bytes, stream)
        })?;
        // Inputs: from the pinned buffers (or the caller's device memory),
        // converted where a float16 plan stores them so.
        for (i, d) in self.net.inputs.iter().enumerate() {
            let t = TensorRef::Input(i);
            let dt = d.info.dtype;
            let st = ops::storage(self.precision, dt);
            let slot = plan.slots.get(&t).copied().unwrap_or(0);
            let n: usize = plan.resolved.inputs[i].iter().product();
            if let Some(fb) = self.frame.as_mut().filter(|f| f.input == i) {
                fb.enqueue(slot, stream)?;
                continue;
            }
            let src = match self.bound_in[i] {
                Some(p) => p,
                None => {
                    let dst = plan.staging_in[i].unwrap_or(slot);
                    let bytes = self.host_in[i].as_slice();
                    if !bytes.is_empty() {
                        // SAFETY: `dst` holds `bytes.len()` bytes (sized from the
                        // same dims); the pinned buffer outlives the run, and
                        // the caller writes it only between runs.
                        cu("copying an input to the GPU", unsafe {
                            result::memcpy_htod_async(dst, bytes, stream)
                        })?;
                    }
                    dst
                }
            };
            if st != dt {
                self.cast.run(stream, src, dt, slot, st, n)?;
            }
        }
        let rc = RunCx {
            stream,
            blas: &self.blas,
            dnn: &self.dnn,
            workspace: plan.workspace.ptr,
            params: plan._params.ptr,
            err: 0,
        };
        if let Some(p) = &self.profiler {
            p.begin_run(stream)?;
        }
        for s in &mut plan.steps {
            let kernel = self.kernels[s.layer]
                .as_mut()
                .ok_or_else(|| Error::Network("a step without a kernel".into()))?;
            let rc = RunCx {
                err: plan.errors.ptr + 4 * s.layer as u64,
                ..rc
            };
            if let Some(p) = &mut self.profiler {
                p.start(s.layer, stream)?;
            }
            let l = &self.net.layers[s.layer];
            kernel
                .enqueue(&rc, &s.ins, &mut s.outs)
                .map_err(in_layer(l))?;
            if let Some(p) = &mut self.profiler {
                p.stop(s.layer, stream)?;
            }
        }
        Ok(())
    }

    fn copy_outputs(&mut self) -> Result<()> {
        let stream = self.stream.raw;
        let plan = self
            .plan
            .as_ref()
            .ok_or_else(|| Error::Network("no input dims are set".into()))?;
        let dims = self.copy_outputs_of(plan, stream)?;
        // The error words come back with the outputs.
        if let Some(h) = &self.err_host {
            let n = plan.errors.bytes;
            // SAFETY: the pinned buffer holds at least `n` bytes and outlives
            // the run; nothing reads it until the stream has finished.
            cu("reading the error words", unsafe {
                dtoh_async(h.raw(), plan.errors.ptr, n, stream)
            })?;
        }
        if let Some(plan) = &mut self.plan {
            plan.out_dims = dims;
        }
        Ok(())
    }

    fn copy_outputs_of(
        &self,
        plan: &Plan,
        stream: cudarc::driver::sys::CUstream,
    ) -> Result<Vec<Vec<usize>>> {
        let mut dims_out = Vec::with_capacity(self.net.outputs.len());
        for (o, out) in self.net.outputs.iter().enumerate() {
            let t = out.tensor;
            let dt = self.net.info(t).dtype;
            let st = ops::storage(self.precision, dt);
            // Dims as produced: a data-dependent output's come from its step.
            let dims = match t {
                TensorRef::Layer(l, s) => plan
                    .steps
                    .iter()
                    .find(|x| x.layer == l)
                    .map(|x| x.outs[s].dims.clone())
                    .unwrap_or_else(|| plan.resolved.dims(t).to_vec()),
                TensorRef::Input(_) => plan.resolved.dims(t).to_vec(),
            };
            let n: usize = dims.iter().product();
            let mut src = self.tensor_ptr(plan, t);
            if st != dt {
                let staged = plan.staging_out[o].unwrap_or(0);
                self.cast.run(stream, src, st, staged, dt, n)?;
                src = staged;
            }
            let bytes = n * dt.size();
            if bytes > 0 {
                match self.bound_out[o] {
                    // SAFETY: the caller's buffer has room for the output
                    // (bind_device_output's contract); `src` holds `bytes`.
                    Some(p) => cu("copying an output on the GPU", unsafe {
                        result::memcpy_dtod_async(p, src, bytes, stream)
                    })?,
                    // SAFETY: the pinned buffer holds the output at its
                    // allocated dims, at least `bytes`, and outlives the run;
                    // it is read only after the stream has finished.
                    None => cu("copying an output from the GPU", unsafe {
                        dtoh_async(plan.host_out[o].raw(), src, bytes, stream)
                    })?,
                }
            }
            dims_out.push(dims);
        }
        Ok(dims_out)
    }

    /// Drops a captured graph (its pointers changed); the next runs capture
    /// anew.
    fn recapture(&mut self) {
        if let Some(p) = &mut self.plan {
            if matches!(p.replay, Replay::Captured(_)) {
                p.replay = Replay::Eager { runs: 1 };
            }
        }
    }

    /// After a run: the first layer whose kernel reported bad data.
    fn check_errors(&self) -> Result<()> {
        let (Some(h), Some(plan)) = (&self.err_host, &self.plan) else {
            return Ok(());
        };
        let words: &[u8] = &h.as_slice()[..plan.errors.bytes];
        for (i, w) in words.chunks_exact(4).enumerate() {
            let v = u32::from_le_bytes([w[0], w[1], w[2], w[3]]);
            if v != 0 {
                let l = &self.net.layers[i];
                return Err(Error::Layer {
                    layer: l.name.clone(),
                    kind: l.kind.name(),
                    msg: "an index in its input is outside the data it selects from".into(),
                });
            }
        }
        Ok(())
    }
}

/// An asynchronous copy into pinned host memory held by raw pointer (no
/// Rust reference to it exists while the copy is in flight).
///
/// # Safety
/// `dst` holds `bytes` writable bytes and `src` that many device bytes,
/// both alive until the stream has run the copy.
unsafe fn dtoh_async(
    dst: *mut u8,
    src: u64,
    bytes: usize,
    stream: cudarc::driver::sys::CUstream,
) -> std::result::Result<(), cudarc::driver::DriverError> {
    // SAFETY: the caller's contract.
    unsafe { cudarc::driver::sys::cuMemcpyDtoHAsync_v2(dst.cast(), src, bytes, stream) }.result()
}

/// An asynchronous copy from pinned host memory held by raw pointer.
///
/// # Safety
/// `src` holds `bytes` readable bytes and `dst` that many device bytes,
/// both alive and unchanged until the stream has run the copy.
pub(super) unsafe fn htod_async(
    dst: u64,
    src: *const u8,
    bytes: usize,
    stream: cudarc::driver::sys::CUstream,
) -> std::result::Result<(), cudarc::driver::DriverError> {
    // SAFETY: the caller's contract.
    unsafe { cudarc::driver::sys::cuMemcpyHtoDAsync_v2(dst, src.cast(), bytes, stream) }.result()
}

/// Offsets for blocks of (bytes, first step, last step) such that blocks
/// alive at the same step never overlap: largest first, each at the lowest
/// aligned offset clear of every placed block it coexists with.
pub fn layout(blocks: &[(usize, usize, usize)]) -> (Vec<usize>, usize) {
    let mut order: Vec<usize> = (0..blocks.len()).collect();
    order.sort_by(|&a, &b| blocks[b].0.cmp(&blocks[a].0).then(a.cmp(&b)));
    let mut offsets = vec![0usize; blocks.len()];
    let mut placed: Vec<usize> = Vec::new();
    let mut total = 0usize;
    for &i in &order {
        let (size, first, last) = blocks[i];
        let size = size.div_ceil(ALIGN) * ALIGN;
        let mut busy: Vec<(usize, usize)> = placed
            .iter()
            .filter(|&&j| blocks[j].1 <= last && first <= blocks[j].2)
            .map(|&j| (offsets[j], offsets[j] + blocks[j].0.div_ceil(ALIGN) * ALIGN))
            .collect();
        busy.sort();
        let mut at = 0usize;
        for (lo, hi) in busy {
            if at + size <= lo {
                break;
            }
            at = at.max(hi);
        }
        offsets[i] = at;
        total = total.max(at + size);
        placed.push(i);
    }
    (offsets, total)
}

impl Executor for CudaExecutor {
    fn set_input_dims(&mut self, dims: &[Vec<usize>]) -> Result<()> {
        self.plan = None;
        self.dims = None;
        self.frame = None;
        if !self.own_io.is_empty() {
            self.bound_in.iter_mut().for_each(|b| *b = None);
            self.bound_out.iter_mut().for_each(|b| *b = None);
            self.own_io.clear();
        }
        self.host_in = self
            .net
            .inputs
            .iter()
            .zip(dims)
            .map(|(d, dims)| {
                let bytes =
                    resolve::tensor_bytes(d.info.dtype, dims).ok_or_else(|| Error::Input {
                        name: d.name.clone(),
                        msg: "dims too large".into(),
                    })?;
                PinnedBuf::new(&self.gpu, bytes as usize)
            })
            .collect::<Result<Vec<_>>>()?;
        // With shape inputs the plan waits for their values (the first run).
        if !self.host.has_shape_inputs() {
            let plan = self.plan_for(dims, vec![None; dims.len()])?;
            self.plan = Some(plan);
        }
        self.dims = Some(dims.to_vec());
        self.refresh_inputs();
        Ok(())
    }

    fn input_dims(&self) -> Option<&[Vec<usize>]> {
        self.dims.as_deref()
    }

    fn input_host(&mut self, i: usize) -> Result<&mut [u8]> {
        if self.dims.is_none() {
            return Err(Error::Network("set the input dims first".into()));
        }
        self.host_in
            .get_mut(i)
            .map(|b| b.as_mut_slice())
            .ok_or_else(|| Error::Network(format!("the network has no input {i}")))
    }

    fn enqueue(&mut self) -> Result<()> {
        if self.host.has_shape_inputs() {
            let dims = self
                .dims
                .clone()
                .ok_or_else(|| Error::Network("set the input dims first".into()))?;
            let mut values = vec![None; dims.len()];
            for (i, decl) in self.net.inputs.iter().enumerate() {
                if !self.host.inputs[i] {
                    continue;
                }
                if self.bound_in[i].is_some() {
                    return Err(Error::Input {
                        name: decl.name.clone(),
                        msg: "is a shape input: its values are read on the host, so it cannot be bound to device memory".into(),
                    });
                }
                let t =
                    Tensor::from_le_bytes(decl.info.dtype, &dims[i], self.host_in[i].as_slice())?;
                values[i] = Some(Arc::new(t));
            }
            let same = self.plan.as_ref().is_some_and(|p| p.shape_values == values);
            if !same {
                self.plan = None;
                let plan = self.plan_for(&dims, values)?;
                self.plan = Some(plan);
                self.refresh_inputs();
            }
        }
        self.run()
    }

    fn synchronize(&mut self) -> Result<()> {
        self.stream.synchronize()?;
        if let Some(p) = &mut self.profiler {
            p.collect()?;
        }
        self.check_errors()
    }

    fn output_count(&self) -> usize {
        self.net.outputs.len()
    }

    fn output_dtype(&self, o: usize) -> DataType {
        self.net
            .outputs
            .get(o)
            .map_or(DataType::F32, |d| self.net.info(d.tensor).dtype)
    }

    fn output_dims(&self, o: usize) -> Result<Vec<usize>> {
        let plan = self.plan.as_ref().ok_or_else(|| {
            Error::Network(if self.dims.is_some() {
                "the output dims depend on the values of a shape input: run first".into()
            } else {
                "set the input dims first".into()
            })
        })?;
        plan.out_dims
            .get(o)
            .cloned()
            .ok_or_else(|| Error::Network(format!("the network has no output {o}")))
    }

    fn output_host(&self, o: usize) -> Result<&[u8]> {
        let plan = self
            .plan
            .as_ref()
            .ok_or_else(|| Error::Network("set the input dims first".into()))?;
        let dims = plan
            .out_dims
            .get(o)
            .ok_or_else(|| Error::Network(format!("the network has no output {o}")))?;
        let n = dims.iter().product::<usize>() * self.output_dtype(o).size();
        Ok(&plan.host_out[o].as_slice()[..n])
    }

    unsafe fn bind_device_input(&mut self, i: usize, ptr: Option<u64>) -> Result<()> {
        if i >= self.bound_in.len() {
            return Err(Error::Network(format!("the network has no input {i}")));
        }
        self.bound_in[i] = ptr;
        self.refresh_inputs();
        self.recapture();
        Ok(())
    }

    unsafe fn bind_device_output(&mut self, o: usize, ptr: Option<u64>) -> Result<()> {
        if o >= self.bound_out.len() {
            return Err(Error::Network(format!("the network has no output {o}")));
        }
        self.bound_out[o] = ptr;
        self.recapture();
        Ok(())
    }

    fn keep_io_on_device(&mut self) -> Result<()> {
        if self.dims.is_none() {
            return Err(Error::Network(
                "set the input dims before keeping the inputs on the device".into(),
            ));
        }
        if self.frame.is_some() {
            return Err(Error::Network(
                "an input is bound to camera frames; they are copied per frame".into(),
            ));
        }
        let mut own = Vec::new();
        for i in 0..self.host_in.len() {
            own.push(DeviceBuf::upload(
                &self.gpu,
                self.host_in[i].as_slice(),
                "a device-resident input",
            )?);
        }
        for o in 0..self.net.outputs.len() {
            let bytes =
                self.output_dims(o)?.iter().product::<usize>() * self.output_dtype(o).size();
            own.push(DeviceBuf::new(
                &self.gpu,
                bytes,
                "a device-resident output",
            )?);
        }
        // Bound only once every buffer exists, so a failed allocation leaves
        // no binding to a dropped buffer.
        let (ins, outs) = own.split_at(self.host_in.len());
        let ptr = |b: &DeviceBuf| (b.bytes > 0).then_some(b.ptr);
        // SAFETY: each buffer was sized from the dims set (inputs hold their
        // uploaded elements) and lives in `own_io` until the dims change,
        // when the bindings are dropped with it.
        unsafe {
            for (i, b) in ins.iter().enumerate() {
                self.bind_device_input(i, ptr(b))?;
            }
            for (o, b) in outs.iter().enumerate() {
                self.bind_device_output(o, ptr(b))?;
            }
        }
        self.own_io = own;
        Ok(())
    }

    fn bind_frame_input(
        &mut self,
        i: usize,
        frame: Option<&crate::preprocess::FrameInput>,
    ) -> Result<()> {
        self.recapture();
        let Some(spec) = frame else {
            self.frame = None;
            return Ok(());
        };
        let dims = self.dims.as_ref().and_then(|d| d.get(i)).ok_or_else(|| {
            Error::Network(format!(
                "set the input dims before binding input {i} to frames"
            ))
        })?;
        let decl = &self.net.inputs[i];
        let st = self.storage(decl.info.dtype);
        let memory = FrameMemory::for_gpu(&self.gpu)?;
        log::info!(
            "cuda: input {i} takes {}x{} {:?} frames ({memory:?})",
            spec.width,
            spec.height,
            spec.format
        );
        self.frame = Some(FrameBinding::new(
            &self.gpu, i, decl, dims, spec, st, memory,
        )?);
        Ok(())
    }

    fn frame_host(&mut self) -> Result<&mut [u8]> {
        self.frame
            .as_mut()
            .map(FrameBinding::host)
            .ok_or_else(|| Error::Network("no input is bound to frames".into()))
    }

    fn reset_layer_times(&mut self) {
        if let Some(p) = &mut self.profiler {
            p.reset();
        }
    }

    fn layer_times(&self) -> Option<Vec<LayerTime>> {
        self.profiler
            .as_ref()
            .map(|p| p.report(&self.net, &self.fused))
    }

    fn device_memory(&self) -> Option<u64> {
        let plan = self.plan.as_ref().map_or(0, |p| {
            p.arena_bytes + p.workspace.bytes + p._params.bytes + p.errors.bytes
        });
        Some((self.weight_bytes + plan) as u64)
    }
}

#[cfg(test)]
mod tests {
    use super::layout;

    #[test]
    fn blocks_alive_together_never_overlap_and_others_share() {
        // (bytes, first, last): a and b coexist; c comes after a and can reuse it.
        let blocks = [(1000, 0, 2), (600, 1, 3), (900, 3, 4)];
        let (off, total) = layout(&blocks);
        let span = |i: usize| (off[i], off[i] + blocks[i].0);
        let overlap = |a: (usize, usize), b: (usize, usize)| a.0 < b.1 && b.0 < a.1;
        assert!(!overlap(span(0), span(1)));
        assert!(!overlap(span(1), span(2)));
        assert_eq!(off[2], 0, "c reuses a's bytes");
        assert!(total <= 1024 + 768);
        for &o in &off {
            assert_eq!(o % 256, 0);
        }
    }

    #[test]
    fn a_layout_of_many_random_lifetimes_is_sound() {
        let mut s = 12345u64;
        let mut next = |m: u64| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            s % m
        };
        let blocks: Vec<(usize, usize, usize)> = (0..200)
            .map(|_| {
                let a = next(50) as usize;
                (1 + next(5000) as usize, a, a + next(10) as usize)
            })
            .collect();
        let (off, total) = layout(&blocks);
        for i in 0..blocks.len() {
            assert!(off[i] + blocks[i].0 <= total);
            for j in 0..i {
                let live = blocks[i].1 <= blocks[j].2 && blocks[j].1 <= blocks[i].2;
                let apart = off[i] + blocks[i].0 <= off[j] || off[j] + blocks[j].0 <= off[i];
                assert!(
                    !live || apart,
                    "blocks {i} and {j} overlap while both alive"
                );
            }
        }
    }
}
