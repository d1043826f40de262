//! Shuffle elimination: drops Identity layers, same-type Casts and Shuffles
//! that change nothing, and merges chains of Shuffles into one.

use super::rewrite::Rewriter;
use jetrt_engine::ir::{LayerKind, Network, ShuffleParams, TensorRef};
use jetrt_engine::shape::known_dims;
use jetrt_engine::Result;

fn is_identity_perm(p: &Option<Vec<usize>>) -> bool {
    p.as_ref()
        .is_none_or(|p| p.iter().enumerate().all(|(i, &v)| i == v))
}

/// A static reshape-only Shuffle, or a transpose-only one: what can merge.
enum Simple {
    Reshape,
    Transpose(Vec<usize>),
}

fn simple(p: &ShuffleParams, inputs: usize) -> Option<Simple> {
    if inputs != 1 {
        return None;
    }
    match (&p.first_transpose, &p.reshape, &p.second_transpose) {
        (ft, Some(_), st) if is_identity_perm(ft) && is_identity_perm(st) => Some(Simple::Reshape),
        (Some(ft), None, st) if is_identity_perm(st) => Some(Simple::Transpose(ft.clone())),
        (None, None, Some(st)) => Some(Simple::Transpose(st.clone())),
        _ => None,
    }
}

pub fn eliminate_shuffles(net: &Network) -> Result<Network> {
    let mut rw = Rewriter::new(net);
    for (l, layer) in net.layers.iter().enumerate() {
        let out = TensorRef::Layer(l, 0);
        let input = layer.inputs.first().map(|&t| rw.map(t));
        match &layer.kind {
            LayerKind::Identity => {
                rw.alias(out, input.expect("identity has an input"));
                continue;
            }
            LayerKind::Cast { to }
                if rw.new.info(input.expect("cast has an input")).dtype == *to =>
            {
                rw.alias(out, input.expect("cast has an input"));
                continue;
            }
            LayerKind::Shuffle(p) => {
                let x = input.expect("shuffle has an input");
                let in_info = rw.new.info(x).clone();
                // Static output dims equal to the input's, with no transposes: a no-op.
                let out_dims = known_dims(&layer.outputs[0].shape);
                if is_identity_perm(&p.first_transpose)
                    && is_identity_perm(&p.second_transpose)
                    && out_dims.is_some()
                    && out_dims == known_dims(&in_info.shape)
                {
                    rw.alias(out, x);
                    continue;
                }
                // Merge with a producing Shuffle: read its input directly. The
                // producer stays only if something else still reads it.
                if let (TensorRef::Layer(pl, 0), Some(me)) = (x, simple(p, layer.inputs.len())) {
                    let prev = rw.new.layers[pl].clone();
                    if let LayerKind::Shuffle(pp) = &prev.kind {
                        let merged = match (simple(pp, prev.inputs.len()), me) {
                            (Some(Simple::Reshape), Simple::Reshape) => {
                                out_dims.as_ref().map(|d| ShuffleParams {
                                    first_transpose: None,
                                    reshape: Some(d.iter().map(|&v| v as i64).collect()),
                                    second_transpose: None,
                                    zero_is_placeholder: false,
                                })
                            }
                            (Some(Simple::Transpose(a)), Simple::Transpose(b)) => {
                                Some(ShuffleParams {
                                    first_transpose: Some(b.iter().map(|&i| a[i]).collect()),
                                    reshape: None,
                                    second_transpose: None,
                                    zero_is_placeholder: true,
                                })
                            }
                            _ => None,
                        };
                        if let Some(mp) = merged {
                            let src = prev.inputs[0];
                            // Transposes that cancel, or reshapes back to the
                            // source dims, leave nothing to do.
                            let src_dims = known_dims(&rw.new.info(src).shape);
                            let cancels = match &mp.reshape {
                                Some(_) => src_dims.is_some() && src_dims == out_dims,
                                None => is_identity_perm(&mp.first_transpose),
                            };
                            if cancels {
                                rw.alias(out, src);
                            } else {
                                rw.replace(
                                    l,
                                    layer.name.clone(),
                                    LayerKind::Shuffle(mp),
                                    vec![src],
                                )?;
                            }
                            continue;
                        }
                    }
                }
            }
            _ => {}
        }
        rw.copy(l)?;
    }
    rw.finish()
}
