//! The process-wide set of plugins: the built-ins, then those of every
//! library loaded since, in load order. A later registration of the same
//! name (and version) wins, so that a library can replace a built-in (the
//! shared built-in library with CUDA kernels replaces the CPU-only one
//! linked in).

use super::ffi;
use crate::error::{Error, Result};
use crate::ir::{LayerKind, Network, PluginParams};
use std::ffi::CStr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};

/// Where a plugin comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PluginSource {
    /// Linked into this build of jetrt.
    BuiltIn,
    /// A library loaded at run time.
    Library(PathBuf),
}

impl PluginSource {
    /// The library's file name, for engine records; `None` when built in.
    pub fn library_name(&self) -> Option<String> {
        match self {
            PluginSource::BuiltIn => None,
            PluginSource::Library(p) => Some(p.file_name().map_or_else(
                || p.display().to_string(),
                |n| n.to_string_lossy().into_owned(),
            )),
        }
    }
}

/// The entry points of a plugin, checked present when it was registered.
#[derive(Clone, Copy)]
pub(super) struct Entry {
    pub create: ffi::CreateFn,
    pub deserialize: ffi::DeserializeFn,
    pub destroy: ffi::DestroyFn,
    pub serialize: ffi::SerializeFn,
    pub infer: ffi::InferFn,
    pub workspace: Option<ffi::WorkspaceFn>,
    pub run_cpu: ffi::RunCpuFn,
    pub run_cuda: Option<ffi::RunCudaFn>,
}

/// A registered plugin.
pub struct PluginEntry {
    pub name: String,
    pub version: String,
    pub description: String,
    pub source: PluginSource,
    pub(super) entry: Entry,
}

impl PluginEntry {
    /// Whether the plugin has a CUDA kernel.
    pub fn has_cuda(&self) -> bool {
        self.entry.run_cuda.is_some()
    }

    /// `'Name' version 1 (built in)`, for messages.
    pub fn describe(&self) -> String {
        match &self.source {
            PluginSource::BuiltIn => format!("'{}' version {} (built in)", self.name, self.version),
            PluginSource::Library(p) => {
                format!(
                    "'{}' version {} (from {})",
                    self.name,
                    self.version,
                    p.display()
                )
            }
        }
    }

    /// Reads and checks a descriptor.
    ///
    /// # Safety
    /// `d` must be null or point to a descriptor that stays valid (with the
    /// strings it points to) for the life of the process: the built-in
    /// static array, or one in a library that is never unloaded.
    pub(super) unsafe fn from_raw(
        d: *const ffi::Descriptor,
        source: PluginSource,
    ) -> std::result::Result<Self, String> {
        if d.is_null() {
            return Err("a descriptor pointer is null".into());
        }
        // SAFETY: non-null and valid per this function's contract; the
        // size field is the first of every version of the struct.
        let size = unsafe { (*d).struct_size } as usize;
        if size < std::mem::size_of::<ffi::Descriptor>() {
            return Err(format!(
                "a descriptor is {size} bytes, smaller than the {} of ABI version {}",
                std::mem::size_of::<ffi::Descriptor>(),
                ffi::ABI_VERSION
            ));
        }
        // SAFETY: the whole struct is present (checked just above).
        let d = unsafe { &*d };
        if d.abi_version != ffi::ABI_VERSION {
            return Err(format!(
                "a descriptor is of ABI version {}, not {}",
                d.abi_version,
                ffi::ABI_VERSION
            ));
        }
        // SAFETY: non-null strings of a valid descriptor are NUL-terminated
        // and live as long as it does (the ABI's rule).
        let text =
            |p: *const std::ffi::c_char, what: &str| -> std::result::Result<String, String> {
                if p.is_null() {
                    return Err(format!("a descriptor has no {what}"));
                }
                let s = unsafe { CStr::from_ptr(p) };
                s.to_str()
                    .map(str::to_string)
                    .map_err(|_| format!("a descriptor's {what} is not UTF-8"))
            };
        let name = text(d.name, "name")?;
        if name.is_empty() {
            return Err("a descriptor has an empty name".into());
        }
        let version = text(d.version, "version")?;
        let description = if d.description.is_null() {
            String::new()
        } else {
            text(d.description, "description")?
        };
        let missing = |what: &str| format!("plugin '{name}' has no {what} function");
        let entry = Entry {
            create: d.create.ok_or_else(|| missing("create"))?,
            deserialize: d.deserialize.ok_or_else(|| missing("deserialize"))?,
            destroy: d.destroy.ok_or_else(|| missing("destroy"))?,
            serialize: d.serialize.ok_or_else(|| missing("serialize"))?,
            infer: d.infer_outputs.ok_or_else(|| missing("infer_outputs"))?,
            workspace: d.workspace_size,
            run_cpu: d.run_cpu.ok_or_else(|| missing("run_cpu"))?,
            run_cuda: d.run_cuda,
        };
        Ok(PluginEntry {
            name,
            version,
            description,
            source,
            entry,
        })
    }
}

impl std::fmt::Debug for PluginEntry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PluginEntry")
            .field("name", &self.name)
            .field("version", &self.version)
            .field("source", &self.source)
            .field("cuda", &self.has_cuda())
            .finish()
    }
}

fn registry() -> &'static Mutex<Vec<Arc<PluginEntry>>> {
    static REGISTRY: OnceLock<Mutex<Vec<Arc<PluginEntry>>>> = OnceLock::new();
    REGISTRY.get_or_init(|| {
        let (list, count) = super::builtin::list();
        let mut v = Vec::new();
        for i in 0..count as usize {
            // SAFETY: the built-in list is a static array of `count`
            // descriptor pointers, each to a static descriptor.
            let r = unsafe { PluginEntry::from_raw(*list.add(i), PluginSource::BuiltIn) };
            match r {
                Ok(e) => v.push(Arc::new(e)),
                Err(e) => log::error!("built-in plugin {i} is unusable: {e}"),
            }
        }
        Mutex::new(v)
    })
}

fn entries_locked() -> std::sync::MutexGuard<'static, Vec<Arc<PluginEntry>>> {
    registry().lock().unwrap_or_else(|e| e.into_inner())
}

/// Adds plugins (of a library just loaded); returns them as registered.
pub(super) fn add(new: Vec<PluginEntry>) -> Vec<Arc<PluginEntry>> {
    let new: Vec<Arc<PluginEntry>> = new.into_iter().map(Arc::new).collect();
    entries_locked().extend(new.iter().cloned());
    new
}

/// Every registered plugin, built-ins first.
pub fn entries() -> Vec<Arc<PluginEntry>> {
    entries_locked().clone()
}

/// The plugin registered last under `name` and `version`.
pub fn lookup(name: &str, version: &str) -> Option<Arc<PluginEntry>> {
    entries_locked()
        .iter()
        .rev()
        .find(|e| e.name == name && e.version == version)
        .cloned()
}

/// The plugin registered last under `name`, any version: what a node of a
/// custom ONNX domain converts to.
pub fn lookup_name(name: &str) -> Option<Arc<PluginEntry>> {
    entries_locked()
        .iter()
        .rev()
        .find(|e| e.name == name)
        .cloned()
}

/// A plugin layer's plugin that is not registered, and what to do about it.
pub fn missing_message(p: &PluginParams) -> String {
    match &p.library {
        Some(lib) => format!(
            "plugin {}, which is not loaded: load the library that provides it (engine-builder --plugin path/to/{lib})",
            p.describe()
        ),
        None => format!(
            "plugin {}, which this jetrt does not have (the engine was built by another version): \
             rebuild the engine with this jetrt, or load a library that provides it with --plugin",
            p.describe()
        ),
    }
}

/// The registered plugin for a plugin layer, or the error saying how to get it.
pub fn require(p: &PluginParams) -> Result<Arc<PluginEntry>> {
    lookup(&p.name, &p.version)
        .ok_or_else(|| Error::Plugin(format!("the layer needs {}", missing_message(p))))
}

/// Checks that every plugin a network uses is registered; the error names
/// each missing one and the library to load.
pub fn check_network(net: &Network) -> Result<()> {
    let mut missing: Vec<String> = Vec::new();
    for l in &net.layers {
        if let LayerKind::Plugin(p) = &l.kind {
            if lookup(&p.name, &p.version).is_none() {
                let m = missing_message(p);
                if !missing.contains(&m) {
                    missing.push(m);
                }
            }
        }
    }
    match missing.len() {
        0 => Ok(()),
        1 => Err(Error::Plugin(format!("the engine needs {}", missing[0]))),
        _ => Err(Error::Plugin(format!(
            "the engine needs plugins that are not loaded:\n  {}",
            missing.join("\n  ")
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_built_ins_are_registered() {
        for name in ["NonMaxSuppression", "RoiAlign", "GridSample"] {
            let e = lookup(name, "1").unwrap_or_else(|| panic!("{name} is not built in"));
            assert_eq!(e.source, PluginSource::BuiltIn);
            assert!(!e.has_cuda(), "the linked-in library is CPU-only");
            assert!(lookup_name(name).is_some());
        }
        assert!(lookup("GridSample", "2").is_none());
        assert!(lookup_name("NoSuchPlugin").is_none());
    }

    #[test]
    fn networks_with_unregistered_plugins_are_refused_with_what_to_load() {
        use crate::dtype::DataType;
        use crate::ir::{PluginDim, PluginOutput};
        use crate::shape::Dim;
        let mut net = Network::new("n");
        let x = net.add_input("x", DataType::F32, vec![Dim::Known(2)], None);
        let params = |name: &str, library: Option<&str>| PluginParams {
            name: name.into(),
            version: "1".into(),
            fields: vec![],
            data: vec![],
            library: library.map(str::to_string),
            outputs: vec![PluginOutput {
                dtype: DataType::F32,
                dims: vec![PluginDim::SameAs { input: 0, axis: 0 }],
            }],
        };
        let y = net
            .add(
                "p",
                LayerKind::Plugin(params("NoSuchOp", Some("libnope.so"))),
                vec![x],
            )
            .unwrap();
        net.mark_output("y", y);
        let e = check_network(&net).unwrap_err().to_string();
        assert!(
            e.contains("plugin 'NoSuchOp' version 1 (from libnope.so), which is not loaded")
                && e.contains("--plugin path/to/libnope.so"),
            "{e}"
        );
        net.add("q", LayerKind::Plugin(params("Other", None)), vec![x])
            .unwrap();
        let e = check_network(&net).unwrap_err().to_string();
        assert!(
            e.contains("NoSuchOp") && e.contains("'Other' version 1 (built in)"),
            "{e}"
        );
        let e = require(&params("NoSuchOp", Some("libnope.so"))).unwrap_err();
        assert!(
            e.to_string().contains("the layer needs plugin 'NoSuchOp'"),
            "{e}"
        );
    }

    #[test]
    fn null_and_short_descriptors_are_refused() {
        // SAFETY: null is allowed by from_raw's contract.
        let e = unsafe { PluginEntry::from_raw(std::ptr::null(), PluginSource::BuiltIn) };
        assert!(e.is_err());
        let (list, _) = super::super::builtin::list();
        // SAFETY: the first built-in descriptor is static; a copy with a
        // smaller size and another ABI version is a valid struct to read.
        let mut copy: ffi::Descriptor = unsafe { std::ptr::read(*list) };
        copy.struct_size = 16;
        let e = unsafe { PluginEntry::from_raw(&copy, PluginSource::BuiltIn) }.unwrap_err();
        assert!(e.contains("smaller"), "{e}");
        copy.struct_size = std::mem::size_of::<ffi::Descriptor>() as u32;
        copy.abi_version = 1;
        let e = unsafe { PluginEntry::from_raw(&copy, PluginSource::BuiltIn) }.unwrap_err();
        assert!(e.contains("ABI version 1"), "{e}");
        copy.abi_version = ffi::ABI_VERSION;
        copy.run_cpu = None;
        let e = unsafe { PluginEntry::from_raw(&copy, PluginSource::BuiltIn) }.unwrap_err();
        assert!(e.contains("run_cpu"), "{e}");
    }
}
