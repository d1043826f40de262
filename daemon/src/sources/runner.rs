//! The thread that runs a source: open, pull frames, publish them to the
//! pipelines' queues; on failure report why, back off, reopen. This is how
//! an unplugged camera, a GStreamer pipeline that errors or a file that
//! vanished leave the pipelines waiting (degraded) instead of wedged, and
//! how they come back on their own.

use super::fanout::Fanout;
use super::status::{SourceState, SourceStatus};
use super::{open, SourceError};
use crate::config::{SourceConfig, SourceKind};
use crate::frame::Frame;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

/// How long `next` may block before the thread checks for a stop.
const POLL: Duration = Duration::from_millis(100);
const BACKOFF_MIN: Duration = Duration::from_millis(250);
const BACKOFF_MAX: Duration = Duration::from_secs(5);

/// A running source.
pub struct SourceHandle {
    pub name: String,
    pub config: SourceConfig,
    pub fanout: Arc<Fanout>,
    pub status: Arc<SourceStatus>,
    stop: Arc<AtomicBool>,
    thread: Mutex<Option<JoinHandle<()>>>,
}

impl SourceHandle {
    /// Starts the source's thread (push sources have none).
    pub fn start(name: &str, config: &SourceConfig) -> std::io::Result<Self> {
        let fanout = Arc::new(Fanout::new(config.queue));
        let stop = Arc::new(AtomicBool::new(false));
        let (status, thread) = if config.kind == SourceKind::Push {
            (Arc::new(SourceStatus::new(SourceState::ClientFed)), None)
        } else {
            let status = Arc::new(SourceStatus::new(SourceState::Starting));
            let (n, c, f, s, st) = (
                name.to_string(),
                config.clone(),
                fanout.clone(),
                status.clone(),
                stop.clone(),
            );
            let t = std::thread::Builder::new()
                .name(format!("src-{name}"))
                .spawn(move || run(&n, &c, &f, &s, &st))?;
            (status, Some(t))
        };
        Ok(SourceHandle {
            name: name.to_string(),
            config: config.clone(),
            fanout,
            status,
            stop,
            thread: Mutex::new(thread),
        })
    }

    pub fn is_push(&self) -> bool {
        self.config.kind == SourceKind::Push
    }

    /// Publishes a frame a client pushed; returns its sequence number.
    pub fn push(&self, frame: Frame) -> u64 {
        self.status.frame();
        self.fanout.publish(frame)
    }

    /// Stops the thread and waits for it.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
        let thread = self.thread.lock().unwrap_or_else(|e| e.into_inner()).take();
        if let Some(t) = thread {
            if t.join().is_err() {
                log::error!("source '{}': its thread panicked", self.name);
            }
        }
        self.status.set(SourceState::Stopped);
    }
}

impl Drop for SourceHandle {
    fn drop(&mut self) {
        self.stop();
    }
}

fn run(name: &str, cfg: &SourceConfig, fanout: &Fanout, status: &SourceStatus, stop: &AtomicBool) {
    let mut backoff = BACKOFF_MIN;
    while !stop.load(Ordering::Relaxed) {
        let why = match open(cfg) {
            Ok(mut src) => loop {
                if stop.load(Ordering::Relaxed) {
                    return;
                }
                match src.next(POLL) {
                    Ok(Some(frame)) => {
                        if status.set(SourceState::Streaming) {
                            log::info!(
                                "source '{name}': streaming {}x{} {}",
                                frame.width,
                                frame.height,
                                frame.format.name()
                            );
                        }
                        status.frame();
                        fanout.publish(frame);
                        backoff = BACKOFF_MIN;
                    }
                    Ok(None) => {}
                    Err(SourceError::Ended) => {
                        status.set(SourceState::Ended);
                        log::info!("source '{name}': reached its end (loop = false)");
                        while !stop.load(Ordering::Relaxed) {
                            std::thread::sleep(POLL);
                        }
                        return;
                    }
                    Err(SourceError::Unavailable(msg)) => break msg,
                }
            },
            Err(SourceError::Ended) => "ended before its first frame".to_string(),
            Err(SourceError::Unavailable(msg)) => msg,
        };
        status.errors.fetch_add(1, Ordering::Relaxed);
        if status.set(SourceState::Waiting(why.clone())) {
            log::warn!(
                "source '{name}': {why}; pipelines reading it wait, retrying every {:.1} s at most",
                BACKOFF_MAX.as_secs_f64()
            );
        }
        let until = Instant::now() + backoff;
        while Instant::now() < until && !stop.load(Ordering::Relaxed) {
            std::thread::sleep(Duration::from_millis(25));
        }
        backoff = (backoff * 2).min(BACKOFF_MAX);
    }
}
