//! End-to-end tests: the real `jetrtd` binary on a temporary socket, with
//! real engines (the bundled tiny model, and squeezenet1_1 from
//! `JETRT_MODELS`), real sources and real clients (Rust and Python).

mod support;

use jetrt_daemon::frame::PixelFormat;
use jetrt_daemon::sources::synthetic::render;
use serde_json::{json, Value};
use std::io::Write;
use std::os::unix::net::{UnixDatagram, UnixStream};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};
use support::*;

fn shared() -> std::sync::RwLockReadGuard<'static, ()> {
    MACHINE.read().unwrap_or_else(|e| e.into_inner())
}

/// The bundled sample images as packed RGB8.
fn tiny_image(name: &str) -> (Vec<u8>, u32, u32) {
    let img = image::open(tiny_dir().join("images").join(name))
        .expect("sample image")
        .to_rgb8();
    let (w, h) = img.dimensions();
    (img.into_raw(), w, h)
}

#[test]
fn check_config_reports_errors_with_line_and_key_and_warnings() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "version = 1\n[sources.cam]\nkind = \"synthetic\"\nfsp = 30\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_jetrtd"))
        .arg("--check-config")
        .arg(&bad)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("bad.toml:4: sources.cam.fsp: unknown field `fsp`"),
        "{err}"
    );

    let refs = dir.path().join("refs.toml");
    std::fs::write(
        &refs,
        "version = 1\n[sources.cam]\nkind = \"v4l2\"\ndevice = \"/dev/video-jetrt-test\"\n\n[pipelines.p]\nsource = \"camera\"\nengine = \"e\"\n",
    )
    .unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_jetrtd"))
        .arg("--check-config")
        .arg(&refs)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        err.contains("refs.toml:7: pipelines.p.source: no source named \"camera\" (sources: cam)"),
        "{err}"
    );
    assert!(
        err.contains("refs.toml:8: pipelines.p.engine: no engine named \"e\""),
        "{err}"
    );

    // The JetBot example is valid anywhere; what is missing on this
    // machine (the camera's models) is a warning.
    let jetbot = workspace().join("config/jetbot.toml");
    let out = Command::new(env!("CARGO_BIN_EXE_jetrtd"))
        .arg("--check-config")
        .arg(&jetbot)
        .output()
        .unwrap();
    let (so, se) = (
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr),
    );
    assert_eq!(out.status.code(), Some(0), "{so}{se}");
    assert!(
        so.contains("valid (2 engine(s), 1 source(s), 2 pipeline(s)"),
        "{so}"
    );
    if !Path::new("/opt/jetbot").exists() {
        assert!(
            se.contains("warning: line") && se.contains("does not exist here"),
            "{se}"
        );
    }

    // A bad config is refused at start too, with the same message, exit 1.
    let out = Command::new(env!("CARGO_BIN_EXE_jetrtd"))
        .arg("--config")
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("sources.cam.fsp"));
}

const SYNTH: &str = r#"
[sources.pattern]
kind = "synthetic"
width = 96
height = 72
fps = 20

[pipelines.raw]
source = "pattern"
engine = "tiny"

[pipelines.shapes]
source = "pattern"
engine = "tiny"
postprocess = { kind = "topk", top = 2 }
"#;

#[test]
fn synthetic_source_feeds_two_pipelines_matching_engine_builder() {
    let _g = shared();
    let body = format!("{}{SYNTH}", tiny_engine_toml());
    let mut d = Daemon::start("", &body);
    let mut c = d.client();
    c.subscribe("raw").unwrap();
    c.subscribe("shapes").unwrap();
    let r = next_of(&mut c, "raw");
    let s = next_of(&mut c, "shapes");
    // One source, two pipelines: both number frames from the same source.
    let seq = r.json["seq"].as_u64().unwrap();
    assert!(s.json["seq"].as_u64().unwrap() <= seq + 40);
    assert!(r.json["timestamp"].as_f64().unwrap() > 1.6e9);
    assert!(r.json["latency_ms"].as_f64().unwrap() >= 0.0);
    let labels = ["circle", "square", "triangle", "cross"];
    assert!(
        labels.contains(&s.json["output"]["top"][0]["label"].as_str().unwrap()),
        "{}",
        s.json
    );

    // The same frame through `engine-builder run` and the cached engine.
    let frame = d.path().join("frame.png");
    save_png(&render(seq, 96, 72), 96, 72, &frame);
    let engine = cached_engine(&d.path().join("state"), "tiny");
    let want = engine_builder_run(&engine, &frame, &d.path().join("ref"));
    assert_close(
        &raw_output(&r.json),
        &want,
        "synthetic frame via the Rust client",
    );

    let stats = c.stats().unwrap();
    let src = &stats["sources"]["pattern"];
    assert!(
        src["drops"].get("raw").is_some() && src["drops"].get("shapes").is_some(),
        "{stats}"
    );
    assert_eq!(stats["pipelines"]["raw"]["health"]["state"], "running");
    drop(c);

    // jetrtctl, on the same daemon.
    let ctl = |args: &[&str]| {
        let o = Command::new(env!("CARGO_BIN_EXE_jetrtctl"))
            .arg("--socket")
            .arg(&d.socket)
            .args(args)
            .output()
            .unwrap();
        let out = String::from_utf8_lossy(&o.stdout).into_owned();
        assert!(
            o.status.success(),
            "jetrtctl {args:?}: {out}{}",
            String::from_utf8_lossy(&o.stderr)
        );
        out
    };
    let status = ctl(&["status"]);
    assert!(
        status.contains("raw") && status.contains("running") && status.contains("fps"),
        "{status}"
    );
    let watched = ctl(&["watch", "shapes", "--count", "2"]);
    assert_eq!(
        watched
            .lines()
            .filter(|l| l.starts_with("shapes seq "))
            .count(),
        2,
        "{watched}"
    );
    // `jetrtctl watch shapes | head -1`: the reader leaves after a line
    // and jetrtctl ends quietly at its next result (no panic, exit 0).
    {
        use std::io::BufRead;
        let mut child = Command::new(env!("CARGO_BIN_EXE_jetrtctl"))
            .arg("--socket")
            .arg(&d.socket)
            .args(["watch", "shapes"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let mut first = String::new();
        std::io::BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut first)
            .unwrap();
        assert!(first.starts_with("shapes seq "), "{first}");
        let t = Instant::now();
        let status = loop {
            if let Some(s) = child.try_wait().unwrap() {
                break s;
            }
            assert!(
                t.elapsed() < Duration::from_secs(10),
                "jetrtctl watch kept running"
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        let mut err = String::new();
        std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
        assert!(
            status.success() && !err.contains("panicked"),
            "{status:?}: {err}"
        );
    }
    let triangle = tiny_dir().join("images/triangle.png");
    let inferred = ctl(&["infer", "shapes", triangle.to_str().unwrap()]);
    assert!(inferred.contains(": triangle 99."), "{inferred}");
    let o = Command::new(env!("CARGO_BIN_EXE_jetrtctl"))
        .args(["--socket", "/nonexistent/jetrtd.sock", "status"])
        .output()
        .unwrap();
    assert_eq!(o.status.code(), Some(1));
    let err = String::from_utf8_lossy(&o.stderr);
    assert!(
        err.contains("cannot connect to /nonexistent/jetrtd.sock"),
        "{err}"
    );
    // The OS error once, not again as its cause.
    assert_eq!(err.matches("No such file or directory").count(), 1, "{err}");

    // A second start reuses the cached build.
    d.signal(libc::SIGTERM);
    assert!(d
        .wait_exit(Duration::from_secs(10))
        .is_some_and(|s| s.success()));
    assert!(d.log().contains("engine 'tiny': building"));
    let dir = std::mem::replace(&mut d.dir, tempfile::tempdir().unwrap());
    let d2 = Daemon::start_in(dir, "", &body, &[]);
    assert!(
        d2.log().contains("engine 'tiny': using the cached build"),
        "{}",
        d2.log()
    );
}

#[test]
fn file_source_with_the_python_client_matches_engine_builder() {
    let _g = shared();
    if !python3() {
        return;
    }
    let body = format!(
        "{}\n[sources.files]\nkind = \"file\"\npath = \"{}\"\nfps = 20\n\n[pipelines.files]\nsource = \"files\"\nengine = \"tiny\"\n",
        tiny_engine_toml(),
        tiny_dir().join("images").display()
    );
    let d = Daemon::start("", &body);
    let (rgb, w, h) = tiny_image("triangle.png");
    let rgb_file = d.path().join("triangle.rgb");
    std::fs::write(&rgb_file, &rgb).unwrap();
    let out = Command::new("python3")
        .arg(workspace().join("clients/python/tests/e2e_client.py"))
        .arg(&d.socket)
        .arg("files")
        .arg("6")
        .arg(&rgb_file)
        .arg(w.to_string())
        .arg(h.to_string())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python client failed:\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let engine = cached_engine(&d.path().join("state"), "tiny");
    // The folder plays in name order, looping.
    let names = ["circle.png", "cross.png", "square.png", "triangle.png"];
    let mut reference = std::collections::BTreeMap::new();
    for n in names {
        let out_dir = d.path().join(n);
        reference.insert(
            n,
            engine_builder_run(&engine, &tiny_dir().join("images").join(n), &out_dir),
        );
    }
    let mut results = 0;
    for l in &lines {
        match l["kind"].as_str().unwrap() {
            "result" => {
                results += 1;
                let seq = l["seq"].as_u64().unwrap();
                let want = &reference[names[(seq % 4) as usize]];
                assert_close(
                    &raw_output(l),
                    want,
                    &format!("file frame {seq} via the Python client"),
                );
                assert!(l["age"].as_f64().unwrap() < 5.0, "{l}");
            }
            "infer" => assert_close(
                &raw_output(l),
                &reference["triangle.png"],
                "infer via the Python client",
            ),
            "refused" => assert_eq!(l["code"], "bad_request"),
            "stats" => assert!(l["frames"].as_u64().unwrap() >= 6),
            "hello" => assert_eq!(l["server"]["daemon"], "jetrtd"),
            "list" => assert_eq!(l["pipelines"], json!(["files"])),
            other => panic!("unexpected line {other}: {l}"),
        }
    }
    assert_eq!(results, 6);
    assert!(
        stdout.contains("\"kind\": \"stats\""),
        "the reconnect after close() did not happen:\n{stdout}"
    );
}

/// The JetBot example reads P(blocked) from the class its pipeline labels
/// "blocked" (--blocked-label names it here) and, for an engine without
/// labels, from class 0, as the JetBot notebooks number their folders
/// (blocked/ before free/); it follows $JETRTD_SOCKET.
#[test]
fn jetbot_example_reads_p_blocked_of_the_right_class() {
    let _g = shared();
    if !python3() {
        return;
    }
    let bare = tiny_engine_toml()
        .replace("[engines.tiny]", "[engines.bare]")
        .lines()
        .filter(|l| !l.starts_with("labels"))
        .collect::<Vec<_>>()
        .join("\n");
    let body = format!(
        "{}\n{bare}\n[sources.files]\nkind = \"file\"\npath = \"{}\"\nfps = 20\n\n[pipelines.labelled]\nsource = \"files\"\nengine = \"tiny\"\npostprocess = {{ kind = \"topk\", top = 2, probs = true }}\n\n[pipelines.unlabelled]\nsource = \"files\"\nengine = \"bare\"\npostprocess = {{ kind = \"topk\", top = 2, probs = true }}\n",
        tiny_engine_toml(),
        tiny_dir().join("images").display()
    );
    let d = Daemon::start("", &body);
    let engine = cached_engine(&d.path().join("state"), "tiny");
    // The folder plays in name order, looping.
    let names = ["circle.png", "cross.png", "square.png", "triangle.png"];
    let probs: Vec<Vec<f64>> = names
        .iter()
        .map(|n| {
            let logits = engine_builder_run(
                &engine,
                &tiny_dir().join("images").join(n),
                &d.path().join(n),
            );
            let v: Vec<f64> = logits.iter().map(|&x| x as f64).collect();
            jetrt_daemon::postprocess::topk::softmax(&v)
        })
        .collect();
    // labels.txt: circle, square, triangle, cross.
    for (pipeline, label, class) in [("labelled", "triangle", 2), ("unlabelled", "blocked", 0)] {
        let out = Command::new("python3")
            .arg(workspace().join("clients/python/examples/collision_avoidance.py"))
            .args(["--pipeline", pipeline, "--blocked-label", label])
            .args(["--count", "5", "--max-age", "5", "--dry-run"])
            .env("JETRTD_SOCKET", &d.socket)
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "example failed:\n{stdout}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
        // "  seq 12 P(blocked) 0.251 age 3 ms"
        let mut seen = 0;
        for l in stdout.lines().filter(|l| l.contains("P(blocked)")) {
            let w: Vec<&str> = l.split_whitespace().collect();
            let seq: usize = w[1].parse().unwrap();
            let p: f64 = w[3].parse().unwrap();
            let want = probs[seq % 4][class];
            assert!(
                (p - want).abs() < 6e-4,
                "{pipeline} frame {seq}: P(blocked) {p}, class {class} has {want}\n{stdout}"
            );
            seen += 1;
        }
        assert_eq!(seen, 5, "{pipeline}:\n{stdout}");
    }
    // A pipeline that does not exist is a message, not a traceback.
    let out = Command::new("python3")
        .arg(workspace().join("clients/python/examples/collision_avoidance.py"))
        .args(["--pipeline", "nope", "--dry-run", "--socket"])
        .arg(&d.socket)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !out.status.success()
            && stderr.contains("no pipeline 'nope'")
            && !stderr.contains("Traceback"),
        "{stderr}"
    );
}

#[cfg(feature = "gstreamer")]
#[test]
fn gstreamer_videotestsrc_matches_engine_builder() {
    use jetrt_daemon::sources::Source;
    let _g = shared();
    // The `colors` pattern is the same in every frame (the SMPTE pattern
    // has a noise patch), so one frame grabbed here is the frame the
    // daemon runs. YUY2 takes the camera's YUV conversion path.
    let desc =
        "videotestsrc pattern=colors ! video/x-raw,format=YUY2,width=80,height=60,framerate=30/1";
    let grabbed = jetrt_daemon::sources::gst::GstSource::open(desc).and_then(|mut s| {
        let t = Instant::now();
        loop {
            if let Some(f) = s.next(Duration::from_millis(200))? {
                return Ok(f);
            }
            if t.elapsed() > Duration::from_secs(10) {
                return Err(jetrt_daemon::sources::SourceError::Unavailable(
                    "no frame".into(),
                ));
            }
        }
    });
    if !require(
        grabbed.is_ok(),
        "GStreamer with videotestsrc (gstreamer1.0-plugins-base)",
    ) {
        return;
    }
    let frame = grabbed.unwrap();
    // A second source with a pipeline GStreamer cannot build: it waits,
    // saying why, and the first is unaffected.
    let body = format!(
        "{}\n[sources.gst]\nkind = \"gstreamer\"\npipeline = \"{desc}\"\n\n[pipelines.gst]\nsource = \"gst\"\nengine = \"tiny\"\n\n[sources.broken]\nkind = \"gstreamer\"\npipeline = \"no-such-element-jetrt ! videoconvert\"\n\n[pipelines.broken]\nsource = \"broken\"\nengine = \"tiny\"\n",
        tiny_engine_toml()
    );
    let d = Daemon::start("", &body);
    let mut c = d.client();
    c.subscribe("gst").unwrap();
    let r = next_of(&mut c, "gst");
    let (rgb, w, h) = jetrt_daemon::pixel::to_rgb(&frame).unwrap();
    let png = d.path().join("bars.png");
    save_png(&rgb, w, h, &png);
    let engine = cached_engine(&d.path().join("state"), "tiny");
    let want = engine_builder_run(&engine, &png, &d.path().join("ref"));
    assert_close(&raw_output(&r.json), &want, "videotestsrc frame");
    let stats = c.stats().unwrap();
    assert_eq!(
        stats["sources"]["gst"]["status"]["state"], "streaming",
        "{stats}"
    );
    assert_eq!(frame.format, PixelFormat::Yuyv);
    let s = d.wait_stats(
        "the broken GStreamer source waits",
        Duration::from_secs(10),
        |s| {
            s["pipelines"]["broken"]["health"]["state"] == "waiting"
                && s["sources"]["broken"]["status"]["state"] == "waiting"
        },
    );
    let why = s["sources"]["broken"]["status"]["detail"].as_str().unwrap();
    assert!(why.contains("no-such-element-jetrt"), "{why}");
}

#[test]
fn a_client_that_never_reads_does_not_slow_the_others() {
    let _g = MACHINE.write().unwrap_or_else(|e| e.into_inner());
    let body = format!(
        "{}\n[sources.fast]\nkind = \"synthetic\"\nwidth = 64\nheight = 64\nfps = 100\n\n[pipelines.a]\nsource = \"fast\"\nengine = \"tiny\"\n\n[pipelines.b]\nsource = \"fast\"\nengine = \"tiny\"\npostprocess = {{ kind = \"topk\" }}\n",
        tiny_engine_toml()
    );
    let d = Daemon::start("client_queue = 8", &body);
    // The stuck client: subscribes to both pipelines and never reads.
    let mut stuck = d.client();
    stuck.subscribe("a").unwrap();
    stuck.subscribe("b").unwrap();
    // Let the stuck client's socket buffer and outbox fill.
    std::thread::sleep(Duration::from_secs(2));
    let mut reader = d.client();
    reader.subscribe("a").unwrap();
    let measure = |c: &mut jetrt_daemon::client::Client| {
        let t = Instant::now();
        let mut seqs = Vec::new();
        while t.elapsed() < Duration::from_secs(3) {
            seqs.push(next_of(c, "a").json["seq"].as_u64().unwrap());
        }
        (seqs, t.elapsed().as_secs_f64())
    };
    let (seqs, secs) = measure(&mut reader);
    let span = seqs.last().unwrap() - seqs.first().unwrap() + 1;
    let rate = seqs.len() as f64 / secs;
    let stats = reader.stats().unwrap();
    let pipeline_fps = stats["pipelines"]["a"]["fps"].as_f64().unwrap();
    let dropped_total = stats["clients"]["dropped_messages"].as_u64().unwrap();
    let dropped_mine = stats["you"]["dropped_messages"].as_u64().unwrap();
    eprintln!(
        "with a stuck client: reader got {} results in {secs:.1} s ({rate:.1}/s; pipeline {pipeline_fps:.1} fps), {} of {span} frames; the stuck client lost {} messages",
        seqs.len(),
        seqs.len(),
        dropped_total - dropped_mine
    );
    assert!(
        dropped_total - dropped_mine > 0,
        "the stuck client lost nothing; its outbox never filled: {stats}"
    );
    assert_eq!(dropped_mine, 0, "the reading client lost messages: {stats}");
    // The reader got (nearly) every frame the pipeline finished...
    assert!(
        seqs.len() as f64 >= 0.9 * span as f64,
        "{} results over {span} frames",
        seqs.len()
    );
    // ...at the pipeline's rate, which the stuck client did not hold back.
    assert!(
        rate >= 0.8 * pipeline_fps && rate >= 30.0,
        "reader {rate:.1}/s, pipeline {pipeline_fps:.1} fps"
    );
    drop(stuck);
}

/// Replies are never dropped: 2000 pipelined requests (more than the
/// client's queue of 16, their replies more than a socket buffer holds),
/// written before any reply is read, all get their
/// reply, in order, with their ids.
#[test]
fn pipelined_requests_all_get_their_replies() {
    let _g = shared();
    let body = format!(
        "{}\n[sources.pattern]\nkind = \"synthetic\"\nwidth = 32\nheight = 32\nfps = 30\n\n[pipelines.p]\nsource = \"pattern\"\nengine = \"tiny\"\n",
        tiny_engine_toml()
    );
    let d = Daemon::start("client_queue = 16", &body);
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let n = 2000u64;
    let all: Vec<u8> = (0..n)
        .flat_map(|i| {
            let op = if i % 2 == 0 { "hello" } else { "list" };
            frame(format!(r#"{{"op": "{op}", "id": {i}}}"#).as_bytes())
        })
        .collect();
    let mut w = s.try_clone().unwrap();
    let writer = std::thread::spawn(move || w.write_all(&all).unwrap());
    // Read nothing for a while, so that the replies pile up first.
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..n {
        let m = read_msg(&mut s);
        assert_eq!(m["id"], i, "reply {i}: {m}");
    }
    writer.join().unwrap();
}

/// A reload whose config points a running engine at a missing model keeps
/// the engine and its pipeline running (it used to turn it failed); a
/// reload back to the good model changes nothing either.
#[test]
fn a_reload_with_a_missing_model_keeps_the_running_engine() {
    let _g = shared();
    let pipes = "\n[sources.pattern]\nkind = \"synthetic\"\nwidth = 32\nheight = 32\nfps = 30\n\n[pipelines.p]\nsource = \"pattern\"\nengine = \"tiny\"\n";
    let good = format!("{}{pipes}", tiny_engine_toml());
    let d = Daemon::start("", &good);
    d.wait_stats("p runs", Duration::from_secs(10), |s| {
        s["pipelines"]["p"]["frames"].as_u64() >= Some(3)
    });
    let bad = good.replace("model.onnx", "no-such-model.onnx");
    assert_ne!(bad, good);
    d.rewrite_config("", &bad);
    d.signal(libc::SIGHUP);
    let t = Instant::now();
    while !d.log().contains("its pipelines keep the engine they run") {
        assert!(t.elapsed() < Duration::from_secs(20), "{}", d.log());
        std::thread::sleep(Duration::from_millis(50));
    }
    let frames = d.wait_stats("p still runs", Duration::from_secs(10), |s| {
        s["pipelines"]["p"]["health"]["state"] == "running"
    })["pipelines"]["p"]["frames"]
        .as_u64()
        .unwrap();
    d.wait_stats("p goes on", Duration::from_secs(10), |s| {
        s["pipelines"]["p"]["frames"].as_u64() > Some(frames + 3)
    });
    assert!(d.log().contains("no-such-model.onnx"), "{}", d.log());
}

/// A client that subscribes, never reads and half-closes: once its reader
/// sees the end, its writer gives up within a second instead of blocking
/// forever on the full socket (which kept its thread and descriptor).
#[test]
fn a_half_closed_client_that_never_reads_is_let_go() {
    let _g = shared();
    let body = format!(
        "{}\n[sources.fast]\nkind = \"synthetic\"\nwidth = 64\nheight = 64\nfps = 200\n\n[pipelines.a]\nsource = \"fast\"\nengine = \"tiny\"\npostprocess = {{ kind = \"raw\" }}\n",
        tiny_engine_toml()
    );
    let d = Daemon::start("client_queue = 4", &body);
    let fds = || {
        std::fs::read_dir(format!("/proc/{}/fd", d.child.id()))
            .unwrap()
            .count()
    };
    let threads = || {
        std::fs::read_dir(format!("/proc/{}/task", d.child.id()))
            .unwrap()
            .count()
    };
    // A probe connection, so the daemon has settled.
    d.client().stats().unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let (fds0, threads0) = (fds(), threads());
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.write_all(&frame(br#"{"op": "subscribe", "pipeline": "a"}"#))
        .unwrap();
    // Results pile up unread until the socket buffers are full.
    std::thread::sleep(Duration::from_secs(2));
    s.shutdown(std::net::Shutdown::Write).unwrap();
    let t = Instant::now();
    while fds() > fds0 || threads() > threads0 {
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the stuck client still holds {} descriptors and {} threads more",
            fds() - fds0.min(fds()),
            threads() - threads0.min(threads())
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    drop(s);
}

#[test]
fn sighup_reloads_changed_pipelines_and_sigterm_drains_with_sd_notify() {
    let _g = shared();
    let dir = tempfile::tempdir().unwrap();
    let notify_path = dir.path().join("notify");
    let notify = UnixDatagram::bind(&notify_path).unwrap();
    notify
        .set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let recv = |want: &str| -> String {
        let mut buf = [0u8; 4096];
        let t = Instant::now();
        loop {
            let n = notify
                .recv(&mut buf)
                .unwrap_or_else(|e| panic!("no {want} datagram: {e}"));
            let s = String::from_utf8_lossy(&buf[..n]).into_owned();
            if s.contains(want) {
                return s;
            }
            assert!(t.elapsed() < Duration::from_secs(20), "no {want} datagram");
        }
    };
    let base = format!(
        "{}\n[sources.pattern]\nkind = \"synthetic\"\nwidth = 64\nheight = 64\nfps = 30\n\n[sources.cam]\nkind = \"v4l2\"\ndevice = \"{{dir}}/no-such-camera\"\n\n[pipelines.keep]\nsource = \"pattern\"\nengine = \"tiny\"\n\n[pipelines.cam]\nsource = \"cam\"\nengine = \"tiny\"\n",
        tiny_engine_toml()
    );
    let env = [
        ("NOTIFY_SOCKET", notify_path.display().to_string()),
        ("WATCHDOG_USEC", "300000".to_string()),
    ];
    let change_v1 = "\n[pipelines.change]\nsource = \"pattern\"\nengine = \"tiny\"\n";
    let mut d = Daemon::start_in(dir, "", &format!("{base}{change_v1}"), &env);
    let ready = recv("READY=1");
    assert!(ready.contains("STATUS="), "{ready}");
    // READY came only once the socket listened.
    assert!(UnixStream::connect(&d.socket).is_ok());
    // An absent camera leaves its pipeline waiting (degraded) and the
    // watchdog fed.
    recv("WATCHDOG=1");
    let s = d.wait_stats("the camera pipeline waits", Duration::from_secs(10), |s| {
        s["pipelines"]["cam"]["health"]["state"] == "waiting"
    });
    assert!(
        s["pipelines"]["cam"]["health"]["detail"]
            .as_str()
            .unwrap()
            .contains("no-such-camera"),
        "{s}"
    );
    recv("WATCHDOG=1");

    let mut c = d.client();
    c.subscribe("keep").unwrap();
    let before = next_of(&mut c, "keep").json["seq"].as_u64().unwrap();
    d.wait_stats("change has run", Duration::from_secs(10), |s| {
        s["pipelines"]["change"]["frames"].as_u64() >= Some(10)
    });

    // Change one pipeline, add one: SIGHUP.
    let change_v2 = "\n[pipelines.change]\nsource = \"pattern\"\nengine = \"tiny\"\nmax_rate = 5.0\n\n[pipelines.added]\nsource = \"pattern\"\nengine = \"tiny\"\n";
    d.rewrite_config("", &format!("{base}{change_v2}"));
    d.signal(libc::SIGHUP);
    recv("RELOADING=1");
    recv("READY=1");
    assert!(
        d.log()
            .contains("kept [\"cam\", \"keep\"], restarted [\"change\"], started [\"added\"]"),
        "{}",
        d.log()
    );
    // The kept pipeline went on: same connection, same subscription,
    // its frames counted on, its sequence unbroken.
    let after = next_of(&mut c, "keep").json["seq"].as_u64().unwrap();
    assert!(after > before);
    let list = c.list().unwrap();
    let names: Vec<&str> = list["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["added", "cam", "change", "keep"]);
    let change = list["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "change")
        .unwrap();
    assert_eq!(change["max_rate"], 5.0);

    // An invalid config is rejected; the running one stays.
    d.rewrite_config("", &format!("{base}{change_v2}\nunknown_key = 1\n"));
    d.signal(libc::SIGHUP);
    recv("READY=1");
    assert!(
        d.log()
            .contains("reload rejected, the running config stays"),
        "{}",
        d.log()
    );
    assert!(
        d.log().contains("pipelines.added.unknown_key"),
        "{}",
        d.log()
    );
    assert_eq!(c.list().unwrap()["pipelines"].as_array().unwrap().len(), 4);
    next_of(&mut c, "keep");

    // SIGTERM: STOPPING, exit 0, the socket removed, clients closed.
    d.signal(libc::SIGTERM);
    recv("STOPPING=1");
    let st = d
        .wait_exit(Duration::from_secs(10))
        .expect("jetrtd exits after SIGTERM");
    assert!(st.success(), "{st}\n{}", d.log());
    assert!(!d.socket.exists(), "the socket file is left behind");
    let closed = (0..1000).find_map(|_| match c.next_result() {
        Err(jetrt_daemon::client::ClientError::Closed) => Some(()),
        Err(e) => panic!("{e}"),
        Ok(_) => None,
    });
    assert!(closed.is_some());
}

#[test]
fn corrupt_engines_garbage_and_oversized_frames_do_not_stop_the_daemon() {
    let _g = shared();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("corrupt.engine"),
        b"JETRTENG but then nothing useful",
    )
    .unwrap();
    let body = format!(
        "{}\n[engines.broken]\nengine = \"{{dir}}/corrupt.engine\"\n\n[sources.pattern]\nkind = \"synthetic\"\nwidth = 32\nheight = 32\nfps = 30\n\n[pipelines.ok]\nsource = \"pattern\"\nengine = \"tiny\"\n\n[pipelines.bad]\nsource = \"pattern\"\nengine = \"broken\"\n",
        tiny_engine_toml()
    );
    let d = Daemon::start_in(
        dir,
        "max_clients = 3\nmax_message_bytes = 65536",
        &body,
        &[],
    );
    let mut c = d.client();
    let list = c.list().unwrap();
    let bad = list["pipelines"]
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["name"] == "bad")
        .unwrap()
        .clone();
    assert_eq!(bad["health"]["state"], "failed", "{list}");
    assert!(
        bad["health"]["detail"]
            .as_str()
            .unwrap()
            .contains("corrupt.engine"),
        "{bad}"
    );
    c.subscribe("ok").unwrap();
    next_of(&mut c, "ok");
    c.unsubscribe("ok").unwrap();
    match c.infer_image("bad", PixelFormat::Rgb, 1, 1, &[0, 0, 0]) {
        Err(jetrt_daemon::client::ClientError::Daemon { code, .. }) => {
            assert_eq!(code, "pipeline_failed")
        }
        other => panic!("{other:?}"),
    }

    // On a raw connection: garbage, non-objects, unknown ops, bad fields,
    // an oversized frame; each gets an error and the connection survives.
    let mut s = UnixStream::connect(&d.socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let cases: Vec<(Vec<u8>, &str)> = vec![
        (frame(b"\xff\x00garbage"), "bad_request"),
        (frame(b"[1, 2]"), "bad_request"),
        (frame(br#"{"op": "dance"}"#), "bad_request"),
        (frame(br#"{"op": "subscribe"}"#), "bad_request"),
        (frame(br#"{"op": "subscribe", "pipeline": "nope"}"#), "unknown_pipeline"),
        (frame(br#"{"op": "unsubscribe", "pipeline": "nope"}"#), "unknown_pipeline"),
        (frame(br#"{"op": "hello", "protocol": 99}"#), "bad_request"),
        (frame(&vec![b' '; 100_000]), "too_large"),
        (
            [frame(br#"{"op": "infer", "pipeline": "ok", "image": {"format": "rgb", "width": 4, "height": 4}}"#), frame(&[0; 5])].concat(),
            "bad_request",
        ),
        (
            [frame(br#"{"op": "infer", "pipeline": "ok", "image": {"format": "rgb", "width": 4, "height": 4}, "extra": 1}"#), frame(&[0; 48])].concat(),
            "bad_request",
        ),
        (
            [frame(br#"{"op": "push", "source": "pattern", "image": {"format": "gray", "width": 1, "height": 1}}"#), frame(&[0])].concat(),
            "not_a_push_source",
        ),
        (
            [frame(br#"{"op": "infer", "pipeline": "ok", "tensor": {"dtype": "float32", "shape": [1, 3, 64, 64]}}"#), frame(&[0; 12])].concat(),
            "bad_request",
        ),
    ];
    for (bytes, code) in cases {
        s.write_all(&bytes).unwrap();
        let m = read_msg(&mut s);
        assert_eq!(m["type"], "error", "{m}");
        assert_eq!(m["code"], code, "{m}");
    }
    s.write_all(&frame(br#"{"op": "hello", "id": 7}"#)).unwrap();
    let m = read_msg(&mut s);
    assert_eq!(
        (m["type"].as_str(), m["id"].as_i64()),
        (Some("hello"), Some(7)),
        "{m}"
    );
    // An id of null is an id too: echoed.
    s.write_all(&frame(br#"{"op": "hello", "id": null}"#))
        .unwrap();
    let m = read_msg(&mut s);
    assert!(m.get("id").is_some_and(Value::is_null), "{m}");

    // Max clients: `c` and `s` are two of three; the fourth is refused.
    let third = UnixStream::connect(&d.socket).unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let mut fourth = UnixStream::connect(&d.socket).unwrap();
    fourth
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let m = read_msg(&mut fourth);
    assert_eq!(m["code"], "too_many_clients", "{m}");
    drop(third);

    // Random bytes, then a hang-up mid-frame: the daemon carries on.
    s.write_all(&[0, 0, 0x10, 0, 1, 2, 3]).unwrap();
    drop(s);
    std::thread::sleep(Duration::from_millis(200));
    let mut c2 = d.client();
    let stats = c2.stats().unwrap();
    assert_eq!(
        stats["pipelines"]["ok"]["health"]["state"], "running",
        "{stats}"
    );
    assert_eq!(
        stats["pipelines"]["bad"]["health"]["state"], "failed",
        "{stats}"
    );
}

#[test]
fn a_vanished_file_source_waits_and_comes_back() {
    let _g = shared();
    let dir = tempfile::tempdir().unwrap();
    let frames = dir.path().join("frames");
    std::fs::create_dir(&frames).unwrap();
    for n in ["circle.png", "square.png"] {
        std::fs::copy(tiny_dir().join("images").join(n), frames.join(n)).unwrap();
    }
    let body = format!(
        "{}\n[sources.files]\nkind = \"file\"\npath = \"{{dir}}/frames\"\nfps = 20\n\n[pipelines.files]\nsource = \"files\"\nengine = \"tiny\"\n",
        tiny_engine_toml()
    );
    let d = Daemon::start_in(dir, "", &body, &[]);
    d.wait_stats("streaming", Duration::from_secs(10), |s| {
        s["sources"]["files"]["status"]["state"] == "streaming"
    });
    let moved = d.path().join("moved");
    std::fs::rename(&frames, &moved).unwrap();
    let s = d.wait_stats("the source waits", Duration::from_secs(10), |s| {
        s["pipelines"]["files"]["health"]["state"] == "waiting"
    });
    assert_eq!(s["sources"]["files"]["status"]["state"], "waiting", "{s}");
    assert!(
        s["sources"]["files"]["status"]["detail"]
            .as_str()
            .unwrap()
            .contains("frames"),
        "{s}"
    );
    std::fs::rename(&moved, &frames).unwrap();
    let before = s["pipelines"]["files"]["frames"].as_u64().unwrap();
    d.wait_stats("the source is back", Duration::from_secs(15), |s| {
        s["pipelines"]["files"]["health"]["state"] == "running"
            && s["pipelines"]["files"]["frames"].as_u64() > Some(before)
    });
}

#[test]
fn pushed_frames_and_tensors_give_the_same_results_as_infer() {
    let _g = shared();
    let body = format!(
        "{}\n[sources.client]\nkind = \"push\"\n\n[pipelines.pushed]\nsource = \"client\"\nengine = \"tiny\"\n",
        tiny_engine_toml()
    );
    // SAFETY: getgid(2) cannot fail and touches no memory.
    let gid = unsafe { libc::getgid() };
    let d = Daemon::start(
        &format!("socket_mode = \"0640\"\nsocket_group = \"{gid}\""),
        &body,
    );
    let meta = std::fs::metadata(&d.socket).unwrap();
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    assert_eq!(
        (meta.permissions().mode() & 0o777, meta.gid()),
        (0o640, gid)
    );
    let mut sub = d.client();
    sub.subscribe("pushed").unwrap();
    let mut pusher = d.client();
    let (rgb, w, h) = tiny_image("square.png");
    let seq = pusher.push("client", PixelFormat::Rgb, w, h, &rgb).unwrap();
    assert_eq!(seq, 0);
    let r = next_of(&mut sub, "pushed");
    assert_eq!(r.json["seq"], 0);
    let pushed = raw_output(&r.json);
    let inferred = raw_output(
        &pusher
            .infer_image("pushed", PixelFormat::Rgb, w, h, &rgb)
            .unwrap()
            .json,
    );
    assert_eq!(pushed, inferred);
    // The same frame, preprocessed here, as a tensor.
    let pre = jetrt_engine::engine_file::Preprocess {
        input_size: Some([64, 64]),
        mean: [0.5; 3],
        std: [0.25; 3],
        color: jetrt_engine::engine_file::ColorOrder::Rgb,
    };
    let t = jetrt_engine::preprocess::rgb_to_tensor(&rgb, w as usize, h as usize, 64, 64, &pre);
    let by_tensor = raw_output(
        &pusher
            .infer_tensor("pushed", t.shape(), t.as_f32().unwrap())
            .unwrap()
            .json,
    );
    assert_eq!(pushed, by_tensor);
    // A tensor the engine does not take (its bytes right for its own
    // shape) is the request's fault, and names the input and its dims.
    let wrong = vec![0f32; 3 * 32 * 128];
    match pusher.infer_tensor("pushed", &[1, 3, 32, 128], &wrong) {
        Err(jetrt_daemon::client::ClientError::Daemon { code, message }) => {
            assert_eq!(code, "bad_request", "{message}");
            assert!(
                message.contains("1x3x64x64") && message.contains("1x3x32x128"),
                "{message}"
            );
        }
        other => panic!(
            "a 1x3x32x128 tensor was not refused: {:?}",
            other.map(|m| m.json)
        ),
    }
    // A BGR frame of the same image gives the same result.
    let bgr: Vec<u8> = rgb.chunks(3).flat_map(|p| [p[2], p[1], p[0]]).collect();
    let seq = pusher.push("client", PixelFormat::Bgr, w, h, &bgr).unwrap();
    assert_eq!(seq, 1);
    assert_eq!(raw_output(&next_of(&mut sub, "pushed").json), pushed);
}

#[test]
fn squeezenet_pipeline_matches_engine_builder() {
    let _g = shared();
    let models = std::env::var_os("JETRT_MODELS").map(std::path::PathBuf::from);
    let model = models.as_ref().map(|m| m.join("squeezenet1_1/model.onnx"));
    if !require(
        model.as_ref().is_some_and(|m| m.exists()),
        "JETRT_MODELS with squeezenet1_1",
    ) {
        return;
    }
    let model = model.unwrap();
    let body = format!(
        r#"[engines.squeezenet]
onnx = "{}"
input_size = [224, 224]
mean = [0.485, 0.456, 0.406]
std = [0.229, 0.224, 0.225]
threads = 2

[sources.pattern]
kind = "synthetic"
width = 320
height = 240
fps = 5

[pipelines.classify]
source = "pattern"
engine = "squeezenet"
"#,
        model.display()
    );
    let d = Daemon::start("", &body);
    let mut c = d.client();
    c.subscribe("classify").unwrap();
    let r = next_of(&mut c, "classify");
    let seq = r.json["seq"].as_u64().unwrap();
    let frame = d.path().join("frame.png");
    save_png(&render(seq, 320, 240), 320, 240, &frame);
    let engine = cached_engine(&d.path().join("state"), "squeezenet");
    let want = engine_builder_run(&engine, &frame, &d.path().join("ref"));
    assert_eq!(want.len(), 1000);
    assert_close(
        &raw_output(&r.json),
        &want,
        "squeezenet1_1 on a synthetic frame",
    );
}
