//! The network IR: TensorRT's `INetworkDefinition` as data.
//!
//! Layers live in a `Vec` in topological order; a tensor is addressed by the
//! network input it is, or by (layer, output slot). Every layer's output types
//! are inferred when it is added, so a builder can ask for any tensor's dims
//! while converting, as TensorRT's `ITensor::getDimensions` allows.

pub mod axis_map;
pub mod einsum;
pub mod fusion;
pub mod infer;
pub mod layer;
pub mod matrix;
mod nonfinite;
pub mod plugin;

pub use infer::{infer_outputs, WeightShapes, WeightsTable};
pub use layer::*;
pub use plugin::{FieldValue, PluginDim, PluginField, PluginOutput, PluginParams};

use crate::dtype::DataType;
use crate::error::{Error, Result};
use crate::shape::{Profile, Shape, SymInt};
use crate::tensor::Tensor;
use serde::{Deserialize, Serialize};
use std::collections::{HashMap, HashSet};
use std::sync::Arc;

/// A tensor of the network: a network input, or an output slot of a layer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub enum TensorRef {
    Input(usize),
    Layer(usize, usize),
}

/// Build-time type of a tensor.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TensorInfo {
    pub dtype: DataType,
    pub shape: Shape,
    /// For small 1-D or scalar integer tensors (shape tensors): their value
    /// as far as it is known at build time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub value: Option<Vec<SymInt>>,
}

impl TensorInfo {
    pub fn new(dtype: DataType, shape: Shape) -> Self {
        TensorInfo {
            dtype,
            shape,
            value: None,
        }
    }

    pub fn rank(&self) -> usize {
        self.shape.len()
    }
}

/// A network input (TensorRT `addInput`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Input {
    pub name: String,
    #[serde(flatten)]
    pub info: TensorInfo,
    /// Bounds of the dynamic dims; `None` when every dim is known.
    pub profile: Option<Profile>,
}

/// A network output (TensorRT `markOutput`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Output {
    pub name: String,
    pub tensor: TensorRef,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Layer {
    pub name: String,
    #[serde(flatten)]
    pub kind: LayerKind,
    pub inputs: Vec<TensorRef>,
    pub outputs: Vec<TensorInfo>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Network {
    pub name: String,
    pub inputs: Vec<Input>,
    pub layers: Vec<Layer>,
    pub outputs: Vec<Output>,
    /// The weights table; serialized apart from the layers (see `engine_file`).
    #[serde(skip)]
    pub weights: Vec<Arc<Tensor>>,
}

impl Network {
    pub fn new(name: impl Into<String>) -> Self {
        Network {
            name: name.into(),
            ..Default::default()
        }
    }

    pub fn add_input(
        &mut self,
        name: impl Into<String>,
        dtype: DataType,
        shape: Shape,
        profile: Option<Profile>,
    ) -> TensorRef {
        self.inputs.push(Input {
            name: name.into(),
            info: TensorInfo::new(dtype, shape),
            profile,
        });
        TensorRef::Input(self.inputs.len() - 1)
    }

    pub fn add_weights(&mut self, t: impl Into<Arc<Tensor>>) -> WeightsId {
        self.weights.push(t.into());
        WeightsId(self.weights.len() - 1)
    }

    /// The weights behind an id; ids come from this network, so a bad one is a bug
    /// caught by `check`.
    pub fn weights(&self, id: WeightsId) -> &Arc<Tensor> {
        &self.weights[id.0]
    }

    /// Adds a layer after inferring its output types; returns its index.
    pub fn add_layer(
        &mut self,
        name: impl Into<String>,
        kind: LayerKind,
        inputs: Vec<TensorRef>,
    ) -> Result<usize> {
        let name = name.into();
        let layer_err = |msg: String| Error::Layer {
            layer: name.clone(),
            kind: kind.name(),
            msg,
        };
        for w in kind.weights() {
            if w.0 >= self.weights.len() {
                return Err(layer_err(format!("weights {} do not exist", w.0)));
            }
        }
        let mut infos = Vec::with_capacity(inputs.len());
        for &t in &inputs {
            infos.push(
                self.try_info(t)
                    .ok_or_else(|| layer_err(format!("input {t:?} does not exist (yet)")))?,
            );
        }
        let outputs = infer_outputs(&kind, &infos, &self.weights).map_err(layer_err)?;
        self.layers.push(Layer {
            name,
            kind,
            inputs,
            outputs,
        });
        Ok(self.layers.len() - 1)
    }

    /// Adds a layer with one output and returns that output.
    pub fn add(
        &mut self,
        name: impl Into<String>,
        kind: LayerKind,
        inputs: Vec<TensorRef>,
    ) -> Result<TensorRef> {
        let idx = self.add_layer(name, kind, inputs)?;
        Ok(TensorRef::Layer(idx, 0))
    }

    /// Adds a Constant layer holding `t`.
    pub fn add_constant(
        &mut self,
        name: impl Into<String>,
        t: impl Into<Arc<Tensor>>,
    ) -> TensorRef {
        let weights = self.add_weights(t);
        let info = infer::constant_info(&self.weights[weights.0]);
        self.layers.push(Layer {
            name: name.into(),
            kind: LayerKind::Constant { weights },
            inputs: vec![],
            outputs: vec![info],
        });
        TensorRef::Layer(self.layers.len() - 1, 0)
    }

    pub fn mark_output(&mut self, name: impl Into<String>, tensor: TensorRef) {
        self.outputs.push(Output {
            name: name.into(),
            tensor,
        });
    }

    pub fn try_info(&self, t: TensorRef) -> Option<&TensorInfo> {
        match t {
            TensorRef::Input(i) => self.inputs.get(i).map(|i| &i.info),
            TensorRef::Layer(l, s) => self.layers.get(l).and_then(|l| l.outputs.get(s)),
        }
    }

    /// Build-time type of a tensor of this network.
    ///
    /// # Panics
    /// On a reference that is not of this network (a bug; `check` finds them).
    pub fn info(&self, t: TensorRef) -> &TensorInfo {
        self.try_info(t)
            .unwrap_or_else(|| panic!("tensor {t:?} is not in network '{}'", self.name))
    }

    /// The constant behind a tensor, when a Constant layer produces it.
    pub fn constant(&self, t: TensorRef) -> Option<&Arc<Tensor>> {
        match t {
            TensorRef::Layer(l, 0) => match &self.layers.get(l)?.kind {
                LayerKind::Constant { weights } => self.weights.get(weights.0),
                _ => None,
            },
            _ => None,
        }
    }

    /// For each tensor, the layers that read it (in order, once per reading input).
    pub fn consumers(&self) -> HashMap<TensorRef, Vec<usize>> {
        let mut m: HashMap<TensorRef, Vec<usize>> = HashMap::new();
        for (i, l) in self.layers.iter().enumerate() {
            for &t in &l.inputs {
                m.entry(t).or_default().push(i);
            }
        }
        m
    }

    /// Whether `t` is one of the network's outputs.
    pub fn is_output(&self, t: TensorRef) -> bool {
        self.outputs.iter().any(|o| o.tensor == t)
    }

    /// Validates the invariants every pass must keep: references point to
    /// earlier layers, weights exist, output types match re-inference, and
    /// names of inputs and outputs are unique.
    pub fn check(&self) -> Result<()> {
        let bad = |msg: String| Err(Error::Network(msg));
        let mut names = HashSet::new();
        for i in &self.inputs {
            if !names.insert(&i.name) {
                return bad(format!("two inputs are named '{}'", i.name));
            }
            let max = i.profile.as_ref().map(|p| {
                p.max
                    .iter()
                    .map(|&d| crate::shape::Dim::Known(d))
                    .collect::<Vec<_>>()
            });
            let too_big = |s: &[crate::shape::Dim]| crate::shape::bounded_volume(s).is_none();
            if too_big(&i.info.shape) || max.as_deref().is_some_and(too_big) {
                return bad(format!(
                    "input '{}' would exceed {} elements",
                    i.name,
                    crate::shape::MAX_ELEMENTS
                ));
            }
        }
        for (idx, l) in self.layers.iter().enumerate() {
            let mut infos = Vec::new();
            for &t in &l.inputs {
                let ok = match t {
                    TensorRef::Input(i) => i < self.inputs.len(),
                    TensorRef::Layer(j, s) => j < idx && s < self.layers[j].outputs.len(),
                };
                if !ok {
                    return bad(format!(
                        "layer {idx} '{}' reads {t:?}, which is not produced before it",
                        l.name
                    ));
                }
                infos.push(self.info(t));
            }
            for w in l.kind.weights() {
                if w.0 >= self.weights.len() {
                    return bad(format!(
                        "layer '{}' refers to missing weights {}",
                        l.name, w.0
                    ));
                }
            }
            let inferred = infer_outputs(&l.kind, &infos, &self.weights)
                .map_err(|m| Error::Network(format!("layer '{}': {m}", l.name)))?;
            if inferred != l.outputs {
                return bad(format!(
                    "layer '{}' records output types {:?} but its inputs give {:?}",
                    l.name, l.outputs, inferred
                ));
            }
        }
        let mut out_names = HashSet::new();
        for o in &self.outputs {
            if !out_names.insert(&o.name) {
                return bad(format!("two outputs are named '{}'", o.name));
            }
            let ok = match o.tensor {
                TensorRef::Input(i) => i < self.inputs.len(),
                TensorRef::Layer(j, s) => j < self.layers.len() && s < self.layers[j].outputs.len(),
            };
            if !ok {
                return bad(format!("output '{}' refers to a missing tensor", o.name));
            }
        }
        Ok(())
    }

    /// Drops weights no layer refers to and renumbers the rest.
    pub fn compact_weights(&mut self) {
        let mut used: Vec<WeightsId> = self.layers.iter().flat_map(|l| l.kind.weights()).collect();
        used.sort();
        used.dedup();
        let mut remap = HashMap::new();
        let mut kept = Vec::with_capacity(used.len());
        for (new, old) in used.iter().enumerate() {
            remap.insert(*old, WeightsId(new));
            kept.push(self.weights[old.0].clone());
        }
        for l in &mut self.layers {
            l.kind.map_weights(|w| remap[&w]);
        }
        self.weights = kept;
    }

    /// Count of layers by kind name, for reports.
    pub fn layer_histogram(&self) -> Vec<(&'static str, usize)> {
        let mut m: Vec<(&'static str, usize)> = Vec::new();
        for l in &self.layers {
            match m.iter_mut().find(|(k, _)| *k == l.kind.name()) {
                Some(e) => e.1 += 1,
                None => m.push((l.kind.name(), 1)),
            }
        }
        m.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
        m
    }
}
