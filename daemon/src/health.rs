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

/// Why a pipeline counts as stalled, if it does: a frame in work for
/// longer than `timeout`, or frames waiting while nothing finished for
/// `timeout` (plus the wait `max_rate` imposes). No input is never a stall.
pub fn stall(
    busy_for: Option<Duration>,
    idle_for: Option<Duration>,
    input_waiting: bool,
    timeout: Duration,
    rate_wait: Duration,
) -> Option<String> {
    if let Some(b) = busy_for.filter(|b| *b > timeout) {
        return Some(format!(
            "one frame has been in work for {:.1} s (stall_timeout {:.1} s)",
            b.as_secs_f64(),
            timeout.as_secs_f64()
        ));
    }
    if input_waiting && busy_for.is_none() && idle_for.is_some_and(|d| d > timeout + rate_wait) {
        return Some(format!(
            "frames wait but none was processed for {:.1} s",
            timeout.as_secs_f64()
        ));
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_input_without_progress_is_a_stall() {
        let s = Duration::from_secs;
        let t = s(10);
        // Idle with nothing to do (an absent camera): not a stall.
        assert_eq!(stall(None, Some(s(60)), false, t, s(0)), None);
        assert_eq!(stall(None, None, false, t, s(0)), None);
        // Working, within the timeout: fine; past it: stalled.
        assert_eq!(stall(Some(s(3)), Some(s(3)), true, t, s(0)), None);
        assert!(stall(Some(s(11)), None, true, t, s(0)).is_some());
        // Frames waiting, nothing done for long: stalled, unless max_rate
        // explains the wait.
        assert!(stall(None, Some(s(11)), true, t, s(0)).is_some());
        assert_eq!(stall(None, Some(s(11)), true, t, s(5)), None);
    }

    #[test]
    fn progress_tracks_work() {
        let p = Progress::default();
        assert_eq!(p.busy_for(), None);
        p.begin();
        assert!(p.busy_for().is_some());
        p.end();
        assert_eq!(p.busy_for(), None);
        assert!(p.idle_for().is_some());
    }
}
