//! Scale folding: a per-channel Scale (a BatchNormalization) or a
//! per-channel constant multiply/add right after a convolution is folded
//! into the convolution's weights and bias.

use super::rewrite::Rewriter;
use jetrt_engine::ir::{ConvParams, ElementWiseOp, LayerKind, Network, ScaleMode, TensorRef};
use jetrt_engine::{Result, Tensor};
use std::sync::Arc;

/// Per output channel `y = x * scale + shift`.
struct Affine {
    scale: Vec<f32>,
    shift: Vec<f32>,
}

/// The per-channel affine map a layer applies to a convolution output of
/// `channels`, if it is one.
fn affine_of(
    net: &Network,
    kind: &LayerKind,
    inputs: &[TensorRef],
    conv_out: TensorRef,
    channels: usize,
) -> Option<Affine> {
    let f32s = |id| net.weights(id).to_f32().as_f32().map(<[f32]>::to_vec);
    match kind {
        LayerKind::Scale(p)
            if p.mode == ScaleMode::Channel
                && p.channel_axis == 1
                && p.power.is_none()
                && p.activation.is_none() =>
        {
            Some(Affine {
                scale: p.scale.map_or(Some(vec![1.0; channels]), f32s)?,
                shift: p.shift.map_or(Some(vec![0.0; channels]), f32s)?,
            })
        }
        LayerKind::ElementWise {
            op: op @ (ElementWiseOp::Prod | ElementWiseOp::Sum),
        } => {
            // conv_out op C, or C op conv_out, with C holding one value per channel.
            let other = match inputs {
                [a, b] if *a == conv_out => *b,
                [a, b] if *b == conv_out => *a,
                _ => return None,
            };
            let c = net.constant(other)?;
            let s = c.shape();
            let per_channel = s.len() >= 2
                && s[1] == channels
                && s.iter().enumerate().all(|(i, &d)| i == 1 || d == 1)
                && s.len() == net.info(conv_out).rank();
            if !per_channel || !c.dtype().is_float() {
                return None;
            }
            let v = c.to_f32().as_f32()?.to_vec();
            Some(match op {
                ElementWiseOp::Prod => Affine {
                    scale: v,
                    shift: vec![0.0; channels],
                },
                _ => Affine {
                    scale: vec![1.0; channels],
                    shift: v,
                },
            })
        }
        _ => None,
    }
}

/// New kernel and bias for `p` followed by `a`.
fn fold(net: &mut Network, p: &ConvParams, a: &Affine, deconv: bool) -> Option<ConvParams> {
    let k = net.weights(p.kernel);
    let dtype = k.dtype();
    let shape = k.shape().to_vec();
    let mut w = k.to_f32().as_f32()?.to_vec();
    let per = shape[2..].iter().product::<usize>();
    let cout = p.out_channels;
    if deconv {
        // [Cin, Cout/g, k...]: output channel = group * Cout/g + j.
        let (cin_g, cout_g) = (shape[0] / p.groups, shape[1]);
        for ci in 0..shape[0] {
            let g = ci / cin_g;
            for j in 0..cout_g {
                let s = a.scale[g * cout_g + j];
                w[(ci * cout_g + j) * per..][..per]
                    .iter_mut()
                    .for_each(|v| *v *= s);
            }
        }
    } else {
        let chunk = w.len() / cout;
        for (o, c) in w.chunks_mut(chunk).enumerate() {
            c.iter_mut().for_each(|v| *v *= a.scale[o]);
        }
    }
    let bias: Vec<f32> = match p.bias {
        Some(b) => net.weights(b).to_f32().as_f32()?.to_vec(),
        None => vec![0.0; cout],
    };
    let bias: Vec<f32> = (0..cout)
        .map(|o| bias[o] * a.scale[o] + a.shift[o])
        .collect();
    let kernel = Tensor::from_f32(&shape, w).ok()?;
    let kernel = if dtype == jetrt_engine::DataType::F16 {
        kernel.cast(dtype)
    } else {
        kernel
    };
    let mut np = p.clone();
    np.kernel = net.add_weights(Arc::new(kernel));
    np.bias = Some(net.add_weights(Arc::new(Tensor::from_f32(&[cout], bias).ok()?)));
    Some(np)
}

pub fn fold_scales(net: &Network) -> Result<Network> {
    let consumers = net.consumers();
    let mut rw = Rewriter::new(net);
    // Old conv layer index -> (new index) for convs whose output is still foldable.
    let mut convs = std::collections::HashMap::new();
    for (l, layer) in net.layers.iter().enumerate() {
        if let Some(TensorRef::Layer(src, 0)) =
            layer.inputs.iter().copied().find(|t| convs.contains_key(t))
        {
            let conv_out = TensorRef::Layer(src, 0);
            let single_use =
                consumers.get(&conv_out).map_or(0, Vec::len) == 1 && !net.is_output(conv_out);
            let (new_idx, channels): (usize, usize) = convs[&conv_out];
            if single_use {
                if let Some(a) = affine_of(net, &layer.kind, &layer.inputs, conv_out, channels) {
                    let conv = rw.new.layers[new_idx].clone();
                    let (p, deconv) = match &conv.kind {
                        LayerKind::Convolution(p) => (p.clone(), false),
                        LayerKind::Deconvolution(p) => (p.clone(), true),
                        _ => unreachable!("only convolutions are tracked"),
                    };
                    if p.activation.is_none() {
                        if let Some(np) = fold(&mut rw.new, &p, &a, deconv) {
                            let kind = if deconv {
                                LayerKind::Deconvolution(np)
                            } else {
                                LayerKind::Convolution(np)
                            };
                            // The conv is the last layer that reads its own input: re-add it folded.
                            let idx = rw.add(conv.name.clone(), kind, conv.inputs.clone())?;
                            rw.alias(TensorRef::Layer(l, 0), TensorRef::Layer(idx, 0));
                            convs.insert(TensorRef::Layer(l, 0), (idx, channels));
                            continue;
                        }
                    }
                }
            }
        }
        let idx = rw.copy(l)?;
        if let LayerKind::Convolution(p) | LayerKind::Deconvolution(p) = &layer.kind {
            convs.insert(TensorRef::Layer(l, 0), (idx, p.out_channels));
        }
    }
    rw.finish()
}
