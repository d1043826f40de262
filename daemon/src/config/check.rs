//! What `--check-config` reports beyond errors: things that depend on the
//! machine it runs on (files, cameras, features compiled in). A config
//! written on a host for a robot is still valid there, so these are
//! warnings; at start the daemon reports the affected pipelines as failed
//! or waiting and keeps serving the others.

use super::types::*;
use std::fmt;
use std::path::Path;

#[derive(Clone, Debug, PartialEq)]
pub struct Warning {
    pub line: Option<usize>,
    pub key: String,
    pub msg: String,
}

impl fmt::Display for Warning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(l) = self.line {
            write!(f, "line {l}: ")?;
        }
        write!(f, "{}: {}", self.key, self.msg)
    }
}

/// Warnings about a valid config on this machine.
pub fn check(c: &Config) -> Vec<Warning> {
    let mut w = Vec::new();
    let mut warn = |key: String, msg: String| {
        w.push(Warning {
            line: c.line_of(&key),
            key,
            msg,
        })
    };
    let missing = |path: &Path, what: &str| {
        (!path.exists()).then(|| format!("{what} {} does not exist here", path.display()))
    };
    let file = |warn: &mut dyn FnMut(String, String), key: String, path: &Path, what: &str| {
        if let Some(m) = missing(path, what) {
            warn(key, m);
        }
    };
    if c.daemon.socket_mode & 0o002 != 0 {
        warn(
            "daemon.socket_mode".into(),
            format!(
                "{:04o} lets every local user connect and run inferences; 0660 with daemon.socket_group is the usual choice",
                c.daemon.socket_mode
            ),
        );
    }
    for (name, e) in &c.engines {
        match &e.origin {
            EngineOrigin::Prebuilt(p) => file(
                &mut warn,
                format!("engines.{name}.engine"),
                p,
                "engine file",
            ),
            EngineOrigin::Onnx { model, build } => {
                file(&mut warn, format!("engines.{name}.onnx"), model, "model");
                if let Some(l) = &build.labels {
                    file(
                        &mut warn,
                        format!("engines.{name}.labels"),
                        l,
                        "labels file",
                    );
                }
            }
        }
        for p in &e.plugins {
            file(
                &mut warn,
                format!("engines.{name}.plugins"),
                p,
                "plugin library",
            );
        }
    }
    for (name, s) in &c.sources {
        match &s.kind {
            SourceKind::File { path, .. } => {
                file(&mut warn, format!("sources.{name}.path"), path, "file")
            }
            SourceKind::V4l2 { device, .. } => {
                file(
                    &mut warn,
                    format!("sources.{name}.device"),
                    device,
                    "camera device",
                );
                if !cfg!(feature = "v4l2") {
                    warn(
                        format!("sources.{name}.kind"),
                        "this jetrtd was built without V4L2 support (cargo feature v4l2)".into(),
                    );
                }
            }
            SourceKind::Gstreamer { .. } if !cfg!(feature = "gstreamer") => warn(
                format!("sources.{name}.kind"),
                "this jetrtd was built without GStreamer support (cargo feature gstreamer)".into(),
            ),
            _ => {}
        }
        if !c.pipelines.values().any(|p| &p.source == name) {
            warn(
                format!("sources.{name}"),
                "no pipeline reads this source".into(),
            );
        }
    }
    for (name, e) in &c.engines {
        let _ = e;
        if !c.pipelines.values().any(|p| &p.engine == name) {
            warn(
                format!("engines.{name}"),
                "no pipeline uses this engine".into(),
            );
        }
    }
    if c.pipelines.is_empty() {
        warn("pipelines".into(), "no pipelines are defined".into());
    }
    if let Some(dir) = c.daemon.socket.parent() {
        if !dir.as_os_str().is_empty() && !dir.is_dir() {
            warn(
                "daemon.socket".into(),
                format!(
                    "folder {} does not exist here (systemd's RuntimeDirectory= makes /run/jetrtd)",
                    dir.display()
                ),
            );
        }
    }
    w
}
