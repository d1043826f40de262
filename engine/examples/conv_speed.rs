//! Times one convolution layer on the cpu backend: `cargo run --release -p
//! jetrt-engine --example conv_speed -- CIN COUT HW K STRIDE [threads [groups]]`.
//! A development aid, not a test.

use jetrt_engine::backend::{self, BackendKind, Executor, RunConfig};
use jetrt_engine::ir::{ConvParams, LayerKind, Network};
use jetrt_engine::shape::Dim;
use jetrt_engine::{DataType, Tensor};
use std::sync::Arc;
use std::time::Instant;

fn main() {
    let a: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|v| v.parse().ok())
        .collect();
    let (cin, cout, hw, k, s) = (a[0], a[1], a[2], a[3], a[4]);
    let threads = a.get(5).copied().unwrap_or(1);
    let groups = a.get(6).copied().unwrap_or(1);
    let mut net = Network::new("conv");
    let x = image_input(&mut net, cin, hw);
    let cg = cin / groups;
    let w = net.add_weights(
        Tensor::from_f32(
            &[cout, cg, k, k],
            (0..cout * cg * k * k)
                .map(|i| (i % 13) as f32 * 0.01)
                .collect(),
        )
        .unwrap(),
    );
    let p = (k / 2) as i64;
    let y = net
        .add(
            "conv",
            LayerKind::Convolution(ConvParams {
                out_channels: cout,
                kernel_size: vec![k, k],
                stride: vec![s, s],
                pre_padding: vec![p, p],
                post_padding: vec![p, p],
                dilation: vec![1, 1],
                groups,
                kernel: w,
                bias: None,
                activation: None,
            }),
            vec![x],
        )
        .unwrap();
    // A cheap last layer keeps the convolution's output an intermediate,
    // recycled like any other, as in a real network.
    let r = net.add("shape", LayerKind::Shape, vec![y]).unwrap();
    net.mark_output("y", r);
    // The same input through the cheap layer alone: what handing the input
    // in and dropping it costs, subtracted from the timing.
    let mut bare = Network::new("bare");
    let bx = image_input(&mut bare, cin, hw);
    let br = bare.add("shape", LayerKind::Shape, vec![bx]).unwrap();
    bare.mark_output("y", br);
    let cfg = RunConfig {
        threads: Some(threads),
        ..Default::default()
    };
    let cpu = backend::backend(BackendKind::Cpu).unwrap();
    let load = |net: Network| {
        let net = Arc::new(net);
        let plan = cpu.build(&net, &Default::default()).unwrap();
        cpu.load(net, &plan, &cfg).unwrap()
    };
    let mut ex = load(net);
    let mut bare = load(bare);
    let input = Tensor::from_f32(
        &[1, cin, hw, hw],
        (0..cin * hw * hw).map(|i| (i % 7) as f32).collect(),
    )
    .unwrap();
    let runs = 300;
    let time = |ex: &mut Box<dyn Executor>| {
        let mut times = Vec::with_capacity(runs);
        for _ in 0..runs {
            let batch = vec![input.clone()];
            let t = Instant::now();
            ex.run(batch).unwrap();
            times.push(t.elapsed().as_secs_f64());
        }
        // The median: the minimum flatters, as a real network's layers do
        // not find their data in cache as a repeated one does.
        times.sort_by(f64::total_cmp);
        times[runs / 2]
    };
    let overhead = time(&mut bare);
    let cpu0 = cpu_seconds();
    let best = time(&mut ex) - overhead;
    // CPU time per run (all threads): steadier than wall time on a busy machine.
    let cpu = (cpu_seconds() - cpu0) / runs as f64;
    let ho = (hw + 2 * p as usize - k) / s + 1;
    let macs = (cout * cg * k * k * ho * ho) as f64;
    println!(
        "{cin}->{cout} {k}x{k} s{s} at {hw}: {:.3} ms (cpu {:.3} ms), {:.1} GMAC/s (direct-equivalent)",
        best * 1e3,
        cpu * 1e3,
        macs / best / 1e9
    );
}

/// A 1 x cin x hw x hw float input named x.
fn image_input(net: &mut Network, cin: usize, hw: usize) -> jetrt_engine::ir::TensorRef {
    let dims = [1, cin, hw, hw].map(Dim::Known).to_vec();
    net.add_input("x", DataType::F32, dims, None)
}

/// CPU time this process has used, from /proc (no extra dependencies).
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name: utime and stime are the 12th and 13th.
    let rest = stat.rsplit(')').next().unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .skip(11)
        .take(2)
        .filter_map(|v| v.parse().ok())
        .collect();
    f.iter().sum::<f64>() / 100.0
}
