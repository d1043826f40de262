//! Concrete dims of every tensor of a network for given input dims, and
//! the values of its shape tensors: what a backend plans buffers from
//! before a run, as TensorRT resolves shapes when input shapes are set.
//!
//! Shape tensors (a Shape layer's output and what is computed from it and
//! from small constants: `Reshape(x, Concat(Shape(x)[0], -1))`) are
//! evaluated here, on the host, with the IR's reference semantics; they
//! depend on the input dims only, so a device backend computes them once
//! per set of dims, never inside a run.

use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::ir::{infer_outputs, Layer, LayerKind, Network, TensorInfo, TensorRef, WeightsTable};
use crate::plugin::registry;
use crate::plugin::{InferredDim, InputDesc, PluginInstance};
use crate::shape::{format_dims, known_dims, Dim, SymInt};
use crate::tensor::Tensor;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Elements a tensor computed on the host may have: shape tensors are a
/// handful of dims, never data.
pub const MAX_HOST_ELEMENTS: usize = 64;

/// The most bytes one tensor may take: a bound on what dims from a file or
/// a caller can make a backend allocate.
pub const MAX_TENSOR_BYTES: u64 = 1 << 40;

/// Which tensors are computed on the host: per layer, and per network
/// input (a shape input, as TensorRT has them: a small integer input that
/// a reshape, slice or resize takes its dims from; its values are part of
/// what a plan is made for).
#[derive(Clone, Debug, PartialEq)]
pub struct HostPlan {
    pub layers: Vec<bool>,
    pub inputs: Vec<bool>,
}

impl HostPlan {
    pub fn of(net: &Network) -> HostPlan {
        // Small integer inputs may be shape inputs; keep those that reach
        // a shape operand, and repeat until nothing changes.
        let mut inputs: Vec<bool> = net
            .inputs
            .iter()
            .map(|i| {
                matches!(i.info.dtype, DataType::I32 | DataType::I64)
                    && i.info.rank() <= 1
                    && known_dims(&i.info.shape)
                        .is_some_and(|d| d.iter().product::<usize>() <= MAX_HOST_ELEMENTS)
            })
            .collect();
        loop {
            let layers = host_layers(net, &inputs);
            let reached = shape_sources(net, &layers);
            let next: Vec<bool> = (0..inputs.len()).map(|i| inputs[i] && reached[i]).collect();
            if next == inputs {
                return HostPlan { layers, inputs };
            }
            inputs = next;
        }
    }

    pub fn is_host(&self, t: TensorRef) -> bool {
        match t {
            TensorRef::Input(i) => self.inputs.get(i).copied().unwrap_or(false),
            TensorRef::Layer(l, _) => self.layers.get(l).copied().unwrap_or(false),
        }
    }

    /// Whether any input's values are part of the plan.
    pub fn has_shape_inputs(&self) -> bool {
        self.inputs.iter().any(|&b| b)
    }
}

/// Per layer, whether its outputs are computed on the host: Shape layers,
/// small constants, and small layers that read only such tensors (or the
/// shape inputs marked in `inputs`).
fn host_layers(net: &Network, inputs: &[bool]) -> Vec<bool> {
    let mut host = vec![false; net.layers.len()];
    for (i, l) in net.layers.iter().enumerate() {
        let small = l.outputs.iter().all(|o| {
            known_dims(&o.shape).is_some_and(|d| d.iter().product::<usize>() <= MAX_HOST_ELEMENTS)
        });
        host[i] = small
            && match &l.kind {
                LayerKind::Constant { .. } | LayerKind::Shape => true,
                LayerKind::Plugin(_) => false,
                k if !k.weights().is_empty() => false,
                _ => {
                    !l.inputs.is_empty()
                        && l.inputs.iter().all(|t| match t {
                            TensorRef::Layer(j, _) => host[*j],
                            TensorRef::Input(j) => inputs.get(*j).copied().unwrap_or(false),
                        })
                }
            };
    }
    host
}

/// Per network input, whether it feeds (through host layers) an operand
/// some layer reads on the host.
fn shape_sources(net: &Network, host: &[bool]) -> Vec<bool> {
    let mut todo: Vec<TensorRef> = Vec::new();
    for l in &net.layers {
        for (k, &t) in l.inputs.iter().enumerate() {
            if reads_on_host(l, k) && !matches!(l.kind, LayerKind::Shape) {
                todo.push(t);
            }
        }
    }
    let mut seen = HashSet::new();
    let mut reached = vec![false; net.inputs.len()];
    while let Some(t) = todo.pop() {
        if !seen.insert(t) {
            continue;
        }
        match t {
            TensorRef::Input(i) => reached[i] = true,
            TensorRef::Layer(l, _) if host[l] => todo.extend(net.layers[l].inputs.iter().copied()),
            TensorRef::Layer(..) => {}
        }
    }
    reached
}

/// Every tensor's dims for one set of input dims.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub inputs: Vec<Vec<usize>>,
    /// Per layer, per output slot.
    pub layers: Vec<Vec<Vec<usize>>>,
    /// The values of host-computed tensors.
    pub values: HashMap<TensorRef, Arc<Tensor>>,
    /// Outputs whose dims are an upper bound until the layer has run.
    pub data_dependent: HashSet<TensorRef>,
}

impl Resolved {
    pub fn dims(&self, t: TensorRef) -> &[usize] {
        match t {
            TensorRef::Input(i) => &self.inputs[i],
            TensorRef::Layer(l, s) => &self.layers[l][s],
        }
    }
}

/// Bytes of a tensor of `dtype` at `dims`, if it is not absurd.
pub fn tensor_bytes(dtype: DataType, dims: &[usize]) -> Option<u64> {
    dims.iter()
        .try_fold(dtype.size() as u64, |acc, &d| acc.checked_mul(d as u64))
        .filter(|&b| b <= MAX_TENSOR_BYTES)
}

/// Resolves every tensor of `net` for `input_dims` and the values of its
/// shape inputs (`shape_values`, by input; `None` for the others).
/// `weights` may be a table without the values of large weights.
pub fn resolve(
    net: &Network,
    weights: &dyn WeightsTable,
    plan: &HostPlan,
    input_dims: &[Vec<usize>],
    shape_values: &[Option<Arc<Tensor>>],
) -> Result<Resolved> {
    let host = &plan.layers;
    if input_dims.len() != net.inputs.len() {
        return Err(Error::Network(format!(
            "{} input dims for {} inputs",
            input_dims.len(),
            net.inputs.len()
        )));
    }
    for (decl, dims) in net.inputs.iter().zip(input_dims) {
        if tensor_bytes(decl.info.dtype, dims).is_none() {
            return Err(Error::Input {
                name: decl.name.clone(),
                msg: format!("dims {} are too large", format_dims(dims)),
            });
        }
    }
    let mut r = Resolved {
        inputs: input_dims.to_vec(),
        layers: Vec::with_capacity(net.layers.len()),
        values: HashMap::new(),
        data_dependent: HashSet::new(),
    };
    for (i, decl) in net.inputs.iter().enumerate() {
        if !plan.inputs.get(i).copied().unwrap_or(false) {
            continue;
        }
        match shape_values.get(i).and_then(|v| v.as_ref()) {
            Some(v) if v.shape() == input_dims[i].as_slice() && v.dtype() == decl.info.dtype => {
                r.values.insert(TensorRef::Input(i), v.clone());
            }
            _ => {
                return Err(Error::Input {
                    name: decl.name.clone(),
                    msg: "is a shape input (a reshape, slice or resize takes dims from it): its values must be given with its dims".into(),
                })
            }
        }
    }
    for (i, l) in net.layers.iter().enumerate() {
        let err = |msg: String| Error::Layer {
            layer: l.name.clone(),
            kind: l.kind.name(),
            msg,
        };
        let dims: Vec<Vec<usize>> = match &l.kind {
            LayerKind::Constant { weights: id } => {
                if host.get(i).copied().unwrap_or(false) {
                    if let Some(t) = weights.tensor(*id) {
                        r.values.insert(TensorRef::Layer(i, 0), Arc::new(t.clone()));
                    }
                }
                let d = known_dims(&l.outputs[0].shape)
                    .ok_or_else(|| err("a constant with unknown dims".into()))?;
                vec![d]
            }
            LayerKind::Shape => {
                let x = r.dims(l.inputs[0]);
                let t = Tensor::vec_i64(x.iter().map(|&d| d as i64).collect());
                let d = vec![t.shape().to_vec()];
                r.values.insert(TensorRef::Layer(i, 0), Arc::new(t));
                d
            }
            _ if host.get(i).copied().unwrap_or(false) => {
                let vals: Vec<Arc<Tensor>> = l
                    .inputs
                    .iter()
                    .map(|t| {
                        r.values
                            .get(t)
                            .cloned()
                            .ok_or_else(|| err(format!("host input {t:?} has no value")))
                    })
                    .collect::<Result<_>>()?;
                let refs: Vec<&Tensor> = vals.iter().map(|v| v.as_ref()).collect();
                let outs = crate::eval::eval_weightless(l, &refs)?;
                let mut d = Vec::with_capacity(outs.len());
                for (s, t) in outs.into_iter().enumerate() {
                    d.push(t.shape().to_vec());
                    r.values.insert(TensorRef::Layer(i, s), Arc::new(t));
                }
                d
            }
            LayerKind::Plugin(p) => {
                let inputs: Vec<InputDesc> = l
                    .inputs
                    .iter()
                    .map(|&t| InputDesc {
                        dtype: net.info(t).dtype,
                        dims: r.dims(t).iter().map(|&d| Some(d)).collect(),
                    })
                    .collect();
                let entry = registry::require(p)?;
                let inst = PluginInstance::deserialize(entry, &p.data)?;
                let mut d = Vec::new();
                for (s, o) in inst.infer(&inputs)?.into_iter().enumerate() {
                    let mut dims = Vec::with_capacity(o.dims.len());
                    for x in o.dims {
                        dims.push(match x {
                            InferredDim::Known(n) => n,
                            InferredDim::DataDependent { bound: Some(b) } => {
                                r.data_dependent.insert(TensorRef::Layer(i, s));
                                b
                            }
                            _ => {
                                return Err(err(format!(
                                    "output {s} has a dim the plugin cannot bound for these inputs"
                                )))
                            }
                        });
                    }
                    d.push(dims);
                }
                d
            }
            kind => {
                let infos: Vec<TensorInfo> = l
                    .inputs
                    .iter()
                    .map(|&t| concrete_info(net.info(t).dtype, r.dims(t), r.values.get(&t)))
                    .collect();
                let refs: Vec<&TensorInfo> = infos.iter().collect();
                let outs = infer_outputs(kind, &refs, weights).map_err(err)?;
                outs.iter()
                    .map(|o| {
                        known_dims(&o.shape).ok_or_else(|| {
                            err(format!(
                                "output dims {} are not known before the layer runs: they depend on data, not on input dims",
                                crate::shape::format_shape(&o.shape)
                            ))
                        })
                    })
                    .collect::<Result<_>>()?
            }
        };
        for (s, d) in dims.iter().enumerate() {
            let dtype = l.outputs.get(s).map_or(DataType::U8, |o| o.dtype);
            if tensor_bytes(dtype, d).is_none() {
                return Err(err(format!(
                    "output {s} would be {} {dtype}: too large",
                    format_dims(d)
                )));
            }
        }
        r.layers.push(dims);
    }
    Ok(r)
}

/// A tensor's type at run time: concrete dims, and its value when the
/// host computed it (so a reshape or slice reading it gets its dims).
fn concrete_info(dtype: DataType, dims: &[usize], value: Option<&Arc<Tensor>>) -> TensorInfo {
    let mut info = TensorInfo::new(dtype, dims.iter().map(|&d| Dim::Known(d)).collect());
    if let Some(v) = value {
        if matches!(v.dtype(), DataType::I32 | DataType::I64) && v.rank() <= 1 {
            info.value = Some(v.to_i64_vec().into_iter().map(SymInt::Int).collect());
        }
    }
    info
}

/// The layers that read a tensor computed on the host, for backends that
/// must also have it on the device.
pub fn device_readers(net: &Network, plan: &HostPlan) -> HashSet<TensorRef> {
    let host = &plan.layers;
    let mut v = HashSet::new();
    for (i, l) in net.layers.iter().enumerate() {
        if host.get(i).copied().unwrap_or(false) || matches!(l.kind, LayerKind::Shape) {
            continue;
        }
        for (k, &t) in l.inputs.iter().enumerate() {
            let is_host = matches!(t, TensorRef::Layer(j, _) if host[j]);
            if is_host && !reads_on_host(l, k) {
                v.insert(t);
            }
        }
    }
    for o in &net.outputs {
        if matches!(o.tensor, TensorRef::Layer(j, _) if host[j]) {
            v.insert(o.tensor);
        }
    }
    v
}

/// Whether input `k` of `l` is a shape operand, read on the host when the
/// layer is planned rather than by its kernel.
pub fn reads_on_host(l: &Layer, k: usize) -> bool {
    match &l.kind {
        LayerKind::Shuffle(_) | LayerKind::Resize(_) => k == 1,
        LayerKind::Slice(_) => (1..=3).contains(&k),
        LayerKind::Shape => true,
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::ShuffleParams;

    /// `Reshape(x, Concat(Shape(x)[0], -1))` on a dynamic batch.
    fn flatten_net() -> Network {
        let mut net = Network::new("flatten");
        let x = net.add_input(
            "x",
            DataType::F32,
            vec![Dim::Named("n".into()), Dim::Known(3), Dim::Known(4)],
            None,
        );
        let shape = net.add("shape", LayerKind::Shape, vec![x]).unwrap();
        let idx = net.add_constant("i", Tensor::vec_i64(vec![0]));
        let n = net
            .add(
                "g",
                LayerKind::Gather {
                    axis: 0,
                    mode: crate::ir::GatherMode::Default,
                },
                vec![shape, idx],
            )
            .unwrap();
        let m1 = net.add_constant("m1", Tensor::vec_i64(vec![-1]));
        let dims = net
            .add("cat", LayerKind::Concatenation { axis: 0 }, vec![n, m1])
            .unwrap();
        let y = net
            .add(
                "reshape",
                LayerKind::Shuffle(ShuffleParams {
                    first_transpose: None,
                    reshape: None,
                    second_transpose: None,
                    zero_is_placeholder: true,
                }),
                vec![x, dims],
            )
            .unwrap();
        net.mark_output("y", y);
        net
    }

    #[test]
    fn shape_tensors_are_computed_on_the_host_per_input_dims() {
        let net = flatten_net();
        let host = HostPlan::of(&net);
        assert_eq!(host.layers, vec![true, true, true, true, true, false]);
        assert_eq!(host.inputs, vec![false]);
        for n in [1, 5] {
            let r = resolve(&net, &net.weights, &host, &[vec![n, 3, 4]], &[None]).unwrap();
            assert_eq!(r.dims(TensorRef::Layer(5, 0)), &[n, 12]);
            let v = &r.values[&TensorRef::Layer(4, 0)];
            assert_eq!(v.as_i64(), Some(&[n as i64, -1][..]));
        }
        // The reshape reads its dims on the host: nothing goes to the device.
        assert!(device_readers(&net, &host).is_empty());
    }

    /// `Reshape(x, shape)` with `shape` a network input: a shape input,
    /// whose values the resolution takes; a small integer input used only
    /// as data stays a device tensor.
    #[test]
    fn inputs_feeding_a_reshape_are_shape_inputs() {
        let mut net = Network::new("reshape");
        let x = net.add_input("x", DataType::F32, vec![Dim::Known(2), Dim::Known(6)], None);
        let s = net.add_input("s", DataType::I64, vec![Dim::Known(2)], None);
        let idx = net.add_input("i", DataType::I64, vec![Dim::Known(2)], None);
        let y = net
            .add(
                "reshape",
                LayerKind::Shuffle(ShuffleParams {
                    first_transpose: None,
                    reshape: None,
                    second_transpose: None,
                    zero_is_placeholder: true,
                }),
                vec![x, s],
            )
            .unwrap();
        let z = net
            .add(
                "g",
                LayerKind::Gather {
                    axis: 0,
                    mode: crate::ir::GatherMode::Default,
                },
                vec![y, idx],
            )
            .unwrap();
        net.mark_output("z", z);
        let host = HostPlan::of(&net);
        assert_eq!(host.inputs, vec![false, true, false]);
        let dims = [vec![2, 6], vec![2], vec![2]];
        let v = Some(Arc::new(Tensor::vec_i64(vec![3, 4])));
        let r = resolve(&net, &net.weights, &host, &dims, &[None, v, None]).unwrap();
        assert_eq!(r.dims(y), &[3, 4]);
        let e = resolve(&net, &net.weights, &host, &dims, &[None, None, None]).unwrap_err();
        assert!(e.to_string().contains("shape input"), "{e}");
    }

    #[test]
    fn absurd_dims_are_refused_before_anything_is_sized() {
        let net = flatten_net();
        let host = HostPlan::of(&net);
        let e = resolve(
            &net,
            &net.weights,
            &host,
            &[vec![usize::MAX / 2, 3, 4]],
            &[None],
        )
        .unwrap_err();
        assert!(e.to_string().contains("too large"), "{e}");
    }
}
