//! V4L2 cameras (USB webcams) through the v4l crate, in YUYV or MJPEG.
//!
//! Compiled in CI but exercised there only through the [`Source`] trait's
//! other implementations: no camera is attached to CI. On hardware, an
//! unplugged camera makes `next` fail; the runner reports the source as
//! waiting and reopens the device until it is back.

use super::{Source, SourceError};
use crate::config::CameraFormat;
use crate::frame::{Frame, PixelFormat};
use std::path::Path;
use std::time::Duration;
use v4l::buffer::Type;
use v4l::io::mmap::Stream;
use v4l::io::traits::CaptureStream;
use v4l::video::Capture;
use v4l::{Device, FourCC};

pub struct V4l2Source {
    // The stream owns its own handle to the device; `_dev` is kept so the
    // device is closed only after the stream's buffers are released.
    stream: Stream<'static>,
    _dev: Device,
    width: u32,
    height: u32,
    format: PixelFormat,
    timeout_ms: u64,
}

fn unavailable(dev: &Path, msg: impl std::fmt::Display) -> SourceError {
    SourceError::Unavailable(format!("camera {}: {msg}", dev.display()))
}

impl V4l2Source {
    pub fn open(
        path: &Path,
        width: u32,
        height: u32,
        fps: f64,
        format: CameraFormat,
    ) -> Result<Self, SourceError> {
        let dev = Device::with_path(path).map_err(|e| unavailable(path, e))?;
        let (fourcc, pixel) = match format {
            CameraFormat::Yuyv => (FourCC::new(b"YUYV"), PixelFormat::Yuyv),
            CameraFormat::Mjpeg => (FourCC::new(b"MJPG"), PixelFormat::Mjpeg),
        };
        let mut fmt = dev.format().map_err(|e| unavailable(path, e))?;
        fmt.width = width;
        fmt.height = height;
        fmt.fourcc = fourcc;
        let fmt = dev.set_format(&fmt).map_err(|e| unavailable(path, e))?;
        if fmt.fourcc != fourcc {
            return Err(unavailable(
                path,
                format!(
                    "does not deliver {fourcc} (it offers {}); set format = \"yuyv\" or \"mjpeg\"",
                    fmt.fourcc
                ),
            ));
        }
        if (fmt.width, fmt.height) != (width, height) {
            log::warn!(
                "camera {}: asked for {width}x{height}, it gives {}x{}",
                path.display(),
                fmt.width,
                fmt.height
            );
        }
        if pixel == PixelFormat::Yuyv
            && (fmt.stride as usize) != fmt.width as usize * 2
            && fmt.stride != 0
        {
            return Err(unavailable(
                path,
                format!(
                    "rows are padded (stride {}), which is not supported",
                    fmt.stride
                ),
            ));
        }
        let params = v4l::video::capture::Parameters::with_fps(fps.round().max(1.0) as u32);
        if let Err(e) = dev.set_params(&params) {
            log::warn!("camera {}: cannot set {fps} fps: {e}", path.display());
        }
        let mut stream =
            Stream::with_buffers(&dev, Type::VideoCapture, 4).map_err(|e| unavailable(path, e))?;
        let timeout_ms = 100;
        stream.set_timeout(Duration::from_millis(timeout_ms));
        Ok(V4l2Source {
            stream,
            _dev: dev,
            width: fmt.width,
            height: fmt.height,
            format: pixel,
            timeout_ms,
        })
    }
}

impl Source for V4l2Source {
    fn next(&mut self, timeout: Duration) -> Result<Option<Frame>, SourceError> {
        let ms = timeout.as_millis().clamp(1, 10_000) as u64;
        if ms != self.timeout_ms {
            self.stream.set_timeout(Duration::from_millis(ms));
            self.timeout_ms = ms;
        }
        match self.stream.next() {
            Ok((buf, meta)) => {
                let used = (meta.bytesused as usize).min(buf.len());
                let used = if used == 0 { buf.len() } else { used };
                Ok(Some(Frame::now(
                    self.width,
                    self.height,
                    self.format,
                    buf[..used].to_vec(),
                )))
            }
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => Ok(None),
            Err(e) => Err(SourceError::Unavailable(format!(
                "camera stopped delivering frames: {e} (unplugged?)"
            ))),
        }
    }
}
