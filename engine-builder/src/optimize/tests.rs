//! Each pass on small networks: the expected rewrite happens, and the
//! network computes the same outputs before and after (cpu backend).

use super::*;
use jetrt_engine::ir::*;
use jetrt_engine::shape::Dim;
use jetrt_engine::{DataType, Tensor};
use std::sync::Arc;

fn dims(d: &[usize]) -> Vec<Dim> {
    d.iter().map(|&n| Dim::Known(n)).collect()
}

/// Deterministic values in [-1, 1).
fn values(n: usize, seed: u32) -> Vec<f32> {
    let mut s = seed.wrapping_mul(2654435761).max(1);
    (0..n)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s as f32 / u32::MAX as f32) * 2.0 - 1.0
        })
        .collect()
}

fn run(net: &Network, inputs: &[Tensor]) -> Vec<Tensor> {
    jetrt_engine::eval::eval_network(Arc::new(net.clone()), inputs.to_vec(), Some(2)).unwrap()
}

fn assert_same(a: &Network, b: &Network, inputs: &[Tensor]) {
    let (x, y) = (run(a, inputs), run(b, inputs));
    assert_eq!(x.len(), y.len());
    for (p, q) in x.iter().zip(&y) {
        assert_eq!(p.shape(), q.shape());
        let (p, q) = (p.to_f64_vec(), q.to_f64_vec());
        for (u, v) in p.iter().zip(&q) {
            assert!((u - v).abs() <= 1e-5 * (1.0 + v.abs()), "{u} vs {v}");
        }
    }
}

fn kinds(net: &Network) -> Vec<&'static str> {
    net.layers.iter().map(|l| l.kind.name()).collect()
}

fn conv(net: &mut Network, x: TensorRef, cin: usize, cout: usize, seed: u32) -> TensorRef {
    let k = net
        .add_weights(Tensor::from_f32(&[cout, cin, 3, 3], values(cout * cin * 9, seed)).unwrap());
    let b = net.add_weights(Tensor::from_f32(&[cout], values(cout, seed + 1)).unwrap());
    net.add(
        "conv",
        LayerKind::Convolution(ConvParams {
            out_channels: cout,
            kernel_size: vec![3, 3],
            stride: vec![1, 1],
            pre_padding: vec![1, 1],
            post_padding: vec![1, 1],
            dilation: vec![1, 1],
            groups: 1,
            kernel: k,
            bias: Some(b),
            activation: None,
        }),
        vec![x],
    )
    .unwrap()
}

fn input(shape: &[usize], seed: u32) -> Tensor {
    Tensor::from_f32(shape, values(shape.iter().product(), seed)).unwrap()
}

#[test]
fn constant_folding_computes_constant_subgraphs() {
    let mut net = Network::new("t");
    let x = net.add_input("x", DataType::F32, dims(&[1, 4]), None);
    let a = net.add_constant(
        "a",
        Tensor::from_f32(&[1, 4], vec![1.0, 2.0, 3.0, 4.0]).unwrap(),
    );
    let b = net.add_constant("b", Tensor::from_f32(&[1, 4], vec![0.5; 4]).unwrap());
    let ab = net
        .add(
            "ab",
            LayerKind::ElementWise {
                op: ElementWiseOp::Prod,
            },
            vec![a, b],
        )
        .unwrap();
    let e = net
        .add("exp", LayerKind::Unary { op: UnaryOp::Exp }, vec![ab])
        .unwrap();
    // A Shape of a fixed-shape input is constant too.
    let s = net.add("shape", LayerKind::Shape, vec![x]).unwrap();
    let y = net
        .add(
            "y",
            LayerKind::ElementWise {
                op: ElementWiseOp::Sum,
            },
            vec![x, e],
        )
        .unwrap();
    net.mark_output("y", y);
    net.mark_output("s", s);
    let folded = remove_dead_layers(&fold_constants(&net).unwrap()).unwrap();
    folded.check().unwrap();
    assert_eq!(kinds(&folded), vec!["Constant", "Constant", "ElementWise"]);
    assert_eq!(
        folded.constant(folded.outputs[1].tensor).unwrap().as_i64(),
        Some(&[1i64, 4][..])
    );
    let inp = [input(&[1, 4], 3)];
    let out = run(&folded, &inp);
    assert_same(&net, &folded, &inp);
    let expect: Vec<f32> = (0..4)
        .map(|i| inp[0].as_f32().unwrap()[i] + ((i as f32 + 1.0) * 0.5).exp())
        .collect();
    assert_eq!(out[0].as_f32().unwrap(), &expect[..]);
}

#[test]
fn dead_layers_are_removed_with_their_weights() {
    let mut net = Network::new("t");
    let x = net.add_input("x", DataType::F32, dims(&[1, 2, 5, 5]), None);
    let used = conv(&mut net, x, 2, 3, 1);
    let _unused = conv(&mut net, x, 2, 4, 7);
    net.mark_output("y", used);
    assert_eq!(net.weights.len(), 4);
    let out = remove_dead_layers(&net).unwrap();
    out.check().unwrap();
    assert_eq!(kinds(&out), vec!["Convolution"]);
    assert_eq!(out.weights.len(), 2);
    assert_same(&net, &out, &[input(&[1, 2, 5, 5], 2)]);
}

/// A BatchNorm (a channel Scale) over 3 channels of `x`.
fn batch_norm(net: &mut Network, x: TensorRef) -> TensorRef {
    let scale = net.add_weights(Tensor::from_f32(&[3], vec![0.5, -2.0, 1.5]).unwrap());
    let shift = net.add_weights(Tensor::from_f32(&[3], vec![0.1, 0.2, -0.3]).unwrap());
    net.add(
        "bn",
        LayerKind::Scale(ScaleParams {
            mode: ScaleMode::Channel,
            shift: Some(shift),
            scale: Some(scale),
            power: None,
            channel_axis: 1,
            activation: None,
        }),
        vec![x],
    )
    .unwrap()
}

#[test]
fn scales_and_channel_constants_fold_into_convolutions() {
    let mut net = Network::new("t");
    let x = net.add_input("x", DataType::F32, dims(&[1, 2, 6, 6]), None);
    let c = conv(&mut net, x, 2, 3, 11);
    let s = batch_norm(&mut net, c);
    let m = net.add_constant(
        "m",
        Tensor::from_f32(&[1, 3, 1, 1], vec![2.0, 3.0, 4.0]).unwrap(),
    );
    let y = net
        .add(
            "mul",
            LayerKind::ElementWise {
                op: ElementWiseOp::Prod,
            },
            vec![m, s],
        )
        .unwrap();
    net.mark_output("y", y);
    let out = remove_dead_layers(&fold_scales(&net).unwrap()).unwrap();
    out.check().unwrap();
    assert_eq!(kinds(&out), vec!["Convolution"]);
    assert_same(&net, &out, &[input(&[1, 2, 6, 6], 5)]);
}

#[test]
fn scale_folding_keeps_shared_convolution_outputs() {
    let mut net = Network::new("t");
    let x = net.add_input("x", DataType::F32, dims(&[1, 2, 4, 4]), None);
    let c = conv(&mut net, x, 2, 2, 3);
    let m = net.add_constant(
        "m",
        Tensor::from_f32(&[1, 2, 1, 1], vec![2.0, 3.0]).unwrap(),
    );
    let y = net
        .add(
            "mul",
            LayerKind::ElementWise {
                op: ElementWiseOp::Prod,
            },
            vec![c, m],
        )
        .unwrap();
    net.mark_output("y", y);
    net.mark_output("c", c);
    let out = remove_dead_layers(&fold_scales(&net).unwrap()).unwrap();
    // The conv output is itself an output: folding would change it.
    assert_eq!(kinds(&out), vec!["Convolution", "Constant", "ElementWise"]);
    assert_same(&net, &out, &[input(&[1, 2, 4, 4], 9)]);
}

#[test]
fn activations_fuse_into_convolutions() {
    let mut net = Network::new("t");
    let x = net.add_input("x", DataType::F32, dims(&[1, 3, 5, 5]), None);
    let c = conv(&mut net, x, 3, 4, 21);
    let r = net
        .add(
            "relu6",
            LayerKind::Activation {
                activation: Activation::Clip {
                    min: 0.0,
                    max: 0.25,
                },
            },
            vec![c],
        )
        .unwrap();
    let c2 = conv(&mut net, r, 4, 4, 33);
    // c2 feeds two layers: no fusion for it.
    let a = net
        .add(
            "sig",
            LayerKind::Activation {
                activation: Activation::Sigmoid,
            },
            vec![c2],
        )
        .unwrap();
    let y = net
        .add(
            "sum",
            LayerKind::ElementWise {
                op: ElementWiseOp::Sum,
            },
            vec![a, c2],
        )
        .unwrap();
    net.mark_output("y", y);
    let out = remove_dead_layers(&fuse_conv_activation(&net).unwrap()).unwrap();
    out.check().unwrap();
    assert_eq!(
        kinds(&out),
        vec!["Convolution", "Convolution", "Activation", "ElementWise"]
    );
    match &out.layers[0].kind {
        LayerKind::Convolution(p) => assert_eq!(
            p.activation,
            Some(Activation::Clip {
                min: 0.0,
                max: 0.25
            })
        ),
        k => panic!("unexpected {k:?}"),
    }
    assert_same(&net, &out, &[input(&[1, 3, 5, 5], 4)]);
}

/// A BatchNorm on a network input (nothing to fold it into), then `act`.
fn scale_then(net: &mut Network, x: TensorRef, act: Activation) -> TensorRef {
    let s = batch_norm(net, x);
    net.add("act", LayerKind::Activation { activation: act }, vec![s])
        .unwrap()
}

#[test]
fn activations_fuse_into_scales() {
    // DenseNet's pre-activation: BatchNorm, ReLU, then a convolution.
    let mut net = Network::new("t");
    let x = net.add_input("x", DataType::F32, dims(&[1, 3, 5, 5]), None);
    let r = scale_then(&mut net, x, Activation::Relu);
    let c = conv(&mut net, r, 3, 2, 7);
    net.mark_output("y", c);
    let out = remove_dead_layers(&fuse_conv_activation(&net).unwrap()).unwrap();
    out.check().unwrap();
    assert_eq!(kinds(&out), vec!["Scale", "Convolution"]);
    match &out.layers[0].kind {
        LayerKind::Scale(p) => assert_eq!(p.activation, Some(Activation::Relu)),
        k => panic!("unexpected {k:?}"),
    }
    assert_same(&net, &out, &[input(&[1, 3, 5, 5], 8)]);

    // Every pass together: the fused Scale is not folded into the
    // convolution after it (the ReLU sits between them).
    let all = optimize(&net).unwrap();
    assert_eq!(kinds(&all), vec!["Scale", "Convolution"]);
    assert_same(&net, &all, &[input(&[1, 3, 5, 5], 9)]);

    // A Scale whose output is also read elsewhere keeps its activation apart.
    let mut net = Network::new("t");
    let x = net.add_input("x", DataType::F32, dims(&[1, 3, 4, 4]), None);
    let a = scale_then(&mut net, x, Activation::Sigmoid);
    let LayerKind::Activation { .. } = net.layers[1].kind else {
        panic!("scale_then adds the Scale, then the Activation");
    };
    net.mark_output("y", a);
    net.mark_output("s", TensorRef::Layer(0, 0));
    let out = remove_dead_layers(&fuse_conv_activation(&net).unwrap()).unwrap();
    assert_eq!(kinds(&out), vec!["Scale", "Activation"]);
    assert_same(&net, &out, &[input(&[1, 3, 4, 4], 10)]);
}

fn shuffle(first: Option<Vec<usize>>, reshape: Option<Vec<i64>>) -> LayerKind {
    LayerKind::Shuffle(ShuffleParams {
        first_transpose: first,
        reshape,
        second_transpose: None,
        zero_is_placeholder: true,
    })
}

#[test]
fn shuffles_identities_and_noop_casts_are_eliminated() {
    let mut net = Network::new("t");
    let x = net.add_input("x", DataType::F32, dims(&[2, 3, 4]), None);
    let i = net.add("id", LayerKind::Identity, vec![x]).unwrap();
    let c = net
        .add("cast", LayerKind::Cast { to: DataType::F32 }, vec![i])
        .unwrap();
    let noop = net
        .add("noop", shuffle(None, Some(vec![2, 3, 4])), vec![c])
        .unwrap();
    let r1 = net
        .add("r1", shuffle(None, Some(vec![6, 4])), vec![noop])
        .unwrap();
    let r2 = net
        .add("r2", shuffle(None, Some(vec![24])), vec![r1])
        .unwrap();
    let t1 = net
        .add("t1", shuffle(Some(vec![1, 2, 0]), None), vec![x])
        .unwrap();
    let t2 = net
        .add("t2", shuffle(Some(vec![2, 0, 1]), None), vec![t1])
        .unwrap();
    let s = net
        .add(
            "relu",
            LayerKind::Activation {
                activation: Activation::Relu,
            },
            vec![t2],
        )
        .unwrap();
    net.mark_output("flat", r2);
    net.mark_output("back", s);
    let out = remove_dead_layers(&eliminate_shuffles(&net).unwrap()).unwrap();
    out.check().unwrap();
    // One reshape straight to 24; the two transposes cancel out.
    assert_eq!(kinds(&out), vec!["Shuffle", "Activation"]);
    assert_same(&net, &out, &[input(&[2, 3, 4], 8)]);
}

#[test]
fn an_output_that_becomes_an_input_gets_an_identity() {
    let mut net = Network::new("t");
    let x = net.add_input("x", DataType::F32, dims(&[2]), None);
    let i = net.add("id", LayerKind::Identity, vec![x]).unwrap();
    net.mark_output("y", i);
    let out = optimize(&net).unwrap();
    assert_eq!(kinds(&out), vec!["Identity"]);
    assert_same(&net, &out, &[input(&[2], 1)]);
}

/// x * 0.5 * (1 + erf(x / sqrt(2))) as PyTorch exports it, in either
/// grouping of the products; `leak` also makes the Add a network output.
fn gelu_net(half_first: bool, leak: bool) -> Network {
    let mut net = Network::new("t");
    let x = net.add_input("x", DataType::F32, dims(&[1, 4, 3]), None);
    let ew = |op| LayerKind::ElementWise { op };
    let c = |net: &mut Network, name: &str, v: f32| {
        net.add_constant(name, Tensor::from_f32(&[1, 1, 1], vec![v]).unwrap())
    };
    let s2 = c(&mut net, "sqrt2", std::f32::consts::SQRT_2);
    let one = c(&mut net, "one", 1.0);
    let half = c(&mut net, "half", 0.5);
    let d = net.add("div", ew(ElementWiseOp::Div), vec![x, s2]).unwrap();
    let e = net
        .add("erf", LayerKind::Unary { op: UnaryOp::Erf }, vec![d])
        .unwrap();
    let a = net
        .add("add", ew(ElementWiseOp::Sum), vec![e, one])
        .unwrap();
    let y = if half_first {
        let h = net
            .add("mul_h", ew(ElementWiseOp::Prod), vec![half, x])
            .unwrap();
        net.add("mul", ew(ElementWiseOp::Prod), vec![h, a]).unwrap()
    } else {
        let m = net.add("mul", ew(ElementWiseOp::Prod), vec![x, a]).unwrap();
        net.add("mul_h", ew(ElementWiseOp::Prod), vec![m, half])
            .unwrap()
    };
    net.mark_output("y", y);
    if leak {
        net.mark_output("a", a);
    }
    net
}

#[test]
fn an_exported_gelu_becomes_one_activation() {
    let inp = [input(&[1, 4, 3], 9)];
    for half_first in [false, true] {
        let net = gelu_net(half_first, false);
        let fused = remove_dead_layers(&fuse_gelu(&net).unwrap()).unwrap();
        fused.check().unwrap();
        assert_eq!(kinds(&fused), vec!["Activation"], "{half_first}");
        assert!(matches!(
            fused.layers[0].kind,
            LayerKind::Activation {
                activation: Activation::GeluErf
            }
        ));
        assert_same(&net, &fused, &inp);
    }
    // An intermediate something else reads stays: nothing is fused.
    let net = gelu_net(false, true);
    let kept = remove_dead_layers(&fuse_gelu(&net).unwrap()).unwrap();
    assert!(!kinds(&kept).contains(&"Activation"), "{:?}", kinds(&kept));
    assert_same(&net, &kept, &inp);
}

/// ConvNeXt's block tail: permute to [N, H, W, C], a Linear (product and
/// bias), the permute back and a layer scale `gamma` (dims `gamma_dims`).
fn layer_scale_net(gamma_dims: &[usize], gamma_first: bool) -> Network {
    let mut net = Network::new("layer scale");
    let x = net.add_input("x", DataType::F32, dims(&[1, 4, 3, 5]), None);
    let constant = |net: &mut Network, name: &str, d: &[usize], seed: u32| {
        let w = net.add_weights(input(d, seed));
        net.add(name, LayerKind::Constant { weights: w }, vec![])
            .unwrap()
    };
    let t = net
        .add("to_last", shuffle(Some(vec![0, 2, 3, 1]), None), vec![x])
        .unwrap();
    let w = constant(&mut net, "w", &[1, 1, 4, 6], 3);
    let mm = LayerKind::MatrixMultiply {
        op0: MatrixOp::None,
        op1: MatrixOp::None,
    };
    let y = net.add("fc", mm, vec![t, w]).unwrap();
    let b = constant(&mut net, "b", &[1, 1, 1, 6], 4);
    let sum = LayerKind::ElementWise {
        op: ElementWiseOp::Sum,
    };
    let y = net.add("fc_bias", sum, vec![b, y]).unwrap();
    let y = net
        .add("back", shuffle(Some(vec![0, 3, 1, 2]), None), vec![y])
        .unwrap();
    let g = constant(&mut net, "gamma", gamma_dims, 5);
    let prod = LayerKind::ElementWise {
        op: ElementWiseOp::Prod,
    };
    let ins = if gamma_first { vec![g, y] } else { vec![y, g] };
    let s = net.add("scale", prod, ins).unwrap();
    net.mark_output("y", s);
    net
}

#[test]
fn a_layer_scale_after_a_linear_folds_into_its_weights() {
    for (gamma, first) in [
        (&[1, 6, 1, 1], false),
        (&[1, 6, 1, 1], true),
        (&[1, 1, 1, 1], false),
    ] {
        let net = layer_scale_net(gamma, first);
        let out = remove_dead_layers(&fold_linear_scales(&net).unwrap()).unwrap();
        out.check().unwrap();
        assert_eq!(
            kinds(&out),
            vec![
                "Shuffle",
                "Constant",
                "MatrixMultiply",
                "Constant",
                "ElementWise",
                "Shuffle"
            ],
            "{gamma:?}"
        );
        assert_same(&net, &out, &[input(&[1, 4, 3, 5], 8)]);
    }
}

#[test]
fn a_scale_along_another_axis_is_left_alone() {
    // One value per row (H), not per column of the Linear.
    let net = layer_scale_net(&[1, 1, 3, 1], false);
    let out = fold_linear_scales(&net).unwrap();
    assert_eq!(kinds(&out), kinds(&net));
}
