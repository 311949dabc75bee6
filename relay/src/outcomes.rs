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

use nexus_core::domain::{EventType, Payment, PaymentEvent, PaymentStatus, RetryInfo};

use nexus_store::broadcasts::{Attempt, Broadcast, Next};

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

    /// Up to `max` outcomes, oldest first. Any left behind keep a wake-up
    /// pending, so the batcher comes back for them even if nothing else
    /// arrives (no request, no new outcome).
    pub fn take(&self, max: usize) -> Vec<Done> {
        let mut q = self.lock();
        let n = max.min(q.len());
        let taken: Vec<Done> = q.drain(..n).collect();
        let left = !q.is_empty();
        drop(q);
        if left {
            self.wake.notify_one();
        }
        taken
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

/// One attempt's outcome, waiting for the batch's bookkeeping.
#[derive(Debug, Clone)]
pub struct Done {
    pub broadcast: Broadcast,
    pub attempt: Attempt,
    pub next: Next,
}

/// The payment event of an attempt, if it changes the payment.
pub(crate) fn correction(d: &Done, cur: Payment, at: &str) -> Option<(Payment, PaymentEvent)> {
    let (b, attempt, next) = (&d.broadcast, &d.attempt, &d.next);
    let is_create = crate::service::starts_payment(&b.function);
    // Only a create still waiting on us moves; anything the indexer or
    // verifier has moved further is theirs.
    let ours = is_create
        && cur.status == PaymentStatus::Pending
        && cur.create_txid.as_deref() == Some(&b.txid);
    let (ty, status) = match next {
        Next::Submitted if ours => (EventType::Submitted, PaymentStatus::Submitted),
        Next::Failed { .. } if ours => (EventType::Failed, PaymentStatus::Failed),
        Next::RetryAt(_) if ours || !is_create => (EventType::Retrying, cur.status),
        _ => return None,
    };
    let mut p = cur.clone();
    p.status = status;
    p.updated_at = at.to_string();
    let (reason, reason_data) = match next {
        Next::Failed {
            reason,
            reason_data,
        } => (Some(reason.clone()), reason_data.clone()),
        Next::RetryAt(_) => (attempt.reason.clone(), None),
        Next::Submitted => (None, None),
    };
    if ty == EventType::Failed {
        p.reason = reason.clone();
    }
    let event = PaymentEvent {
        txid: Some(b.txid.clone()),
        is_final: p.is_final,
        reason,
        reason_data,
        retry: attempt.next_delay_ms.map(|d| RetryInfo {
            attempt: attempt.attempt,
            next_delay_ms: d,
        }),
        ..PaymentEvent::about(&p, ty, nexus_core::domain::EventSource::Relay, at)
    };
    Some((p, event))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nexus_store::broadcasts::{Attempt, AttemptOutcome, Broadcast, BroadcastState, Next};
    use std::time::Duration;

    fn done(txid: &str) -> Done {
        Done {
            broadcast: Broadcast {
                txid: txid.into(),
                payment_id: format!("p-{txid}"),
                function: "create-payment".into(),
                tx: vec![1],
                request_id: None,
                idempotency_key: format!("txid:{txid}"),
                state: BroadcastState::Scheduled,
                attempts: 0,
                next_attempt_ms: 0,
                created_ms: 0,
                updated_ms: 0,
                last_reason: None,
                reason_data: None,
                provider: None,
            },
            attempt: Attempt {
                attempt: 1,
                at_ms: 0,
                provider: None,
                outcome: AttemptOutcome::Accepted,
                reason: None,
                latency_ms: 1,
                next_delay_ms: None,
            },
            next: Next::Submitted,
        }
    }

    fn txids(v: &[Done]) -> Vec<&str> {
        v.iter().map(|d| d.broadcast.txid.as_str()).collect()
    }

    async fn woken(o: &Outcomes) -> bool {
        tokio::time::timeout(Duration::from_millis(200), o.wake.notified())
            .await
            .is_ok()
    }

    #[tokio::test]
    async fn outcomes_left_behind_keep_the_batcher_coming_back() {
        let o = Outcomes::new();
        o.push(vec![done("a"), done("b"), done("c")]);
        assert!(woken(&o).await, "a push wakes the batcher");
        assert_eq!(txids(&o.take(2)), ["a", "b"]);
        // Nothing else will arrive: the one left must not be stranded.
        assert!(woken(&o).await, "a partial take leaves a wake-up behind");
        assert_eq!(txids(&o.take(2)), ["c"]);
        assert!(!woken(&o).await, "nothing left, no wake-up");
    }

    #[tokio::test]
    async fn requeued_outcomes_go_first_in_order() {
        let o = Outcomes::new();
        o.push(vec![done("c")]);
        o.requeue(vec![done("a"), done("b")]);
        assert_eq!(txids(&o.take(10)), ["a", "b", "c"]);
        assert!(o.is_empty());
    }
}
