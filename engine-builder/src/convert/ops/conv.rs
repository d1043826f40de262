//! Conv and ConvTranspose -> Convolution / Deconvolution.

use super::Add;
use crate::convert::{ConvertError, NodeCtx};
use jetrt_engine::ir::{ConvParams, LayerKind};

type R = Result<(), ConvertError>;

pub fn register(add: &mut Add<'_>) {
    add("Conv", 1, conv);
    add("ConvTranspose", 1, conv_transpose);
}

/// Spatial attributes shared by convolutions and pooling.
pub struct Window {
    pub kernel: Vec<usize>,
    pub strides: Vec<usize>,
    pub dilations: Vec<usize>,
    pub pre: Vec<i64>,
    pub post: Vec<i64>,
    pub auto_pad: String,
}

fn usizes(v: Vec<i64>, what: &str) -> Result<Vec<usize>, ConvertError> {
    v.into_iter()
        .map(|x| usize::try_from(x).ok().filter(|&x| x > 0))
        .collect::<Option<Vec<_>>>()
        .ok_or_else(|| ConvertError::new(format!("{what} must be positive")))
}

/// Reads kernel_shape, strides, dilations, pads and auto_pad for `k` spatial dims.
pub fn window(
    ctx: &NodeCtx<'_>,
    k: usize,
    kernel: Option<Vec<usize>>,
) -> Result<Window, ConvertError> {
    let kernel = match (ctx.attr_ints("kernel_shape")?, kernel) {
        (Some(ks), _) => usizes(ks, "kernel_shape")?,
        (None, Some(ks)) => ks,
        (None, None) => return Err(ConvertError::new("kernel_shape is required")),
    };
    let strides = usizes(ctx.attr_ints("strides")?.unwrap_or(vec![1; k]), "strides")?;
    let dilations = usizes(
        ctx.attr_ints("dilations")?.unwrap_or(vec![1; k]),
        "dilations",
    )?;
    let pads = ctx.attr_ints("pads")?.unwrap_or(vec![0; 2 * k]);
    if kernel.len() != k || strides.len() != k || dilations.len() != k || pads.len() != 2 * k {
        return Err(ConvertError::new(format!(
            "spatial attributes do not match the input's {k} spatial dims"
        )));
    }
    if pads.iter().any(|&p| p < 0) {
        return Err(ConvertError::new("pads must not be negative"));
    }
    let auto_pad = ctx
        .attr_string("auto_pad")?
        .unwrap_or_else(|| "NOTSET".into());
    Ok(Window {
        kernel,
        strides,
        dilations,
        pre: pads[..k].to_vec(),
        post: pads[k..].to_vec(),
        auto_pad,
    })
}

impl Window {
    /// Applies auto_pad (SAME_UPPER/SAME_LOWER/VALID) for a forward window
    /// sweep over `spatial` input dims.
    pub fn resolve_auto_pad(&mut self, spatial: Option<Vec<usize>>) -> Result<(), ConvertError> {
        match self.auto_pad.as_str() {
            "NOTSET" | "" => Ok(()),
            "VALID" => {
                self.pre.iter_mut().for_each(|p| *p = 0);
                self.post.iter_mut().for_each(|p| *p = 0);
                Ok(())
            }
            mode @ ("SAME_UPPER" | "SAME_LOWER") => {
                let dims = spatial.ok_or_else(|| {
                    ConvertError::new(format!(
                        "auto_pad {mode} needs fixed spatial dims; give them with --shape"
                    ))
                })?;
                for (i, &n) in dims.iter().enumerate() {
                    let out = n.div_ceil(self.strides[i]);
                    let eff = self.dilations[i] * (self.kernel[i] - 1) + 1;
                    let total = ((out - 1) * self.strides[i] + eff).saturating_sub(n) as i64;
                    let small = total / 2;
                    let (a, b) = if mode == "SAME_UPPER" {
                        (small, total - small)
                    } else {
                        (total - small, small)
                    };
                    self.pre[i] = a;
                    self.post[i] = b;
                }
                Ok(())
            }
            other => Err(ConvertError::new(format!("unknown auto_pad '{other}'"))),
        }
    }
}

/// The spatial dims of `x` when all are known.
fn spatial(ctx: &NodeCtx<'_>, x: jetrt_engine::ir::TensorRef) -> Option<Vec<usize>> {
    ctx.shape(x)[2..].iter().map(|d| d.known()).collect()
}

fn conv(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let w = ctx.require_const(1, "the convolution weights")?;
    let rank = ctx.rank(x);
    if rank < 3 || w.rank() != rank {
        return Err(ConvertError::new(format!(
            "input of rank {rank} and weights of rank {} do not make a convolution",
            w.rank()
        )));
    }
    let k = rank - 2;
    let mut win = window(ctx, k, Some(w.shape()[2..].to_vec()))?;
    if win.kernel != w.shape()[2..] {
        return Err(ConvertError::new("kernel_shape disagrees with the weights"));
    }
    win.resolve_auto_pad(spatial(ctx, x))?;
    let groups = usize::try_from(ctx.attr_int("group", 1)?)
        .ok()
        .filter(|&g| g > 0)
        .ok_or_else(|| ConvertError::new("group must be positive"))?;
    let bias = match ctx.opt_input(2)? {
        Some(_) => Some(ctx.require_const(2, "the convolution bias")?),
        None => None,
    };
    let kernel = ctx.constant_weights(w);
    let bias = bias.map(|b| ctx.constant_weights(b));
    let out_channels = ctx.net().weights(kernel).shape()[0];
    let y = ctx.add(
        LayerKind::Convolution(ConvParams {
            out_channels,
            kernel_size: win.kernel,
            stride: win.strides,
            pre_padding: win.pre,
            post_padding: win.post,
            dilation: win.dilations,
            groups,
            kernel,
            bias,
            activation: None,
        }),
        vec![x],
    )?;
    ctx.set_output(0, y)
}

fn conv_transpose(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let w = ctx.require_const(1, "the transposed convolution weights")?;
    let rank = ctx.rank(x);
    if rank < 3 || w.rank() != rank {
        return Err(ConvertError::new(format!(
            "input of rank {rank} and weights of rank {} do not make a transposed convolution",
            w.rank()
        )));
    }
    let k = rank - 2;
    let mut win = window(ctx, k, Some(w.shape()[2..].to_vec()))?;
    let groups = usize::try_from(ctx.attr_int("group", 1)?)
        .ok()
        .filter(|&g| g > 0)
        .ok_or_else(|| ConvertError::new("group must be positive"))?;
    let out_pad = ctx.attr_ints("output_padding")?.unwrap_or(vec![0; k]);
    if out_pad.len() != k || out_pad.iter().any(|&p| p < 0) {
        return Err(ConvertError::new(
            "output_padding must have one non-negative value per spatial dim",
        ));
    }
    let out_shape = ctx.attr_ints("output_shape")?;
    let same = matches!(win.auto_pad.as_str(), "SAME_UPPER" | "SAME_LOWER");
    if out_shape.is_some() || same {
        let dims = spatial(ctx, x).ok_or_else(|| {
            ConvertError::new(
                "output_shape and auto_pad need fixed spatial input dims; give them with --shape",
            )
        })?;
        let target: Vec<i64> = match out_shape {
            Some(s) if s.len() >= k => s[s.len() - k..].to_vec(),
            Some(_) => return Err(ConvertError::new("output_shape has too few dims")),
            None => dims
                .iter()
                .zip(&win.strides)
                .map(|(&d, &s)| (d * s) as i64)
                .collect(),
        };
        for i in 0..k {
            let eff = (win.dilations[i] * (win.kernel[i] - 1) + 1) as i64;
            let total = win.strides[i] as i64 * (dims[i] as i64 - 1) + out_pad[i] + eff - target[i];
            // Floor division, as the ONNX reference: a negative total grows the output.
            let half = total.div_euclid(2);
            let (a, b) = if win.auto_pad == "SAME_UPPER" {
                (half, total - half)
            } else {
                (total - half, half)
            };
            win.pre[i] = a;
            win.post[i] = b;
        }
    } else if win.auto_pad == "VALID" {
        win.pre.iter_mut().for_each(|p| *p = 0);
        win.post.iter_mut().for_each(|p| *p = 0);
    }
    // Output padding adds rows at the end: a negative post-padding, as TensorRT expresses it.
    for (post, pad) in win.post.iter_mut().zip(&out_pad) {
        *post -= pad;
    }
    let bias = match ctx.opt_input(2)? {
        Some(_) => Some(ctx.require_const(2, "the transposed convolution bias")?),
        None => None,
    };
    let out_channels = w.shape()[1] * groups;
    let kernel = ctx.constant_weights(w);
    let bias = bias.map(|b| ctx.constant_weights(b));
    let y = ctx.add(
        LayerKind::Deconvolution(ConvParams {
            out_channels,
            kernel_size: win.kernel,
            stride: win.strides,
            pre_padding: win.pre,
            post_padding: win.post,
            dilation: win.dilations,
            groups,
            kernel,
            bias,
            activation: None,
        }),
        vec![x],
    )?;
    ctx.set_output(0, y)
}
