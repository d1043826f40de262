//! Convolution + Activation fusion: an activation that alone consumes a
//! convolution's output becomes the convolution's epilogue.

use super::rewrite::Rewriter;
use jetrt_engine::ir::{LayerKind, Network, TensorRef};
use jetrt_engine::Result;

pub fn fuse_conv_activation(net: &Network) -> Result<Network> {
    let consumers = net.consumers();
    let mut rw = Rewriter::new(net);
    for (l, layer) in net.layers.iter().enumerate() {
        if let (LayerKind::Activation { activation }, [src @ TensorRef::Layer(c, 0)]) =
            (&layer.kind, layer.inputs.as_slice())
        {
            let single_use = consumers.get(src).map_or(0, Vec::len) == 1 && !net.is_output(*src);
            let conv = &net.layers[*c];
            let params = match &conv.kind {
                LayerKind::Convolution(p) | LayerKind::Deconvolution(p)
                    if p.activation.is_none() =>
                {
                    Some(p)
                }
                _ => None,
            };
            if let (true, Some(p), true) = (single_use, params, conv.outputs[0].dtype.is_float()) {
                let mut np = p.clone();
                np.activation = Some(*activation);
                let kind = match conv.kind {
                    LayerKind::Convolution(_) => LayerKind::Convolution(np),
                    _ => LayerKind::Deconvolution(np),
                };
                let inputs = conv.inputs.iter().map(|&t| rw.map(t)).collect();
                let idx = rw.add(conv.name.clone(), kind, inputs)?;
                rw.alias(TensorRef::Layer(l, 0), TensorRef::Layer(idx, 0));
                continue;
            }
        }
        rw.copy(l)?;
    }
    rw.finish()
}
