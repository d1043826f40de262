//! Frames as sources deliver them: pixels in the camera's own format, with
//! the sequence number and capture time that every result carries.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// Pixel layouts a frame may arrive in. Packed formats have no row padding:
/// sources copy rows tightly.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelFormat {
    Rgb,
    Bgr,
    Gray,
    /// YUV 4:2:2, Y0 U Y1 V (V4L2 YUYV, GStreamer YUY2).
    Yuyv,
    /// YUV 4:2:0: the Y plane, then interleaved U V at half resolution.
    Nv12,
    /// YUV 4:2:0: the Y plane, then U, then V planes (y4m, GStreamer I420).
    I420,
    /// A JPEG image (V4L2 MJPEG).
    Mjpeg,
}

impl PixelFormat {
    pub fn name(self) -> &'static str {
        match self {
            PixelFormat::Rgb => "rgb",
            PixelFormat::Bgr => "bgr",
            PixelFormat::Gray => "gray",
            PixelFormat::Yuyv => "yuyv",
            PixelFormat::Nv12 => "nv12",
            PixelFormat::I420 => "i420",
            PixelFormat::Mjpeg => "mjpeg",
        }
    }

    /// Bytes of a `w`×`h` frame; `None` for compressed formats.
    pub fn frame_len(self, w: usize, h: usize) -> Option<usize> {
        let chroma = w.div_ceil(2) * h.div_ceil(2);
        match self {
            PixelFormat::Rgb | PixelFormat::Bgr => Some(w * h * 3),
            PixelFormat::Gray => Some(w * h),
            PixelFormat::Yuyv => Some(w.div_ceil(2) * 4 * h),
            PixelFormat::Nv12 | PixelFormat::I420 => Some(w * h + 2 * chroma),
            PixelFormat::Mjpeg => None,
        }
    }
}

/// A captured image, shared by every pipeline that reads its source.
#[derive(Clone, Debug)]
pub struct Frame {
    /// Per source, from 0, in capture order.
    pub seq: u64,
    /// Wall-clock capture time, for clients.
    pub captured_at: SystemTime,
    /// Monotonic capture time, for latency.
    pub captured: Instant,
    pub width: u32,
    pub height: u32,
    pub format: PixelFormat,
    pub data: Arc<Vec<u8>>,
}

impl Frame {
    /// A frame captured now; the source runner assigns `seq`.
    pub fn now(width: u32, height: u32, format: PixelFormat, data: Vec<u8>) -> Self {
        Frame {
            seq: 0,
            captured_at: SystemTime::now(),
            captured: Instant::now(),
            width,
            height,
            format,
            data: Arc::new(data),
        }
    }

    /// Capture time as seconds since the Unix epoch.
    pub fn timestamp(&self) -> f64 {
        self.captured_at
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64())
    }
}
