//! The build pipeline: ONNX model -> network -> optimized network -> backend
//! plan -> engine.

use crate::convert::{self, ConvertOptions, Registry};
use crate::error::{Error, Result};
use crate::onnx::OnnxModel;
use crate::optimize;
use jetrt_engine::backend::{self, BackendKind, BuildConfig, Precision, Tactics};
use jetrt_engine::engine::Engine;
use jetrt_engine::engine_file::{
    BuildRecord, EngineHeader, IoDesc, Plan, PluginRequirement, Preprocess,
};
use jetrt_engine::ir::Network;
use jetrt_engine::plugin::PluginLibrary;
use std::path::PathBuf;

/// Which backend to build for.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum BackendChoice {
    /// The most capable backend compiled in and usable here.
    #[default]
    Auto,
    Kind(BackendKind),
}

#[derive(Clone, Debug, Default)]
pub struct BuildOptions {
    pub backend: BackendChoice,
    pub convert: ConvertOptions,
    pub precision: Precision,
    /// The most scratch memory one layer may use on a device, in bytes.
    pub workspace: Option<usize>,
    /// Which GPU to build for.
    pub device: usize,
    /// How GPU layers' algorithms are picked.
    pub tactics: Tactics,
    /// A timing cache file to read and extend.
    pub timing_cache: Option<PathBuf>,
    /// Preprocessing hints recorded in the engine.
    pub preprocess: Option<Preprocess>,
    pub labels: Vec<String>,
    /// User plugin libraries the engine may need.
    pub plugins: Vec<PathBuf>,
    /// `--shape` as the user gave it, for the engine's build record.
    pub shape_args: Vec<String>,
}

/// A step of a build, reported as it starts.
#[derive(Clone, Debug)]
pub enum Stage<'a> {
    Converting { nodes: usize },
    Optimizing { pass: &'a str },
    Planning { backend: BackendKind },
}

impl std::fmt::Display for Stage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Stage::Converting { nodes } => write!(f, "converting {nodes} nodes"),
            Stage::Optimizing { pass } => write!(f, "optimizing: {pass}"),
            Stage::Planning { backend } => write!(f, "building the {backend} plan"),
        }
    }
}

/// Loads every plugin library, so that missing or foreign ones fail early.
pub fn load_plugins(paths: &[PathBuf]) -> Result<Vec<PluginLibrary>> {
    paths
        .iter()
        .map(|p| PluginLibrary::load(p).map_err(Error::Engine))
        .collect()
}

/// The libraries (file names) that provided the plugins an engine uses.
fn libraries_needed(plugins: &[PluginRequirement]) -> Vec<String> {
    let mut v: Vec<String> = Vec::new();
    for l in plugins.iter().filter_map(|p| p.library.clone()) {
        if !v.contains(&l) {
            v.push(l);
        }
    }
    v
}

/// Converts and optimizes a model into a network.
pub fn network(
    model: &OnnxModel,
    registry: &Registry,
    opts: &ConvertOptions,
    progress: &mut dyn FnMut(Stage<'_>),
) -> Result<Network> {
    progress(Stage::Converting {
        nodes: model.graph().node.len(),
    });
    let mut net = convert::convert(model, registry, opts)?;
    for (name, pass) in optimize::PASSES {
        progress(Stage::Optimizing { pass: name });
        net = pass(&net)?;
        net.check()?;
    }
    Ok(net)
}

/// Builds an engine from a model.
pub fn build_engine(
    model: &OnnxModel,
    registry: &Registry,
    opts: &BuildOptions,
    progress: &mut dyn FnMut(Stage<'_>),
) -> Result<Engine> {
    load_plugins(&opts.plugins)?;
    let b = match opts.backend {
        BackendChoice::Auto => backend::auto_on(opts.device),
        BackendChoice::Kind(k) => {
            let b = backend::backend_on(k, opts.device)?;
            b.probe()?;
            b
        }
    };
    if !b.capabilities().precisions.contains(&opts.precision) {
        return Err(Error::Options(format!(
            "the {} backend cannot build {} engines (it computes in {}); drop --fp16, or build with a GPU backend",
            b.kind(),
            opts.precision,
            b.capabilities()
                .precisions
                .iter()
                .map(|p| p.name())
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let net = network(model, registry, &opts.convert, progress)?;
    progress(Stage::Planning { backend: b.kind() });
    let cfg = BuildConfig {
        precision: opts.precision,
        workspace: opts.workspace,
        device: opts.device,
        tactics: opts.tactics,
        timing_cache: opts.timing_cache.clone(),
    };
    let data = b.build(&net, &cfg)?;
    let plan = Plan {
        key: b.plan_key()?,
        data,
    };
    let io = |name: &str, info: &jetrt_engine::ir::TensorInfo, profile| IoDesc {
        name: name.to_string(),
        dtype: info.dtype,
        shape: info.shape.clone(),
        profile,
    };
    let plugins = PluginRequirement::of_network(&net);
    let header = EngineHeader {
        name: model.name(),
        producer: format!("jetrt {}", jetrt_engine::VERSION),
        source_hash: model.hash.clone(),
        build: BuildRecord {
            backend: b.kind().to_string(),
            precision: opts.precision.name().into(),
            batch: opts.convert.batch.to_string(),
            shapes: opts.shape_args.clone(),
            plugins: libraries_needed(&plugins),
            workspace: opts.workspace.map(|w| w as u64),
        },
        inputs: net
            .inputs
            .iter()
            .map(|i| io(&i.name, &i.info, i.profile.clone()))
            .collect(),
        outputs: net
            .outputs
            .iter()
            .map(|o| io(&o.name, net.info(o.tensor), None))
            .collect(),
        preprocess: opts.preprocess.clone(),
        labels: opts.labels.clone(),
        plugins,
    };
    Ok(Engine::new(header, net, vec![plan]))
}
