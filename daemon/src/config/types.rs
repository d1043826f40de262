//! The validated configuration. Every item is comparable, so a reload can
//! tell which pipelines changed.

use jetrt_engine::engine_file::ColorOrder;
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

#[derive(Clone, Debug)]
pub struct Config {
    /// The file it was read from.
    pub path: PathBuf,
    pub daemon: DaemonConfig,
    pub engines: BTreeMap<String, EngineConfig>,
    pub sources: BTreeMap<String, SourceConfig>,
    pub pipelines: BTreeMap<String, PipelineConfig>,
    /// Line of each dotted key, for warnings found after validation.
    pub lines: BTreeMap<String, usize>,
}

impl Config {
    pub fn line_of(&self, key: &str) -> Option<usize> {
        self.lines.get(key).copied()
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct DaemonConfig {
    pub socket: PathBuf,
    pub socket_mode: u32,
    pub socket_group: Option<String>,
    pub state_dir: PathBuf,
    pub log_level: log::LevelFilter,
    pub max_clients: usize,
    pub client_queue: usize,
    pub max_message_bytes: usize,
}

impl Default for DaemonConfig {
    fn default() -> Self {
        DaemonConfig {
            socket: PathBuf::from("/run/jetrtd/jetrtd.sock"),
            socket_mode: 0o660,
            socket_group: None,
            state_dir: PathBuf::from("/var/lib/jetrtd"),
            log_level: log::LevelFilter::Info,
            max_clients: 32,
            client_queue: 64,
            max_message_bytes: 16 << 20,
        }
    }
}

/// Where an engine comes from.
#[derive(Clone, Debug, PartialEq)]
pub enum EngineOrigin {
    /// A prebuilt `.engine` file.
    Prebuilt(PathBuf),
    /// An ONNX model built on first start and cached in the state dir.
    Onnx {
        model: PathBuf,
        build: BuildSettings,
    },
}

/// Build options for an ONNX engine; all of them are part of the cache key.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct BuildSettings {
    pub input_size: Option<[usize; 2]>,
    pub mean: Option<[f32; 3]>,
    pub std: Option<[f32; 3]>,
    pub color: Option<ColorOrder>,
    pub labels: Option<PathBuf>,
    pub batch: Option<String>,
    /// Half precision (GPU backends); `false` is fp32.
    pub fp16: bool,
    pub shapes: BTreeMap<String, Vec<usize>>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct EngineConfig {
    pub origin: EngineOrigin,
    /// `None` is `auto`: the best backend compiled in and present.
    pub backend: Option<String>,
    /// Which GPU the engine runs on (GPU backends).
    pub device: usize,
    /// Worker threads of each context (cpu backend); `None`: every core.
    pub threads: Option<usize>,
    pub plugins: Vec<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CameraFormat {
    Yuyv,
    Mjpeg,
}

#[derive(Clone, Debug, PartialEq)]
pub enum SourceKind {
    /// A moving, deterministic test pattern, in `format` (RGB by default;
    /// frames of another format repeat every few frames, converted once).
    Synthetic {
        width: u32,
        height: u32,
        fps: f64,
        format: crate::frame::PixelFormat,
    },
    /// An image folder (sorted by name), one image, or a y4m video.
    File {
        path: PathBuf,
        fps: f64,
        looping: bool,
    },
    /// Frames pushed by clients over the socket.
    Push,
    V4l2 {
        device: PathBuf,
        width: u32,
        height: u32,
        fps: f64,
        format: CameraFormat,
    },
    Gstreamer {
        pipeline: String,
    },
}

impl SourceKind {
    pub fn name(&self) -> &'static str {
        match self {
            SourceKind::Synthetic { .. } => "synthetic",
            SourceKind::File { .. } => "file",
            SourceKind::Push => "push",
            SourceKind::V4l2 { .. } => "v4l2",
            SourceKind::Gstreamer { .. } => "gstreamer",
        }
    }
}

#[derive(Clone, Debug, PartialEq)]
pub struct SourceConfig {
    pub kind: SourceKind,
    /// Depth of each pipeline's latest-frame queue.
    pub queue: usize,
}

/// Preprocessing that overrides what the engine records.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PreprocessOverride {
    pub input_size: Option<[usize; 2]>,
    pub mean: Option<[f32; 3]>,
    pub std: Option<[f32; 3]>,
    pub color: Option<ColorOrder>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PostprocessConfig {
    pub kind: String,
    pub params: toml::Table,
}

#[derive(Clone, Debug, PartialEq)]
pub struct PipelineConfig {
    pub source: String,
    pub engine: String,
    pub preprocess: PreprocessOverride,
    pub postprocess: PostprocessConfig,
    pub max_rate: Option<f64>,
    pub stall_timeout: Duration,
}
