//! Camera frames fed straight into an input: the frame's bytes go to a
//! pinned buffer, are copied to the device and converted by one kernel
//! (`kernels/frame.cu`: pixel format to RGB, resize, scale, normalize,
//! planar layout) into the input's slot, all on the context's stream, so
//! a camera-sized frame crosses to the GPU once, in its compact format.

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

/// Frames for input `input`.
pub struct FrameBinding {
    pub input: usize,
    host: PinnedBuf,
    device: DeviceBuf,
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
        Ok(FrameBinding {
            input,
            host: PinnedBuf::new(gpu, bytes)?,
            device: DeviceBuf::new(gpu, bytes, "camera frames")?,
            f: launch::function(gpu, &launch::typed("frame_to_input", st))?,
            p,
        })
    }

    /// Where the caller writes the next frame, between runs.
    pub fn host(&mut self) -> &mut [u8] {
        self.host.as_mut_slice()
    }

    /// Enqueues the copy of the frame and its conversion into `slot`.
    pub fn enqueue(&mut self, slot: u64, stream: CUstream) -> Result<()> {
        let bytes = self.host.len();
        if bytes > 0 {
            // SAFETY: `device` holds `bytes` bytes; the pinned buffer
            // outlives the run and is written only between runs.
            cu("copying a frame to the GPU", unsafe {
                super::exec::htod_async(self.device.ptr, self.host.raw(), bytes, stream)
            })?;
        }
        self.p.out = slot;
        self.p.src = self.device.ptr;
        launch::launch(stream, self.f, launch::grid_for(self.p.n as usize), &self.p)
    }
}
