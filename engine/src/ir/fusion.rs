//! Layer patterns a backend may run as one step, found once on the IR so
//! that every backend fuses the same way: a convolution with the residual
//! addition and activation after it (ResNet's blocks). Only where the
//! intermediate results have no other reader, so nothing else sees the
//! difference.

use super::{Activation, ElementWiseOp, LayerKind, Network, TensorRef};
use std::collections::HashMap;

/// `act(conv(x) + residual)`: the Sum at `add` of the convolution's output
/// and `residual` (same dims, no broadcast), then optionally the
/// Activation at `act`.
#[derive(Clone, Debug, PartialEq)]
pub struct Residual {
    pub add: usize,
    pub residual: TensorRef,
    pub act: Option<(usize, Activation)>,
}

impl Residual {
    /// The layer whose output the fused step produces.
    pub fn last(&self) -> usize {
        self.act.map_or(self.add, |(a, _)| a)
    }
}

/// The single layer reading `t`, when `t` is not a network output.
pub fn only_reader(
    net: &Network,
    consumers: &HashMap<TensorRef, Vec<usize>>,
    t: TensorRef,
) -> Option<usize> {
    match consumers.get(&t).map(Vec::as_slice) {
        Some([c]) if !net.is_output(t) => Some(*c),
        _ => None,
    }
}

/// The residual epilogue of convolution `conv`, if it has one.
pub fn residual_of(
    net: &Network,
    consumers: &HashMap<TensorRef, Vec<usize>>,
    conv: usize,
) -> Option<Residual> {
    let l = &net.layers[conv];
    let LayerKind::Convolution(p) = &l.kind else {
        return None;
    };
    if p.activation.is_some() {
        return None;
    }
    let x = TensorRef::Layer(conv, 0);
    let add = only_reader(net, consumers, x)?;
    let a = &net.layers[add];
    let other = match (&a.kind, a.inputs.as_slice()) {
        (
            LayerKind::ElementWise {
                op: ElementWiseOp::Sum,
            },
            [p, q],
        ) if *p == x && *q != x => *q,
        (
            LayerKind::ElementWise {
                op: ElementWiseOp::Sum,
            },
            [p, q],
        ) if *q == x && *p != x => *p,
        _ => return None,
    };
    if net.info(other).shape != l.outputs[0].shape || net.info(other).dtype != l.outputs[0].dtype {
        return None;
    }
    let sum = TensorRef::Layer(add, 0);
    let act = only_reader(net, consumers, sum).and_then(|r| match net.layers[r].kind {
        LayerKind::Activation { activation } => Some((r, activation)),
        _ => None,
    });
    Some(Residual {
        add,
        residual: other,
        act,
    })
}
