//! GELU recognition: below opset 20, PyTorch exports `nn.GELU()` as
//! `x * 0.5 * (1 + erf(x / sqrt(2)))`, five layers (Div, Erf, Add, Mul,
//! Mul) that read and write the whole tensor each. They become one
//! Activation (GeluErf): one pass over the data on every backend (ConvNeXt
//! has one per block).

use super::rewrite::Rewriter;
use jetrt_engine::ir::{Activation, ElementWiseOp, LayerKind, Network, TensorRef, UnaryOp};
use jetrt_engine::Result;
use std::collections::HashMap;

pub fn fuse_gelu(net: &Network) -> Result<Network> {
    let consumers = net.consumers();
    let found: HashMap<usize, TensorRef> = (0..net.layers.len())
        .filter_map(|l| gelu_at(net, &consumers, l).map(|x| (l, x)))
        .collect();
    if found.is_empty() {
        return Ok(net.clone());
    }
    let mut rw = Rewriter::new(net);
    for (l, layer) in net.layers.iter().enumerate() {
        match found.get(&l) {
            Some(&x) => {
                let kind = LayerKind::Activation {
                    activation: Activation::GeluErf,
                };
                let input = rw.map(x);
                rw.replace(l, layer.name.clone(), kind, vec![input])?;
            }
            // The pattern's inner layers are copied and left for dead
            // layer removal.
            None => {
                rw.copy(l)?;
            }
        }
    }
    rw.finish()
}

/// The one-element constant `t` holds, if it is one.
fn scalar(net: &Network, t: TensorRef) -> Option<f64> {
    let c = net.constant(t)?;
    (c.len() == 1).then(|| c.to_f64_vec()[0])
}

fn near(v: Option<f64>, want: f64) -> bool {
    v.is_some_and(|v| (v - want).abs() <= 1e-6 * want.abs().max(1.0))
}

/// The layer producing `t` when `t` is read by one layer only and is not
/// a network output: an intermediate the pattern may absorb.
fn inner<'a>(
    net: &'a Network,
    consumers: &HashMap<TensorRef, Vec<usize>>,
    t: TensorRef,
) -> Option<(usize, &'a jetrt_engine::ir::Layer)> {
    let TensorRef::Layer(i, 0) = t else {
        return None;
    };
    let single = consumers.get(&t).map_or(0, Vec::len) == 1 && !net.is_output(t);
    single.then(|| (i, &net.layers[i]))
}

fn is_op(kind: &LayerKind, want: ElementWiseOp) -> bool {
    matches!(kind, LayerKind::ElementWise { op } if *op == want)
}

/// The x of a GELU whose last product is layer `l`.
fn gelu_at(
    net: &Network,
    consumers: &HashMap<TensorRef, Vec<usize>>,
    l: usize,
) -> Option<TensorRef> {
    let last = &net.layers[l];
    if !is_op(&last.kind, ElementWiseOp::Prod) || !last.outputs[0].dtype.is_float() {
        return None;
    }
    // The factors of the product, one level of inner products expanded:
    // x * 0.5 * t in either grouping and order.
    let mut factors = Vec::new();
    for &t in &last.inputs {
        match inner(net, consumers, t) {
            Some((_, p)) if is_op(&p.kind, ElementWiseOp::Prod) => factors.extend(&p.inputs),
            _ => factors.push(t),
        }
    }
    if factors.len() != 3 {
        return None;
    }
    let half = factors.iter().position(|&t| near(scalar(net, t), 0.5))?;
    factors.remove(half);
    // t = 1 + erf(x / sqrt(2)) (or x * 1/sqrt(2)); the other factor is x.
    for (k, &t) in factors.iter().enumerate() {
        let x = factors[1 - k];
        let Some((_, add)) = inner(net, consumers, t) else {
            continue;
        };
        if !is_op(&add.kind, ElementWiseOp::Sum) {
            continue;
        }
        let [p, q] = add.inputs[..] else { continue };
        let erf_in = if near(scalar(net, q), 1.0) {
            p
        } else if near(scalar(net, p), 1.0) {
            q
        } else {
            continue;
        };
        let Some((_, erf)) = inner(net, consumers, erf_in) else {
            continue;
        };
        if !matches!(erf.kind, LayerKind::Unary { op: UnaryOp::Erf }) {
            continue;
        }
        let Some((_, scale)) = inner(net, consumers, erf.inputs[0]) else {
            continue;
        };
        let [a, b] = scale.inputs[..] else { continue };
        let scaled = (is_op(&scale.kind, ElementWiseOp::Div)
            && a == x
            && near(scalar(net, b), std::f64::consts::SQRT_2))
            || (is_op(&scale.kind, ElementWiseOp::Prod)
                && ((a == x && near(scalar(net, b), std::f64::consts::FRAC_1_SQRT_2))
                    || (b == x && near(scalar(net, a), std::f64::consts::FRAC_1_SQRT_2))));
        // The activation keeps x's dims: the constants broadcast into it.
        if scaled && net.info(x).shape == last.outputs[0].shape {
            return Some(x);
        }
    }
    None
}
