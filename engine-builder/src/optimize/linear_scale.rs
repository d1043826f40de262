//! Linear scale folding: a constant per-column multiply after a Linear
//! (a matrix product by a constant, its bias, and perhaps a transpose in
//! between) is folded into the product's weights and bias. ConvNeXt's
//! layer scale is one per block: `gamma * permute(linear(x))`, with gamma
//! of `[C, 1, 1]` lined up with the Linear's columns by the permute.
//!
//! `(x W + b) * s = x (W s) + b s` for a scale `s` per column of W; the
//! folded network has one element-wise layer fewer a block (and one pass
//! over the activations fewer on every backend).

use super::rewrite::Rewriter;
use jetrt_engine::ir::{ElementWiseOp, LayerKind, MatrixOp, Network, TensorRef};
use jetrt_engine::{Result, Tensor};
use std::collections::HashMap;
use std::sync::Arc;

/// One fold: the product, its bias (the Sum layer), the multiply folded
/// away and what its output becomes, and the scale per column.
struct Fold {
    product: usize,
    bias: Option<usize>,
    multiply: usize,
    becomes: TensorRef,
    scale: Vec<f32>,
}

/// The layer producing `t` when `t` is its only output use: read by one
/// layer and not a network output.
fn sole_producer(
    net: &Network,
    uses: &HashMap<TensorRef, Vec<usize>>,
    t: TensorRef,
) -> Option<usize> {
    match t {
        TensorRef::Layer(l, 0) if uses.get(&t).map_or(0, Vec::len) == 1 && !net.is_output(t) => {
            Some(l)
        }
        _ => None,
    }
}

/// `[x, constant]` or `[constant, x]`: (x, the constant).
fn split_constant(net: &Network, inputs: &[TensorRef]) -> Option<(TensorRef, Arc<Tensor>)> {
    match inputs {
        [a, b] => match (net.constant(*a), net.constant(*b)) {
            (None, Some(c)) => Some((*a, c.clone())),
            (Some(c), None) => Some((*b, c.clone())),
            _ => None,
        },
        _ => None,
    }
}

/// The values of `c` when, right-aligned against `rank` dims, it has one
/// value per column along `axis` (of `n`), or one for all: else None.
fn per_axis(c: &Tensor, rank: usize, axis: usize, n: usize) -> Option<Vec<f32>> {
    let s = c.shape();
    if s.len() > rank || !c.dtype().is_float() {
        return None;
    }
    let pad = rank - s.len();
    let along = |i: usize| if i < pad { 1 } else { s[i - pad] };
    let ok = (0..rank).all(|i| along(i) == 1 || (i == axis && along(i) == n));
    let v = c.to_f32().as_f32()?.to_vec();
    match (ok, v.len()) {
        (true, 1) => Some(vec![v[0]; n]),
        (true, k) if k == n => Some(v),
        _ => None,
    }
}

/// The fold that multiply layer `m` allows, if any.
fn fold_at(net: &Network, uses: &HashMap<TensorRef, Vec<usize>>, m: usize) -> Option<Fold> {
    let layer = &net.layers[m];
    if layer.kind
        != (LayerKind::ElementWise {
            op: ElementWiseOp::Prod,
        })
    {
        return None;
    }
    let (x, gamma) = split_constant(net, &layer.inputs)?;
    let rank = net.info(TensorRef::Layer(m, 0)).rank();
    // Back from the multiply: a transpose, a bias, the product.
    let mut at = sole_producer(net, uses, x)?;
    let mut perm = None;
    if let LayerKind::Shuffle(p) = &net.layers[at].kind {
        if p.reshape.is_some() || p.second_transpose.is_some() || net.layers[at].inputs.len() != 1 {
            return None;
        }
        perm = Some(p.first_transpose.clone()?);
        at = sole_producer(net, uses, net.layers[at].inputs[0])?;
    }
    let mut bias = None;
    if net.layers[at].kind
        == (LayerKind::ElementWise {
            op: ElementWiseOp::Sum,
        })
    {
        let (y, _) = split_constant(net, &net.layers[at].inputs)?;
        bias = Some(at);
        at = sole_producer(net, uses, y)?;
    }
    let LayerKind::MatrixMultiply {
        op0: MatrixOp::None,
        op1: MatrixOp::None,
    } = net.layers[at].kind
    else {
        return None;
    };
    let product = &net.layers[at];
    let w = net.constant(*product.inputs.get(1)?)?;
    let ws = w.shape();
    if net.constant(product.inputs[0]).is_some() || ws.len() < 2 || !w.dtype().is_float() {
        return None;
    }
    let n = ws[ws.len() - 1];
    // The product's columns are its last dim; the transpose moves them.
    let out_rank = net.info(TensorRef::Layer(at, 0)).rank();
    if out_rank != rank {
        return None;
    }
    let axis = match &perm {
        Some(p) => p.iter().position(|&a| a == rank - 1)?,
        None => rank - 1,
    };
    let scale = per_axis(&gamma, rank, axis, n)?;
    if let Some(b) = bias {
        let (_, c) = split_constant(net, &net.layers[b].inputs)?;
        per_axis(&c, rank, rank - 1, n)?;
    }
    Some(Fold {
        product: at,
        bias,
        multiply: m,
        becomes: x,
        scale,
    })
}

/// `c` (one value per column of the last dim, or one for all, as
/// `per_axis` accepts) times `scale` per column, as a new constant layer.
fn scaled(rw: &mut Rewriter<'_>, name: String, c: &Tensor, scale: &[f32]) -> Result<TensorRef> {
    let n = scale.len();
    let mut shape = c.shape().to_vec();
    let v = c.to_f32();
    let v = v.as_f32().unwrap_or(&[]);
    let out: Vec<f32> = if v.len() == 1 {
        // One value for all columns becomes one a column.
        match shape.last_mut() {
            Some(d) => *d = n,
            None => shape.push(n),
        }
        scale.iter().map(|s| v[0] * s).collect()
    } else {
        v.iter()
            .enumerate()
            .map(|(i, a)| a * scale[i % n])
            .collect()
    };
    let t = Tensor::from_f32(&shape, out)?.cast(c.dtype());
    let id = rw.new.add_weights(Arc::new(t));
    let idx = rw.add(name, LayerKind::Constant { weights: id }, vec![])?;
    Ok(TensorRef::Layer(idx, 0))
}

pub fn fold_linear_scales(net: &Network) -> Result<Network> {
    let uses = net.consumers();
    let folds: Vec<Fold> = (0..net.layers.len())
        .filter_map(|m| fold_at(net, &uses, m))
        .collect();
    let product: HashMap<usize, &Fold> = folds.iter().map(|f| (f.product, f)).collect();
    let bias: HashMap<usize, &Fold> = folds
        .iter()
        .filter_map(|f| f.bias.map(|b| (b, f)))
        .collect();
    let multiply: HashMap<usize, &Fold> = folds.iter().map(|f| (f.multiply, f)).collect();
    let mut rw = Rewriter::new(net);
    for (l, layer) in net.layers.iter().enumerate() {
        if let Some(f) = multiply.get(&l) {
            let t = rw.map(f.becomes);
            rw.alias(TensorRef::Layer(l, 0), t);
            continue;
        }
        let fold = product.get(&l).or_else(|| bias.get(&l));
        let (Some(f), Some((x, c))) = (fold, split_constant(net, &layer.inputs)) else {
            rw.copy(l)?;
            continue;
        };
        let c = scaled(&mut rw, format!("{}/scaled", layer.name), &c, &f.scale)?;
        // The constant's place among the inputs is kept.
        let inputs = layer
            .inputs
            .iter()
            .map(|&t| if t == x { rw.map(x) } else { c })
            .collect();
        rw.replace(l, layer.name.clone(), layer.kind.clone(), inputs)?;
    }
    rw.finish()
}
