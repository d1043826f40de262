//! `engine-builder inspect`.

use super::common::{human_bytes, PluginArgs};
use anyhow::Result;
use jetrt_engine::engine::Engine;
use jetrt_engine::shape::{format_dims, format_shape};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The engine file
    engine: PathBuf,
    /// Also list every layer
    #[arg(long)]
    layers: bool,
    #[command(flatten)]
    plugins: PluginArgs,
}

pub fn run(a: Args) -> Result<ExitCode> {
    a.plugins.load()?;
    let engine = Engine::load(&a.engine)?;
    let h = engine.header();
    let net = engine.network();
    let size = std::fs::metadata(&a.engine).map(|m| m.len()).unwrap_or(0);
    println!("engine     {} ({})", a.engine.display(), human_bytes(size));
    println!("model      {}", h.name);
    println!("producer   {}", h.producer);
    println!("source     sha256:{}", h.source_hash);
    println!("backend    {}", h.build.backend);
    println!("precision  {}", h.build.precision);
    println!("batch      {}", h.build.batch);
    if !h.build.shapes.is_empty() {
        println!("shapes     {}", h.build.shapes.join(" "));
    }
    if !h.plugins.is_empty() {
        let shown: Vec<String> = h
            .plugins
            .iter()
            .map(|p| {
                let from = p.library.as_deref().unwrap_or("built in");
                format!("{} {} ({from})", p.name, p.version)
            })
            .collect();
        println!("plugins    {}", shown.join(", "));
    }
    println!("inputs");
    for i in &h.inputs {
        let profile = i
            .profile
            .as_ref()
            .map(|p| {
                format!(
                    "  profile min {} opt {} max {}",
                    format_dims(&p.min),
                    format_dims(&p.opt),
                    format_dims(&p.max)
                )
            })
            .unwrap_or_default();
        println!(
            "  {:<20} {:<8} {}{profile}",
            i.name,
            i.dtype.to_string(),
            format_shape(&i.shape)
        );
    }
    println!("outputs");
    for o in &h.outputs {
        println!(
            "  {:<20} {:<8} {}",
            o.name,
            o.dtype.to_string(),
            format_shape(&o.shape)
        );
    }
    let weight_bytes: usize = net.weights.iter().map(|w| w.len() * w.dtype().size()).sum();
    println!(
        "layers     {} ({} of weights)",
        net.layers.len(),
        human_bytes(weight_bytes as u64)
    );
    for (kind, n) in net.layer_histogram() {
        println!("  {kind:<20} {n}");
    }
    if a.layers {
        for (i, l) in net.layers.iter().enumerate() {
            let shapes: Vec<String> = l
                .outputs
                .iter()
                .map(|o| format!("{} {}", o.dtype, format_shape(&o.shape)))
                .collect();
            let kind = match &l.kind {
                jetrt_engine::ir::LayerKind::Plugin(p) => format!("Plugin:{}", p.name),
                k => k.name().to_string(),
            };
            println!(
                "  #{i:<4} {:<16} {:<40} -> {}",
                kind,
                l.name,
                shapes.join(", ")
            );
        }
    }
    match &h.preprocess {
        Some(p) => {
            let size = p
                .input_size
                .map_or("from the input dims".to_string(), |[h, w]| {
                    format!("{h}x{w}")
                });
            println!(
                "preprocess size {size}, mean {:?}, std {:?}, {:?}",
                p.mean, p.std, p.color
            );
        }
        None => println!("preprocess none recorded"),
    }
    if !h.labels.is_empty() {
        let shown: Vec<&str> = h.labels.iter().take(5).map(String::as_str).collect();
        let more = if h.labels.len() > 5 { ", ..." } else { "" };
        println!("labels     {} ({}{more})", h.labels.len(), shown.join(", "));
    }
    println!("plans");
    for p in engine.plans() {
        println!(
            "  {:<10} device {:<10} jetrt {:<8} {}",
            p.key.backend,
            p.key.device,
            p.key.version,
            human_bytes(p.data.len() as u64)
        );
    }
    Ok(ExitCode::SUCCESS)
}
