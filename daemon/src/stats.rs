//! Per-pipeline statistics: frames, rate, capture-to-publish latency and
//! engine time percentiles over a recent window, drops and errors.

use serde_json::json;
use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Samples kept for percentiles and rate.
const WINDOW: usize = 1024;
/// Rate is measured over at most this much recent time.
const RATE_SPAN: Duration = Duration::from_secs(5);

#[derive(Default)]
struct Samples {
    // (when published, capture->publish ms, engine ms)
    v: VecDeque<(Instant, f64, f64)>,
}

fn percentile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) as f64 * q).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

#[derive(Default)]
pub struct PipelineStats {
    pub frames: AtomicU64,
    pub infers: AtomicU64,
    pub errors: AtomicU64,
    /// Frames skipped to keep under `max_rate`.
    pub skipped: AtomicU64,
    /// Frames dropped by the latest-frame queue (shared with the fanout).
    pub queue_drops: Arc<AtomicU64>,
    samples: Mutex<Samples>,
}

impl PipelineStats {
    pub fn new(queue_drops: Arc<AtomicU64>) -> Self {
        PipelineStats {
            queue_drops,
            ..Default::default()
        }
    }

    pub fn record(&self, latency_ms: f64, engine_ms: f64) {
        self.frames.fetch_add(1, Ordering::Relaxed);
        let mut s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        if s.v.len() == WINDOW {
            s.v.pop_front();
        }
        s.v.push_back((Instant::now(), latency_ms, engine_ms));
    }

    /// Frames per second over the last few seconds.
    pub fn fps(&self) -> f64 {
        let s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        let recent: Vec<Instant> =
            s.v.iter()
                .map(|x| x.0)
                .filter(|t| now.duration_since(*t) <= RATE_SPAN)
                .collect();
        match (recent.first(), recent.last()) {
            (Some(a), Some(b)) if recent.len() >= 2 && b > a => {
                (recent.len() - 1) as f64 / b.duration_since(*a).as_secs_f64()
            }
            _ => 0.0,
        }
    }

    pub fn to_json(&self) -> serde_json::Value {
        let (mut lat, mut eng): (Vec<f64>, Vec<f64>) = {
            let s = self.samples.lock().unwrap_or_else(|e| e.into_inner());
            s.v.iter().map(|x| (x.1, x.2)).unzip()
        };
        lat.sort_by(f64::total_cmp);
        eng.sort_by(f64::total_cmp);
        json!({
            "frames": self.frames.load(Ordering::Relaxed),
            "infers": self.infers.load(Ordering::Relaxed),
            "errors": self.errors.load(Ordering::Relaxed),
            "skipped_for_rate": self.skipped.load(Ordering::Relaxed),
            "queue_drops": self.queue_drops.load(Ordering::Relaxed),
            "fps": self.fps(),
            "latency_ms": {"p50": percentile(&lat, 0.5), "p99": percentile(&lat, 0.99), "samples": lat.len()},
            "engine_ms": {"p50": percentile(&eng, 0.5), "p99": percentile(&eng, 0.99)},
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles() {
        let v: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(percentile(&v, 0.5), 51.0);
        assert_eq!(percentile(&v, 0.99), 99.0);
        assert_eq!(percentile(&[], 0.5), 0.0);
        let s = PipelineStats::default();
        s.record(3.0, 1.0);
        assert_eq!(s.to_json()["latency_ms"]["p50"], 3.0);
    }
}
