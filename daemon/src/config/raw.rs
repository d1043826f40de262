//! The configuration file as written: every table and key the TOML may
//! hold, nothing more (`deny_unknown_fields` everywhere, so a misspelt key
//! is an error, not a silently ignored setting). [`super::validate`] turns
//! this into the checked [`super::Config`].

use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    pub version: Spanned<i64>,
    #[serde(default)]
    pub daemon: RawDaemon,
    #[serde(default)]
    pub engines: BTreeMap<String, Spanned<RawEngine>>,
    #[serde(default)]
    pub sources: BTreeMap<String, Spanned<RawSource>>,
    #[serde(default)]
    pub pipelines: BTreeMap<String, Spanned<RawPipeline>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawDaemon {
    pub socket: Option<Spanned<PathBuf>>,
    /// Octal, as a string: `"0660"`.
    pub socket_mode: Option<Spanned<String>>,
    pub socket_group: Option<Spanned<String>>,
    pub state_dir: Option<Spanned<PathBuf>>,
    pub log_level: Option<Spanned<String>>,
    pub max_clients: Option<Spanned<i64>>,
    /// Messages a client's outbox holds before the oldest are dropped.
    pub client_queue: Option<Spanned<i64>>,
    /// The largest frame (JSON or binary) a client may send.
    pub max_message_bytes: Option<Spanned<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawEngine {
    /// A prebuilt engine file.
    pub engine: Option<Spanned<PathBuf>>,
    /// An ONNX model, built on first start and cached in the state dir.
    pub onnx: Option<Spanned<PathBuf>>,
    pub backend: Option<Spanned<String>>,
    /// Which GPU (an index among the machine's).
    pub device: Option<Spanned<i64>>,
    pub threads: Option<Spanned<i64>>,
    #[serde(default)]
    pub plugins: Vec<Spanned<PathBuf>>,
    // Build options, for `onnx` only (a prebuilt engine records its own).
    pub input_size: Option<Spanned<Vec<i64>>>,
    pub mean: Option<Spanned<Vec<f64>>>,
    pub std: Option<Spanned<Vec<f64>>>,
    pub color: Option<Spanned<String>>,
    pub labels: Option<Spanned<PathBuf>>,
    pub batch: Option<Spanned<String>>,
    /// `fp32` or `fp16` (GPU backends).
    pub precision: Option<Spanned<String>>,
    #[serde(default)]
    pub shapes: BTreeMap<String, Vec<i64>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSource {
    pub kind: Spanned<String>,
    /// Latest-frame queue depth per pipeline (1..=8).
    pub queue: Option<Spanned<i64>>,
    // synthetic, v4l2
    pub width: Option<Spanned<i64>>,
    pub height: Option<Spanned<i64>>,
    // synthetic, file, v4l2
    pub fps: Option<Spanned<f64>>,
    // file
    pub path: Option<Spanned<PathBuf>>,
    #[serde(rename = "loop")]
    pub looping: Option<Spanned<bool>>,
    // v4l2
    pub device: Option<Spanned<PathBuf>>,
    pub format: Option<Spanned<String>>,
    // gstreamer
    pub pipeline: Option<Spanned<String>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPipeline {
    pub source: Spanned<String>,
    pub engine: Spanned<String>,
    #[serde(default)]
    pub preprocess: Option<Spanned<RawPreprocess>>,
    pub postprocess: Option<Spanned<RawPostprocess>>,
    /// Results per second at most; frames in between are skipped.
    pub max_rate: Option<Spanned<f64>>,
    /// A pipeline with input that makes no progress for this long stops
    /// the systemd watchdog pings.
    pub stall_timeout: Option<Spanned<f64>>,
}

/// Overrides of the preprocessing an engine records.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawPreprocess {
    pub input_size: Option<Spanned<Vec<i64>>>,
    pub mean: Option<Spanned<Vec<f64>>>,
    pub std: Option<Spanned<Vec<f64>>>,
    pub color: Option<Spanned<String>>,
}

/// `kind` names a postprocessor in the registry; the other keys are its
/// parameters, which that postprocessor checks.
#[derive(Debug, Deserialize)]
pub struct RawPostprocess {
    pub kind: Spanned<String>,
    #[serde(flatten)]
    pub params: toml::Table,
}
