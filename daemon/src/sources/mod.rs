//! Frame sources. Each runs on its own thread through [`runner`]: it opens
//! the source, pulls frames, and hands each (shared, not copied) to every
//! pipeline reading it through a [`fanout::Fanout`] of latest-frame queues.
//! A source that fails (a camera unplugged, a file gone) is reopened with
//! back-off while its state says why it has no frames.
//!
//! Every kind implements [`Source`], so the pipelines, the server and the
//! tests above it never know which kind they read.

pub mod fanout;
pub mod file;
#[cfg(feature = "gstreamer")]
pub mod gst;
pub mod push;
pub mod runner;
pub mod status;
pub mod synthetic;
#[cfg(feature = "v4l2")]
pub mod v4l2;
pub mod y4m;

use crate::config::{SourceConfig, SourceKind};
use crate::frame::Frame;
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum SourceError {
    /// The source cannot be opened now; it is retried.
    #[error("{0}")]
    Unavailable(String),
    /// The source ended (a file source that does not loop).
    #[error("end of stream")]
    Ended,
}

/// A source of frames, opened by [`open`] on its own thread (so it need
/// not be `Send`: camera buffers are tied to the thread that mapped them).
pub trait Source {
    /// Waits at most `timeout` for the next frame; `Ok(None)` when none
    /// came in time (the runner checks for a stop, then asks again).
    fn next(&mut self, timeout: Duration) -> Result<Option<Frame>, SourceError>;
}

/// Opens the source a config describes. Push sources have no thread and
/// are never opened.
pub fn open(cfg: &SourceConfig) -> Result<Box<dyn Source>, SourceError> {
    match &cfg.kind {
        SourceKind::Synthetic {
            width,
            height,
            fps,
            format,
        } => Ok(Box::new(synthetic::Synthetic::new(
            *width, *height, *fps, *format,
        ))),
        SourceKind::File { path, fps, looping } => {
            Ok(Box::new(file::FileSource::open(path, *fps, *looping)?))
        }
        SourceKind::Push => Err(SourceError::Unavailable(
            "push sources are fed by clients".into(),
        )),
        #[cfg(feature = "v4l2")]
        SourceKind::V4l2 {
            device,
            width,
            height,
            fps,
            format,
        } => Ok(Box::new(v4l2::V4l2Source::open(
            device, *width, *height, *fps, *format,
        )?)),
        #[cfg(not(feature = "v4l2"))]
        SourceKind::V4l2 { .. } => Err(SourceError::Unavailable(
            "this jetrtd was built without V4L2 support (cargo feature v4l2)".into(),
        )),
        #[cfg(feature = "gstreamer")]
        SourceKind::Gstreamer { pipeline } => Ok(Box::new(gst::GstSource::open(pipeline)?)),
        #[cfg(not(feature = "gstreamer"))]
        SourceKind::Gstreamer { .. } => Err(SourceError::Unavailable(
            "this jetrtd was built without GStreamer support (cargo feature gstreamer)".into(),
        )),
    }
}

/// Paces a source to a frame rate without drifting.
pub struct Pacer {
    period: Duration,
    next: std::time::Instant,
}

impl Pacer {
    pub fn new(fps: f64) -> Self {
        Pacer {
            period: Duration::from_secs_f64(1.0 / fps.max(1e-3)),
            next: std::time::Instant::now(),
        }
    }

    /// Sleeps until the next frame is due, at most `timeout`; true when due.
    pub fn wait(&mut self, timeout: Duration) -> bool {
        let now = std::time::Instant::now();
        if self.next > now {
            let wait = self.next - now;
            if wait > timeout {
                std::thread::sleep(timeout);
                return false;
            }
            std::thread::sleep(wait);
        }
        self.next += self.period;
        // After a long stall, start again from now rather than bursting.
        let now = std::time::Instant::now();
        if self.next + self.period * 4 < now {
            self.next = now + self.period;
        }
        true
    }
}
