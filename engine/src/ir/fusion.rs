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

/// `t`'s single reader when it is a Sum of `t` and another tensor, with
/// that Sum's own single reader when it is an Activation: the epilogue
/// both fusions below look for, as a [`Residual`] whose `residual` is the
/// other operand (each fusion checks what that operand may be).
fn sum_after(
    net: &Network,
    consumers: &HashMap<TensorRef, Vec<usize>>,
    t: TensorRef,
) -> Option<Residual> {
    let add = only_reader(net, consumers, t)?;
    let a = &net.layers[add];
    let other = match (&a.kind, a.inputs.as_slice()) {
        (
            LayerKind::ElementWise {
                op: ElementWiseOp::Sum,
            },
            [p, q],
        ) if *p == t && *q != t => *q,
        (
            LayerKind::ElementWise {
                op: ElementWiseOp::Sum,
            },
            [p, q],
        ) if *q == t && *p != t => *p,
        _ => return None,
    };
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
    let r = sum_after(net, consumers, TensorRef::Layer(conv, 0))?;
    let other = net.info(r.residual);
    (other.shape == l.outputs[0].shape && other.dtype == l.outputs[0].dtype).then_some(r)
}

/// `act(matmul(a, b) + bias)` with `bias` a constant whose dims are all 1
/// but the last, which is the product's columns (a Linear layer's bias,
/// then GELU or ReLU): the Sum at `add` and the optional Activation, as a
/// [`Residual`] whose `residual` is the constant bias.
pub fn bias_of(
    net: &Network,
    consumers: &HashMap<TensorRef, Vec<usize>>,
    mm: usize,
) -> Option<Residual> {
    let l = &net.layers[mm];
    if !matches!(l.kind, LayerKind::MatrixMultiply { .. }) {
        return None;
    }
    let r = sum_after(net, consumers, TensorRef::Layer(mm, 0))?;
    let TensorRef::Layer(c, 0) = r.residual else {
        return None;
    };
    if !matches!(net.layers[c].kind, LayerKind::Constant { .. }) {
        return None;
    }
    let out = &l.outputs[0];
    let bias = net.info(r.residual);
    let cols = out.shape.last()?.known()?;
    let (last, rest) = bias.shape.split_last()?;
    let fits = bias.dtype == out.dtype
        && net.layers[r.add].outputs[0].shape == out.shape
        && last.known() == Some(cols)
        && rest.iter().all(|d| d.known() == Some(1));
    fits.then_some(r)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::MatrixOp;
    use crate::shape::Dim;
    use crate::{DataType, Tensor};

    /// A Linear (product, bias over the columns, ReLU) is found; a bias of
    /// the product's full dims, or a product read twice, is not.
    #[test]
    fn a_linear_bias_over_the_columns_fuses() {
        let build = |bias_dims: &[usize], read_twice: bool| {
            let mut net = Network::new("linear");
            let x = net.add_input("x", DataType::F32, [1, 4, 8].map(Dim::Known).to_vec(), None);
            let w = net.add_weights(Tensor::zeros(DataType::F32, &[1, 8, 6]));
            let w = net
                .add("w", LayerKind::Constant { weights: w }, vec![])
                .unwrap();
            let mm = net
                .add(
                    "mm",
                    LayerKind::MatrixMultiply {
                        op0: MatrixOp::None,
                        op1: MatrixOp::None,
                    },
                    vec![x, w],
                )
                .unwrap();
            let b = net.add_weights(Tensor::zeros(DataType::F32, bias_dims));
            let b = net
                .add("b", LayerKind::Constant { weights: b }, vec![])
                .unwrap();
            let sum = ElementWiseOp::Sum;
            let y = net
                .add("add", LayerKind::ElementWise { op: sum }, vec![b, mm])
                .unwrap();
            let relu = LayerKind::Activation {
                activation: Activation::Relu,
            };
            let z = net.add("relu", relu, vec![y]).unwrap();
            net.mark_output("z", z);
            if read_twice {
                net.mark_output("mm", mm);
            }
            let consumers = net.consumers();
            bias_of(&net, &consumers, 1)
        };
        let r = build(&[1, 1, 6], false).expect("fused");
        assert_eq!((r.add, r.residual), (3, TensorRef::Layer(2, 0)));
        assert_eq!(r.act, Some((4, Activation::Relu)));
        assert!(build(&[1, 4, 6], false).is_none());
        assert!(build(&[1, 1, 6], true).is_none());
    }
}
