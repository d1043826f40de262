//! Image to input tensor: resize, scale to 0..1, normalize, planar layout.
//! Shared by `engine-builder run --image` and the daemon's pipelines, so a
//! frame is prepared the same way everywhere.

use crate::engine_file::{ColorOrder, Preprocess};
use crate::tensor::Tensor;

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
