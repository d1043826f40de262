//! Image to input tensor: camera pixel formats to RGB, resize, scale to
//! 0..1, normalize, planar layout. Shared by `engine-builder run --image`,
//! the daemon's pipelines and the GPU backends' frame kernels (which must
//! give the same results), so a frame is prepared the same way everywhere.

use crate::engine_file::{ColorOrder, Preprocess};
use crate::tensor::Tensor;

/// Uncompressed pixel layouts of camera frames. Rows are packed (no
/// padding).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
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
}

impl PixelFormat {
    /// Every layout, in a fixed order.
    pub const ALL: [PixelFormat; 6] = [
        PixelFormat::Rgb,
        PixelFormat::Bgr,
        PixelFormat::Gray,
        PixelFormat::Yuyv,
        PixelFormat::Nv12,
        PixelFormat::I420,
    ];

    /// Bytes of a `w`×`h` frame.
    pub fn frame_len(self, w: usize, h: usize) -> usize {
        let chroma = w.div_ceil(2) * h.div_ceil(2);
        match self {
            PixelFormat::Rgb | PixelFormat::Bgr => w * h * 3,
            PixelFormat::Gray => w * h,
            PixelFormat::Yuyv => w.div_ceil(2) * 4 * h,
            PixelFormat::Nv12 | PixelFormat::I420 => w * h + 2 * chroma,
        }
    }

    /// Packed RGB8 of a `w`×`h` frame of this format (`data` holds at least
    /// [`PixelFormat::frame_len`] bytes).
    pub fn to_rgb(self, data: &[u8], w: usize, h: usize) -> Vec<u8> {
        let data = &data[..self.frame_len(w, h).min(data.len())];
        match self {
            PixelFormat::Rgb => data.to_vec(),
            PixelFormat::Bgr => data
                .chunks_exact(3)
                .flat_map(|p| [p[2], p[1], p[0]])
                .collect(),
            PixelFormat::Gray => data.iter().flat_map(|&g| [g, g, g]).collect(),
            PixelFormat::Yuyv => yuyv(data, w, h),
            PixelFormat::Nv12 => yuv420(data, w, h, true),
            PixelFormat::I420 => yuv420(data, w, h, false),
        }
    }
}

/// BT.601 limited-range YCbCr to RGB, in fixed point (8 fractional bits);
/// the GPU kernels compute the same integers.
#[inline]
pub fn yuv_px(y: u8, u: u8, v: u8) -> [u8; 3] {
    let c = (y as i32 - 16).max(0) * 298;
    let d = u as i32 - 128;
    let e = v as i32 - 128;
    let clamp = |x: i32| ((x + 128) >> 8).clamp(0, 255) as u8;
    [
        clamp(c + 409 * e),
        clamp(c - 100 * d - 208 * e),
        clamp(c + 516 * d),
    ]
}

fn yuyv(data: &[u8], w: usize, h: usize) -> Vec<u8> {
    let row_bytes = w.div_ceil(2) * 4;
    let mut out = Vec::with_capacity(w * h * 3);
    for row in data.chunks_exact(row_bytes).take(h) {
        for (i, q) in row.chunks_exact(4).enumerate() {
            out.extend_from_slice(&yuv_px(q[0], q[1], q[3]));
            if 2 * i + 1 < w {
                out.extend_from_slice(&yuv_px(q[2], q[1], q[3]));
            }
        }
    }
    out
}

fn yuv420(data: &[u8], w: usize, h: usize, interleaved: bool) -> Vec<u8> {
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let (ys, chroma) = data.split_at(w * h);
    let mut out = Vec::with_capacity(w * h * 3);
    for y in 0..h {
        for x in 0..w {
            let ci = (y / 2) * cw + x / 2;
            let (u, v) = if interleaved {
                (chroma[2 * ci], chroma[2 * ci + 1])
            } else {
                (chroma[ci], chroma[cw * ch + ci])
            };
            out.extend_from_slice(&yuv_px(ys[y * w + x], u, v));
        }
    }
    out
}

/// A network input fed from raw camera frames that a backend converts on
/// the device (see `Executor::bind_frame_input`): the frames' format and
/// size, and how they become the input (resized to the input's dims).
#[derive(Clone, Debug, PartialEq)]
pub struct FrameInput {
    pub format: PixelFormat,
    pub width: usize,
    pub height: usize,
    pub pre: Preprocess,
}

/// Bilinear resize of packed 8-bit RGB (half-pixel centres, edge clamped;
/// no antialiasing, as OpenCV's INTER_LINEAR).
pub fn resize_rgb(src: &[u8], w: usize, h: usize, ow: usize, oh: usize) -> Vec<u8> {
    if (w, h) == (ow, oh) {
        return src.to_vec();
    }
    let mut out = vec![0u8; ow * oh * 3];
    if w == 0 || h == 0 {
        return out;
    }
    let sx = w as f32 / ow as f32;
    let sy = h as f32 / oh as f32;
    for y in 0..oh {
        let fy = ((y as f32 + 0.5) * sy - 0.5).clamp(0.0, (h - 1) as f32);
        let y0 = fy.floor() as usize;
        let y1 = (y0 + 1).min(h - 1);
        let wy = fy - y0 as f32;
        for x in 0..ow {
            let fx = ((x as f32 + 0.5) * sx - 0.5).clamp(0.0, (w - 1) as f32);
            let x0 = fx.floor() as usize;
            let x1 = (x0 + 1).min(w - 1);
            let wx = fx - x0 as f32;
            for c in 0..3 {
                let p = |yy: usize, xx: usize| src[(yy * w + xx) * 3 + c] as f32;
                let top = p(y0, x0) * (1.0 - wx) + p(y0, x1) * wx;
                let bot = p(y1, x0) * (1.0 - wx) + p(y1, x1) * wx;
                out[(y * ow + x) * 3 + c] = (top * (1.0 - wy) + bot * wy).round() as u8;
            }
        }
    }
    out
}

/// A packed RGB8 image of `w`×`h` as a 1×3×`oh`×`ow` float32 tensor:
/// resized, scaled to 0..1, normalized with `pre`'s mean and std, channels
/// in `pre`'s colour order.
pub fn rgb_to_tensor(
    rgb: &[u8],
    w: usize,
    h: usize,
    oh: usize,
    ow: usize,
    pre: &Preprocess,
) -> Tensor {
    let img = resize_rgb(rgb, w, h, ow, oh);
    let plane = oh * ow;
    let mut v = vec![0f32; 3 * plane];
    for c in 0..3 {
        // Channel c of the tensor takes source channel c (RGB) or 2 - c (BGR).
        let src_c = match pre.color {
            ColorOrder::Rgb => c,
            ColorOrder::Bgr => 2 - c,
        };
        let (m, s) = (pre.mean[c], pre.std[c]);
        for i in 0..plane {
            v[c * plane + i] = (img[i * 3 + src_c] as f32 / 255.0 - m) / s;
        }
    }
    Tensor::from_f32(&[1, 3, oh, ow], v).expect("sizes agree by construction")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalizes_and_orders_channels() {
        // one pixel, R=255 G=0 B=51
        let px = [255u8, 0, 51];
        let pre = Preprocess {
            mean: [0.5, 0.5, 0.5],
            std: [0.5, 0.5, 0.5],
            ..Default::default()
        };
        let t = rgb_to_tensor(&px, 1, 1, 1, 1, &pre);
        assert_eq!(t.as_f32().unwrap(), &[1.0, -1.0, -0.6]);
        let bgr = Preprocess {
            color: ColorOrder::Bgr,
            ..pre
        };
        let t = rgb_to_tensor(&px, 1, 1, 1, 1, &bgr);
        assert_eq!(t.as_f32().unwrap(), &[-0.6, -1.0, 1.0]);
    }

    #[test]
    fn resize_keeps_constant_images_constant() {
        let src = vec![7u8; 5 * 3 * 3];
        let out = resize_rgb(&src, 5, 3, 2, 4);
        assert!(out.iter().all(|&v| v == 7));
        assert_eq!(out.len(), 2 * 4 * 3);
    }
}
