//! Resize (opset 10+) and Upsample (opsets 7-9) -> Resize.

use super::Add;
use crate::convert::{ConvertError, NodeCtx};
use jetrt_engine::ir::{
    CoordinateTransform as Ct, LayerKind, NearestRounding, ResizeMode, ResizeOutput, ResizeParams,
    ResizeSelector,
};
use jetrt_engine::shape::{known_dims, Dim};
use jetrt_engine::DataType;

type R = Result<(), ConvertError>;

pub fn register(add: &mut Add<'_>) {
    add("Resize", 10, resize);
    add("Upsample", 7, upsample);
}

fn params(
    output: ResizeOutput,
    mode: ResizeMode,
    ct: Ct,
    rounding: NearestRounding,
) -> ResizeParams {
    ResizeParams {
        output,
        mode,
        coordinate_transform: ct,
        selector: ResizeSelector::Formula,
        nearest_rounding: rounding,
        cubic_coeff: -0.75,
        exclude_outside: false,
        coordinate_scales: None,
        roi: None,
        extrapolation_value: 0.0,
    }
}

fn mode(s: &str) -> Result<ResizeMode, ConvertError> {
    match s {
        "nearest" => Ok(ResizeMode::Nearest),
        "linear" | "bilinear" => Ok(ResizeMode::Linear),
        "cubic" => Ok(ResizeMode::Cubic),
        other => Err(ConvertError::new(format!("unknown resize mode '{other}'"))),
    }
}

/// Scales of every dim, from scales given for `axes` (all dims when `None`).
fn full_scales(
    s: &[f32],
    axes: &Option<Vec<usize>>,
    rank: usize,
) -> Result<Vec<f32>, ConvertError> {
    match axes {
        None if s.len() == rank => Ok(s.to_vec()),
        Some(ax) if s.len() == ax.len() => {
            let mut v = vec![1.0; rank];
            for (&a, &x) in ax.iter().zip(s) {
                v[a] = x;
            }
            Ok(v)
        }
        _ => Err(ConvertError::new(format!(
            "{} scales for a rank-{rank} input",
            s.len()
        ))),
    }
}

fn resize(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let rank = ctx.rank(x);
    let m = mode(&ctx.attr_string("mode")?.unwrap_or_else(|| "nearest".into()))?;
    if ctx.opset < 11 {
        // Resize-10: inputs (X, scales), asymmetric coordinates, floor for nearest.
        let s = ctx.require_const(1, "the scales")?.to_f64_vec();
        let s: Vec<f32> = s.into_iter().map(|v| v as f32).collect();
        let p = params(
            ResizeOutput::Scales(full_scales(&s, &None, rank)?),
            m,
            Ct::Asymmetric,
            NearestRounding::Floor,
        );
        let y = ctx.add(LayerKind::Resize(p), vec![x])?;
        return ctx.set_output(0, y);
    }
    if ctx.attr_int("antialias", 0)? != 0 {
        return Err(ConvertError::new("antialias=1 is not supported"));
    }
    // Scales, sizes and roi follow the order the axes are given in.
    let axes = match ctx.attr_ints("axes")? {
        Some(a) => Some(
            a.into_iter()
                .map(|a| ctx.axis(a, rank))
                .collect::<Result<Vec<_>, _>>()?,
        ),
        None => None,
    };
    let ct_name = ctx
        .attr_string("coordinate_transformation_mode")?
        .unwrap_or_else(|| "half_pixel".into());
    let (ct, selector) = match ct_name.as_str() {
        "half_pixel" => (Ct::HalfPixel, ResizeSelector::Formula),
        "pytorch_half_pixel" => (Ct::HalfPixel, ResizeSelector::Upper),
        "align_corners" => (Ct::AlignCorners, ResizeSelector::Formula),
        "asymmetric" => (Ct::Asymmetric, ResizeSelector::Formula),
        "half_pixel_symmetric" => (Ct::HalfPixelSymmetric, ResizeSelector::Formula),
        "tf_half_pixel_for_nn" => (Ct::TfHalfPixelForNn, ResizeSelector::Formula),
        "tf_crop_and_resize" => (Ct::TfCropAndResize, ResizeSelector::Formula),
        other => {
            return Err(ConvertError::new(format!(
                "unknown coordinate_transformation_mode '{other}'"
            )))
        }
    };
    let rounding = match ctx
        .attr_string("nearest_mode")?
        .as_deref()
        .unwrap_or("round_prefer_floor")
    {
        "round_prefer_floor" => NearestRounding::HalfDown,
        "round_prefer_ceil" => NearestRounding::HalfUp,
        "floor" => NearestRounding::Floor,
        "ceil" => NearestRounding::Ceil,
        other => return Err(ConvertError::new(format!("unknown nearest_mode '{other}'"))),
    };

    let scales = ctx.opt_input(2)?;
    let sizes = ctx.opt_input(3)?;
    // An empty scales tensor is a placeholder (opsets 11-12 must pass one).
    let scales = match scales {
        Some(t) if ctx.shape(t).first() == Some(&Dim::Known(0)) => None,
        s => s,
    };
    let mut inputs = vec![x];
    let mut coordinate_scales = None;
    let output = match (scales, sizes) {
        (Some(_), None) => {
            let s: Vec<f32> = ctx
                .require_const(2, "the scales")?
                .to_f64_vec()
                .into_iter()
                .map(|v| v as f32)
                .collect();
            if s.iter().any(|&v| v.is_nan() || v <= 0.0) {
                return Err(ConvertError::new("scales must be positive"));
            }
            ResizeOutput::Scales(full_scales(&s, &axes, rank)?)
        }
        (None, Some(sz)) => {
            let in_dims = ctx.shape(x);
            match ctx.const_value(sz)? {
                Some(v) => {
                    let v = v.to_i64_vec();
                    let ax: Vec<usize> = axes.clone().unwrap_or_else(|| (0..rank).collect());
                    if v.len() != ax.len() || v.iter().any(|&d| d < 0) {
                        return Err(ConvertError::new(format!(
                            "{} sizes for {} axes",
                            v.len(),
                            ax.len()
                        )));
                    }
                    let mut sizes: Vec<f64> = v.iter().map(|&d| d as f64).collect();
                    let policy = ctx
                        .attr_string("keep_aspect_ratio_policy")?
                        .unwrap_or_else(|| "stretch".into());
                    if policy != "stretch" {
                        let known: Option<Vec<usize>> =
                            ax.iter().map(|&a| in_dims[a].known()).collect();
                        let known = known.ok_or_else(|| {
                            ConvertError::new("keep_aspect_ratio_policy needs fixed input dims")
                        })?;
                        let ratios = sizes.iter().zip(&known).map(|(s, &i)| s / i as f64);
                        let scale = match policy.as_str() {
                            "not_larger" => ratios.fold(f64::INFINITY, f64::min),
                            "not_smaller" => ratios.fold(0.0, f64::max),
                            other => {
                                return Err(ConvertError::new(format!(
                                    "unknown keep_aspect_ratio_policy '{other}'"
                                )))
                            }
                        };
                        sizes = known.iter().map(|&i| (scale * i as f64).round()).collect();
                        let mut cs = vec![1.0f32; rank];
                        for &a in &ax {
                            cs[a] = scale as f32;
                        }
                        coordinate_scales = Some(cs);
                    }
                    let mut dims = in_dims.clone();
                    for (&a, &s) in ax.iter().zip(&sizes) {
                        dims[a] = Dim::Known(s as usize);
                    }
                    match known_dims(&dims) {
                        Some(d) => ResizeOutput::Dims(d),
                        None => {
                            inputs.push(ctx.shape_tensor(x, &dims)?);
                            ResizeOutput::FromInput
                        }
                    }
                }
                None => {
                    let policy = ctx.attr_string("keep_aspect_ratio_policy")?;
                    if axes.is_some() || policy.is_some_and(|p| p != "stretch") {
                        return Err(
                            ctx.needs_const(3, "the sizes (with axes or an aspect ratio policy)")
                        );
                    }
                    inputs.push(ctx.cast(sz, DataType::I64)?);
                    ResizeOutput::FromInput
                }
            }
        }
        (Some(_), Some(_)) => {
            return Err(ConvertError::new(
                "scales and sizes are both given; give one",
            ))
        }
        (None, None) => return Err(ConvertError::new("neither scales nor sizes is given")),
    };
    let mut p = params(output, m, ct, rounding);
    p.coordinate_scales = coordinate_scales;
    p.selector = selector;
    p.cubic_coeff = ctx.attr_float("cubic_coeff_a", -0.75)?;
    p.exclude_outside = ctx.attr_int("exclude_outside", 0)? != 0;
    p.extrapolation_value = ctx.attr_float("extrapolation_value", 0.0)?;
    if ct == Ct::TfCropAndResize {
        let roi: Vec<f32> = ctx
            .require_const(1, "the roi")?
            .to_f64_vec()
            .into_iter()
            .map(|v| v as f32)
            .collect();
        let full = match &axes {
            None if roi.len() == 2 * rank => roi,
            Some(ax) if roi.len() == 2 * ax.len() => {
                let mut v: Vec<f32> = vec![0.0; rank].into_iter().chain(vec![1.0; rank]).collect();
                for (i, &a) in ax.iter().enumerate() {
                    v[a] = roi[i];
                    v[rank + a] = roi[ax.len() + i];
                }
                v
            }
            _ => {
                return Err(ConvertError::new(format!(
                    "roi has {} values for rank {rank}",
                    roi.len()
                )))
            }
        };
        p.roi = Some(full);
    }
    let y = ctx.add(LayerKind::Resize(p), inputs)?;
    ctx.set_output(0, y)
}

/// Upsample: nearest (floor) or linear with asymmetric coordinates.
fn upsample(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let rank = ctx.rank(x);
    let m = mode(&ctx.attr_string("mode")?.unwrap_or_else(|| "nearest".into()))?;
    let scales: Vec<f32> = if ctx.opset >= 9 {
        ctx.require_const(1, "the scales")?
            .to_f64_vec()
            .into_iter()
            .map(|v| v as f32)
            .collect()
    } else {
        ctx.attr_floats("scales")?
            .ok_or_else(|| ConvertError::new("scales attribute is missing"))?
    };
    let p = params(
        ResizeOutput::Scales(full_scales(&scales, &None, rank)?),
        m,
        Ct::Asymmetric,
        NearestRounding::Floor,
    );
    let y = ctx.add(LayerKind::Resize(p), vec![x])?;
    ctx.set_output(0, y)
}
