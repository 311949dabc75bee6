//! The persisted broadcast schedule behind a narrow trait: PostgreSQL in
//! production, SQLite in the embedded default (tables of migration
//! `0006_relay.sql`, applied with the history schema). A restart resumes
//! from here; several nodes on one database never broadcast one row at
//! once (claims take a lease).

mod postgres;
mod sqlite;

pub use self::postgres::PgBroadcasts;
pub use self::sqlite::SqliteBroadcasts;

use async_trait::async_trait;
use serde::Serialize;

use crate::row::Row;
use crate::{AttachedRows, AttachedValues, StoreError};

/// A broadcast to schedule.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBroadcast {
    pub txid: String,
    pub payment_id: String,
    /// `create-payment`, `claim-payment` or `refund-expired`.
    pub function: String,
    pub tx: Vec<u8>,
    pub request_id: Option<String>,
    pub idempotency_key: String,
    pub now_ms: i64,
    /// When a claim may take it: `now_ms` (due at once), or the end of the
    /// lease of a broadcast handed straight to this node's engine
    /// (the relay's handoff).
    pub next_attempt_ms: i64,
}

/// `items` as rows of `relay_broadcasts` (the same table and columns on
/// PostgreSQL and SQLite), for a history commit to insert in its own
/// transaction: the payments a batch creates and their broadcasts become
/// durable together. Inserted if absent, as [`BroadcastStore::schedule`] does.
pub fn schedule_rows(items: &[NewBroadcast]) -> AttachedRows {
    let text = |f: fn(&NewBroadcast) -> Option<String>| {
        AttachedValues::Text(items.iter().map(f).collect())
    };
    let now = || AttachedValues::BigInt(items.iter().map(|i| i.now_ms).collect());
    AttachedRows {
        table: "relay_broadcasts",
        columns: vec![
            ("txid", text(|i| Some(i.txid.clone()))),
            ("payment_id", text(|i| Some(i.payment_id.clone()))),
            ("function", text(|i| Some(i.function.clone()))),
            (
                "tx",
                AttachedValues::Bytes(items.iter().map(|i| i.tx.clone()).collect()),
            ),
            ("request_id", text(|i| i.request_id.clone())),
            ("idempotency_key", text(|i| Some(i.idempotency_key.clone()))),
            (
                "state",
                text(|_| Some(BroadcastState::Scheduled.as_str().to_string())),
            ),
            ("attempts", AttachedValues::BigInt(vec![0; items.len()])),
            (
                "next_attempt_ms",
                AttachedValues::BigInt(items.iter().map(|i| i.next_attempt_ms).collect()),
            ),
            ("created_ms", now()),
            ("updated_ms", now()),
        ],
    }
}

/// Where a broadcast stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BroadcastState {
    /// Waiting for its next attempt.
    Scheduled,
    /// A node accepted it (or already had it).
    Submitted,
    /// Rejected for good, or out of attempts.
    Failed,
}

impl BroadcastState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Scheduled => "scheduled",
            Self::Submitted => "submitted",
            Self::Failed => "failed",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        [Self::Scheduled, Self::Submitted, Self::Failed]
            .into_iter()
            .find(|st| st.as_str() == s)
    }
}

/// A scheduled (or finished) broadcast.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Broadcast {
    pub txid: String,
    pub payment_id: String,
    pub function: String,
    #[serde(skip)]
    pub tx: Vec<u8>,
    pub request_id: Option<String>,
    pub idempotency_key: String,
    pub state: BroadcastState,
    /// Attempts made so far.
    pub attempts: u32,
    pub next_attempt_ms: i64,
    pub created_ms: i64,
    pub updated_ms: i64,
    pub last_reason: Option<String>,
    pub reason_data: Option<serde_json::Value>,
    pub provider: Option<String>,
}

/// How one attempt ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AttemptOutcome {
    Accepted,
    AlreadyKnown,
    Retry,
    Failed,
}

impl AttemptOutcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::AlreadyKnown => "already_known",
            Self::Retry => "retry",
            Self::Failed => "failed",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Self> {
        [
            Self::Accepted,
            Self::AlreadyKnown,
            Self::Retry,
            Self::Failed,
        ]
        .into_iter()
        .find(|o| o.as_str() == s)
    }
}

/// One attempt, as `GET /api/payments/{id}` shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Attempt {
    /// 1-based.
    pub attempt: u32,
    pub at_ms: i64,
    pub provider: Option<String>,
    pub outcome: AttemptOutcome,
    pub reason: Option<String>,
    pub latency_ms: u64,
    /// For `retry`: the wait before the next attempt.
    pub next_delay_ms: Option<u64>,
}

/// What happens after an attempt.
#[derive(Debug, Clone, PartialEq)]
pub enum Next {
    /// Try again at this time.
    RetryAt(i64),
    Submitted,
    Failed {
        reason: String,
        reason_data: Option<serde_json::Value>,
    },
}

/// A broadcast with its attempts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BroadcastHistory {
    #[serde(flatten)]
    pub broadcast: Broadcast,
    pub attempts_made: Vec<Attempt>,
}

/// Columns read by [`broadcast_row`], in its order.
pub(crate) const COLS: &str =
    "txid, payment_id, function, tx, request_id, idempotency_key, state, attempts, \
     next_attempt_ms, created_ms, updated_ms, last_reason, reason_data, provider";

/// A `relay_broadcasts` row selected as [`COLS`].
pub(crate) fn broadcast_row(r: &impl Row) -> Result<Broadcast, StoreError> {
    let corrupt = |what: String| StoreError::corrupt(r.codec().0, what);
    let state = r.text(6)?;
    Ok(Broadcast {
        txid: r.text(0)?,
        payment_id: r.text(1)?,
        function: r.text(2)?,
        tx: r.bytes(3)?,
        request_id: r.opt_text(4)?,
        idempotency_key: r.text(5)?,
        state: BroadcastState::parse(&state)
            .ok_or_else(|| corrupt(format!("broadcast state {state:?}")))?,
        attempts: r.small(7)?,
        next_attempt_ms: r.int(8)?,
        created_ms: r.int(9)?,
        updated_ms: r.int(10)?,
        last_reason: r.opt_text(11)?,
        reason_data: r
            .opt_text(12)?
            .map(|s| r.codec().read_json(&s))
            .transpose()?,
        provider: r.opt_text(13)?,
    })
}

/// A `relay_attempts` row selected as `attempt, at_ms, provider, outcome,
/// reason, latency_ms, next_delay_ms`.
pub(crate) fn attempt_row(r: &impl Row) -> Result<Attempt, StoreError> {
    let outcome = r.text(3)?;
    Ok(Attempt {
        attempt: r.small(0)?,
        at_ms: r.int(1)?,
        provider: r.opt_text(2)?,
        outcome: AttemptOutcome::parse(&outcome).ok_or_else(|| {
            StoreError::corrupt(r.codec().0, format!("attempt outcome {outcome:?}"))
        })?,
        reason: r.opt_text(4)?,
        latency_ms: r.uint(5)?,
        next_delay_ms: r.opt_int(6)?.map(|v| v as u64),
    })
}

#[async_trait]
pub trait BroadcastStore: Send + Sync + 'static {
    /// Schedule `items` (ignoring txids already scheduled), in one transaction.
    async fn schedule(&self, items: &[NewBroadcast]) -> Result<(), StoreError>;
    /// Claim up to `limit` scheduled broadcasts due at `now_ms` for `lease_ms`
    /// (their next attempt moves past the lease, so a crash mid-attempt
    /// retries after it).
    async fn claim_due(
        &self,
        now_ms: i64,
        limit: u32,
        lease_ms: i64,
    ) -> Result<Vec<Broadcast>, StoreError>;
    /// When the earliest scheduled broadcast is due.
    async fn next_due_ms(&self) -> Result<Option<i64>, StoreError>;
    /// Record `attempt` of `txid` and what comes next, in one transaction.
    async fn record(
        &self,
        txid: &str,
        attempt: &Attempt,
        next: &Next,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        self.record_many(&[(txid.to_string(), attempt.clone(), next.clone())], now_ms)
            .await
    }
    /// [`BroadcastStore::record`] for a batch, in one transaction.
    async fn record_many(
        &self,
        records: &[(String, Attempt, Next)],
        now_ms: i64,
    ) -> Result<(), StoreError>;
    /// Every broadcast of a payment with its attempts, oldest first.
    async fn for_payment(&self, payment_id: &str) -> Result<Vec<BroadcastHistory>, StoreError>;
    /// One broadcast by txid.
    async fn get(&self, txid: &str) -> Result<Option<Broadcast>, StoreError>;
}

/// The state a [`Next`] leaves the row in, and its next attempt time.
pub(crate) fn next_columns(next: &Next, now_ms: i64) -> (BroadcastState, i64) {
    match next {
        Next::RetryAt(at) => (BroadcastState::Scheduled, *at),
        Next::Submitted => (BroadcastState::Submitted, now_ms),
        Next::Failed { .. } => (BroadcastState::Failed, now_ms),
    }
}

/// The row's `last_reason` and `reason_data` (JSON text) after an attempt.
pub(crate) fn reason_columns(a: &Attempt, next: &Next) -> (Option<String>, Option<String>) {
    match next {
        Next::Failed {
            reason,
            reason_data,
        } => (
            Some(reason.clone()),
            reason_data.as_ref().map(|d| d.to_string()),
        ),
        _ => (a.reason.clone(), None),
    }
}

#[cfg(test)]
pub(crate) mod conformance {
    //! What every store must do; run on SQLite and on real PostgreSQL.
    use super::*;

    pub fn item(txid: &str, payment: &str, now_ms: i64) -> NewBroadcast {
        NewBroadcast {
            txid: txid.into(),
            payment_id: payment.into(),
            function: "create-payment".into(),
            tx: vec![0, 1, 2, txid.len() as u8],
            request_id: Some(format!("req-{txid}")),
            idempotency_key: format!("txid:{txid}"),
            now_ms,
            next_attempt_ms: now_ms,
        }
    }

    fn attempt(n: u32, outcome: AttemptOutcome) -> Attempt {
        Attempt {
            attempt: n,
            at_ms: 1_000 + n as i64,
            provider: Some("http://a".into()),
            outcome,
            reason: Some("ServerFailureDatabase".into()),
            latency_ms: 3,
            next_delay_ms: Some(500),
        }
    }

    /// A history commit carrying [`schedule_rows`] schedules the broadcasts in
    /// the same transaction as its payments; a commit refused as a whole
    /// schedules nothing.
    pub async fn attached_to_history(history: &dyn crate::History, store: &dyn BroadcastStore) {
        use crate::{CommitBatch, Fence};
        use nexus_core::domain::{Payment, PaymentId, PaymentStatus};

        let payment = |n: u8| Payment::new(PaymentId([n; 32]), PaymentStatus::Pending, "t");
        let batch = |n: u8, items: &[NewBroadcast], fence: Option<Fence>| CommitBatch {
            payments: vec![payment(n)],
            attached: vec![schedule_rows(items)],
            fence,
            ..Default::default()
        };
        history
            .commit(batch(
                1,
                &[item("a1", "p1", 1_000), item("a2", "p1", 1_000)],
                None,
            ))
            .await
            .unwrap();
        let a1 = store
            .get("a1")
            .await
            .unwrap()
            .expect("scheduled with the commit");
        assert_eq!(
            (a1.state, a1.attempts, a1.next_attempt_ms, a1.created_ms),
            (BroadcastState::Scheduled, 0, 1_000, 1_000)
        );
        assert_eq!(a1.tx, vec![0, 1, 2, 2]);
        assert_eq!(a1.request_id.as_deref(), Some("req-a1"));
        assert_eq!(a1.idempotency_key, "txid:a1");
        assert_eq!(store.claim_due(1_000, 10, 5_000).await.unwrap().len(), 2);

        // Already scheduled: left as it is, and the commit still goes through.
        history
            .commit(batch(
                2,
                &[item("a1", "p9", 9_000), item("a3", "p2", 2_000)],
                None,
            ))
            .await
            .unwrap();
        assert_eq!(store.get("a1").await.unwrap().unwrap().payment_id, "p1");
        assert!(store.get("a3").await.unwrap().is_some());
        assert!(history
            .get_payment(&PaymentId([2; 32]))
            .await
            .unwrap()
            .is_some());

        // Refused (a stale fencing token): neither the payment nor the broadcast.
        let fence = |token| Fence {
            name: "attached-test".into(),
            token,
        };
        history.commit(batch(3, &[], Some(fence(5)))).await.unwrap();
        assert!(history
            .commit(batch(4, &[item("a4", "p4", 1_000)], Some(fence(4))))
            .await
            .is_err());
        assert!(store.get("a4").await.unwrap().is_none());
        assert!(history
            .get_payment(&PaymentId([4; 32]))
            .await
            .unwrap()
            .is_none());
    }

    pub async fn lifecycle(store: &dyn BroadcastStore) {
        store
            .schedule(&[item("t1", "p1", 1_000), item("t2", "p1", 1_000)])
            .await
            .unwrap();
        // Scheduling again is a no-op (a replayed request).
        store.schedule(&[item("t1", "p1", 9_999)]).await.unwrap();
        assert_eq!(store.next_due_ms().await.unwrap(), Some(1_000));
        assert!(
            store.claim_due(999, 10, 100).await.unwrap().is_empty(),
            "not yet due"
        );
        let claimed = store.claim_due(1_000, 1, 5_000).await.unwrap();
        assert_eq!(claimed.len(), 1, "limit respected");
        let first = &claimed[0];
        assert_eq!(first.tx, vec![0, 1, 2, 2]);
        assert_eq!(
            first.request_id.as_deref(),
            Some(&*format!("req-{}", first.txid))
        );
        let second = store.claim_due(1_000, 10, 5_000).await.unwrap();
        assert_eq!(
            second.len(),
            1,
            "a claimed row is leased, the other is still due"
        );
        assert_ne!(second[0].txid, first.txid);
        assert!(store.claim_due(5_999, 10, 5_000).await.unwrap().is_empty());
        // A lapsed lease (crash mid-attempt) makes it due again.
        assert_eq!(store.claim_due(6_000, 10, 5_000).await.unwrap().len(), 2);

        store
            .record(
                "t1",
                &attempt(1, AttemptOutcome::Retry),
                &Next::RetryAt(20_000),
                2_000,
            )
            .await
            .unwrap();
        store
            .record(
                "t1",
                &attempt(2, AttemptOutcome::Accepted),
                &Next::Submitted,
                20_000,
            )
            .await
            .unwrap();
        let data = serde_json::json!({"expected": 4, "actual": 2});
        store
            .record(
                "t2",
                &attempt(1, AttemptOutcome::Failed),
                &Next::Failed {
                    reason: "BadNonce".into(),
                    reason_data: Some(data.clone()),
                },
                3_000,
            )
            .await
            .unwrap();
        assert_eq!(
            store.next_due_ms().await.unwrap(),
            None,
            "nothing scheduled"
        );
        let hist = store.for_payment("p1").await.unwrap();
        assert_eq!(hist.len(), 2);
        let t1 = hist.iter().find(|h| h.broadcast.txid == "t1").unwrap();
        assert_eq!(t1.broadcast.state, BroadcastState::Submitted);
        assert_eq!(t1.broadcast.attempts, 2);
        assert_eq!(
            t1.attempts_made
                .iter()
                .map(|a| a.outcome)
                .collect::<Vec<_>>(),
            vec![AttemptOutcome::Retry, AttemptOutcome::Accepted]
        );
        let t2 = store.get("t2").await.unwrap().unwrap();
        assert_eq!(t2.state, BroadcastState::Failed);
        assert_eq!(t2.last_reason.as_deref(), Some("BadNonce"));
        assert_eq!(t2.reason_data, Some(data));
        assert!(store.get("nope").await.unwrap().is_none());
        // A batch records every attempt in one go.
        store
            .schedule(&[item("t3", "p3", 1_000), item("t4", "p3", 1_000)])
            .await
            .unwrap();
        store
            .record_many(
                &[
                    (
                        "t3".into(),
                        attempt(1, AttemptOutcome::Accepted),
                        Next::Submitted,
                    ),
                    (
                        "t4".into(),
                        attempt(1, AttemptOutcome::Retry),
                        Next::RetryAt(7_000),
                    ),
                ],
                4_000,
            )
            .await
            .unwrap();
        assert_eq!(
            store.get("t3").await.unwrap().unwrap().state,
            BroadcastState::Submitted
        );
        let t4 = store.get("t4").await.unwrap().unwrap();
        assert_eq!(
            (t4.state, t4.attempts, t4.next_attempt_ms),
            (BroadcastState::Scheduled, 1, 7_000)
        );
        assert_eq!(
            store.for_payment("p3").await.unwrap()[1]
                .attempts_made
                .len(),
            1
        );
        assert!(store.for_payment("p2").await.unwrap().is_empty());
    }
}
