//! Requests to replies. Every reply carries the request's `id` when it had
//! one; every failure is an `error` message with a code and a sentence.

use crate::frame::PixelFormat;
use crate::hub::Outbox;
use crate::pipeline::{InferInput, InferJob};
use crate::protocol::{encode, ImageDesc, Request, TensorDesc, PROTOCOL_VERSION};
use crate::runtime::Shared;
use crate::sources::push::frame_from_client;
use jetrt_engine::{DataType, Tensor};
use serde_json::{json, Value};
use std::sync::Arc;

pub fn error(id: Option<&Value>, code: &str, message: impl Into<String>) -> Value {
    json!({"type": "error", "id": id, "code": code, "message": message.into()})
}

fn with_id(mut v: Value, id: Option<&Value>) -> Value {
    if let Some(id) = id {
        v["id"] = id.clone();
    }
    v
}

/// `id` is the request's `id` as sent, `null` included (which the typed
/// request cannot tell from an absent one).
pub fn handle(
    req: Request,
    id: Option<&Value>,
    binary: Option<Vec<u8>>,
    client: u64,
    outbox: &Outbox,
    shared: &Arc<Shared>,
) {
    let reply = match req {
        Request::Hello {
            client: name,
            protocol: Some(p),
            ..
        } if p != PROTOCOL_VERSION => error(
            id,
            "bad_request",
            format!(
                "the client speaks protocol {p}; this daemon ({} {}) speaks protocol {PROTOCOL_VERSION}{}",
                "jetrtd",
                crate::VERSION,
                name.map(|n| format!(" (client '{n}')")).unwrap_or_default()
            ),
        ),
        Request::Hello { client: name, .. } => {
            if let Some(n) = name {
                log::debug!("client {client} is '{n}'");
            }
            json!({"type": "hello", "daemon": "jetrtd", "version": crate::VERSION,
                   "protocol": PROTOCOL_VERSION, "client": client,
                   "max_message_bytes": shared.limits.max_message_bytes})
        }
        Request::List { .. } => shared.list(),
        Request::Stats { .. } => shared.stats(outbox),
        Request::Subscribe { pipeline, .. } => {
            if shared.has_pipeline(&pipeline) {
                shared.hub.subscribe(&pipeline, outbox);
                json!({"type": "subscribed", "pipeline": pipeline})
            } else {
                unknown_pipeline(id, &pipeline, shared)
            }
        }
        Request::Unsubscribe { pipeline, .. } if !shared.has_pipeline(&pipeline) => {
            unknown_pipeline(id, &pipeline, shared)
        }
        Request::Unsubscribe { pipeline, .. } => {
            let was = shared.hub.unsubscribe(&pipeline, client);
            json!({"type": "unsubscribed", "pipeline": pipeline, "was_subscribed": was})
        }
        Request::Infer {
            pipeline,
            image,
            tensor,
            ..
        } => match infer(&pipeline, image, tensor, binary, id, outbox, shared) {
            // The pipeline answers into the outbox itself.
            Ok(()) => return,
            Err(e) => e,
        },
        Request::Push { source, image, .. } => push(&source, &image, binary, shared, id),
    };
    outbox.reply(Arc::new(encode(&with_id(reply, id), None)));
}

fn unknown_pipeline(id: Option<&Value>, name: &str, shared: &Shared) -> Value {
    error(
        id,
        "unknown_pipeline",
        format!(
            "no pipeline named '{name}' (pipelines: {})",
            shared.pipeline_names().join(", ")
        ),
    )
}

fn image_frame(desc: &ImageDesc, data: Vec<u8>) -> Result<crate::frame::Frame, String> {
    frame_from_client(desc.width, desc.height, desc.format, data)
}

fn tensor(desc: &TensorDesc, data: &[u8]) -> Result<Tensor, String> {
    let dtype = match desc.dtype.as_str() {
        "float32" => DataType::F32,
        other => {
            return Err(format!(
                "tensor dtype '{other}' is not supported; send float32"
            ))
        }
    };
    let n = desc.shape.iter().try_fold(1usize, |a, &d| a.checked_mul(d));
    match n.and_then(|n| n.checked_mul(4)) {
        Some(bytes) if bytes == data.len() => {}
        _ => {
            return Err(format!(
                "a float32 tensor of shape {:?} does not match the {} bytes sent",
                desc.shape,
                data.len()
            ))
        }
    }
    Tensor::from_le_bytes(dtype, &desc.shape, data).map_err(|e| e.to_string())
}

fn infer(
    pipeline: &str,
    image: Option<ImageDesc>,
    tensor_desc: Option<TensorDesc>,
    binary: Option<Vec<u8>>,
    id: Option<&Value>,
    outbox: &Outbox,
    shared: &Shared,
) -> Result<(), Value> {
    let Some(handle) = shared.pipeline(pipeline) else {
        return Err(if shared.has_pipeline(pipeline) {
            error(
                id,
                "pipeline_failed",
                format!(
                    "pipeline '{pipeline}' is not running: {}",
                    shared.failure(pipeline).unwrap_or_default()
                ),
            )
        } else {
            unknown_pipeline(id, pipeline, shared)
        });
    };
    let data = binary.unwrap_or_default();
    let input = match (image, tensor_desc) {
        (Some(d), None) => {
            InferInput::Image(image_frame(&d, data).map_err(|e| error(id, "bad_request", e))?)
        }
        (None, Some(d)) => {
            // A shape the engine does not take is the request's fault.
            jetrt_engine::engine::check_dims(&handle.tensor_input, std::slice::from_ref(&d.shape))
                .map_err(|e| error(id, "bad_request", e.to_string()))?;
            InferInput::Tensor(tensor(&d, &data).map_err(|e| error(id, "bad_request", e))?)
        }
        _ => {
            return Err(error(
                id,
                "bad_request",
                "infer needs exactly one of \"image\" or \"tensor\", followed by a binary frame",
            ))
        }
    };
    handle
        .infer(InferJob {
            id: id.cloned(),
            input,
            reply: outbox.clone(),
        })
        .map_err(|why| {
            error(
                id,
                "busy",
                format!("pipeline '{pipeline}' cannot take the request now ({why}); retry"),
            )
        })
}

fn push(
    source: &str,
    image: &ImageDesc,
    binary: Option<Vec<u8>>,
    shared: &Shared,
    id: Option<&Value>,
) -> Value {
    let Some(src) = shared.source(source) else {
        return error(id, "unknown_source", format!("no source named '{source}'"));
    };
    if !src.is_push() {
        return error(id, "not_a_push_source", format!("source '{source}' is a {} source; only kind = \"push\" sources take frames from clients", src.config.kind.name()));
    }
    if image.format == PixelFormat::Mjpeg && binary.as_ref().is_none_or(Vec::is_empty) {
        return error(id, "bad_request", "the JPEG is empty");
    }
    match image_frame(image, binary.unwrap_or_default()) {
        Ok(f) => {
            let seq = src.push(f);
            json!({"type": "pushed", "source": source, "seq": seq})
        }
        Err(e) => error(id, "bad_request", e),
    }
}
