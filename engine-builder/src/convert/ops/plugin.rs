//! Ops that become Plugin layers: NonMaxSuppression, RoiAlign and
//! GridSample (jetrt's built-in plugins), and any node of a custom
//! (non-default) ONNX domain, which maps to the registered plugin of the
//! same name: a built-in, or one from a library loaded with `--plugin`.

use super::Add;
use crate::convert::{ConvertError, NodeCtx};
use crate::onnx::proto::attribute_proto::AttributeType;
use jetrt_engine::ir::{
    FieldValue, LayerKind, PluginDim, PluginField, PluginOutput, PluginParams, TensorRef,
};
use jetrt_engine::plugin::{registry, InferredDim, InputDesc, PluginEntry, PluginInstance};
use std::sync::Arc;

type R = Result<(), ConvertError>;

pub fn register(add: &mut Add<'_>) {
    add("NonMaxSuppression", 10, non_max_suppression);
    add("RoiAlign", 10, roi_align);
    add("GridSample", 16, grid_sample);
}

fn field(name: &str, value: FieldValue) -> PluginField {
    PluginField {
        name: name.to_string(),
        value,
    }
}

/// The registered plugin `name`, which for the ops above is a built-in.
fn plugin(name: &str) -> Result<Arc<PluginEntry>, ConvertError> {
    registry::lookup_name(name).ok_or_else(|| {
        ConvertError::new(format!(
            "no plugin named '{name}' is registered (this build of jetrt lacks its built-in plugins?)"
        ))
    })
}

/// Adds a Plugin layer: creates the plugin from `fields`, records its
/// serialized parameters and output types, and returns its outputs.
pub fn add_plugin_layer(
    ctx: &mut NodeCtx<'_>,
    entry: Arc<PluginEntry>,
    fields: Vec<PluginField>,
    inputs: Vec<TensorRef>,
) -> Result<Vec<TensorRef>, ConvertError> {
    let instance = PluginInstance::create(entry.clone(), &fields)?;
    let descs: Vec<InputDesc> = inputs
        .iter()
        .map(|&t| {
            let info = ctx.info(t);
            InputDesc {
                dtype: info.dtype,
                dims: info.shape.iter().map(|d| d.known()).collect(),
            }
        })
        .collect();
    let inferred = instance.infer(&descs)?;
    let outputs: Vec<PluginOutput> = inferred
        .iter()
        .map(|o| PluginOutput {
            dtype: o.dtype,
            dims: o
                .dims
                .iter()
                .zip(&o.same_as)
                .map(|(d, same)| match (same, d) {
                    (Some((input, axis)), _) => PluginDim::SameAs {
                        input: *input,
                        axis: *axis,
                    },
                    (None, InferredDim::Known(n)) => PluginDim::Known(*n),
                    (None, InferredDim::Unknown) => PluginDim::Unknown,
                    (None, InferredDim::DataDependent { bound }) => {
                        PluginDim::DataDependent { bound: *bound }
                    }
                })
                .collect(),
        })
        .collect();
    let n = outputs.len();
    let params = PluginParams {
        name: entry.name.clone(),
        version: entry.version.clone(),
        fields,
        data: instance.serialize()?,
        library: entry.source.library_name(),
        outputs,
    };
    let first = ctx.add(LayerKind::Plugin(params), inputs)?;
    let TensorRef::Layer(layer, _) = first else {
        unreachable!("NodeCtx::add returns a layer output")
    };
    Ok((0..n).map(|k| TensorRef::Layer(layer, k)).collect())
}

/// Binds the node's outputs to the plugin layer's, which must cover them.
fn bind_outputs(ctx: &mut NodeCtx<'_>, outs: &[TensorRef]) -> R {
    for i in 0..ctx.node.output.len() {
        if !ctx.wants_output(i) {
            continue;
        }
        let t = outs.get(i).copied().ok_or_else(|| {
            ConvertError::new(format!(
                "the node has output {i}, but the plugin produces {} output(s)",
                outs.len()
            ))
        })?;
        ctx.set_output(i, t)?;
    }
    Ok(())
}

/// A node of a custom domain: its attributes become the plugin's fields and
/// its inputs the layer's.
pub fn custom_op(ctx: &mut NodeCtx<'_>) -> R {
    let op = ctx.node.op_type.clone();
    let entry = registry::lookup_name(&op).ok_or_else(|| {
        ConvertError::new(format!(
            "no plugin named '{op}' is loaded; pass the library that provides it with --plugin"
        ))
    })?;
    let mut fields = Vec::with_capacity(ctx.node.attribute.len());
    for a in &ctx.node.attribute {
        let t = AttributeType::try_from(a.r#type).unwrap_or(AttributeType::Undefined);
        let value = match t {
            AttributeType::Int => FieldValue::Int(a.i),
            AttributeType::Float => FieldValue::Float(a.f as f64),
            AttributeType::String => FieldValue::String(
                String::from_utf8(a.s.clone()).map_err(|_| {
                    ConvertError::new(format!("attribute '{}' is not UTF-8 text", a.name))
                })?,
            ),
            AttributeType::Ints => FieldValue::Ints(a.ints.clone()),
            AttributeType::Floats => {
                FieldValue::Floats(a.floats.iter().map(|&f| f as f64).collect())
            }
            other => {
                return Err(ConvertError::new(format!(
                    "attribute '{}' is of type {other:?}; plugins take ints, floats, strings and lists of ints or floats",
                    a.name
                )))
            }
        };
        fields.push(field(&a.name, value));
    }
    // Inputs are positional: an omitted one may only be at the end.
    let mut inputs = Vec::with_capacity(ctx.num_inputs());
    let mut omitted = false;
    for i in 0..ctx.num_inputs() {
        match ctx.opt_input(i)? {
            Some(t) if !omitted => inputs.push(t),
            Some(_) => {
                return Err(ConvertError::new(format!(
                    "input {i} follows an omitted input; a plugin takes its inputs in order"
                )))
            }
            None => omitted = true,
        }
    }
    let outs = add_plugin_layer(ctx, entry, fields, inputs)?;
    bind_outputs(ctx, &outs)
}

/// A scalar input, which must be known at build time, as a plugin field.
fn scalar_field(
    ctx: &mut NodeCtx<'_>,
    i: usize,
    name: &str,
    int: bool,
) -> Result<Option<PluginField>, ConvertError> {
    let Some(t) = ctx.opt_const(i, name)? else {
        return Ok(None);
    };
    // An empty tensor is an omitted input (the ONNX reference treats it so).
    if t.is_empty() {
        return Ok(None);
    }
    if t.len() != 1 {
        return Err(ConvertError::new(format!(
            "{name} (input {i}) must hold one value, it holds {}",
            t.len()
        )));
    }
    let value = if int {
        FieldValue::Int(t.to_i64_vec()[0])
    } else {
        FieldValue::Float(t.to_f64_vec()[0])
    };
    Ok(Some(field(name, value)))
}

fn non_max_suppression(ctx: &mut NodeCtx<'_>) -> R {
    let boxes = ctx.input(0)?;
    let scores = ctx.input(1)?;
    let mut fields = vec![field(
        "center_point_box",
        FieldValue::Int(ctx.attr_int("center_point_box", 0)?),
    )];
    // TensorRT's NMS layers also take these as build-time parameters.
    for (i, name, int) in [
        (2, "max_output_boxes_per_class", true),
        (3, "iou_threshold", false),
        (4, "score_threshold", false),
    ] {
        fields.extend(scalar_field(ctx, i, name, int)?);
    }
    let outs = add_plugin_layer(
        ctx,
        plugin("NonMaxSuppression")?,
        fields,
        vec![boxes, scores],
    )?;
    bind_outputs(ctx, &outs)
}

fn roi_align(ctx: &mut NodeCtx<'_>) -> R {
    let inputs = vec![ctx.input(0)?, ctx.input(1)?, ctx.input(2)?];
    // Opset 16 added the attribute, defaulting to half_pixel; before, the
    // op behaved as output_half_pixel.
    let default_ctm = if ctx.opset >= 16 {
        "half_pixel"
    } else {
        "output_half_pixel"
    };
    let fields = vec![
        field(
            "mode",
            FieldValue::String(ctx.attr_string("mode")?.unwrap_or_else(|| "avg".into())),
        ),
        field(
            "output_height",
            FieldValue::Int(ctx.attr_int("output_height", 1)?),
        ),
        field(
            "output_width",
            FieldValue::Int(ctx.attr_int("output_width", 1)?),
        ),
        field(
            "sampling_ratio",
            FieldValue::Int(ctx.attr_int("sampling_ratio", 0)?),
        ),
        field(
            "spatial_scale",
            FieldValue::Float(ctx.attr_float("spatial_scale", 1.0)? as f64),
        ),
        field(
            "coordinate_transformation_mode",
            FieldValue::String(
                ctx.attr_string("coordinate_transformation_mode")?
                    .unwrap_or_else(|| default_ctm.into()),
            ),
        ),
    ];
    let outs = add_plugin_layer(ctx, plugin("RoiAlign")?, fields, inputs)?;
    bind_outputs(ctx, &outs)
}

fn grid_sample(ctx: &mut NodeCtx<'_>) -> R {
    let x = ctx.input(0)?;
    let grid = ctx.input(1)?;
    if ctx.rank(x) != 4 {
        return Err(ConvertError::new(format!(
            "only 2-D GridSample (input of rank 4) is supported; this one has rank {}",
            ctx.rank(x)
        )));
    }
    let fields = vec![
        field(
            "mode",
            FieldValue::String(ctx.attr_string("mode")?.unwrap_or_else(|| "linear".into())),
        ),
        field(
            "padding_mode",
            FieldValue::String(
                ctx.attr_string("padding_mode")?
                    .unwrap_or_else(|| "zeros".into()),
            ),
        ),
        field(
            "align_corners",
            FieldValue::Int(ctx.attr_int("align_corners", 0)?),
        ),
    ];
    let outs = add_plugin_layer(ctx, plugin("GridSample")?, fields, vec![x, grid])?;
    bind_outputs(ctx, &outs)
}
