//! `engine-builder bench`.

use super::common::{open_engine_with, DeviceArgs, PluginArgs, ThreadArgs};
use anyhow::{bail, Context, Result};
use jetrt_engine::backend::BackendKind;
use jetrt_engine::shape::Dim;
use jetrt_engine::{DataType, Tensor, TensorData};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

#[derive(clap::Args)]
pub struct Args {
    /// The engine file
    engine: PathBuf,
    /// Timed runs after the warm-up
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..))]
    runs: u32,
    /// Also print the layers that take the most time
    #[arg(long)]
    profile: bool,
    /// How many layers the profile lists
    #[arg(long, default_value_t = 20, requires = "profile")]
    top: usize,
    /// GPU backends: keep the inputs and outputs in device memory (uploaded
    /// once), as a framework's tensors kept on the GPU are, instead of
    /// copying them from and to host memory every run
    #[arg(long)]
    device_io: bool,
    #[command(flatten)]
    threads: ThreadArgs,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    plugins: PluginArgs,
}

/// Deterministic inputs at batch 1: floats in [-1, 1), integers 0.
fn sample_input(dtype: DataType, dims: &[usize]) -> Tensor {
    let n: usize = dims.iter().product();
    match dtype {
        DataType::F32 => {
            let mut s = 0x2545_f491_u32;
            let v = (0..n)
                .map(|_| {
                    s ^= s << 13;
                    s ^= s >> 17;
                    s ^= s << 5;
                    (s as f32 / u32::MAX as f32) * 2.0 - 1.0
                })
                .collect();
            Tensor::new(dims.to_vec(), TensorData::F32(v)).expect("sizes agree")
        }
        other => Tensor::zeros(other, dims),
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    let mut cfg = a.threads.config();
    cfg.profile = a.profile;
    let (engine, mut ctx) = open_engine_with(&a.engine, &a.plugins, &a.device, &cfg)?;
    let mut inputs = Vec::new();
    for i in &engine.network().inputs {
        let dims: Option<Vec<usize>> = i
            .info
            .shape
            .iter()
            .enumerate()
            .map(|(k, d)| match d {
                Dim::Known(n) => Some(*n),
                _ if k == 0 => Some(1),
                _ => i.profile.as_ref().map(|p| p.opt[k]),
            })
            .collect();
        let Some(dims) = dims else {
            bail!(
                "input '{}' has dynamic dims with no profile to pick a size from",
                i.name
            )
        };
        inputs.push(sample_input(i.info.dtype, &dims));
    }
    // A GPU context runs on inputs bound once (its pinned buffers), as a
    // camera pipeline does: each run uploads them, runs, downloads the
    // outputs and waits. The cpu backend takes host tensors each run.
    let bound = ctx.backend() != BackendKind::Cpu;
    if a.device_io && !bound {
        bail!("--device-io: the cpu backend's inputs and outputs are host memory");
    }
    if bound {
        let dims: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape().to_vec()).collect();
        ctx.set_input_dims(&dims)?;
        for (i, t) in inputs.iter().enumerate() {
            ctx.executor().input_host(i)?.copy_from_slice(t.as_bytes());
        }
        if a.device_io {
            ctx.executor()
                .keep_io_on_device()
                .context("keeping the inputs and outputs on the device")?;
        }
    }
    let mut once = |reset: bool| -> Result<()> {
        if reset {
            ctx.executor().reset_layer_times();
        }
        if bound {
            let ex = ctx.executor();
            ex.enqueue()?;
            ex.synchronize()?;
        } else {
            ctx.run(inputs.clone())?;
        }
        Ok(())
    };
    // Warm up: at least 5 runs and half a second, so caches and the pool are hot.
    let warm_start = Instant::now();
    let mut warm = 0;
    while warm < 5 || warm_start.elapsed() < Duration::from_millis(500) {
        once(false)?;
        warm += 1;
    }
    let mut times = Vec::with_capacity(a.runs as usize);
    let start = Instant::now();
    for k in 0..a.runs {
        // The profile covers the timed runs only: a warm-up's first calls
        // load kernels and libraries (cuBLAS's first product takes ms).
        let t = Instant::now();
        once(k == 0)?;
        times.push(t.elapsed().as_secs_f64() * 1e3);
    }
    let total = start.elapsed().as_secs_f64();
    times.sort_by(f64::total_cmp);
    let pick = |q: f64| times[((times.len() - 1) as f64 * q).round() as usize];
    let on = if ctx.backend() == BackendKind::Cpu {
        let threads = a.threads.threads.map_or_else(
            || std::thread::available_parallelism().map_or(1, |n| n.get()),
            |t| t as usize,
        );
        format!("{threads} thread{}", if threads == 1 { "" } else { "s" })
    } else {
        format!("device {}", a.device.device)
    };
    let batch = inputs
        .first()
        .and_then(|t| t.shape().first().copied())
        .unwrap_or(1);
    let io = match (bound, a.device_io) {
        (true, true) => ", inputs and outputs in device memory",
        (true, false) => ", inputs and outputs copied from and to host memory",
        _ => "",
    };
    println!(
        "bench {} on {}, {on}, batch {batch}, {} runs after {warm} warm-up{io}",
        engine.header().name,
        ctx.backend(),
        a.runs
    );
    println!("median {:.3} ms", pick(0.5));
    println!("p99 {:.3} ms", pick(0.99));
    println!("fps {:.1}", a.runs as f64 / total);
    if let Some(mut times) = ctx.layer_times() {
        let all: f64 = times.iter().map(|t| t.total_ms).sum();
        let runs = times.iter().map(|t| t.runs).max().unwrap_or(1).max(1) as f64;
        times.sort_by(|a, b| b.total_ms.total_cmp(&a.total_ms));
        println!("\nlayers by time (mean over {runs} runs):");
        for t in times.iter().take(a.top) {
            println!(
                "  {:>8.3} ms {:>5.1}%  {:<28} {:<32} {}",
                t.total_ms / runs,
                100.0 * t.total_ms / all,
                t.kind,
                t.detail,
                t.layer
            );
        }
        // Fused steps count under the layer they start with.
        let mut kinds: Vec<(&str, f64)> = Vec::new();
        for t in &times {
            let kind = t.kind.split('+').next().unwrap_or(&t.kind);
            match kinds.iter_mut().find(|(k, _)| *k == kind) {
                Some(e) => e.1 += t.total_ms,
                None => kinds.push((kind, t.total_ms)),
            }
        }
        kinds.sort_by(|a, b| b.1.total_cmp(&a.1));
        println!("by kind:");
        for (k, ms) in kinds {
            println!("  {:>8.3} ms {:>5.1}%  {k}", ms / runs, 100.0 * ms / all);
        }
    }
    Ok(ExitCode::SUCCESS)
}
