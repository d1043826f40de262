//! One cpu kernel per layer kind. `prepare` turns a layer into an [`Op`]
//! once (checking parameters, repacking weights); `Op::run` then executes it
//! on concrete tensors as often as asked.

pub mod activation;
mod cast;
mod concat;
pub mod conv;
mod depthwise;
mod einsum;
mod elementwise;
mod gather;
pub mod linear;
mod matmul;
mod norm;
mod plugin;
mod pool;
mod reduce;
mod resize;
mod scale;
mod scatter;
mod select;
mod shuffle;
mod slice;
mod stream_conv;
mod topk;
mod winograd;

use super::act::Act;
use super::buffers::Buffers;
use crate::dtype::DataType;
use crate::ir::{Layer, LayerKind, Network};
use crate::tensor::{Tensor, TensorData};
use std::borrow::Cow;

/// What every kernel may use while running.
pub struct Ctx<'a> {
    /// Threads of the pool the run executes in.
    pub threads: usize,
    buffers: &'a Buffers,
}

impl<'a> Ctx<'a> {
    pub fn new(threads: usize, buffers: &'a Buffers) -> Self {
        Ctx { threads, buffers }
    }

    /// A float buffer of `n` elements, contents unspecified: every kernel
    /// writes all of what it takes.
    pub fn take_f32(&self, n: usize) -> Vec<f32> {
        self.buffers.take(n)
    }

    /// Hands back a buffer taken for scratch space.
    pub fn give_f32(&self, v: Vec<f32>) {
        self.buffers.give(v)
    }
}

pub type OpResult = Result<Vec<Tensor>, String>;

pub trait Op: Send + Sync {
    fn run(&self, ctx: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult;
}

/// Builds the kernel for one layer of `net`.
pub fn prepare(net: &Network, layer: &Layer) -> Result<Box<dyn Op>, String> {
    Ok(match &layer.kind {
        LayerKind::Constant { weights } => {
            Box::new(Constant(net.weights(*weights).as_ref().clone()))
        }
        LayerKind::Convolution(p) => Box::new(conv::Conv::new(net, layer, p)?),
        LayerKind::Deconvolution(p) => Box::new(conv::Deconv::new(net, p)?),
        LayerKind::Pooling(p) => Box::new(pool::Pool::new(p)?),
        LayerKind::Activation { activation } => {
            Box::new(activation::ActivationOp(Act::Ir(*activation)))
        }
        LayerKind::Unary { op } => Box::new(activation::Unary(*op)),
        LayerKind::ElementWise { op } => Box::new(elementwise::ElementWise(*op)),
        LayerKind::Scale(p) => Box::new(scale::Scale::new(net, p)),
        LayerKind::MatrixMultiply { op0, op1 } => Box::new(matmul::MatMul {
            op0: *op0,
            op1: *op1,
        }),
        LayerKind::Reduce {
            op,
            axes,
            keep_dims,
        } => Box::new(reduce::Reduce {
            op: *op,
            axes: axes.clone(),
            keep_dims: *keep_dims,
        }),
        LayerKind::Softmax { axis } => Box::new(reduce::Softmax { axis: *axis }),
        LayerKind::Shuffle(p) => Box::new(shuffle::Shuffle(p.clone())),
        LayerKind::Concatenation { axis } => Box::new(concat::Concat { axis: *axis }),
        LayerKind::Slice(p) => Box::new(slice::Slice(p.clone())),
        LayerKind::Scatter {
            mode,
            axis,
            reduction,
        } => Box::new(scatter::Scatter {
            mode: *mode,
            axis: *axis,
            reduction: *reduction,
        }),
        LayerKind::Gather { axis, mode } => Box::new(gather::Gather {
            axis: *axis,
            mode: *mode,
        }),
        LayerKind::Resize(p) => Box::new(resize::Resize(p.clone())),
        LayerKind::Shape => Box::new(ShapeOp),
        LayerKind::Identity => Box::new(Identity),
        LayerKind::Cast { to } => Box::new(cast::Cast(*to)),
        LayerKind::Select => Box::new(select::Select),
        LayerKind::TopK { op, k, axis } => Box::new(topk::TopK {
            op: *op,
            k: *k,
            axis: *axis,
        }),
        LayerKind::Normalization {
            axes,
            epsilon,
            groups,
        } => Box::new(norm::Normalization {
            axes: axes.clone(),
            epsilon: *epsilon,
            groups: *groups,
        }),
        LayerKind::ParametricRelu => Box::new(elementwise::ParametricRelu),
        LayerKind::Cumulative {
            axis,
            exclusive,
            reverse,
            product,
        } => Box::new(norm::Cumulative {
            axis: *axis,
            exclusive: *exclusive,
            reverse: *reverse,
            product: *product,
        }),
        LayerKind::Einsum { equation } => Box::new(einsum::Einsum(equation.clone())),
        LayerKind::Plugin(p) => Box::new(plugin::PluginOp::new(p)?),
    })
}

struct Constant(Tensor);

impl Op for Constant {
    fn run(&self, _: &Ctx<'_>, _: &[&Tensor]) -> OpResult {
        Ok(vec![self.0.clone()])
    }
}

struct ShapeOp;

impl Op for ShapeOp {
    fn run(&self, _: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        let dims = inputs[0].shape().iter().map(|&d| d as i64).collect();
        Ok(vec![Tensor::vec_i64(dims)])
    }
}

struct Identity;

impl Op for Identity {
    fn run(&self, _: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        Ok(vec![inputs[0].clone()])
    }
}

/// A float tensor's elements as f32 (borrowed when already f32).
pub fn f32_data(t: &Tensor) -> Result<Cow<'_, [f32]>, String> {
    match t.data() {
        TensorData::F32(v) => Ok(Cow::Borrowed(v)),
        TensorData::F16(v) => Ok(Cow::Owned(v.iter().map(|x| x.to_f32()).collect())),
        _ => Err(format!("expected a float tensor, got {}", t.dtype())),
    }
}

/// A float tensor of `dtype` (f32 or f16) from f32 results.
pub fn float_tensor(dtype: DataType, shape: Vec<usize>, v: Vec<f32>) -> Result<Tensor, String> {
    let data = match dtype {
        DataType::F16 => TensorData::F16(v.into_iter().map(half::f16::from_f32).collect()),
        _ => TensorData::F32(v),
    };
    Tensor::new(shape, data).map_err(|e| e.to_string())
}

/// Elements processed per parallel task; below this, stay on one thread.
pub const PAR_CHUNK: usize = 1 << 14;
