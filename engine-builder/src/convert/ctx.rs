//! What a converter works with: the node, its inputs as network tensors (with
//! their constant values when known), its attributes, and the network being
//! built.

use super::ConvertError;
use crate::onnx::proto::{attribute_proto::AttributeType, AttributeProto, NodeProto};
use crate::onnx::tensor_from_proto;
use jetrt_engine::eval::eval_layer;
use jetrt_engine::ir::{
    ElementWiseOp, GatherMode, LayerKind, Network, ReduceOp, ShuffleParams, SliceMode, SliceParams,
    TensorInfo, TensorRef, UnaryOp,
};
use jetrt_engine::shape::{known_dims, Dim};
use jetrt_engine::{DataType, Tensor};
use std::collections::HashMap;
use std::sync::Arc;

type R<T> = Result<T, ConvertError>;

/// The state of one model's conversion: the network so far, the tensor each
/// ONNX value name is bound to, and which layers are constant.
pub struct Importer {
    pub net: Network,
    values: HashMap<String, TensorRef>,
    initializers: HashMap<String, Arc<Tensor>>,
    /// Per layer: whether its outputs are known at build time.
    is_const: Vec<bool>,
    folded: HashMap<TensorRef, Arc<Tensor>>,
}

impl Importer {
    pub fn new(net: Network, initializers: HashMap<String, Arc<Tensor>>) -> Self {
        Importer {
            net,
            values: HashMap::new(),
            initializers,
            is_const: Vec::new(),
            folded: HashMap::new(),
        }
    }

    pub fn bind(&mut self, name: &str, t: TensorRef) {
        self.values.insert(name.to_string(), t);
    }

    pub fn is_bound(&self, name: &str) -> bool {
        self.values.contains_key(name) || self.initializers.contains_key(name)
    }

    /// The tensor bound to an ONNX value name; initializers become Constant
    /// layers on first use.
    pub fn value(&mut self, name: &str) -> Option<TensorRef> {
        if let Some(t) = self.values.get(name) {
            return Some(*t);
        }
        let init = self.initializers.get(name)?.clone();
        let t = self.add_constant(name, init);
        self.values.insert(name.to_string(), t);
        Some(t)
    }

    pub fn add_constant(&mut self, name: &str, t: Arc<Tensor>) -> TensorRef {
        let r = self.net.add_constant(name, t.clone());
        self.sync_const();
        self.folded.insert(r, t);
        r
    }

    pub fn add_layer(
        &mut self,
        name: String,
        kind: LayerKind,
        inputs: Vec<TensorRef>,
    ) -> jetrt_engine::Result<usize> {
        let idx = self.net.add_layer(name, kind, inputs)?;
        self.sync_const();
        Ok(idx)
    }

    /// Extends `is_const` over layers added since the last call.
    fn sync_const(&mut self) {
        while self.is_const.len() < self.net.layers.len() {
            let l = &self.net.layers[self.is_const.len()];
            let c = match &l.kind {
                LayerKind::Constant { .. } => true,
                LayerKind::Shape => known_dims(&self.net.info(l.inputs[0]).shape).is_some(),
                _ => {
                    !l.inputs.is_empty()
                        && l.inputs.iter().all(|t| match t {
                            TensorRef::Layer(j, _) => self.is_const[*j],
                            TensorRef::Input(_) => false,
                        })
                }
            };
            self.is_const.push(c);
        }
    }

    /// Whether a tensor's value is known at build time.
    pub fn is_const(&self, t: TensorRef) -> bool {
        matches!(t, TensorRef::Layer(l, _) if self.is_const.get(l) == Some(&true))
    }

    /// The value of a constant tensor, computed with the cpu kernels if needed.
    pub fn const_value(&mut self, t: TensorRef) -> jetrt_engine::Result<Option<Arc<Tensor>>> {
        let TensorRef::Layer(l, slot) = t else {
            return Ok(None);
        };
        if !self.is_const(t) {
            return Ok(None);
        }
        if let Some(v) = self.folded.get(&t) {
            return Ok(Some(v.clone()));
        }
        let layer = &self.net.layers[l];
        let outs: Vec<Tensor> = match &layer.kind {
            LayerKind::Constant { weights } => vec![self.net.weights(*weights).as_ref().clone()],
            LayerKind::Shape => {
                let dims = known_dims(&self.net.info(layer.inputs[0]).shape).unwrap_or_default();
                vec![Tensor::vec_i64(
                    dims.into_iter().map(|d| d as i64).collect(),
                )]
            }
            _ => {
                let inputs = layer.inputs.clone();
                let mut vals = Vec::with_capacity(inputs.len());
                for i in inputs {
                    match self.const_value(i)? {
                        Some(v) => vals.push(v),
                        None => return Ok(None),
                    }
                }
                let refs: Vec<&Tensor> = vals.iter().map(|v| v.as_ref()).collect();
                eval_layer(&self.net, l, &refs)?
            }
        };
        for (s, v) in outs.into_iter().enumerate() {
            self.folded.insert(TensorRef::Layer(l, s), Arc::new(v));
        }
        Ok(self.folded.get(&TensorRef::Layer(l, slot)).cloned())
    }

    pub fn into_network(self) -> Network {
        self.net
    }
}

/// Where one element of a shape tensor comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DimSrc {
    Const(i64),
    /// Dim `i` of the tensor the shape is built from.
    Of(usize),
}

/// One node being converted.
pub struct NodeCtx<'a> {
    imp: &'a mut Importer,
    pub node: &'a NodeProto,
    /// The opset version of the node's domain.
    pub opset: u32,
    name: String,
    layers_added: usize,
}

impl<'a> NodeCtx<'a> {
    pub fn new(imp: &'a mut Importer, node: &'a NodeProto, opset: u32, name: String) -> Self {
        NodeCtx {
            imp,
            node,
            opset,
            name,
            layers_added: 0,
        }
    }

    /// The node's name (or a generated one when the model gives none).
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn net(&self) -> &Network {
        &self.imp.net
    }

    // ---- inputs ----

    pub fn num_inputs(&self) -> usize {
        self.node.input.len()
    }

    /// Input `i`, which must be present.
    pub fn input(&mut self, i: usize) -> R<TensorRef> {
        self.opt_input(i)?
            .ok_or_else(|| ConvertError::new(format!("input {i} is missing")))
    }

    /// Input `i`, or `None` when absent (omitted or given as "").
    pub fn opt_input(&mut self, i: usize) -> R<Option<TensorRef>> {
        match self.node.input.get(i).map(String::as_str) {
            None | Some("") => Ok(None),
            Some(name) => self.imp.value(name).map(Some).ok_or_else(|| {
                ConvertError::new(format!(
                    "input '{name}' is not produced by any node, initializer or graph input"
                ))
            }),
        }
    }

    /// All present inputs.
    pub fn inputs(&mut self) -> R<Vec<TensorRef>> {
        (0..self.num_inputs())
            .filter_map(|i| self.opt_input(i).transpose())
            .collect()
    }

    pub fn info(&self, t: TensorRef) -> &TensorInfo {
        self.imp.net.info(t)
    }

    pub fn dtype(&self, t: TensorRef) -> DataType {
        self.info(t).dtype
    }

    pub fn shape(&self, t: TensorRef) -> Vec<Dim> {
        self.info(t).shape.clone()
    }

    pub fn rank(&self, t: TensorRef) -> usize {
        self.info(t).shape.len()
    }

    /// Concrete dims of `t`, or an error saying what needs them.
    pub fn known_dims(&self, t: TensorRef, what: &str) -> R<Vec<usize>> {
        known_dims(&self.info(t).shape).ok_or_else(|| {
            ConvertError::new(format!(
                "{what} needs fixed input dims, but they are {}; give them with --shape",
                jetrt_engine::shape::format_shape(&self.info(t).shape)
            ))
        })
    }

    /// The value of `t` if it is known at build time.
    pub fn const_value(&mut self, t: TensorRef) -> R<Option<Arc<Tensor>>> {
        Ok(self.imp.const_value(t)?)
    }

    /// Input `i`'s value if present and constant.
    pub fn const_input(&mut self, i: usize) -> R<Option<Arc<Tensor>>> {
        match self.opt_input(i)? {
            Some(t) => self.const_value(t),
            None => Ok(None),
        }
    }

    /// Input `i`'s value, which must be present and constant.
    pub fn require_const(&mut self, i: usize, what: &str) -> R<Arc<Tensor>> {
        let t = self.input(i)?;
        match self.const_value(t)? {
            Some(v) => Ok(v),
            None => Err(self.needs_const(i, what)),
        }
    }

    /// Input `i`'s value when present, which then must be constant.
    pub fn opt_const(&mut self, i: usize, what: &str) -> R<Option<Arc<Tensor>>> {
        match self.opt_input(i)? {
            Some(_) => self.require_const(i, what).map(Some),
            None => Ok(None),
        }
    }

    /// The error for input `i` (described as `what`) not being known at
    /// build time.
    pub fn needs_const(&self, i: usize, what: &str) -> ConvertError {
        ConvertError {
            msg: format!(
                "{what} (input {i}) must be known at build time; this one is computed by the graph"
            ),
            needs_const: self.node.input.get(i).cloned(),
        }
    }

    /// Input `i` as int64 values when present and constant.
    pub fn const_ints(&mut self, i: usize) -> R<Option<Vec<i64>>> {
        Ok(self.const_input(i)?.map(|t| t.to_i64_vec()))
    }

    // ---- attributes ----

    fn attr(&self, name: &str) -> Option<&'a AttributeProto> {
        self.node.attribute.iter().find(|a| a.name == name)
    }

    pub fn has_attr(&self, name: &str) -> bool {
        self.attr(name).is_some()
    }

    fn check_type(&self, a: &AttributeProto, want: AttributeType) -> R<()> {
        if a.r#type == AttributeType::Undefined as i32 || a.r#type == want as i32 {
            Ok(())
        } else {
            Err(ConvertError::new(format!(
                "attribute '{}' should be {:?}, found type {}",
                a.name, want, a.r#type
            )))
        }
    }

    pub fn attr_int(&self, name: &str, default: i64) -> R<i64> {
        match self.attr(name) {
            Some(a) => self.check_type(a, AttributeType::Int).map(|_| a.i),
            None => Ok(default),
        }
    }

    pub fn attr_float(&self, name: &str, default: f32) -> R<f32> {
        match self.attr(name) {
            Some(a) => self.check_type(a, AttributeType::Float).map(|_| a.f),
            None => Ok(default),
        }
    }

    pub fn attr_ints(&self, name: &str) -> R<Option<Vec<i64>>> {
        match self.attr(name) {
            Some(a) => self
                .check_type(a, AttributeType::Ints)
                .map(|_| Some(a.ints.clone())),
            None => Ok(None),
        }
    }

    pub fn attr_floats(&self, name: &str) -> R<Option<Vec<f32>>> {
        match self.attr(name) {
            Some(a) => self
                .check_type(a, AttributeType::Floats)
                .map(|_| Some(a.floats.clone())),
            None => Ok(None),
        }
    }

    pub fn attr_strings(&self, name: &str) -> R<Option<Vec<String>>> {
        match self.attr(name) {
            Some(a) => {
                self.check_type(a, AttributeType::Strings)?;
                Ok(Some(
                    a.strings
                        .iter()
                        .map(|s| String::from_utf8_lossy(s).into_owned())
                        .collect(),
                ))
            }
            None => Ok(None),
        }
    }

    pub fn attr_string(&self, name: &str) -> R<Option<String>> {
        match self.attr(name) {
            Some(a) => {
                self.check_type(a, AttributeType::String)?;
                Ok(Some(String::from_utf8_lossy(&a.s).into_owned()))
            }
            None => Ok(None),
        }
    }

    pub fn attr_tensor(&self, name: &str) -> R<Option<Tensor>> {
        match self.attr(name) {
            Some(a) => {
                self.check_type(a, AttributeType::Tensor)?;
                let t = a.t.as_ref().ok_or_else(|| {
                    ConvertError::new(format!("attribute '{name}' holds no tensor"))
                })?;
                tensor_from_proto(t, None)
                    .map(Some)
                    .map_err(ConvertError::new)
            }
            None => Ok(None),
        }
    }

    // ---- building ----

    /// Adds a layer named after the node; returns its first output.
    pub fn add(&mut self, kind: LayerKind, inputs: Vec<TensorRef>) -> R<TensorRef> {
        let name = if self.layers_added == 0 {
            self.name.clone()
        } else {
            format!("{}/{}", self.name, self.layers_added)
        };
        self.layers_added += 1;
        let idx = self.imp.add_layer(name, kind, inputs)?;
        Ok(TensorRef::Layer(idx, 0))
    }

    /// A Constant layer holding `t`.
    pub fn constant(&mut self, t: Tensor) -> TensorRef {
        let name = format!("{}/const{}", self.name, self.layers_added);
        self.layers_added += 1;
        self.imp.add_constant(&name, Arc::new(t))
    }

    /// Adds `t` to the network's weights table (for layer parameters).
    pub fn constant_weights(&mut self, t: Arc<Tensor>) -> jetrt_engine::ir::WeightsId {
        self.imp.net.add_weights(t)
    }

    /// Binds output `i` of the node to `t`.
    pub fn set_output(&mut self, i: usize, t: TensorRef) -> R<()> {
        match self.node.output.get(i).map(String::as_str) {
            Some("") | None => Ok(()),
            Some(name) => {
                self.imp.bind(name, t);
                Ok(())
            }
        }
    }

    /// Whether output `i` is requested (named) by the model.
    pub fn wants_output(&self, i: usize) -> bool {
        self.node.output.get(i).is_some_and(|n| !n.is_empty())
    }

    /// `axis` (possibly negative) as an index into a tensor of `rank`.
    pub fn axis(&self, axis: i64, rank: usize) -> R<usize> {
        let a = if axis < 0 { axis + rank as i64 } else { axis };
        usize::try_from(a)
            .ok()
            .filter(|&a| a < rank)
            .ok_or_else(|| {
                ConvertError::new(format!("axis {axis} is out of range for rank {rank}"))
            })
    }

    /// A Shuffle reshaping `t` to `dims` (TensorRT semantics: -1 inferred;
    /// 0 is a literal zero).
    pub fn reshape(&mut self, t: TensorRef, dims: Vec<i64>) -> R<TensorRef> {
        self.add(
            LayerKind::Shuffle(ShuffleParams {
                first_transpose: None,
                reshape: Some(dims),
                second_transpose: None,
                zero_is_placeholder: false,
            }),
            vec![t],
        )
    }

    /// A Shuffle reshaping `t` to the value of the shape tensor `dims`.
    pub fn reshape_dynamic(&mut self, t: TensorRef, dims: TensorRef) -> R<TensorRef> {
        let dims = self.cast(dims, DataType::I64)?;
        self.add(
            LayerKind::Shuffle(ShuffleParams {
                first_transpose: None,
                reshape: None,
                second_transpose: None,
                zero_is_placeholder: false,
            }),
            vec![t, dims],
        )
    }

    /// A 1-D int64 shape tensor whose elements are constants or dims of
    /// `t` taken at run time; all-constant parts give a Constant layer.
    pub fn shape_tensor_from(&mut self, t: TensorRef, parts: &[DimSrc]) -> R<TensorRef> {
        if parts.iter().all(|p| matches!(p, DimSrc::Const(_))) {
            let v = parts
                .iter()
                .map(|p| if let DimSrc::Const(c) = p { *c } else { 0 })
                .collect();
            return Ok(self.constant(Tensor::vec_i64(v)));
        }
        let shape = self.add(LayerKind::Shape, vec![t])?;
        // Runs of constants become one Constant, runs of dims one Gather.
        let mut pieces = Vec::new();
        let mut i = 0;
        while i < parts.len() {
            let is_const = matches!(parts[i], DimSrc::Const(_));
            let mut run = Vec::new();
            while i < parts.len() && matches!(parts[i], DimSrc::Const(_)) == is_const {
                run.push(match parts[i] {
                    DimSrc::Const(c) => c,
                    DimSrc::Of(j) => j as i64,
                });
                i += 1;
            }
            let c = self.constant(Tensor::vec_i64(run));
            pieces.push(if is_const {
                c
            } else {
                self.add(
                    LayerKind::Gather {
                        axis: 0,
                        mode: jetrt_engine::ir::GatherMode::Default,
                    },
                    vec![shape, c],
                )?
            });
        }
        if pieces.len() == 1 {
            return Ok(pieces[0]);
        }
        self.add(LayerKind::Concatenation { axis: 0 }, pieces)
    }

    /// `dims` as parts: numbers as constants, a dynamic dim as the dim of
    /// `t` it equals.
    pub fn dim_sources(&self, t: TensorRef, dims: &[Dim]) -> R<Vec<DimSrc>> {
        let src = self.shape(t);
        dims.iter()
            .map(|d| match d {
                Dim::Known(n) => Ok(DimSrc::Const(*n as i64)),
                other => src
                    .iter()
                    .position(|s| s == other && *other != Dim::Unknown)
                    .map(DimSrc::Of)
                    .ok_or_else(|| {
                        ConvertError::new(format!(
                            "cannot derive dynamic dim {other} from the input's dims"
                        ))
                    }),
            })
            .collect()
    }

    /// A 1-D int64 tensor holding `dims` (dynamic ones taken from `t`).
    pub fn shape_tensor(&mut self, t: TensorRef, dims: &[Dim]) -> R<TensorRef> {
        let parts = self.dim_sources(t, dims)?;
        self.shape_tensor_from(t, &parts)
    }

    /// `t` reshaped to `parts` (constants or `t`'s own dims by index).
    pub fn reshape_from(&mut self, t: TensorRef, parts: &[DimSrc]) -> R<TensorRef> {
        let src = self.shape(t);
        let resolved: Option<Vec<i64>> = parts
            .iter()
            .map(|p| match p {
                DimSrc::Const(c) => Some(*c),
                DimSrc::Of(j) => src.get(*j).and_then(Dim::known).map(|n| n as i64),
            })
            .collect();
        if let Some(v) = resolved {
            return self.reshape(t, v);
        }
        let shape = self.shape_tensor_from(t, parts)?;
        self.reshape_dynamic(t, shape)
    }

    /// `t` reshaped to `dims`, where each dim is a number or, when dynamic,
    /// one of `t`'s own dims.
    pub fn reshape_to(&mut self, t: TensorRef, dims: &[Dim]) -> R<TensorRef> {
        let parts = self.dim_sources(t, dims)?;
        self.reshape_from(t, &parts)
    }

    /// `t` with `n` dims of 1 put in front (NumPy broadcast alignment).
    pub fn unsqueeze_front(&mut self, t: TensorRef, n: usize) -> R<TensorRef> {
        if n == 0 {
            return Ok(t);
        }
        let mut dims = vec![Dim::Known(1); n];
        dims.extend(self.shape(t));
        self.reshape_to(t, &dims)
    }

    /// `a` and `b` brought to equal rank for an ElementWise layer.
    pub fn broadcast_pair(&mut self, a: TensorRef, b: TensorRef) -> R<(TensorRef, TensorRef)> {
        let (ra, rb) = (self.rank(a), self.rank(b));
        Ok((
            self.unsqueeze_front(a, rb.saturating_sub(ra))?,
            self.unsqueeze_front(b, ra.saturating_sub(rb))?,
        ))
    }

    /// `t` as `to` (no layer when it already is).
    pub fn cast(&mut self, t: TensorRef, to: DataType) -> R<TensorRef> {
        if self.dtype(t) == to {
            return Ok(t);
        }
        self.add(LayerKind::Cast { to }, vec![t])
    }

    /// An element-wise layer `a op b`, for converters that decompose an op.
    pub fn ew(&mut self, op: ElementWiseOp, a: TensorRef, b: TensorRef) -> R<TensorRef> {
        self.add(LayerKind::ElementWise { op }, vec![a, b])
    }

    /// A unary layer `op(x)`, for converters that decompose an op.
    pub fn un(&mut self, op: UnaryOp, x: TensorRef) -> R<TensorRef> {
        self.add(LayerKind::Unary { op }, vec![x])
    }

    /// A reduction of `x` by `op` over `axes`.
    pub fn reduce(
        &mut self,
        op: ReduceOp,
        axes: &[usize],
        keep_dims: bool,
        x: TensorRef,
    ) -> R<TensorRef> {
        let kind = LayerKind::Reduce {
            op,
            axes: axes.to_vec(),
            keep_dims,
        };
        self.add(kind, vec![x])
    }

    /// Int64 indices `i` with the negative ones counted from the end of
    /// their dim: `i + len` where `i < 0` (`len` broadcasts against `i`).
    pub fn wrap_negative(&mut self, i: TensorRef, len: TensorRef) -> R<TensorRef> {
        let zero = self.scalar(DataType::I64, 0.0, self.rank(i))?;
        let neg = self.ew(ElementWiseOp::Less, i, zero)?;
        let wrapped = self.ew(ElementWiseOp::Sum, i, len)?;
        self.add(LayerKind::Select, vec![neg, wrapped, i])
    }

    /// Input `i`, which the node's op takes only as a float tensor.
    pub fn float_input(&mut self, i: usize) -> R<TensorRef> {
        let x = self.input(i)?;
        let dt = self.dtype(x);
        if !dt.is_float() {
            return Err(ConvertError::new(format!(
                "{} takes float tensors, not {dt}",
                self.node.op_type
            )));
        }
        Ok(x)
    }

    /// A Shuffle permuting `t`'s dims by `perm`.
    pub fn transpose(&mut self, t: TensorRef, perm: Vec<usize>) -> R<TensorRef> {
        self.add(
            LayerKind::Shuffle(ShuffleParams {
                first_transpose: Some(perm),
                reshape: None,
                second_transpose: None,
                zero_is_placeholder: false,
            }),
            vec![t],
        )
    }

    /// A Slice of `t` with fixed start, size and stride (`Fill` mode fills
    /// positions outside `t` with zeros).
    pub fn slice(
        &mut self,
        t: TensorRef,
        start: Vec<i64>,
        size: Vec<usize>,
        stride: Vec<i64>,
        mode: SliceMode,
    ) -> R<TensorRef> {
        self.add(
            LayerKind::Slice(SliceParams {
                start,
                size,
                stride,
                mode,
                fill: 0.0,
            }),
            vec![t],
        )
    }

    /// A Gather of `data` at `idx` along `axis`.
    pub fn gather(
        &mut self,
        data: TensorRef,
        idx: TensorRef,
        axis: usize,
        mode: GatherMode,
    ) -> R<TensorRef> {
        self.add(LayerKind::Gather { axis, mode }, vec![data, idx])
    }

    /// Zeros of `dtype` and `dims` without a constant of their size: a
    /// fill-mode slice of one zero.
    pub fn zeros(&mut self, dtype: DataType, dims: &[usize]) -> R<TensorRef> {
        let r = dims.len();
        let zero = self.scalar(dtype, 0.0, r)?;
        self.slice(zero, vec![0; r], dims.to_vec(), vec![1; r], SliceMode::Fill)
    }

    /// A scalar constant of `dtype` with `rank` dims of 1, for broadcasting.
    pub fn scalar(&mut self, dtype: DataType, value: f64, rank: usize) -> R<TensorRef> {
        use jetrt_engine::TensorData as D;
        let data = match dtype {
            DataType::F32 => D::F32(vec![value as f32]),
            DataType::F16 => D::F16(vec![half::f16::from_f64(value)]),
            DataType::I32 => D::I32(vec![value as i32]),
            DataType::I64 => D::I64(vec![value as i64]),
            DataType::U8 => D::U8(vec![value as u8]),
            DataType::Bool => D::Bool(vec![value != 0.0]),
        };
        let t = Tensor::new(vec![1; rank], data).map_err(ConvertError::from)?;
        Ok(self.constant(t))
    }
}
