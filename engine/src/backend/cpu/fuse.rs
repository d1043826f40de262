//! Which layers the cpu plan runs as one: a convolution with the residual
//! addition and activation after it, or with HardSwish (HardSigmoid + Mul)
//! after it, HardSwish alone, and a product by constant weights (a Linear
//! layer) with its weights, its bias over the columns and its activation.
//! Only where the intermediate results have no other reader, so nothing
//! else sees the difference.

use super::act::Act;
use crate::ir::{fusion, Activation, ElementWiseOp, LayerKind, MatrixOp, Network, TensorRef};
use std::collections::HashMap;

pub enum Fused {
    /// Convolution `conv` with an epilogue: `act(conv + residual)`.
    Conv {
        conv: usize,
        residual: Option<TensorRef>,
        act: Act,
    },
    /// HardSwish of `x`.
    HardSwish { x: TensorRef, act: Act },
    /// Product `mm` of its input 0 by the constant layer `weights`, then the
    /// constant layer `bias` over the columns, then `act`.
    Linear {
        mm: usize,
        weights: usize,
        bias: Option<usize>,
        act: Act,
    },
}

/// A fused step: it runs at layer `at` (producing that layer's output) and
/// replaces the layers in `skipped`.
pub struct Fusion {
    pub at: usize,
    pub skipped: Vec<usize>,
    pub what: Fused,
}

struct Graph<'a> {
    net: &'a Network,
    consumers: HashMap<TensorRef, Vec<usize>>,
}

impl Graph<'_> {
    /// The single layer reading `t`, when `t` is not a network output.
    fn only_reader(&self, t: TensorRef) -> Option<usize> {
        fusion::only_reader(self.net, &self.consumers, t)
    }

    /// `x · HardSigmoid(x)`: the HardSigmoid reading `x` whose only reader
    /// is a Mul of `x` by it. Returns (HardSigmoid, Mul, alpha, beta).
    fn hard_swish_of(&self, x: TensorRef) -> Option<(usize, usize, f32, f32)> {
        let readers = self.consumers.get(&x)?;
        for &h in readers {
            let LayerKind::Activation {
                activation: Activation::HardSigmoid { alpha, beta },
            } = self.net.layers[h].kind
            else {
                continue;
            };
            let Some(m) = self.only_reader(TensorRef::Layer(h, 0)) else {
                continue;
            };
            let ml = &self.net.layers[m];
            let hs = TensorRef::Layer(h, 0);
            let is_mul = matches!(
                ml.kind,
                LayerKind::ElementWise {
                    op: ElementWiseOp::Prod
                }
            ) && (ml.inputs == [x, hs] || ml.inputs == [hs, x]);
            if is_mul {
                return Some((h, m, alpha, beta));
            }
        }
        None
    }

    /// The Linear fusion at product `mm`: its input 1 a constant matrix
    /// (any leading dims 1, as converters broadcast it to the product's
    /// rank) read by nothing else, input 0 of two dims or more; with the
    /// bias and activation after it when `fusion::bias_of` finds them.
    fn linear(&self, mm: usize) -> Option<Fusion> {
        let l = &self.net.layers[mm];
        let TensorRef::Layer(w, 0) = *l.inputs.get(1)? else {
            return None;
        };
        let constant = |c: usize| matches!(self.net.layers[c].kind, LayerKind::Constant { .. });
        let ws = &self.net.info(l.inputs[1]).shape;
        let matrix = ws.len() >= 2 && ws[..ws.len() - 2].iter().all(|d| d.known() == Some(1));
        if !constant(w) || !matrix || self.net.info(l.inputs[0]).shape.len() < 2 {
            return None;
        }
        if self.only_reader(l.inputs[1]) != Some(mm) {
            return None;
        }
        if let Some(r) = fusion::bias_of(self.net, &self.consumers, mm) {
            let TensorRef::Layer(b, 0) = r.residual else {
                return None;
            };
            if self.only_reader(r.residual) == Some(r.add) {
                let (skipped, act) = match r.act {
                    Some((_, a)) => (vec![mm, r.add, w, b], Act::Ir(a)),
                    None => (vec![mm, w, b], Act::Identity),
                };
                return Some(Fusion {
                    at: r.last(),
                    skipped,
                    what: Fused::Linear {
                        mm,
                        weights: w,
                        bias: Some(b),
                        act,
                    },
                });
            }
        }
        Some(Fusion {
            at: mm,
            skipped: vec![w],
            what: Fused::Linear {
                mm,
                weights: w,
                bias: None,
                act: Act::Identity,
            },
        })
    }
}

/// The fusions for a network, none overlapping.
pub fn plan(net: &Network) -> Vec<Fusion> {
    let g = Graph {
        net,
        consumers: net.consumers(),
    };
    let mut taken = vec![false; net.layers.len()];
    let mut out = Vec::new();
    let mut claim = |f: Fusion, taken: &mut Vec<bool>| {
        let mut all = f.skipped.clone();
        all.push(f.at);
        if all.iter().any(|&l| taken[l]) {
            return false;
        }
        for l in all {
            taken[l] = true;
        }
        out.push(f);
        true
    };
    for (i, l) in net.layers.iter().enumerate() {
        let x = TensorRef::Layer(i, 0);
        match &l.kind {
            LayerKind::Convolution(p)
                if p.activation.is_none() && l.outputs[0].dtype == crate::DataType::F32 =>
            {
                // conv -> Add(other) [-> Activation]
                if let Some(r) = fusion::residual_of(net, &g.consumers, i) {
                    let (skipped, act) = match r.act {
                        Some((_, a)) => (vec![i, r.add], Act::Ir(a)),
                        None => (vec![i], Act::Identity),
                    };
                    let f = Fusion {
                        at: r.last(),
                        skipped,
                        what: Fused::Conv {
                            conv: i,
                            residual: Some(r.residual),
                            act,
                        },
                    };
                    if claim(f, &mut taken) {
                        continue;
                    }
                }
                // conv -> HardSwish
                if let Some((h, m, alpha, beta)) = g.hard_swish_of(x) {
                    let readers = g.consumers.get(&x).map_or(0, Vec::len);
                    if readers == 2 && !net.is_output(x) {
                        let f = Fusion {
                            at: m,
                            skipped: vec![i, h],
                            what: Fused::Conv {
                                conv: i,
                                residual: None,
                                act: Act::HardSwish { alpha, beta },
                            },
                        };
                        claim(f, &mut taken);
                    }
                }
            }
            LayerKind::MatrixMultiply { op0, op1 }
                if *op0 == MatrixOp::None
                    && *op1 != MatrixOp::Vector
                    && l.outputs[0].dtype == crate::DataType::F32 =>
            {
                if let Some(f) = g.linear(i) {
                    claim(f, &mut taken);
                }
            }
            LayerKind::Activation {
                activation: Activation::HardSigmoid { .. },
            } => {
                // A HardSwish of a tensor that is not a fusable convolution.
                let x = l.inputs[0];
                if l.outputs[0].dtype != crate::DataType::F32 {
                    continue;
                }
                if let Some((h, m, alpha, beta)) = g.hard_swish_of(x) {
                    if h == i {
                        let f = Fusion {
                            at: m,
                            skipped: vec![h],
                            what: Fused::HardSwish {
                                x,
                                act: Act::HardSwish { alpha, beta },
                            },
                        };
                        claim(f, &mut taken);
                    }
                }
            }
            _ => {}
        }
    }
    out
}
