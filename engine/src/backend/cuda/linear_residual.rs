//! A residual addition taken into the matrix product before it.
//!
//! ConvNeXt's blocks end `x + permute(linear(y), [0, 3, 1, 2])`: the
//! Linear works on `[N, H, W, C]` rows and the permute brings its result
//! back to channels-first dims for the addition. Where `x` is stored
//! channels-last and the permute is a view (`Role::FromLast`), the
//! product's rows are already the addition's bytes, so the product's
//! epilogue kernel adds `x` with the bias and writes the sum: the
//! addition's kernel (two reads and a write of the block's activations)
//! is gone. Found after the layouts and views, which
//! decide whether the bytes agree.

use super::layout::{self, Role};
use crate::ir::fusion::only_reader;
use crate::ir::{ElementWiseOp, LayerKind, Network, TensorRef};
use std::collections::HashMap;

/// The layers after a fused Linear's bias (the step at `at`) that its
/// product takes over.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LinearResidual {
    /// The permute back to channels-first (a view of the product).
    pub shuffle: usize,
    /// The addition, whose output the product now writes.
    pub sum: usize,
    /// The addition's other operand, read by the product.
    pub residual: TensorRef,
}

/// What the search reads of the plan being built.
pub struct Plan<'a> {
    pub net: &'a Network,
    pub consumers: &'a HashMap<TensorRef, Vec<usize>>,
    pub stepped: &'a [bool],
    pub roles: &'a [Role],
    pub layouts: &'a layout::Layouts,
    pub views: &'a HashMap<TensorRef, TensorRef>,
}

/// The residual the Linear step at `at` (its bias Sum, no activation
/// after) can add, if its output is read only by a view permute read only
/// by a same-dims addition of a channels-last tensor computed before `at`.
pub fn find(p: &Plan<'_>, at: usize) -> Option<LinearResidual> {
    let net = p.net;
    let out = TensorRef::Layer(at, 0);
    let shuffle = only_reader(net, p.consumers, out)?;
    let viewed = TensorRef::Layer(shuffle, 0);
    if p.roles[shuffle] != Role::FromLast || p.views.get(&viewed) != Some(&out) {
        return None;
    }
    let sum = only_reader(net, p.consumers, viewed)?;
    let l = &net.layers[sum];
    let residual = match (&l.kind, l.inputs.as_slice()) {
        (
            LayerKind::ElementWise {
                op: ElementWiseOp::Sum,
            },
            [a, b],
        ) if (*a == viewed) != (*b == viewed) => {
            if *a == viewed {
                *b
            } else {
                *a
            }
        }
        _ => return None,
    };
    let (r, v) = (net.info(residual), net.info(viewed));
    let before = match residual {
        TensorRef::Input(_) => true,
        TensorRef::Layer(j, _) => j < at && p.stepped[j],
    };
    let fits = p.stepped[sum]
        && before
        && r.shape == v.shape
        && r.dtype == v.dtype
        && p.layouts.is_nhwc(residual)
        && p.layouts.is_nhwc(TensorRef::Layer(sum, 0));
    fits.then_some(LinearResidual {
        shuffle,
        sum,
        residual,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::{Activation, MatrixOp, ShuffleParams};
    use crate::shape::Dim;
    use crate::{DataType, Tensor};
    use std::collections::HashSet;

    /// `relu(x)` stored channels-last, permuted to `[N, H, W, C]`, a Linear
    /// (layers 3 and 5), permuted back (6) and added to `relu(x)` (7).
    fn block(read_back_twice: bool) -> Network {
        let mut net = Network::new("block");
        let x = net.add_input(
            "x",
            DataType::F32,
            [1, 8, 4, 4].map(Dim::Known).to_vec(),
            None,
        );
        let relu = LayerKind::Activation {
            activation: Activation::Relu,
        };
        let r = net.add("r", relu.clone(), vec![x]).unwrap();
        let permute = |perm: [usize; 4]| {
            LayerKind::Shuffle(ShuffleParams {
                first_transpose: Some(perm.to_vec()),
                reshape: None,
                second_transpose: None,
                zero_is_placeholder: false,
            })
        };
        let t = net.add("to_last", permute([0, 2, 3, 1]), vec![r]).unwrap();
        let w = net.add_weights(Tensor::zeros(DataType::F32, &[1, 1, 8, 8]));
        let w = net
            .add("w", LayerKind::Constant { weights: w }, vec![])
            .unwrap();
        let mm = LayerKind::MatrixMultiply {
            op0: MatrixOp::None,
            op1: MatrixOp::None,
        };
        let h = net.add("fc", mm, vec![t, w]).unwrap();
        let b = net.add_weights(Tensor::zeros(DataType::F32, &[1, 1, 1, 8]));
        let b = net
            .add("b", LayerKind::Constant { weights: b }, vec![])
            .unwrap();
        let sum = LayerKind::ElementWise {
            op: ElementWiseOp::Sum,
        };
        let h = net.add("bias", sum.clone(), vec![h, b]).unwrap();
        let back = net.add("back", permute([0, 3, 1, 2]), vec![h]).unwrap();
        let y = net.add("residual", sum, vec![r, back]).unwrap();
        let z = net.add("out", relu, vec![y]).unwrap();
        net.mark_output("z", z);
        if read_back_twice {
            net.mark_output("back", back);
        }
        net
    }

    fn find_in(net: &Network, residual_nhwc: bool, back_role: Role) -> Option<LinearResidual> {
        let consumers = net.consumers();
        let stepped: Vec<bool> = net
            .layers
            .iter()
            .map(|l| !matches!(l.kind, LayerKind::Constant { .. }))
            .collect();
        let mut roles = vec![Role::Either; net.layers.len()];
        roles[1] = Role::ToLast;
        roles[6] = back_role;
        let l = |i| TensorRef::Layer(i, 0);
        let mut tensors: HashSet<TensorRef> = [l(1), l(3), l(5), l(6), l(7)].into();
        if residual_nhwc {
            tensors.insert(l(0));
        }
        let layouts = layout::Layouts {
            tensors,
            steps: HashSet::new(),
        };
        let views: HashMap<TensorRef, TensorRef> = [(l(1), l(0)), (l(6), l(5))].into();
        let plan = Plan {
            net,
            consumers: &consumers,
            stepped: &stepped,
            roles: &roles,
            layouts: &layouts,
            views: &views,
        };
        find(&plan, 5)
    }

    /// The block's addition is taken into the Linear; not when the
    /// residual is channels-first, the permute back is not a view, or its
    /// result has another reader.
    #[test]
    fn a_residual_after_the_permute_back_joins_the_linear() {
        let net = block(false);
        assert_eq!(
            find_in(&net, true, Role::FromLast),
            Some(LinearResidual {
                shuffle: 6,
                sum: 7,
                residual: TensorRef::Layer(0, 0),
            })
        );
        assert_eq!(find_in(&net, false, Role::FromLast), None);
        assert_eq!(find_in(&net, true, Role::Fixed), None);
        assert_eq!(find_in(&block(true), true, Role::FromLast), None);
    }
}
