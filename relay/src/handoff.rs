//! Broadcasts the accept path hands straight to this node's engine.
//!
//! Without it, a broadcast the accept path has just committed is found again
//! by the engine's next `claim_due`: an `UPDATE … FOR UPDATE SKIP LOCKED`
//! over the due index that moves each row's lease, and the single most
//! expensive statement of `make bench-relay` (about 3 ms per claim of a few
//! hundred rows, a sixth of PostgreSQL's time). A fresh create-payment is
//! instead committed *already leased* to this node (its `next_attempt_ms`
//! is the end of the lease, exactly what a claim would have written) and
//! queued here.
//!
//! Nothing is lost if the queue is: a crash, or a queue that is never
//! drained, leaves rows whose lease runs out, and then any engine's claim
//! picks them up, as it does for a broadcast whose attempt never recorded
//! an outcome. The queue is bounded: past its capacity the accept
//! path commits rows due at once and the claim takes them.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use tokio::sync::Notify;

use nexus_store::broadcasts::{Broadcast, BroadcastState, NewBroadcast};

/// The in-process queue from the accept path to the engine.
pub struct Handoff {
    queue: Mutex<VecDeque<Broadcast>>,
    capacity: usize,
    lease: Duration,
    /// Broadcasts were scheduled in the store, due at once, for a claim to find.
    claim_requested: AtomicBool,
    /// Woken when broadcasts are queued or a claim is requested.
    pub wake: Notify,
}

impl Handoff {
    /// A queue of at most `capacity` broadcasts, each leased for `lease`
    /// (the engine's lease: a claim writes the same).
    pub fn new(capacity: usize, lease: Duration) -> Self {
        Handoff {
            queue: Mutex::new(VecDeque::new()),
            capacity,
            lease,
            claim_requested: AtomicBool::new(false),
            wake: Notify::new(),
        }
    }

    /// How many more broadcasts fit now. The accept path asks before its
    /// commit and queues after it; with one accept batch in flight the
    /// answer cannot shrink in between, as only the engine removes.
    pub fn room(&self) -> usize {
        self.capacity.saturating_sub(self.lock().len())
    }

    /// When a broadcast scheduled at `now_ms` and handed over stops being
    /// this node's (its lease ends, and any claim may take it).
    pub fn leased_until(&self, now_ms: i64) -> i64 {
        now_ms.saturating_add(self.lease.as_millis() as i64)
    }

    /// Queue broadcasts committed leased to this node and wake the engine.
    pub fn push(&self, items: Vec<NewBroadcast>) {
        if items.is_empty() {
            return;
        }
        self.lock().extend(items.into_iter().map(scheduled));
        self.wake.notify_one();
    }

    /// Broadcasts due at once were scheduled in the store (not handed over):
    /// the engine should claim now rather than at its next interval.
    pub fn request_claim(&self) {
        self.claim_requested.store(true, Ordering::Release);
        self.wake.notify_one();
    }

    /// Whether a claim was requested since the last call (and clear it).
    pub fn take_claim_request(&self) -> bool {
        self.claim_requested.swap(false, Ordering::AcqRel)
    }

    /// Up to `max` queued broadcasts, oldest first.
    pub fn take(&self, max: usize) -> Vec<Broadcast> {
        let mut q = self.lock();
        let n = max.min(q.len());
        q.drain(..n).collect()
    }

    /// Broadcasts queued now.
    pub fn len(&self) -> usize {
        self.lock().len()
    }

    /// Nothing queued.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, VecDeque<Broadcast>> {
        // A panic while holding this lock cannot leave the queue half-changed
        // (each operation is one `VecDeque` call): keep using it.
        self.queue.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The row a claim would have returned for `n` (never attempted yet).
fn scheduled(n: NewBroadcast) -> Broadcast {
    Broadcast {
        txid: n.txid,
        payment_id: n.payment_id,
        function: n.function,
        tx: n.tx,
        request_id: n.request_id,
        idempotency_key: n.idempotency_key,
        state: BroadcastState::Scheduled,
        attempts: 0,
        next_attempt_ms: n.next_attempt_ms,
        created_ms: n.now_ms,
        updated_ms: n.now_ms,
        last_reason: None,
        reason_data: None,
        provider: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(txid: &str, now_ms: i64, h: &Handoff) -> NewBroadcast {
        NewBroadcast {
            txid: txid.into(),
            payment_id: format!("p-{txid}"),
            function: "create-payment".into(),
            tx: vec![1, 2, 3],
            request_id: None,
            idempotency_key: format!("txid:{txid}"),
            now_ms,
            next_attempt_ms: h.leased_until(now_ms),
        }
    }

    #[test]
    fn queued_in_order_as_a_claim_would_return_them() {
        let h = Handoff::new(3, Duration::from_secs(60));
        assert_eq!(h.room(), 3);
        h.push(vec![item("a", 1_000, &h), item("b", 1_000, &h)]);
        assert_eq!(h.room(), 1);
        let got = h.take(1);
        assert_eq!(got.len(), 1);
        let a = &got[0];
        assert_eq!(a.txid, "a");
        assert_eq!(a.state, BroadcastState::Scheduled);
        assert_eq!(a.attempts, 0);
        assert_eq!(a.created_ms, 1_000);
        assert_eq!(a.next_attempt_ms, 61_000, "leased as a claim leases");
        assert_eq!(
            h.take(10).iter().map(|b| &b.txid).collect::<Vec<_>>(),
            ["b"]
        );
        assert!(h.is_empty());
        assert_eq!(h.room(), 3);
    }

    #[test]
    fn room_never_goes_negative() {
        let h = Handoff::new(1, Duration::from_secs(1));
        // The accept path may overshoot by a batch (it asked before another
        // batch's push); room saturates at zero.
        h.push(vec![item("a", 0, &h), item("b", 0, &h)]);
        assert_eq!(h.room(), 0);
        assert_eq!(h.len(), 2);
    }

    #[test]
    fn a_claim_request_is_taken_once() {
        let h = Handoff::new(1, Duration::from_secs(1));
        assert!(!h.take_claim_request());
        h.request_claim();
        assert!(h.take_claim_request());
        assert!(!h.take_claim_request());
    }

    #[tokio::test]
    async fn a_push_wakes_the_engine() {
        let h = std::sync::Arc::new(Handoff::new(4, Duration::from_secs(1)));
        let waiter = {
            let h = h.clone();
            tokio::spawn(async move { h.wake.notified().await })
        };
        tokio::task::yield_now().await;
        h.push(vec![item("a", 0, &h)]);
        tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("woken")
            .expect("task");
    }
}
