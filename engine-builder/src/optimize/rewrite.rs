//! Rebuilding a network layer by layer: the way every pass produces its
//! result, so that no pass mutates a network behind its caller's back.

use jetrt_engine::ir::{LayerKind, Network, TensorRef};
use jetrt_engine::Result;
use std::collections::{HashMap, HashSet};

pub struct Rewriter<'a> {
    pub old: &'a Network,
    pub new: Network,
    map: HashMap<TensorRef, TensorRef>,
}

impl<'a> Rewriter<'a> {
    /// A new network with the old one's inputs and weights, and no layers yet.
    pub fn new(old: &'a Network) -> Self {
        let mut new = Network::new(old.name.clone());
        new.inputs = old.inputs.clone();
        new.weights = old.weights.clone();
        let map = (0..old.inputs.len())
            .map(|i| (TensorRef::Input(i), TensorRef::Input(i)))
            .collect();
        Rewriter { old, new, map }
    }

    /// The new tensor an old one became.
    pub fn map(&self, t: TensorRef) -> TensorRef {
        *self
            .map
            .get(&t)
            .unwrap_or_else(|| panic!("pass bug: {t:?} was neither copied nor aliased"))
    }

    /// Makes old tensor `old` stand for new tensor `new`.
    pub fn alias(&mut self, old: TensorRef, new: TensorRef) {
        self.map.insert(old, new);
    }

    /// Copies old layer `l` (inputs remapped); returns its new index.
    pub fn copy(&mut self, l: usize) -> Result<usize> {
        let layer = &self.old.layers[l];
        let inputs = layer.inputs.iter().map(|&t| self.map(t)).collect();
        self.replace(l, layer.name.clone(), layer.kind.clone(), inputs)
    }

    /// Adds a layer in place of old layer `l`, whose outputs it takes over.
    pub fn replace(
        &mut self,
        l: usize,
        name: String,
        kind: LayerKind,
        inputs: Vec<TensorRef>,
    ) -> Result<usize> {
        let idx = self.new.add_layer(name, kind, inputs)?;
        for s in 0..self.old.layers[l].outputs.len() {
            self.map
                .insert(TensorRef::Layer(l, s), TensorRef::Layer(idx, s));
        }
        Ok(idx)
    }

    /// Adds a layer that replaces nothing of the old network.
    pub fn add(&mut self, name: String, kind: LayerKind, inputs: Vec<TensorRef>) -> Result<usize> {
        self.new.add_layer(name, kind, inputs)
    }

    /// Maps the outputs and returns the new network. An output that became a
    /// network input, or that another output already uses, gets an Identity
    /// layer of its own, since each output must be a distinct layer output.
    pub fn finish(mut self) -> Result<Network> {
        let mut seen = HashSet::new();
        for o in &self.old.outputs {
            let mut t = self.map(o.tensor);
            if matches!(t, TensorRef::Input(_)) || !seen.insert(t) {
                let idx = self.new.add_layer(
                    format!("{}/output", o.name),
                    LayerKind::Identity,
                    vec![t],
                )?;
                t = TensorRef::Layer(idx, 0);
                seen.insert(t);
            }
            self.new.mark_output(o.name.clone(), t);
        }
        Ok(self.new)
    }
}
