//! Pipeline health, for STATUS lines, stats and the systemd watchdog.
//!
//! A pipeline waiting for frames (an absent camera, a vanished file) is
//! degraded, not wedged: the watchdog keeps being fed. Only a pipeline
//! that holds a frame and makes no progress for its stall timeout counts
//! as stalled, which stops the pings so that systemd restarts the daemon.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Milliseconds since the process started (never 0), for atomics.
pub fn now_ms() -> u64 {
    static START: OnceLock<Instant> = OnceLock::new();
    START.get_or_init(Instant::now).elapsed().as_millis() as u64 + 1
}

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum Health {
    Running,
    /// Waiting for its source; why.
    Waiting(String),
    /// Could not start (engine missing, input not an image...); why.
    Failed(String),
    /// Holds input and makes no progress.
    Stalled(String),
}

impl Health {
    pub fn is_ok(&self) -> bool {
        matches!(self, Health::Running)
    }
}

/// What the pipeline thread publishes about its progress.
#[derive(Default)]
pub struct Progress {
    /// When the frame in work was taken (0: idle).
    busy_since: AtomicU64,
    /// When a frame was last finished.
    last_done: AtomicU64,
}

impl Progress {
    pub fn begin(&self) {
        self.busy_since.store(now_ms(), Ordering::Relaxed);
    }

    pub fn end(&self) {
        self.busy_since.store(0, Ordering::Relaxed);
        self.last_done.store(now_ms(), Ordering::Relaxed);
    }

    /// How long the frame in work has taken, if one is.
    pub fn busy_for(&self) -> Option<Duration> {
        match self.busy_since.load(Ordering::Relaxed) {
            0 => None,
            t => Some(Duration::from_millis(now_ms().saturating_sub(t))),
        }
    }

    /// Time since the last finished frame, if any.
    pub fn idle_for(&self) -> Option<Duration> {
        match self.last_done.load(Ordering::Relaxed) {
            0 => None,
            t => Some(Duration::from_millis(now_ms().saturating_sub(t))),
        }
    }
}
