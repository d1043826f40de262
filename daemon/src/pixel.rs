//! Pixel conversion: any [`PixelFormat`] to packed RGB8, which
//! `jetrt_engine::preprocess` then resizes and normalizes exactly as
//! `engine-builder run --image` does, so a frame gives the same tensor in
//! the daemon and on the command line.
//!
//! YUV is taken as BT.601 limited range (16..235), what USB cameras and
//! GStreamer's default colorimetry for SD/HD test sources send.

use crate::frame::{Frame, PixelFormat, MAX_SIDE};

#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PixelError {
    #[error("a {format} frame of {width}x{height} needs {want} bytes, got {got}")]
    Size {
        format: &'static str,
        width: u32,
        height: u32,
        want: usize,
        got: usize,
    },
    #[error("cannot decode the JPEG frame: {0}")]
    Jpeg(String),
    #[error("the frame is empty ({width}x{height})")]
    Empty { width: u32, height: u32 },
    #[error("the JPEG frame declares {width}x{height}, beyond {max}x{max}")]
    TooLarge { width: u32, height: u32, max: u32 },
}

/// A frame as packed RGB8 with its size (an MJPEG frame's own size wins).
pub fn to_rgb(frame: &Frame) -> Result<(Vec<u8>, u32, u32), PixelError> {
    convert(&frame.data, frame.width, frame.height, frame.format)
}

/// Converts `data` of `format` at `width`×`height` to packed RGB8.
pub fn convert(
    data: &[u8],
    width: u32,
    height: u32,
    format: PixelFormat,
) -> Result<(Vec<u8>, u32, u32), PixelError> {
    let Some((raw, data)) = raw_frame(data, width, height, format)? else {
        return decode_jpeg(data);
    };
    let rgb = raw.to_rgb(data, width as usize, height as usize);
    Ok((rgb, width, height))
}

/// An uncompressed frame's layout and its bytes within `data`, checked to
/// be there; `None` for a compressed (MJPEG) frame.
pub fn raw_frame(
    data: &[u8],
    width: u32,
    height: u32,
    format: PixelFormat,
) -> Result<Option<(jetrt_engine::preprocess::PixelFormat, &[u8])>, PixelError> {
    let Some(raw) = format.raw() else {
        return Ok(None);
    };
    if width == 0 || height == 0 {
        return Err(PixelError::Empty { width, height });
    }
    let want = raw.frame_len(width as usize, height as usize);
    if data.len() < want {
        return Err(PixelError::Size {
            format: format.name(),
            width,
            height,
            want,
            got: data.len(),
        });
    }
    Ok(Some((raw, &data[..want])))
}

fn decode_jpeg(data: &[u8]) -> Result<(Vec<u8>, u32, u32), PixelError> {
    use image::ImageDecoder;
    // The header's size is checked before decoding: a kilobyte of JPEG
    // can declare gigabytes of pixels.
    let (width, height) = image::codecs::jpeg::JpegDecoder::new(std::io::Cursor::new(data))
        .map_err(|e| PixelError::Jpeg(e.to_string()))?
        .dimensions();
    if width > MAX_SIDE || height > MAX_SIDE {
        return Err(PixelError::TooLarge {
            width,
            height,
            max: MAX_SIDE,
        });
    }
    let img = image::load_from_memory_with_format(data, image::ImageFormat::Jpeg)
        .map_err(|e| PixelError::Jpeg(e.to_string()))?
        .to_rgb8();
    let (w, h) = img.dimensions();
    Ok((img.into_raw(), w, h))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Reference YCbCr (BT.601, limited range) of the primaries and greys.
    const WHITE: (u8, u8, u8) = (235, 128, 128);
    const BLACK: (u8, u8, u8) = (16, 128, 128);
    const RED: (u8, u8, u8) = (81, 90, 240);
    const GREEN: (u8, u8, u8) = (145, 54, 34);
    const BLUE: (u8, u8, u8) = (41, 240, 110);

    fn close(a: &[u8], b: &[u8], tol: i32) -> bool {
        a.len() == b.len()
            && a.iter()
                .zip(b)
                .all(|(&x, &y)| (x as i32 - y as i32).abs() <= tol)
    }

    #[test]
    fn yuv_primaries_map_to_rgb() {
        for ((y, u, v), rgb) in [
            (WHITE, [255, 255, 255]),
            (BLACK, [0, 0, 0]),
            (RED, [255, 0, 0]),
            (GREEN, [0, 255, 0]),
            (BLUE, [0, 0, 255]),
        ] {
            let got = jetrt_engine::preprocess::yuv_px(y, u, v);
            assert!(
                close(&got, &rgb, 2),
                "{:?} -> {got:?}, want {rgb:?}",
                (y, u, v)
            );
        }
    }

    /// A small JPEG whose header declares 12000x12000 is refused before it
    /// is decoded (it used to take 0.9 GB); the real size decodes.
    #[test]
    fn a_jpeg_declaring_a_huge_size_is_refused_before_decoding() {
        let img = image::RgbImage::from_pixel(16, 8, image::Rgb([200, 30, 30]));
        let mut jpeg = Vec::new();
        image::codecs::jpeg::JpegEncoder::new(&mut jpeg)
            .encode_image(&img)
            .unwrap();
        let (_, w, h) = convert(&jpeg, 0, 0, PixelFormat::Mjpeg).unwrap();
        assert_eq!((w, h), (16, 8));
        // The baseline frame header: FF C0, length, precision, height, width.
        let sof = jpeg
            .windows(2)
            .position(|p| p == [0xFF, 0xC0])
            .expect("a baseline JPEG");
        jpeg[sof + 5..sof + 9].copy_from_slice(&[0x2E, 0xE0, 0x2E, 0xE0]);
        assert_eq!(
            convert(&jpeg, 0, 0, PixelFormat::Mjpeg).unwrap_err(),
            PixelError::TooLarge {
                width: 12000,
                height: 12000,
                max: MAX_SIDE
            }
        );
    }

    #[test]
    fn yuyv_pairs_share_chroma() {
        // 2x1: a red pixel pair with different luma.
        let data = [81, 90, 81, 240];
        let (rgb, w, h) = convert(&data, 2, 1, PixelFormat::Yuyv).unwrap();
        assert_eq!((w, h), (2, 1));
        assert!(close(&rgb, &[255, 0, 0, 255, 0, 0], 2), "{rgb:?}");
        // Odd width: the last pair's second pixel is dropped.
        let data = [235, 128, 16, 128, 16, 128, 16, 128];
        let (rgb, _, _) = convert(&data, 3, 1, PixelFormat::Yuyv).unwrap();
        assert_eq!(rgb, vec![255, 255, 255, 0, 0, 0, 0, 0, 0]);
    }

    #[test]
    fn nv12_and_i420_agree() {
        // 2x2: left column white-ish, right column black, chroma neutral...
        // then one quad coloured blue through its chroma.
        let y = [41u8, 41, 41, 41];
        let nv12: Vec<u8> = y.iter().copied().chain([240, 110]).collect();
        let i420: Vec<u8> = y.iter().copied().chain([240, 110]).collect();
        let (a, _, _) = convert(&nv12, 2, 2, PixelFormat::Nv12).unwrap();
        let (b, _, _) = convert(&i420, 2, 2, PixelFormat::I420).unwrap();
        assert_eq!(a, b);
        assert!(close(&a, &[0, 0, 255].repeat(4), 2), "{a:?}");
        // 4x2 NV12 with two chroma pairs: red left, green right.
        let mut f = vec![81, 81, 145, 145, 81, 81, 145, 145];
        f.extend([90, 240, 54, 34]);
        let (rgb, _, _) = convert(&f, 4, 2, PixelFormat::Nv12).unwrap();
        let want: Vec<u8> = [[255, 0, 0], [255, 0, 0], [0, 255, 0], [0, 255, 0]]
            .repeat(2)
            .concat();
        assert!(close(&rgb, &want, 2), "{rgb:?}");
    }

    #[test]
    fn packed_formats() {
        let (rgb, _, _) = convert(&[1, 2, 3, 4, 5, 6], 2, 1, PixelFormat::Bgr).unwrap();
        assert_eq!(rgb, vec![3, 2, 1, 6, 5, 4]);
        let (rgb, _, _) = convert(&[9, 200], 1, 2, PixelFormat::Gray).unwrap();
        assert_eq!(rgb, vec![9, 9, 9, 200, 200, 200]);
        let (rgb, _, _) = convert(&[7, 8, 9], 1, 1, PixelFormat::Rgb).unwrap();
        assert_eq!(rgb, vec![7, 8, 9]);
    }

    #[test]
    fn short_and_empty_frames_are_errors() {
        let e = convert(&[0; 5], 2, 1, PixelFormat::Rgb).unwrap_err();
        assert!(e.to_string().contains("needs 6 bytes, got 5"), "{e}");
        assert!(convert(&[], 0, 4, PixelFormat::Gray).is_err());
        assert!(convert(b"not a jpeg", 4, 4, PixelFormat::Mjpeg).is_err());
    }

    #[test]
    fn mjpeg_decodes_to_its_own_size() {
        let img = image::RgbImage::from_pixel(8, 4, image::Rgb([200, 30, 30]));
        let mut jpeg = Vec::new();
        image::DynamicImage::ImageRgb8(img)
            .write_to(
                &mut std::io::Cursor::new(&mut jpeg),
                image::ImageFormat::Jpeg,
            )
            .unwrap();
        let (rgb, w, h) = convert(&jpeg, 0, 0, PixelFormat::Mjpeg).unwrap();
        assert_eq!((w, h), (8, 4));
        assert!(close(&rgb[..3], &[200, 30, 30], 6), "{:?}", &rgb[..3]);
    }
}
