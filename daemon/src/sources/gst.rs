//! GStreamer sources: a pipeline description from the config, ending in an
//! appsink. This is how a JetBot's CSI camera is read
//! (`nvarguscamerasrc ! nvvidconv ! video/x-raw,format=BGRx ...`), and with
//! `videotestsrc` it is tested without a camera.
//!
//! The description may end in its own `appsink name=sink`; otherwise one is
//! appended. The appsink keeps one buffer and drops older ones, the same
//! latest-frame policy as every other source.

use super::{Source, SourceError};
use crate::frame::{Frame, PixelFormat};
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use std::time::Duration;

pub struct GstSource {
    pipeline: gst::Pipeline,
    sink: gst_app::AppSink,
    bus: gst::Bus,
}

fn unavailable(msg: impl std::fmt::Display) -> SourceError {
    SourceError::Unavailable(format!("GStreamer: {msg}"))
}

/// The formats the appsink accepts; upstream negotiates one of them (add a
/// `videoconvert` to the description for anything else).
const FORMATS: [&str; 7] = ["RGB", "BGR", "RGBx", "BGRx", "GRAY8", "YUY2", "NV12"];

impl GstSource {
    pub fn open(description: &str) -> Result<Self, SourceError> {
        gst::init().map_err(unavailable)?;
        let desc = if description.contains("appsink") {
            description.to_string()
        } else {
            format!("{description} ! appsink name=sink")
        };
        let element = gst::parse::launch(&desc)
            .map_err(|e| unavailable(format!("cannot parse the pipeline: {e}")))?;
        let pipeline = element
            .downcast::<gst::Pipeline>()
            .map_err(|_| unavailable("the description is not a pipeline"))?;
        let sink = pipeline
            .by_name("sink")
            .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
            .ok_or_else(|| {
                unavailable("the pipeline's appsink must be named 'sink' (appsink name=sink)")
            })?;
        let caps = gst::Caps::builder("video/x-raw")
            .field("format", gst::List::new(FORMATS))
            .build();
        sink.set_caps(Some(&caps));
        sink.set_max_buffers(1);
        sink.set_drop(true);
        let bus = pipeline
            .bus()
            .ok_or_else(|| unavailable("the pipeline has no bus"))?;
        pipeline.set_state(gst::State::Playing).map_err(|_| {
            let detail = bus_error(&bus).unwrap_or_else(|| "it refused to start".into());
            let _ = pipeline.set_state(gst::State::Null);
            unavailable(detail)
        })?;
        Ok(GstSource {
            pipeline,
            sink,
            bus,
        })
    }
}

/// The first error or end of stream waiting on the bus, as text.
fn bus_error(bus: &gst::Bus) -> Option<String> {
    while let Some(msg) = bus.pop_filtered(&[gst::MessageType::Error, gst::MessageType::Eos]) {
        match msg.view() {
            gst::MessageView::Error(e) => {
                let src = msg
                    .src()
                    .map(|s| s.path_string().to_string())
                    .unwrap_or_default();
                return Some(format!("{src}: {}", e.error()));
            }
            gst::MessageView::Eos(_) => return Some("the pipeline reached its end".into()),
            _ => {}
        }
    }
    None
}

fn pixel_format(f: gst_video::VideoFormat) -> Option<(PixelFormat, usize)> {
    use gst_video::VideoFormat as V;
    // (format, bytes per pixel copied from the first plane; 0: planar YUV)
    match f {
        V::Rgb => Some((PixelFormat::Rgb, 3)),
        V::Bgr => Some((PixelFormat::Bgr, 3)),
        V::Rgbx => Some((PixelFormat::Rgb, 4)),
        V::Bgrx => Some((PixelFormat::Bgr, 4)),
        V::Gray8 => Some((PixelFormat::Gray, 1)),
        V::Yuy2 => Some((PixelFormat::Yuyv, 2)),
        V::Nv12 => Some((PixelFormat::Nv12, 0)),
        _ => None,
    }
}

/// Copies a mapped video buffer into a tight frame, dropping row padding
/// and (for RGBx/BGRx) the fourth byte.
fn tight_copy(info: &gst_video::VideoInfo, data: &[u8]) -> Result<(PixelFormat, Vec<u8>), String> {
    let (fmt, bpp) = pixel_format(info.format()).ok_or_else(|| {
        format!(
            "format {:?} is not supported; add videoconvert",
            info.format()
        )
    })?;
    let (w, h) = (info.width() as usize, info.height() as usize);
    let row = |plane: usize, y: usize, len: usize| -> Result<&[u8], String> {
        let start = info.offset()[plane] + y * info.stride()[plane].max(0) as usize;
        data.get(start..start + len)
            .ok_or_else(|| "the buffer is smaller than its caps say".to_string())
    };
    let mut out = Vec::with_capacity(fmt.frame_len(w, h).unwrap_or(0));
    match (fmt, bpp) {
        (PixelFormat::Nv12, _) => {
            for y in 0..h {
                out.extend_from_slice(row(0, y, w)?);
            }
            for y in 0..h.div_ceil(2) {
                out.extend_from_slice(row(1, y, w.div_ceil(2) * 2)?);
            }
        }
        (PixelFormat::Yuyv, _) => {
            for y in 0..h {
                out.extend_from_slice(row(0, y, w.div_ceil(2) * 4)?);
            }
        }
        (_, 4) => {
            for y in 0..h {
                for px in row(0, y, w * 4)?.chunks_exact(4) {
                    out.extend_from_slice(&px[..3]);
                }
            }
        }
        _ => {
            for y in 0..h {
                out.extend_from_slice(row(0, y, w * bpp)?);
            }
        }
    }
    Ok((fmt, out))
}

impl Source for GstSource {
    fn next(&mut self, timeout: Duration) -> Result<Option<Frame>, SourceError> {
        if let Some(e) = bus_error(&self.bus) {
            return Err(unavailable(e));
        }
        let ms = timeout.as_millis().min(u64::MAX as u128) as u64;
        let Some(sample) = self.sink.try_pull_sample(gst::ClockTime::from_mseconds(ms)) else {
            if self.sink.is_eos() {
                return Err(unavailable("the pipeline reached its end"));
            }
            return Ok(None);
        };
        let caps = sample
            .caps()
            .ok_or_else(|| unavailable("a sample without caps"))?;
        let info = gst_video::VideoInfo::from_caps(caps).map_err(unavailable)?;
        let buffer = sample
            .buffer()
            .ok_or_else(|| unavailable("a sample without a buffer"))?;
        let map = buffer.map_readable().map_err(unavailable)?;
        let (format, data) = tight_copy(&info, map.as_slice()).map_err(unavailable)?;
        Ok(Some(Frame::now(info.width(), info.height(), format, data)))
    }
}

impl Drop for GstSource {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
