//! Raw config -> [`Config`]: values checked, cross-references resolved,
//! relative paths taken from the config file's folder. Every problem is
//! collected, so a user fixes them all in one pass.

use super::error::{ConfigError, Problem};
use super::raw::*;
use super::types::*;
use super::CONFIG_VERSION;
use crate::postprocess::Registry;
use jetrt_engine::engine_file::ColorOrder;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Duration;
use toml::Spanned;

/// Reads and validates a config file.
pub fn load(path: &Path, registry: &Registry) -> Result<Config, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.to_path_buf(),
        error,
    })?;
    parse(&text, path, registry)
}

/// Validates config text; `path` names it in errors and anchors relative paths.
pub fn parse(text: &str, path: &Path, registry: &Registry) -> Result<Config, ConfigError> {
    let invalid = |problems| ConfigError::Invalid {
        path: path.to_path_buf(),
        problems,
    };
    let (raw, text, mut problems) = read_raw(text);
    let Some(raw) = raw else {
        return Err(invalid(problems));
    };
    let text = text.as_str();
    let base = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let mut v = Validator {
        text,
        base,
        problems: vec![],
        lines: BTreeMap::new(),
    };
    let config = v.config(raw, path, registry);
    problems.append(&mut v.problems);
    if problems.is_empty() {
        Ok(config)
    } else {
        problems.sort_by_key(|p| p.line.unwrap_or(0));
        Err(invalid(problems))
    }
}

/// At most this many keys are refused before the rest goes unreported.
const MAX_REFUSED: usize = 100;

/// The file as [`RawConfig`], with every key it refuses (unknown, or of
/// the wrong type) reported rather than only the first: a refused key's
/// line is commented out and the text read again, so that the checks
/// after it (unknown engines and the like) still run on the rest. Returns
/// the text read in the end (same lines) and the problems; no config when
/// the TOML does not parse or reading cannot go on (a refused table
/// header, a value over several lines, a required key refused).
fn read_raw(text: &str) -> (Option<RawConfig>, String, Vec<Problem>) {
    let mut problems: Vec<Problem> = vec![];
    if let Err(e) = text.parse::<toml::Table>() {
        return (None, text.into(), vec![toml_problem(text, &e)]);
    }
    let mut cur = text.to_string();
    let mut refused: Vec<String> = vec![];
    while problems.len() < MAX_REFUSED {
        let e = match toml::from_str::<RawConfig>(&cur) {
            Ok(raw) => return (Some(raw), cur, problems),
            Err(e) => e,
        };
        let p = toml_problem(&cur, &e);
        // A required key that was itself refused: already reported.
        let consequence = refused
            .iter()
            .any(|k| p.msg == format!("missing field `{k}`"));
        if !consequence {
            problems.push(p.clone());
        }
        let (Some(line), false) = (p.line, p.key.is_empty() || consequence) else {
            break;
        };
        let edited: String = cur
            .lines()
            .enumerate()
            .map(|(i, l)| {
                if i + 1 == line {
                    format!("# {l}\n")
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        if edited.parse::<toml::Table>().is_err() {
            break;
        }
        refused.push(p.key.rsplit('.').next().unwrap_or_default().to_string());
        cur = edited;
    }
    (None, cur, problems)
}

/// A TOML syntax or shape error, with the dotted key of the line it
/// points at (the table header above it, then the key on the line).
fn toml_problem(text: &str, e: &toml::de::Error) -> Problem {
    let Some(span) = e.span() else {
        return Problem {
            line: None,
            key: String::new(),
            msg: e.message().trim().to_string(),
        };
    };
    let at = line_at(text, span.start);
    let lines: Vec<&str> = text.lines().collect();
    // An element of a value over several lines belongs to the key above.
    let line = (1..=at)
        .rev()
        .find(|&l| {
            let t = lines.get(l - 1).copied().unwrap_or("").trim();
            t.starts_with('[') || t.contains('=')
        })
        .unwrap_or(at);
    let here = lines.get(line - 1).copied().unwrap_or("").trim();
    let key = match here.split_once('=') {
        Some((k, _)) if !here.starts_with('[') => {
            let k = k.trim().trim_matches('"');
            let table = lines[..line - 1]
                .iter()
                .rev()
                .map(|l| l.trim())
                .find(|l| l.starts_with('['))
                .map(|l| l.trim_matches(|c| c == '[' || c == ']').trim());
            match table {
                Some(t) => format!("{t}.{k}"),
                None => k.to_string(),
            }
        }
        _ => String::new(),
    };
    Problem {
        line: Some(if key.is_empty() { at } else { line }),
        key,
        msg: e.message().trim().to_string(),
    }
}

fn line_at(text: &str, offset: usize) -> usize {
    text.as_bytes()[..offset.min(text.len())]
        .iter()
        .filter(|&&b| b == b'\n')
        .count()
        + 1
}

struct Validator<'a> {
    text: &'a str,
    base: PathBuf,
    problems: Vec<Problem>,
    lines: BTreeMap<String, usize>,
}

impl Validator<'_> {
    fn line<T>(&self, s: &Spanned<T>) -> usize {
        line_at(self.text, s.span().start)
    }

    /// Records where `key` is, and returns its value.
    fn at<'s, T>(&mut self, key: &str, s: &'s Spanned<T>) -> &'s T {
        self.lines.insert(key.to_string(), self.line(s));
        s.get_ref()
    }

    fn problem<T>(&mut self, key: &str, s: &Spanned<T>, msg: impl Into<String>) {
        self.problems.push(Problem {
            line: Some(self.line(s)),
            key: key.to_string(),
            msg: msg.into(),
        });
    }

    fn path(&mut self, key: &str, s: &Spanned<PathBuf>) -> PathBuf {
        let p = self.at(key, s);
        if p.as_os_str().is_empty() {
            self.problem(key, s, "is empty; give a path");
        }
        if p.is_absolute() {
            p.clone()
        } else {
            self.base.join(p)
        }
    }

    fn count(&mut self, key: &str, s: &Spanned<i64>, min: i64, max: i64) -> usize {
        let v = *self.at(key, s);
        if v < min || v > max {
            self.problem(key, s, format!("must be between {min} and {max}, not {v}"));
            return min.max(0) as usize;
        }
        v as usize
    }

    fn positive(&mut self, key: &str, s: &Spanned<f64>, max: f64) -> f64 {
        let v = *self.at(key, s);
        if !(v > 0.0 && v <= max) {
            self.problem(
                key,
                s,
                format!("must be above 0 and at most {max}, not {v}"),
            );
            return 1.0;
        }
        v
    }

    fn size(&mut self, key: &str, s: &Spanned<Vec<i64>>) -> Option<[usize; 2]> {
        match self.at(key, s)[..] {
            [h, w] if (1..=16384).contains(&h) && (1..=16384).contains(&w) => {
                Some([h as usize, w as usize])
            }
            _ => {
                self.problem(key, s, "must be [height, width], e.g. [224, 224]");
                None
            }
        }
    }

    fn triple(&mut self, key: &str, s: &Spanned<Vec<f64>>, nonzero: bool) -> Option<[f32; 3]> {
        match self.at(key, s)[..] {
            [a, b, c]
                if [a, b, c]
                    .iter()
                    .all(|x| x.is_finite() && (!nonzero || *x != 0.0)) =>
            {
                Some([a as f32, b as f32, c as f32])
            }
            _ => {
                let what = if nonzero { "non-zero " } else { "" };
                self.problem(
                    key,
                    s,
                    format!(
                        "must be three {what}numbers, one per channel, e.g. [0.485, 0.456, 0.406]"
                    ),
                );
                None
            }
        }
    }

    fn color(&mut self, key: &str, s: &Spanned<String>) -> Option<ColorOrder> {
        match self.at(key, s).as_str() {
            "rgb" => Some(ColorOrder::Rgb),
            "bgr" => Some(ColorOrder::Bgr),
            other => {
                self.problem(
                    key,
                    s,
                    format!("must be \"rgb\" or \"bgr\", not \"{other}\""),
                );
                None
            }
        }
    }

    fn config(&mut self, raw: RawConfig, path: &Path, registry: &Registry) -> Config {
        let version = *self.at("version", &raw.version);
        if version != CONFIG_VERSION {
            self.problem(
                "version",
                &raw.version,
                format!(
                    "this jetrtd reads config version {CONFIG_VERSION}, the file says {version}"
                ),
            );
        }
        let daemon = self.daemon(&raw.daemon);
        let engines = raw
            .engines
            .iter()
            .filter_map(|(name, e)| Some((name.clone(), self.engine(name, e)?)))
            .collect::<BTreeMap<_, _>>();
        let sources = raw
            .sources
            .iter()
            .filter_map(|(name, s)| Some((name.clone(), self.source(name, s)?)))
            .collect::<BTreeMap<_, _>>();
        let mut pipelines = BTreeMap::new();
        for (name, p) in &raw.pipelines {
            if let Some(pc) = self.pipeline(name, p, &raw, registry) {
                pipelines.insert(name.clone(), pc);
            }
        }
        let names: [(&str, Vec<String>); 3] = [
            ("engine", raw.engines.keys().cloned().collect()),
            ("source", raw.sources.keys().cloned().collect()),
            ("pipeline", raw.pipelines.keys().cloned().collect()),
        ];
        for (kind, names) in names {
            for n in names {
                if !valid_name(&n) {
                    self.problems.push(Problem {
                        line: self.lines.get(&format!("{kind}s.{n}")).copied(),
                        key: format!("{kind}s.{n}"),
                        msg: format!("a {kind} name may hold letters, digits, '-' and '_' only"),
                    });
                }
            }
        }
        Config {
            path: path.to_path_buf(),
            daemon,
            engines,
            sources,
            pipelines,
            lines: std::mem::take(&mut self.lines),
        }
    }

    fn daemon(&mut self, d: &RawDaemon) -> DaemonConfig {
        let mut c = DaemonConfig::default();
        if let Some(s) = &d.socket {
            c.socket = self.path("daemon.socket", s);
        }
        if let Some(s) = &d.socket_mode {
            match u32::from_str_radix(self.at("daemon.socket_mode", s).as_str(), 8) {
                Ok(m) if m <= 0o777 => c.socket_mode = m,
                _ => self.problem(
                    "daemon.socket_mode",
                    s,
                    "must be octal permission bits as a string, e.g. \"0660\"",
                ),
            }
        }
        if let Some(s) = &d.socket_group {
            let g = self.at("daemon.socket_group", s);
            if g.is_empty() {
                self.problem(
                    "daemon.socket_group",
                    s,
                    "is empty; name a group or leave it out",
                );
            }
            c.socket_group = Some(g.clone());
        }
        if let Some(s) = &d.state_dir {
            c.state_dir = self.path("daemon.state_dir", s);
        }
        if let Some(s) = &d.log_level {
            match self.at("daemon.log_level", s).parse::<log::LevelFilter>() {
                Ok(l) => c.log_level = l,
                Err(_) => self.problem(
                    "daemon.log_level",
                    s,
                    "must be one of off, error, warn, info, debug, trace",
                ),
            }
        }
        if let Some(s) = &d.max_clients {
            c.max_clients = self.count("daemon.max_clients", s, 1, 4096);
        }
        if let Some(s) = &d.client_queue {
            c.client_queue = self.count("daemon.client_queue", s, 1, 65536);
        }
        if let Some(s) = &d.max_message_bytes {
            c.max_message_bytes = self.count("daemon.max_message_bytes", s, 4096, 1 << 30);
        }
        c
    }

    fn engine(&mut self, name: &str, e: &Spanned<RawEngine>) -> Option<EngineConfig> {
        let k = |f: &str| format!("engines.{name}.{f}");
        self.at(&format!("engines.{name}"), e);
        let e = e.get_ref();
        let origin = match (&e.engine, &e.onnx) {
            (Some(p), None) => {
                let build_keys = [
                    ("input_size", e.input_size.as_ref().map(|s| s.span())),
                    ("mean", e.mean.as_ref().map(|s| s.span())),
                    ("std", e.std.as_ref().map(|s| s.span())),
                    ("color", e.color.as_ref().map(|s| s.span())),
                    ("labels", e.labels.as_ref().map(|s| s.span())),
                    ("batch", e.batch.as_ref().map(|s| s.span())),
                    ("precision", e.precision.as_ref().map(|s| s.span())),
                ];
                for (key, span) in build_keys {
                    if let Some(span) = span {
                        self.problems.push(Problem {
                            line: Some(line_at(self.text, span.start)),
                            key: k(key),
                            msg: "is a build option for `onnx` engines; a prebuilt engine records its own (set preprocessing per pipeline in [pipelines.NAME.preprocess])".into(),
                        });
                    }
                }
                EngineOrigin::Prebuilt(self.path(&k("engine"), p))
            }
            (None, Some(p)) => {
                let model = self.path(&k("onnx"), p);
                let mut b = BuildSettings {
                    input_size: e
                        .input_size
                        .as_ref()
                        .and_then(|s| self.size(&k("input_size"), s)),
                    mean: e
                        .mean
                        .as_ref()
                        .and_then(|s| self.triple(&k("mean"), s, false)),
                    std: e.std.as_ref().and_then(|s| self.triple(&k("std"), s, true)),
                    color: e.color.as_ref().and_then(|s| self.color(&k("color"), s)),
                    labels: e.labels.as_ref().map(|s| self.path(&k("labels"), s)),
                    batch: None,
                    fp16: false,
                    shapes: BTreeMap::new(),
                };
                if let Some(s) = &e.precision {
                    match self.at(&k("precision"), s).as_str() {
                        "fp32" => {}
                        "fp16" => b.fp16 = true,
                        _ => self.problem(&k("precision"), s, "must be fp32 or fp16"),
                    }
                }
                if let Some(s) = &e.batch {
                    let v = self.at(&k("batch"), s);
                    if v.parse::<engine_builder::convert::BatchProfile>().is_err() {
                        self.problem(&k("batch"), s, "must be MIN:OPT:MAX, e.g. \"1:1:4\"");
                    }
                    b.batch = Some(v.clone());
                }
                for (input, dims) in &e.shapes {
                    if dims.is_empty() || dims.iter().any(|&d| d < 1) {
                        self.problems.push(Problem {
                            line: None,
                            key: format!("engines.{name}.shapes.{input}"),
                            msg: "must be a list of positive dims, e.g. [1, 3, 224, 224]".into(),
                        });
                    } else {
                        b.shapes
                            .insert(input.clone(), dims.iter().map(|&d| d as usize).collect());
                    }
                }
                EngineOrigin::Onnx { model, build: b }
            }
            (Some(p), Some(_)) => {
                self.problem(&k("engine"), p, "give either `engine` (a prebuilt .engine file) or `onnx` (a model to build), not both");
                return None;
            }
            (None, None) => {
                self.problems.push(Problem {
                    line: self.lines.get(&format!("engines.{name}")).copied(),
                    key: format!("engines.{name}"),
                    msg: "needs `engine = \"FILE.engine\"` or `onnx = \"MODEL.onnx\"`".into(),
                });
                return None;
            }
        };
        let backend = e.backend.as_ref().and_then(|s| {
            let v = self.at(&k("backend"), s).clone();
            match v.as_str() {
                "auto" => None,
                "cpu" | "cuda" | "tensorrt" => Some(v),
                _ => {
                    self.problem(&k("backend"), s, "must be auto, cpu, cuda or tensorrt");
                    None
                }
            }
        });
        let threads = e
            .threads
            .as_ref()
            .map(|s| self.count(&k("threads"), s, 1, 1024));
        let device = e
            .device
            .as_ref()
            .map_or(0, |s| self.count(&k("device"), s, 0, 63));
        let plugins = e
            .plugins
            .iter()
            .map(|p| self.path(&k("plugins"), p))
            .collect();
        Some(EngineConfig {
            origin,
            backend,
            device,
            threads,
            plugins,
        })
    }

    fn source(&mut self, name: &str, s: &Spanned<RawSource>) -> Option<SourceConfig> {
        let k = |f: &str| format!("sources.{name}.{f}");
        self.at(&format!("sources.{name}"), s);
        let s = s.get_ref();
        let kind = self.at(&k("kind"), &s.kind).clone();
        // Which keys each kind takes; any other is an error.
        let allowed: &[&str] = match kind.as_str() {
            "synthetic" => &["width", "height", "fps", "format"],
            "file" => &["path", "fps", "loop"],
            "push" => &[],
            "v4l2" => &["device", "width", "height", "fps", "format"],
            "gstreamer" => &["pipeline"],
            other => {
                self.problem(
                    &k("kind"),
                    &s.kind,
                    format!("unknown source kind \"{other}\"; kinds are synthetic, file, push, v4l2, gstreamer"),
                );
                return None;
            }
        };
        let present: [(&str, Option<std::ops::Range<usize>>); 8] = [
            ("width", s.width.as_ref().map(|v| v.span())),
            ("height", s.height.as_ref().map(|v| v.span())),
            ("fps", s.fps.as_ref().map(|v| v.span())),
            ("path", s.path.as_ref().map(|v| v.span())),
            ("loop", s.looping.as_ref().map(|v| v.span())),
            ("device", s.device.as_ref().map(|v| v.span())),
            ("format", s.format.as_ref().map(|v| v.span())),
            ("pipeline", s.pipeline.as_ref().map(|v| v.span())),
        ];
        for (key, span) in present {
            if let Some(span) = span {
                if !allowed.contains(&key) {
                    self.problems.push(Problem {
                        line: Some(line_at(self.text, span.start)),
                        key: k(key),
                        msg: format!(
                            "is not a setting of {kind} sources (they take: {})",
                            if allowed.is_empty() {
                                "none".to_string()
                            } else {
                                allowed.join(", ")
                            }
                        ),
                    });
                }
            }
        }
        let queue = s
            .queue
            .as_ref()
            .map_or(2, |q| self.count(&k("queue"), q, 1, 8));
        let dim = |v: &mut Self, key: &str, f: &Option<Spanned<i64>>, d: u32| {
            f.as_ref()
                .map_or(d, |x| v.count(&k(key), x, 1, 16384) as u32)
        };
        let fps = |v: &mut Self, f: &Option<Spanned<f64>>, d: f64| {
            f.as_ref().map_or(d, |x| v.positive(&k("fps"), x, 1000.0))
        };
        let kind = match kind.as_str() {
            "synthetic" => SourceKind::Synthetic {
                width: dim(self, "width", &s.width, 320),
                height: dim(self, "height", &s.height, 240),
                fps: fps(self, &s.fps, 30.0),
                format: match s.format.as_ref() {
                    None => crate::frame::PixelFormat::Rgb,
                    Some(f) => {
                        let name = self.at(&k("format"), f).clone();
                        match crate::frame::PixelFormat::parse_raw(&name) {
                            Some(p) => p,
                            None => {
                                self.problem(
                                    &k("format"),
                                    f,
                                    format!("must be rgb, bgr, gray, yuyv, nv12 or i420, not \"{name}\""),
                                );
                                crate::frame::PixelFormat::Rgb
                            }
                        }
                    }
                },
            },
            "file" => {
                let Some(p) = &s.path else {
                    self.problem(
                        &k("kind"),
                        &s.kind,
                        "file sources need `path` (an image, a folder of images, or a .y4m video)",
                    );
                    return None;
                };
                SourceKind::File {
                    path: self.path(&k("path"), p),
                    fps: fps(self, &s.fps, 30.0),
                    looping: s.looping.as_ref().is_none_or(|l| *self.at(&k("loop"), l)),
                }
            }
            "push" => SourceKind::Push,
            "v4l2" => SourceKind::V4l2 {
                device: s.device.as_ref().map_or_else(
                    || PathBuf::from("/dev/video0"),
                    |d| self.path(&k("device"), d),
                ),
                width: dim(self, "width", &s.width, 640),
                height: dim(self, "height", &s.height, 480),
                fps: fps(self, &s.fps, 30.0),
                format: match s.format.as_ref() {
                    None => CameraFormat::Yuyv,
                    Some(f) => match self.at(&k("format"), f).as_str() {
                        "yuyv" => CameraFormat::Yuyv,
                        "mjpeg" => CameraFormat::Mjpeg,
                        other => {
                            self.problem(
                                &k("format"),
                                f,
                                format!("must be \"yuyv\" or \"mjpeg\", not \"{other}\""),
                            );
                            CameraFormat::Yuyv
                        }
                    },
                },
            },
            _ => {
                let Some(p) = &s.pipeline else {
                    self.problem(&k("kind"), &s.kind, "gstreamer sources need `pipeline`, e.g. \"videotestsrc ! video/x-raw,width=640,height=480\"");
                    return None;
                };
                let p = self.at(&k("pipeline"), p).clone();
                SourceKind::Gstreamer { pipeline: p }
            }
        };
        Some(SourceConfig { kind, queue })
    }

    fn pipeline(
        &mut self,
        name: &str,
        p: &Spanned<RawPipeline>,
        raw: &RawConfig,
        registry: &Registry,
    ) -> Option<PipelineConfig> {
        let k = |f: &str| format!("pipelines.{name}.{f}");
        self.at(&format!("pipelines.{name}"), p);
        let p = p.get_ref();
        let source = self.at(&k("source"), &p.source).clone();
        if !raw.sources.contains_key(&source) {
            let known = list(raw.sources.keys());
            self.problem(
                &k("source"),
                &p.source,
                format!("no source named \"{source}\" (sources: {known})"),
            );
        }
        let engine = self.at(&k("engine"), &p.engine).clone();
        if !raw.engines.contains_key(&engine) {
            let known = list(raw.engines.keys());
            self.problem(
                &k("engine"),
                &p.engine,
                format!("no engine named \"{engine}\" (engines: {known})"),
            );
        }
        let mut preprocess = PreprocessOverride::default();
        if let Some(pre) = &p.preprocess {
            let pre = pre.get_ref();
            preprocess.input_size = pre
                .input_size
                .as_ref()
                .and_then(|s| self.size(&k("preprocess.input_size"), s));
            preprocess.mean = pre
                .mean
                .as_ref()
                .and_then(|s| self.triple(&k("preprocess.mean"), s, false));
            preprocess.std = pre
                .std
                .as_ref()
                .and_then(|s| self.triple(&k("preprocess.std"), s, true));
            preprocess.color = pre
                .color
                .as_ref()
                .and_then(|s| self.color(&k("preprocess.color"), s));
        }
        let postprocess = match &p.postprocess {
            None => PostprocessConfig {
                kind: "raw".into(),
                params: toml::Table::new(),
            },
            Some(pp) => {
                let line = self.line(pp);
                let pp = pp.get_ref();
                let kind = self.at(&k("postprocess.kind"), &pp.kind).clone();
                if let Err(msg) = registry.check(&kind, &pp.params) {
                    self.problems.push(Problem {
                        line: Some(line),
                        key: k("postprocess"),
                        msg,
                    });
                }
                PostprocessConfig {
                    kind,
                    params: pp.params.clone(),
                }
            }
        };
        let max_rate = p
            .max_rate
            .as_ref()
            .map(|s| self.positive(&k("max_rate"), s, 10000.0));
        let stall_timeout = p
            .stall_timeout
            .as_ref()
            .map_or(10.0, |s| self.positive(&k("stall_timeout"), s, 3600.0));
        Some(PipelineConfig {
            source,
            engine,
            preprocess,
            postprocess,
            max_rate,
            stall_timeout: Duration::from_secs_f64(stall_timeout),
        })
    }
}

fn list<'a>(names: impl Iterator<Item = &'a String>) -> String {
    let v: Vec<&str> = names.map(String::as_str).collect();
    if v.is_empty() {
        "none are defined".into()
    } else {
        v.join(", ")
    }
}

fn valid_name(n: &str) -> bool {
    !n.is_empty()
        && n.len() <= 64
        && n.chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_str(text: &str) -> Result<Config, ConfigError> {
        parse(
            text,
            Path::new("/etc/jetrtd/test.toml"),
            &Registry::with_defaults(),
        )
    }

    const GOOD: &str = r#"
version = 1
[daemon]
socket_mode = "0600"
max_clients = 4

[engines.cls]
onnx = "models/cls.onnx"
input_size = [224, 224]
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
labels = "labels.txt"
batch = "1:1:1"
shapes = { input = [1, 3, 224, 224] }

[engines.seg]
engine = "/opt/seg.engine"

[sources.cam]
kind = "v4l2"
format = "mjpeg"

[sources.files]
kind = "file"
path = "frames"
loop = false

[pipelines.a]
source = "cam"
engine = "cls"
postprocess = { kind = "topk", top = 3 }
max_rate = 10

[pipelines.b]
source = "files"
engine = "seg"
postprocess = { kind = "argmax" }
[pipelines.b.preprocess]
color = "bgr"
"#;

    #[test]
    fn a_full_config_with_defaults_and_relative_paths() {
        let c = parse_str(GOOD).unwrap();
        assert_eq!(c.daemon.socket_mode, 0o600);
        assert_eq!(c.daemon.max_clients, 4);
        assert_eq!(c.daemon.socket, PathBuf::from("/run/jetrtd/jetrtd.sock"));
        match &c.engines["cls"].origin {
            EngineOrigin::Onnx { model, build } => {
                assert_eq!(model, Path::new("/etc/jetrtd/models/cls.onnx"));
                assert_eq!(
                    build.labels.as_deref(),
                    Some(Path::new("/etc/jetrtd/labels.txt"))
                );
                assert_eq!(build.input_size, Some([224, 224]));
                assert_eq!(build.shapes["input"], vec![1, 3, 224, 224]);
            }
            o => panic!("{o:?}"),
        }
        assert_eq!(
            c.sources["cam"].kind,
            SourceKind::V4l2 {
                device: PathBuf::from("/dev/video0"),
                width: 640,
                height: 480,
                fps: 30.0,
                format: CameraFormat::Mjpeg
            }
        );
        assert!(matches!(
            c.sources["files"].kind,
            SourceKind::File { looping: false, .. }
        ));
        assert_eq!(c.pipelines["a"].max_rate, Some(10.0));
        assert_eq!(c.pipelines["b"].preprocess.color, Some(ColorOrder::Bgr));
        assert_eq!(c.line_of("pipelines.a.engine"), Some(30));
    }

    /// GPU keys: an engine's device and precision, a camera-format
    /// synthetic source; bad values are reported together.
    #[test]
    fn gpu_engine_keys_and_synthetic_formats() {
        let text = "version = 1\n[engines.e]\nonnx = \"m.onnx\"\nbackend = \"cuda\"\ndevice = 1\nprecision = \"fp16\"\n[sources.s]\nkind = \"synthetic\"\nwidth = 1280\nheight = 720\nformat = \"yuyv\"\n[pipelines.p]\nsource = \"s\"\nengine = \"e\"\n";
        let c = parse_str(text).unwrap();
        let e = &c.engines["e"];
        assert_eq!((e.backend.as_deref(), e.device), (Some("cuda"), 1));
        assert!(matches!(&e.origin, EngineOrigin::Onnx { build, .. } if build.fp16));
        assert!(matches!(
            c.sources["s"].kind,
            SourceKind::Synthetic {
                width: 1280,
                format: crate::frame::PixelFormat::Yuyv,
                ..
            }
        ));
        let bad = text
            .replace("precision = \"fp16\"", "precision = \"fp8\"")
            .replace("device = 1", "device = -1")
            .replace("format = \"yuyv\"", "format = \"mjpeg\"");
        let e = parse_str(&bad).unwrap_err();
        let keys: Vec<&str> = e.problems().iter().map(|p| p.key.as_str()).collect();
        for k in [
            "engines.e.precision",
            "engines.e.device",
            "sources.s.format",
        ] {
            assert!(keys.contains(&k), "{keys:?}");
        }
        // Precision is a build option: a prebuilt engine records its own.
        let pre = "version = 1\n[engines.e]\nengine = \"/x.engine\"\nprecision = \"fp16\"\n";
        let e = parse_str(pre).unwrap_err();
        assert_eq!(e.problems()[0].key, "engines.e.precision");
    }

    #[test]
    fn every_problem_is_reported_with_its_line_and_key() {
        let text = GOOD
            .replace("socket_mode = \"0600\"", "socket_mode = \"rw\"")
            .replace("top = 3", "top = 3, bottom = 1")
            .replace("engine = \"cls\"", "engine = \"clz\"")
            .replace("color = \"bgr\"", "color = \"grb\"");
        let e = parse_str(&text).unwrap_err();
        let got: Vec<(Option<usize>, &str)> = e
            .problems()
            .iter()
            .map(|p| (p.line, p.key.as_str()))
            .collect();
        assert_eq!(
            got,
            vec![
                (Some(4), "daemon.socket_mode"),
                (Some(30), "pipelines.a.engine"),
                (Some(31), "pipelines.a.postprocess"),
                (Some(39), "pipelines.b.preprocess.color"),
            ],
            "{e}"
        );
        let msg = e.to_string();
        assert!(
            msg.starts_with("/etc/jetrtd/test.toml:4: daemon.socket_mode: must be octal"),
            "{msg}"
        );
        assert!(
            msg.contains("no engine named \"clz\" (engines: cls, seg)"),
            "{msg}"
        );
        assert!(msg.contains("unknown field `bottom`"), "{msg}");
    }

    #[test]
    fn unknown_keys_and_types_name_the_key() {
        let e = parse_str("version = 1\n[daemon]\nsockt = \"/x\"\n").unwrap_err();
        assert_eq!(e.problems()[0].line, Some(3));
        assert_eq!(e.problems()[0].key, "daemon.sockt");
        let e = parse_str("version = 1\n[sources.s]\nkind = \"synthetic\"\nwidth = \"wide\"\n")
            .unwrap_err();
        assert_eq!(e.problems()[0].key, "sources.s.width");
        let e = parse_str("[daemon]\n").unwrap_err();
        assert!(e.to_string().contains("missing field `version`"), "{e}");
        let e = parse_str("version = 1\n[engines.e]\nengine = \"a.engine\"\nmean = [0, 0, 0]\n")
            .unwrap_err();
        assert!(
            e.to_string()
                .contains("engines.e.mean: is a build option for `onnx` engines"),
            "{e}"
        );
        let e = parse_str("version = 1\n[sources.\"bad name\"]\nkind = \"push\"\n").unwrap_err();
        assert!(e.to_string().contains("letters, digits"), "{e}");
    }

    /// An unknown key or a value of the wrong type does not hide the
    /// problems after it: all are reported at once, in line order.
    #[test]
    fn refused_keys_do_not_hide_later_problems() {
        let text = "version = 1\n[daemon]\nbogus = 3\n[engines.e]\nonnx = \"m.onnx\"\nthreads = \"two\"\n[sources.s]\nkind = \"synthetic\"\nwidth = 64\nheight = 64\n[pipelines.a]\nsource = \"s\"\nengine = \"nope1\"\n[pipelines.b]\nsource = \"nosrc\"\nengine = \"nope2\"\nextra = true\n";
        let e = parse_str(text).unwrap_err();
        let got: Vec<(Option<usize>, &str)> = e
            .problems()
            .iter()
            .map(|p| (p.line, p.key.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                (Some(3), "daemon.bogus"),
                (Some(6), "engines.e.threads"),
                (Some(13), "pipelines.a.engine"),
                (Some(15), "pipelines.b.source"),
                (Some(16), "pipelines.b.engine"),
                (Some(17), "pipelines.b.extra"),
            ],
            "{e}"
        );
        // A refused required key is reported once, not again as missing.
        let e = parse_str("version = 1\n[sources.s]\nkind = 5\n").unwrap_err();
        assert_eq!(e.problems().len(), 1, "{e}");
        assert_eq!(e.problems()[0].key, "sources.s.kind");
        // A refused value over several lines ends the reading there.
        let e = parse_str("version = 1\n[engines.e]\nonnx = \"m.onnx\"\nmean = [\n\"a\",\n]\n[pipelines.p]\nsource = \"x\"\nengine = \"e\"\n").unwrap_err();
        assert_eq!(e.problems().len(), 1, "{e}");
        assert_eq!(e.problems()[0].key, "engines.e.mean");
        // A syntax error is the only problem: nothing after it is read.
        let e = parse_str("version = 1\n[daemon\nbogus = 3\n").unwrap_err();
        assert_eq!(e.problems().len(), 1, "{e}");
    }

    #[test]
    fn warnings_for_what_this_machine_lacks() {
        let c = parse_str(GOOD).unwrap();
        let w: Vec<String> = super::super::check(&c)
            .iter()
            .map(|w| w.to_string())
            .collect();
        assert!(
            w.iter().any(|w| w.starts_with(
                "line 8: engines.cls.onnx: model /etc/jetrtd/models/cls.onnx does not exist here"
            )),
            "{w:?}"
        );
        assert!(w.iter().any(|w| w.contains("sources.files.path")), "{w:?}");
        assert!(!w.iter().any(|w| w.contains("socket_mode")), "{w:?}");
        let open =
            parse_str(&GOOD.replace("socket_mode = \"0600\"", "socket_mode = \"0777\"")).unwrap();
        let w: Vec<String> = super::super::check(&open)
            .iter()
            .map(|w| w.to_string())
            .collect();
        assert!(
            w.iter()
                .any(|w| w.contains("daemon.socket_mode: 0777 lets every local user")),
            "{w:?}"
        );
    }
}
