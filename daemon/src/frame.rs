//! Frames as sources deliver them: pixels in the camera's own format, with
//! the sequence number and capture time that every result carries.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

/// The largest frame side the daemon takes, from a client or in a JPEG's
/// header (a decoded 8192x8192 frame is 192 MiB of RGB).
pub const MAX_SIDE: u32 = 8192;

/// Pixel layouts a frame may arrive in: the engine's uncompressed layouts
/// (see `jetrt_engine::preprocess::PixelFormat`; packed, sources copy rows
/// tightly) plus JPEG, which the daemon decodes itself.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum PixelFormat {
    Rgb,
    Bgr,
    Gray,
    Yuyv,
    Nv12,
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

    /// An uncompressed format by its config name.
    pub fn parse_raw(name: &str) -> Option<PixelFormat> {
        jetrt_engine::preprocess::PixelFormat::ALL
            .into_iter()
            .map(PixelFormat::from_raw)
            .find(|p| p.name() == name)
    }

    /// The daemon's name for an engine layout.
    pub fn from_raw(raw: jetrt_engine::preprocess::PixelFormat) -> PixelFormat {
        use jetrt_engine::preprocess::PixelFormat as P;
        match raw {
            P::Rgb => PixelFormat::Rgb,
            P::Bgr => PixelFormat::Bgr,
            P::Gray => PixelFormat::Gray,
            P::Yuyv => PixelFormat::Yuyv,
            P::Nv12 => PixelFormat::Nv12,
            P::I420 => PixelFormat::I420,
        }
    }

    /// The uncompressed layout, as the engine's frame kernels take it;
    /// `None` for MJPEG.
    pub fn raw(self) -> Option<jetrt_engine::preprocess::PixelFormat> {
        use jetrt_engine::preprocess::PixelFormat as P;
        Some(match self {
            PixelFormat::Rgb => P::Rgb,
            PixelFormat::Bgr => P::Bgr,
            PixelFormat::Gray => P::Gray,
            PixelFormat::Yuyv => P::Yuyv,
            PixelFormat::Nv12 => P::Nv12,
            PixelFormat::I420 => P::I420,
            PixelFormat::Mjpeg => return None,
        })
    }

    /// Bytes of a `w`×`h` frame; `None` for compressed formats.
    pub fn frame_len(self, w: usize, h: usize) -> Option<usize> {
        self.raw().map(|r| r.frame_len(w, h))
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

#[cfg(test)]
mod tests {
    use super::PixelFormat;

    /// Every engine layout has a daemon name that maps back to it, and
    /// only JPEG lacks one.
    #[test]
    fn engine_layouts_round_trip() {
        for raw in jetrt_engine::preprocess::PixelFormat::ALL {
            let f = PixelFormat::from_raw(raw);
            assert_eq!(f.raw(), Some(raw));
            assert_eq!(PixelFormat::parse_raw(f.name()), Some(f));
        }
        assert_eq!(PixelFormat::Mjpeg.raw(), None);
        assert_eq!(PixelFormat::parse_raw("mjpeg"), None);
    }
}
