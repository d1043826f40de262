//! The latest-frame policy: a bounded queue that, when full, drops its
//! oldest item to make room, counting each drop. A pipeline slower than its
//! camera then always works on a recent frame, latency stays bounded and
//! memory never grows, the complaints users have of buffered camera
//! pipelines.

use crossbeam_channel::{bounded, Receiver, Sender, TryRecvError, TrySendError};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// The producing side: keeps a receiver too, to take out the oldest item.
pub struct LatestSender<T> {
    tx: Sender<T>,
    oldest: Receiver<T>,
    drops: Arc<AtomicU64>,
}

impl<T> Clone for LatestSender<T> {
    fn clone(&self) -> Self {
        LatestSender {
            tx: self.tx.clone(),
            oldest: self.oldest.clone(),
            drops: self.drops.clone(),
        }
    }
}

/// A queue of `depth` items with drop-oldest; returns both ends.
pub fn latest<T>(depth: usize) -> (LatestSender<T>, Receiver<T>) {
    let (tx, rx) = bounded(depth.max(1));
    (
        LatestSender {
            tx,
            oldest: rx.clone(),
            drops: Arc::new(AtomicU64::new(0)),
        },
        rx,
    )
}

impl<T> LatestSender<T> {
    /// Queues `item`, dropping the oldest items while the queue is full.
    /// Returns false when every receiver is gone.
    pub fn push(&self, mut item: T) -> bool {
        loop {
            match self.tx.try_send(item) {
                Ok(()) => return true,
                Err(TrySendError::Full(back)) => {
                    item = back;
                    match self.oldest.try_recv() {
                        Ok(_) => {
                            self.drops.fetch_add(1, Ordering::Relaxed);
                        }
                        // The consumer took it meanwhile: there is room now.
                        Err(TryRecvError::Empty) => {}
                        Err(TryRecvError::Disconnected) => return false,
                    }
                }
                Err(TrySendError::Disconnected(_)) => return false,
            }
        }
    }

    /// Items dropped so far.
    pub fn drops(&self) -> u64 {
        self.drops.load(Ordering::Relaxed)
    }

    pub fn drop_counter(&self) -> Arc<AtomicU64> {
        self.drops.clone()
    }

    /// Items waiting.
    pub fn len(&self) -> usize {
        self.tx.len()
    }

    pub fn is_empty(&self) -> bool {
        self.tx.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_newest_and_counts_drops() {
        let (tx, rx) = latest(2);
        for i in 0..5 {
            assert!(tx.push(i));
        }
        assert_eq!(tx.drops(), 3);
        assert_eq!(rx.try_iter().collect::<Vec<_>>(), vec![3, 4]);
        assert!(tx.push(9));
        assert_eq!(rx.recv().unwrap(), 9);
        drop(rx);
        // The sender's own receiver keeps the channel open; the caller
        // learns that consumers are gone from its own bookkeeping.
    }
}
