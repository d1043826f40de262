//! The cuda backend (feature `cuda`): cuDNN for convolutions, cuBLAS for
//! matrix products, and kernels compiled by NVRTC from the sources in
//! `kernels/` for every other layer; one stream per execution context.
//!
//! Libraries are loaded at run time (cudarc's dynamic loading), so a build
//! needs no CUDA installed, and a machine without a GPU, driver or library
//! gets an error saying which, never a crash (see `probe`).

mod cublas;
mod cublaslt;
mod cudnn;
mod device;
mod exec;
mod frame;
mod gate;
mod graph;
mod launch;
mod layout;
mod linear_residual;
mod nvrtc;
mod ops;
mod probe;
mod profile;
mod tactics;

use super::{
    Backend, BackendKind, BuildConfig, Capabilities, Executor, Precision, RunConfig, Tactics,
};
use crate::engine_file::PlanKey;
use crate::error::{Error, Result};
use crate::ir::Network;
use serde::{Deserialize, Serialize};
use std::sync::Arc;

pub use exec::CudaExecutor;

/// The cuda backend on one GPU.
pub struct CudaBackend {
    device: usize,
}

impl CudaBackend {
    pub fn new(device: usize) -> Self {
        CudaBackend { device }
    }
}

/// What a cuda plan records: kernels are compiled (or read from the
/// cache) and weights uploaded when it is loaded.
#[derive(Serialize, Deserialize)]
struct CudaPlan {
    format: u32,
    precision: Precision,
    #[serde(default)]
    workspace: Option<usize>,
    /// The convolution algorithms timed at build time, by geometry.
    #[serde(default)]
    tactics: tactics::Choices,
}

const PLAN_FORMAT: u32 = 1;

impl Backend for CudaBackend {
    fn kind(&self) -> BackendKind {
        BackendKind::Cuda
    }

    fn probe(&self) -> Result<()> {
        device::Gpu::open(self.device).map(|_| ())
    }

    fn capabilities(&self) -> Capabilities {
        Capabilities {
            precisions: &[Precision::Fp32, Precision::Fp16],
            max_rank: ops::MAX_RANK,
            device_io: true,
        }
    }

    fn plan_key(&self) -> Result<PlanKey> {
        let gpu = device::Gpu::open(self.device)?;
        Ok(PlanKey {
            backend: "cuda".into(),
            device: gpu.arch_name(),
            version: crate::VERSION.into(),
        })
    }

    fn build(&self, net: &Network, cfg: &BuildConfig) -> Result<Vec<u8>> {
        // Loading the network here checks every layer runs on this GPU
        // and leaves its kernels compiled in the cache; planning it for
        // the build's dims times the convolutions' algorithms.
        let run = RunConfig {
            device: self.device,
            ..Default::default()
        };
        let gpu = tactics::device_id(&*device::Gpu::open(self.device)?);
        let cudnn = probe::libraries()?.cudnn;
        let cached = match &cfg.timing_cache {
            Some(path) => tactics::read_cache(path, &gpu, cudnn)?,
            None => tactics::Choices::new(),
        };
        let search = match cfg.tactics {
            Tactics::Timed => tactics::Search::Timed(cached),
            Tactics::Heuristic => tactics::Search::Recorded(Default::default()),
        };
        let mut ex = CudaExecutor::new(net, cfg.precision, cfg.workspace, &run, search)?;
        if let Some(dims) = build_dims(net) {
            ex.set_input_dims(&dims)?;
        }
        let t = ex.tactics();
        if t.timed > 0 {
            log::info!(
                "cuda: timed the algorithms of {} convolution geometries",
                t.timed
            );
        }
        if let (Some(path), Tactics::Timed) = (&cfg.timing_cache, cfg.tactics) {
            tactics::write_cache(path, &gpu, cudnn, t.choices())?;
        }
        serde_json::to_vec(&CudaPlan {
            format: PLAN_FORMAT,
            precision: cfg.precision,
            workspace: cfg.workspace,
            tactics: t.used(),
        })
        .map_err(|e| Error::Network(format!("cannot write the cuda plan: {e}")))
    }

    fn load(&self, net: Arc<Network>, plan: &[u8], cfg: &RunConfig) -> Result<Box<dyn Executor>> {
        let p: CudaPlan = serde_json::from_slice(plan)
            .map_err(|e| Error::Network(format!("unreadable cuda plan: {e}")))?;
        if p.format != PLAN_FORMAT {
            return Err(Error::Network(format!(
                "cuda plan format {} is not {PLAN_FORMAT}; rebuild the engine",
                p.format
            )));
        }
        Ok(Box::new(CudaExecutor::new(
            &net,
            p.precision,
            p.workspace,
            cfg,
            tactics::Search::Recorded(p.tactics),
        )?))
    }
}

/// The dims a build plans for: each input's profile optimum, or its
/// fixed dims; `None` when an input has neither.
fn build_dims(net: &Network) -> Option<Vec<Vec<usize>>> {
    net.inputs
        .iter()
        .map(|i| match &i.profile {
            Some(p) => Some(p.opt.clone()),
            None => crate::shape::known_dims(&i.info.shape),
        })
        .collect()
}

#[cfg(test)]
mod gpu_tests {
    //! Tests that need a GPU: ignored in CI (which has none), run on a GPU
    //! machine by `scripts/check_cuda.py --test-binary` (`--ignored gpu_`).

    use super::*;
    use crate::backend::Backend;
    use crate::engine_file::{ColorOrder, Preprocess};
    use crate::ir::LayerKind;
    use crate::preprocess::{rgb_to_tensor, FrameInput, PixelFormat};
    use crate::shape::Dim;
    use crate::DataType;

    fn identity(h: usize, w: usize) -> Network {
        let mut net = Network::new("frames");
        let x = net.add_input(
            "x",
            DataType::F32,
            [1, 3, h, w].map(Dim::Known).to_vec(),
            None,
        );
        let y = net.add("id", LayerKind::Identity, vec![x]).unwrap();
        net.mark_output("y", y);
        net
    }

    /// Camera frames converted on the GPU give the cpu path's values, bit
    /// for bit: every format, with and without a resize, both channel orders,
    /// copied to the device and read in place from mapped host memory.
    #[test]
    #[ignore]
    fn gpu_frames_match_the_cpu_path() {
        for memory in [
            super::frame::FrameMemory::Copy,
            super::frame::FrameMemory::Mapped,
        ] {
            *super::frame::TEST_FRAME_MEMORY.lock().unwrap() = Some(memory);
            let r = std::panic::catch_unwind(frames_match_the_cpu_path);
            *super::frame::TEST_FRAME_MEMORY.lock().unwrap() = None;
            if let Err(e) = r {
                eprintln!("frames {memory:?}:");
                std::panic::resume_unwind(e);
            }
        }
    }

    fn frames_match_the_cpu_path() {
        let b = CudaBackend::new(0);
        let mut s = 7u32;
        let mut byte = || {
            s ^= s << 13;
            s ^= s >> 17;
            s ^= s << 5;
            (s >> 24) as u8
        };
        for (oh, ow) in [(6, 8), (5, 7)] {
            let net = Arc::new(identity(oh, ow));
            let plan = b.build(&net, &Default::default()).unwrap();
            let mut ex = b.load(net, &plan, &Default::default()).unwrap();
            ex.set_input_dims(&[vec![1, 3, oh, ow]]).unwrap();
            for format in PixelFormat::ALL {
                for (w, h) in [(8, 6), (13, 9), (4, 3)] {
                    for color in [ColorOrder::Rgb, ColorOrder::Bgr] {
                        let pre = Preprocess {
                            input_size: None,
                            mean: [0.485, 0.456, 0.406],
                            std: [0.229, 0.224, 0.225],
                            color,
                        };
                        let data: Vec<u8> = (0..format.frame_len(w, h)).map(|_| byte()).collect();
                        let want = rgb_to_tensor(&format.to_rgb(&data, w, h), w, h, oh, ow, &pre);
                        let spec = FrameInput {
                            format,
                            width: w,
                            height: h,
                            pre,
                        };
                        ex.bind_frame_input(0, Some(&spec)).unwrap();
                        ex.frame_host().unwrap().copy_from_slice(&data);
                        ex.enqueue().unwrap();
                        ex.synchronize().unwrap();
                        let got: &[f32] = bytemuck::cast_slice(ex.output_host(0).unwrap());
                        assert_eq!(
                            got,
                            want.as_f32().unwrap(),
                            "{format:?} {w}x{h} -> {ow}x{oh} {color:?}"
                        );
                    }
                }
            }
        }
    }

    /// The same run twice (eager, then captured and replayed) and after a
    /// change of input values gives the cpu backend's results.
    #[test]
    #[ignore]
    fn gpu_graph_replays_compute_what_eager_runs_do() {
        let b = CudaBackend::new(0);
        let mut net = Network::new("relu");
        let x = net.add_input("x", DataType::F32, vec![Dim::Known(1000)], None);
        let y = net
            .add(
                "relu",
                LayerKind::Activation {
                    activation: crate::ir::Activation::Relu,
                },
                vec![x],
            )
            .unwrap();
        net.mark_output("y", y);
        let net = Arc::new(net);
        let plan = b.build(&net, &Default::default()).unwrap();
        let mut ex = b.load(net, &plan, &Default::default()).unwrap();
        for k in 0..5 {
            let v: Vec<f32> = (0..1000)
                .map(|i| (i as f32 - 500.0) * (k as f32 + 1.0))
                .collect();
            let t = crate::Tensor::from_f32(&[1000], v.clone()).unwrap();
            let out = ex.run(vec![t]).unwrap();
            let want: Vec<f32> = v.iter().map(|&a| a.max(0.0)).collect();
            assert_eq!(out[0].as_f32().unwrap(), want.as_slice(), "run {k}");
        }
    }

    /// Random values in [-0.5, 0.5), seeded.
    fn noise(n: usize, seed: u32) -> Vec<f32> {
        let mut s = seed.max(1);
        (0..n)
            .map(|_| {
                s ^= s << 13;
                s ^= s >> 17;
                s ^= s << 5;
                (s >> 8) as f32 / (1u32 << 24) as f32 - 0.5
            })
            .collect()
    }

    fn conv(
        net: &mut Network,
        x: crate::ir::TensorRef,
        (cin, cout, k): (usize, usize, usize),
        pad: ([i64; 2], [i64; 2]),
        act: Option<crate::ir::Activation>,
        seed: u32,
    ) -> crate::ir::TensorRef {
        let w =
            crate::Tensor::from_f32(&[cout, cin, k, k], noise(cout * cin * k * k, seed)).unwrap();
        let b = crate::Tensor::from_f32(&[cout], noise(cout, seed + 1)).unwrap();
        let p = crate::ir::ConvParams {
            out_channels: cout,
            kernel_size: vec![k, k],
            stride: vec![1, 1],
            pre_padding: pad.0.to_vec(),
            post_padding: pad.1.to_vec(),
            dilation: vec![1, 1],
            groups: 1,
            kernel: net.add_weights(w),
            bias: Some(net.add_weights(b)),
            activation: act,
        };
        net.add(format!("conv{seed}"), LayerKind::Convolution(p), vec![x])
            .unwrap()
    }

    /// A float16 plan that stores activations channels-last where it can
    /// (`layout.rs`) computes what the cpu backend does: a convolution from
    /// the NCHW input with asymmetric padding, pooling, a fused residual,
    /// a concatenation and a keep-dims mean on NHWC tensors, and a
    /// convolution that reads NHWC and writes the NCHW output.
    #[test]
    #[ignore]
    fn gpu_channels_last_plans_match_the_cpu_backend() {
        use crate::ir::{Activation, ElementWiseOp, PoolKind, PoolParams, ReduceOp};
        let mut net = Network::new("layouts");
        let x = net.add_input(
            "x",
            DataType::F32,
            [1, 8, 9, 7].map(Dim::Known).to_vec(),
            None,
        );
        let relu = Some(Activation::Relu);
        let a = conv(&mut net, x, (8, 16, 3), ([0, 1], [2, 1]), relu, 11);
        let pool = PoolParams {
            pool_type: PoolKind::Max,
            window: vec![2, 2],
            stride: vec![2, 2],
            pre_padding: vec![0, 0],
            post_padding: vec![0, 0],
            round_up: true,
            exclude_padding: false,
        };
        let p = net.add("pool", LayerKind::Pooling(pool), vec![a]).unwrap();
        let c = conv(&mut net, p, (16, 16, 1), ([0, 0], [0, 0]), None, 21);
        let sum = net
            .add(
                "sum",
                LayerKind::ElementWise {
                    op: ElementWiseOp::Sum,
                },
                vec![c, p],
            )
            .unwrap();
        let r = net
            .add(
                "relu",
                LayerKind::Activation {
                    activation: Activation::Relu,
                },
                vec![sum],
            )
            .unwrap();
        let cat = net
            .add("cat", LayerKind::Concatenation { axis: 1 }, vec![r, p])
            .unwrap();
        let mean = net
            .add(
                "mean",
                LayerKind::Reduce {
                    op: ReduceOp::Avg,
                    axes: vec![2, 3],
                    keep_dims: true,
                },
                vec![cat],
            )
            .unwrap();
        let out = conv(&mut net, cat, (32, 8, 3), ([1, 1], [1, 1]), None, 31);
        net.mark_output("mean", mean);
        net.mark_output("out", out);
        let input = crate::Tensor::from_f32(&[1, 8, 9, 7], noise(8 * 9 * 7, 5)).unwrap();
        matches_cpu(net, input, Precision::Fp16, 0.01, "layouts");
    }

    /// Scales with their fused activation give the cpu backend's values:
    /// a DenseNet BatchNorm+ReLU before a convolution (channels-last in
    /// fp16, 16 bytes a thread along the channels), channels-first with a
    /// plane of 30 values, a channel count the vector path cannot take, a
    /// uniform scale and one with a power (the general kernel).
    #[test]
    #[ignore]
    fn gpu_scales_with_activations_match_the_cpu_backend() {
        use crate::ir::{Activation, ScaleMode, ScaleParams, TensorRef};
        fn scale(
            net: &mut Network,
            x: TensorRef,
            (mode, groups): (ScaleMode, usize),
            power: bool,
            activation: Option<Activation>,
            seed: u32,
        ) -> TensorRef {
            let mut w = |k: u32, lo: f32| {
                let v: Vec<f32> = noise(groups, seed + k).iter().map(|v| v + lo).collect();
                Some(net.add_weights(crate::Tensor::from_f32(&[groups], v).unwrap()))
            };
            // With a power, positive coefficients on a positive input keep
            // powf real.
            let lo = if power { 1.5 } else { 0.0 };
            let (scale, shift) = (w(0, lo), w(1, lo));
            let power = if power { w(2, 1.5) } else { None };
            net.add(
                "scale",
                LayerKind::Scale(ScaleParams {
                    mode,
                    shift,
                    scale,
                    power,
                    channel_axis: 1,
                    activation,
                }),
                vec![x],
            )
            .unwrap()
        }
        for precision in [Precision::Fp32, Precision::Fp16] {
            let mut net = Network::new("scales");
            let x = net.add_input(
                "x",
                DataType::F32,
                [2, 16, 5, 6].map(Dim::Known).to_vec(),
                None,
            );
            let relu = Some(Activation::Relu);
            let bn = scale(&mut net, x, (ScaleMode::Channel, 16), false, relu, 3);
            let c = conv(&mut net, bn, (16, 8, 1), ([0, 0], [0, 0]), None, 5);
            net.mark_output("dense", c);
            let plain = scale(&mut net, x, (ScaleMode::Channel, 16), false, relu, 7);
            net.mark_output("nchw", plain);
            let c3 = conv(&mut net, x, (16, 3, 1), ([0, 0], [0, 0]), None, 9);
            let odd = scale(
                &mut net,
                c3,
                (ScaleMode::Channel, 3),
                false,
                Some(Activation::LeakyRelu { alpha: 0.1 }),
                11,
            );
            net.mark_output("odd", odd);
            let uni = scale(
                &mut net,
                x,
                (ScaleMode::Uniform, 1),
                false,
                Some(Activation::Sigmoid),
                13,
            );
            net.mark_output("uniform", uni);
            let abs = net
                .add(
                    "abs",
                    LayerKind::Unary {
                        op: crate::ir::UnaryOp::Abs,
                    },
                    vec![x],
                )
                .unwrap();
            let pw = scale(
                &mut net,
                abs,
                (ScaleMode::Channel, 16),
                true,
                Some(Activation::Tanh),
                15,
            );
            net.mark_output("power", pw);
            let input = crate::Tensor::from_f32(&[2, 16, 5, 6], noise(2 * 16 * 30, 17)).unwrap();
            let tol = if precision == Precision::Fp16 {
                0.01
            } else {
                1e-5
            };
            matches_cpu(net, input, precision, tol, &format!("scales {precision:?}"));
        }
    }

    /// Runs `net` on `input` three times on the GPU in `precision` and
    /// checks every output against the cpu backend's to `tol` (absolute
    /// plus relative).
    fn matches_cpu(net: Network, input: crate::Tensor, precision: Precision, tol: f32, what: &str) {
        let net = Arc::new(net);
        let cpu = crate::backend::CpuBackend;
        let plan = cpu.build(&net, &Default::default()).unwrap();
        let want = cpu
            .load(net.clone(), &plan, &Default::default())
            .unwrap()
            .run(vec![input.clone()])
            .unwrap();
        let b = CudaBackend::new(0);
        let cfg = BuildConfig {
            precision,
            ..Default::default()
        };
        let plan = b.build(&net, &cfg).unwrap();
        let mut ex = b.load(net, &plan, &Default::default()).unwrap();
        for run in 0..3 {
            let got = ex.run(vec![input.clone()]).unwrap();
            for (o, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_eq!(g.shape(), w.shape(), "{what}: output {o}");
                let (g, w) = (g.to_f32(), w.to_f32());
                for (k, (a, b)) in g
                    .as_f32()
                    .unwrap()
                    .iter()
                    .zip(w.as_f32().unwrap())
                    .enumerate()
                {
                    assert!(
                        (a - b).abs() <= tol + tol * b.abs(),
                        "{what}: run {run} output {o} element {k}: {a} vs {b}"
                    );
                }
            }
        }
    }

    /// Depthwise convolutions (our kernel) give the cpu backend's values in
    /// float32 and float16: ConvNeXt's 7x7, MobileNet's 3x3 at stride 2,
    /// asymmetric padding, dilation, 1-D, a width not a multiple of the
    /// kernel's four outputs a thread, with ReLU and a fused residual.
    #[test]
    #[ignore]
    fn gpu_depthwise_convolutions_match_the_cpu_backend() {
        use crate::ir::{Activation, ElementWiseOp};
        // (dims, kernel, stride, pre and post padding, dilation, residual)
        type Case = (&'static [usize], usize, usize, (i64, i64), usize, bool);
        let cases: [Case; 6] = [
            (&[1, 96, 56, 56], 7, 1, (3, 3), 1, true),
            (&[2, 32, 15, 13], 3, 2, (1, 1), 1, false),
            (&[1, 8, 9, 11], 3, 1, (0, 1), 1, false),
            (&[1, 16, 12, 10], 3, 1, (2, 2), 2, true),
            (&[1, 12, 30], 5, 1, (2, 2), 1, false),
            (&[1, 24, 7, 7], 7, 1, (3, 3), 1, true),
        ];
        for (seed, (dims, k, stride, (pre, post), dil, res)) in cases.into_iter().enumerate() {
            let seed = seed as u32 * 10 + 100;
            let c = dims[1];
            let sp = dims.len() - 2;
            let mut net = Network::new("depthwise");
            let shape = dims.iter().map(|&d| Dim::Known(d)).collect();
            let x = net.add_input("x", DataType::F32, shape, None);
            let mut wd = vec![c, 1];
            wd.extend(std::iter::repeat_n(k, sp));
            let n: usize = wd.iter().product();
            let w = crate::Tensor::from_f32(&wd, noise(n, seed)).unwrap();
            let b = crate::Tensor::from_f32(&[c], noise(c, seed + 1)).unwrap();
            let p = crate::ir::ConvParams {
                out_channels: c,
                kernel_size: vec![k; sp],
                stride: vec![stride; sp],
                pre_padding: vec![pre; sp],
                post_padding: vec![post; sp],
                dilation: vec![dil; sp],
                groups: c,
                kernel: net.add_weights(w),
                bias: Some(net.add_weights(b)),
                activation: (!res).then_some(Activation::Relu),
            };
            let mut y = net.add("dw", LayerKind::Convolution(p), vec![x]).unwrap();
            if res {
                let sum = LayerKind::ElementWise {
                    op: ElementWiseOp::Sum,
                };
                y = net.add("sum", sum, vec![y, x]).unwrap();
                let relu = LayerKind::Activation {
                    activation: Activation::Relu,
                };
                y = net.add("relu", relu, vec![y]).unwrap();
            }
            net.mark_output("y", y);
            let count: usize = dims.iter().product();
            let input = crate::Tensor::from_f32(dims, noise(count, seed + 2)).unwrap();
            let what = format!("{dims:?} k{k} s{stride} pad {pre},{post} d{dil}");
            matches_cpu(net.clone(), input.clone(), Precision::Fp32, 1e-5, &what);
            matches_cpu(net, input, Precision::Fp16, 0.01, &what);
        }
    }

    /// A float16 ConvNeXt block and MobileNet's pattern stay channels-last
    /// (`layout.rs`) and give the cpu backend's values: a depthwise 7x7 on
    /// NHWC (two channels a thread, and one for an odd count), the permutes
    /// around LayerNorm and the MLP as views of their inputs, a layer scale
    /// of `[1, C, 1, 1]` on NHWC data, a residual, a depthwise layer reading
    /// the NCHW input and writing NHWC, one reading NHWC and writing the
    /// NCHW output, one at a stride the unrolled kernels leave to the
    /// general loop, and a reshape of a pooled tensor as a view.
    #[test]
    #[ignore]
    fn gpu_channels_last_depthwise_and_permute_views_match_the_cpu_backend() {
        use crate::ir::{Activation, ElementWiseOp, MatrixOp, ReduceOp, ShuffleParams};
        for c in [8usize, 5] {
            let mut net = Network::new("convnext block");
            let x = net.add_input(
                "x",
                DataType::F32,
                [1, 3, 14, 12].map(Dim::Known).to_vec(),
                None,
            );
            let constant = |net: &mut Network, name: &str, dims: &[usize], seed: u32| {
                let n = dims.iter().product();
                let w = net.add_weights(crate::Tensor::from_f32(dims, noise(n, seed)).unwrap());
                net.add(name, LayerKind::Constant { weights: w }, vec![])
                    .unwrap()
            };
            let dw = |net: &mut Network, x, ch: usize, k: usize, stride: usize, seed: u32| {
                let w = crate::Tensor::from_f32(&[ch, 1, k, k], noise(ch * k * k, seed)).unwrap();
                let b = crate::Tensor::from_f32(&[ch], noise(ch, seed + 1)).unwrap();
                let pad = (k / 2) as i64;
                let p = crate::ir::ConvParams {
                    out_channels: ch,
                    kernel_size: vec![k, k],
                    stride: vec![stride; 2],
                    pre_padding: vec![pad; 2],
                    post_padding: vec![pad; 2],
                    dilation: vec![1, 1],
                    groups: ch,
                    kernel: net.add_weights(w),
                    bias: Some(net.add_weights(b)),
                    activation: None,
                };
                net.add(format!("dw{seed}"), LayerKind::Convolution(p), vec![x])
                    .unwrap()
            };
            let permute = |net: &mut Network, x, perm: [usize; 4], name: &str| {
                let p = ShuffleParams {
                    first_transpose: Some(perm.to_vec()),
                    reshape: None,
                    second_transpose: None,
                    zero_is_placeholder: false,
                };
                net.add(name, LayerKind::Shuffle(p), vec![x]).unwrap()
            };
            let ew = |net: &mut Network, op, a, b, name: &str| {
                net.add(name, LayerKind::ElementWise { op }, vec![a, b])
                    .unwrap()
            };
            let stem = conv(&mut net, x, (3, c, 3), ([1, 1], [1, 1]), None, 41);
            let d = dw(&mut net, stem, c, 7, 1, 50);
            let t = permute(&mut net, d, [0, 2, 3, 1], "to_last");
            let scale = constant(&mut net, "ln_scale", &[1, 1, 1, c], 61);
            let bias = constant(&mut net, "ln_bias", &[1, 1, 1, c], 62);
            let norm = LayerKind::Normalization {
                axes: vec![3],
                epsilon: 1e-6,
                groups: 1,
            };
            let ln = net.add("ln", norm, vec![t, scale, bias]).unwrap();
            let w1 = constant(&mut net, "w1", &[1, 1, c, 2 * c], 63);
            let mm = LayerKind::MatrixMultiply {
                op0: MatrixOp::None,
                op1: MatrixOp::None,
            };
            let h = net.add("fc1", mm.clone(), vec![ln, w1]).unwrap();
            let b1 = constant(&mut net, "b1", &[1, 1, 1, 2 * c], 64);
            let h = ew(&mut net, ElementWiseOp::Sum, h, b1, "fc1_bias");
            let gelu = LayerKind::Activation {
                activation: Activation::GeluErf,
            };
            let h = net.add("gelu", gelu, vec![h]).unwrap();
            let w2 = constant(&mut net, "w2", &[1, 1, 2 * c, c], 65);
            let h = net.add("fc2", mm, vec![h, w2]).unwrap();
            let b2 = constant(&mut net, "b2", &[1, 1, 1, c], 66);
            let h = ew(&mut net, ElementWiseOp::Sum, h, b2, "fc2_bias");
            let back = permute(&mut net, h, [0, 3, 1, 2], "from_last");
            let gamma = constant(&mut net, "layer_scale", &[1, c, 1, 1], 67);
            let scaled = ew(&mut net, ElementWiseOp::Prod, back, gamma, "scale");
            let block = ew(&mut net, ElementWiseOp::Sum, scaled, stem, "residual");
            // A block without the scale (the builder folds it into the
            // Linear): the product adds the residual itself, through the
            // permute back (`linear_residual.rs`).
            let t2 = permute(&mut net, block, [0, 2, 3, 1], "to_last2");
            let w3 = constant(&mut net, "w3", &[1, 1, c, c], 68);
            let mm = LayerKind::MatrixMultiply {
                op0: MatrixOp::None,
                op1: MatrixOp::None,
            };
            let h = net.add("fc3", mm, vec![t2, w3]).unwrap();
            let b3 = constant(&mut net, "b3", &[1, 1, 1, c], 69);
            let h = ew(&mut net, ElementWiseOp::Sum, b3, h, "fc3_bias");
            let back = permute(&mut net, h, [0, 3, 1, 2], "from_last2");
            let block = ew(&mut net, ElementWiseOp::Sum, block, back, "residual2");
            // Channels-last in, channels-first network output.
            let out_dw = dw(&mut net, block, c, 3, 2, 70);
            let mean = LayerKind::Reduce {
                op: ReduceOp::Avg,
                axes: vec![2, 3],
                keep_dims: true,
            };
            let pooled = net.add("pool", mean, vec![block]).unwrap();
            let flat = ShuffleParams {
                first_transpose: None,
                reshape: Some(vec![1, c as i64]),
                second_transpose: None,
                zero_is_placeholder: false,
            };
            let flat = net
                .add("flatten", LayerKind::Shuffle(flat), vec![pooled])
                .unwrap();
            // A depthwise layer reading the NCHW input, writing NHWC.
            let thin = dw(&mut net, x, 3, 3, 1, 80);
            let after = conv(&mut net, thin, (3, 4, 1), ([0, 0], [0, 0]), None, 90);
            let out = conv(&mut net, block, (c, 4, 1), ([0, 0], [0, 0]), None, 95);
            // A geometry the unrolled kernels do not take (stride 3).
            let odd = dw(&mut net, block, c, 3, 3, 96);
            let odd = conv(&mut net, odd, (c, 4, 1), ([0, 0], [0, 0]), None, 97);
            net.mark_output("out", out);
            net.mark_output("odd", odd);
            net.mark_output("out_dw", out_dw);
            net.mark_output("flat", flat);
            net.mark_output("after", after);
            let ex = CudaExecutor::new(
                &net,
                Precision::Fp16,
                None,
                &Default::default(),
                tactics::Search::Recorded(Default::default()),
            )
            .unwrap();
            assert_eq!(
                ex.view_count(),
                4,
                "to_last, from_last, to_last2 and flatten are views"
            );
            assert_eq!(
                ex.linear_residuals(),
                1,
                "fc3's product adds residual2's other operand"
            );
            drop(ex);
            let input = crate::Tensor::from_f32(&[1, 3, 14, 12], noise(3 * 14 * 12, 7)).unwrap();
            matches_cpu(net, input, Precision::Fp16, 0.02, &format!("{c} channels"));
        }
    }

    /// Layer normalization over trailing dims (the row kernel: rows of one
    /// to a block of threads, one to eight values a thread, scale and bias
    /// per element or one for all) gives the cpu backend's values, in
    /// float32 and float16, and so does a normalization over a leading dim
    /// (the generic kernel).
    #[test]
    #[ignore]
    fn gpu_layer_norms_match_the_cpu_backend() {
        let cases: [(&[usize], &[usize], bool); 8] = [
            (&[1, 7, 7, 768], &[3], true),
            (&[1, 56, 56, 96], &[3], true),
            (&[1, 1, 768], &[2], true),
            (&[4, 2048], &[1], true),
            (&[100, 3], &[1], true),
            (&[2, 5, 6], &[1, 2], true),
            (&[3, 40, 17], &[2], false),
            (&[6, 5, 4], &[0], true),
        ];
        for (dims, axes, per_element) in cases {
            let mut net = Network::new("norm");
            let shape = dims.iter().map(|&d| Dim::Known(d)).collect();
            let x = net.add_input("x", DataType::F32, shape, None);
            // Scale and bias over the normalized dims, 1 elsewhere.
            let sdims: Vec<usize> = (0..dims.len())
                .map(|i| {
                    if per_element && axes.contains(&i) {
                        dims[i]
                    } else {
                        1
                    }
                })
                .collect();
            let n: usize = sdims.iter().product();
            let mut constant = |name: &str, seed: u32, shift: f32| {
                let v = noise(n, seed).iter().map(|a| a + shift).collect();
                let w = net.add_weights(crate::Tensor::from_f32(&sdims, v).unwrap());
                net.add(name, LayerKind::Constant { weights: w }, vec![])
                    .unwrap()
            };
            let scale = constant("scale", 3, 1.0);
            let bias = constant("bias", 4, 0.0);
            let y = net
                .add(
                    "norm",
                    LayerKind::Normalization {
                        axes: axes.to_vec(),
                        epsilon: 1e-6,
                        groups: 1,
                    },
                    vec![x, scale, bias],
                )
                .unwrap();
            net.mark_output("y", y);
            // Rows with an offset, as a network's activations have.
            let count: usize = dims.iter().product();
            let v = noise(count, 9)
                .iter()
                .enumerate()
                .map(|(i, a)| a + (i % 7) as f32)
                .collect();
            let input = crate::Tensor::from_f32(dims, v).unwrap();
            let what = format!("{dims:?} over {axes:?}");
            matches_cpu(net.clone(), input.clone(), Precision::Fp32, 1e-5, &what);
            matches_cpu(net, input, Precision::Fp16, 0.02, &what);
        }
    }
}
