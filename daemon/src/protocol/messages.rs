//! Requests a client sends. Replies are built as JSON by the server; their
//! fields are listed in docs/protocol.md.

use crate::frame::PixelFormat;
use serde::{Deserialize, Serialize};

/// An image that follows as a binary frame.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ImageDesc {
    pub format: PixelFormat,
    #[serde(default)]
    pub width: u32,
    #[serde(default)]
    pub height: u32,
}

/// A tensor that follows as a binary frame (little-endian elements).
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct TensorDesc {
    pub dtype: String,
    pub shape: Vec<usize>,
}

#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(tag = "op", rename_all = "lowercase", deny_unknown_fields)]
pub enum Request {
    Hello {
        #[serde(default)]
        id: Option<serde_json::Value>,
        #[serde(default)]
        client: Option<String>,
        #[serde(default)]
        protocol: Option<u32>,
    },
    List {
        #[serde(default)]
        id: Option<serde_json::Value>,
    },
    Subscribe {
        #[serde(default)]
        id: Option<serde_json::Value>,
        pipeline: String,
    },
    Unsubscribe {
        #[serde(default)]
        id: Option<serde_json::Value>,
        pipeline: String,
    },
    Infer {
        #[serde(default)]
        id: Option<serde_json::Value>,
        pipeline: String,
        #[serde(default)]
        image: Option<ImageDesc>,
        #[serde(default)]
        tensor: Option<TensorDesc>,
    },
    Push {
        #[serde(default)]
        id: Option<serde_json::Value>,
        source: String,
        image: ImageDesc,
    },
    Stats {
        #[serde(default)]
        id: Option<serde_json::Value>,
    },
}

impl Request {
    pub fn id(&self) -> Option<&serde_json::Value> {
        match self {
            Request::Hello { id, .. }
            | Request::List { id }
            | Request::Subscribe { id, .. }
            | Request::Unsubscribe { id, .. }
            | Request::Infer { id, .. }
            | Request::Push { id, .. }
            | Request::Stats { id } => id.as_ref(),
        }
    }

    /// Whether a binary frame follows this request.
    pub fn has_binary(&self) -> bool {
        matches!(self, Request::Infer { .. } | Request::Push { .. })
    }
}
