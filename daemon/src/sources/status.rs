//! A source's state as reported in stats and STATUS lines.

use serde::Serialize;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Instant;

#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "state", content = "detail", rename_all = "snake_case")]
pub enum SourceState {
    Starting,
    Streaming,
    /// No frames; retrying (an absent camera, a missing file). Degraded,
    /// not wedged.
    Waiting(String),
    /// A file source that does not loop reached its end.
    Ended,
    /// Push sources: waiting for clients.
    ClientFed,
    Stopped,
}

#[derive(Debug)]
pub struct SourceStatus {
    pub state: Mutex<SourceState>,
    pub frames: AtomicU64,
    pub errors: AtomicU64,
    pub last_frame: Mutex<Option<Instant>>,
}

impl SourceStatus {
    pub fn new(state: SourceState) -> Self {
        SourceStatus {
            state: Mutex::new(state),
            frames: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            last_frame: Mutex::new(None),
        }
    }

    pub fn state(&self) -> SourceState {
        self.state.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Sets the state; true when it changed (worth a log line).
    pub fn set(&self, s: SourceState) -> bool {
        let mut g = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let changed = *g != s;
        *g = s;
        changed
    }

    pub fn frame(&self) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        *self.last_frame.lock().unwrap_or_else(|e| e.into_inner()) = Some(Instant::now());
    }
}
