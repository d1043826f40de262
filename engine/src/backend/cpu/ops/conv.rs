//! Convolution and Deconvolution (1-D and 2-D), NCHW, f32.
//!
//! Convolution lowers to one GEMM per image and group: weights [Cout/g, K]
//! times an im2col matrix [K, Ho*Wo] (skipped for 1x1 stride-1 kernels,
//! whose input already is that matrix); depthwise convolutions run directly.
//! Bias and the fused activation are applied as one epilogue pass.

use super::{f32_data, float_tensor, Ctx, Op, OpResult};
use crate::backend::cpu::gemm::{sgemm, MatRef};
use crate::ir::{Activation, ConvParams, Network};
use crate::tensor::Tensor;
use rayon::prelude::*;

/// Geometry of a 2-D window sweep (1-D convolutions use height 1).
#[derive(Clone, Copy, Debug)]
struct Geom {
    kh: usize,
    kw: usize,
    sh: usize,
    sw: usize,
    dh: usize,
    dw: usize,
    pt: i64,
    pl: i64,
    pb: i64,
    pr: i64,
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

/// Adds bias and applies the activation to each output channel plane.
fn epilogue(
    out: &mut [f32],
    plane: usize,
    bias: Option<&[f32]>,
    act: Option<Activation>,
    cout: usize,
) {
    if bias.is_none() && act.is_none() || plane == 0 {
        return;
    }
    out.par_chunks_mut(plane).enumerate().for_each(|(i, ch)| {
        let b = bias.map_or(0.0, |b| b[i % cout]);
        match act {
            Some(a) => ch.iter_mut().for_each(|v| *v = a.apply(*v + b)),
            None => ch.iter_mut().for_each(|v| *v += b),
        }
    });
}

pub struct Conv {
    g: Geom,
    groups: usize,
    cout: usize,
    /// Input channels per group.
    cin_g: usize,
    /// [Cout, Cin/g * kh * kw].
    weights: Vec<f32>,
    bias: Option<Vec<f32>>,
    act: Option<Activation>,
}

impl Conv {
    pub fn new(net: &Network, p: &ConvParams) -> Result<Self, String> {
        let g = geom(p)?;
        if [g.pt, g.pl, g.pb, g.pr].iter().any(|&v| v < 0) {
            return Err("negative convolution padding".into());
        }
        let k = net.weights(p.kernel);
        let weights = f32_data(k)?.into_owned();
        let bias = p
            .bias
            .map(|b| f32_data(net.weights(b)).map(|v| v.into_owned()))
            .transpose()?;
        Ok(Conv {
            g,
            groups: p.groups,
            cout: p.out_channels,
            cin_g: k.shape()[1],
            weights,
            bias,
            act: p.activation,
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
}

/// Writes the im2col matrix [cin * kh * kw, ho * wo] of one image's channels.
#[allow(clippy::too_many_arguments)]
fn im2col(
    x: &[f32],
    cin: usize,
    h: usize,
    w: usize,
    g: &Geom,
    ho: usize,
    wo: usize,
    col: &mut [f32],
) {
    let plane = ho * wo;
    col.par_chunks_mut(plane)
        .enumerate()
        .for_each(|(row, dst)| {
            let c = row / (g.kh * g.kw);
            let ki = (row / g.kw) % g.kh;
            let kj = row % g.kw;
            let src = &x[c * h * w..(c + 1) * h * w];
            for oy in 0..ho {
                let iy = (oy * g.sh + ki * g.dh) as i64 - g.pt;
                let line = &mut dst[oy * wo..(oy + 1) * wo];
                if iy < 0 || iy >= h as i64 {
                    line.fill(0.0);
                    continue;
                }
                let srow = &src[iy as usize * w..(iy as usize + 1) * w];
                for (ox, d) in line.iter_mut().enumerate() {
                    let ix = (ox * g.sw + kj * g.dw) as i64 - g.pl;
                    *d = if ix >= 0 && ix < w as i64 {
                        srow[ix as usize]
                    } else {
                        0.0
                    };
                }
            }
        });
    debug_assert_eq!(col.len(), cin * g.kh * g.kw * plane);
}

impl Op for Conv {
    fn run(&self, ctx: &Ctx, inputs: &[&Tensor]) -> OpResult {
        let x = inputs[0];
        let (n, c, h, w) = nchw(x);
        if c != self.cin_g * self.groups {
            return Err(format!(
                "input has {c} channels, expected {}",
                self.cin_g * self.groups
            ));
        }
        let (ho, wo) = self.out_hw(h, w)?;
        let xv = f32_data(x)?;
        let plane = ho * wo;
        let mut out = vec![0f32; n * self.cout * plane];
        let g = &self.g;
        let cout_g = self.cout / self.groups;
        let kdim = self.cin_g * g.kh * g.kw;

        if self.groups == c && cout_g == 1 && self.cin_g == 1 {
            depthwise(&xv, n, c, h, w, g, &self.weights, ho, wo, &mut out);
        } else {
            let pointwise = g.kh == 1
                && g.kw == 1
                && g.sh == 1
                && g.sw == 1
                && g.pt == 0
                && g.pl == 0
                && g.pb == 0
                && g.pr == 0;
            let mut col = if pointwise {
                Vec::new()
            } else {
                vec![0f32; kdim * plane]
            };
            for b in 0..n {
                for gi in 0..self.groups {
                    let xin = &xv[(b * c + gi * self.cin_g) * h * w..][..self.cin_g * h * w];
                    let rhs = if pointwise {
                        xin
                    } else {
                        im2col(xin, self.cin_g, h, w, g, ho, wo, &mut col);
                        &col[..]
                    };
                    let wmat = MatRef::row_major(
                        &self.weights[gi * cout_g * kdim..][..cout_g * kdim],
                        cout_g,
                        kdim,
                    );
                    let dst = &mut out[(b * self.cout + gi * cout_g) * plane..][..cout_g * plane];
                    sgemm(
                        wmat,
                        MatRef::row_major(rhs, kdim, plane),
                        dst,
                        false,
                        ctx.threads,
                    );
                }
            }
        }
        epilogue(&mut out, plane, self.bias.as_deref(), self.act, self.cout);
        Ok(vec![float_tensor(
            x.dtype(),
            out_shape(x, self.cout, ho, wo),
            out,
        )?])
    }
}

/// One filter per channel, computed directly.
#[allow(clippy::too_many_arguments)]
fn depthwise(
    x: &[f32],
    n: usize,
    c: usize,
    h: usize,
    w: usize,
    g: &Geom,
    weights: &[f32],
    ho: usize,
    wo: usize,
    out: &mut [f32],
) {
    let ksz = g.kh * g.kw;
    out.par_chunks_mut(ho * wo)
        .enumerate()
        .for_each(|(i, dst)| {
            let ch = i % c;
            debug_assert!(i / c < n);
            let src = &x[i * h * w..(i + 1) * h * w];
            let k = &weights[ch * ksz..(ch + 1) * ksz];
            for oy in 0..ho {
                for ox in 0..wo {
                    let mut acc = 0f32;
                    for ki in 0..g.kh {
                        let iy = (oy * g.sh + ki * g.dh) as i64 - g.pt;
                        if iy < 0 || iy >= h as i64 {
                            continue;
                        }
                        let row = &src[iy as usize * w..];
                        for kj in 0..g.kw {
                            let ix = (ox * g.sw + kj * g.dw) as i64 - g.pl;
                            if ix >= 0 && ix < w as i64 {
                                acc += row[ix as usize] * k[ki * g.kw + kj];
                            }
                        }
                    }
                    dst[oy * wo + ox] = acc;
                }
            }
        });
}

pub struct Deconv {
    g: Geom,
    groups: usize,
    cout: usize,
    cin_g: usize,
    /// Per group, [Cout/g * kh * kw, Cin/g]: the kernel transposed for one GEMM.
    weights_t: Vec<f32>,
    bias: Option<Vec<f32>>,
    act: Option<Activation>,
}

impl Deconv {
    pub fn new(net: &Network, p: &ConvParams) -> Result<Self, String> {
        let g = geom(p)?;
        let k = net.weights(p.kernel);
        let (cin, cout_g) = (k.shape()[0], k.shape()[1]);
        let cin_g = cin / p.groups;
        let kk = g.kh * g.kw;
        let w = f32_data(k)?;
        // [Cin, Cout/g, kh, kw] -> per group [Cout/g * kk, Cin/g]
        let mut weights_t = vec![0f32; w.len()];
        for gi in 0..p.groups {
            let base = gi * cin_g * cout_g * kk;
            for ci in 0..cin_g {
                for r in 0..cout_g * kk {
                    weights_t[base + r * cin_g + ci] = w[base + ci * cout_g * kk + r];
                }
            }
        }
        let bias = p
            .bias
            .map(|b| f32_data(net.weights(b)).map(|v| v.into_owned()))
            .transpose()?;
        Ok(Deconv {
            g,
            groups: p.groups,
            cout: p.out_channels,
            cin_g,
            weights_t,
            bias,
            act: p.activation,
        })
    }
}

impl Op for Deconv {
    fn run(&self, ctx: &Ctx, inputs: &[&Tensor]) -> OpResult {
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
        let mut col = vec![0f32; rows * h * w];
        let mut out = vec![0f32; n * self.cout * ho * wo];
        for b in 0..n {
            for gi in 0..self.groups {
                let xin = &xv[(b * c + gi * self.cin_g) * h * w..][..self.cin_g * h * w];
                let wt = MatRef::row_major(
                    &self.weights_t[gi * rows * self.cin_g..][..rows * self.cin_g],
                    rows,
                    self.cin_g,
                );
                sgemm(
                    wt,
                    MatRef::row_major(xin, self.cin_g, h * w),
                    &mut col,
                    false,
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
        epilogue(&mut out, ho * wo, self.bias.as_deref(), self.act, self.cout);
        Ok(vec![float_tensor(
            x.dtype(),
            out_shape(x, self.cout, ho, wo),
            out,
        )?])
    }
}
