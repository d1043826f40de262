//! Frames pushed by a client (`push` over the socket), checked before they
//! reach a pipeline: a client controls every byte of them.

pub use crate::frame::MAX_SIDE;
use crate::frame::{Frame, PixelFormat};

/// Checks a pushed image's description against its bytes.
pub fn frame_from_client(
    width: u32,
    height: u32,
    format: PixelFormat,
    data: Vec<u8>,
) -> Result<Frame, String> {
    if format != PixelFormat::Mjpeg {
        if width == 0 || height == 0 || width > MAX_SIDE || height > MAX_SIDE {
            return Err(format!(
                "image size {width}x{height} is outside 1x1..{MAX_SIDE}x{MAX_SIDE}"
            ));
        }
        let want = format
            .frame_len(width as usize, height as usize)
            .unwrap_or(0);
        if data.len() != want {
            return Err(format!(
                "a {} image of {width}x{height} is {want} bytes, the binary frame has {}",
                format.name(),
                data.len()
            ));
        }
    } else if data.is_empty() {
        return Err("the JPEG is empty".into());
    }
    Ok(Frame::now(width, height, format, data))
}
