//! Constant folding: layers whose inputs are all known at build time are
//! computed once, with the IR's reference evaluator, and replaced by
//! Constant layers.

use super::rewrite::Rewriter;
use jetrt_engine::eval::eval_layer;
use jetrt_engine::ir::{LayerKind, Network, TensorRef};
use jetrt_engine::shape::known_dims;
use jetrt_engine::{Result, Tensor};
use std::sync::Arc;

/// A folded result may be this much larger than its inputs (Expand or Tile
/// of a small constant could otherwise bloat the engine file).
const MAX_GROWTH: usize = 16;
const ALWAYS_FOLD: usize = 1 << 16;

pub fn fold_constants(net: &Network) -> Result<Network> {
    let mut rw = Rewriter::new(net);
    for (l, layer) in net.layers.iter().enumerate() {
        let idx = rw.copy(l)?;
        if matches!(layer.kind, LayerKind::Constant { .. }) || layer.outputs.len() != 1 {
            continue;
        }
        let new_layer = &rw.new.layers[idx];
        let value: Option<Tensor> = match &new_layer.kind {
            LayerKind::Shape => known_dims(&rw.new.info(new_layer.inputs[0]).shape)
                .map(|d| Tensor::vec_i64(d.into_iter().map(|d| d as i64).collect())),
            _ => {
                let consts: Option<Vec<Arc<Tensor>>> = new_layer
                    .inputs
                    .iter()
                    .map(|&t| rw.new.constant(t).cloned())
                    .collect();
                match consts {
                    Some(c) if !c.is_empty() => {
                        let in_size: usize = c.iter().map(|t| t.len()).sum();
                        let refs: Vec<&Tensor> = c.iter().map(|t| t.as_ref()).collect();
                        let out = eval_layer(&rw.new, idx, &refs)?.remove(0);
                        (out.len() <= ALWAYS_FOLD.max(MAX_GROWTH * in_size)).then_some(out)
                    }
                    _ => None,
                }
            }
        };
        if let Some(v) = value {
            let name = rw.new.layers[idx].name.clone();
            rw.new.layers.pop();
            let c = rw.new.add_constant(name, v);
            rw.alias(TensorRef::Layer(l, 0), c);
        }
    }
    rw.finish()
}
