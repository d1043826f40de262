//! Activation epilogue fusion: an activation that alone consumes a
//! convolution's or a Scale's output becomes that layer's epilogue, so a
//! backend applies it in the same pass over the tensor (a Scale is a
//! BatchNorm the scale folding could not fold into a convolution, such as
//! DenseNet's BatchNorm and ReLU before each one).

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
            let prev = &net.layers[*c];
            let kind = match &prev.kind {
                LayerKind::Convolution(p) if p.activation.is_none() => {
                    let mut np = p.clone();
                    np.activation = Some(*activation);
                    Some(LayerKind::Convolution(np))
                }
                LayerKind::Deconvolution(p) if p.activation.is_none() => {
                    let mut np = p.clone();
                    np.activation = Some(*activation);
                    Some(LayerKind::Deconvolution(np))
                }
                LayerKind::Scale(p) if p.activation.is_none() => {
                    let mut np = p.clone();
                    np.activation = Some(*activation);
                    Some(LayerKind::Scale(np))
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
