//! Output types of each layer kind from its input types: TensorRT's
//! build-time shape inference, with dynamic dims carried symbolically.

use super::layer::*;
use super::TensorInfo;
use crate::dtype::DataType;
use crate::shape::{bounded_volume, format_shape, Dim, Shape, SymInt, MAX_ELEMENTS};
use crate::tensor::Tensor;
use std::sync::Arc;

type R<T> = std::result::Result<T, String>;

/// Shape tensors up to this many elements have their value tracked.
const MAX_TRACKED_VALUE: usize = 16;

/// The type of a Constant layer's output.
pub fn constant_info(t: &Tensor) -> TensorInfo {
    let mut info = TensorInfo::new(
        t.dtype(),
        t.shape().iter().map(|&d| Dim::Known(d)).collect(),
    );
    if is_tracked(t.dtype(), t.shape()) {
        info.value = Some(t.to_i64_vec().into_iter().map(SymInt::Int).collect());
    }
    info
}

/// Whether a tensor of this type is small enough to have its value tracked.
fn is_tracked(dtype: DataType, dims: &[usize]) -> bool {
    matches!(dtype, DataType::I32 | DataType::I64)
        && dims.len() <= 1
        && dims.iter().product::<usize>() <= MAX_TRACKED_VALUE
}

/// What shape inference reads of the weights: each blob's type and dims,
/// and the values of those small enough to be shape constants. A network's
/// weights table is one; a device backend that dropped its host copies of
/// large weights after uploading them keeps a [`WeightShapes`].
pub trait WeightsTable {
    fn dtype_dims(&self, id: WeightsId) -> Option<(DataType, &[usize])>;
    /// The values, where they are kept.
    fn tensor(&self, id: WeightsId) -> Option<&Tensor>;
}

impl WeightsTable for Vec<Arc<Tensor>> {
    fn dtype_dims(&self, id: WeightsId) -> Option<(DataType, &[usize])> {
        self.get(id.0).map(|t| (t.dtype(), t.shape()))
    }

    fn tensor(&self, id: WeightsId) -> Option<&Tensor> {
        self.get(id.0).map(|t| t.as_ref())
    }
}

/// A weights table without the values of large blobs.
#[derive(Clone, Debug, Default)]
pub struct WeightShapes(Vec<(DataType, Vec<usize>, Option<Arc<Tensor>>)>);

impl WeightShapes {
    /// Types and dims of `weights`, keeping the values of blobs of at most
    /// `keep` elements.
    pub fn of(weights: &[Arc<Tensor>], keep: usize) -> Self {
        WeightShapes(
            weights
                .iter()
                .map(|t| {
                    let small = (t.len() <= keep).then(|| t.clone());
                    (t.dtype(), t.shape().to_vec(), small)
                })
                .collect(),
        )
    }
}

impl WeightsTable for WeightShapes {
    fn dtype_dims(&self, id: WeightsId) -> Option<(DataType, &[usize])> {
        self.0.get(id.0).map(|(d, s, _)| (*d, s.as_slice()))
    }

    fn tensor(&self, id: WeightsId) -> Option<&Tensor> {
        self.0.get(id.0).and_then(|(_, _, t)| t.as_deref())
    }
}

/// The largest pad, stride, dilation or window a convolution or pooling
/// takes: 2^31, so that no arithmetic on them and an input length of at
/// most [`MAX_ELEMENTS`] wraps.
const MAX_WINDOW: i64 = 1 << 31;

/// Output types of a layer of `kind` reading `inputs`.
pub fn infer_outputs(
    kind: &LayerKind,
    inputs: &[&TensorInfo],
    weights: &dyn WeightsTable,
) -> R<Vec<TensorInfo>> {
    let outs = infer_kind(kind, inputs, weights)?;
    for o in &outs {
        if bounded_volume(&o.shape).is_none() {
            return Err(format!(
                "its output {} would exceed {MAX_ELEMENTS} elements",
                format_shape(&o.shape)
            ));
        }
    }
    Ok(outs)
}

/// [`infer_outputs`] before the size check.
fn infer_kind(
    kind: &LayerKind,
    inputs: &[&TensorInfo],
    weights: &dyn WeightsTable,
) -> R<Vec<TensorInfo>> {
    let w = |id: WeightsId| -> R<(DataType, &[usize])> {
        weights
            .dtype_dims(id)
            .ok_or_else(|| format!("weights {} do not exist", id.0))
    };
    let arity = |n: usize| -> R<()> {
        if inputs.len() == n {
            Ok(())
        } else {
            Err(format!("takes {n} input(s), got {}", inputs.len()))
        }
    };
    let out = match kind {
        LayerKind::Constant { weights: id } => {
            arity(0)?;
            match weights.tensor(*id) {
                Some(t) => constant_info(t),
                None => {
                    let (dtype, dims) = w(*id)?;
                    TensorInfo::new(dtype, dims.iter().map(|&d| Dim::Known(d)).collect())
                }
            }
        }
        LayerKind::Convolution(p) => {
            arity(1)?;
            conv(
                inputs[0],
                p,
                w(p.kernel)?.1,
                p.bias.map(w).transpose()?.map(|b| b.1),
                false,
            )?
        }
        LayerKind::Deconvolution(p) => {
            arity(1)?;
            conv(
                inputs[0],
                p,
                w(p.kernel)?.1,
                p.bias.map(w).transpose()?.map(|b| b.1),
                true,
            )?
        }
        LayerKind::Pooling(p) => {
            arity(1)?;
            pool(inputs[0], p)?
        }
        LayerKind::Activation { .. } => {
            arity(1)?;
            float_input(inputs[0])?;
            TensorInfo::new(inputs[0].dtype, inputs[0].shape.clone())
        }
        LayerKind::Unary { op } => {
            arity(1)?;
            unary(inputs[0], *op)?
        }
        LayerKind::ElementWise { op } => {
            arity(2)?;
            elementwise(inputs[0], inputs[1], *op)?
        }
        LayerKind::Scale(p) => {
            arity(1)?;
            scale(inputs[0], p, weights)?
        }
        LayerKind::MatrixMultiply { op0, op1 } => {
            arity(2)?;
            matmul(inputs[0], *op0, inputs[1], *op1)?
        }
        LayerKind::Reduce {
            axes, keep_dims, ..
        } => {
            arity(1)?;
            let x = inputs[0];
            check_axes(axes, x.rank())?;
            let shape = x
                .shape
                .iter()
                .enumerate()
                .filter_map(|(i, d)| match (axes.contains(&i), keep_dims) {
                    (false, _) => Some(d.clone()),
                    (true, true) => Some(Dim::Known(1)),
                    (true, false) => None,
                })
                .collect();
            TensorInfo::new(x.dtype, shape)
        }
        LayerKind::Softmax { axis } => {
            arity(1)?;
            float_input(inputs[0])?;
            check_axes(&[*axis], inputs[0].rank())?;
            TensorInfo::new(inputs[0].dtype, inputs[0].shape.clone())
        }
        LayerKind::Shuffle(p) => shuffle(inputs, p)?,
        LayerKind::Concatenation { axis } => concat(inputs, *axis)?,
        LayerKind::Slice(p) => match inputs.len() {
            1 => slice(inputs[0], p)?,
            4 => dynamic_slice(inputs)?,
            n => {
                return Err(format!(
                    "takes 1 input, or 4 with start/size/stride tensors; got {n}"
                ))
            }
        },
        LayerKind::Gather { axis, mode } => {
            arity(2)?;
            gather(inputs[0], inputs[1], *axis, *mode)?
        }
        LayerKind::Scatter {
            mode,
            axis,
            reduction,
        } => {
            arity(3)?;
            scatter(inputs[0], inputs[1], inputs[2], *mode, *axis, *reduction)?
        }
        LayerKind::Resize(p) => resize(inputs, p)?,
        LayerKind::Shape => {
            arity(1)?;
            let x = inputs[0];
            let mut info = TensorInfo::new(DataType::I64, vec![Dim::Known(x.rank())]);
            if x.rank() <= MAX_TRACKED_VALUE {
                info.value = Some(x.shape.iter().map(SymInt::from).collect());
            }
            info
        }
        LayerKind::Identity => {
            arity(1)?;
            inputs[0].clone()
        }
        LayerKind::Cast { to } => {
            arity(1)?;
            let x = inputs[0];
            let mut info = TensorInfo::new(*to, x.shape.clone());
            if matches!(to, DataType::I32 | DataType::I64) && x.dtype.is_integer() {
                info.value = x.value.clone();
            }
            info
        }
        LayerKind::Select => {
            arity(3)?;
            let (c, a, b) = (inputs[0], inputs[1], inputs[2]);
            if c.dtype != DataType::Bool {
                return Err(format!("condition must be bool, got {}", c.dtype));
            }
            if a.dtype != b.dtype {
                return Err(format!(
                    "then and else types differ: {} and {}",
                    a.dtype, b.dtype
                ));
            }
            let shape = broadcast_shapes(&broadcast_shapes(&c.shape, &a.shape)?, &b.shape)?;
            TensorInfo::new(a.dtype, shape)
        }
        LayerKind::TopK { k, axis, .. } => {
            arity(1)?;
            let x = inputs[0];
            check_axes(&[*axis], x.rank())?;
            if x.dtype == DataType::Bool {
                return Err("TopK does not take bool".into());
            }
            if let Some(n) = x.shape[*axis].known() {
                if *k > n {
                    return Err(format!("k = {k} exceeds the axis length {n}"));
                }
            }
            let mut shape = x.shape.clone();
            shape[*axis] = Dim::Known(*k);
            return Ok(vec![
                TensorInfo::new(x.dtype, shape.clone()),
                TensorInfo::new(DataType::I32, shape),
            ]);
        }
        LayerKind::Normalization { axes, groups, .. } => {
            arity(3)?;
            let x = inputs[0];
            float_input(x)?;
            check_axes(axes, x.rank())?;
            for t in &inputs[1..] {
                if t.dtype != x.dtype {
                    return Err(format!(
                        "scale and bias must be {}, got {}",
                        x.dtype, t.dtype
                    ));
                }
                broadcast_onto(&t.shape, &x.shape)?;
            }
            if *groups == 0 {
                return Err("groups must be positive".into());
            }
            if *groups > 1 {
                match x.shape.get(1).and_then(Dim::known) {
                    Some(c) if c % groups == 0 => {}
                    Some(c) => {
                        return Err(format!("{c} channels do not split into {groups} groups"))
                    }
                    None if x.rank() < 2 => {
                        return Err("grouped normalization needs a channel dim".into())
                    }
                    None => {}
                }
            }
            TensorInfo::new(x.dtype, x.shape.clone())
        }
        LayerKind::ParametricRelu => {
            arity(2)?;
            let (x, s) = (inputs[0], inputs[1]);
            float_input(x)?;
            if s.dtype != x.dtype {
                return Err(format!("slope must be {}, got {}", x.dtype, s.dtype));
            }
            broadcast_onto(&s.shape, &x.shape)?;
            TensorInfo::new(x.dtype, x.shape.clone())
        }
        LayerKind::Cumulative { axis, .. } => {
            arity(1)?;
            check_axes(&[*axis], inputs[0].rank())?;
            if inputs[0].dtype == DataType::Bool {
                return Err("cannot sum bools".into());
            }
            TensorInfo::new(inputs[0].dtype, inputs[0].shape.clone())
        }
        LayerKind::Einsum { equation } => einsum(equation, inputs)?,
        LayerKind::Plugin(p) => return super::plugin::plugin_outputs(inputs, p),
    };
    Ok(vec![out])
}

/// Checks that `small` broadcasts onto `big` without changing `big`'s dims.
fn broadcast_onto(small: &[Dim], big: &[Dim]) -> R<()> {
    let b = broadcast_shapes(small, big)?;
    if b.iter()
        .zip(big)
        .any(|(x, y)| x.known().is_some() && y.known().is_some() && x != y)
    {
        return Err("operand does not broadcast onto the input".into());
    }
    Ok(())
}

fn einsum(equation: &str, inputs: &[&TensorInfo]) -> R<TensorInfo> {
    let first = *inputs.first().ok_or("needs at least one operand")?;
    let ranks: Vec<usize> = inputs.iter().map(|t| t.rank()).collect();
    let e = super::einsum::parse(equation, &ranks)?;
    let mut dims: std::collections::HashMap<char, Dim> = std::collections::HashMap::new();
    for (t, letters) in inputs.iter().zip(&e.inputs) {
        if t.dtype != first.dtype {
            return Err("operand types differ".into());
        }
        for (d, c) in t.shape.iter().zip(letters) {
            let e = dims.entry(*c).or_insert_with(|| d.clone());
            match (e.known(), d.known()) {
                (Some(1), Some(_)) => *e = d.clone(),
                (Some(a), Some(b)) if a != b && b != 1 => {
                    return Err(format!("letter '{c}' stands for both {a} and {b}"))
                }
                _ => {}
            }
        }
    }
    Ok(TensorInfo::new(
        first.dtype,
        e.output.iter().map(|c| dims[c].clone()).collect(),
    ))
}

fn float_input(x: &TensorInfo) -> R<()> {
    if x.dtype.is_float() {
        Ok(())
    } else {
        Err(format!("needs a float input, got {}", x.dtype))
    }
}

fn check_axes(axes: &[usize], rank: usize) -> R<()> {
    match axes.iter().find(|&&a| a >= rank) {
        Some(a) => Err(format!("axis {a} is out of range for rank {rank}")),
        None => Ok(()),
    }
}

/// Output length of a window sweep; `None` when the input length is dynamic.
fn window_out(input: &Dim, pad: i64, eff_kernel: i64, stride: usize) -> R<Dim> {
    let Some(n) = input.known() else {
        return Ok(Dim::Unknown);
    };
    let span = n as i64 + pad - eff_kernel;
    if span < 0 {
        return Err(format!(
            "window of {eff_kernel} (after padding {pad}) does not fit an input of {n}"
        ));
    }
    Ok(Dim::Known((span / stride as i64) as usize + 1))
}

fn spatial_params(rank: usize, lens: &[usize]) -> R<usize> {
    let k = lens[0];
    if lens.iter().any(|&l| l != k) {
        return Err(format!("spatial parameters disagree in length: {lens:?}"));
    }
    if rank != k + 2 {
        return Err(format!(
            "expects an input of rank {} (N, C and {k} spatial dims), got rank {rank}",
            k + 2
        ));
    }
    Ok(k)
}

/// `kernel` and `bias` are the dims of the layer's weights.
fn conv(
    x: &TensorInfo,
    p: &ConvParams,
    kernel: &[usize],
    bias: Option<&[usize]>,
    deconv: bool,
) -> R<TensorInfo> {
    float_input(x)?;
    let k = spatial_params(
        x.rank(),
        &[
            p.kernel_size.len(),
            p.stride.len(),
            p.pre_padding.len(),
            p.post_padding.len(),
            p.dilation.len(),
        ],
    )?;
    if p.groups == 0 || p.stride.contains(&0) || p.dilation.contains(&0) {
        return Err("groups, strides and dilations must be positive".into());
    }
    let big = |v: usize| v > MAX_WINDOW as usize;
    if p.pre_padding
        .iter()
        .chain(&p.post_padding)
        .any(|v| v.abs() > MAX_WINDOW)
        || p.stride
            .iter()
            .chain(&p.dilation)
            .chain(&p.kernel_size)
            .any(|&v| big(v))
    {
        return Err(format!(
            "pads, strides, dilations and kernel sizes must be at most {MAX_WINDOW}"
        ));
    }
    let ks = kernel;
    if ks.len() != k + 2 || ks[2..] != p.kernel_size[..] {
        return Err(format!(
            "kernel weights of shape {ks:?} do not match kernel size {:?}",
            p.kernel_size
        ));
    }
    let (w_in, w_out) = if deconv {
        (ks[0], ks[1] * p.groups)
    } else {
        (ks[1] * p.groups, ks[0])
    };
    if w_out != p.out_channels {
        return Err(format!(
            "kernel weights give {w_out} output channels, the layer says {}",
            p.out_channels
        ));
    }
    if !ks[0].is_multiple_of(p.groups) {
        return Err(format!(
            "{} channels do not split into {} groups",
            ks[0], p.groups
        ));
    }
    if let Dim::Known(c) = x.shape[1] {
        if c != w_in {
            return Err(format!("input has {c} channels, the kernel expects {w_in}"));
        }
    }
    if let Some(b) = bias {
        let n: usize = b.iter().product();
        if n != p.out_channels {
            return Err(format!(
                "bias has {n} values for {} output channels",
                p.out_channels
            ));
        }
    }
    let mut shape = vec![x.shape[0].clone(), Dim::Known(p.out_channels)];
    for i in 0..k {
        let eff = (p.dilation[i] * (p.kernel_size[i] - 1) + 1) as i64;
        let pad = p.pre_padding[i] + p.post_padding[i];
        if deconv {
            shape.push(match x.shape[2 + i].known() {
                Some(n) => {
                    // At most 2^40 * 2^31: i128 cannot wrap.
                    let out = (n as i128 - 1) * p.stride[i] as i128 + eff as i128 - pad as i128;
                    if out > MAX_ELEMENTS as i128 {
                        return Err(format!("output length {out} along spatial dim {i}"));
                    }
                    let out = out as i64;
                    if out <= 0 {
                        return Err(format!("output length {out} along spatial dim {i}"));
                    }
                    Dim::Known(out as usize)
                }
                None => Dim::Unknown,
            });
        } else {
            if p.pre_padding[i] < 0 || p.post_padding[i] < 0 {
                return Err("convolution padding must not be negative".into());
            }
            shape.push(window_out(&x.shape[2 + i], pad, eff, p.stride[i])?);
        }
    }
    Ok(TensorInfo::new(x.dtype, shape))
}

/// Output length of a pooling window sweep, with PyTorch's ceil-mode rule.
pub fn pool_out_len(
    n: usize,
    window: usize,
    stride: usize,
    pre: usize,
    post: usize,
    round_up: bool,
) -> Option<usize> {
    let span = (n + pre + post).checked_sub(window)?;
    let mut out = if round_up {
        span.div_ceil(stride) + 1
    } else {
        span / stride + 1
    };
    // A window that would start in the post-padding is dropped.
    if round_up && (out - 1) * stride >= n + pre {
        out -= 1;
    }
    Some(out)
}

fn pool(x: &TensorInfo, p: &PoolParams) -> R<TensorInfo> {
    float_input(x)?;
    let k = spatial_params(
        x.rank(),
        &[
            p.window.len(),
            p.stride.len(),
            p.pre_padding.len(),
            p.post_padding.len(),
        ],
    )?;
    if p.stride.contains(&0) || p.window.contains(&0) {
        return Err("windows and strides must be positive".into());
    }
    if [&p.window, &p.stride, &p.pre_padding, &p.post_padding]
        .iter()
        .any(|v| v.iter().any(|&x| x > MAX_WINDOW as usize))
    {
        return Err(format!(
            "windows, strides and pads must be at most {MAX_WINDOW}"
        ));
    }
    let mut shape = x.shape[..2].to_vec();
    for i in 0..k {
        shape.push(match x.shape[2 + i].known() {
            Some(n) => Dim::Known(
                pool_out_len(
                    n,
                    p.window[i],
                    p.stride[i],
                    p.pre_padding[i],
                    p.post_padding[i],
                    p.round_up,
                )
                .ok_or_else(|| {
                    format!(
                        "window {} does not fit input length {n} with its padding",
                        p.window[i]
                    )
                })?,
            ),
            None => Dim::Unknown,
        });
    }
    Ok(TensorInfo::new(x.dtype, shape))
}

fn unary(x: &TensorInfo, op: UnaryOp) -> R<TensorInfo> {
    let dtype = match op {
        UnaryOp::Not => {
            if x.dtype != DataType::Bool {
                return Err(format!("Not needs a bool input, got {}", x.dtype));
            }
            DataType::Bool
        }
        UnaryOp::IsInf | UnaryOp::IsNan => {
            float_input(x)?;
            DataType::Bool
        }
        UnaryOp::Abs | UnaryOp::Neg | UnaryOp::Sign => {
            if x.dtype == DataType::Bool {
                return Err(format!("{op:?} does not take bool"));
            }
            x.dtype
        }
        _ => {
            float_input(x)?;
            x.dtype
        }
    };
    Ok(TensorInfo::new(dtype, x.shape.clone()))
}

/// NumPy broadcast of two equal-rank shapes (dims equal, or one of them 1).
pub fn broadcast_shapes(a: &[Dim], b: &[Dim]) -> R<Shape> {
    if a.len() != b.len() {
        return Err(format!(
            "operands have ranks {} and {}; insert a reshape to broadcast",
            a.len(),
            b.len()
        ));
    }
    a.iter()
        .zip(b)
        .map(|(x, y)| match (x, y) {
            (Dim::Known(1), d) | (d, Dim::Known(1)) => Ok(d.clone()),
            (Dim::Known(m), Dim::Known(n)) if m != n => {
                Err(format!("dims {m} and {n} do not broadcast"))
            }
            (Dim::Known(n), _) | (_, Dim::Known(n)) => Ok(Dim::Known(*n)),
            (x, y) if x == y => Ok(x.clone()),
            (Dim::Named(n), Dim::Unknown) | (Dim::Unknown, Dim::Named(n)) => {
                Ok(Dim::Named(n.clone()))
            }
            _ => Ok(Dim::Unknown),
        })
        .collect()
}

fn elementwise(a: &TensorInfo, b: &TensorInfo, op: ElementWiseOp) -> R<TensorInfo> {
    if a.dtype != b.dtype {
        return Err(format!("operand types differ: {} and {}", a.dtype, b.dtype));
    }
    let int = !a.dtype.is_float() && a.dtype != DataType::Bool;
    let fits = if op.is_logical() {
        a.dtype == DataType::Bool || int
    } else if op.is_shift() {
        int
    } else {
        a.dtype != DataType::Bool
    };
    if !fits {
        return Err(format!("{op:?} cannot take {} operands", a.dtype));
    }
    let shape = broadcast_shapes(&a.shape, &b.shape)?;
    let dtype = if op.is_comparison() {
        DataType::Bool
    } else {
        a.dtype
    };
    let mut info = TensorInfo::new(dtype, shape);
    if let (Some(va), Some(vb)) = (&a.value, &b.value) {
        if a.rank() <= 1 && b.rank() <= 1 && !op.is_comparison() {
            info.value = elementwise_value(va, vb, op);
        }
    }
    Ok(info)
}

fn elementwise_value(a: &[SymInt], b: &[SymInt], op: ElementWiseOp) -> Option<Vec<SymInt>> {
    let n = a.len().max(b.len());
    if (a.len() != n && a.len() != 1) || (b.len() != n && b.len() != 1) {
        return None;
    }
    let pick = |v: &[SymInt], i: usize| v[if v.len() == 1 { 0 } else { i }].clone();
    Some(
        (0..n)
            .map(|i| match (pick(a, i), pick(b, i)) {
                (SymInt::Int(x), SymInt::Int(y)) => match op {
                    ElementWiseOp::Sum => SymInt::Int(x.wrapping_add(y)),
                    ElementWiseOp::Sub => SymInt::Int(x.wrapping_sub(y)),
                    ElementWiseOp::Prod => SymInt::Int(x.wrapping_mul(y)),
                    ElementWiseOp::Div if y != 0 => SymInt::Int(x.div_euclid(y)),
                    ElementWiseOp::Max => SymInt::Int(x.max(y)),
                    ElementWiseOp::Min => SymInt::Int(x.min(y)),
                    _ => SymInt::Unknown,
                },
                (s @ SymInt::Named(_), SymInt::Int(1))
                    if matches!(op, ElementWiseOp::Prod | ElementWiseOp::Div) =>
                {
                    s
                }
                (SymInt::Int(1), s @ SymInt::Named(_)) if op == ElementWiseOp::Prod => s,
                _ => SymInt::Unknown,
            })
            .collect(),
    )
}

fn scale(x: &TensorInfo, p: &ScaleParams, weights: &dyn WeightsTable) -> R<TensorInfo> {
    float_input(x)?;
    if p.channel_axis >= x.rank() && p.mode != ScaleMode::Uniform {
        return Err(format!("channel axis {} is out of range", p.channel_axis));
    }
    let want: Option<usize> = match p.mode {
        ScaleMode::Uniform => Some(1),
        ScaleMode::Channel => x.shape[p.channel_axis].known(),
        ScaleMode::Elementwise => x.shape[p.channel_axis..]
            .iter()
            .map(Dim::known)
            .product::<Option<usize>>(),
    };
    for id in [p.shift, p.scale, p.power].into_iter().flatten() {
        let (_, dims) = weights.dtype_dims(id).ok_or("missing scale weights")?;
        let len: usize = dims.iter().product();
        if let Some(n) = want {
            if len != n {
                return Err(format!(
                    "{:?} scale weights hold {len} values, need {n}",
                    p.mode
                ));
            }
        }
    }
    Ok(TensorInfo::new(x.dtype, x.shape.clone()))
}

fn matmul(a: &TensorInfo, op0: MatrixOp, b: &TensorInfo, op1: MatrixOp) -> R<TensorInfo> {
    float_input(a)?;
    if a.dtype != b.dtype {
        return Err(format!("operand types differ: {} and {}", a.dtype, b.dtype));
    }
    // (batch dims, rows, inner) of each side after its op.
    let split = |x: &TensorInfo, op: MatrixOp, left: bool| -> R<(Shape, Option<Dim>, Dim)> {
        let s = &x.shape;
        match op {
            MatrixOp::Vector => {
                let (k, batch) = s.split_last().ok_or("a vector operand needs rank >= 1")?;
                Ok((batch.to_vec(), None, k.clone()))
            }
            _ => {
                if s.len() < 2 {
                    return Err("a matrix operand needs rank >= 2".into());
                }
                let (r, c) = (s[s.len() - 2].clone(), s[s.len() - 1].clone());
                let (outer, inner) = match (op == MatrixOp::Transpose, left) {
                    (false, true) => (r, c),
                    (true, true) => (c, r),
                    (false, false) => (c, r),
                    (true, false) => (r, c),
                };
                Ok((s[..s.len() - 2].to_vec(), Some(outer), inner))
            }
        }
    };
    let (ba, m, ka) = split(a, op0, true)?;
    let (bb, n, kb) = split(b, op1, false)?;
    if let (Some(x), Some(y)) = (ka.known(), kb.known()) {
        if x != y {
            return Err(format!("inner dims differ: {x} and {y}"));
        }
    }
    if ba.len() != bb.len() {
        return Err(format!(
            "batch ranks differ ({} and {}); insert a reshape to broadcast",
            ba.len(),
            bb.len()
        ));
    }
    let mut shape = broadcast_shapes(&ba, &bb)?;
    shape.extend(m);
    shape.extend(n);
    Ok(TensorInfo::new(a.dtype, shape))
}

/// Resolves reshape dims (0 = copy when `zero_copies`, -1 = infer) against
/// the input dims; symbolic where the input is.
fn reshape_dims(input: &[Dim], target: &[SymInt], zero_copies: bool) -> R<Shape> {
    let mut out = Vec::with_capacity(target.len());
    let mut infer_at = None;
    for (i, t) in target.iter().enumerate() {
        out.push(match t {
            SymInt::Int(0) if zero_copies => input
                .get(i)
                .cloned()
                .ok_or_else(|| format!("reshape dim {i} copies a dim the input lacks"))?,
            SymInt::Int(-1) => {
                if infer_at.replace(i).is_some() {
                    return Err("reshape has more than one -1".into());
                }
                Dim::Unknown
            }
            SymInt::Int(n) if *n < 0 => return Err(format!("reshape dim {n} is negative")),
            s => s.to_dim(),
        });
    }
    if let Some(at) = infer_at {
        // Cancel named dims that appear on both sides, then divide the known parts.
        let mut num: Vec<&Dim> = input.iter().collect();
        let mut den_known: usize = 1;
        let mut ok = true;
        for (i, d) in out.iter().enumerate() {
            if i == at {
                continue;
            }
            match d {
                Dim::Known(n) => den_known *= n,
                Dim::Named(_) => match num.iter().position(|x| *x == d) {
                    Some(p) => {
                        num.remove(p);
                    }
                    None => ok = false,
                },
                Dim::Unknown => ok = false,
            }
        }
        let num_known: usize = num.iter().filter_map(|d| d.known()).product();
        let dynamic: Vec<&Dim> = num.iter().copied().filter(|d| !d.is_known()).collect();
        if ok && den_known != 0 {
            match dynamic.as_slice() {
                [] if num_known.is_multiple_of(den_known) => {
                    out[at] = Dim::Known(num_known / den_known)
                }
                [] => {
                    return Err(format!(
                        "cannot reshape {num_known} elements into dims of {den_known} (times -1)"
                    ))
                }
                // [batch, 512, 1, 1] -> [-1, 512]: the -1 is the one dynamic dim.
                [d] if num_known == den_known => out[at] = (*d).clone(),
                _ => {}
            }
        }
    } else if let (Some(a), Some(b)) = (
        input.iter().map(Dim::known).product::<Option<usize>>(),
        out.iter().map(Dim::known).product::<Option<usize>>(),
    ) {
        if a != b {
            return Err(format!("cannot reshape {a} elements into {b}"));
        }
    }
    Ok(out)
}

fn check_perm(perm: &[usize], rank: usize) -> R<()> {
    let mut seen = vec![false; rank];
    if perm.len() != rank {
        return Err(format!("permutation {perm:?} does not fit rank {rank}"));
    }
    for &p in perm {
        if p >= rank || std::mem::replace(&mut seen[p], true) {
            return Err(format!("{perm:?} is not a permutation"));
        }
    }
    Ok(())
}

fn shuffle(inputs: &[&TensorInfo], p: &ShuffleParams) -> R<TensorInfo> {
    let x = *inputs.first().ok_or("needs an input")?;
    let mut shape = x.shape.clone();
    let mut value = x.value.clone();
    if let Some(perm) = &p.first_transpose {
        check_perm(perm, shape.len())?;
        shape = perm.iter().map(|&i| shape[i].clone()).collect();
        if x.rank() > 1 {
            value = None;
        }
    }
    let target: Option<Vec<SymInt>> = match (inputs.len(), &p.reshape) {
        (1, Some(r)) => Some(r.iter().map(|&v| SymInt::Int(v)).collect()),
        (1, None) => None,
        (2, None) => {
            let d = inputs[1];
            if !matches!(d.dtype, DataType::I64 | DataType::I32) || d.rank() != 1 {
                return Err("reshape dims must be a 1-D int tensor".into());
            }
            Some(match (&d.value, d.shape[0].known()) {
                (Some(v), _) => v.clone(),
                (None, Some(n)) => vec![SymInt::Unknown; n],
                (None, None) => return Err("reshape dims tensor has a dynamic length".into()),
            })
        }
        _ => return Err("takes one input, or two when the reshape dims are a tensor".into()),
    };
    if let Some(t) = target {
        shape = reshape_dims(&shape, &t, p.zero_is_placeholder)?;
        if shape.len() > 1 {
            value = None;
        }
    }
    if let Some(perm) = &p.second_transpose {
        check_perm(perm, shape.len())?;
        shape = perm.iter().map(|&i| shape[i].clone()).collect();
    }
    let mut info = TensorInfo::new(x.dtype, shape);
    info.value = value;
    Ok(info)
}

fn concat(inputs: &[&TensorInfo], axis: usize) -> R<TensorInfo> {
    let first = *inputs.first().ok_or("needs at least one input")?;
    check_axes(&[axis], first.rank())?;
    let mut shape = first.shape.clone();
    let mut total = Some(0usize);
    for x in inputs {
        if x.dtype != first.dtype || x.rank() != first.rank() {
            return Err("inputs differ in type or rank".into());
        }
        for (i, (a, b)) in shape.iter_mut().zip(&x.shape).enumerate() {
            if i == axis {
                continue;
            }
            match (a.known(), b.known()) {
                (Some(m), Some(n)) if m != n => {
                    return Err(format!("inputs differ in dim {i}: {m} and {n}"))
                }
                (None, Some(n)) => *a = Dim::Known(n),
                _ => {}
            }
        }
        total = total.zip(x.shape[axis].known()).map(|(t, n)| t + n);
    }
    shape[axis] = total.map(Dim::Known).unwrap_or(Dim::Unknown);
    let mut info = TensorInfo::new(first.dtype, shape);
    if first.rank() == 1 {
        let mut v = Vec::new();
        for x in inputs {
            match &x.value {
                Some(xv) => v.extend(xv.iter().cloned()),
                None => {
                    v.clear();
                    info.value = None;
                    return Ok(info);
                }
            }
        }
        if v.len() <= MAX_TRACKED_VALUE {
            info.value = Some(v);
        }
    }
    Ok(info)
}

fn slice(x: &TensorInfo, p: &SliceParams) -> R<TensorInfo> {
    let r = x.rank();
    if p.start.len() != r || p.size.len() != r || p.stride.len() != r {
        return Err(format!("start/size/stride must have {r} entries"));
    }
    if p.mode == SliceMode::StrictBounds {
        for i in 0..r {
            if let Some(n) = x.shape[i].known() {
                if p.size[i] == 0 {
                    continue;
                }
                let last = p.start[i] + (p.size[i] as i64 - 1) * p.stride[i];
                if p.start[i] < 0 || p.start[i] >= n as i64 || last < 0 || last >= n as i64 {
                    return Err(format!("slice along dim {i} leaves the input (length {n})"));
                }
            }
        }
    }
    let shape = p.size.iter().map(|&n| Dim::Known(n)).collect();
    let mut info = TensorInfo::new(x.dtype, shape);
    if let (Some(v), 1) = (&x.value, r) {
        let picked: Option<Vec<SymInt>> = (0..p.size[0])
            .map(|j| {
                let i = p.start[0] + j as i64 * p.stride[0];
                usize::try_from(i).ok().and_then(|i| v.get(i).cloned())
            })
            .collect();
        info.value = picked;
    }
    Ok(info)
}

fn dynamic_slice(inputs: &[&TensorInfo]) -> R<TensorInfo> {
    let x = inputs[0];
    let r = x.rank();
    for t in &inputs[1..] {
        if t.dtype != DataType::I64 || t.shape != [Dim::Known(r)] {
            return Err(format!(
                "start, size and stride must be 1-D int64 tensors of {r}"
            ));
        }
    }
    let shape = match &inputs[2].value {
        Some(v) => v.iter().map(SymInt::to_dim).collect(),
        None => vec![Dim::Unknown; r],
    };
    Ok(TensorInfo::new(x.dtype, shape))
}

fn gather(data: &TensorInfo, idx: &TensorInfo, axis: usize, mode: GatherMode) -> R<TensorInfo> {
    check_axes(&[axis], data.rank())?;
    if !matches!(idx.dtype, DataType::I32 | DataType::I64) {
        return Err(format!("indices must be int32 or int64, got {}", idx.dtype));
    }
    match mode {
        GatherMode::Default => {
            let mut shape = data.shape[..axis].to_vec();
            shape.extend(idx.shape.iter().cloned());
            shape.extend(data.shape[axis + 1..].iter().cloned());
            let mut info = TensorInfo::new(data.dtype, shape);
            if let (Some(dv), Some(iv), 1) = (&data.value, &idx.value, data.rank()) {
                let n = dv.len() as i64;
                info.value = iv
                    .iter()
                    .map(|i| match i {
                        SymInt::Int(i) => {
                            let i = if *i < 0 { i + n } else { *i };
                            usize::try_from(i).ok().and_then(|i| dv.get(i).cloned())
                        }
                        _ => None,
                    })
                    .collect();
            }
            Ok(info)
        }
        GatherMode::Element => {
            if idx.rank() != data.rank() {
                return Err("element gather needs indices of the data's rank".into());
            }
            Ok(TensorInfo::new(data.dtype, idx.shape.clone()))
        }
    }
}

/// The data's info, once the indices and updates fit it.
fn scatter(
    data: &TensorInfo,
    idx: &TensorInfo,
    upd: &TensorInfo,
    mode: ScatterMode,
    axis: usize,
    reduction: ScatterReduction,
) -> R<TensorInfo> {
    if !matches!(idx.dtype, DataType::I32 | DataType::I64) {
        return Err(format!("indices must be int32 or int64, got {}", idx.dtype));
    }
    if upd.dtype != data.dtype {
        return Err(format!(
            "updates of {} for data of {}",
            upd.dtype, data.dtype
        ));
    }
    if data.dtype == DataType::Bool && reduction != ScatterReduction::None {
        return Err(format!("a {reduction:?} reduction of bools"));
    }
    let same = |a: &[Dim], b: &[Dim]| {
        a.len() == b.len()
            && a.iter().zip(b).all(|(x, y)| match (x.known(), y.known()) {
                (Some(p), Some(q)) => p == q,
                _ => true,
            })
    };
    match mode {
        ScatterMode::Element => {
            check_axes(&[axis], data.rank())?;
            if idx.rank() != data.rank() || !same(&idx.shape, &upd.shape) {
                return Err(
                    "element scatter needs indices and updates of one shape, of the data's rank"
                        .into(),
                );
            }
        }
        ScatterMode::Nd => {
            let k = idx
                .shape
                .last()
                .and_then(Dim::known)
                .ok_or("the indices' last dim (the tuple length) must be known")?;
            if k == 0 || k > data.rank() {
                return Err(format!("index tuples of {k} for {}-D data", data.rank()));
            }
            let mut want = idx.shape[..idx.rank() - 1].to_vec();
            want.extend(data.shape[k..].iter().cloned());
            if !same(&want, &upd.shape) {
                return Err(format!(
                    "updates of {} where the indices and data give {}",
                    format_shape(&upd.shape),
                    format_shape(&want)
                ));
            }
        }
    }
    Ok(TensorInfo::new(data.dtype, data.shape.clone()))
}

fn resize(inputs: &[&TensorInfo], p: &ResizeParams) -> R<TensorInfo> {
    let x = *inputs.first().ok_or("needs an input")?;
    let r = x.rank();
    let shape = match &p.output {
        ResizeOutput::Dims(d) => {
            if inputs.len() != 1 || d.len() != r {
                return Err(format!("output dims must have {r} entries"));
            }
            d.iter().map(|&n| Dim::Known(n)).collect()
        }
        ResizeOutput::Scales(s) => {
            if inputs.len() != 1 || s.len() != r {
                return Err(format!("scales must have {r} entries"));
            }
            x.shape
                .iter()
                .zip(s)
                .map(|(d, &s)| match d {
                    Dim::Known(n) => Dim::Known((*n as f64 * s as f64).floor() as usize),
                    d if s == 1.0 => d.clone(),
                    _ => Dim::Unknown,
                })
                .collect()
        }
        ResizeOutput::FromInput => {
            let d = inputs.get(1).ok_or("output dims input is missing")?;
            if d.rank() != 1 || d.shape[0] != Dim::Known(r) {
                return Err(format!("output dims input must be a 1-D tensor of {r}"));
            }
            match &d.value {
                Some(v) => v.iter().map(SymInt::to_dim).collect(),
                None => vec![Dim::Unknown; r],
            }
        }
    };
    if p.coordinate_transform == CoordinateTransform::TfCropAndResize
        && p.roi.as_ref().map(Vec::len) != Some(2 * r)
    {
        return Err(format!(
            "tf_crop_and_resize needs a roi of {} values",
            2 * r
        ));
    }
    if p.mode != ResizeMode::Nearest {
        float_input(x)?;
    }
    Ok(TensorInfo::new(x.dtype, shape))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(shape: &[Dim]) -> TensorInfo {
        TensorInfo::new(DataType::F32, shape.to_vec())
    }

    /// A convolution with pads of 2^62 (which wrapped the output length and
    /// then corrupted memory at run time) is refused while inferring, as is
    /// one whose output would exceed the element limit.
    #[test]
    fn absurd_convolutions_are_refused() {
        let weights = vec![Arc::new(Tensor::zeros(DataType::F32, &[4, 3, 3, 3]))];
        let p = |pad: i64, stride: usize| ConvParams {
            out_channels: 4,
            kernel_size: vec![3, 3],
            stride: vec![stride, stride],
            pre_padding: vec![pad, pad],
            post_padding: vec![pad, pad],
            dilation: vec![1, 1],
            groups: 1,
            kernel: WeightsId(0),
            bias: None,
            activation: None,
        };
        let x = info(&[1, 3, 8, 8].map(Dim::Known));
        let conv = |p: ConvParams| infer_outputs(&LayerKind::Convolution(p), &[&x], &weights);
        assert!(conv(p(1, 1)).is_ok());
        let e = conv(p(1 << 62, 1)).unwrap_err();
        assert!(e.contains("at most"), "{e}");
        let e = conv(p(1 << 30, 1)).unwrap_err();
        assert!(e.contains("exceed"), "{e}");
        let deconv = |p: ConvParams| {
            let w = vec![Arc::new(Tensor::zeros(DataType::F32, &[3, 4, 3, 3]))];
            infer_outputs(&LayerKind::Deconvolution(p), &[&x], &w)
        };
        assert!(deconv(p(0, 2)).is_ok());
        assert!(deconv(p(0, 1 << 31)).is_err());
    }

    #[test]
    fn pool_ceil_mode_follows_pytorch() {
        // 112 -> 56 with k3 s2 p1 floor; squeezenet's ceil-mode pools
        assert_eq!(pool_out_len(112, 3, 2, 1, 1, false), Some(56));
        assert_eq!(pool_out_len(111, 3, 2, 0, 0, true), Some(55));
        assert_eq!(pool_out_len(54, 3, 2, 0, 0, true), Some(27));
        // last window would start in the padding: dropped
        assert_eq!(pool_out_len(5, 2, 2, 1, 1, true), Some(3));
        assert_eq!(pool_out_len(2, 3, 1, 0, 0, false), None);
    }

    #[test]
    fn reshape_infers_through_named_batch() {
        let n = Dim::Named("batch".into());
        let input = vec![n.clone(), Dim::Known(512), Dim::Known(1), Dim::Known(1)];
        let out = reshape_dims(
            &input,
            &[SymInt::Named("batch".into()), SymInt::Int(-1)],
            true,
        )
        .unwrap();
        assert_eq!(out, vec![n.clone(), Dim::Known(512)]);
        let out = reshape_dims(&input, &[SymInt::Int(0), SymInt::Int(-1)], true).unwrap();
        assert_eq!(out, vec![n.clone(), Dim::Known(512)]);
        let out = reshape_dims(&input, &[SymInt::Int(-1), SymInt::Int(512)], true).unwrap();
        assert_eq!(out, vec![n, Dim::Known(512)]);
        assert!(reshape_dims(&[Dim::Known(6)], &[SymInt::Int(4), SymInt::Int(-1)], true).is_err());
    }

    #[test]
    fn broadcast_rules() {
        let a = [Dim::Known(1), Dim::Known(3)];
        let b = [Dim::Known(2), Dim::Known(1)];
        assert_eq!(
            broadcast_shapes(&a, &b).unwrap(),
            vec![Dim::Known(2), Dim::Known(3)]
        );
        assert!(broadcast_shapes(&[Dim::Known(2)], &[Dim::Known(3)]).is_err());
        assert!(broadcast_shapes(&a, &[Dim::Known(3)]).is_err());
    }

    #[test]
    fn matmul_shapes() {
        let a = info(&[Dim::Known(2), Dim::Known(5), Dim::Known(3)]);
        let b = info(&[Dim::Known(1), Dim::Known(3), Dim::Known(4)]);
        let o = matmul(&a, MatrixOp::None, &b, MatrixOp::None).unwrap();
        assert_eq!(o.shape, vec![Dim::Known(2), Dim::Known(5), Dim::Known(4)]);
        let bt = info(&[Dim::Known(1), Dim::Known(4), Dim::Known(3)]);
        let o = matmul(&a, MatrixOp::None, &bt, MatrixOp::Transpose).unwrap();
        assert_eq!(o.shape, vec![Dim::Known(2), Dim::Known(5), Dim::Known(4)]);
        assert!(matmul(&a, MatrixOp::None, &bt, MatrixOp::None).is_err());
    }

    #[test]
    fn shape_values_flow_through_gather_and_concat() {
        let x = info(&[Dim::Named("n".into()), Dim::Known(8)]);
        let shape = infer_outputs(&LayerKind::Shape, &[&x], &Vec::new())
            .unwrap()
            .remove(0);
        let mut idx = TensorInfo::new(DataType::I64, vec![]);
        idx.value = Some(vec![SymInt::Int(0)]);
        let g = gather(&shape, &idx, 0, GatherMode::Default).unwrap();
        assert_eq!(g.value, Some(vec![SymInt::Named("n".into())]));
    }
}
