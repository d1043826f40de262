//! Pooling layers (1-D and 2-D), NCHW.

use super::{f32_data, float_tensor, Ctx, Op, OpResult};
use crate::ir::infer::pool_out_len;
use crate::ir::{PoolKind, PoolParams};
use crate::tensor::Tensor;
use rayon::prelude::*;

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
        let two = |v: &[usize]| match v.len() {
            1 => Ok((1, v[0])),
            2 => Ok((v[0], v[1])),
            n => Err(format!("{n}-D pooling is not supported by the cpu backend")),
        };
        let one_if_1d = |v: &[usize], fill: usize| {
            if v.len() == 1 {
                (fill, v[0])
            } else {
                (v[0], v[1])
            }
        };
        two(&p.window)?;
        Ok(Pool {
            k: two(&p.window)?,
            s: one_if_1d(&p.stride, 1),
            pre: one_if_1d(&p.pre_padding, 0),
            post: one_if_1d(&p.post_padding, 0),
            p: p.clone(),
        })
    }
}

impl Op for Pool {
    fn run(&self, _: &Ctx, inputs: &[&Tensor]) -> OpResult {
        let x = inputs[0];
        let shape = x.shape();
        let (n, c) = (shape[0], shape[1]);
        let (h, w) = if shape.len() == 3 {
            (1, shape[2])
        } else {
            (shape[2], shape[3])
        };
        let err = || "pooling window does not fit the input".to_string();
        let ho = pool_out_len(
            h,
            self.k.0,
            self.s.0,
            self.pre.0,
            self.post.0,
            self.p.round_up,
        )
        .ok_or_else(err)?;
        let wo = pool_out_len(
            w,
            self.k.1,
            self.s.1,
            self.pre.1,
            self.post.1,
            self.p.round_up,
        )
        .ok_or_else(err)?;
        let xv = f32_data(x)?;
        let mut out = vec![0f32; n * c * ho * wo];
        let (kind, exclude) = (self.p.pool_type, self.p.exclude_padding);
        let (kh, kw, sh, sw) = (self.k.0, self.k.1, self.s.0, self.s.1);
        let (pt, pl) = (self.pre.0 as i64, self.pre.1 as i64);
        // The padded extent: windows are clipped to it when counting for averages.
        let (hp, wp) = (
            (h + self.pre.0 + self.post.0) as i64,
            (w + self.pre.1 + self.post.1) as i64,
        );
        out.par_chunks_mut(ho * wo)
            .enumerate()
            .for_each(|(i, dst)| {
                let src = &xv[i * h * w..(i + 1) * h * w];
                for oy in 0..ho {
                    let y0 = (oy * sh) as i64 - pt;
                    let y1 = (y0 + kh as i64).min(hp - pt);
                    let (cy0, cy1) = (y0.max(0) as usize, y1.min(h as i64).max(0) as usize);
                    for ox in 0..wo {
                        let x0 = (ox * sw) as i64 - pl;
                        let x1 = (x0 + kw as i64).min(wp - pl);
                        let (cx0, cx1) = (x0.max(0) as usize, x1.min(w as i64).max(0) as usize);
                        let v = match kind {
                            PoolKind::Max => {
                                let mut m = f32::NEG_INFINITY;
                                for yy in cy0..cy1 {
                                    for &v in &src[yy * w + cx0..yy * w + cx1] {
                                        if v > m || v.is_nan() {
                                            m = v;
                                        }
                                    }
                                }
                                m
                            }
                            PoolKind::Average => {
                                let mut s = 0f32;
                                for yy in cy0..cy1 {
                                    s += src[yy * w + cx0..yy * w + cx1].iter().sum::<f32>();
                                }
                                let count = if exclude {
                                    (cy1.saturating_sub(cy0) * cx1.saturating_sub(cx0)) as f32
                                } else {
                                    ((y1 - y0) * (x1 - x0)) as f32
                                };
                                s / count
                            }
                        };
                        dst[oy * wo + ox] = v;
                    }
                }
            });
        let oshape = if shape.len() == 3 {
            vec![n, c, wo]
        } else {
            vec![n, c, ho, wo]
        };
        Ok(vec![float_tensor(x.dtype(), oshape, out)?])
    }
}
