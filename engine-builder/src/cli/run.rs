//! `engine-builder run`.

use super::common::{open_engine, DeviceArgs, PluginArgs, ThreadArgs};
use anyhow::{bail, Context, Result};
use engine_builder::onnx::{read_pb, write_pb};
use engine_builder::testcase::order_inputs;
use jetrt_engine::engine::Engine;
use jetrt_engine::engine_file::Preprocess;
use jetrt_engine::preprocess::rgb_to_tensor;
use jetrt_engine::shape::{format_dims, Dim};
use jetrt_engine::{DataType, Tensor};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// The engine file
    engine: PathBuf,
    /// Input tensors as .pb files, in the engine's input order
    #[arg(long = "input", value_name = "input_J.pb", num_args = 1.., required_unless_present = "image", conflicts_with = "image")]
    inputs: Vec<PathBuf>,
    /// An image (PNG, JPEG, BMP, PPM), preprocessed as the engine records
    #[arg(long, value_name = "PATH")]
    image: Option<PathBuf>,
    /// Write the outputs to DIR as output_J.pb files (none written without it)
    #[arg(short, long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
    /// How many classes a classifier summary lists
    #[arg(long, default_value_t = 5)]
    top: usize,
    #[command(flatten)]
    threads: ThreadArgs,
    #[command(flatten)]
    device: DeviceArgs,
    #[command(flatten)]
    plugins: PluginArgs,
}

/// An image as the engine's single float32 NCHW input.
pub fn image_input(engine: &Engine, path: &Path) -> Result<Tensor> {
    let net = engine.network();
    let input = match net.inputs.as_slice() {
        [i] => i,
        _ => bail!(
            "--image needs an engine with one input; this one has {}",
            net.inputs.len()
        ),
    };
    let dims = &input.info.shape;
    if input.info.dtype != DataType::F32 || dims.len() != 4 || dims[1] != Dim::Known(3) {
        bail!(
            "--image needs an engine whose input is float32 Nx3xHxW; '{}' is {} {}",
            input.name,
            input.info.dtype,
            jetrt_engine::shape::format_shape(dims)
        );
    }
    let pre = engine.header().preprocess.clone().unwrap_or_else(|| {
        log::warn!("the engine records no preprocessing; feeding pixels scaled to 0..1 (build with --mean/--std to set it)");
        Preprocess::default()
    });
    let [h, w] = match (pre.input_size, dims[2].known(), dims[3].known()) {
        (_, Some(h), Some(w)) => [h, w],
        (Some(hw), _, _) => hw,
        _ => bail!("the engine's input size is dynamic and it records no --input-size"),
    };
    let img = image::open(path)
        .with_context(|| format!("cannot read image {}", path.display()))?
        .to_rgb8();
    let t = rgb_to_tensor(
        img.as_raw(),
        img.width() as usize,
        img.height() as usize,
        h,
        w,
        &pre,
    );
    Ok(t)
}

fn softmax(v: &[f64]) -> Vec<f64> {
    let m = v.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    let e: Vec<f64> = v.iter().map(|x| (x - m).exp()).collect();
    let s: f64 = e.iter().sum();
    e.into_iter().map(|x| x / s).collect()
}

/// Prints what a user wants to see of an output: statistics, and the top
/// classes of a classifier or the class shares of a segmentation map.
pub fn summarize(name: &str, t: &Tensor, labels: &[String], top: usize) {
    let v = t.to_f64_vec();
    let finite: Vec<f64> = v.iter().copied().filter(|x| x.is_finite()).collect();
    let (min, max) = finite
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), &x| {
            (a.min(x), b.max(x))
        });
    let mean = finite.iter().sum::<f64>() / finite.len().max(1) as f64;
    println!(
        "output '{name}' {} {}: min {min:.4} max {max:.4} mean {mean:.4}",
        t.dtype(),
        format_dims(t.shape())
    );
    let label = |i: usize| labels.get(i).map(|l| format!(" {l}")).unwrap_or_default();
    let s = t.shape();
    if !t.dtype().is_float() || v.is_empty() {
        return;
    }
    if s.len() == 2 && s[1] >= 2 {
        let c = s[1];
        for (b, row) in v.chunks(c).enumerate() {
            let is_prob = row.iter().all(|&x| (0.0..=1.0).contains(&x))
                && (row.iter().sum::<f64>() - 1.0).abs() < 1e-3;
            let p = if is_prob { row.to_vec() } else { softmax(row) };
            let mut idx: Vec<usize> = (0..c).collect();
            idx.sort_by(|&i, &j| p[j].total_cmp(&p[i]));
            if s[0] > 1 {
                println!("  batch {b}:");
            }
            println!("  top-{}:", top.min(c));
            for &i in idx.iter().take(top) {
                println!(
                    "    {:>6.2}%  class {i}{}  ({:.4})",
                    p[i] * 100.0,
                    label(i),
                    row[i]
                );
            }
        }
    } else if s.len() == 4 && s[1] >= 2 {
        // Segmentation: share of pixels per argmax class.
        let (n, c, plane) = (s[0], s[1], s[2] * s[3]);
        let mut counts = vec![0usize; c];
        for b in 0..n {
            for p in 0..plane {
                let best = (0..c)
                    .max_by(|&i, &j| {
                        v[(b * c + i) * plane + p].total_cmp(&v[(b * c + j) * plane + p])
                    })
                    .unwrap_or(0);
                counts[best] += 1;
            }
        }
        let mut idx: Vec<usize> = (0..c).filter(|&i| counts[i] > 0).collect();
        idx.sort_by(|&i, &j| counts[j].cmp(&counts[i]));
        println!(
            "  argmax map {}x{}x{}; classes by pixel share:",
            n, s[2], s[3]
        );
        for &i in idx.iter().take(top) {
            println!(
                "    {:>6.2}%  class {i}{}",
                counts[i] as f64 * 100.0 / (n * plane) as f64,
                label(i)
            );
        }
    }
}

pub fn run(a: Args) -> Result<ExitCode> {
    let (engine, mut ctx) = open_engine(&a.engine, &a.plugins, &a.threads, &a.device)?;
    let inputs = match &a.image {
        Some(img) => vec![image_input(&engine, img)?],
        None => {
            let given: Vec<(String, Tensor)> = a
                .inputs
                .iter()
                .map(|p| read_pb(p).map(|(t, n)| (n, t)))
                .collect::<Result<_, _>>()?;
            let names: Vec<String> = engine
                .network()
                .inputs
                .iter()
                .map(|i| i.name.clone())
                .collect();
            order_inputs(&names, &given).map_err(anyhow::Error::msg)?
        }
    };
    let t = Instant::now();
    let outputs = ctx.run(inputs)?;
    let ms = t.elapsed().as_secs_f64() * 1e3;
    if let Some(dir) = &a.output_dir {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    let h = engine.header();
    println!("ran {} on {} in {ms:.2} ms", h.name, ctx.backend());
    for (j, (o, desc)) in outputs.iter().zip(&h.outputs).enumerate() {
        summarize(&desc.name, o, &h.labels, a.top);
        if let Some(dir) = &a.output_dir {
            let path = dir.join(format!("output_{j}.pb"));
            write_pb(&path, o, &desc.name)?;
            println!("  wrote {}", path.display());
        }
    }
    Ok(ExitCode::SUCCESS)
}
