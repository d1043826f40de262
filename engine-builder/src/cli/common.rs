//! Arguments and helpers shared by subcommands.

use anyhow::{bail, Context, Result};
use engine_builder::build::load_plugins;
use engine_builder::build::BackendChoice;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use jetrt_engine::backend::{BackendKind, Precision, RunConfig, Tactics};
use jetrt_engine::engine::{Context as RunContext, Engine};
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `--plugin LIB`, taken by every subcommand that builds or loads an engine.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct PluginArgs {
    /// A plugin library (.so) with layers the engine needs; repeatable
    #[arg(long = "plugin", value_name = "LIB")]
    pub plugins: Vec<PathBuf>,
}

impl PluginArgs {
    pub fn load(&self) -> Result<()> {
        load_plugins(&self.plugins)?;
        Ok(())
    }
}

/// `--threads T` for subcommands that run engines.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct ThreadArgs {
    /// Worker threads for the cpu backend (default: every core)
    #[arg(long, value_name = "T", value_parser = clap::value_parser!(u32).range(1..=4096))]
    pub threads: Option<u32>,
}

impl ThreadArgs {
    pub fn config(&self) -> RunConfig {
        RunConfig {
            threads: self.threads.map(|t| t as usize),
            ..Default::default()
        }
    }
}

/// The backend names `--backend` takes.
pub const BACKENDS: [&str; 4] = ["auto", "cpu", "cuda", "tensorrt"];

/// `None` for auto, else the backend named.
fn backend_choice(name: &str) -> Option<BackendKind> {
    match name {
        "auto" => None,
        other => BackendKind::parse(other),
    }
}

/// `--backend` and `--device` for subcommands that run an engine.
#[derive(clap::Args, Clone, Debug, Default)]
pub struct DeviceArgs {
    /// Backend to run on (default: the one the engine was built for; auto
    /// picks the best one compiled in and usable here)
    #[arg(long, value_parser = BACKENDS)]
    pub backend: Option<String>,
    /// Which GPU to use, as an index among the machine's GPUs
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub device: usize,
}

/// What `build` and `test` build for: backend, device, precision, scratch.
#[derive(clap::Args, Clone, Debug)]
pub struct TargetArgs {
    /// Backend to build for: auto picks the best one compiled in and usable
    /// here (tensorrt, then cuda, then cpu)
    #[arg(long, default_value = "auto", value_parser = BACKENDS)]
    pub backend: String,
    /// Which GPU to build for, as an index among the machine's GPUs
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub device: usize,
    /// Store float tensors in half precision (GPU backends)
    #[arg(long)]
    pub fp16: bool,
    /// The most scratch memory one layer may use on the GPU, in MiB
    #[arg(long, value_name = "MiB", value_parser = clap::value_parser!(u64).range(1..=1 << 20))]
    pub workspace: Option<u64>,
    /// How a GPU build picks each convolution's algorithm: timed runs every
    /// candidate on this GPU and records the fastest in the engine;
    /// heuristic takes cuDNN's first guess (a quicker build)
    #[arg(long, default_value = "timed", value_parser = ["timed", "heuristic"])]
    pub tactics: String,
    /// A file of timed choices to reuse and extend across builds (GPU
    /// backends; created if missing, ignored if written on another GPU)
    #[arg(long, value_name = "FILE")]
    pub timing_cache: Option<PathBuf>,
}

impl TargetArgs {
    pub fn backend(&self) -> BackendChoice {
        match backend_choice(&self.backend) {
            None => BackendChoice::Auto,
            Some(k) => BackendChoice::Kind(k),
        }
    }

    pub fn precision(&self) -> Precision {
        if self.fp16 {
            Precision::Fp16
        } else {
            Precision::Fp32
        }
    }

    pub fn workspace_bytes(&self) -> Option<usize> {
        self.workspace.map(|m| (m as usize) << 20)
    }

    pub fn tactics(&self) -> Tactics {
        Tactics::parse(&self.tactics).unwrap_or_default()
    }
}

/// Loads an engine file, with its plugins, and makes a context for it.
pub fn open_engine(
    path: &Path,
    plugins: &PluginArgs,
    threads: &ThreadArgs,
    device: &DeviceArgs,
) -> Result<(Engine, RunContext)> {
    open_engine_with(path, plugins, device, &threads.config())
}

/// As [`open_engine`], with every run option.
pub fn open_engine_with(
    path: &Path,
    plugins: &PluginArgs,
    device: &DeviceArgs,
    cfg: &RunConfig,
) -> Result<(Engine, RunContext)> {
    plugins.load()?;
    let engine = Engine::load(path)?;
    let backend = match &device.backend {
        Some(name) => backend_choice(name),
        None => BackendKind::parse(&engine.header().build.backend),
    };
    let cfg = RunConfig {
        device: device.device,
        ..cfg.clone()
    };
    let ctx = engine
        .context(backend, &cfg)
        .with_context(|| format!("cannot run {} here", path.display()))?;
    Ok((engine, ctx))
}

/// A spinner with a message on stderr, shown only on a terminal.
pub fn spinner() -> ProgressBar {
    let pb = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr());
    pb.set_style(
        ProgressStyle::with_template("{spinner} {msg} ({elapsed})").expect("valid template"),
    );
    pb.enable_steady_tick(Duration::from_millis(100));
    pb
}

/// Parses `HxW`.
pub fn parse_hw(s: &str) -> Result<[usize; 2], String> {
    let (h, w) = s
        .split_once(['x', 'X'])
        .ok_or_else(|| format!("'{s}' is not HxW (e.g. 224x224)"))?;
    let p = |v: &str| v.trim().parse::<usize>().ok().filter(|&n| n > 0);
    match (p(h), p(w)) {
        (Some(h), Some(w)) => Ok([h, w]),
        _ => Err(format!("'{s}' is not HxW with positive sizes")),
    }
}

/// Parses three comma-separated numbers.
pub fn parse_triple(s: &str) -> Result<[f32; 3], String> {
    let v: Vec<f32> = s
        .split(',')
        .map(|x| x.trim().parse::<f32>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("'{s}' is not three comma-separated numbers"))?;
    match v[..] {
        [a, b, c] if v.iter().all(|x| x.is_finite()) => Ok([a, b, c]),
        _ => Err(format!("'{s}' is not three comma-separated numbers")),
    }
}

/// Parses `NAME=D0xD1x...`.
pub fn parse_shape(s: &str) -> Result<(String, Vec<usize>), String> {
    let (name, dims) = s
        .rsplit_once('=')
        .ok_or_else(|| format!("'{s}' is not NAME=D0xD1x... (e.g. input=1x3x224x224)"))?;
    let dims: Vec<usize> = dims
        .split(['x', 'X'])
        .map(|d| d.trim().parse::<usize>())
        .collect::<Result<_, _>>()
        .map_err(|_| format!("'{s}': dims must be numbers separated by 'x'"))?;
    if name.is_empty() {
        return Err(format!("'{s}' names no input"));
    }
    Ok((name.to_string(), dims))
}

/// Reads a labels file: one label per line.
pub fn read_labels(path: &Path) -> Result<Vec<String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read labels file {}", path.display()))?;
    let labels: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
    let end = labels
        .iter()
        .rposition(|l| !l.is_empty())
        .map_or(0, |i| i + 1);
    if end == 0 {
        bail!("labels file {} is empty", path.display());
    }
    Ok(labels[..end].to_vec())
}

/// Byte counts as `12.3 MB`.
pub fn human_bytes(n: u64) -> String {
    let n = n as f64;
    if n >= 1e9 {
        format!("{:.2} GB", n / 1e9)
    } else if n >= 1e6 {
        format!("{:.1} MB", n / 1e6)
    } else if n >= 1e3 {
        format!("{:.1} KB", n / 1e3)
    } else {
        format!("{n} B")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parsers() {
        assert_eq!(parse_hw("224x320"), Ok([224, 320]));
        assert!(parse_hw("224").is_err());
        assert!(parse_hw("0x5").is_err());
        assert_eq!(
            parse_triple("0.485, 0.456,0.406"),
            Ok([0.485, 0.456, 0.406])
        );
        assert!(parse_triple("1,2").is_err());
        assert!(parse_triple("1,2,nan").is_err());
        assert_eq!(
            parse_shape("input=1x3x299x299"),
            Ok(("input".into(), vec![1, 3, 299, 299]))
        );
        assert!(parse_shape("input=1x3xa").is_err());
        assert!(parse_shape("=1").is_err());
    }
}
