//! Changes decided outside the observer path (the reconciler's corrections),
//! committed through the same serialized pipeline so `seq` stays gap-free,
//! the finality index sees them, and they are published like any event.

use std::collections::HashMap;

use super::cursor::Cursor;
use super::ingestor::count_events;
use super::{IngestError, Ingestor};
use nexus_core::domain::{Payment, PaymentEvent, PaymentId};
use nexus_store::{CommitBatch, Fence};

/// One payment's correction, decided against the record whose
/// `updated_seq` was `expected_seq`.
#[derive(Debug, Clone)]
pub struct Correction {
    /// The record the decision was made on (0: the payment was unknown). If
    /// the payment changed since (the observer committed something newer),
    /// the correction is skipped: it will be decided again on fresh data.
    pub expected_seq: u64,
    pub payment: Payment,
    /// Without `seq`: history numbers it.
    pub event: PaymentEvent,
}

/// What [`Ingestor::commit_corrections`] did.
#[derive(Debug, Clone, Default)]
pub struct CorrectionOutcome {
    /// Committed (and published) events.
    pub events: Vec<PaymentEvent>,
    /// Payments skipped because they changed after the decision.
    pub stale: Vec<PaymentId>,
}

impl Ingestor {
    /// Commit `corrections` (history, then state store, then publish), in
    /// turn with observer deliveries. `fence` makes history refuse the
    /// commit if a newer lease holder has written (see [`Fence`]).
    pub async fn commit_corrections(
        &self,
        corrections: Vec<Correction>,
        counter: &str,
        fence: Option<Fence>,
    ) -> Result<CorrectionOutcome, IngestError> {
        let mut cur = self.cursor.lock().await;
        if cur.dirty {
            self.resync(&mut cur).await?;
        }
        cur.dirty = true;
        self.catch_up(&mut cur).await?;
        let ids: Vec<PaymentId> = corrections.iter().map(|c| c.payment.payment_id).collect();
        let mut current = self.load(&cur, &ids).await?;
        self.fill_from_history(&cur, &ids, &mut current).await?;
        let mut out = CorrectionOutcome::default();
        let mut payments = Vec::new();
        let mut events = Vec::new();
        for c in corrections {
            let id = c.payment.payment_id;
            let now_seq = current.get(&id).map(|p| p.updated_seq);
            if now_seq.unwrap_or(0) != c.expected_seq {
                out.stale.push(id);
                continue;
            }
            payments.push(c.payment);
            events.push(c.event);
        }
        if events.is_empty() {
            cur.dirty = std::mem::take(&mut cur.stale);
            return Ok(out);
        }
        let batch = CommitBatch {
            payments,
            events,
            fence,
            ..Default::default()
        };
        out.events = self.commit_changes(&mut cur, batch, counter).await?;
        cur.dirty = std::mem::take(&mut cur.stale);
        Ok(out)
    }

    /// Commit payments and their events (and whatever else `batch` carries)
    /// outside a block: history, then the state store with the event
    /// counters plus `counter`, then publish. Returns the committed events.
    pub(super) async fn commit_changes(
        &self,
        cur: &mut Cursor,
        batch: CommitBatch,
        counter: &str,
    ) -> Result<Vec<PaymentEvent>, IngestError> {
        let mut counters = count_events(&batch.events);
        counters.push((counter.to_string(), batch.events.len() as u64));
        let committed = self.commit_history(cur, batch).await?;
        // Attached rows alone: nothing for the state store or subscribers.
        if !committed.events.is_empty() {
            for p in &committed.payments {
                cur.track(p);
            }
            let refs: Vec<(&str, u64)> = counters.iter().map(|(k, v)| (k.as_str(), *v)).collect();
            self.apply_state(cur, &committed, &refs).await?;
        }
        Ok(committed.events)
    }

    /// The committed history's `seq` (what the state store should reflect).
    pub async fn history_seq(&self) -> u64 {
        self.cursor.lock().await.history_seq
    }
}

impl Ingestor {
    /// Bring the state store up to date with history now, rather than on the
    /// next delivery (after Redis came back empty). Returns whether it was behind.
    pub async fn sync_state(&self) -> Result<bool, IngestError> {
        let mut cur = self.cursor.lock().await;
        if cur.dirty {
            self.resync(&mut cur).await?;
        }
        cur.dirty = true;
        let behind = self.state.last_seq().await? != cur.history_seq;
        if behind {
            self.catch_up(&mut cur).await?;
        }
        cur.dirty = false;
        Ok(behind)
    }
}

impl Ingestor {
    /// Add to `found` the records of `ids` it lacks, from history (settled
    /// records expire from the state store; history keeps them), in one
    /// query. Reads through an open commit group, so they see its writes.
    pub(super) async fn fill_from_history(
        &self,
        cur: &Cursor,
        ids: &[PaymentId],
        found: &mut HashMap<PaymentId, Payment>,
    ) -> Result<(), IngestError> {
        let missing: Vec<PaymentId> = ids
            .iter()
            .filter(|id| !found.contains_key(id))
            .copied()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        for p in self
            .hist(cur)
            .get_payments(&missing)
            .await?
            .into_iter()
            .flatten()
        {
            found.insert(p.payment_id, p);
        }
        Ok(())
    }
}
