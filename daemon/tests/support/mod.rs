//! Helpers for the daemon's end-to-end tests: a real `jetrtd` process on a
//! temporary socket, its log, signals, and the reference runs of
//! `engine-builder`.

#![allow(dead_code)]

use jetrt_daemon::client::Client;
use std::io::Write;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::RwLock;
use std::time::{Duration, Instant};

/// Timing-sensitive tests take this exclusively; the others share it.
pub static MACHINE: RwLock<()> = RwLock::new(());

pub fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

pub fn tiny_dir() -> PathBuf {
    workspace().join("models/tiny")
}

/// The `[engines.tiny]` table: the bundled model built on first start.
pub fn tiny_engine_toml() -> String {
    let d = tiny_dir();
    format!(
        r#"[engines.tiny]
onnx = "{}"
input_size = [64, 64]
mean = [0.5, 0.5, 0.5]
std = [0.25, 0.25, 0.25]
labels = "{}"
threads = 1
"#,
        d.join("model.onnx").display(),
        d.join("labels.txt").display()
    )
}

/// A binary of the workspace, from the target folder this test was built in.
pub fn workspace_bin(name: &str) -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let dir = exe
        .parent()
        .and_then(Path::parent)
        .expect("target/<profile> folder");
    let p = dir.join(name);
    assert!(
        p.exists(),
        "{} is missing: build the workspace's binaries with this test's profile first (cargo build --workspace --bins --profile ci)",
        p.display()
    );
    p
}

/// Whether a test that needs `what` must fail (CI) or may skip here.
pub fn require(available: bool, what: &str) -> bool {
    if available {
        return true;
    }
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{what} is not available, and CI=true: this test cannot be skipped in CI");
    }
    eprintln!("skipped: {what} is not available");
    false
}

/// Whether python3 runs here, as [`require`] wants it (a test of the
/// Python client or examples skips, saying so, without it).
pub fn python3() -> bool {
    let ok = Command::new("python3")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    require(ok, "python3")
}

pub struct Daemon {
    pub child: Child,
    pub dir: tempfile::TempDir,
    pub socket: PathBuf,
    pub config: PathBuf,
    pub log: PathBuf,
}

impl Daemon {
    /// Writes `body` (with `{dir}` replaced by a fresh temporary folder)
    /// after a `[daemon]` table for that folder, and starts jetrtd on it.
    pub fn start(daemon_extra: &str, body: &str) -> Daemon {
        Self::start_with_env(daemon_extra, body, &[])
    }

    pub fn start_with_env(daemon_extra: &str, body: &str, env: &[(&str, String)]) -> Daemon {
        let dir = tempfile::tempdir().expect("temp dir");
        Self::start_in(dir, daemon_extra, body, env)
    }

    pub fn start_in(
        dir: tempfile::TempDir,
        daemon_extra: &str,
        body: &str,
        env: &[(&str, String)],
    ) -> Daemon {
        let socket = dir.path().join("jetrtd.sock");
        let config = dir.path().join("jetrtd.toml");
        write_config(&config, dir.path(), daemon_extra, body);
        let log = dir.path().join("jetrtd.log");
        let logf = std::fs::File::create(&log).expect("log file");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_jetrtd"));
        cmd.arg("--config")
            .arg(&config)
            .env_remove("NOTIFY_SOCKET")
            .env_remove("WATCHDOG_USEC")
            .env("RUST_LOG", "info")
            .stdin(Stdio::null())
            .stdout(logf.try_clone().expect("log file"))
            .stderr(logf);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("jetrtd starts");
        let mut d = Daemon {
            child,
            dir,
            socket,
            config,
            log,
        };
        d.wait_listening(Duration::from_secs(60));
        d
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn wait_listening(&mut self, timeout: Duration) {
        let t = Instant::now();
        while t.elapsed() < timeout {
            if let Ok(Some(st)) = self.child.try_wait() {
                panic!("jetrtd exited ({st}) before listening:\n{}", self.log());
            }
            if UnixStream::connect(&self.socket).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("jetrtd did not listen within {timeout:?}:\n{}", self.log());
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn client(&self) -> Client {
        let mut c = Client::connect(&self.socket, Duration::from_secs(10)).expect("connects");
        c.hello("e2e").expect("hello");
        c
    }

    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) with the pid of a child this test started and
        // still owns (not yet reaped), so the pid cannot have been reused.
        let rc = unsafe { libc::kill(self.child.id() as i32, sig) };
        assert_eq!(rc, 0, "kill failed");
    }

    pub fn rewrite_config(&self, daemon_extra: &str, body: &str) {
        write_config(&self.config, self.dir.path(), daemon_extra, body);
    }

    pub fn wait_exit(&mut self, timeout: Duration) -> Option<ExitStatus> {
        let t = Instant::now();
        while t.elapsed() < timeout {
            if let Ok(Some(st)) = self.child.try_wait() {
                return Some(st);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        None
    }

    /// Polls `f` on fresh stats until it holds, or panics with the log.
    pub fn wait_stats(
        &self,
        what: &str,
        timeout: Duration,
        f: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let mut c = self.client();
        let t = Instant::now();
        loop {
            let s = c.stats().expect("stats");
            if f(&s) {
                return s;
            }
            if t.elapsed() > timeout {
                panic!(
                    "{what}: not within {timeout:?}; last stats {s:#}\nlog:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

fn write_config(path: &Path, dir: &Path, daemon_extra: &str, body: &str) {
    let text = format!(
        "version = 1\n\n[daemon]\nsocket = \"{d}/jetrtd.sock\"\nstate_dir = \"{d}/state\"\n{daemon_extra}\n{}",
        body.replace("{dir}", &dir.display().to_string()),
        d = dir.display(),
    );
    let mut f = std::fs::File::create(path).expect("config file");
    f.write_all(text.as_bytes()).expect("config written");
}

/// The engine file the daemon cached for `name` in its state dir.
pub fn cached_engine(state: &Path, name: &str) -> PathBuf {
    let dir = state.join("engines");
    std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(&format!("{name}-")) && n.ends_with(".engine"))
        })
        .unwrap_or_else(|| panic!("no cached engine for {name} in {}", dir.display()))
}

/// `engine-builder run ENGINE --image IMAGE`: its first output.
pub fn engine_builder_run(engine: &Path, image: &Path, out: &Path) -> Vec<f32> {
    let o = Command::new(workspace_bin("engine-builder"))
        .arg("run")
        .arg(engine)
        .arg("--image")
        .arg(image)
        .arg("-o")
        .arg(out)
        .output()
        .expect("engine-builder runs");
    assert!(
        o.status.success(),
        "engine-builder run failed: {}",
        String::from_utf8_lossy(&o.stderr)
    );
    let (t, _) = engine_builder::onnx::read_pb(&out.join("output_0.pb")).expect("output_0.pb");
    t.as_f32().expect("float32 output").to_vec()
}

/// Saves packed RGB8 as a PNG (lossless, so the reference sees the very pixels).
pub fn save_png(rgb: &[u8], w: u32, h: u32, path: &Path) {
    image::RgbImage::from_raw(w, h, rgb.to_vec())
        .expect("size matches")
        .save(path)
        .expect("png written");
}

/// max|got-want| <= 1e-5 * max|want|, the closeness the daemon promises
/// against `engine-builder run` on the same frame.
pub fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: lengths differ");
    let max_ref = want.iter().fold(0f32, |m, v| m.max(v.abs()));
    let max_err = got
        .iter()
        .zip(want)
        .fold(0f32, |m, (a, b)| m.max((a - b).abs()));
    assert!(
        max_err <= 1e-5 * max_ref,
        "{what}: max error {max_err} over 1e-5 x {max_ref}\n got {got:?}\nwant {want:?}"
    );
}

/// The first tensor of a `raw` result as f32.
pub fn raw_output(result: &serde_json::Value) -> Vec<f32> {
    result["output"]["tensors"][0]["data"]
        .as_array()
        .unwrap_or_else(|| panic!("not a raw result: {result}"))
        .iter()
        .map(|v| v.as_f64().expect("number") as f32)
        .collect()
}

/// Reads results until one of `pipeline` arrives.
pub fn next_of(c: &mut Client, pipeline: &str) -> jetrt_daemon::client::Message {
    loop {
        let m = c.next_result().expect("a result");
        if m.kind() == "result" && m.json["pipeline"] == pipeline {
            return m;
        }
    }
}

/// `bytes` as one frame (length first), whatever they hold: for sending
/// what a well-behaved client would not.
pub fn frame(bytes: &[u8]) -> Vec<u8> {
    [&(bytes.len() as u32).to_be_bytes()[..], bytes].concat()
}

/// The next message on a raw connection, as JSON.
pub fn read_msg(s: &mut UnixStream) -> serde_json::Value {
    let f = jetrt_daemon::protocol::read_frame(s, usize::MAX).expect("a message");
    serde_json::from_slice(&f).expect("a JSON message")
}
