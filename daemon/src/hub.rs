//! Who gets what: each client's outbox (subscription results bounded,
//! dropping the oldest when full and counting the loss; replies to its
//! requests never dropped) and the subscriptions of clients to pipelines. A pipeline publishes by queueing one shared, already
//! encoded message per subscriber; it never waits on a client.

use crate::latest::{latest, LatestSender};
use crossbeam_channel::{unbounded, Receiver, Sender};
use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// Encoded bytes of one message (and its binary frame), shared.
pub type Wire = Arc<Vec<u8>>;

/// A client's outbox: the sending side, held by the hub and by pipelines
/// answering that client's `infer`.
#[derive(Clone)]
pub struct Outbox {
    pub client: u64,
    tx: LatestSender<Wire>,
    /// Replies to requests, never dropped: the reader stops taking requests
    /// while `depth` of them wait (`reply_room`), and a pipeline answers at
    /// most its queue of infer requests, so this stays small.
    replies: Sender<Wire>,
    depth: usize,
    pub sent: Arc<AtomicU64>,
}

/// What a client's writer drains: replies first, then results.
pub struct Inbox {
    pub replies: Receiver<Wire>,
    pub results: Receiver<Wire>,
}

impl Outbox {
    /// A new outbox of `depth` results (and replies) and what its writer
    /// drains.
    pub fn new(client: u64, depth: usize) -> (Self, Inbox) {
        let (tx, results) = latest(depth);
        let (replies_tx, replies) = unbounded();
        (
            Outbox {
                client,
                tx,
                replies: replies_tx,
                depth: depth.max(1),
                sent: Arc::new(AtomicU64::new(0)),
            },
            Inbox { replies, results },
        )
    }

    /// Queues a subscription result, dropping the oldest one if the client
    /// is behind.
    pub fn send(&self, w: Wire) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        self.tx.push(w);
    }

    /// Queues the reply to a request; it is never dropped.
    pub fn reply(&self, w: Wire) {
        self.sent.fetch_add(1, Ordering::Relaxed);
        let _ = self.replies.send(w);
    }

    /// Whether fewer than `depth` replies wait: the reader takes the next
    /// request only then, so a client that does not read its replies stops
    /// being read instead of losing them.
    pub fn reply_room(&self) -> bool {
        self.replies.len() < self.depth
    }

    /// Messages this client lost because it did not read them in time.
    pub fn dropped(&self) -> u64 {
        self.tx.drops()
    }
}

#[derive(Default)]
pub struct Hub {
    subs: Mutex<BTreeMap<String, Vec<Outbox>>>,
    /// Messages lost by clients that have gone, so the total stays true.
    dropped_gone: AtomicU64,
}

impl Hub {
    pub fn subscribe(&self, pipeline: &str, out: &Outbox) {
        let mut s = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        let v = s.entry(pipeline.to_string()).or_default();
        if !v.iter().any(|o| o.client == out.client) {
            v.push(out.clone());
        }
    }

    /// Returns whether the client was subscribed.
    pub fn unsubscribe(&self, pipeline: &str, client: u64) -> bool {
        let mut s = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        let Some(v) = s.get_mut(pipeline) else {
            return false;
        };
        let before = v.len();
        v.retain(|o| o.client != client);
        before != v.len()
    }

    /// Forgets a client that disconnected.
    pub fn remove_client(&self, out: &Outbox) {
        let mut s = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        for v in s.values_mut() {
            v.retain(|o| o.client != out.client);
        }
        self.dropped_gone
            .fetch_add(out.dropped(), Ordering::Relaxed);
    }

    /// Whether anyone listens to `pipeline` (to skip encoding otherwise).
    pub fn has_subscribers(&self, pipeline: &str) -> bool {
        let s = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        s.get(pipeline).is_some_and(|v| !v.is_empty())
    }

    pub fn publish(&self, pipeline: &str, w: &Wire) {
        let s = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(v) = s.get(pipeline) {
            for o in v {
                o.send(w.clone());
            }
        }
    }

    pub fn subscribers(&self, pipeline: &str) -> usize {
        let s = self.subs.lock().unwrap_or_else(|e| e.into_inner());
        s.get(pipeline).map_or(0, Vec::len)
    }

    pub fn dropped_by_gone_clients(&self) -> u64 {
        self.dropped_gone.load(Ordering::Relaxed)
    }
}
