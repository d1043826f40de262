//! An engine: the header, the network and its backend plans, as loaded from
//! or saved to an `.engine` file; and contexts that run it.

use crate::backend::{self, BackendKind, BuildConfig, Executor, Precision, RunConfig};
use crate::engine_file::{self, EngineData, EngineHeader, Plan};
use crate::error::{Error, Result};
use crate::ir::{Input, Network};
use crate::shape::{format_dims, format_shape, Dim};
use crate::tensor::Tensor;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Files larger than this are memory-mapped rather than read.
const MMAP_THRESHOLD: u64 = 1 << 20;

#[derive(Clone, Debug)]
pub struct Engine {
    data: EngineData,
}

impl Engine {
    pub fn new(header: EngineHeader, network: Network, plans: Vec<Plan>) -> Self {
        Engine {
            data: EngineData {
                header,
                network: Arc::new(network),
                plans,
            },
        }
    }

    /// Reads and validates an engine file.
    pub fn load(path: impl AsRef<Path>) -> Result<Self> {
        let path = path.as_ref();
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        let len = file.metadata().map_err(|e| Error::io(path, e))?.len();
        let decoded = if len > MMAP_THRESHOLD {
            // SAFETY: the map is read-only and dropped before this function
            // returns; every byte is copied out after the checksum is verified.
            // A file truncated by another process while mapped would fault,
            // as with any mapped reader; engine files are written by rename,
            // never in place.
            let map = unsafe { memmap2::Mmap::map(&file) }.map_err(|e| Error::io(path, e))?;
            engine_file::decode(&map)
        } else {
            let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            engine_file::decode(&bytes)
        };
        let data = decoded.map_err(|e| Error::EngineFile {
            path: path.to_path_buf(),
            msg: e.0,
        })?;
        Ok(Engine { data })
    }

    /// Decodes an engine from bytes; `origin` names it in errors.
    pub fn from_bytes(bytes: &[u8], origin: impl Into<PathBuf>) -> Result<Self> {
        let data = engine_file::decode(bytes).map_err(|e| Error::EngineFile {
            path: origin.into(),
            msg: e.0,
        })?;
        Ok(Engine { data })
    }

    pub fn to_bytes(&self) -> Vec<u8> {
        engine_file::encode(&self.data)
    }

    /// Writes the engine next to `path` and renames it into place, so that a
    /// crash never leaves a half-written engine under the final name.
    pub fn save(&self, path: impl AsRef<Path>) -> Result<()> {
        let path = path.as_ref();
        let dir = match path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let tmp = dir.join(format!(".{name}.tmp{}", std::process::id()));
        let write = || -> std::io::Result<()> {
            // 0644 whatever the umask (a service's umask may be 000):
            // engines are read by others, written only by their owner.
            use std::os::unix::fs::OpenOptionsExt;
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o644)
                .open(&tmp)?;
            f.set_permissions(std::os::unix::fs::PermissionsExt::from_mode(0o644))?;
            f.write_all(&self.to_bytes())?;
            f.sync_all()?;
            std::fs::rename(&tmp, path)
        };
        write().map_err(|e| {
            let _ = std::fs::remove_file(&tmp);
            Error::io(path, e)
        })
    }

    pub fn header(&self) -> &EngineHeader {
        &self.data.header
    }

    pub fn header_mut(&mut self) -> &mut EngineHeader {
        &mut self.data.header
    }

    pub fn network(&self) -> &Arc<Network> {
        &self.data.network
    }

    pub fn plans(&self) -> &[Plan] {
        &self.data.plans
    }

    /// The build options the engine records: what a plan rebuilt from it
    /// for another device is built with.
    pub fn build_config(&self, device: usize) -> BuildConfig {
        let b = &self.data.header.build;
        BuildConfig {
            precision: Precision::parse(&b.precision).unwrap_or_default(),
            workspace: b.workspace.and_then(|w| usize::try_from(w).ok()),
            device,
            ..Default::default()
        }
    }

    /// A context on `backend` (or the best available one) on device
    /// `cfg.device`. A missing or stale plan for it is rebuilt in memory
    /// with the build options the engine records.
    pub fn context(&self, backend: Option<BackendKind>, cfg: &RunConfig) -> Result<Context> {
        // Every plugin the network uses must be registered (built in, or
        // from a library loaded before this call); all missing ones at once.
        crate::plugin::registry::check_network(&self.data.network)?;
        let b = match backend {
            Some(k) => {
                let b = backend::backend_on(k, cfg.device)?;
                b.probe()?;
                b
            }
            None => backend::auto_on(cfg.device),
        };
        let key = b.plan_key()?;
        let rebuilt;
        let plan = match self.data.plans.iter().find(|p| p.key == key) {
            Some(p) => &p.data,
            None => {
                let mut build = self.build_config(cfg.device);
                if !b.capabilities().precisions.contains(&build.precision) {
                    log::warn!(
                        "the engine was built for {}; the {} backend runs it in {}",
                        build.precision,
                        key.backend,
                        Precision::Fp32
                    );
                    build.precision = Precision::Fp32;
                }
                log::info!(
                    "no {} plan for this device ({}) and version in the engine; building one ({})",
                    key.backend,
                    key.device,
                    build.precision
                );
                rebuilt = b.build(&self.data.network, &build)?;
                &rebuilt
            }
        };
        let executor = b.load(self.data.network.clone(), plan, cfg)?;
        Ok(Context {
            inputs: self.data.network.inputs.clone(),
            backend: b.kind(),
            executor,
        })
    }
}

/// Runs an engine's network; owns its buffers, stream and threads. Checks
/// every input against the engine's input types before running. It holds
/// no reference to the engine's weights: once a GPU context has uploaded
/// them, dropping the [`Engine`] frees the host copy.
pub struct Context {
    inputs: Vec<Input>,
    backend: BackendKind,
    executor: Box<dyn Executor>,
}

impl Context {
    pub fn backend(&self) -> BackendKind {
        self.backend
    }

    /// Runs on `inputs`, given in the order of the network's inputs.
    pub fn run(&mut self, inputs: Vec<Tensor>) -> Result<Vec<Tensor>> {
        check_inputs(&self.inputs, &inputs)?;
        self.executor.run(inputs)
    }

    /// Sets every input's dims for the runs that follow (see [`Executor`]);
    /// checked against the engine's inputs and profiles.
    pub fn set_input_dims(&mut self, dims: &[Vec<usize>]) -> Result<()> {
        check_dims(&self.inputs, dims)?;
        self.executor.set_input_dims(dims)
    }

    /// The executor, for binding inputs and outputs to buffers and running
    /// asynchronously; set the input dims through [`Context::set_input_dims`].
    pub fn executor(&mut self) -> &mut dyn Executor {
        self.executor.as_mut()
    }

    /// Per-layer times, when made with `RunConfig::profile`.
    pub fn layer_times(&self) -> Option<Vec<crate::backend::LayerTime>> {
        self.executor.layer_times()
    }

    /// Device memory the context holds (GPU backends), in bytes.
    pub fn device_memory(&self) -> Option<u64> {
        self.executor.device_memory()
    }
}

/// Checks count, type and dims of run-time inputs against the network's.
pub fn check_inputs(decls: &[Input], inputs: &[Tensor]) -> Result<()> {
    for (decl, t) in decls.iter().zip(inputs) {
        if t.dtype() != decl.info.dtype {
            return Err(Error::Input {
                name: decl.name.clone(),
                msg: format!("expected {} data, got {}", decl.info.dtype, t.dtype()),
            });
        }
    }
    let dims: Vec<Vec<usize>> = inputs.iter().map(|t| t.shape().to_vec()).collect();
    check_dims(decls, &dims)
}

/// Checks count and dims of run-time input dims against the network's.
pub fn check_dims(decls: &[Input], dims: &[Vec<usize>]) -> Result<()> {
    if dims.len() != decls.len() {
        let names: Vec<&str> = decls.iter().map(|i| i.name.as_str()).collect();
        return Err(Error::Input {
            name: names.join(", "),
            msg: format!(
                "the engine takes {} input(s), {} were given",
                names.len(),
                dims.len()
            ),
        });
    }
    for (decl, dims) in decls.iter().zip(dims) {
        let bad = |msg: String| {
            Err(Error::Input {
                name: decl.name.clone(),
                msg,
            })
        };
        let want = &decl.info;
        let fits = dims.len() == want.shape.len()
            && dims.iter().zip(&want.shape).all(|(d, w)| match w {
                Dim::Known(n) => d == n,
                _ => true,
            });
        if !fits {
            return bad(format!(
                "expected dims {}, got {}",
                format_shape(&want.shape),
                format_dims(dims)
            ));
        }
        if let Some(p) = &decl.profile {
            if !p.contains(dims) {
                return bad(format!(
                    "dims {} are outside the engine's profile (min {}, max {}); rebuild with a wider --batch or --shape",
                    format_dims(dims),
                    format_dims(&p.min),
                    format_dims(&p.max)
                ));
            }
        }
    }
    Ok(())
}
