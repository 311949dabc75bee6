//! Broadcast outcomes waiting for their payment events.
//!
//! The engine records each attempt in the broadcast schedule itself, then
//! leaves the payment's event (`payment:submitted`, `payment:retrying`,
//! `payment:failed`) here, and the accept batcher commits it with its next
//! batch of new payments. One writer, one history transaction and one fsync
//! per cycle: when the engine committed its own events, its commits and the
//! accept batches queued for the same (serial) ingest lock, and each waited
//! out the other's fsync: that wait was the tail of `make bench-relay`.
//!
//! Losing this queue (a crash) loses no broadcast, only events that the
//! indexer replaces with its own once the node reports the transaction,
//! exactly as when the engine's own event commit failed.

use std::collections::VecDeque;
use std::sync::Mutex;

use tokio::sync::Notify;

use crate::engine::Done;

/// Outcomes recorded by the engine, oldest first.
#[derive(Default)]
pub struct Outcomes {
    queue: Mutex<VecDeque<Done>>,
    /// Woken when outcomes are queued.
    pub wake: Notify,
}

impl Outcomes {
    pub fn new() -> Self {
        Self::default()
    }

    /// Queue recorded outcomes and wake the batcher.
    pub fn push(&self, done: Vec<Done>) {
        if done.is_empty() {
            return;
        }
        self.lock().extend(done);
        self.wake.notify_one();
    }

    /// Put outcomes a batch could not commit back at the front, in order.
    pub fn requeue(&self, done: Vec<Done>) {
        if done.is_empty() {
            return;
        }
        let mut q = self.lock();
        for d in done.into_iter().rev() {
            q.push_front(d);
        }
        drop(q);
        self.wake.notify_one();
    }

    /// Up to `max` outcomes, oldest first.
    pub fn take(&self, max: usize) -> Vec<Done> {
        let mut q = self.lock();
        let n = max.min(q.len());
        q.drain(..n).collect()
    }

    /// Outcomes queued now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Nothing queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Done>> {
        // Each operation is one `VecDeque` call: a panic elsewhere while the
        // lock was held cannot have left the queue half-changed.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}
