//! A GPU: its CUDA context, what it is, and the RAII pieces every context
//! of the backend owns on it (streams, device and pinned host memory).
//!
//! One context per device lives for the life of the process (the device's
//! primary context, as the CUDA runtime keeps it), so kernel modules
//! loaded into it stay valid for every executor on that device.

use super::probe;
use crate::error::{Error, Result};
use cudarc::driver::{result, sys, CudaContext, DriverError};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, OnceLock};

/// Driver entry points the backend calls, directly or through cudarc.
pub const DRIVER_SYMBOLS: &[&str] = &[
    "cuInit",
    "cuDriverGetVersion",
    "cuDeviceGetCount",
    "cuDeviceGet",
    "cuDeviceGetName",
    "cuDeviceGetAttribute",
    "cuDeviceTotalMem_v2",
    "cuDevicePrimaryCtxRetain",
    "cuDevicePrimaryCtxRelease_v2",
    "cuCtxGetCurrent",
    "cuCtxSetCurrent",
    "cuStreamCreate",
    "cuStreamDestroy_v2",
    "cuStreamSynchronize",
    "cuMemAlloc_v2",
    "cuMemFree_v2",
    "cuMemHostAlloc",
    "cuMemFreeHost",
    "cuMemcpyHtoDAsync_v2",
    "cuMemcpyDtoHAsync_v2",
    "cuMemcpyDtoDAsync_v2",
    "cuMemcpyHtoD_v2",
    "cuMemsetD8Async",
    "cuMemGetInfo_v2",
    "cuModuleLoadData",
    "cuModuleGetFunction",
    "cuLaunchKernel",
    "cuStreamBeginCapture_v2",
    "cuStreamEndCapture",
    "cuGraphInstantiateWithFlags",
    "cuGraphLaunch",
    "cuGraphExecDestroy",
    "cuGraphDestroy",
    "cuEventCreate",
    "cuEventRecord",
    "cuEventSynchronize",
    "cuEventDestroy_v2",
    "cuGetErrorName",
    "cuGetErrorString",
];

/// A CUDA driver call's failure as the engine's error, saying what was
/// being done.
pub fn cu<T>(what: &str, r: std::result::Result<T, DriverError>) -> Result<T> {
    r.map_err(|e| Error::Device(format!("CUDA: {what}: {e}")))
}

/// One GPU and its process-wide context.
pub struct Gpu {
    pub ctx: Arc<CudaContext>,
    pub ordinal: usize,
    pub name: String,
    /// Compute capability, e.g. (8, 7) for Jetson Orin, (9, 0) for H100/H200.
    pub arch: (i32, i32),
    pub total_memory: usize,
    /// The GPU shares the host's memory (a Jetson): pinned host buffers
    /// mapped into the device's address space are read in place there, with
    /// no copy.
    pub integrated: bool,
    /// The device can address mapped pinned host memory at all.
    pub can_map_host: bool,
}

impl Gpu {
    /// The GPU `ordinal`, its context made once per process.
    pub fn open(ordinal: usize) -> Result<Arc<Gpu>> {
        static GPUS: OnceLock<Mutex<HashMap<usize, Arc<Gpu>>>> = OnceLock::new();
        let libs = probe::libraries()?;
        let mut gpus = GPUS
            .get_or_init(Default::default)
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(g) = gpus.get(&ordinal) {
            return Ok(g.clone());
        }
        cu("initialising the driver", result::init())?;
        let count = cu("counting GPUs", result::device::get_count())?;
        if count <= 0 {
            return Err(Error::Device(format!(
                "the CUDA driver ({}, CUDA {}) sees no GPU",
                libs.files[0],
                probe::cuda_version(libs.driver)
            )));
        }
        if ordinal >= count as usize {
            return Err(Error::Device(format!(
                "there is no GPU {ordinal}: the driver sees {count} (0 to {})",
                count - 1
            )));
        }
        let ctx = cu("creating the context", CudaContext::new(ordinal))?;
        let arch = cu("reading the compute capability", ctx.compute_capability())?;
        if arch < (5, 3) {
            return Err(Error::Device(format!(
                "GPU {ordinal} has compute capability {}.{}; the cuda backend needs 5.3 or newer (half-precision arithmetic)",
                arch.0, arch.1
            )));
        }
        let attr = |a, what: &str| {
            cu(
                &format!("reading whether GPU {ordinal} {what}"),
                ctx.attribute(a),
            )
            .map(|v| v != 0)
        };
        use sys::CUdevice_attribute as A;
        let integrated = attr(A::CU_DEVICE_ATTRIBUTE_INTEGRATED, "is integrated")?;
        let can_map_host = attr(
            A::CU_DEVICE_ATTRIBUTE_CAN_MAP_HOST_MEMORY,
            "maps host memory",
        )?;
        let gpu = Arc::new(Gpu {
            name: cu("reading the GPU's name", ctx.name())?,
            total_memory: cu("reading the GPU's memory", ctx.total_mem())?,
            ctx,
            ordinal,
            arch,
            integrated,
            can_map_host,
        });
        gpus.insert(ordinal, gpu.clone());
        Ok(gpu)
    }

    /// `GPU 0 (NVIDIA H200, sm_90, 139.8 GiB)`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "GPU {} ({}, {}, {})",
            self.ordinal,
            self.name,
            self.arch_name(),
            human(self.total_memory)
        )
    }

    /// `sm_87`.
    pub fn arch_name(&self) -> String {
        format!("sm_{}{}", self.arch.0, self.arch.1)
    }

    /// Makes the context current on the calling thread.
    pub fn bind(&self) -> Result<()> {
        cu("binding the context", self.ctx.bind_to_thread())
    }

    /// Free and total device memory, in bytes.
    pub fn memory(&self) -> Result<(usize, usize)> {
        self.bind()?;
        cu("reading free memory", result::mem_get_info())
    }
}

/// A stream owned by one execution context.
pub struct Stream {
    gpu: Arc<Gpu>,
    pub raw: sys::CUstream,
}

// SAFETY: a CUstream may be used from any thread with its context bound;
// every use goes through `&mut` or one owner at a time.
unsafe impl Send for Stream {}

impl Stream {
    pub fn new(gpu: &Arc<Gpu>) -> Result<Self> {
        gpu.bind()?;
        let raw = cu(
            "creating a stream",
            result::stream::create(result::stream::StreamKind::NonBlocking),
        )?;
        Ok(Stream {
            gpu: gpu.clone(),
            raw,
        })
    }

    pub fn synchronize(&self) -> Result<()> {
        // SAFETY: the stream is alive (owned) and its context bound.
        cu("waiting for the stream", unsafe {
            result::stream::synchronize(self.raw)
        })
    }
}

impl Drop for Stream {
    fn drop(&mut self) {
        if self.gpu.bind().is_ok() {
            // SAFETY: the stream was created by this object and is
            // destroyed once; pending work finishes before it is released.
            let _ = unsafe { result::stream::destroy(self.raw) };
        }
    }
}

/// A device allocation.
pub struct DeviceBuf {
    gpu: Arc<Gpu>,
    pub ptr: u64,
    pub bytes: usize,
}

impl DeviceBuf {
    /// `bytes` of device memory (none for 0), contents undefined.
    pub fn new(gpu: &Arc<Gpu>, bytes: usize, what: &str) -> Result<Self> {
        let ptr = if bytes == 0 {
            0
        } else {
            gpu.bind()?;
            // SAFETY: a plain allocation of a nonzero size in the bound context.
            unsafe { result::malloc_sync(bytes) }.map_err(|e| {
                let free = gpu.memory().map(|m| m.0).unwrap_or(0);
                Error::Device(format!(
                    "CUDA: allocating {} for {what} on GPU {} ({} free): {e}",
                    human(bytes),
                    gpu.ordinal,
                    human(free)
                ))
            })?
        };
        Ok(DeviceBuf {
            gpu: gpu.clone(),
            ptr,
            bytes,
        })
    }

    /// A buffer holding `data`, copied synchronously (weights, tables).
    pub fn upload(gpu: &Arc<Gpu>, data: &[u8], what: &str) -> Result<Self> {
        let b = DeviceBuf::new(gpu, data.len(), what)?;
        if !data.is_empty() {
            // SAFETY: `b` holds data.len() bytes; the copy completes before
            // this returns.
            cu(&format!("uploading {what}"), unsafe {
                result::memcpy_htod_sync(b.ptr, data)
            })?;
        }
        Ok(b)
    }
}

impl Drop for DeviceBuf {
    fn drop(&mut self) {
        if self.ptr != 0 && self.gpu.bind().is_ok() {
            // SAFETY: allocated by cuMemAlloc in this context and freed once;
            // cuMemFree waits for work using it to finish.
            let _ = unsafe { result::free_sync(self.ptr) };
        }
    }
}

/// Page-locked host memory: what asynchronous copies need.
pub struct PinnedBuf {
    gpu: Arc<Gpu>,
    ptr: *mut u8,
    len: usize,
}

// SAFETY: the buffer is plain host memory owned by this object; access
// goes through `&self`/`&mut self`.
unsafe impl Send for PinnedBuf {}

impl PinnedBuf {
    pub fn new(gpu: &Arc<Gpu>, len: usize) -> Result<Self> {
        Self::alloc(gpu, len, 0)
    }

    /// Pinned memory mapped into the device's address space, and its device
    /// address (0 for an empty buffer): kernels read it in place. On an
    /// integrated GPU that is the same memory; on a discrete one each read
    /// crosses the bus.
    pub fn mapped(gpu: &Arc<Gpu>, len: usize) -> Result<(Self, u64)> {
        let buf = Self::alloc(gpu, len, sys::CU_MEMHOSTALLOC_DEVICEMAP)?;
        if len == 0 {
            return Ok((buf, 0));
        }
        let mut dptr: sys::CUdeviceptr = 0;
        // SAFETY: `buf.ptr` was allocated by cuMemHostAlloc with DEVICEMAP in
        // the bound context; the call writes one device address.
        cu("mapping pinned host memory into the GPU", unsafe {
            sys::cuMemHostGetDevicePointer_v2(&mut dptr, buf.ptr.cast(), 0).result()
        })?;
        Ok((buf, dptr))
    }

    fn alloc(gpu: &Arc<Gpu>, len: usize, flags: u32) -> Result<Self> {
        let ptr = if len == 0 {
            std::ptr::null_mut()
        } else {
            gpu.bind()?;
            // SAFETY: a host allocation of a nonzero size in the bound context.
            cu("allocating pinned host memory", unsafe {
                result::malloc_host(len, flags)
            })?
            .cast()
        };
        Ok(PinnedBuf {
            gpu: gpu.clone(),
            ptr,
            len,
        })
    }

    pub fn as_slice(&self) -> &[u8] {
        if self.len == 0 {
            return &[];
        }
        // SAFETY: `ptr` holds `len` bytes owned by this object.
        unsafe { std::slice::from_raw_parts(self.ptr, self.len) }
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        if self.len == 0 {
            return &mut [];
        }
        // SAFETY: as above, borrowed mutably through `&mut self`.
        unsafe { std::slice::from_raw_parts_mut(self.ptr, self.len) }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    /// The buffer's address, for copies the driver does asynchronously.
    pub fn raw(&self) -> *mut u8 {
        self.ptr
    }
}

impl Drop for PinnedBuf {
    fn drop(&mut self) {
        if !self.ptr.is_null() && self.gpu.bind().is_ok() {
            // SAFETY: allocated by cuMemHostAlloc and freed once.
            let _ = unsafe { result::free_host(self.ptr.cast()) };
        }
    }
}

/// `12.3 MiB`.
pub fn human(bytes: usize) -> String {
    let b = bytes as f64;
    if b >= (1u64 << 30) as f64 {
        format!("{:.2} GiB", b / (1u64 << 30) as f64)
    } else if b >= (1u64 << 20) as f64 {
        format!("{:.1} MiB", b / (1u64 << 20) as f64)
    } else {
        format!("{:.1} KiB", b / 1024.0)
    }
}
