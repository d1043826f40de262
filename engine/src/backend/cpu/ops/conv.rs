//! Convolution and Deconvolution (1-D and 2-D), NCHW, f32.
//!
//! Convolution is one GEMM per image and group: the weights [Cout/g, K],
//! packed when the plan loads, times the input read as its im2col matrix
//! [K, Ho*Wo] while B is packed (a 1x1 stride-1 kernel reads the input as
//! is). Bias, activation and a residual addition run in the GEMM's store.
//! Depthwise convolutions (one filter per channel) run directly (see
//! [`super::depthwise`]).

use super::depthwise::{c8_handles, depthwise, depthwise_c8};
use super::stream_conv::{few_channels, few_channels_handles};
use super::{f32_data, float_tensor, Ctx, Op, OpResult};
use crate::backend::cpu::act::Act;
use crate::backend::cpu::sgemm::{gemm, BSource, DenseB, Epilogue, Layout, PackedA};
use crate::backend::cpu::simd::copy_run;
use crate::backend::cpu::taps::C8;
use crate::ir::{ConvParams, Layer, Network};
use crate::tensor::Tensor;
use rayon::prelude::*;

/// Geometry of a 2-D window sweep (1-D convolutions use height 1).
#[derive(Clone, Copy, Debug)]
pub(super) struct Geom {
    pub kh: usize,
    pub kw: usize,
    pub sh: usize,
    pub sw: usize,
    pub dh: usize,
    pub dw: usize,
    pub pt: i64,
    pub pl: i64,
    pub pb: i64,
    pub pr: i64,
}

fn geom(p: &ConvParams) -> Result<Geom, String> {
    match p.kernel_size.len() {
        1 => Ok(Geom {
            kh: 1,
            kw: p.kernel_size[0],
            sh: 1,
            sw: p.stride[0],
            dh: 1,
            dw: p.dilation[0],
            pt: 0,
            pl: p.pre_padding[0],
            pb: 0,
            pr: p.post_padding[0],
        }),
        2 => Ok(Geom {
            kh: p.kernel_size[0],
            kw: p.kernel_size[1],
            sh: p.stride[0],
            sw: p.stride[1],
            dh: p.dilation[0],
            dw: p.dilation[1],
            pt: p.pre_padding[0],
            pl: p.pre_padding[1],
            pb: p.post_padding[0],
            pr: p.post_padding[1],
        }),
        n => Err(format!(
            "{n}-D convolution is not supported by the cpu backend"
        )),
    }
}

/// (N, C, H, W) of an input of rank 3 (1-D) or 4 (2-D).
fn nchw(x: &Tensor) -> (usize, usize, usize, usize) {
    let s = x.shape();
    if s.len() == 3 {
        (s[0], s[1], 1, s[2])
    } else {
        (s[0], s[1], s[2], s[3])
    }
}

fn out_shape(x: &Tensor, cout: usize, ho: usize, wo: usize) -> Vec<usize> {
    if x.rank() == 3 {
        vec![x.shape()[0], cout, wo]
    } else {
        vec![x.shape()[0], cout, ho, wo]
    }
}

/// One image's channels read as the im2col matrix: row (c, ki, kj), column
/// (oy, ox) holds input (c, oy*sh + ki*dh - pt, ox*sw + kj*dw - pl), or 0
/// in the padding.
struct Im2col<'a> {
    x: &'a [f32],
    c: usize,
    h: usize,
    w: usize,
    g: Geom,
    wo: usize,
    n: usize,
    /// Strided convolutions read `x` de-interleaved by column phase
    /// ([c][phase][h][ceil(w / sw)], see [`deinterleave`]): then the inputs
    /// of consecutive outputs are adjacent and copy as runs.
    phased: bool,
}

/// Splits each row of each plane into `s` phases (columns j, j + s, ...),
/// phase-major: the layout [`Im2col`] reads strided convolutions from.
fn deinterleave(x: &[f32], planes: usize, h: usize, w: usize, s: usize, out: &mut [f32]) {
    let wph = w.div_ceil(s);
    out.par_chunks_mut(s * h * wph)
        .enumerate()
        .take(planes)
        .for_each(|(c, dst)| {
            let src = &x[c * h * w..(c + 1) * h * w];
            for y in 0..h {
                let row = &src[y * w..(y + 1) * w];
                for p in 0..s {
                    let d = &mut dst[(p * h + y) * wph..(p * h + y + 1) * wph];
                    let mut n = 0;
                    for (o, v) in d.iter_mut().zip(row.iter().skip(p).step_by(s)) {
                        *o = *v;
                        n += 1;
                    }
                    d[n..].fill(0.0);
                }
            }
        });
}

impl BSource for Im2col<'_> {
    fn k(&self) -> usize {
        self.c * self.g.kh * self.g.kw
    }

    fn pack_cost(&self) -> f64 {
        4.0
    }

    fn n(&self) -> usize {
        self.n
    }

    fn pack(&self, k0: usize, kc: usize, n0: usize, nc: usize, nr: usize, dst: &mut [f32]) {
        let g = &self.g;
        let (h, w) = (self.h as i64, self.w as i64);
        let taps = g.kh * g.kw;
        let wph = self.w.div_ceil(g.sw);
        let plane = if self.phased {
            g.sw * self.h * wph
        } else {
            self.h * self.w
        };
        // Consecutive outputs' inputs are this far apart.
        let step = if self.phased { 1 } else { g.sw };
        // Per tap, the panel's columns as runs (first column, length, input
        // offset or -1 for padding), found per output row the panel covers.
        let mut runs: Vec<(usize, usize, isize)> = Vec::with_capacity(8);
        for (p, panel) in dst.chunks_mut(kc * nr).take(nc.div_ceil(nr)).enumerate() {
            let c0 = n0 + p * nr;
            let cols = nr.min(n0 + nc - c0);
            for t in 0..taps.min(kc) {
                let k = k0 + t;
                let tap = k % taps;
                let (ki, kj) = (tap / g.kw, tap % g.kw);
                let (dy, dx) = ((ki * g.dh) as i64, (kj * g.dw) as i64);
                runs.clear();
                let mut j = 0;
                while j < cols {
                    let (oy, ox0) = ((c0 + j) / self.wo, (c0 + j) % self.wo);
                    let len = (self.wo - ox0).min(cols - j);
                    let iy = (oy * g.sh) as i64 - g.pt + dy;
                    if iy < 0 || iy >= h {
                        runs.push((j, len, -1));
                    } else {
                        // Outputs ox whose input column ox*sw - pl + dx lies in 0..w.
                        let base = dx - g.pl;
                        let sw = g.sw as i64;
                        let lo = if base >= 0 { 0 } else { (-base + sw - 1) / sw };
                        let hi = if base > w - 1 {
                            0
                        } else {
                            (w - 1 - base) / sw + 1
                        };
                        let (a, b) = (ox0 as i64, (ox0 + len) as i64);
                        let (vlo, vhi) = (lo.clamp(a, b), hi.clamp(a, b).max(lo.clamp(a, b)));
                        if vlo > a {
                            runs.push((j, (vlo - a) as usize, -1));
                        }
                        if vhi > vlo {
                            let ix = vlo * sw + base;
                            let off = if self.phased {
                                ((ix % sw) * h + iy) * wph as i64 + ix / sw
                            } else {
                                iy * w + ix
                            };
                            runs.push((j + (vlo - a) as usize, (vhi - vlo) as usize, off as isize));
                        }
                        if b > vhi {
                            runs.push((j + (vhi - a) as usize, (b - vhi) as usize, -1));
                        }
                    }
                    j += len;
                }
                // Rows with this tap: one per channel, `taps` rows apart.
                let mut c = k / taps;
                let mut row_k = t;
                while row_k < kc {
                    let src = &self.x[c * plane..(c + 1) * plane];
                    let row = &mut panel[row_k * nr..(row_k + 1) * nr];
                    for &(j, len, off) in &runs {
                        let d = &mut row[j..j + len];
                        if off < 0 {
                            d.fill(0.0);
                        } else if step == 1 {
                            copy_run(d, &src[off as usize..off as usize + len]);
                        } else {
                            for (i, v) in d.iter_mut().enumerate() {
                                *v = src[off as usize + i * step];
                            }
                        }
                    }
                    row[cols..].fill(0.0);
                    c += 1;
                    row_k += taps;
                }
            }
        }
    }
}

pub struct Conv {
    g: Geom,
    groups: usize,
    cout: usize,
    /// Input channels per group.
    cin_g: usize,
    /// Per group, its [Cout/g, Cin/g * kh * kw] weights, packed.
    packed: Vec<PackedA>,
    /// Depthwise convolutions keep the plain [C, kh * kw] weights instead
    /// (and [kh * kw, C] for small planes, computed channels-last).
    depthwise: Option<Vec<f32>>,
    depthwise_t: Option<Vec<f32>>,
    /// 3x3 stride-1 convolutions with enough channels run as Winograd.
    winograd: Option<super::winograd::Winograd>,
    /// Convolutions reading at most four channels (a network's first layer)
    /// run directly from their plain [Cout, Cin, 3, 3] weights.
    few: Option<Vec<f32>>,
    bias: Option<Vec<f32>>,
    act: Act,
}

impl Conv {
    /// The kernel for a Convolution layer of `net`.
    pub fn new(net: &Network, layer: &Layer, p: &ConvParams) -> Result<Self, String> {
        Self::with_act(net, layer, p, Act::from_ir(p.activation))
    }

    /// A convolution whose epilogue applies `act` (which may be one the IR
    /// has no activation for, such as HardSwish).
    pub fn with_act(
        net: &Network,
        layer: &Layer,
        p: &ConvParams,
        act: Act,
    ) -> Result<Self, String> {
        let g = geom(p)?;
        if [g.pt, g.pl, g.pb, g.pr].iter().any(|&v| v < 0) {
            return Err("negative convolution padding".into());
        }
        let k = net.weights(p.kernel);
        let weights = f32_data(k)?;
        let bias = p
            .bias
            .map(|b| f32_data(net.weights(b)).map(|v| v.into_owned()))
            .transpose()?;
        let cin_g = k.shape()[1];
        let cout_g = p.out_channels / p.groups;
        let kdim = cin_g * g.kh * g.kw;
        let is_depthwise = cin_g == 1 && cout_g == 1;
        let out = &layer.outputs[0].shape;
        let out_hw = match out.len() {
            4 => out[2].known().zip(out[3].known()),
            _ => None,
        };
        let winograd = super::winograd::applies(
            (g.kh, g.kw),
            (g.sh, g.sw),
            (g.dh, g.dw),
            p.groups,
            cin_g,
            p.out_channels,
            out_hw,
        )
        .then(|| {
            let pads = [g.pt, g.pl, g.pb, g.pr].map(|v| v as usize);
            super::winograd::Winograd::new(&weights, p.out_channels, cin_g, pads)
        });
        let few = (!is_depthwise && winograd.is_none())
            .then_some(())
            .filter(|_| few_channels_handles(&g, cin_g, p.groups))
            .map(|_| weights.to_vec());
        let packed = if is_depthwise || winograd.is_some() || few.is_some() {
            vec![]
        } else {
            (0..p.groups)
                .map(|gi| {
                    PackedA::pack(
                        &weights[gi * cout_g * kdim..(gi + 1) * cout_g * kdim],
                        cout_g,
                        kdim,
                    )
                })
                .collect()
        };
        Ok(Conv {
            g,
            groups: p.groups,
            cout: p.out_channels,
            cin_g,
            packed,
            depthwise_t: is_depthwise.then(|| {
                let taps = g.kh * g.kw;
                let c = p.out_channels;
                (0..taps * c)
                    .map(|i| weights[(i % c) * taps + i / c])
                    .collect()
            }),
            depthwise: is_depthwise.then(|| weights.into_owned()),
            winograd,
            few,
            bias,
            act,
        })
    }

    fn out_hw(&self, h: usize, w: usize) -> Result<(usize, usize), String> {
        let g = &self.g;
        let span = |n: usize, p0: i64, p1: i64, k: usize, d: usize, s: usize| {
            let eff = (d * (k - 1) + 1) as i64;
            let span = n as i64 + p0 + p1 - eff;
            if span < 0 {
                Err(format!("kernel does not fit input of {n}"))
            } else {
                Ok(span as usize / s + 1)
            }
        };
        Ok((
            span(h, g.pt, g.pb, g.kh, g.dh, g.sh)?,
            span(w, g.pl, g.pr, g.kw, g.dw, g.sw)?,
        ))
    }

    /// Runs on `x`, adding `residual` (laid out like the output) before the
    /// activation when given.
    pub fn forward(
        &self,
        ctx: &Ctx<'_>,
        x: &Tensor,
        residual: Option<&[f32]>,
    ) -> Result<Tensor, String> {
        let (n, c, h, w) = nchw(x);
        if c != self.cin_g * self.groups {
            return Err(format!(
                "input has {c} channels, expected {}",
                self.cin_g * self.groups
            ));
        }
        let (ho, wo) = self.out_hw(h, w)?;
        let plane = ho * wo;
        let len = n * self.cout * plane;
        if residual.is_some_and(|r| r.len() != len) {
            return Err("residual does not match the output".into());
        }
        let xv = f32_data(x)?;
        let mut out = ctx.take_f32(len);
        let g = &self.g;
        if let (Some(wts), Some(wt)) = (&self.depthwise, &self.depthwise_t) {
            let bias = self.bias.as_deref();
            if c >= C8 && c8_handles(g) {
                // Across eight channels at a time: small planes vectorize
                // poorly along rows, and on large ones (measured at 28x28 to
                // 112x112, 2 threads) the blocks of eight planes still win.
                for b in 0..n {
                    let per = c * plane;
                    let x = &xv[b * c * h * w..(b + 1) * c * h * w];
                    let res = residual.map(|r| &r[b * per..(b + 1) * per]);
                    let dst = &mut out[b * per..(b + 1) * per];
                    depthwise_c8(x, c, h, w, g, wt, ho, wo, dst, bias, res, self.act);
                }
            } else {
                depthwise(
                    &xv, c, h, w, g, wts, ho, wo, &mut out, bias, residual, self.act,
                );
            }
        } else if let Some(wts) = &self.few {
            let per = self.cout * plane;
            for b in 0..n {
                let xin = &xv[b * c * h * w..(b + 1) * c * h * w];
                let res = residual.map(|r| &r[b * per..(b + 1) * per]);
                let dst = &mut out[b * per..(b + 1) * per];
                let bias = self.bias.as_deref();
                few_channels(
                    ctx,
                    xin,
                    (c, h, w),
                    g,
                    wts,
                    (ho, wo),
                    dst,
                    bias,
                    res,
                    self.act,
                );
            }
        } else if let Some(wg) = &self.winograd {
            let per = self.cout * plane;
            for b in 0..n {
                let xin = &xv[b * c * h * w..(b + 1) * c * h * w];
                let res = residual.map(|r| &r[b * per..(b + 1) * per]);
                let dst = &mut out[b * per..(b + 1) * per];
                wg.forward(ctx, xin, h, w, dst, self.bias.as_deref(), res, self.act);
            }
        } else {
            let cout_g = self.cout / self.groups;
            let pointwise = g.kh == 1
                && g.kw == 1
                && g.sh == 1
                && g.sw == 1
                && g.pt == 0
                && g.pl == 0
                && g.pb == 0
                && g.pr == 0;
            // Strided convolutions read the input de-interleaved by column phase.
            let phased = (!pointwise && g.sw > 1).then(|| {
                let wph = w.div_ceil(g.sw);
                let mut buf = ctx.take_f32(n * c * g.sw * h * wph);
                deinterleave(&xv, n * c, h, w, g.sw, &mut buf);
                buf
            });
            let plane_in = if phased.is_some() {
                g.sw * h * w.div_ceil(g.sw)
            } else {
                h * w
            };
            for b in 0..n {
                for (gi, pa) in self.packed.iter().enumerate() {
                    let xin = &xv[(b * c + gi * self.cin_g) * h * w..][..self.cin_g * h * w];
                    let at = (b * self.cout + gi * cout_g) * plane;
                    let epi = Epilogue {
                        bias: self
                            .bias
                            .as_deref()
                            .map(|v| &v[gi * cout_g..(gi + 1) * cout_g]),
                        residual: residual.map(|r| &r[at..at + cout_g * plane]),
                        act: self.act,
                    };
                    let dst = &mut out[at..at + cout_g * plane];
                    if pointwise {
                        let src = DenseB {
                            data: xin,
                            k: self.cin_g,
                            n: plane,
                        };
                        gemm(pa, &src, dst, Layout::row_major(plane), &epi, ctx.threads);
                    } else {
                        let x = match &phased {
                            Some(buf) => {
                                &buf[(b * c + gi * self.cin_g) * plane_in..]
                                    [..self.cin_g * plane_in]
                            }
                            None => xin,
                        };
                        let src = Im2col {
                            x,
                            c: self.cin_g,
                            h,
                            w,
                            g: *g,
                            wo,
                            n: plane,
                            phased: phased.is_some(),
                        };
                        gemm(pa, &src, dst, Layout::row_major(plane), &epi, ctx.threads);
                    }
                }
            }
            if let Some(buf) = phased {
                ctx.give_f32(buf);
            }
        }
        float_tensor(x.dtype(), out_shape(x, self.cout, ho, wo), out)
    }
}

impl Op for Conv {
    fn run(&self, ctx: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        Ok(vec![self.forward(ctx, inputs[0], None)?])
    }
}

/// Bias, residual and activation over output planes (channel = plane index
/// modulo `channels`), for kernels that do not fuse them into their stores.
pub fn finish_planes(
    out: &mut [f32],
    plane: usize,
    channels: usize,
    bias: Option<&[f32]>,
    residual: Option<&[f32]>,
    act: Act,
) {
    if plane == 0 || (bias.is_none() && residual.is_none() && act == Act::Identity) {
        return;
    }
    crate::with_act!(act, |f| out.par_chunks_mut(plane).enumerate().for_each(
        |(i, ch)| {
            let b = bias.map_or(0.0, |b| b[i % channels]);
            match residual {
                Some(r) => {
                    let r = &r[i * plane..(i + 1) * plane];
                    ch.iter_mut().zip(r).for_each(|(v, r)| *v = f(*v + b + r));
                }
                None => ch.iter_mut().for_each(|v| *v = f(*v + b)),
            }
        }
    ))
}

pub struct Deconv {
    g: Geom,
    groups: usize,
    cout: usize,
    cin_g: usize,
    /// Per group, [Cout/g * kh * kw, Cin/g] packed: one GEMM gives every
    /// (output channel, kernel tap) row, which col2im scatters.
    packed: Vec<PackedA>,
    bias: Option<Vec<f32>>,
    act: Act,
}

impl Deconv {
    pub fn new(net: &Network, p: &ConvParams) -> Result<Self, String> {
        let g = geom(p)?;
        let k = net.weights(p.kernel);
        let (cin, cout_g) = (k.shape()[0], k.shape()[1]);
        let cin_g = cin / p.groups;
        let kk = g.kh * g.kw;
        let w = f32_data(k)?;
        // [Cin, Cout/g, kh, kw] -> per group, row (co, tap), column ci.
        let packed = (0..p.groups)
            .map(|gi| {
                let base = gi * cin_g * cout_g * kk;
                PackedA::from_fn(cout_g * kk, cin_g, |r, ci| w[base + ci * cout_g * kk + r])
            })
            .collect();
        let bias = p
            .bias
            .map(|b| f32_data(net.weights(b)).map(|v| v.into_owned()))
            .transpose()?;
        Ok(Deconv {
            g,
            groups: p.groups,
            cout: p.out_channels,
            cin_g,
            packed,
            bias,
            act: Act::from_ir(p.activation),
        })
    }
}

impl Op for Deconv {
    fn run(&self, ctx: &Ctx<'_>, inputs: &[&Tensor]) -> OpResult {
        let x = inputs[0];
        let (n, c, h, w) = nchw(x);
        if c != self.cin_g * self.groups {
            return Err(format!(
                "input has {c} channels, expected {}",
                self.cin_g * self.groups
            ));
        }
        let g = &self.g;
        let len =
            |n: usize, s: usize, d: usize, k: usize, p0: i64, p1: i64| -> Result<usize, String> {
                let v = (n as i64 - 1) * s as i64 + (d * (k - 1) + 1) as i64 - p0 - p1;
                usize::try_from(v)
                    .ok()
                    .filter(|&v| v > 0)
                    .ok_or_else(|| format!("output length {v}"))
            };
        let ho = len(h, g.sh, g.dh, g.kh, g.pt, g.pb)?;
        let wo = len(w, g.sw, g.dw, g.kw, g.pl, g.pr)?;
        let xv = f32_data(x)?;
        let cout_g = self.cout / self.groups;
        let kk = g.kh * g.kw;
        let rows = cout_g * kk;
        let mut col = ctx.take_f32(rows * h * w);
        let mut out = ctx.take_f32(n * self.cout * ho * wo);
        out.fill(0.0);
        for b in 0..n {
            for (gi, pa) in self.packed.iter().enumerate() {
                let xin = &xv[(b * c + gi * self.cin_g) * h * w..][..self.cin_g * h * w];
                let src = DenseB {
                    data: xin,
                    k: self.cin_g,
                    n: h * w,
                };
                gemm(
                    pa,
                    &src,
                    &mut col,
                    Layout::row_major(h * w),
                    &Epilogue::default(),
                    ctx.threads,
                );
                let dst = &mut out[(b * self.cout + gi * cout_g) * ho * wo..][..cout_g * ho * wo];
                // col2im: scatter-add each (channel, ki, kj) row into its output plane.
                dst.par_chunks_mut(ho * wo)
                    .enumerate()
                    .for_each(|(co, plane)| {
                        for ki in 0..g.kh {
                            for kj in 0..g.kw {
                                let src = &col[(co * kk + ki * g.kw + kj) * h * w..][..h * w];
                                for iy in 0..h {
                                    let oy = (iy * g.sh + ki * g.dh) as i64 - g.pt;
                                    if oy < 0 || oy >= ho as i64 {
                                        continue;
                                    }
                                    for ix in 0..w {
                                        let ox = (ix * g.sw + kj * g.dw) as i64 - g.pl;
                                        if ox >= 0 && ox < wo as i64 {
                                            plane[oy as usize * wo + ox as usize] +=
                                                src[iy * w + ix];
                                        }
                                    }
                                }
                            }
                        }
                    });
            }
        }
        ctx.give_f32(col);
        finish_planes(
            &mut out,
            ho * wo,
            self.cout,
            self.bias.as_deref(),
            None,
            self.act,
        );
        Ok(vec![float_tensor(
            x.dtype(),
            out_shape(x, self.cout, ho, wo),
            out,
        )?])
    }
}
