//! Engines for the pipelines: a prebuilt `.engine` file, or an ONNX model
//! built on first start and cached in the state directory.
//!
//! The cache key is a SHA-256 over everything that changes the result:
//! the model's bytes, the build options (and the labels file's bytes), the
//! backend and device a plan is built for, the jetrt version and the plugin
//! libraries. Any change gives a new key, so a stale engine is never used
//! (a complaint users have of engine caches keyed by name or batch only).

use crate::config::{BuildSettings, EngineConfig, EngineOrigin};
use crate::error::{Error, Result};
use engine_builder::build::{build_engine, BackendChoice, BuildOptions};
use engine_builder::convert::{BatchProfile, Registry};
use engine_builder::onnx::{hex, OnnxModel};
use jetrt_engine::backend::{self, BackendKind, RunConfig};
use jetrt_engine::engine::{Context, Engine};
use jetrt_engine::engine_file::{ColorOrder, Preprocess};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::time::Instant;

/// An engine ready to give contexts to pipelines.
pub struct LoadedEngine {
    pub name: String,
    pub config: EngineConfig,
    pub engine: Engine,
    /// The file it was read from (the cache entry for ONNX engines).
    pub file: Option<PathBuf>,
    backend: Option<BackendKind>,
}

impl LoadedEngine {
    /// A new execution context (each pipeline has its own).
    pub fn context(&self) -> Result<Context> {
        let cfg = RunConfig {
            threads: self.config.threads,
            device: self.config.device,
            ..Default::default()
        };
        self.engine
            .context(self.backend, &cfg)
            .map_err(|e| self.error(format!("cannot make a context: {e}")))
    }

    fn error(&self, msg: String) -> Error {
        Error::Engine {
            name: self.name.clone(),
            msg,
        }
    }
}

fn err(name: &str, msg: impl std::fmt::Display) -> Error {
    Error::Engine {
        name: name.to_string(),
        msg: msg.to_string(),
    }
}

fn backend_kind(name: &str, cfg: &EngineConfig) -> Result<Option<BackendKind>> {
    match cfg.backend.as_deref() {
        None => Ok(None),
        Some(b) => BackendKind::parse(b)
            .map(Some)
            .ok_or_else(|| err(name, format!("unknown backend '{b}'"))),
    }
}

/// Loads (or builds and caches) the engine `name`, telling `stage` where
/// a build is (for [`crate::building::with_heartbeat`]).
pub fn load(
    name: &str,
    cfg: &EngineConfig,
    state_dir: &Path,
    stage: &dyn Fn(&str),
) -> Result<LoadedEngine> {
    engine_builder::build::load_plugins(&cfg.plugins).map_err(|e| err(name, e))?;
    let backend = backend_kind(name, cfg)?;
    let (engine, file) = match &cfg.origin {
        EngineOrigin::Prebuilt(path) => {
            let e = Engine::load(path).map_err(|e| err(name, e))?;
            (e, Some(path.clone()))
        }
        EngineOrigin::Onnx { model, build } => {
            let (e, f) = cached_build(name, cfg, model, build, backend, state_dir, stage)?;
            (e, f)
        }
    };
    // A backend named in the engine wins over auto when the config says auto.
    let backend = backend.or_else(|| BackendKind::parse(&engine.header().build.backend));
    let loaded = LoadedEngine {
        name: name.to_string(),
        config: cfg.clone(),
        engine,
        file,
        backend,
    };
    // Making one context now proves the engine runs here before READY.
    loaded.context()?;
    Ok(loaded)
}

fn read(name: &str, path: &Path, what: &str) -> Result<Vec<u8>> {
    std::fs::read(path)
        .map_err(|e| err(name, format!("cannot read {what} {}: {e}", path.display())))
}

/// The cache key of an ONNX engine, and the model's sha256 (what a build's
/// header records as its source).
pub fn cache_key(
    name: &str,
    cfg: &EngineConfig,
    model: &Path,
    build: &BuildSettings,
    backend: Option<BackendKind>,
) -> Result<(String, String)> {
    let mut h = Sha256::new();
    let mut field = |tag: &str, bytes: &[u8]| {
        // Length-prefixed, so that no two field lists hash alike.
        h.update((tag.len() as u64).to_le_bytes());
        h.update(tag.as_bytes());
        h.update((bytes.len() as u64).to_le_bytes());
        h.update(bytes);
    };
    let model_bytes = read(name, model, "model")?;
    // As the build's header records it (`OnnxModel::hash`).
    let model_sha = hex(&Sha256::digest(&model_bytes));
    field("model", &model_bytes);
    drop(model_bytes);
    field("build", format!("{build:?}").as_bytes());
    if let Some(l) = &build.labels {
        field("labels", &read(name, l, "labels file")?);
    }
    let b = match backend {
        Some(k) => backend::backend_on(k, cfg.device).map_err(|e| err(name, e))?,
        None => backend::auto_on(cfg.device),
    };
    let key = b.plan_key().map_err(|e| err(name, e))?;
    field("backend", key.backend.as_bytes());
    field("device", key.device.as_bytes());
    field("version", key.version.as_bytes());
    field("jetrt", crate::VERSION.as_bytes());
    for p in &cfg.plugins {
        field("plugin", &read(name, p, "plugin library")?);
    }
    let digest = h.finalize();
    Ok((hex(&digest), model_sha))
}

fn cached_build(
    name: &str,
    cfg: &EngineConfig,
    model: &Path,
    build: &BuildSettings,
    backend: Option<BackendKind>,
    state_dir: &Path,
    stage: &dyn Fn(&str),
) -> Result<(Engine, Option<PathBuf>)> {
    let (key, model_sha) = cache_key(name, cfg, model, build, backend)?;
    let dir = state_dir.join("engines");
    let path = dir.join(format!("{name}-{}.engine", &key[..16]));
    remove_orphans(&dir, name);
    if path.exists() {
        match Engine::load(&path) {
            // A file at the path that is a valid engine of another model
            // (copied there, or a key collision) is not this build.
            Ok(e) if e.header().source_hash != model_sha => log::warn!(
                "engine '{name}': {} is a build of another model (source sha256 {}); rebuilding",
                path.display(),
                e.header().source_hash
            ),
            Ok(e) => {
                log::info!("engine '{name}': using the cached build {}", path.display());
                return Ok((e, Some(path)));
            }
            Err(e) => log::warn!("engine '{name}': the cached build is unusable ({e}); rebuilding"),
        }
    }
    log::info!(
        "engine '{name}': building {} (first start with these options; cached afterwards)",
        model.display()
    );
    let t = Instant::now();
    let opts = build_options(name, cfg, build, backend)?;
    let onnx = OnnxModel::load(model).map_err(|e| err(name, e))?;
    let engine = build_engine(&onnx, &Registry::with_defaults(), &opts, &mut |s| {
        // Passes are many and quick; the other stages are worth a line.
        match s {
            engine_builder::build::Stage::Optimizing { .. } => log::debug!("engine '{name}': {s}"),
            _ => log::info!("engine '{name}': {s}"),
        }
        stage(&s.to_string());
    })
    .map_err(|e| err(name, e))?;
    log::info!(
        "engine '{name}': built in {:.1} s",
        t.elapsed().as_secs_f64()
    );
    let saved = std::fs::create_dir_all(&dir)
        .map_err(|e| e.to_string())
        .and_then(|_| engine.save(&path).map_err(|e| e.to_string()));
    match saved {
        Ok(()) => {
            remove_stale(&dir, name, &path);
            Ok((engine, Some(path)))
        }
        Err(e) => {
            log::warn!(
                "engine '{name}': cannot cache the build in {} ({e}); it will be rebuilt on the next start",
                dir.display()
            );
            Ok((engine, None))
        }
    }
}

/// Removes older cache entries of the same engine name.
fn remove_stale(dir: &Path, name: &str, keep: &Path) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let stem = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let ours = stem
            .strip_prefix(name)
            .and_then(|r| r.strip_prefix('-'))
            .is_some_and(|r| r.len() == 16 + ".engine".len() && r.ends_with(".engine"));
        if ours && p != keep {
            log::info!(
                "engine '{name}': removing the outdated build {}",
                p.display()
            );
            let _ = std::fs::remove_file(&p);
        }
    }
}

/// Removes this engine's temporary files that a process killed while
/// saving left behind (`.NAME-KEY.engine.tmpPID` of a PID no longer
/// running; a live one may be saving now).
fn remove_orphans(dir: &Path, name: &str) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let file = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
        let Some(pid) = file
            .strip_prefix('.')
            .and_then(|r| r.strip_prefix(name))
            .and_then(|r| r.strip_prefix('-'))
            .and_then(|r| r.split_once(".engine.tmp"))
            .map(|(_, pid)| pid)
        else {
            continue;
        };
        let alive = pid.parse::<u32>().is_ok_and(|pid| {
            pid == std::process::id() || Path::new("/proc").join(pid.to_string()).exists()
        });
        if !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()) && !alive {
            log::info!(
                "engine '{name}': removing {}, left by an interrupted save",
                p.display()
            );
            let _ = std::fs::remove_file(&p);
        }
    }
}

fn build_options(
    name: &str,
    cfg: &EngineConfig,
    b: &BuildSettings,
    backend: Option<BackendKind>,
) -> Result<BuildOptions> {
    let preprocess =
        (b.input_size.is_some() || b.mean.is_some() || b.std.is_some() || b.color.is_some()).then(
            || {
                let d = Preprocess::default();
                Preprocess {
                    input_size: b.input_size,
                    mean: b.mean.unwrap_or(d.mean),
                    std: b.std.unwrap_or(d.std),
                    color: b.color.unwrap_or(ColorOrder::Rgb),
                }
            },
        );
    let labels = match &b.labels {
        Some(p) => read_labels(name, p)?,
        None => vec![],
    };
    let mut opts = BuildOptions {
        backend: backend.map_or(BackendChoice::Auto, BackendChoice::Kind),
        precision: if b.fp16 {
            jetrt_engine::backend::Precision::Fp16
        } else {
            jetrt_engine::backend::Precision::Fp32
        },
        device: cfg.device,
        preprocess,
        labels,
        plugins: cfg.plugins.clone(),
        shape_args: b
            .shapes
            .iter()
            .map(|(n, d)| {
                let dims: Vec<String> = d.iter().map(|x| x.to_string()).collect();
                format!("{n}={}", dims.join("x"))
            })
            .collect(),
        ..Default::default()
    };
    if let Some(batch) = &b.batch {
        opts.convert.batch = batch
            .parse::<BatchProfile>()
            .map_err(|e| err(name, format!("batch: {e}")))?;
    }
    for (input, dims) in &b.shapes {
        opts.convert
            .shapes
            .insert(input.clone(), dims.iter().map(|&d| Some(d)).collect());
    }
    Ok(opts)
}

/// One label per line; trailing blank lines dropped.
fn read_labels(name: &str, path: &Path) -> Result<Vec<String>> {
    let text = String::from_utf8(read(name, path, "labels file")?).map_err(|_| {
        err(
            name,
            format!("labels file {} is not UTF-8 text", path.display()),
        )
    })?;
    let mut labels: Vec<String> = text.lines().map(|l| l.trim().to_string()).collect();
    while labels.last().is_some_and(|l| l.is_empty()) {
        labels.pop();
    }
    Ok(labels)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> PathBuf {
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../models/tiny/model.onnx")
    }

    fn config(model: &Path) -> (EngineConfig, BuildSettings) {
        let build = BuildSettings::default();
        let cfg = EngineConfig {
            origin: EngineOrigin::Onnx {
                model: model.to_path_buf(),
                build: build.clone(),
            },
            backend: Some("cpu".into()),
            device: 0,
            threads: Some(1),
            plugins: vec![],
        };
        (cfg, build)
    }

    /// A valid engine of another model at the cache path is rebuilt, not
    /// used; a temporary file of a dead saver is removed, a live one kept.
    #[test]
    fn the_cache_checks_its_source_and_clears_interrupted_saves() {
        let state = tempfile::tempdir().unwrap();
        let (cfg, build) = config(&tiny());
        let cpu = Some(BackendKind::Cpu);
        let stages = std::cell::RefCell::new(vec![]);
        let told = |s: &str| stages.borrow_mut().push(s.to_string());
        let (engine, path) =
            cached_build("t", &cfg, &tiny(), &build, cpu, state.path(), &told).unwrap();
        // A build tells its stages, for the heartbeat.
        let st = stages.borrow().clone();
        assert!(st.iter().any(|s| s.starts_with("converting")), "{st:?}");
        assert!(st.iter().any(|s| s == "building the cpu plan"), "{st:?}");
        let path = path.expect("cached");
        let sha = engine.header().source_hash.clone();
        // Another model's build at the same path.
        let mut other = Engine::load(&path).unwrap();
        other.header_mut().source_hash = "0".repeat(64);
        other.save(&path).unwrap();
        let dir = path.parent().unwrap().to_path_buf();
        let file = path.file_name().unwrap().to_str().unwrap().to_string();
        let dead = dir.join(format!(".{file}.tmp4000000000"));
        // PID 1 is always running.
        let live = dir.join(format!(".{file}.tmp1"));
        std::fs::write(&dead, b"partial").unwrap();
        std::fs::write(&live, b"partial").unwrap();
        let (again, _) =
            cached_build("t", &cfg, &tiny(), &build, cpu, state.path(), &|_| {}).unwrap();
        assert_eq!(again.header().source_hash, sha);
        assert_eq!(Engine::load(&path).unwrap().header().source_hash, sha);
        assert!(!dead.exists(), "the dead saver's file stays");
        assert!(live.exists(), "a live saver's file was removed");
    }
}
