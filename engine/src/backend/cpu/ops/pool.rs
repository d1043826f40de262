//! Pooling layers (1-D and 2-D), NCHW. Each plane is copied into a
//! bordered buffer (-inf for max, 0 for average) large enough for every
//! window, ceil-mode ones included, so the window loops have no bounds to
//! test and vectorize; averages divide by per-row times per-column counts.

use super::{f32_data, float_tensor, Ctx, Op, OpResult};
use crate::backend::cpu::simd::Scratch;
use crate::ir::infer::pool_out_len;
use crate::ir::{PoolKind, PoolParams};
use crate::tensor::Tensor;
use rayon::prelude::*;
use std::cell::RefCell;

pub struct Pool {
    p: PoolParams,
    /// Window, stride, pre and post padding as (height, width); 1-D uses height 1.
    k: (usize, usize),
    s: (usize, usize),
    pre: (usize, usize),
    post: (usize, usize),
}

impl Pool {
    pub fn new(p: &PoolParams) -> Result<Self, String> {
        let two = |v: &[usize], fill: usize| match v.len() {
            1 => Ok((fill, v[0])),
            2 => Ok((v[0], v[1])),
            n => Err(format!("{n}-D pooling is not supported by the cpu backend")),
        };
        Ok(Pool {
            k: two(&p.window, 1)?,
            s: two(&p.stride, 1)?,
            pre: two(&p.pre_padding, 0)?,
            post: two(&p.post_padding, 0)?,
            p: p.clone(),
        })
    }
}

thread_local! {
    static PADDED: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Per output position along one axis, the divisor's factor: how many of the
/// window's positions count (inside the input when excluding padding, else
/// inside the padded extent, as PyTorch and ONNX count).
fn counts(
    out: usize,
    n: usize,
    k: usize,
    s: usize,
    pre: usize,
    post: usize,
    exclude: bool,
) -> Vec<f32> {
    (0..out)
        .map(|o| {
            let start = (o * s) as i64 - pre as i64;
            let end = start + k as i64;
            let (lo, hi) = if exclude {
                (0, n as i64)
            } else {
                (-(pre as i64), (n + post) as i64)
            };
            (end.min(hi) - start.max(lo)).max(0) as f32
        })
        .collect()
}

impl Op for Pool {
    fn run(&self, ctx: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        let x = inputs[0];
        let shape = x.shape();
        let (n, c) = (shape[0], shape[1]);
        let (h, w) = if shape.len() == 3 {
            (1, shape[2])
        } else {
            (shape[2], shape[3])
        };
        let err = || "pooling window does not fit the input".to_string();
        let (kh, kw, sh, sw) = (self.k.0, self.k.1, self.s.0, self.s.1);
        let ho =
            pool_out_len(h, kh, sh, self.pre.0, self.post.0, self.p.round_up).ok_or_else(err)?;
        let wo =
            pool_out_len(w, kw, sw, self.pre.1, self.post.1, self.p.round_up).ok_or_else(err)?;
        let xv = f32_data(x)?;
        let mut out = ctx.take_f32(n * c * ho * wo);
        let max = self.p.pool_type == PoolKind::Max;
        let (pt, pl) = self.pre;
        // The bordered plane covers every window.
        let (hp, wp) = ((ho - 1) * sh + kh, (wo - 1) * sw + kw);
        let fill = if max { f32::NEG_INFINITY } else { 0.0 };
        let exclude = self.p.exclude_padding;
        let cy = counts(ho, h, kh, sh, pt, self.post.0, exclude);
        let cx = counts(wo, w, kw, sw, pl, self.post.1, exclude);
        out.par_chunks_mut(ho * wo)
            .enumerate()
            .for_each(|(i, dst)| {
                crate::fast!({
                    let src = &xv[i * h * w..(i + 1) * h * w];

                    // Windows inside the input read it as is (row pitch w).
                    let inside = pt == 0 && pl == 0 && hp <= h && wp <= w;
                    let mut buf = Scratch::take(&PADDED, if inside { 0 } else { hp * wp });
                    let (pad, wp) = if inside {
                        (src, w)
                    } else {
                        let pad = &mut buf[..hp * wp];
                        pad.fill(fill);
                        for y in 0..h.min(hp.saturating_sub(pt)) {
                            let n = w.min(wp.saturating_sub(pl));
                            pad[(y + pt) * wp + pl..(y + pt) * wp + pl + n]
                                .copy_from_slice(&src[y * w..y * w + n]);
                        }
                        (&*pad, wp)
                    };
                    match (kh, kw, sh, sw, max) {
                        (3, 3, 2, 2, true) => max_s2::<3>(pad, wp, ho, wo, dst),
                        (3, 3, 1, 1, true) => {
                            pool_fixed::<3, 1, true>(pad, wp, ho, wo, dst, &cx, &cy)
                        }
                        (2, 2, 2, 2, true) => max_s2::<2>(pad, wp, ho, wo, dst),
                        (3, 3, 2, 2, false) => {
                            pool_fixed::<3, 2, false>(pad, wp, ho, wo, dst, &cx, &cy)
                        }
                        (3, 3, 1, 1, false) => {
                            pool_fixed::<3, 1, false>(pad, wp, ho, wo, dst, &cx, &cy)
                        }
                        (2, 2, 2, 2, false) => {
                            pool_fixed::<2, 2, false>(pad, wp, ho, wo, dst, &cx, &cy)
                        }
                        _ => pool_generic(pad, wp, (kh, kw), (sh, sw), max, ho, wo, dst, &cx, &cy),
                    }
                })
            });
        let oshape = if shape.len() == 3 {
            vec![n, c, wo]
        } else {
            vec![n, c, ho, wo]
        };
        Ok(vec![float_tensor(x.dtype(), oshape, out)?])
    }
}

/// The larger of two values, NaN winning, as ONNX max pooling propagates it.
#[inline(always)]
fn nan_max(a: f32, b: f32) -> f32 {
    // Two selects, which vectorize, rather than a short-circuit.
    let m = if b > a { b } else { a };
    if b.is_nan() {
        b
    } else {
        m
    }
}

thread_local! {
    /// Each thread's column maxima of a window row, and their even and odd
    /// halves.
    static COLUMNS: RefCell<Vec<f32>> = const { RefCell::new(Vec::new()) };
}

/// Max pooling, KxK (K = 2 or 3) at stride 2, over a bordered plane, in two
/// vectorized passes per output row: the maximum down each column of the
/// window rows, then across each window's columns, read from the column
/// maxima split into even and odd columns so that both are contiguous.
#[inline(always)]
fn max_s2<const K: usize>(pad: &[f32], wp: usize, ho: usize, wo: usize, dst: &mut [f32]) {
    let span = (wo - 1) * 2 + K;
    let half = span.div_ceil(2);
    let mut buf = Scratch::take(&COLUMNS, span + 2 * half);
    let (col, rest) = buf.split_at_mut(span);
    let (even, odd) = rest.split_at_mut(half);
    for oy in 0..ho {
        // Written whole from the window rows, not updated in place: an
        // in-place maximum compiles to masked stores, slow on some CPUs.
        let row = |ki: usize| &pad[(oy * 2 + ki) * wp..][..span];
        let top = col.iter_mut().zip(row(0)).zip(row(1));
        if K == 3 {
            for (((c, &a), &b), &d) in top.zip(row(2)) {
                *c = nan_max(nan_max(a, b), d);
            }
        } else {
            for ((c, &a), &b) in top {
                *c = nan_max(a, b);
            }
        }
        super::stream_conv::split_pairs(col, even, odd);
        let line = &mut dst[oy * wo..(oy + 1) * wo];
        // Window ox covers columns 2ox, 2ox + 1 (and 2ox + 2 when K = 3).
        let pairs = line.iter_mut().zip(&even[..wo]).zip(&odd[..wo]);
        if K == 3 {
            for ((o, &e), (&d, &n)) in pairs.zip(&even[1..=wo]).map(|(p, n)| (p.0, (p.1, n))) {
                *o = nan_max(nan_max(e, d), n);
            }
        } else {
            for ((o, &e), &d) in pairs {
                *o = nan_max(e, d);
            }
        }
    }
}

/// A KxK window at stride S over a bordered plane.
#[inline(always)]
fn pool_fixed<const K: usize, const S: usize, const MAX: bool>(
    pad: &[f32],
    wp: usize,
    ho: usize,
    wo: usize,
    dst: &mut [f32],
    cx: &[f32],
    cy: &[f32],
) {
    let span = (wo - 1) * S + K;
    for oy in 0..ho {
        let rows: [&[f32]; K] = std::array::from_fn(|ki| &pad[(oy * S + ki) * wp..][..span]);
        let line = &mut dst[oy * wo..(oy + 1) * wo];
        for (ox, o) in line.iter_mut().enumerate() {
            let mut acc = if MAX { f32::NEG_INFINITY } else { 0.0 };
            for row in &rows {
                for kj in 0..K {
                    // SAFETY: ox < wo, so ox * S + kj < (wo - 1) * S + K = span.
                    let v = unsafe { *row.get_unchecked(ox * S + kj) };
                    acc = if MAX { nan_max(acc, v) } else { acc + v };
                }
            }
            *o = if MAX { acc } else { acc / (cx[ox] * cy[oy]) };
        }
    }
}

/// Any window and stride over a bordered plane.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn pool_generic(
    pad: &[f32],
    wp: usize,
    (kh, kw): (usize, usize),
    (sh, sw): (usize, usize),
    max: bool,
    ho: usize,
    wo: usize,
    dst: &mut [f32],
    cx: &[f32],
    cy: &[f32],
) {
    for oy in 0..ho {
        for ox in 0..wo {
            let mut acc = if max { f32::NEG_INFINITY } else { 0.0 };
            for ki in 0..kh {
                let row = &pad[(oy * sh + ki) * wp + ox * sw..][..kw];
                for &v in row {
                    acc = if max { nan_max(acc, v) } else { acc + v };
                }
            }
            dst[oy * wo + ox] = if max { acc } else { acc / (cx[ox] * cy[oy]) };
        }
    }
}

#[cfg(test)]
mod speed {
    #[test]
    #[ignore]
    fn max_s2_speed() {
        let (wp, ho, wo) = (111usize, 55usize, 55usize);
        let pad: Vec<f32> = (0..wp * wp).map(|i| (i % 13) as f32).collect();
        let mut dst = vec![0f32; ho * wo];
        let mut ts = vec![];
        for _ in 0..2000 {
            let t = std::time::Instant::now();
            crate::fast!(super::max_s2::<3>(&pad, wp, ho, wo, &mut dst));
            ts.push(t.elapsed().as_secs_f64() * 1e6);
        }
        ts.sort_by(f64::total_cmp);
        println!("max_s2 plane 111: median {:.2} us", ts[1000]);
    }
}
