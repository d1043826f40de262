//! `engine-builder build`.

use super::common::{
    human_bytes, parse_hw, parse_shape, parse_triple, read_labels, spinner, PluginArgs, TargetArgs,
};
use anyhow::{Context, Result};
use engine_builder::build::{build_engine, BuildOptions};
use engine_builder::convert::{BatchProfile, Registry};
use engine_builder::onnx::OnnxModel;
use jetrt_engine::engine_file::{ColorOrder, Preprocess};
use jetrt_engine::shape::format_shape;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

#[derive(clap::Args)]
pub struct Args {
    /// The ONNX model (as written by torch.onnx.export)
    model: PathBuf,
    /// Where to write the engine
    #[arg(short, long, value_name = "OUT.engine")]
    output: PathBuf,
    #[command(flatten)]
    target: TargetArgs,
    /// Profile of a dynamic batch dim
    #[arg(long, default_value = "1:1:1", value_name = "MIN:OPT:MAX")]
    batch: BatchProfile,
    /// Fix all dims of an input; repeatable
    #[arg(long = "shape", value_name = "NAME=D0xD1x...", value_parser = parse_shape)]
    shapes: Vec<(String, Vec<usize>)>,
    /// Preprocessing: the image size the model takes
    #[arg(long, value_name = "HxW", value_parser = parse_hw)]
    input_size: Option<[usize; 2]>,
    /// Preprocessing: per-channel mean, on pixels scaled to 0..1
    #[arg(long, value_name = "a,b,c", value_parser = parse_triple)]
    mean: Option<[f32; 3]>,
    /// Preprocessing: per-channel standard deviation
    #[arg(long, value_name = "a,b,c", value_parser = parse_triple)]
    std: Option<[f32; 3]>,
    /// Preprocessing: channel order the model expects
    #[arg(long, value_parser = ["rgb", "bgr"])]
    color: Option<String>,
    /// Class labels for classifier summaries: a text file, one name per line in the order of the model's outputs (line 1 is class 0)
    #[arg(long, value_name = "FILE")]
    labels: Option<PathBuf>,
    #[command(flatten)]
    plugins: PluginArgs,
}

pub fn run(a: Args) -> Result<ExitCode> {
    let t0 = Instant::now();
    if let Some(std) = a.std {
        if std.contains(&0.0) {
            anyhow::bail!("--std values must not be zero");
        }
    }
    let preprocess =
        (a.input_size.is_some() || a.mean.is_some() || a.std.is_some() || a.color.is_some()).then(
            || {
                let d = Preprocess::default();
                Preprocess {
                    input_size: a.input_size,
                    mean: a.mean.unwrap_or(d.mean),
                    std: a.std.unwrap_or(d.std),
                    color: match a.color.as_deref() {
                        Some("bgr") => ColorOrder::Bgr,
                        _ => ColorOrder::Rgb,
                    },
                }
            },
        );
    let labels = match &a.labels {
        Some(p) => read_labels(p)?,
        None => vec![],
    };
    let mut opts = BuildOptions {
        backend: a.target.backend(),
        precision: a.target.precision(),
        workspace: a.target.workspace_bytes(),
        device: a.target.device,
        tactics: a.target.tactics(),
        timing_cache: a.target.timing_cache.clone(),
        preprocess,
        labels,
        plugins: a.plugins.plugins.clone(),
        shape_args: a
            .shapes
            .iter()
            .map(|(n, d)| {
                format!(
                    "{n}={}",
                    d.iter()
                        .map(|x| x.to_string())
                        .collect::<Vec<_>>()
                        .join("x")
                )
            })
            .collect(),
        ..Default::default()
    };
    opts.convert.batch = a.batch;
    for (name, dims) in &a.shapes {
        opts.convert
            .shapes
            .insert(name.clone(), dims.iter().map(|&d| Some(d)).collect());
    }

    let pb = spinner();
    pb.set_message(format!("reading {}", a.model.display()));
    let model = OnnxModel::load(&a.model)?;
    let registry = Registry::with_defaults();
    let engine = build_engine(&model, &registry, &opts, &mut |stage| {
        pb.set_message(stage.to_string())
    })?;
    pb.set_message(format!("writing {}", a.output.display()));
    engine.save(&a.output).context("cannot write the engine")?;
    pb.finish_and_clear();

    let h = engine.header();
    let size = std::fs::metadata(&a.output).map(|m| m.len()).unwrap_or(0);
    println!(
        "built {} from {} in {:.2} s ({} backend, {})",
        a.output.display(),
        a.model.display(),
        t0.elapsed().as_secs_f64(),
        h.build.backend,
        h.build.precision
    );
    for i in &h.inputs {
        let profile = i
            .profile
            .as_ref()
            .map(|p| format!("  (batch {}..{})", p.min[0], p.max[0]))
            .unwrap_or_default();
        println!(
            "  input   {} {} {}{profile}",
            i.name,
            i.dtype,
            format_shape(&i.shape)
        );
    }
    for o in &h.outputs {
        println!(
            "  output  {} {} {}",
            o.name,
            o.dtype,
            format_shape(&o.shape)
        );
    }
    let net = engine.network();
    let hist: Vec<String> = net
        .layer_histogram()
        .iter()
        .map(|(k, n)| format!("{k} {n}"))
        .collect();
    println!("  layers  {} ({})", net.layers.len(), hist.join(", "));
    println!("  size    {}", human_bytes(size));
    Ok(ExitCode::SUCCESS)
}
