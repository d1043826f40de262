//! One kernel per IR layer kind: built once when a plan is loaded (weights
//! uploaded, functions looked up), planned for each set of input dims
//! (tables, algorithms, scratch), and enqueued on the context's stream for
//! each run without allocating.

pub mod conv;
mod depthwise;
pub mod elementwise;
mod gather;
mod matmul;
mod misc;
mod plugin;
mod pool;
mod reduce;
mod resize;
mod scatter;
mod shuffle;

pub use shuffle::is_reshape;

use super::cublas::Blas;
use super::cudnn::Dnn;
use super::device::{DeviceBuf, Gpu};
use super::launch::{self, Func};
use super::layout::{self, Role};
use super::tactics::Tactics;
use crate::backend::Precision;
use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::ir::{Layer, LayerKind, Network, ScaleMode};
use crate::tensor::Tensor;
use cudarc::driver::sys::CUstream;
use std::sync::Arc;

/// The most dims a tensor may have on this backend (the kernels' MAX_RANK).
pub const MAX_RANK: usize = 8;

/// A tensor as a kernel sees it: device memory, dims and storage type
/// (`ptr` is 0 for a shape operand that is read on the host).
#[derive(Clone, Debug)]
pub struct Arg {
    pub ptr: u64,
    pub dims: Vec<usize>,
    pub dtype: DataType,
}

impl Arg {
    pub fn len(&self) -> usize {
        self.dims.iter().product()
    }
}

/// The kernels' `Dims`.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Dims {
    pub rank: i32,
    pub pad: i32,
    pub d: [i64; MAX_RANK],
}
const _: () = assert!(std::mem::size_of::<Dims>() == 72);

/// `dims` as the kernels take them; an error beyond [`MAX_RANK`].
pub fn dims8(dims: &[usize]) -> Result<Dims> {
    if dims.len() > MAX_RANK {
        return Err(Error::Unsupported {
            backend: "cuda",
            what: format!("tensors of rank {} (at most {MAX_RANK})", dims.len()),
        });
    }
    let mut d = Dims {
        rank: dims.len() as i32,
        ..Default::default()
    };
    for (k, &n) in dims.iter().enumerate() {
        d.d[k] = n as i64;
    }
    Ok(d)
}

/// Strides (in elements) as the kernels take them.
pub fn strides8(s: &[i64]) -> [i64; MAX_RANK] {
    let mut a = [0i64; MAX_RANK];
    a[..s.len()].copy_from_slice(s);
    a
}

/// Row-major strides of `dims`.
pub fn contiguous(dims: &[usize]) -> Vec<i64> {
    let mut s = vec![1i64; dims.len()];
    for i in (0..dims.len().saturating_sub(1)).rev() {
        s[i] = s[i + 1] * dims[i + 1] as i64;
    }
    s
}

/// Strides of a tensor of dims `input` broadcast to `out` (equal ranks):
/// 0 where the input has 1 and the output does not.
pub fn broadcast(input: &[usize], out: &[usize]) -> Vec<i64> {
    contiguous(input)
        .into_iter()
        .zip(input.iter().zip(out))
        .map(|(s, (&i, &o))| if i == 1 && o != 1 { 0 } else { s })
        .collect()
}

/// `dims` with its dims of 1 dropped and adjacent dims merged wherever
/// every operand's strides run on across them (`s[k] == s[k+1] * d[k+1]`):
/// the same elements at the same offsets in row-major order, with fewer
/// divisions per element in the kernels' `offset_of` (a bias over
/// [1, 56, 56, 384] becomes [3136, 384]; equal shapes become one dim).
pub fn coalesce(dims: &[usize], strides: &[Vec<i64>]) -> (Vec<usize>, Vec<Vec<i64>>) {
    // Built innermost first, reversed at the end.
    let mut d: Vec<usize> = Vec::new();
    let mut s: Vec<Vec<i64>> = vec![Vec::new(); strides.len()];
    for k in (0..dims.len()).rev() {
        if dims[k] == 1 {
            continue;
        }
        let runs_on = d.last().is_some_and(|&inner| {
            strides
                .iter()
                .zip(&s)
                .all(|(st, acc)| acc.last().is_some_and(|&si| st[k] == si * inner as i64))
        });
        if runs_on {
            if let Some(last) = d.last_mut() {
                *last *= dims[k];
            }
        } else {
            d.push(dims[k]);
            for (acc, st) in s.iter_mut().zip(strides) {
                acc.push(st[k]);
            }
        }
    }
    d.reverse();
    s.iter_mut().for_each(|v| v.reverse());
    (d, s)
}

/// Per-plan tables (slice maps, resize taps) uploaded in one buffer.
#[derive(Default)]
pub struct ParamBlob {
    pub bytes: Vec<u8>,
}

impl ParamBlob {
    /// Appends `data` 256-byte aligned; returns its offset.
    pub fn push(&mut self, data: &[u8]) -> usize {
        let at = self.bytes.len().div_ceil(256) * 256;
        self.bytes.resize(at, 0);
        self.bytes.extend_from_slice(data);
        at
    }
}

/// What planning a layer for one set of dims may use.
pub struct PlanCx<'a> {
    pub gpu: &'a Arc<Gpu>,
    pub dnn: &'a Dnn,
    pub blas: &'a Blas,
    pub params: &'a mut ParamBlob,
    /// The most scratch any layer planned so far needs.
    pub workspace: usize,
    pub workspace_limit: usize,
    /// Which convolution algorithms to run (and, at build time, to time).
    pub tactics: &'a mut Tactics,
    /// Values of the layer's inputs computed on the host (shape operands).
    pub host_inputs: Vec<Option<Arc<Tensor>>>,
}

impl PlanCx<'_> {
    pub fn need_workspace(&mut self, bytes: usize) {
        self.workspace = self.workspace.max(bytes);
    }
}

/// What enqueueing a layer may use.
#[derive(Clone, Copy)]
pub struct RunCx<'a> {
    pub stream: CUstream,
    pub blas: &'a Blas,
    pub dnn: &'a Dnn,
    /// Scratch shared by the layers, one at a time.
    pub workspace: u64,
    /// The base of the plan's tables.
    pub params: u64,
    /// The layer's error word (kernels set bits on bad data).
    pub err: u64,
}

pub trait Kernel: Send {
    /// Prepares for one set of dims: uploads tables into the blob, sizes
    /// scratch, picks algorithms. Called when input dims are set.
    fn plan(&mut self, pc: &mut PlanCx<'_>, ins: &[Arg], outs: &[Arg]) -> Result<()> {
        let _ = (pc, ins, outs);
        Ok(())
    }

    /// Enqueues the layer on the stream. A layer whose output dims depend
    /// on its data writes the dims it produced into `outs`.
    fn enqueue(&mut self, rc: &RunCx<'_>, ins: &[Arg], outs: &mut [Arg]) -> Result<()>;
}

/// What building kernels needs: the device, the network (with its
/// weights, which kernels upload) and the plan's precision.
pub struct Builder<'a> {
    pub gpu: &'a Arc<Gpu>,
    pub net: &'a Network,
    pub precision: Precision,
}

impl Builder<'_> {
    /// The type a tensor of IR type `dt` is stored in on the device.
    pub fn storage(&self, dt: DataType) -> DataType {
        storage(self.precision, dt)
    }

    pub fn func(&self, name: &str) -> Result<Func> {
        launch::function(self.gpu, name)
    }

    /// Weights converted to their storage type (or to `as_type`), on the device.
    pub fn upload(&self, t: &Tensor, as_type: Option<DataType>, what: &str) -> Result<DeviceBuf> {
        let to = as_type.unwrap_or_else(|| self.storage(t.dtype()));
        let t = t.cast(to);
        DeviceBuf::upload(self.gpu, t.as_bytes(), what)
    }
}

/// The type a tensor of IR type `dt` is stored in: float32 becomes float16
/// in an fp16 plan; every other type is stored as it is.
pub fn storage(p: Precision, dt: DataType) -> DataType {
    match (p, dt) {
        (Precision::Fp16, DataType::F32) => DataType::F16,
        _ => dt,
    }
}

/// How layer `l`'s kernel handles channels-last tensors (`layout.rs`):
/// what it can run on with its dims and axes permuted, or, for a 2-D
/// float16 convolution, by cuDNN's NHWC path.
pub fn layout_role(b: &Builder<'_>, l: &Layer) -> Role {
    let f16 = input_storage(b, l).first() == Some(&DataType::F16);
    match &l.kind {
        LayerKind::Convolution(p) if f16 && p.kernel_size.len() == 2 && p.groups == 1 => Role::Conv,
        // Our depthwise kernel reads either layout and writes either.
        LayerKind::Convolution(p)
            if f16
                && p.kernel_size.len() == 2
                && depthwise::enabled()
                && depthwise::is_depthwise(p, b.net.weights(p.kernel).shape()) =>
        {
            Role::Conv
        }
        LayerKind::Shuffle(p) if l.inputs.len() == 1 => shuffle::layout_role(p),
        LayerKind::Activation { .. }
        | LayerKind::ElementWise { .. }
        | LayerKind::ParametricRelu
        | LayerKind::Unary { .. }
        | LayerKind::Select
        | LayerKind::Cast { .. }
        | LayerKind::Identity
        | LayerKind::Concatenation { .. }
        | LayerKind::Reduce {
            keep_dims: true, ..
        } => Role::Either,
        LayerKind::Scale(p)
            if p.mode == ScaleMode::Uniform
                || (p.mode == ScaleMode::Channel && p.channel_axis == 1) =>
        {
            Role::Either
        }
        LayerKind::Pooling(p) if p.window.len() == 2 => Role::Either,
        _ => Role::Fixed,
    }
}

/// The kernel for a layer that runs on the device. `nhwc`: it runs on
/// channels-last operands (of a kind [`layout_role`] allows); `x_nhwc`:
/// its input 0 is stored channels-last (read by a convolution in either).
pub fn build(b: &Builder<'_>, l: &Layer, nhwc: bool, x_nhwc: bool) -> Result<Box<dyn Kernel>> {
    let err = |msg: String| Error::Layer {
        layer: l.name.clone(),
        kind: l.kind.name(),
        msg,
    };
    // Axes of a 4-D channels-first tensor where its storage has them.
    let axis = |a: usize| if nhwc { layout::nhwc_axis(a, 4) } else { a };
    let lay = conv::Layout {
        x_nhwc,
        y_nhwc: nhwc,
    };
    let k: Box<dyn Kernel> = match &l.kind {
        LayerKind::Convolution(p) => Box::new(conv::Conv::new(b, l, p, false, None, lay)?),
        LayerKind::Deconvolution(p) => Box::new(conv::Conv::new(
            b,
            l,
            p,
            true,
            None,
            conv::Layout::default(),
        )?),
        LayerKind::Pooling(p) => Box::new(pool::Pool::new(b, l, p, nhwc)?),
        LayerKind::Activation { activation } => Box::new(elementwise::Act::new(
            b,
            l,
            elementwise::act_code(*activation),
        )?),
        LayerKind::ElementWise { op } => Box::new(elementwise::Binary::from_op(b, l, *op)?),
        LayerKind::ParametricRelu => {
            Box::new(elementwise::Binary::new(b, l, elementwise::OP_PRELU)?)
        }
        LayerKind::Unary { op } => Box::new(elementwise::Unary::new(b, l, *op)?),
        LayerKind::Scale(p) => {
            let mut p = p.clone();
            p.channel_axis = axis(p.channel_axis);
            Box::new(elementwise::Scale::new(b, l, &p)?)
        }
        LayerKind::Select => Box::new(elementwise::Select::new(b, l)?),
        LayerKind::Cast { .. } => Box::new(elementwise::Cast::new(b)?),
        LayerKind::Identity => Box::new(misc::Copy),
        LayerKind::MatrixMultiply { op0, op1 } => Box::new(matmul::MatMul::new(*op0, *op1, None)),
        LayerKind::Reduce { op, axes, .. } => {
            let mut axes: Vec<usize> = axes.iter().map(|&a| axis(a)).collect();
            axes.sort_unstable();
            Box::new(reduce::Reduce::new(b, l, *op, &axes)?)
        }
        LayerKind::Softmax { axis } => Box::new(reduce::Softmax::new(b, l, *axis)?),
        LayerKind::Normalization {
            axes,
            epsilon,
            groups,
        } => Box::new(reduce::Norm::new(b, l, axes, *epsilon, *groups)?),
        LayerKind::Cumulative {
            axis,
            exclusive,
            reverse,
            product,
        } => Box::new(reduce::Cumulative::new(
            b, l, *axis, *exclusive, *reverse, *product,
        )?),
        LayerKind::TopK { op, k, axis } => Box::new(reduce::TopK::new(b, l, *op, *k, *axis)?),
        // A permute between channels-first dims stored channels-last and
        // the same bytes as [N, H, W, C] (`layout.rs`), where it is not a
        // view (`exec.rs`): the bytes copied as they are.
        LayerKind::Shuffle(_) if nhwc => Box::new(misc::Copy),
        LayerKind::Shuffle(p) => Box::new(shuffle::Shuffle::new(b, l, p)?),
        LayerKind::Concatenation { axis: a } => Box::new(shuffle::Concat::new(b, l, axis(*a))?),
        LayerKind::Slice(p) => Box::new(shuffle::Slice::new(b, l, p)?),
        LayerKind::Gather { axis, mode } => Box::new(gather::Gather::new(b, l, *axis, *mode)?),
        LayerKind::Scatter {
            mode,
            axis,
            reduction,
        } => Box::new(scatter::Scatter::new(b, l, *mode, *axis, *reduction)?),
        LayerKind::Resize(p) => Box::new(resize::Resize::new(b, l, p)?),
        LayerKind::Einsum { equation } => Box::new(misc::Einsum::new(b, equation)?),
        LayerKind::Plugin(p) => Box::new(plugin::Plugin::new(p)?),
        LayerKind::Constant { .. } | LayerKind::Shape => {
            return Err(err(
                "is computed when the plan is loaded, not by a kernel".into()
            ))
        }
    };
    Ok(k)
}

/// The kernel of a fused `act(conv(x) + residual)` step (see `ir::fusion`).
pub fn build_fused_conv(
    b: &Builder<'_>,
    conv: &Layer,
    act: Option<crate::ir::Activation>,
    lay: conv::Layout,
) -> Result<Box<dyn Kernel>> {
    let LayerKind::Convolution(p) = &conv.kind else {
        return Err(Error::Network(format!(
            "'{}' is not a convolution",
            conv.name
        )));
    };
    Ok(Box::new(conv::Conv::new(
        b,
        conv,
        p,
        false,
        Some(conv::Fused { act }),
        lay,
    )?))
}

/// The kernel of a fused `act(matmul(a, b) + bias)` step (see
/// `ir::fusion::bias_of`): `bias` is the constant layer's index;
/// `residual`: the step also adds its third input (`linear_residual.rs`).
pub fn build_fused_matmul(
    b: &Builder<'_>,
    mm: &Layer,
    bias: usize,
    act: Option<crate::ir::Activation>,
    residual: bool,
) -> Result<Box<dyn Kernel>> {
    let (LayerKind::MatrixMultiply { op0, op1 }, LayerKind::Constant { weights }) =
        (&mm.kind, &b.net.layers[bias].kind)
    else {
        return Err(Error::Network(format!(
            "'{}' is not a matrix product with a constant bias",
            mm.name
        )));
    };
    let dt = input_storage(b, mm)[0];
    let code = act.map_or(elementwise::ActCode::IDENTITY, elementwise::act_code);
    let buf = b.upload(b.net.weights(*weights), Some(DataType::F32), "a bias")?;
    let mut k = matmul::MatMul::new(
        *op0,
        *op1,
        Some((elementwise::BiasAct::new(b, dt, code)?, buf)),
    );
    k.residual = residual;
    Ok(Box::new(k))
}

/// The storage types of a layer's inputs, as the IR records them, for
/// kernels picked at build time.
pub fn input_storage(b: &Builder<'_>, l: &Layer) -> Vec<DataType> {
    l.inputs
        .iter()
        .map(|&t| b.storage(b.net.info(t).dtype))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Coalesced dims and strides reach every element at the offsets the
    /// original ones do.
    #[test]
    fn coalesced_dims_reach_the_same_offsets() {
        let offset = |i: usize, d: &[usize], s: &[i64]| -> i64 {
            let (mut r, mut o) = (i, 0i64);
            for k in (0..d.len()).rev() {
                o += (r % d[k]) as i64 * s[k];
                r /= d[k];
            }
            o
        };
        let cases: Vec<(Vec<usize>, Vec<usize>, Vec<usize>)> = vec![
            (
                vec![1, 56, 56, 384],
                vec![1, 56, 56, 384],
                vec![1, 1, 1, 384],
            ),
            (vec![2, 3, 4, 5], vec![2, 3, 4, 5], vec![1, 1, 1, 1]),
            (vec![2, 3, 4, 5], vec![2, 1, 4, 1], vec![1, 3, 1, 5]),
            (vec![4, 1, 6], vec![4, 1, 1], vec![1, 1, 6]),
            (vec![3], vec![3], vec![1]),
            (vec![], vec![], vec![]),
        ];
        for (o, a, b) in cases {
            let sa = broadcast(&a, &o);
            let sb = broadcast(&b, &o);
            let (d, s) = coalesce(&o, &[sa.clone(), sb.clone()]);
            let n: usize = o.iter().product();
            assert_eq!(d.iter().product::<usize>(), n, "{o:?}");
            for i in 0..n {
                assert_eq!(offset(i, &d, &s[0]), offset(i, &o, &sa), "{o:?} a {i}");
                assert_eq!(offset(i, &d, &s[1]), offset(i, &o, &sb), "{o:?} b {i}");
            }
        }
        let (d, s) = coalesce(
            &[1, 56, 56, 384],
            &[
                broadcast(&[1, 56, 56, 384], &[1, 56, 56, 384]),
                broadcast(&[1, 1, 1, 384], &[1, 56, 56, 384]),
            ],
        );
        assert_eq!(d, vec![3136, 384]);
        assert_eq!(s, vec![vec![384, 1], vec![0, 1]]);
        let (d, _) = coalesce(
            &[2, 3, 4],
            &[contiguous(&[2, 3, 4]), contiguous(&[2, 3, 4])],
        );
        assert_eq!(d, vec![24]);
    }
}
