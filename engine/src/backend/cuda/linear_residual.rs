//! A residual addition taken into the matrix product before it.
//!
//! ConvNeXt's blocks end `x + permute(linear(y), [0, 3, 1, 2])`: the
//! Linear works on `[N, H, W, C]` rows and the permute brings its result
//! back to channels-first dims for the addition. Where `x` is stored
//! channels-last and the permute is a view (`Role::FromLast`), the
//! product's rows are already the addition's bytes, so the product can
//! add `x` itself (cuBLASLt's C operand, or our epilogue kernel's
//! residual) and write the sum: the addition's kernel and the pass over
//! the product's result are gone. Found after the layouts and views, which
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
