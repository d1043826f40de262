//! Direct convolution as sums of shifted streams: once its input planes are
//! zero-bordered (and, at stride 2, split into even and odd columns), every
//! output row of a KxK window is `bias + sum_t w[t] * stream_t`, where each
//! of the C*K*K taps is a contiguous run of some prepared input row
//! ([`taps::tap_sum`]). Depthwise layers use it with one plane per output;
//! layers with few input channels (a network's first, on RGB) use it for
//! every output channel, which beats im2col and GEMM when the GEMM would be
//! only C*K*K deep.

use super::conv::Geom;
use super::Ctx;
use crate::backend::cpu::act::Act;
use crate::backend::cpu::simd::{copy_run, zero_ends, Scratch};
use crate::backend::cpu::taps::{self, tap_sum_m, M};
use rayon::prelude::*;

/// The padded extent (hp, wp) every window of the output reads.
pub(super) fn padded_extent(g: &Geom, ho: usize, wo: usize) -> (usize, usize) {
    (
        (ho - 1) * g.sh + (g.kh - 1) * g.dh + 1,
        (wo - 1) * g.sw + (g.kw - 1) * g.dw + 1,
    )
}

/// Copies plane `src` (h x w) into `out` (hp x wp) with `pt` rows and `pl`
/// columns of zeros before it (negative: cropped) and zeros after. With
/// `split`, each row is stored as its even columns then its odd ones (same
/// pitch), the layout stride-2 windows read as contiguous runs.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn prepare(
    src: &[f32],
    (h, w): (usize, usize),
    (pt, pl): (i64, i64),
    (hp, wp): (usize, usize),
    split: bool,
    out: &mut [f32],
) {
    let out = &mut out[..hp * wp];
    let we = wp.div_ceil(2);
    // Padded columns x0..x0+n hold input columns sx0..sx0+n.
    let x0 = (pl.max(0) as usize).min(wp);
    let sx0 = ((-pl).max(0) as usize).min(w);
    let n = (w - sx0).min(wp - x0);
    for (py, row) in out.chunks_exact_mut(wp).enumerate() {
        let iy = py as i64 - pt;
        if iy < 0 || iy >= h as i64 {
            row.fill(0.0);
            continue;
        }
        let line = &src[iy as usize * w..(iy as usize + 1) * w];
        if !split {
            // Only the border is zeroed (before the interior is written over
            // what else that touches); no library calls for short rows.
            zero_ends(row, x0, wp - x0 - n);
            copy_run(&mut row[x0..x0 + n], &line[sx0..sx0 + n]);
            continue;
        }
        let (even, odd) = row.split_at_mut(we);
        // The columns no input lands on are the first and last few of each
        // half: zero those ends only.
        let (lead, trail) = (x0.div_ceil(2), (wp - x0 - n).div_ceil(2) + 1);
        let (ne, no) = (even.len(), odd.len());
        zero_ends(even, lead.min(ne), trail.min(ne));
        zero_ends(odd, lead.min(no), trail.min(no));
        // Column x0 + j goes to the half of its parity, at (x0 + j) / 2.
        let src = &line[sx0..sx0 + n];
        if x0 % 2 == 0 {
            split_pairs(src, &mut even[x0 / 2..], &mut odd[x0 / 2..]);
        } else {
            split_pairs(src, &mut odd[x0 / 2..], &mut even[x0 / 2 + 1..]);
        }
    }
}

/// `first[i] = src[2i]`, `second[i] = src[2i + 1]`, as far as `src` goes;
/// written over pairs so that the compiler vectorizes it with shuffles.
#[inline(always)]
pub(super) fn split_pairs(src: &[f32], first: &mut [f32], second: &mut [f32]) {
    let pairs = src.chunks_exact(2);
    let tail = pairs.remainder();
    let n = pairs.len();
    for ((a, b), p) in first[..n].iter_mut().zip(&mut second[..n]).zip(pairs) {
        *a = p[0];
        *b = p[1];
    }
    if let [v] = tail {
        first[n] = *v;
    }
}

/// One output plane of a KxK window at stride S (1 or 2) over `C` prepared
/// planes (`prep`: C x hp x wp, split at stride 2), with tap weights `w`
/// (T = C*K*K, ordered [c][ki][kj]). At stride 1 the whole plane is one
/// stream: output (oy, ox) is computed at position oy * wp + ox, where every
/// tap is a fixed offset away, and the K-1 columns per row that wrap are
/// dropped when the rows are copied out. At stride 2 each output row is a
/// stream of its own.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
pub(super) fn conv_taps<
    const C: usize,
    const K: usize,
    const S: usize,
    const T: usize,
    F: Fn(f32) -> f32,
>(
    prep: &[f32],
    (hp, wp, ho, wo): (usize, usize, usize, usize),
    w: &[f32; T],
    bias: f32,
    dst: &mut [f32],
    res: Option<&[f32]>,
    f: &F,
    tmp: &mut [f32],
) {
    debug_assert_eq!(T, C * K * K);
    let mut streams: [&[f32]; T] = [&prep[..0]; T];
    let plane = hp * wp;
    // Applies the epilogue to a finished output row, in place while it is
    // in L1.
    let finish = |oy: usize, out: &mut [f32]| match res {
        Some(r) => {
            let r = &r[oy * wo..(oy + 1) * wo];
            out.iter_mut().zip(r).for_each(|(o, &r)| *o = f(*o + r));
        }
        None => out.iter_mut().for_each(|o| *o = f(*o)),
    };
    if S == 1 && wo >= 16 {
        // Rows long enough to vectorize along: each output row straight
        // from its K*K tap rows.
        for oy in 0..ho {
            for c in 0..C {
                for ki in 0..K {
                    let row = &prep[c * plane + (oy + ki) * wp..][..wp];
                    for kj in 0..K {
                        streams[(c * K + ki) * K + kj] = &row[kj..kj + wo];
                    }
                }
            }
            let out = &mut dst[oy * wo..(oy + 1) * wo];
            taps::tap_sum(&streams, w, bias, out);
            finish(oy, out);
        }
    } else if S == 1 {
        // Position j reads plane c at j + ki * wp + kj; the last output is (ho-1, wo-1).
        let len = (ho - 1) * wp + wo;
        for c in 0..C {
            for ki in 0..K {
                for kj in 0..K {
                    streams[(c * K + ki) * K + kj] = &prep[c * plane + ki * wp + kj..][..len];
                }
            }
        }
        let sums = &mut tmp[..len];
        taps::tap_sum(&streams, w, bias, sums);
        for oy in 0..ho {
            let out = &mut dst[oy * wo..(oy + 1) * wo];
            out.copy_from_slice(&sums[oy * wp..oy * wp + wo]);
            finish(oy, out);
        }
    } else {
        // Column 2 * ox + kj: even kj in the even half at ox + kj/2, odd kj in
        // the odd half (from `we`) at ox + kj/2.
        let we = wp.div_ceil(2);
        for oy in 0..ho {
            for c in 0..C {
                for ki in 0..K {
                    let row = &prep[c * plane + (oy * S + ki) * wp..][..wp];
                    for kj in 0..K {
                        let at = if kj % 2 == 0 { kj / 2 } else { we + kj / 2 };
                        streams[(c * K + ki) * K + kj] = &row[at..at + wo];
                    }
                }
            }
            let out = &mut dst[oy * wo..(oy + 1) * wo];
            taps::tap_sum(&streams, w, bias, out);
            finish(oy, out);
        }
    }
}

/// Whether [`few_channels`] handles a layer: one group of at most four
/// input channels, 3x3 windows at stride 1 or 2, undilated.
pub(super) fn few_channels_handles(g: &Geom, cin: usize, groups: usize) -> bool {
    groups == 1
        && (1..=4).contains(&cin)
        && (g.kh, g.kw) == (3, 3)
        && g.sh == g.sw
        && (g.sh == 1 || g.sh == 2)
        && (g.dh, g.dw) == (1, 1)
}

thread_local! {
    /// Each thread's sums of its output planes before the epilogue.
    static SUMS: std::cell::RefCell<Vec<f32>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// A convolution with few input channels (see [`few_channels_handles`]) of
/// one image `x` (cin x h x w) into `out` (cout x ho x wo); `weights` are
/// [cout][cin][3][3]. Output channels go [`M`] at a time, so that each
/// stream load feeds M multiply-adds.
#[allow(clippy::too_many_arguments)]
pub(super) fn few_channels(
    ctx: &Ctx<'_>,
    x: &[f32],
    (cin, h, w): (usize, usize, usize),
    g: &Geom,
    weights: &[f32],
    (ho, wo): (usize, usize),
    out: &mut [f32],
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    act: Act,
) {
    let (hp, wp) = padded_extent(g, ho, wo);
    let plane = ho * wo;
    let mut prep = ctx.take_f32(cin * hp * wp);
    prep.par_chunks_mut(hp * wp)
        .zip(x.par_chunks(h * w))
        .for_each(|(p, src)| {
            crate::fast!(prepare(src, (h, w), (g.pt, g.pl), (hp, wp), g.sh == 2, p))
        });
    let prep = &prep[..];
    let geo = (hp, wp, ho, wo);
    out.par_chunks_mut(M * plane)
        .enumerate()
        .for_each(|(grp, dst)| {
            crate::fast!({
                let c0 = grp * M;
                let nc = dst.len() / plane;
                // A full group at stride 2 is summed straight into its output
                // rows; otherwise into M planes (at the stride-1 pitch wp, where
                // the whole plane is one stream) and copied out.
                let direct = g.sh == 2 && nc == M;
                let pitch = if g.sh == 1 { wp } else { wo };
                let mut sums = Scratch::take(&SUMS, if direct { 0 } else { M * ho * pitch });
                let b: [f32; M] = std::array::from_fn(|m| {
                    if m < nc {
                        bias.map_or(0.0, |b| b[c0 + m])
                    } else {
                        0.0
                    }
                });
                crate::with_act!(act, |f| {
                    // The epilogue of output row oy of the group's planes, in
                    // place, while the row is in L1.
                    let finish = |dst: &mut [f32], oy: usize| {
                        for (m, o) in dst.chunks_exact_mut(plane).enumerate() {
                            let out = &mut o[oy * wo..(oy + 1) * wo];
                            match residual {
                                Some(r) => {
                                    let r = &r[(c0 + m) * plane + oy * wo..][..wo];
                                    out.iter_mut().zip(r).for_each(|(o, &r)| *o = f(*o + r));
                                }
                                None => out.iter_mut().for_each(|o| *o = f(*o)),
                            }
                        }
                    };
                    macro_rules! go {
                        ($c:literal, $t:literal) => {{
                            let wt: [[f32; M]; $t] = std::array::from_fn(|t| {
                                std::array::from_fn(|m| {
                                    if m < nc {
                                        weights[(c0 + m) * $t + t]
                                    } else {
                                        0.0
                                    }
                                })
                            });
                            if direct {
                                rows_s2::<$c, $t>(prep, geo, &wt, &b, dst, |d, oy| finish(d, oy))
                            } else {
                                if g.sh == 1 {
                                    sums_m::<$c, 1, $t>(prep, geo, &wt, &b, &mut sums)
                                } else {
                                    sums_m::<$c, 2, $t>(prep, geo, &wt, &b, &mut sums)
                                }
                                for (m, o) in dst.chunks_exact_mut(plane).enumerate() {
                                    let s = &sums[m * ho * pitch..];
                                    for oy in 0..ho {
                                        o[oy * wo..(oy + 1) * wo]
                                            .copy_from_slice(&s[oy * pitch..oy * pitch + wo]);
                                    }
                                }
                                for oy in 0..ho {
                                    finish(dst, oy);
                                }
                            }
                        }};
                    }
                    match cin {
                        1 => go!(1, 9),
                        2 => go!(2, 18),
                        3 => go!(3, 27),
                        _ => go!(4, 36),
                    }
                })
            })
        });
}

/// The [`M`] output planes (`dst`, each ho x wo) of a 3x3 window at stride
/// 2 over `C` prepared planes, row by row, calling `done(dst, oy)` as each
/// output row is summed.
#[inline(always)]
fn rows_s2<const C: usize, const T: usize>(
    prep: &[f32],
    (hp, wp, ho, wo): (usize, usize, usize, usize),
    w: &[[f32; M]; T],
    bias: &[f32; M],
    dst: &mut [f32],
    mut done: impl FnMut(&mut [f32], usize),
) {
    let mut streams: [&[f32]; T] = [&prep[..0]; T];
    for oy in 0..ho {
        s2_streams::<C, T>(prep, (hp, wp), oy, wo, &mut streams);
        let [a, b, c, d] = planes_m(dst, ho * wo, oy * wo, wo);
        tap_sum_m(&streams, w, bias, [a, b, c, d]);
        done(dst, oy);
    }
}

/// Points `streams` at the tap rows of output row `oy` of a 3x3 window at
/// stride 2 over `C` prepared (split) planes.
#[inline(always)]
fn s2_streams<'a, const C: usize, const T: usize>(
    prep: &'a [f32],
    (hp, wp): (usize, usize),
    oy: usize,
    wo: usize,
    streams: &mut [&'a [f32]; T],
) {
    const K: usize = 3;
    let we = wp.div_ceil(2);
    for c in 0..C {
        for ki in 0..K {
            let row = &prep[c * hp * wp + (oy * 2 + ki) * wp..][..wp];
            for kj in 0..K {
                let at = if kj % 2 == 0 { kj / 2 } else { we + kj / 2 };
                streams[(c * K + ki) * K + kj] = &row[at..at + wo];
            }
        }
    }
}

/// The raw sums (bias and taps) of [`M`] output planes of a 3x3 window over
/// `C` prepared planes into `sums` (M x ho x pitch: pitch wp at stride 1,
/// where the whole plane is one stream, wo at stride 2, row by row).
#[inline(always)]
fn sums_m<const C: usize, const S: usize, const T: usize>(
    prep: &[f32],
    (hp, wp, ho, wo): (usize, usize, usize, usize),
    w: &[[f32; M]; T],
    bias: &[f32; M],
    sums: &mut [f32],
) {
    const K: usize = 3;
    let plane = hp * wp;
    let mut streams: [&[f32]; T] = [&prep[..0]; T];
    if S == 1 {
        let len = (ho - 1) * wp + wo;
        for c in 0..C {
            for ki in 0..K {
                for kj in 0..K {
                    streams[(c * K + ki) * K + kj] = &prep[c * plane + ki * wp + kj..][..len];
                }
            }
        }
        let [a, b, c, d] = planes_m(sums, ho * wp, 0, len);
        tap_sum_m(&streams, w, bias, [a, b, c, d]);
    } else {
        for oy in 0..ho {
            s2_streams::<C, T>(prep, (hp, wp), oy, wo, &mut streams);
            let [a, b, c, d] = planes_m(sums, ho * wo, oy * wo, wo);
            tap_sum_m(&streams, w, bias, [a, b, c, d]);
        }
    }
}

/// `[at, at + len)` of each of the [`M`] planes (each `plane` long) of `buf`.
#[inline(always)]
fn planes_m(buf: &mut [f32], plane: usize, at: usize, len: usize) -> [&mut [f32]; M] {
    let mut it = buf.chunks_exact_mut(plane).map(|p| &mut p[at..at + len]);
    std::array::from_fn(|_| it.next().expect("the buffer holds M planes"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::cpu::buffers::Buffers;
    use crate::ir::Activation;

    #[test]
    fn few_channels_matches_the_definition() {
        let buffers = Buffers::default();
        let ctx = Ctx::new(2, &buffers);
        // (cin, cout, h, w, stride, pads top/left/bottom/right)
        let cases = [
            (3, 16, 17, 19, 2, (1, 1, 1, 1)),
            (3, 6, 9, 12, 1, (1, 1, 1, 1)),
            (1, 5, 8, 8, 2, (0, 1, 1, 0)),
            (2, 4, 7, 9, 1, (0, 0, 0, 0)),
            (4, 9, 10, 10, 2, (1, 0, 1, 2)),
        ];
        for &(cin, cout, h, w, s, (pt, pl, pb, pr)) in &cases {
            let g = Geom {
                kh: 3,
                kw: 3,
                sh: s,
                sw: s,
                dh: 1,
                dw: 1,
                pt,
                pl,
                pb,
                pr,
            };
            assert!(few_channels_handles(&g, cin, 1));
            let ho = (h as i64 + pt + pb - 3) as usize / s + 1;
            let wo = (w as i64 + pl + pr - 3) as usize / s + 1;
            let x: Vec<f32> = (0..cin * h * w)
                .map(|i| ((i * 29) % 19) as f32 * 0.1 - 0.9)
                .collect();
            let wts: Vec<f32> = (0..cout * cin * 9)
                .map(|i| ((i * 13) % 11) as f32 * 0.1 - 0.5)
                .collect();
            let bias: Vec<f32> = (0..cout).map(|i| i as f32 * 0.1).collect();
            let res: Vec<f32> = (0..cout * ho * wo).map(|i| (i % 7) as f32 * 0.2).collect();
            let act = Act::Ir(Activation::Relu);
            let mut got = vec![f32::NAN; cout * ho * wo];
            few_channels(
                &ctx,
                &x,
                (cin, h, w),
                &g,
                &wts,
                (ho, wo),
                &mut got,
                Some(&bias),
                Some(&res),
                act,
            );
            for co in 0..cout {
                for oy in 0..ho {
                    for ox in 0..wo {
                        let mut acc = bias[co];
                        for ci in 0..cin {
                            for ki in 0..3 {
                                for kj in 0..3 {
                                    let iy = (oy * s + ki) as i64 - pt;
                                    let ix = (ox * s + kj) as i64 - pl;
                                    if iy >= 0 && ix >= 0 && (iy as usize) < h && (ix as usize) < w
                                    {
                                        acc += wts[((co * cin + ci) * 3 + ki) * 3 + kj]
                                            * x[(ci * h + iy as usize) * w + ix as usize];
                                    }
                                }
                            }
                        }
                        let i = (co * ho + oy) * wo + ox;
                        let want = act.apply(acc + res[i]);
                        assert!(
                            (got[i] - want).abs() <= 1e-5 * want.abs().max(1.0),
                            "case {:?}, output {i}: {} vs {want}",
                            (cin, cout, h, w, s),
                            got[i]
                        );
                    }
                }
            }
        }
    }
}
