//! Dead layer removal: keeps only layers some network output depends on.

use super::rewrite::Rewriter;
use jetrt_engine::ir::{Network, TensorRef};
use jetrt_engine::Result;

pub fn remove_dead_layers(net: &Network) -> Result<Network> {
    let mut live = vec![false; net.layers.len()];
    for o in &net.outputs {
        if let TensorRef::Layer(l, _) = o.tensor {
            live[l] = true;
        }
    }
    for l in (0..net.layers.len()).rev() {
        if live[l] {
            for t in &net.layers[l].inputs {
                if let TensorRef::Layer(j, _) = t {
                    live[*j] = true;
                }
            }
        }
    }
    let mut rw = Rewriter::new(net);
    for (l, &alive) in live.iter().enumerate() {
        if alive {
            rw.copy(l)?;
        }
    }
    let mut out = rw.finish()?;
    out.compact_weights();
    Ok(out)
}
