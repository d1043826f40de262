//! A moving, deterministic test pattern: frame `n` is a function of `n`
//! alone ([`render`]), so a test can rebuild the very frame a result came
//! from (its `seq`) and check the daemon against `engine-builder run`.
//!
//! In a camera's format (YUYV, NV12, ...) the pattern stands in for a
//! camera in benchmarks: frames are converted once and repeat every
//! [`CYCLE`] frames, so the source costs about what a camera's DMA does
//! (nothing), not a conversion per frame.

use super::{Pacer, Source, SourceError};
use crate::frame::{Frame, PixelFormat};
use std::sync::Arc;
use std::time::Duration;

/// Frames of a non-RGB pattern before it repeats.
pub const CYCLE: u64 = 32;

pub struct Synthetic {
    width: u32,
    height: u32,
    format: PixelFormat,
    n: u64,
    pacer: Pacer,
    /// Converted frames, for formats other than RGB.
    cache: Vec<Arc<Vec<u8>>>,
}

impl Synthetic {
    pub fn new(width: u32, height: u32, fps: f64, format: PixelFormat) -> Self {
        Synthetic {
            width,
            height,
            format,
            n: 0,
            pacer: Pacer::new(fps),
            cache: Vec::new(),
        }
    }
}

/// BT.601 limited-range RGB to YCbCr, in fixed point: the inverse of the
/// conversion the pipelines apply.
fn ycbcr(p: &[u8]) -> (i32, i32, i32) {
    let (r, g, b) = (p[0] as i32, p[1] as i32, p[2] as i32);
    (
        16 + ((66 * r + 129 * g + 25 * b + 128) >> 8),
        128 + ((-38 * r - 74 * g + 112 * b + 128) >> 8),
        128 + ((112 * r - 94 * g - 18 * b + 128) >> 8),
    )
}

/// Packed RGB8 of `w`×`h` in `format` (chroma averaged over the pixels
/// that share it).
pub fn convert(rgb: &[u8], w: usize, h: usize, format: PixelFormat) -> Vec<u8> {
    let px = |x: usize, y: usize| &rgb[(y * w + x) * 3..(y * w + x) * 3 + 3];
    match format {
        PixelFormat::Rgb | PixelFormat::Mjpeg => rgb.to_vec(),
        PixelFormat::Bgr => rgb
            .chunks_exact(3)
            .flat_map(|p| [p[2], p[1], p[0]])
            .collect(),
        PixelFormat::Gray => (0..w * h)
            .map(|i| ycbcr(&rgb[i * 3..i * 3 + 3]).0 as u8)
            .collect(),
        PixelFormat::Yuyv => {
            let mut out = Vec::with_capacity(w.div_ceil(2) * 4 * h);
            for y in 0..h {
                for x in (0..w).step_by(2) {
                    let a = ycbcr(px(x, y));
                    let b = ycbcr(px((x + 1).min(w - 1), y));
                    out.extend([a.0, (a.1 + b.1) / 2, b.0, (a.2 + b.2) / 2].map(|v| v as u8));
                }
            }
            out
        }
        PixelFormat::Nv12 | PixelFormat::I420 => {
            let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
            let mut ys = Vec::with_capacity(w * h);
            for y in 0..h {
                for x in 0..w {
                    ys.push(ycbcr(px(x, y)).0 as u8);
                }
            }
            let (mut us, mut vs) = (Vec::with_capacity(cw * ch), Vec::with_capacity(cw * ch));
            for cy in 0..ch {
                for cx in 0..cw {
                    let (mut u, mut v) = (0, 0);
                    for (dx, dy) in [(0, 0), (1, 0), (0, 1), (1, 1)] {
                        let q = ycbcr(px((2 * cx + dx).min(w - 1), (2 * cy + dy).min(h - 1)));
                        u += q.1;
                        v += q.2;
                    }
                    us.push((u / 4) as u8);
                    vs.push((v / 4) as u8);
                }
            }
            if format == PixelFormat::Nv12 {
                ys.extend(us.iter().zip(&vs).flat_map(|(&u, &v)| [u, v]));
            } else {
                ys.extend(us);
                ys.extend(vs);
            }
            ys
        }
    }
}

/// Frame `n` of the pattern as packed RGB8: diagonal colour ramps that
/// scroll with `n`, and a bright square that crosses the frame.
pub fn render(n: u64, width: u32, height: u32) -> Vec<u8> {
    let (w, h) = (width as u64, height as u64);
    let side = (w.min(h) / 4).max(1);
    let sx = (n * 3) % w.max(1);
    let sy = (h.saturating_sub(side)) / 2;
    let mut out = Vec::with_capacity((w * h * 3) as usize);
    for y in 0..h {
        for x in 0..w {
            let in_square = x >= sx && x < sx + side && y >= sy && y < sy + side;
            if in_square {
                out.extend_from_slice(&[250, 250, 240]);
            } else {
                out.extend_from_slice(&[
                    ((x * 255 / w.max(1) + n * 2) % 256) as u8,
                    ((y * 255 / h.max(1) + n) % 256) as u8,
                    (((x + y) * 2 + n * 5) % 256) as u8,
                ]);
            }
        }
    }
    out
}

impl Source for Synthetic {
    fn next(&mut self, timeout: Duration) -> Result<Option<Frame>, SourceError> {
        if !self.pacer.wait(timeout) {
            return Ok(None);
        }
        let n = self.n;
        self.n += 1;
        if self.format == PixelFormat::Rgb {
            let data = render(n, self.width, self.height);
            return Ok(Some(Frame::now(
                self.width,
                self.height,
                PixelFormat::Rgb,
                data,
            )));
        }
        let k = (n % CYCLE) as usize;
        if k == self.cache.len() {
            let rgb = render(k as u64, self.width, self.height);
            let (w, h) = (self.width as usize, self.height as usize);
            self.cache.push(Arc::new(convert(&rgb, w, h, self.format)));
        }
        let mut f = Frame::now(self.width, self.height, self.format, Vec::new());
        f.data = self.cache[k].clone();
        Ok(Some(f))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each camera format has its frame size and converts back through the
    /// pipelines' own conversion: BGR exactly, a flat colour in every YUV
    /// layout within YCbCr rounding (the pattern's sharp edges are blurred
    /// by chroma subsampling, so only flat colour is exact).
    #[test]
    fn camera_formats_carry_the_pattern() {
        let (w, h) = (16u32, 10u32);
        let rgb = render(3, w, h);
        for f in ["bgr", "gray", "yuyv", "nv12", "i420"] {
            let format = PixelFormat::parse_raw(f).unwrap();
            let data = convert(&rgb, w as usize, h as usize, format);
            assert_eq!(
                Some(data.len()),
                format.frame_len(w as usize, h as usize),
                "{f}"
            );
            let (back, _, _) = crate::pixel::convert(&data, w, h, format).unwrap();
            if f == "bgr" {
                assert_eq!(back, rgb);
            }
        }
        let flat = [200u8, 40, 90].repeat(16);
        for format in [PixelFormat::Yuyv, PixelFormat::Nv12, PixelFormat::I420] {
            let y = convert(&flat, 4, 4, format);
            let (back, _, _) = crate::pixel::convert(&y, 4, 4, format).unwrap();
            assert_eq!(back.len(), flat.len());
            for (a, b) in back.iter().zip(&flat) {
                assert!((*a as i32 - *b as i32).abs() <= 3, "{format:?}: {back:?}");
            }
        }
    }

    #[test]
    fn camera_format_frames_repeat_and_are_shared() {
        let mut s = Synthetic::new(8, 4, 1000.0, PixelFormat::Yuyv);
        let first = s.next(Duration::from_secs(1)).unwrap().unwrap();
        for _ in 1..CYCLE {
            s.next(Duration::from_secs(1)).unwrap().unwrap();
        }
        let again = s.next(Duration::from_secs(1)).unwrap().unwrap();
        assert!(Arc::ptr_eq(&first.data, &again.data));
        assert_eq!(again.format, PixelFormat::Yuyv);
    }

    #[test]
    fn deterministic_and_moving() {
        assert_eq!(render(7, 32, 24), render(7, 32, 24));
        assert_ne!(render(7, 32, 24), render(8, 32, 24));
        assert_eq!(render(0, 32, 24).len(), 32 * 24 * 3);
    }
}
