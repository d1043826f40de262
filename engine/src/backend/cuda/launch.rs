//! Kernels by name: modules loaded once per GPU (compiled by `nvrtc` or
//! read from its cache), function handles, and launches with one
//! parameter struct.

use super::device::{cu, Gpu};
use super::nvrtc::{self, Source};
use crate::dtype::DataType;
use crate::error::{Error, Result};
use cudarc::driver::{result, sys};
use std::collections::HashMap;
use std::ffi::{c_void, CString};
use std::sync::{Arc, Mutex, OnceLock};

/// Threads per block of every kernel (the sources' `BLOCK`).
pub const BLOCK: u32 = 256;
/// The most blocks a grid-stride kernel is launched with.
const MAX_GRID: u32 = 65_535;

/// A kernel function of a loaded module.
#[derive(Clone, Copy, Debug)]
pub struct Func(sys::CUfunction);

// SAFETY: a CUfunction is an immutable handle, valid in its module's
// context, which lives for the process (device.rs); launches go through a
// stream owned by one executor at a time.
unsafe impl Send for Func {}
// SAFETY: as above; nothing mutates through the handle.
unsafe impl Sync for Func {}

struct Module(sys::CUmodule);

// SAFETY: a loaded module is an immutable handle of a process-wide context.
unsafe impl Send for Module {}

/// The function `name` on `gpu`, loading (and if need be compiling) the
/// source that defines it.
pub fn function(gpu: &Arc<Gpu>, name: &str) -> Result<Func> {
    static LOADED: OnceLock<Mutex<HashMap<(usize, &'static str), Module>>> = OnceLock::new();
    let src = nvrtc::source_of(name)
        .ok_or_else(|| Error::Device(format!("no kernel source defines {name}")))?;
    let mut loaded = LOADED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|e| e.into_inner());
    let module = match loaded.entry((gpu.ordinal, src.name)) {
        std::collections::hash_map::Entry::Occupied(e) => e.get().0,
        std::collections::hash_map::Entry::Vacant(v) => v.insert(load(gpu, src)?).0,
    };
    let cname = CString::new(name).map_err(|e| Error::Device(e.to_string()))?;
    gpu.bind()?;
    // SAFETY: `module` is loaded in the bound context and never unloaded.
    let f = cu(&format!("finding kernel {name}"), unsafe {
        result::module::get_function(module, cname)
    })?;
    Ok(Func(f))
}

fn load(gpu: &Arc<Gpu>, src: &Source) -> Result<Module> {
    gpu.bind()?;
    let try_load = |bin: &[u8]| {
        // SAFETY: `bin` is a cubin image for this GPU's architecture, alive
        // for the call (the driver copies what it keeps).
        unsafe { result::module::load_data(bin.as_ptr().cast()) }
    };
    let bin = nvrtc::cubin(src, gpu.arch)?;
    match try_load(&bin) {
        Ok(m) => Ok(Module(m)),
        Err(e) => {
            // A damaged cache entry: compile afresh once.
            log::warn!(
                "cached {}.cu kernels did not load ({e}); compiling again",
                src.name
            );
            nvrtc::evict(src, gpu.arch);
            let bin = nvrtc::cubin(src, gpu.arch)?;
            cu(
                &format!("loading the {}.cu kernels", src.name),
                try_load(&bin),
            )
            .map(Module)
        }
    }
}

/// Blocks for a grid-stride loop over `n` elements.
pub fn grid_for(n: usize) -> u32 {
    (n.div_ceil(BLOCK as usize)).clamp(1, MAX_GRID as usize) as u32
}

/// Blocks for a kernel that gives each of `rows` rows a block.
pub fn grid_rows(rows: usize) -> u32 {
    rows.clamp(1, MAX_GRID as usize) as u32
}

/// Launches `f` with `grid` blocks of [`BLOCK`] threads and the parameter
/// struct `p`, which must be the kernel's parameter type (the paired
/// `#[repr(C)]` mirror of its C struct).
pub fn launch<P: Copy>(stream: sys::CUstream, f: Func, grid: u32, p: &P) -> Result<()> {
    let mut args = [p as *const P as *mut c_void];
    // SAFETY: the kernel takes one struct parameter of P's layout (each
    // mirror asserts its size against the C side); the driver copies the
    // parameter bytes before this returns, and every pointer inside them is
    // device memory the caller keeps alive until the stream has run.
    cu("launching a kernel", unsafe {
        result::launch_kernel(f.0, (grid, 1, 1), (BLOCK, 1, 1), 0, stream, &mut args)
    })
}

/// The suffix of typed kernels: `f32`, `f16`, `i32`, `i64`, `u8`, `bool`.
pub fn suffix(dt: DataType) -> &'static str {
    match dt {
        DataType::F32 => "f32",
        DataType::F16 => "f16",
        DataType::I32 => "i32",
        DataType::I64 => "i64",
        DataType::U8 => "u8",
        DataType::Bool => "bool",
    }
}

/// `prefix_f32` and the like.
pub fn typed(prefix: &str, dt: DataType) -> String {
    format!("{prefix}_{}", suffix(dt))
}

/// `prefix_4` and the like, for kernels that only move elements.
pub fn sized(prefix: &str, dt: DataType) -> String {
    format!("{prefix}_{}", dt.size())
}

#[cfg(test)]
const FLOATS: [DataType; 2] = [DataType::F32, DataType::F16];
#[cfg(test)]
const NUMBERS: [DataType; 5] = [
    DataType::F32,
    DataType::F16,
    DataType::I32,
    DataType::I64,
    DataType::U8,
];

/// Every kernel name the launchers can ask for, for the test that each is
/// defined in a source.
#[cfg(test)]
pub fn all_kernel_names() -> Vec<String> {
    let mut v = Vec::new();
    for dt in DataType::ALL {
        v.push(typed("ew_binary", dt));
        v.push(typed("reduce", dt));
        for p in [
            "ew_select",
            "copy_strided",
            "copy_table",
            "gather",
            "gather_elements",
            "scatter",
            "resize_nearest",
        ] {
            v.push(sized(p, dt));
        }
    }
    for dt in NUMBERS {
        for p in ["cumsum", "topk", "scatter_reduce"] {
            v.push(typed(p, dt));
        }
    }
    for dt in [
        DataType::F32,
        DataType::F16,
        DataType::I32,
        DataType::I64,
        DataType::U8,
    ] {
        v.push(typed("ew_unary", dt));
    }
    for dt in FLOATS {
        for p in [
            "ew_act",
            "ew_bias_act",
            "ew_bias_act2",
            "ew_bias_act_v",
            "ew_bias_act_vr",
            "ew_binary_flat",
            "ew_scale",
            "reduce_cols",
            "softmax",
            "norm",
            "norm_warp",
            "depthwise",
            "pool",
            "resize",
        ] {
            v.push(typed(p, dt));
        }
    }
    for dt in FLOATS {
        for n in [1, 2, 4, 8] {
            v.push(typed(&format!("row_norm{n}"), dt));
        }
        for n in [1, 2] {
            v.push(typed(&format!("depthwise_cl{n}"), dt));
        }
    }
    for w in [1, 2, 4, 8, 16] {
        v.push(format!("concat_{w}"));
    }
    v.extend(["ew_not_bool", "ew_cast", "einsum_sum"].map(String::from));
    v
}
