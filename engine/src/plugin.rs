//! User plugin libraries: shared objects that add layer implementations
//! through jetrt's C ABI (`plugins-cpp/include/jetrt_plugin.h`).
//!
//! A library is accepted when it exports `jetrt_plugin_abi_version` and the
//! version it returns is one this build speaks. Loaded libraries stay loaded
//! for the life of the process, as their code may be called at any time.

use crate::error::{Error, Result};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

/// The C ABI version this build of jetrt speaks.
pub const ABI_VERSION: u32 = 1;

/// A loaded plugin library.
#[derive(Debug)]
pub struct PluginLibrary {
    pub path: PathBuf,
    pub abi_version: u32,
    _lib: &'static libloading::Library,
}

fn loaded() -> &'static Mutex<Vec<(PathBuf, &'static libloading::Library)>> {
    static LOADED: OnceLock<Mutex<Vec<(PathBuf, &'static libloading::Library)>>> = OnceLock::new();
    LOADED.get_or_init(|| Mutex::new(Vec::new()))
}

impl PluginLibrary {
    /// Loads a plugin library and checks that it speaks jetrt's ABI.
    pub fn load(path: &Path) -> Result<Self> {
        let bad = |msg: String| Error::Plugin(format!("plugin library {}: {msg}", path.display()));
        if !path.exists() {
            return Err(bad("no such file".into()));
        }
        let canonical = path.canonicalize().map_err(|e| bad(e.to_string()))?;
        let mut cache = loaded().lock().unwrap_or_else(|e| e.into_inner());
        let lib: &'static libloading::Library = match cache.iter().find(|(p, _)| *p == canonical) {
            Some((_, l)) => l,
            None => {
                // SAFETY: loading a library runs its initializers; the user named
                // this file as a jetrt plugin, which is the trust we act on, as
                // any program that loads plugins does.
                let lib = unsafe { libloading::Library::new(&canonical) }
                    .map_err(|e| bad(format!("cannot be loaded: {e}")))?;
                let lib: &'static libloading::Library = Box::leak(Box::new(lib));
                cache.push((canonical.clone(), lib));
                lib
            }
        };
        // SAFETY: the symbol is declared in jetrt_plugin.h as
        // `uint32_t jetrt_plugin_abi_version(void)`; we call it with that type.
        let version = unsafe {
            let f: libloading::Symbol<unsafe extern "C" fn() -> u32> =
                lib.get(b"jetrt_plugin_abi_version\0").map_err(|_| {
                    bad(
                        "not a jetrt plugin library (it does not export jetrt_plugin_abi_version)"
                            .into(),
                    )
                })?;
            f()
        };
        if version != ABI_VERSION {
            return Err(bad(format!(
                "speaks plugin ABI version {version}, this build of jetrt speaks {ABI_VERSION}; rebuild the plugin against this jetrt"
            )));
        }
        Ok(PluginLibrary {
            path: canonical,
            abi_version: version,
            _lib: lib,
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
