//! Compiling the kernel sources with NVRTC into cubins for one GPU
//! architecture, cached on disk: a Jetson pays the compile once.
//!
//! The cache key is the source's hash (with the options), the architecture
//! and the NVRTC version; entries are written to a temporary name and
//! renamed, so a crash leaves no half-written cubin, and one that does not
//! load is compiled again.

use super::probe;
use crate::error::{Error, Result};
use cudarc::nvrtc::{result, sys};
use sha2::{Digest, Sha256};
use std::ffi::CString;
use std::path::PathBuf;

/// NVRTC entry points the backend calls.
pub const SYMBOLS: &[&str] = &[
    "nvrtcVersion",
    "nvrtcCreateProgram",
    "nvrtcCompileProgram",
    "nvrtcDestroyProgram",
    "nvrtcGetProgramLogSize",
    "nvrtcGetProgramLog",
    "nvrtcGetCUBINSize",
    "nvrtcGetCUBIN",
    "nvrtcGetErrorString",
];

/// The header every kernel source is compiled with.
const COMMON: &str = include_str!("kernels/common.cuh");

/// A kernel source file of the backend.
#[derive(Clone, Copy, Debug)]
pub struct Source {
    pub name: &'static str,
    pub text: &'static str,
}

/// Every kernel source, embedded at build time.
pub const SOURCES: [Source; 10] = [
    Source {
        name: "elementwise",
        text: include_str!("kernels/elementwise.cu"),
    },
    Source {
        name: "copy",
        text: include_str!("kernels/copy.cu"),
    },
    Source {
        name: "reduce",
        text: include_str!("kernels/reduce.cu"),
    },
    Source {
        name: "pool",
        text: include_str!("kernels/pool.cu"),
    },
    Source {
        name: "resize",
        text: include_str!("kernels/resize.cu"),
    },
    Source {
        name: "einsum",
        text: include_str!("kernels/einsum.cu"),
    },
    Source {
        name: "frame",
        text: include_str!("kernels/frame.cu"),
    },
    Source {
        name: "depthwise",
        text: include_str!("kernels/depthwise.cu"),
    },
    Source {
        name: "scatter",
        text: include_str!("kernels/scatter.cu"),
    },
    Source {
        name: "clock",
        text: include_str!("kernels/clock.cu"),
    },
];

/// The source a kernel of this name lives in.
pub fn source_of(kernel: &str) -> Option<&'static Source> {
    SOURCES
        .iter()
        .find(|s| s.text.contains(&format!("void {kernel}(")))
}

fn options(arch: (i32, i32)) -> Vec<String> {
    vec![
        format!("--gpu-architecture=sm_{}{}", arch.0, arch.1),
        "--device-as-default-execution-space".into(),
    ]
}

/// The cubin of `src` for `arch`, from the cache or compiled now.
pub fn cubin(src: &Source, arch: (i32, i32)) -> Result<Vec<u8>> {
    let (_, version) = probe::nvrtc()?;
    let text = format!("{COMMON}\n#line 1 \"{}.cu\"\n{}", src.name, src.text);
    let opts = options(arch);
    let mut h = Sha256::new();
    h.update(text.as_bytes());
    for o in &opts {
        h.update(o.as_bytes());
    }
    let digest: String = h.finalize()[..8]
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    let file = format!(
        "{}-{digest}-sm{}{}-nvrtc{}.{}.cubin",
        src.name, arch.0, arch.1, version.0, version.1
    );
    let cached = cache_dir().map(|d| d.join(&file));
    if let Some(p) = &cached {
        if let Ok(bytes) = std::fs::read(p) {
            if !bytes.is_empty() {
                return Ok(bytes);
            }
        }
    }
    log::info!(
        "compiling the cuda backend's {}.cu kernels for sm_{}{} (once; cached)",
        src.name,
        arch.0,
        arch.1
    );
    let bin = compile(&text, src.name, &opts)?;
    if let Some(p) = &cached {
        if let Err(e) = store(p, &bin) {
            log::warn!("cannot cache compiled kernels in {}: {e}", p.display());
        }
    }
    Ok(bin)
}

/// Forgets a cached cubin that failed to load, so the next call compiles.
pub fn evict(src: &Source, arch: (i32, i32)) {
    if let Some(dir) = cache_dir() {
        let prefix = format!("{}-", src.name);
        let suffix = format!("-sm{}{}-", arch.0, arch.1);
        if let Ok(rd) = std::fs::read_dir(dir) {
            for e in rd.flatten() {
                let n = e.file_name().to_string_lossy().into_owned();
                if n.starts_with(&prefix) && n.contains(&suffix) {
                    let _ = std::fs::remove_file(e.path());
                }
            }
        }
    }
}

fn store(path: &std::path::Path, bin: &[u8]) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let tmp = path.with_extension(format!("tmp{}", std::process::id()));
    std::fs::write(&tmp, bin)?;
    std::fs::rename(&tmp, path).inspect_err(|_| {
        let _ = std::fs::remove_file(&tmp);
    })
}

/// Where compiled kernels are kept: `$JETRT_CACHE_DIR`, systemd's
/// `$CACHE_DIRECTORY`, `$XDG_CACHE_HOME/jetrt` or `~/.cache/jetrt`, each
/// with `kernels/` below it.
pub fn cache_dir() -> Option<PathBuf> {
    let var = |k: &str| {
        std::env::var_os(k)
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
    };
    let base = var("JETRT_CACHE_DIR")
        .or_else(|| var("CACHE_DIRECTORY"))
        .or_else(|| var("XDG_CACHE_HOME").map(|d| d.join("jetrt")))
        .or_else(|| var("HOME").map(|d| d.join(".cache").join("jetrt")))?;
    Some(base.join("kernels"))
}

fn compile(text: &str, name: &str, opts: &[String]) -> Result<Vec<u8>> {
    let fail = |what: &str, e: String| Error::Device(format!("NVRTC: {what} {name}.cu: {e}"));
    let src = CString::new(text).map_err(|e| fail("reading", e.to_string()))?;
    let cname = CString::new(format!("{name}.cu")).map_err(|e| fail("naming", e.to_string()))?;
    let prog =
        result::create_program(&src, Some(&cname)).map_err(|e| fail("creating", e.to_string()))?;
    struct Prog(sys::nvrtcProgram);
    impl Drop for Prog {
        fn drop(&mut self) {
            // SAFETY: created above and destroyed once, here.
            let _ = unsafe { result::destroy_program(self.0) };
        }
    }
    let prog = Prog(prog);
    // SAFETY: `prog` is a live program; the options are valid C strings.
    if let Err(e) = unsafe { result::compile_program(prog.0, opts) } {
        // SAFETY: as above; the log is read before the program is destroyed.
        let log = unsafe { result::get_program_log(prog.0) }
            .map(|v| {
                let bytes: Vec<u8> = v.iter().map(|&c| c as u8).take_while(|&c| c != 0).collect();
                String::from_utf8_lossy(&bytes).into_owned()
            })
            .unwrap_or_default();
        return Err(fail("compiling", format!("{e}\n{log}")));
    }
    let mut size = 0usize;
    // SAFETY: a compiled program; `size` is valid for writes.
    unsafe { sys::nvrtcGetCUBINSize(prog.0, &mut size) }
        .result()
        .map_err(|e| fail("sizing the cubin of", e.to_string()))?;
    let mut bin = vec![0u8; size];
    // SAFETY: `bin` holds the `size` bytes NVRTC reported.
    unsafe { sys::nvrtcGetCUBIN(prog.0, bin.as_mut_ptr().cast()) }
        .result()
        .map_err(|e| fail("reading the cubin of", e.to_string()))?;
    Ok(bin)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kernel source compiles for the Jetson Orin (sm_87) and the
    /// H100/H200 (sm_90), without a GPU: NVRTC alone. Skipped, saying so,
    /// where NVRTC is not installed (CI installs it).
    #[test]
    fn every_kernel_source_compiles_for_orin_and_hopper() {
        match probe::nvrtc() {
            Ok((file, v)) => println!("NVRTC {}.{} from {file}", v.0, v.1),
            Err(e) => {
                assert!(
                    std::env::var_os("JETRT_REQUIRE_NVRTC").is_none(),
                    "JETRT_REQUIRE_NVRTC is set but NVRTC is unusable: {e}"
                );
                println!("SKIPPED: NVRTC is not available here ({e})");
                return;
            }
        }
        let dir = tempfile::tempdir().unwrap();
        for src in &SOURCES {
            for arch in [(8, 7), (9, 0)] {
                let text = format!("{COMMON}\n{}", src.text);
                let bin =
                    compile(&text, src.name, &options(arch)).unwrap_or_else(|e| panic!("{e}"));
                assert!(bin.len() > 1000, "{}: a {}-byte cubin", src.name, bin.len());
                // The ELF magic: a cubin, not PTX text.
                assert_eq!(&bin[..4], b"\x7fELF", "{}", src.name);
                let p = dir
                    .path()
                    .join(format!("{}-{}{}.cubin", src.name, arch.0, arch.1));
                store(&p, &bin).unwrap();
                assert_eq!(std::fs::read(&p).unwrap(), bin);
            }
        }
    }

    #[test]
    fn every_kernel_the_launchers_name_exists_in_a_source() {
        for k in super::super::launch::all_kernel_names() {
            assert!(source_of(&k).is_some(), "no source defines kernel {k}");
        }
    }
}
