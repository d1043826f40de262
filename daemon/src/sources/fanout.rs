//! One source, several pipelines: each pipeline has its own latest-frame
//! queue, so a slow pipeline drops its own frames and never holds back a
//! fast one. Frames are shared (`Arc`), not copied.

use crate::frame::Frame;
use crate::latest::{latest, LatestSender};
use crossbeam_channel::Receiver;
use std::sync::{Arc, Mutex};

pub type FrameRx = Receiver<Arc<Frame>>;

/// A pipeline's queue: its name, the sending side, and its receiver (kept
/// to report how many frames wait).
type Queue = (String, LatestSender<Arc<Frame>>, FrameRx);

pub struct Fanout {
    depth: usize,
    queues: Mutex<Vec<Queue>>,
    seq: std::sync::atomic::AtomicU64,
}

impl Fanout {
    pub fn new(depth: usize) -> Self {
        Fanout {
            depth,
            queues: Mutex::new(Vec::new()),
            seq: Default::default(),
        }
    }

    /// A queue for pipeline `name`, replacing any it had.
    pub fn attach(&self, name: &str) -> (FrameRx, LatestSender<Arc<Frame>>) {
        let (tx, rx) = latest(self.depth);
        let mut q = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        q.retain(|(n, _, _)| n != name);
        q.push((name.to_string(), tx.clone(), rx.clone()));
        (rx, tx)
    }

    pub fn detach(&self, name: &str) {
        let mut q = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        q.retain(|(n, _, _)| n != name);
    }

    /// Numbers the frame and hands it to every pipeline; returns its seq.
    pub fn publish(&self, mut frame: Frame) -> u64 {
        frame.seq = self.seq.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let seq = frame.seq;
        let frame = Arc::new(frame);
        let q = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        for (_, tx, _) in q.iter() {
            tx.push(frame.clone());
        }
        seq
    }

    /// Frames dropped, per pipeline.
    pub fn drops(&self) -> Vec<(String, u64)> {
        let q = self.queues.lock().unwrap_or_else(|e| e.into_inner());
        q.iter().map(|(n, tx, _)| (n.clone(), tx.drops())).collect()
    }
}
