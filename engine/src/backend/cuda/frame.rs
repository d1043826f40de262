//! Camera frames fed straight into an input: the frame's bytes go to a
//! pinned buffer, are copied to the device and converted by one kernel
//! (`kernels/frame.cu`: pixel format to RGB, resize, scale, normalize,
//! planar layout) into the input's slot, all on the context's stream, so
//! a camera-sized frame crosses to the GPU once, in its compact format.
//!
//! On an integrated GPU (a Jetson, whose GPU and CPU share one memory) the
//! copy is skipped: the pinned buffer is mapped into the device's address
//! space and the kernel reads the frame where the caller wrote it, which
//! saves a frame's worth of memory traffic and a device buffer.
//! `JETRT_CUDA_FRAMES=mapped` or `=copy` picks either on any GPU.

use super::device::{cu, DeviceBuf, Gpu, PinnedBuf};
use super::launch::{self, Func};
use crate::dtype::DataType;
use crate::engine_file::ColorOrder;
use crate::error::{Error, Result};
use crate::ir::Input;
use crate::preprocess::{FrameInput, PixelFormat};
use cudarc::driver::sys::CUstream;
use std::sync::Arc;

/// The kernel's FrameParams (frame.cu).
#[repr(C)]
#[derive(Clone, Copy, Default)]
struct FrameParams {
    out: u64,
    src: u64,
    n: i64,
    format: i32,
    bgr: i32,
    w: i32,
    h: i32,
    ow: i32,
    oh: i32,
    mean: [f32; 3],
    std: [f32; 3],
}
const _: () = assert!(std::mem::size_of::<FrameParams>() == 72);

/// How a frame reaches the kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FrameMemory {
    /// Copied from a pinned buffer to a device buffer on the stream.
    Copy,
    /// Read in place from pinned host memory mapped into the device.
    Mapped,
}

impl FrameMemory {
    /// Mapped on an integrated GPU that can map host memory, copied
    /// elsewhere; `JETRT_CUDA_FRAMES` (`mapped` or `copy`) overrides.
    pub fn for_gpu(gpu: &Gpu) -> Result<FrameMemory> {
        #[cfg(test)]
        if let Some(m) = *TEST_FRAME_MEMORY.lock().unwrap_or_else(|e| e.into_inner()) {
            return Ok(m);
        }
        let chosen = match std::env::var("JETRT_CUDA_FRAMES") {
            Ok(v) if v == "mapped" => FrameMemory::Mapped,
            Ok(v) if v == "copy" => FrameMemory::Copy,
            Ok(v) => {
                return Err(Error::Device(format!(
                    "JETRT_CUDA_FRAMES={v:?}: use \"mapped\" or \"copy\""
                )))
            }
            Err(_) if gpu.integrated && gpu.can_map_host => FrameMemory::Mapped,
            Err(_) => FrameMemory::Copy,
        };
        if chosen == FrameMemory::Mapped && !gpu.can_map_host {
            return Err(Error::Device(format!(
                "JETRT_CUDA_FRAMES=mapped: {} cannot map host memory",
                gpu.describe()
            )));
        }
        Ok(chosen)
    }
}

/// Tests pick the frame memory without the environment.
#[cfg(test)]
pub static TEST_FRAME_MEMORY: std::sync::Mutex<Option<FrameMemory>> = std::sync::Mutex::new(None);

/// Where the kernel reads a frame from.
enum FrameSource {
    /// The pinned buffer's copy on the device.
    Copied(DeviceBuf),
    /// The pinned buffer itself, at this device address.
    Mapped(u64),
}

/// Frames for input `input`.
pub struct FrameBinding {
    pub input: usize,
    host: PinnedBuf,
    source: FrameSource,
    f: Func,
    p: FrameParams,
}

impl FrameBinding {
    /// Checks that input `input` (declared `decl`, with the `dims` set)
    /// can take `spec`'s frames into storage type `st`, and allocates the
    /// frame's buffers.
    pub fn new(
        gpu: &Arc<Gpu>,
        input: usize,
        decl: &Input,
        dims: &[usize],
        spec: &FrameInput,
        st: DataType,
        memory: FrameMemory,
    ) -> Result<FrameBinding> {
        let bad = |msg: String| Error::Input {
            name: decl.name.clone(),
            msg,
        };
        let [1, 3, oh, ow] = dims[..] else {
            return Err(bad(format!(
                "frames feed a 1x3xHxW input; this one is {}",
                crate::shape::format_dims(dims)
            )));
        };
        if decl.info.dtype != DataType::F32 {
            return Err(bad(format!(
                "frames feed a float32 input; this one is {}",
                decl.info.dtype
            )));
        }
        if spec.width == 0 || spec.height == 0 {
            return Err(bad(format!(
                "an empty frame ({}x{})",
                spec.width, spec.height
            )));
        }
        let int = |v: usize, what: &str| {
            i32::try_from(v).map_err(|_| bad(format!("a frame {what} of {v} is too large")))
        };
        // The kernel's format codes.
        let format = match spec.format {
            PixelFormat::Rgb => 0,
            PixelFormat::Bgr => 1,
            PixelFormat::Gray => 2,
            PixelFormat::Yuyv => 3,
            PixelFormat::Nv12 => 4,
            PixelFormat::I420 => 5,
        };
        let p = FrameParams {
            n: (3 * oh * ow) as i64,
            format,
            bgr: (spec.pre.color == ColorOrder::Bgr) as i32,
            w: int(spec.width, "width")?,
            h: int(spec.height, "height")?,
            ow: int(ow, "width")?,
            oh: int(oh, "height")?,
            mean: spec.pre.mean,
            std: spec.pre.std,
            ..Default::default()
        };
        let bytes = spec.format.frame_len(spec.width, spec.height);
        let (host, source) = match memory {
            FrameMemory::Copy => (
                PinnedBuf::new(gpu, bytes)?,
                FrameSource::Copied(DeviceBuf::new(gpu, bytes, "camera frames")?),
            ),
            FrameMemory::Mapped => {
                let (host, dptr) = PinnedBuf::mapped(gpu, bytes)?;
                (host, FrameSource::Mapped(dptr))
            }
        };
        Ok(FrameBinding {
            input,
            host,
            source,
            f: launch::function(gpu, &launch::typed("frame_to_input", st))?,
            p,
        })
    }

    /// Where the caller writes the next frame, between runs.
    pub fn host(&mut self) -> &mut [u8] {
        self.host.as_mut_slice()
    }

    /// Enqueues the copy of the frame (unless mapped) and its conversion
    /// into `slot`.
    pub fn enqueue(&mut self, slot: u64, stream: CUstream) -> Result<()> {
        let bytes = self.host.len();
        self.p.src = match &self.source {
            FrameSource::Copied(device) => {
                if bytes > 0 {
                    // SAFETY: `device` holds `bytes` bytes; the pinned buffer
                    // outlives the run and is written only between runs.
                    cu("copying a frame to the GPU", unsafe {
                        super::exec::htod_async(device.ptr, self.host.raw(), bytes, stream)
                    })?;
                }
                device.ptr
            }
            // The kernel reads the pinned buffer itself, which the caller
            // writes only between runs, as for the copy.
            FrameSource::Mapped(dptr) => *dptr,
        };
        self.p.out = slot;
        launch::launch(stream, self.f, launch::grid_for(self.p.n as usize), &self.p)
    }
}
