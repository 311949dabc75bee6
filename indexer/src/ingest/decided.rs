//! Changes decided on the current records under the ingest lock (the
//! relay's accept batches and broadcast outcomes): the records are read once,
//! inside the lock, so the decision cannot be stale by the time it commits,
//! and rows of another component's tables ([`AttachedRows`]) commit in the
//! same history transaction as the payments and events.

use std::collections::HashMap;

use super::{IngestError, Ingestor};
use nexus_core::domain::{Payment, PaymentEvent, PaymentId};
use nexus_store::{AttachedRows, CommitBatch};

/// What a decision commits, and what it hands back to its caller.
#[derive(Debug, Clone)]
pub struct Decision<T> {
    /// New records with their events (without `seq`: history numbers them).
    pub changes: Vec<(Payment, PaymentEvent)>,
    /// Rows inserted (if absent) in the same transaction.
    pub attached: Vec<AttachedRows>,
    /// Returned to the caller once everything above is committed.
    pub value: T,
}

impl Ingestor {
    /// Read the current records of `ids` (in order; `None`: unknown), let
    /// `decide` turn them into changes, and commit those (history with the
    /// attached rows in one transaction, then the state store, then publish),
    /// all in turn with observer deliveries. Returns `decide`'s value and the
    /// committed events. Nothing to commit: no transaction at all.
    pub async fn commit_decided<T, F>(
        &self,
        ids: &[PaymentId],
        counter: &str,
        decide: F,
    ) -> Result<(T, Vec<PaymentEvent>), IngestError>
    where
        F: FnOnce(Vec<Option<Payment>>) -> Decision<T>,
    {
        let mut cur = self.cursor.lock().await;
        if cur.dirty {
            self.resync(&mut cur).await?;
        }
        cur.dirty = true;
        let found = if cur.group.is_none() {
            // The state store's seq and records, and history's records, at
            // once: history answers for the records the state store lacks
            // (new ids, which is what the relay mostly asks about, and
            // settled records that expired from the cache). Asking both in
            // parallel takes a round trip off the time this lock is held.
            let (state, history) = tokio::join!(
                self.state.get_many_with_seq(ids),
                self.history.get_payments(ids)
            );
            let (state_seq, records) = state?;
            if state_seq == cur.history_seq {
                let mut found: HashMap<PaymentId, Payment> = records
                    .into_iter()
                    .flatten()
                    .map(|p| (p.payment_id, p))
                    .collect();
                for p in history?.into_iter().flatten() {
                    found.entry(p.payment_id).or_insert(p);
                }
                Some(found)
            } else {
                None
            }
        } else {
            None
        };
        let found = match found {
            Some(found) => found,
            // Behind history (or a commit group is open): the long way round.
            None => {
                self.catch_up(&mut cur).await?;
                let mut found = self.load(&cur, ids).await?;
                self.fill_from_history(&cur, ids, &mut found).await?;
                found
            }
        };
        let current = ids.iter().map(|id| found.get(id).cloned()).collect();
        let Decision {
            changes,
            attached,
            value,
        } = decide(current);
        if changes.is_empty() && attached.iter().all(AttachedRows::is_empty) {
            cur.dirty = std::mem::take(&mut cur.stale);
            return Ok((value, Vec::new()));
        }
        let (payments, events): (Vec<Payment>, Vec<PaymentEvent>) = changes.into_iter().unzip();
        let batch = CommitBatch {
            payments,
            events,
            attached,
            // We hold the ingest lock: the store may take our view of the
            // log's end and commit in one round trip.
            expect_last_seq: Some(cur.history_seq),
            ..Default::default()
        };
        let events = self.commit_changes(&mut cur, batch, counter).await?;
        cur.dirty = std::mem::take(&mut cur.stale);
        Ok((value, events))
    }
}
