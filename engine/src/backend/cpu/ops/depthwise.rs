//! Depthwise convolution (one filter per channel), computed directly: the
//! shapes mobile networks use (3x3 and 5x5 windows at strides 1 and 2) and
//! ConvNeXt's 7x7 at stride 1 eight channels at a time, across the
//! channels of an interleaved block;
//! fewer than eight channels plane by plane from a zero-bordered copy, as
//! sums of shifted streams; any other geometry one output at a time.

use super::conv::Geom;
use super::stream_conv::{conv_taps, padded_extent, prepare};
use crate::backend::cpu::act::Act;
use crate::backend::cpu::simd::{zero_ends, Scratch};
use crate::backend::cpu::taps::{self, C8};
use crate::backend::cpu::transpose8::{deinterleave8, interleave8};
use rayon::prelude::*;

thread_local! {
    /// Each thread's zero-bordered copy of the plane it convolves.
    static PADDED: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// One filter per channel, plane by plane. Each plane is copied into a
/// zero-bordered buffer first, so that every output reads a full window;
/// 3x3 and 5x5 kernels at strides 1 and 2, and 7x7 at stride 1, then run
/// as tap streams ([`conv_taps`]), others through [`dw_generic`].
#[allow(clippy::too_many_arguments)]
pub(super) fn depthwise(
    x: &[f32],
    c: usize,
    h: usize,
    w: usize,
    g: &Geom,
    weights: &[f32],
    ho: usize,
    wo: usize,
    out: &mut [f32],
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    act: Act,
) {
    let ksz = g.kh * g.kw;
    let (hp, wp) = padded_extent(g, ho, wo);
    let plane = ho * wo;
    out.par_chunks_mut(plane).enumerate().for_each(|(i, dst)| {
        crate::fast!({
            let ch = i % c;
            let src = &x[i * h * w..(i + 1) * h * w];
            let k = &weights[ch * ksz..(ch + 1) * ksz];
            let b = bias.map_or(0.0, |b| b[ch]);
            let res = residual.map(|r| &r[i * plane..(i + 1) * plane]);
            // Stride-2 3x3 and 5x5 windows read rows split by column parity.
            let split = matches!(
                (g.kh, g.kw, g.sh, g.sw, g.dh, g.dw),
                (3, 3, 2, 2, 1, 1) | (5, 5, 2, 2, 1, 1)
            );
            let mut buf = Scratch::take(&PADDED, hp * wp);
            prepare(src, (h, w), (g.pt, g.pl), (hp, wp), split, &mut buf);
            let pad = &buf[..hp * wp];
            let mut tmp = Scratch::take(&SUMS, hp * wp);
            let tmp = &mut tmp[..];
            macro_rules! run {
                ($f:expr) => {{
                    let f = $f;
                    let geo = (hp, wp, ho, wo);
                    // One call per (window, stride) the tap streams handle.
                    macro_rules! streams {
                        ($k:literal, $s:literal, $t:literal) => {
                            conv_taps::<1, $k, $s, $t, _>(
                                pad,
                                geo,
                                &taps::<$t>(k),
                                b,
                                dst,
                                res,
                                &f,
                                tmp,
                            )
                        };
                    }
                    match (g.kh, g.kw, g.sh, g.sw, g.dh, g.dw) {
                        (3, 3, 1, 1, 1, 1) => streams!(3, 1, 9),
                        (3, 3, 2, 2, 1, 1) => streams!(3, 2, 9),
                        (5, 5, 1, 1, 1, 1) => streams!(5, 1, 25),
                        (5, 5, 2, 2, 1, 1) => streams!(5, 2, 25),
                        (7, 7, 1, 1, 1, 1) => streams!(7, 1, 49),
                        _ => dw_generic(pad, wp, k, g, ho, wo, dst, b, res, &f),
                    }
                }};
            }
            crate::with_act!(act, |f| run!(f))
        })
    });
}

/// The first T weights as an array.
#[inline(always)]
fn taps<const T: usize>(k: &[f32]) -> [f32; T] {
    std::array::from_fn(|t| k[t])
}

thread_local! {
    /// Each thread's stride-1 sums before their rows are copied out.
    static SUMS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

thread_local! {
    /// Each thread's channel-interleaved input block and output rows.
    static BLOCK: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// Whether [`depthwise_c8`] handles this geometry: 3x3 or 5x5 windows at
/// stride 1 or 2 and 7x7 at stride 1 (ConvNeXt's), undilated, padded on
/// the low sides by zero or more.
pub(super) fn c8_handles(g: &Geom) -> bool {
    matches!((g.kh, g.sh), (3 | 5, 1 | 2) | (7, 1))
        && g.kw == g.kh
        && g.sw == g.sh
        && g.dh == 1
        && g.dw == 1
        && g.pt >= 0
        && g.pl >= 0
}

/// Depthwise convolution of one image, eight channels at a time: each task
/// interleaves its eight planes into a zero-bordered [hp][wp][8] block, so
/// that every window tap is one vector load across the channels
/// ([`taps::window8`]), then writes the planes back out with the epilogue.
/// Small planes go this way: their rows are too short to vectorize along.
/// `wt` holds the weights tap-major, [K*K][c].
#[allow(clippy::too_many_arguments)]
pub(super) fn depthwise_c8(
    x: &[f32],
    c: usize,
    h: usize,
    w: usize,
    g: &Geom,
    wt: &[f32],
    ho: usize,
    wo: usize,
    out: &mut [f32],
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    act: Act,
) {
    debug_assert!(c8_handles(g));
    let (k, s) = (g.kh, g.sh);
    let hp = (ho - 1) * s + k;
    let wp = (wo - 1) * s + k;
    let (pt, pl) = (g.pt as usize, g.pl as usize);
    let plane = ho * wo;
    out.par_chunks_mut(C8 * plane)
        .enumerate()
        .for_each(|(cb, dst)| {
            crate::fast!({
                let c0 = cb * C8;
                let nc = dst.len() / plane;
                let mut buf = Scratch::take(&BLOCK, (hp * wp + plane) * C8);
                let (blk, rows) = buf.split_at_mut(hp * wp * C8);
                let rows = &mut rows[..plane * C8];
                // Only the border is zeroed: every interior row is written over.
                let (rows_in, n_in) = (h.min(hp.saturating_sub(pt)), w.min(wp.saturating_sub(pl)));
                for (py, row) in blk.chunks_exact_mut(wp * C8).enumerate() {
                    // A partial group leaves lanes unwritten: zero it all.
                    if py < pt || py >= pt + rows_in || nc < C8 {
                        row.fill(0.0);
                    } else {
                        zero_ends(row, pl * C8, (wp - pl - n_in) * C8);
                    }
                }
                // A missing channel (the last group's) reads as zeros.
                let zeros = [0f32; 0];
                let plane_in = |l: usize| {
                    if l < nc {
                        &x[(c0 + l) * h * w..(c0 + l + 1) * h * w]
                    } else {
                        &zeros[..]
                    }
                };
                let n = w.min(wp.saturating_sub(pl));
                for iy in 0..h.min(hp.saturating_sub(pt)) {
                    let at = ((iy + pt) * wp + pl) * C8;
                    if nc == C8 {
                        let rows = std::array::from_fn(|l| &plane_in(l)[iy * w..(iy + 1) * w]);
                        interleave8(rows, n, &mut blk[at..at + n * C8]);
                        continue;
                    }
                    let groups = blk[at..at + n * C8].chunks_exact_mut(C8);
                    for (ix, grp) in groups.enumerate() {
                        for (l, d) in grp.iter_mut().enumerate().take(nc) {
                            *d = plane_in(l)[iy * w + ix];
                        }
                    }
                }
                let b8: [f32; C8] = std::array::from_fn(|l| match bias {
                    Some(b) if l < nc => b[c0 + l],
                    _ => 0.0,
                });
                let blk = &*blk;
                // Tap t's weights for the group's channels (zero past nc).
                let tap_w = |t: usize, dst: &mut [f32; C8]| {
                    dst[..nc].copy_from_slice(&wt[t * c + c0..t * c + c0 + nc]);
                };
                match (k, s) {
                    (3, 1) => c8_rows::<3, 1, 9>(blk, wp, ho, wo, &tap_w, &b8, rows),
                    (3, _) => c8_rows::<3, 2, 9>(blk, wp, ho, wo, &tap_w, &b8, rows),
                    (7, _) => c8_rows::<7, 1, 49>(blk, wp, ho, wo, &tap_w, &b8, rows),
                    (_, 1) => c8_rows::<5, 1, 25>(blk, wp, ho, wo, &tap_w, &b8, rows),
                    _ => c8_rows::<5, 2, 25>(blk, wp, ho, wo, &tap_w, &b8, rows),
                }
                let rows = &*rows;
                // The sums back into their planes, then the epilogue plane by
                // plane, contiguous.
                if nc == C8 {
                    let mut outs = dst.chunks_exact_mut(plane);
                    let outs = std::array::from_fn(|_| outs.next().expect("eight planes"));
                    deinterleave8(rows, plane, outs);
                } else {
                    for (l, o) in dst.chunks_exact_mut(plane).enumerate() {
                        for (pos, v) in o.iter_mut().enumerate() {
                            *v = rows[pos * C8 + l];
                        }
                    }
                }
                crate::with_act!(act, |f| {
                    for (l, o) in dst.chunks_exact_mut(plane).enumerate() {
                        match residual {
                            Some(r) => {
                                let r = &r[(c0 + l) * plane..(c0 + l + 1) * plane];
                                o.iter_mut().zip(r).for_each(|(o, &r)| *o = f(*o + r));
                            }
                            None => o.iter_mut().for_each(|o| *o = f(*o)),
                        }
                    }
                })
            })
        });
}

/// Every output row of a KxK window at stride S over a [hp][wp][8] block.
#[inline(always)]
fn c8_rows<const K: usize, const S: usize, const T: usize>(
    blk: &[f32],
    wp: usize,
    ho: usize,
    wo: usize,
    tap_w: &impl Fn(usize, &mut [f32; C8]),
    bias: &[f32; C8],
    rows: &mut [f32],
) {
    debug_assert_eq!(T, K * K);
    let mut w = [[0f32; C8]; T];
    for (t, wt) in w.iter_mut().enumerate() {
        tap_w(t, wt);
    }
    for (oy, row) in rows.chunks_exact_mut(wo * C8).enumerate().take(ho) {
        let offs: [usize; T] = std::array::from_fn(|t| (oy * S + t / K) * wp + t % K);
        taps::window8(blk, &offs, S, &w, bias, row);
    }
}

/// Any kernel size, stride and dilation over a padded plane.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn dw_generic<F: Fn(f32) -> f32>(
    pad: &[f32],
    wp: usize,
    k: &[f32],
    g: &Geom,
    ho: usize,
    wo: usize,
    dst: &mut [f32],
    bias: f32,
    res: Option<&[f32]>,
    f: &F,
) {
    for oy in 0..ho {
        for ox in 0..wo {
            let mut acc = bias;
            for ki in 0..g.kh {
                let row = &pad[(oy * g.sh + ki * g.dh) * wp..];
                for kj in 0..g.kw {
                    acc += k[ki * g.kw + kj] * row[ox * g.sw + kj * g.dw];
                }
            }
            let r = res.map_or(0.0, |r| r[oy * wo + ox]);
            dst[oy * wo + ox] = f(acc + r);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ir::Activation;

    /// The definition, one output at a time.
    #[allow(clippy::too_many_arguments)]
    fn naive(
        x: &[f32],
        c: usize,
        (h, w): (usize, usize),
        g: &Geom,
        wts: &[f32],
        (ho, wo): (usize, usize),
        bias: &[f32],
        res: &[f32],
        act: Act,
    ) -> Vec<f32> {
        let mut out = vec![0.0; c * ho * wo];
        for ch in 0..c {
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut acc = bias[ch];
                    for ki in 0..g.kh {
                        for kj in 0..g.kw {
                            let iy = (oy * g.sh + ki * g.dh) as i64 - g.pt;
                            let ix = (ox * g.sw + kj * g.dw) as i64 - g.pl;
                            if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w {
                                acc += wts[(ch * g.kh + ki) * g.kw + kj]
                                    * x[(ch * h + iy as usize) * w + ix as usize];
                            }
                        }
                    }
                    let i = (ch * ho + oy) * wo + ox;
                    out[i] = act.apply(acc + res[i]);
                }
            }
        }
        out
    }

    #[test]
    fn every_path_matches_the_definition() {
        // (c, h, w, k, stride, dilation, pads top/left/bottom/right)
        let cases = [
            (3, 9, 11, 3, 1, 1, (1, 1, 1, 1)),
            (5, 8, 8, 3, 2, 1, (1, 1, 1, 1)),
            (2, 7, 10, 3, 2, 1, (0, 1, 1, 0)),
            (4, 12, 9, 5, 1, 1, (2, 2, 2, 2)),
            (3, 13, 13, 5, 2, 1, (2, 2, 2, 2)),
            (3, 10, 10, 3, 1, 2, (2, 2, 2, 2)),
            (2, 6, 6, 3, 1, 1, (0, 0, 0, 0)),
            // Channel-blocked sizes: partial blocks of eight, tiny planes.
            (13, 7, 7, 3, 1, 1, (1, 1, 1, 1)),
            (9, 14, 14, 5, 2, 1, (2, 2, 2, 2)),
            (16, 4, 4, 5, 1, 1, (2, 2, 2, 2)),
            (8, 3, 5, 3, 2, 1, (1, 1, 0, 1)),
            // ConvNeXt's 7x7: blocks of eight and a partial one, planes
            // down to its last stage's 7x7, and one channel (planes path).
            (12, 14, 14, 7, 1, 1, (3, 3, 3, 3)),
            (8, 7, 7, 7, 1, 1, (3, 3, 3, 3)),
            (1, 20, 18, 7, 1, 1, (3, 3, 3, 3)),
            (3, 9, 11, 7, 1, 1, (3, 2, 1, 3)),
        ];
        for &(c, h, w, k, s, d, (pt, pl, pb, pr)) in &cases {
            let g = Geom {
                kh: k,
                kw: k,
                sh: s,
                sw: s,
                dh: d,
                dw: d,
                pt,
                pl,
                pb,
                pr,
            };
            let ho = (h as i64 + pt + pb - (d * (k - 1) + 1) as i64) as usize / s + 1;
            let wo = (w as i64 + pl + pr - (d * (k - 1) + 1) as i64) as usize / s + 1;
            let x: Vec<f32> = (0..c * h * w)
                .map(|i| ((i * 37) % 23) as f32 * 0.1 - 1.1)
                .collect();
            let wts: Vec<f32> = (0..c * k * k)
                .map(|i| ((i * 11) % 7) as f32 * 0.2 - 0.6)
                .collect();
            let wt: Vec<f32> = (0..k * k * c)
                .map(|i| wts[(i % c) * k * k + i / c])
                .collect();
            let bias: Vec<f32> = (0..c).map(|i| i as f32 * 0.05).collect();
            let res: Vec<f32> = (0..c * ho * wo).map(|i| (i % 5) as f32 * 0.3).collect();
            for (act, with_res) in [
                (Act::Identity, false),
                (Act::Ir(Activation::Relu), true),
                (
                    Act::HardSwish {
                        alpha: 1.0 / 6.0,
                        beta: 0.5,
                    },
                    false,
                ),
            ] {
                let zeros = vec![0.0; res.len()];
                let r = if with_res { &res } else { &zeros };
                let want = naive(&x, c, (h, w), &g, &wts, (ho, wo), &bias, r, act);
                let rr = with_res.then_some(&res[..]);
                let mut got = vec![f32::NAN; want.len()];
                depthwise(
                    &x,
                    c,
                    h,
                    w,
                    &g,
                    &wts,
                    ho,
                    wo,
                    &mut got,
                    Some(&bias),
                    rr,
                    act,
                );
                let mut runs = vec![("planes", got)];
                if c8_handles(&g) {
                    let mut got = vec![f32::NAN; want.len()];
                    depthwise_c8(&x, c, h, w, &g, &wt, ho, wo, &mut got, Some(&bias), rr, act);
                    runs.push(("channels of 8", got));
                }
                for (path, got) in runs {
                    for (i, (a, b)) in got.iter().zip(&want).enumerate() {
                        assert!(
                            (a - b).abs() <= 1e-5 * b.abs().max(1.0),
                            "{path}, case {:?}, {act:?}, output {i}: {a} vs {b}",
                            (c, h, w, k, s, d, (pt, pl, pb, pr))
                        );
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod speed {
    use super::*;

    /// Development timing: `cargo test --release -p jetrt-engine dw_speed -- --ignored --nocapture`.
    #[test]
    #[ignore]
    fn dw_speed() {
        // DW=C,HW,S picks one shape.
        let one: Option<(usize, usize, usize)> = std::env::var("DW").ok().map(|v| {
            let p: Vec<usize> = v.split(',').map(|x| x.parse().unwrap()).collect();
            (p[0], p[1], p[2])
        });
        let all = [(144, 56, 1), (96, 112, 2), (32, 112, 1), (384, 14, 1)];
        for &(c, hw, s) in one
            .as_slice()
            .iter()
            .chain(all.iter().filter(|_| one.is_none()))
        {
            let g = Geom {
                kh: 3,
                kw: 3,
                sh: s,
                sw: s,
                dh: 1,
                dw: 1,
                pt: 1,
                pl: 1,
                pb: 1,
                pr: 1,
            };
            let ho = (hw + 2 - 3) / s + 1;
            let x: Vec<f32> = (0..c * hw * hw).map(|i| (i % 7) as f32).collect();
            let w: Vec<f32> = (0..c * 9).map(|i| (i % 5) as f32).collect();
            let mut out = vec![0f32; c * ho * ho];
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(std::env::var("T").map_or(1, |v| v.parse().unwrap()))
                .build()
                .unwrap();
            pool.install(|| {
                let mut ts = vec![];
                for _ in 0..200 {
                    let t = std::time::Instant::now();
                    depthwise(
                        &x,
                        c,
                        hw,
                        hw,
                        &g,
                        &w,
                        ho,
                        ho,
                        &mut out,
                        None,
                        None,
                        Act::Identity,
                    );
                    ts.push(t.elapsed().as_secs_f64() * 1e3);
                }
                ts.sort_by(f64::total_cmp);
                println!(
                    "c{c} {hw}² s{s}: median {:.3} ms min {:.3} ms, {:.0} ns/plane",
                    ts[100],
                    ts[0],
                    ts[100] * 1e6 / c as f64
                );
            });
        }
    }
}
