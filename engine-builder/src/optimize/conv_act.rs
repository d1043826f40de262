//! Activation epilogue fusion: an activation that alone consumes a
//! convolution's or a Scale's output becomes that layer's epilogue, so a
//! backend applies it in the same pass over the tensor (a Scale is a
//! BatchNorm the scale folding could not fold into a convolution, such as
//! DenseNet's BatchNorm and ReLU before each one).

use super::rewrite::Rewriter;
use jetrt_engine::ir::{ConvParams, LayerKind, Network, ScaleParams, TensorRef};
use jetrt_engine::Result;

pub fn fuse_conv_activation(net: &Network) -> Result<Network> {
    let consumers = net.consumers();
    let mut rw = Rewriter::new(net);
    for (l, layer) in net.layers.iter().enumerate() {
        if let (LayerKind::Activation { activation }, [src @ TensorRef::Layer(c, 0)]) =
            (&layer.kind, layer.inputs.as_slice())
        {
            let single_use = consumers.get(src).map_or(0, Vec::len) == 1 && !net.is_output(*src);
            let prev = &net.layers[*c];
            let activation = Some(*activation);
            let kind = match &prev.kind {
                LayerKind::Convolution(p) if p.activation.is_none() => {
                    Some(LayerKind::Convolution(ConvParams {
                        activation,
                        ..p.clone()
                    }))
                }
                LayerKind::Deconvolution(p) if p.activation.is_none() => {
                    Some(LayerKind::Deconvolution(ConvParams {
                        activation,
                        ..p.clone()
                    }))
                }
                LayerKind::Scale(p) if p.activation.is_none() => {
                    Some(LayerKind::Scale(ScaleParams {
                        activation,
                        ..p.clone()
                    }))
                }
                _ => None,
            };
            if let (true, Some(kind), true) = (single_use, kind, prev.outputs[0].dtype.is_float()) {
                let inputs = prev.inputs.iter().map(|&t| rw.map(t)).collect();
                let idx = rw.add(prev.name.clone(), kind, inputs)?;
                rw.alias(TensorRef::Layer(l, 0), TensorRef::Layer(idx, 0));
                continue;
            }
        }
        rw.copy(l)?;
    }
    rw.finish()
}
