//! User plugin libraries: shared objects that add plugins through jetrt's C
//! ABI (`plugins-cpp/include/jetrt_plugin.h`).
//!
//! A library is accepted when it exports `jetrt_plugin_abi_version`
//! returning the version this build speaks, and `jetrt_plugin_list` whose
//! descriptors all check out; its plugins are then registered. Loaded
//! libraries stay loaded for the life of the process, as their code may be
//! called at any time, and loading one twice registers it once.

use super::ffi;
use super::registry::{self, PluginEntry, PluginSource};
use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};

/// Libraries in the registry: the largest plugin list a library may give.
const MAX_PLUGINS: u32 = 4096;

/// A loaded plugin library.
#[derive(Debug, Clone)]
pub struct PluginLibrary {
    pub path: PathBuf,
    pub abi_version: u32,
    /// The plugins it registered.
    pub plugins: Vec<Arc<PluginEntry>>,
}

struct Loaded {
    path: PathBuf,
    lib: &'static libloading::Library,
    /// Set once the library passed every check and was registered.
    plugins: Option<Vec<Arc<PluginEntry>>>,
}

fn loaded() -> &'static Mutex<Vec<Loaded>> {
    static LOADED: OnceLock<Mutex<Vec<Loaded>>> = OnceLock::new();
    LOADED.get_or_init(|| Mutex::new(Vec::new()))
}

impl PluginLibrary {
    /// Loads a plugin library, checks that it speaks jetrt's ABI, and
    /// registers its plugins.
    pub fn load(path: &Path) -> Result<Self> {
        let bad = |msg: String| Error::Plugin(format!("plugin library {}: {msg}", path.display()));
        if !path.exists() {
            return Err(bad("no such file".into()));
        }
        let canonical = path.canonicalize().map_err(|e| bad(e.to_string()))?;
        let mut cache = loaded().lock().unwrap_or_else(|e| e.into_inner());
        let idx = match cache.iter().position(|l| l.path == canonical) {
            Some(i) => i,
            None => {
                // SAFETY: loading a library runs its initializers; the user named
                // this file as a jetrt plugin, which is the trust we act on, as
                // any program that loads plugins does.
                let lib = unsafe { libloading::Library::new(&canonical) }
                    .map_err(|e| bad(format!("cannot be loaded: {e}")))?;
                cache.push(Loaded {
                    path: canonical.clone(),
                    lib: Box::leak(Box::new(lib)),
                    plugins: None,
                });
                cache.len() - 1
            }
        };
        let entry = &mut cache[idx];
        if let Some(plugins) = &entry.plugins {
            return Ok(PluginLibrary {
                path: canonical,
                abi_version: ffi::ABI_VERSION,
                plugins: plugins.clone(),
            });
        }
        let lib = entry.lib;
        // SAFETY: the symbol is declared in jetrt_plugin.h as
        // `uint32_t jetrt_plugin_abi_version(void)`; we call it with that type.
        let version = unsafe {
            let f: libloading::Symbol<ffi::AbiVersionFn> =
                lib.get(b"jetrt_plugin_abi_version\0").map_err(|_| {
                    bad(
                        "not a jetrt plugin library (it does not export jetrt_plugin_abi_version)"
                            .into(),
                    )
                })?;
            f()
        };
        if version != ffi::ABI_VERSION {
            return Err(bad(format!(
                "speaks plugin ABI version {version}, this build of jetrt speaks {}; rebuild the plugin against this jetrt's jetrt_plugin.h",
                ffi::ABI_VERSION
            )));
        }
        let mut count = 0u32;
        // SAFETY: declared in jetrt_plugin.h as
        // `const jetrt_plugin_descriptor *const *jetrt_plugin_list(uint32_t *count)`;
        // we pass a valid pointer for the count.
        let list = unsafe {
            let f: libloading::Symbol<ffi::ListFn> = lib
                .get(b"jetrt_plugin_list\0")
                .map_err(|_| bad("does not export jetrt_plugin_list".into()))?;
            f(&mut count)
        };
        if count > MAX_PLUGINS {
            return Err(bad(format!(
                "lists {count} plugins, more than {MAX_PLUGINS}"
            )));
        }
        if count > 0 && list.is_null() {
            return Err(bad(format!("lists {count} plugins but returns no list")));
        }
        let mut plugins = Vec::with_capacity(count as usize);
        for i in 0..count as usize {
            // SAFETY: the library returned an array of `count` descriptor
            // pointers (checked non-null above), valid while it is loaded,
            // which is for the rest of the process.
            let d = unsafe { *list.add(i) };
            // SAFETY: as above; from_raw checks the pointer and the struct.
            let e = unsafe { PluginEntry::from_raw(d, PluginSource::Library(canonical.clone())) }
                .map_err(|e| bad(format!("plugin {i}: {e}")))?;
            plugins.push(e);
        }
        if plugins.is_empty() {
            log::warn!("plugin library {} provides no plugins", path.display());
        }
        let plugins = registry::add(plugins);
        entry.plugins = Some(plugins.clone());
        Ok(PluginLibrary {
            path: canonical,
            abi_version: version,
            plugins,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_and_foreign_libraries_are_clear_errors() {
        let e = PluginLibrary::load(Path::new("/nonexistent/libfoo.so"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("no such file"), "{e}");
        // A real shared library that is not a plugin.
        let libc = [
            "/lib/x86_64-linux-gnu/libc.so.6",
            "/lib/aarch64-linux-gnu/libc.so.6",
            "/usr/lib/libc.so.6",
        ]
        .into_iter()
        .find(|p| Path::new(p).exists());
        if let Some(libc) = libc {
            let e = PluginLibrary::load(Path::new(libc))
                .unwrap_err()
                .to_string();
            assert!(e.contains("not a jetrt plugin"), "{e}");
        }
        let tmp = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(tmp.path(), b"not an ELF file").unwrap();
        let e = PluginLibrary::load(tmp.path()).unwrap_err().to_string();
        assert!(e.contains("cannot be loaded"), "{e}");
    }
}
