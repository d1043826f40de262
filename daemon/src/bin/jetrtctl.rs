//! jetrtctl: talks to a running jetrtd.
//!
//!     jetrtctl status              pipelines, sources, rates, latency, clients
//!     jetrtctl watch PIPELINE      print its results as they come
//!     jetrtctl infer PIPELINE IMG  run a pipeline on an image file

use anyhow::{Context, Result};
use clap::{Parser, Subcommand};
use jetrt_daemon::client::Client;
use jetrt_daemon::frame::PixelFormat;
use serde_json::Value;
use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(Parser)]
#[command(name = "jetrtctl", version, about = "Talks to a running jetrtd")]
struct Args {
    /// The daemon's socket
    #[arg(long, env = "JETRTD_SOCKET", default_value = "/run/jetrtd/jetrtd.sock")]
    socket: PathBuf,
    /// Seconds to wait for a reply
    #[arg(long, default_value_t = 5.0)]
    timeout: f64,
    /// Print the daemon's JSON as is
    #[arg(long)]
    json: bool,
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Pipelines, sources and clients with their rates, latency and health
    Status,
    /// Print a pipeline's results as they arrive
    Watch {
        pipeline: String,
        /// Stop after this many results
        #[arg(long)]
        count: Option<u64>,
    },
    /// Run a pipeline on an image file (PNG, JPEG, BMP, PPM)
    Infer { pipeline: String, image: PathBuf },
}

fn f(v: &Value, path: &[&str]) -> f64 {
    path.iter()
        .try_fold(v, |v, k| v.get(k))
        .and_then(Value::as_f64)
        .unwrap_or(0.0)
}

/// A number of the stats, or "-" where the daemon has none (a failed
/// pipeline has no counters).
fn num(v: &Value) -> String {
    match v {
        Value::Number(n) => n.to_string(),
        _ => "-".into(),
    }
}

/// A latency in ms, or "-" before any sample.
fn ms(v: &Value, samples: &Value) -> String {
    match (v.as_f64(), samples.as_u64()) {
        (Some(x), Some(n)) if n > 0 => format!("{x:.1}"),
        (Some(x), None) if x > 0.0 => format!("{x:.1}"),
        _ => "-".into(),
    }
}

/// `jetrtctl status` as text: a row per pipeline and source, a health
/// detail (a failure's reason) on its own line under its row so that a
/// long one does not break the table.
fn status_text(stats: &Value) -> String {
    let mut o = String::new();
    let mut line = |s: String| {
        o.push_str(&s);
        o.push('\n');
    };
    line(format!("jetrtd up {:.0} s", f(stats, &["uptime_s"])));
    line("pipelines:".into());
    let detail = |v: &Value| v["detail"].as_str().map(|d| format!("      {d}"));
    if let Some(ps) = stats["pipelines"].as_object() {
        for (name, p) in ps {
            let on = match p["placement"]["backend"].as_str() {
                None if p.get("frames").is_none() => "-".to_string(),
                Some("cpu") | None => "cpu".to_string(),
                Some(b) => match p["placement"]["gpu_memory_bytes"].as_f64() {
                    Some(m) => format!("{b}:{} {:.0} MiB", p["placement"]["device"], m / 1048576.0),
                    None => format!("{b}:{}", p["placement"]["device"]),
                },
            };
            let samples = &p["latency_ms"]["samples"];
            let fps = p["fps"].as_f64().map_or("-".into(), |x| format!("{x:.1}"));
            line(format!(
                "  {name:<20} {:<10} {on:<16} {fps:>6} fps  latency p50 {:>6} ms p99 {:>6} ms  engine p50 {:>6} ms  frames {}  drops {}  errors {}  subscribers {}",
                p["health"]["state"].as_str().unwrap_or("?"),
                ms(&p["latency_ms"]["p50"], samples),
                ms(&p["latency_ms"]["p99"], samples),
                ms(&p["engine_ms"]["p50"], samples),
                num(&p["frames"]),
                num(&p["queue_drops"]),
                num(&p["errors"]),
                num(&p["subscribers"]),
            ));
            if let Some(d) = detail(&p["health"]) {
                line(d);
            }
        }
    }
    line("sources:".into());
    if let Some(ss) = stats["sources"].as_object() {
        for (name, s) in ss {
            line(format!(
                "  {name:<20} {:<10} {:<10} frames {}",
                s["kind"].as_str().unwrap_or("?"),
                s["status"]["state"].as_str().unwrap_or("?"),
                num(&s["frames"])
            ));
            if let Some(d) = detail(&s["status"]) {
                line(d);
            }
        }
    }
    line(format!(
        "clients: {} of {} connected, {} messages dropped for slow readers",
        num(&stats["clients"]["connected"]),
        num(&stats["clients"]["max"]),
        num(&stats["clients"]["dropped_messages"])
    ));
    o
}

fn result_text(v: &Value, json: bool) -> String {
    if json {
        return v.to_string();
    }
    let out = &v["output"];
    let summary = match out["kind"].as_str() {
        Some("topk") => out["top"]
            .as_array()
            .map(|t| {
                t.iter()
                    .map(|c| {
                        let name = c["label"]
                            .as_str()
                            .map_or_else(|| c["index"].to_string(), str::to_string);
                        format!("{name} {:.2}%", f(c, &["score"]) * 100.0)
                    })
                    .collect::<Vec<_>>()
                    .join(", ")
            })
            .unwrap_or_default(),
        Some("tensors") => out["tensors"]
            .as_array()
            .map(|ts| {
                ts.iter()
                    .map(|t| {
                        let data = t["data"].as_array().map(|d| d.len()).unwrap_or(0);
                        if data <= 8 {
                            format!("{} = {}", t["name"].as_str().unwrap_or("?"), t["data"])
                        } else {
                            format!("{} {} values", t["name"].as_str().unwrap_or("?"), data)
                        }
                    })
                    .collect::<Vec<_>>()
                    .join("; ")
            })
            .unwrap_or_default(),
        _ => out.to_string(),
    };
    format!(
        "{} seq {} latency {:.1} ms: {summary}",
        v["pipeline"].as_str().unwrap_or("?"),
        v["seq"],
        f(v, &["latency_ms"])
    )
}

/// Writes a line to stdout; a reader gone (`jetrtctl watch P | head`) is
/// an io error of kind BrokenPipe, which main takes as a quiet end.
fn say(text: &str) -> std::io::Result<()> {
    let mut out = std::io::stdout().lock();
    writeln!(out, "{}", text.trim_end_matches('\n'))?;
    out.flush()
}

fn run(a: Args) -> Result<()> {
    let timeout = Duration::from_secs_f64(a.timeout.max(0.001));
    let mut c = Client::connect(&a.socket, timeout)?;
    c.hello("jetrtctl")?;
    match a.cmd {
        Cmd::Status => {
            let s = c.stats()?;
            say(&if a.json {
                s.to_string()
            } else {
                status_text(&s)
            })?;
        }
        Cmd::Watch { pipeline, count } => {
            c.subscribe(&pipeline)?;
            // Results come at the pipeline's pace; a long quiet spell is
            // not an error while watching.
            c.set_timeout(Duration::from_secs(3600))?;
            let mut n = 0;
            while count.is_none_or(|c| n < c) {
                let m = c.next_result()?;
                if m.kind() == "result" {
                    say(&result_text(&m.json, a.json))?;
                    n += 1;
                }
            }
        }
        Cmd::Infer { pipeline, image } => {
            let img = image::open(&image)
                .with_context(|| format!("cannot read image {}", image.display()))?
                .to_rgb8();
            let (w, h) = img.dimensions();
            let m = c.infer_image(&pipeline, PixelFormat::Rgb, w, h, img.as_raw())?;
            say(&result_text(&m.json, a.json))?;
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader of our output went away: nothing left to say.
        Err(e) if broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jetrtctl: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn broken_pipe(e: &anyhow::Error) -> bool {
    e.chain().any(|c| {
        c.downcast_ref::<std::io::Error>()
            .is_some_and(|io| io.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn status_shows_dashes_for_what_a_pipeline_does_not_have_yet() {
        let stats = json!({
            "uptime_s": 12.0,
            "pipelines": {
                "broken": {"health": {"state": "failed", "detail": "engine 'e': cannot read model /x.onnx: No such file or directory (os error 2), and a long tail that must not widen the table"}},
                "idle": {"health": {"state": "waiting"}, "fps": 0.0, "frames": 0, "queue_drops": 0, "errors": 0,
                         "subscribers": 0, "placement": {"backend": "cpu"},
                         "latency_ms": {"p50": 0.0, "p99": 0.0, "samples": 0}, "engine_ms": {"p50": 0.0, "p99": 0.0}},
                "busy": {"health": {"state": "running"}, "fps": 30.0, "frames": 90, "queue_drops": 1, "errors": 0,
                         "subscribers": 2, "placement": {"backend": "cuda", "device": 0, "gpu_memory_bytes": 23068672},
                         "latency_ms": {"p50": 1.25, "p99": 2.5, "samples": 90}, "engine_ms": {"p50": 0.75, "p99": 1.0}}
            },
            "sources": {"cam": {"kind": "v4l2", "status": {"state": "waiting", "detail": "/dev/video0: unplugged"}, "frames": 0}},
            "clients": {"connected": 1, "max": 16, "dropped_messages": 0}
        });
        let t = status_text(&stats);
        assert!(!t.contains("null"), "{t}");
        let lines: Vec<&str> = t.lines().collect();
        let row = |name: &str| {
            *lines
                .iter()
                .find(|l| l.trim_start().starts_with(name))
                .unwrap()
        };
        // A failed pipeline: its state on the row, its reason below it.
        assert!(
            row("broken").contains("failed") && !row("broken").contains("os error"),
            "{t}"
        );
        let i = lines
            .iter()
            .position(|l| l.trim_start().starts_with("broken"))
            .unwrap();
        assert!(
            lines[i + 1]
                .trim_start()
                .starts_with("engine 'e': cannot read model"),
            "{t}"
        );
        assert!(row("broken").contains("frames -"), "{t}");
        // No frame yet: no latency to show.
        assert!(
            row("idle").contains("p50      - ms") && row("idle").contains("frames 0"),
            "{t}"
        );
        assert!(
            row("busy").contains("p50    1.2 ms") || row("busy").contains("p50    1.3 ms"),
            "{t}"
        );
        assert!(row("busy").contains("cuda:0 22 MiB"), "{t}");
        // Rows line up whatever the reasons: the state column has one width.
        let col = |name: &str| row(name).find(" fps").unwrap();
        assert_eq!(col("idle"), col("busy"), "{t}");
        assert!(t.contains("/dev/video0: unplugged"), "{t}");
    }

    #[test]
    fn a_closed_pipe_is_recognised_through_context() {
        let e = anyhow::Error::from(std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            .context("writing");
        assert!(broken_pipe(&e));
        assert!(!broken_pipe(&anyhow::anyhow!("other")));
    }
}
