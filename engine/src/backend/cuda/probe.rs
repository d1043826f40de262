//! Finding the CUDA libraries and checking they will do, before any call.
//!
//! cudarc loads each library on first use and each function on its first
//! call, and panics when either is missing. So before the backend calls
//! anything, the probe opens every library under the names cudarc will
//! look for, reads its version, and looks up every entry point the backend
//! uses (each wrapper module lists its own); a missing or old library is
//! then an error naming it, its version and what is missing, not a panic.
//! The handles stay open for the life of the process, so cudarc's own
//! lookups find the same libraries.

use crate::error::{Error, Result};
use libloading::Library;
use std::ffi::{c_char, c_int};
use std::sync::OnceLock;

/// One library the backend needs.
struct Need {
    /// cudarc's name for it (`lib{name}.so...`).
    name: &'static str,
    what: &'static str,
    symbols: &'static [&'static str],
}

const NEEDS: [Need; 5] = [
    Need {
        name: "cuda",
        what: "the CUDA driver",
        symbols: super::device::DRIVER_SYMBOLS,
    },
    Need {
        name: "nvrtc",
        what: "NVRTC (the CUDA runtime compiler)",
        symbols: super::nvrtc::SYMBOLS,
    },
    Need {
        name: "cublas",
        what: "cuBLAS",
        symbols: super::cublas::SYMBOLS,
    },
    Need {
        name: "cudnn",
        what: "cuDNN",
        symbols: super::cudnn::SYMBOLS,
    },
    Need {
        name: "cublasLt",
        what: "cuBLASLt",
        symbols: super::cublaslt::SYMBOLS,
    },
];

/// The oldest versions the backend is written against: CUDA 12 (JetPack 6
/// has 12.6) and cuDNN 9 (JetPack 6 has 9.3).
const MIN_DRIVER: i32 = 12000;
const MIN_NVRTC: (i32, i32) = (12, 0);
const MIN_CUDNN: usize = 90000;

/// The libraries found and their versions, for `inspect` and errors.
#[derive(Debug)]
pub struct Found {
    /// `cuDriverGetVersion`, e.g. 13000.
    pub driver: i32,
    pub nvrtc: (i32, i32),
    /// `cudnnGetVersion`, e.g. 90300.
    pub cudnn: usize,
    /// The file each library was found as, in [`NEEDS`] order.
    pub files: Vec<String>,
    libs: Vec<Library>,
}

impl Found {
    /// A function of the driver library, for entry points cudarc binds
    /// only under names one CUDA version has.
    pub fn driver_symbol<T: Copy>(&self, names: &[&str]) -> Option<T> {
        names.iter().find_map(|n| {
            // SAFETY: the caller names functions whose C type is `T`; the
            // library stays loaded for the life of the process.
            unsafe { self.libs[0].get::<T>(n.as_bytes()).ok().map(|s| *s) }
        })
    }
}

/// Opens and checks every library once per process.
pub fn libraries() -> Result<&'static Found> {
    static FOUND: OnceLock<std::result::Result<Found, String>> = OnceLock::new();
    FOUND
        .get_or_init(find)
        .as_ref()
        .map_err(|m| Error::Device(m.clone()))
}

/// Opens one library under cudarc's names and checks its entry points.
fn open(need: &Need) -> std::result::Result<(String, Library), String> {
    let names = cudarc::get_lib_name_candidates(need.name);
    let found = names.iter().find_map(|n| {
        // SAFETY: loading a CUDA library runs its initialisers, which have
        // no preconditions; nothing is called before the checks below.
        unsafe { Library::new(n) }.ok().map(|l| (n.clone(), l))
    });
    let Some((file, lib)) = found else {
        let from = match need.name {
            "cuda" => "the NVIDIA driver",
            "cudnn" => "cuDNN",
            _ => "the CUDA toolkit",
        };
        return Err(format!(
            "the cuda backend needs {} (lib{}.so), which is not installed or not on the library path; it comes with {from} (with JetPack on a Jetson); if it is installed, add its folder to LD_LIBRARY_PATH",
            need.what, need.name,
        ));
    };
    let missing: Vec<&str> = need
        .symbols
        .iter()
        .copied()
        // SAFETY: only the symbol's presence is asked; nothing is called.
        .filter(|s| unsafe { lib.get::<*const ()>(s.as_bytes()) }.is_err())
        .collect();
    if !missing.is_empty() {
        return Err(format!(
            "{file} ({}) lacks {} the cuda backend calls ({}); it is too old or not the library it is named for",
            need.what,
            if missing.len() == 1 { "an entry point" } else { "entry points" },
            missing.join(", ")
        ));
    }
    Ok((file, lib))
}

/// NVRTC alone, for compiling kernels on a machine without a GPU (ahead
/// of time, or to check the sources): its file name and version.
pub fn nvrtc() -> Result<(&'static str, (i32, i32))> {
    type Opened = std::result::Result<(String, (i32, i32), Library), String>;
    static NVRTC: OnceLock<Opened> = OnceLock::new();
    NVRTC
        .get_or_init(|| {
            let (file, lib) = open(&NEEDS[1])?;
            let v = nvrtc_version(&lib)?;
            if v < MIN_NVRTC {
                return Err(format!(
                    "{file} is NVRTC {}.{}; the cuda backend needs {}.{} or newer",
                    v.0, v.1, MIN_NVRTC.0, MIN_NVRTC.1
                ));
            }
            Ok((file, v, lib))
        })
        .as_ref()
        .map(|(f, v, _)| (f.as_str(), *v))
        .map_err(|m| Error::Device(m.clone()))
}

fn find() -> std::result::Result<Found, String> {
    let mut libs = Vec::new();
    let mut files = Vec::new();
    for need in &NEEDS {
        let (file, lib) = open(need)?;
        libs.push(lib);
        files.push(file);
    }
    let found = Found {
        driver: version_of(&libs[0], "cuDriverGetVersion")?,
        nvrtc: nvrtc_version(&libs[1])?,
        cudnn: cudnn_version(&libs[3])?,
        files,
        libs,
    };
    if found.driver < MIN_DRIVER {
        return Err(format!(
            "the NVIDIA driver supports CUDA {}; the cuda backend needs CUDA {} or newer (update the driver, or JetPack)",
            cuda_version(found.driver),
            cuda_version(MIN_DRIVER)
        ));
    }
    if found.nvrtc < MIN_NVRTC {
        return Err(format!(
            "{} is NVRTC {}.{}; the cuda backend needs {}.{} or newer",
            found.files[1], found.nvrtc.0, found.nvrtc.1, MIN_NVRTC.0, MIN_NVRTC.1
        ));
    }
    if found.cudnn < MIN_CUDNN {
        return Err(format!(
            "{} is cuDNN {}; the cuda backend needs cuDNN 9 or newer",
            found.files[3],
            cudnn_version_name(found.cudnn)
        ));
    }
    Ok(found)
}

/// `13000` as `13.0`.
pub fn cuda_version(v: i32) -> String {
    format!("{}.{}", v / 1000, (v % 1000) / 10)
}

/// `90300` as `9.3.0`.
pub fn cudnn_version_name(v: usize) -> String {
    format!("{}.{}.{}", v / 10000, (v % 10000) / 100, v % 100)
}

fn version_of(lib: &Library, sym: &str) -> std::result::Result<i32, String> {
    // SAFETY: `cuDriverGetVersion(int*)`, present (checked above); it only
    // writes the int it is given.
    unsafe {
        let f = lib
            .get::<unsafe extern "C" fn(*mut c_int) -> c_int>(sym.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut v = 0;
        match f(&mut v) {
            0 => Ok(v),
            s => Err(format!("{sym} failed with status {s}")),
        }
    }
}

fn nvrtc_version(lib: &Library) -> std::result::Result<(i32, i32), String> {
    // SAFETY: `nvrtcVersion(int*, int*)`, present (checked above); it only
    // writes the two ints.
    unsafe {
        let f = lib
            .get::<unsafe extern "C" fn(*mut c_int, *mut c_int) -> c_int>(b"nvrtcVersion")
            .map_err(|e| e.to_string())?;
        let (mut a, mut b) = (0, 0);
        match f(&mut a, &mut b) {
            0 => Ok((a, b)),
            s => Err(format!("nvrtcVersion failed with status {s}")),
        }
    }
}

fn cudnn_version(lib: &Library) -> std::result::Result<usize, String> {
    // SAFETY: `size_t cudnnGetVersion(void)`, present (checked above).
    unsafe {
        let f = lib
            .get::<unsafe extern "C" fn() -> usize>(b"cudnnGetVersion")
            .map_err(|e| e.to_string())?;
        Ok(f())
    }
}

/// The text of a C string a library returned, for messages.
pub fn c_text(p: *const c_char) -> String {
    if p.is_null() {
        return String::new();
    }
    // SAFETY: the libraries return NUL-terminated static strings.
    unsafe { std::ffi::CStr::from_ptr(p) }
        .to_string_lossy()
        .into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn versions_read_as_people_write_them() {
        assert_eq!(cuda_version(12060), "12.6");
        assert_eq!(cuda_version(13000), "13.0");
        assert_eq!(cudnn_version_name(90300), "9.3.0");
    }

    #[test]
    fn every_entry_point_list_is_nonempty_and_unique() {
        for need in &NEEDS {
            assert!(!need.symbols.is_empty(), "{}", need.name);
            let mut v = need.symbols.to_vec();
            v.sort();
            v.dedup();
            assert_eq!(
                v.len(),
                need.symbols.len(),
                "{} lists a symbol twice",
                need.name
            );
        }
    }
}
