//! ONNX graph -> network IR. Every node is lowered by the converter the
//! registry holds for its (domain, op type, opset); nodes no converter
//! handles are all reported together before anything is converted.

pub mod ctx;
pub mod ops;
pub mod registry;

pub use ctx::{Importer, NodeCtx};
pub use registry::{ConvertFn, Converter, Registry};

use crate::error::{Error, Result, UnsupportedOp};
use crate::onnx::proto::{type_proto, GraphProto, NodeProto};
use crate::onnx::{dtype_from_onnx, normalize_domain, tensor_from_proto, OnnxModel};
use jetrt_engine::ir::{LayerKind, Network, TensorRef};
use jetrt_engine::shape::{Dim, Profile};
use jetrt_engine::Tensor;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// Why a converter could not lower a node; the driver adds the node's name.
#[derive(Debug)]
pub struct ConvertError {
    pub msg: String,
    /// The ONNX value that would have to be known at build time for the
    /// node to convert (test harnesses bind graph inputs feeding it).
    pub needs_const: Option<String>,
}

impl ConvertError {
    pub fn new(msg: impl Into<String>) -> Self {
        ConvertError {
            msg: msg.into(),
            needs_const: None,
        }
    }
}

impl From<jetrt_engine::Error> for ConvertError {
    fn from(e: jetrt_engine::Error) -> Self {
        ConvertError::new(e.to_string())
    }
}

impl From<String> for ConvertError {
    fn from(e: String) -> Self {
        ConvertError::new(e)
    }
}

/// The batch profile for a dynamic leading dim: `--batch MIN:OPT:MAX`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchProfile {
    pub min: usize,
    pub opt: usize,
    pub max: usize,
}

impl Default for BatchProfile {
    fn default() -> Self {
        BatchProfile {
            min: 1,
            opt: 1,
            max: 1,
        }
    }
}

impl std::fmt::Display for BatchProfile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}:{}", self.min, self.opt, self.max)
    }
}

impl std::str::FromStr for BatchProfile {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        let parts: Vec<&str> = s.split(':').collect();
        let nums: Vec<usize> = parts
            .iter()
            .map(|p| p.trim().parse::<usize>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("'{s}' is not MIN:OPT:MAX (three positive integers)"))?;
        let p = match nums[..] {
            [n] => BatchProfile {
                min: n,
                opt: n,
                max: n,
            },
            [min, opt, max] => BatchProfile { min, opt, max },
            _ => return Err(format!("'{s}' is not MIN:OPT:MAX")),
        };
        if p.min == 0 || p.min > p.opt || p.opt > p.max {
            return Err(format!(
                "batch profile {s} must satisfy 1 <= MIN <= OPT <= MAX"
            ));
        }
        Ok(p)
    }
}

#[derive(Clone, Debug, Default)]
pub struct ConvertOptions {
    /// Profile of a dynamic leading (batch) dim.
    pub batch: BatchProfile,
    /// Dims fixed for named inputs: `--shape NAME=D0xD1...` fixes all of
    /// them; `None` entries leave a dim as the model declares it.
    pub shapes: HashMap<String, Vec<Option<usize>>>,
    /// Graph inputs replaced by constants (test harnesses bind shape operands).
    pub bind: HashMap<String, Tensor>,
}

/// The opset a node is converted at: its domain's version in the model. A
/// custom domain the model does not import is taken as version 1, so that a
/// plugin op is not refused for a missing declaration.
fn node_opset(model: &OnnxModel, node: &NodeProto) -> Option<u32> {
    let domain = normalize_domain(&node.domain);
    model
        .opsets
        .get(domain)
        .copied()
        .or_else(|| (!domain.is_empty()).then_some(1))
}

fn node_name(node: &NodeProto, index: usize) -> String {
    if node.name.is_empty() {
        format!("{}_{index}", node.op_type)
    } else {
        node.name.clone()
    }
}

/// Every node the registry cannot convert, in graph order.
pub fn unsupported_ops(model: &OnnxModel, registry: &Registry) -> Vec<UnsupportedOp> {
    model
        .graph()
        .node
        .iter()
        .enumerate()
        .filter_map(|(i, n)| {
            let opset = node_opset(model, n);
            let found = opset.and_then(|v| registry.resolve(&n.domain, &n.op_type, v));
            found.is_none().then(|| UnsupportedOp {
                node: node_name(n, i),
                op_type: n.op_type.clone(),
                domain: normalize_domain(&n.domain).to_string(),
                opset: opset.unwrap_or(0),
            })
        })
        .collect()
}

/// Nodes in an order where each comes after the producers of its inputs.
fn topo_order(g: &GraphProto, available: &HashSet<&str>) -> Result<Vec<usize>, String> {
    let mut produced: HashMap<&str, usize> = HashMap::new();
    for (i, n) in g.node.iter().enumerate() {
        for o in n.output.iter().filter(|o| !o.is_empty()) {
            if produced.insert(o, i).is_some() || available.contains(o.as_str()) {
                return Err(format!("value '{o}' is produced more than once"));
            }
        }
    }
    let mut order = Vec::with_capacity(g.node.len());
    let mut state = vec![0u8; g.node.len()]; // 0 new, 1 visiting, 2 done
    for start in 0..g.node.len() {
        // Iterative DFS: the stack holds (node, next input to look at).
        let mut stack = vec![(start, 0usize)];
        while let Some((n, k)) = stack.pop() {
            if k == 0 {
                match state[n] {
                    2 => continue,
                    1 => {
                        return Err(format!(
                            "the graph has a cycle through node '{}'",
                            node_name(&g.node[n], n)
                        ))
                    }
                    _ => state[n] = 1,
                }
            }
            let inputs = &g.node[n].input;
            if let Some(name) = inputs.get(k) {
                stack.push((n, k + 1));
                if name.is_empty() || available.contains(name.as_str()) {
                    continue;
                }
                match produced.get(name.as_str()) {
                    Some(&p) if state[p] == 2 => {}
                    Some(&p) if state[p] == 1 => {
                        return Err(format!("the graph has a cycle through node '{}'", node_name(&g.node[p], p)))
                    }
                    Some(&p) => stack.push((p, 0)),
                    None => {
                        return Err(format!(
                            "node '{}' reads '{name}', which no node, initializer or graph input produces",
                            node_name(&g.node[n], n)
                        ))
                    }
                }
            } else {
                state[n] = 2;
                order.push(n);
            }
        }
    }
    Ok(order)
}

/// Converts a model into a network.
pub fn convert(model: &OnnxModel, registry: &Registry, opts: &ConvertOptions) -> Result<Network> {
    let g = model.graph();
    let model_err = |msg: String| Error::Model {
        path: model.path.clone(),
        msg,
    };

    let unsupported = unsupported_ops(model, registry);
    if !unsupported.is_empty() {
        return Err(Error::Unsupported(unsupported));
    }

    let mut initializers = HashMap::new();
    for t in &g.initializer {
        let v = tensor_from_proto(t, Some(model.dir()))
            .map_err(|e| model_err(format!("initializer '{}': {e}", t.name)))?;
        initializers.insert(t.name.clone(), Arc::new(v));
    }
    if let Some(s) = g.sparse_initializer.first() {
        let name = s.values.as_ref().map(|v| v.name.as_str()).unwrap_or("");
        return Err(model_err(format!(
            "sparse initializer '{name}' is not supported"
        )));
    }

    for name in opts.shapes.keys() {
        if !g.input.iter().any(|i| &i.name == name) {
            let names: Vec<&str> = g.input.iter().map(|i| i.name.as_str()).collect();
            return Err(Error::Options(format!(
                "--shape names input '{name}', but the model's inputs are: {}",
                names.join(", ")
            )));
        }
    }

    let mut net = Network::new(model.name());
    let mut bindings: Vec<(String, TensorRef)> = Vec::new();
    let mut bound_consts: Vec<(String, Tensor)> = Vec::new();
    for input in &g.input {
        if initializers.contains_key(&input.name) {
            continue; // older exporters list initializers as inputs too
        }
        if let Some(t) = opts.bind.get(&input.name) {
            bound_consts.push((input.name.clone(), t.clone()));
            continue;
        }
        let (dtype, shape, profile) = graph_input(input, opts).map_err(model_err)?;
        let r = net.add_input(&input.name, dtype, shape, profile);
        bindings.push((input.name.clone(), r));
    }
    let mut imp = Importer::new(net, initializers);
    for (name, r) in bindings {
        imp.bind(&name, r);
    }
    for (name, t) in bound_consts {
        let r = imp.add_constant(&name, Arc::new(t));
        imp.bind(&name, r);
    }

    let available: HashSet<&str> = g
        .input
        .iter()
        .map(|i| i.name.as_str())
        .chain(g.initializer.iter().map(|t| t.name.as_str()))
        .collect();
    let order = topo_order(g, &available).map_err(model_err)?;

    for i in order {
        let node = &g.node[i];
        let opset = node_opset(model, node).unwrap_or(0);
        let name = node_name(node, i);
        let func = registry
            .resolve(&node.domain, &node.op_type, opset)
            .expect("unsupported ops were reported above");
        let mut ctx = NodeCtx::new(&mut imp, node, opset, name.clone());
        func(&mut ctx).map_err(|e| Error::Convert {
            node: name.clone(),
            op_type: node.op_type.clone(),
            msg: e.msg,
            needs_const: e.needs_const,
        })?;
        for (k, out) in node.output.iter().enumerate() {
            if !out.is_empty() && !imp.is_bound(out) && is_used(g, out) {
                return Err(Error::Convert {
                    node: name.clone(),
                    op_type: node.op_type.clone(),
                    needs_const: None,
                    msg: format!("output {k} ('{out}') is used but not supported"),
                });
            }
        }
    }

    for out in &g.output {
        let t = imp
            .value(&out.name)
            .ok_or_else(|| model_err(format!("graph output '{}' is never produced", out.name)))?;
        // A network output must be a layer's: outputs that are inputs or
        // shared with another output get an Identity of their own.
        let t = if matches!(t, TensorRef::Input(_)) || imp.net.is_output(t) {
            let idx = imp
                .add_layer(format!("{}/output", out.name), LayerKind::Identity, vec![t])
                .map_err(Error::Engine)?;
            TensorRef::Layer(idx, 0)
        } else {
            t
        };
        imp.net.mark_output(&out.name, t);
    }
    let net = imp.into_network();
    net.check()?;
    Ok(net)
}

fn is_used(g: &GraphProto, name: &str) -> bool {
    g.node.iter().any(|n| n.input.iter().any(|i| i == name))
        || g.output.iter().any(|o| o.name == name)
}

/// The type, dims and profile of a graph input under the options.
fn graph_input(
    input: &crate::onnx::proto::ValueInfoProto,
    opts: &ConvertOptions,
) -> Result<(jetrt_engine::DataType, Vec<Dim>, Option<Profile>), String> {
    let name = &input.name;
    let tt = match input.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(type_proto::Value::TensorType(t)) => t,
        Some(_) => {
            return Err(format!(
                "input '{name}' is not a tensor (sequences, maps and optionals are not supported)"
            ))
        }
        None => return Err(format!("input '{name}' has no type")),
    };
    let dtype = dtype_from_onnx(tt.elem_type).map_err(|e| format!("input '{name}': {e}"))?;
    let Some(shape) = tt.shape.as_ref() else {
        return match opts
            .shapes
            .get(name)
            .and_then(|d| d.iter().copied().collect::<Option<Vec<usize>>>())
        {
            Some(d) => Ok((dtype, d.into_iter().map(Dim::Known).collect(), None)),
            None => Err(format!(
                "input '{name}' has no declared dims; give them with --shape {name}=D0xD1x..."
            )),
        };
    };
    use crate::onnx::proto::tensor_shape_proto::dimension::Value as V;
    let declared: Vec<Option<(i64, String)>> = shape
        .dim
        .iter()
        .map(|d| match &d.value {
            Some(V::DimValue(v)) if *v >= 0 => Some((*v, String::new())),
            Some(V::DimParam(p)) => Some((-1, p.clone())),
            _ => None,
        })
        .collect();
    let fixed = opts.shapes.get(name);
    if let Some(fixed) = fixed {
        if fixed.len() != declared.len() {
            return Err(format!(
                "--shape gives {} dims for input '{name}', which has {}",
                fixed.len(),
                declared.len()
            ));
        }
        for (i, (d, f)) in declared.iter().zip(fixed).enumerate() {
            if let (Some((v, _)), Some(f)) = (d, f) {
                if *v >= 0 && *v as usize != *f {
                    return Err(format!("--shape sets dim {i} of input '{name}' to {f}, but the model fixes it at {v}"));
                }
            }
        }
    }
    let declared: Vec<Option<(i64, String)>> = declared
        .into_iter()
        .enumerate()
        .map(|(i, d)| match fixed.and_then(|f| f[i]) {
            Some(n) => Some((n as i64, String::new())),
            None => d,
        })
        .collect();
    let mut dims = Vec::with_capacity(declared.len());
    let mut dynamic_batch = false;
    for (i, d) in declared.iter().enumerate() {
        match d {
            Some((v, _)) if *v >= 0 => dims.push(Dim::Known(*v as usize)),
            other if i == 0 => {
                let b = opts.batch;
                if b.min == b.max {
                    dims.push(Dim::Known(b.min));
                } else {
                    let label = other
                        .as_ref()
                        .map(|(_, p)| p.clone())
                        .filter(|p| !p.is_empty());
                    dims.push(Dim::Named(label.unwrap_or_else(|| "batch".into())));
                    dynamic_batch = true;
                }
            }
            other => {
                let label = other
                    .as_ref()
                    .map(|(_, p)| format!(" ('{p}')"))
                    .unwrap_or_default();
                let shown: Vec<String> = declared
                    .iter()
                    .map(|d| match d {
                        Some((v, _)) if *v >= 0 => v.to_string(),
                        Some((_, p)) => p.clone(),
                        None => "?".into(),
                    })
                    .collect();
                return Err(format!(
                    "input '{name}' has a dynamic dim {i}{label} that is not the batch dim; \
                     fix it with --shape {name}=DIMS (its dims are {})",
                    shown.join("x")
                ));
            }
        }
    }
    let profile = dynamic_batch.then(|| {
        let with = |n: usize| {
            dims.iter()
                .enumerate()
                .map(|(i, d)| if i == 0 { n } else { d.known().unwrap_or(1) })
                .collect::<Vec<_>>()
        };
        Profile {
            min: with(opts.batch.min),
            opt: with(opts.batch.opt),
            max: with(opts.batch.max),
        }
    });
    Ok((dtype, dims, profile))
}
