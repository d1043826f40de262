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

fn health(v: &Value) -> String {
    let state = v["state"].as_str().unwrap_or("?");
    match v["detail"].as_str() {
        Some(d) => format!("{state} ({d})"),
        None => state.to_string(),
    }
}

fn print_status(stats: &Value) {
    println!("jetrtd up {:.0} s", f(stats, &["uptime_s"]));
    println!("pipelines:");
    if let Some(ps) = stats["pipelines"].as_object() {
        for (name, p) in ps {
            let on = match p["placement"]["backend"].as_str() {
                Some("cpu") | None => "cpu".to_string(),
                Some(b) => match p["placement"]["gpu_memory_bytes"].as_f64() {
                    Some(m) => format!("{b}:{} {:.0} MiB", p["placement"]["device"], m / 1048576.0),
                    None => format!("{b}:{}", p["placement"]["device"]),
                },
            };
            println!(
                "  {name:<20} {:<10} {on:<16} {:6.1} fps  latency p50 {:6.1} ms p99 {:6.1} ms  engine p50 {:6.1} ms  frames {}  drops {}  errors {}  subscribers {}",
                health(&p["health"]),
                f(p, &["fps"]),
                f(p, &["latency_ms", "p50"]),
                f(p, &["latency_ms", "p99"]),
                f(p, &["engine_ms", "p50"]),
                p["frames"],
                p["queue_drops"],
                p["errors"],
                p["subscribers"],
            );
        }
    }
    println!("sources:");
    if let Some(ss) = stats["sources"].as_object() {
        for (name, s) in ss {
            println!(
                "  {name:<20} {:<10} {}  frames {}",
                s["kind"].as_str().unwrap_or("?"),
                health(&s["status"]),
                s["frames"]
            );
        }
    }
    println!(
        "clients: {} of {} connected, {} messages dropped for slow readers",
        stats["clients"]["connected"],
        stats["clients"]["max"],
        stats["clients"]["dropped_messages"]
    );
}

fn print_result(v: &Value, json: bool) {
    if json {
        println!("{v}");
        return;
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
    println!(
        "{} seq {} latency {:.1} ms: {summary}",
        v["pipeline"].as_str().unwrap_or("?"),
        v["seq"],
        f(v, &["latency_ms"])
    );
}

fn run(a: Args) -> Result<()> {
    let timeout = Duration::from_secs_f64(a.timeout.max(0.001));
    let mut c = Client::connect(&a.socket, timeout)?;
    c.hello("jetrtctl")?;
    match a.cmd {
        Cmd::Status => {
            let s = c.stats()?;
            if a.json {
                println!("{s}");
            } else {
                print_status(&s);
            }
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
                    print_result(&m.json, a.json);
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
            print_result(&m.json, a.json);
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    match run(Args::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("jetrtctl: {e:#}");
            ExitCode::from(1)
        }
    }
}
