//! The broadcast engine: takes due broadcasts from the persisted schedule,
//! posts them to the best provider (adaptive order from [`ProviderStats`]),
//! classifies the outcome ([`classify`]) and records what comes next:
//! submitted, another attempt after a backoff ([`RetryPolicy`], honouring
//! `Retry-After`, longer for reasons that historically resolve slowly), or
//! failed. Every retry emits `payment:retrying`; a create-payment that fails
//! for good emits `payment:failed`; one the node accepts becomes `submitted`.
//!
//! A claim or refund that fails is recorded on its broadcast (and shown by
//! `GET /api/payments/{id}`) but changes no payment status: the payment's
//! funds are where the chain says, whatever happened to a claim attempt.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Notify;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use nexus_indexer::domain::{EventType, Payment, PaymentEvent, PaymentStatus, RetryInfo};
use nexus_indexer::ingest::{Correction, Ingestor};
use nexus_indexer::store::StoreError;
use nexus_verifier::rpc::Providers;

use crate::backoff::RetryPolicy;
use crate::classify::{classify, Disposition};
use crate::service::error_chain;
use crate::stats::ProviderStats;
use crate::store::{Attempt, AttemptOutcome, Broadcast, BroadcastStore, Next};

/// Tunables of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub retry: RetryPolicy,
    /// Broadcasts in flight at once.
    pub concurrency: usize,
    /// A claimed broadcast is re-tried after this long if its attempt never
    /// recorded an outcome (the node died mid-attempt).
    pub lease: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            retry: RetryPolicy::default(),
            concurrency: 32,
            lease: Duration::from_secs(60),
        }
    }
}

pub struct Engine {
    pub cfg: EngineConfig,
    pub providers: Arc<Providers>,
    pub store: Arc<dyn BroadcastStore>,
    pub ingestor: Arc<Ingestor>,
    pub stats: Arc<ProviderStats>,
    /// Nudged when a new broadcast is scheduled.
    pub wake: Arc<Notify>,
}

fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

impl Engine {
    /// Run until `token` is cancelled. Resumes whatever the schedule holds.
    pub async fn run(self: Arc<Self>, token: CancellationToken) {
        let mut failures = 0u32;
        loop {
            if token.is_cancelled() {
                break;
            }
            let claimed = self
                .store
                .claim_due(
                    now_ms(),
                    self.cfg.concurrency as u32 * 2,
                    self.cfg.lease.as_millis() as i64,
                )
                .await;
            let due = match claimed {
                Ok(due) => {
                    failures = 0;
                    due
                }
                Err(e) => {
                    failures += 1;
                    tracing::warn!(error = %error_chain(&e), "relay: could not read the broadcast schedule");
                    let wait = Duration::from_millis(200 * u64::from(failures.min(25)));
                    tokio::select! { _ = token.cancelled() => break, _ = tokio::time::sleep(wait) => {} }
                    continue;
                }
            };
            if due.is_empty() {
                let wait = match self.store.next_due_ms().await {
                    Ok(Some(at)) => Duration::from_millis((at - now_ms()).clamp(1, 1_000) as u64),
                    _ => Duration::from_secs(1),
                };
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = self.wake.notified() => {}
                    _ = tokio::time::sleep(wait) => {}
                }
                continue;
            }
            use futures::StreamExt;
            futures::stream::iter(due)
                .for_each_concurrent(self.cfg.concurrency, |b| {
                    let me = self.clone();
                    async move { me.attempt(b).await }
                })
                .await;
        }
    }

    /// One attempt of one broadcast, and its bookkeeping.
    pub async fn attempt(&self, b: Broadcast) {
        let order = self.stats.order(&self.providers.names());
        let started = Instant::now();
        let result = self.providers.broadcast(&order, &b.tx).await;
        let latency = started.elapsed();
        let (provider, outcome) = match result {
            Ok((p, answer)) => (Some(p), Ok(answer)),
            Err(e) => (None, Err(e)),
        };
        let c = classify(&outcome, &b.txid);
        // A refusal about the transaction is not the provider's failure.
        if let Some(p) = &provider {
            self.stats.record(p, &c.reason, !c.provider_fault, latency);
        }
        let n = b.attempts + 1;
        let at = now_ms();
        if c.disposition.is_success() && n > 1 {
            // How long the reason that held it up took to clear: reasons
            // that historically clear slowly get longer backoffs.
            if let Some(r) = &b.last_reason {
                let took = Duration::from_millis((at - b.created_ms).max(0) as u64);
                self.stats.record_resolution(r, n - 1, took);
            }
        }
        let mut attempt = Attempt {
            attempt: n,
            at_ms: at,
            provider: provider.clone(),
            outcome: AttemptOutcome::Retry,
            reason: Some(c.reason.clone()),
            latency_ms: latency.as_millis() as u64,
            next_delay_ms: None,
        };
        let next = match c.disposition {
            Disposition::Accepted | Disposition::AlreadyKnown => {
                attempt.outcome = if c.disposition == Disposition::Accepted {
                    AttemptOutcome::Accepted
                } else {
                    AttemptOutcome::AlreadyKnown
                };
                Next::Submitted
            }
            Disposition::Retry => {
                let elapsed = Duration::from_millis((at - b.created_ms).max(0) as u64);
                let delay = self.cfg.retry.next_delay(
                    n,
                    elapsed,
                    c.retry_after,
                    self.stats.slowness(&c.reason),
                    &mut rand::thread_rng(),
                );
                match delay {
                    Some(d) => {
                        attempt.next_delay_ms = Some(d.as_millis() as u64);
                        Next::RetryAt(at + d.as_millis() as i64)
                    }
                    None => {
                        attempt.outcome = AttemptOutcome::Failed;
                        Next::Failed {
                            reason: format!("RetriesExhausted({})", c.reason),
                            reason_data: c.reason_data.clone(),
                        }
                    }
                }
            }
            Disposition::Fail => {
                attempt.outcome = AttemptOutcome::Failed;
                Next::Failed {
                    reason: c.reason.clone(),
                    reason_data: c.reason_data.clone(),
                }
            }
        };
        tracing::info!(
            txid = %b.txid,
            payment_id = %b.payment_id,
            request_id = b.request_id.as_deref().unwrap_or(""),
            attempt = n,
            provider = provider.as_deref().unwrap_or("-"),
            reason = %c.reason,
            outcome = attempt.outcome.as_str(),
            next_delay_ms = attempt.next_delay_ms,
            "relay broadcast attempt"
        );
        // The schedule first: an event published for an attempt that was
        // then lost would be repeated with the same attempt number.
        if let Err(e) = self.store.record(&b.txid, &attempt, &next, at).await {
            // The lease runs out and the attempt is made again: at worst a
            // second broadcast of the same transaction, which nodes dedupe.
            tracing::warn!(error = %error_chain(&e), txid = %b.txid, "relay: could not record an attempt");
            return;
        }
        if let Err(e) = self.emit(&b, &attempt, &next).await {
            tracing::warn!(error = %error_chain(&*e), txid = %b.txid, "relay: could not record the payment event");
        }
    }

    /// The payment event of an attempt, if it changes the payment.
    async fn emit(
        &self,
        b: &Broadcast,
        attempt: &Attempt,
        next: &Next,
    ) -> Result<(), Box<dyn std::error::Error + Send + Sync>> {
        let id = b
            .payment_id
            .parse()
            .map_err(|e| StoreError::corrupt("relay", e))?;
        let current = match self.ingestor.state().get(&id).await? {
            Some(p) => Some(p),
            None => self.ingestor.history().get_payment(&id).await?,
        };
        let Some(cur) = current else { return Ok(()) };
        let is_create = b.function == "create-payment";
        // Only a create still waiting on us moves; anything the indexer or
        // verifier has moved further is theirs.
        let ours = is_create
            && cur.status == PaymentStatus::Pending
            && cur.create_txid.as_deref() == Some(&b.txid);
        let (ty, status) = match next {
            Next::Submitted if ours => (EventType::Submitted, PaymentStatus::Submitted),
            Next::Failed { .. } if ours => (EventType::Failed, PaymentStatus::Failed),
            Next::RetryAt(_) if ours || !is_create => (EventType::Retrying, cur.status),
            _ => return Ok(()),
        };
        let at = chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let mut p: Payment = cur.clone();
        p.status = status;
        p.updated_at = at.clone();
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
            seq: 0,
            event_type: ty,
            payment_id: id,
            status,
            sender: p.sender.clone(),
            recipient: p.recipient.clone(),
            amount: p.amount.clone(),
            txid: Some(b.txid.clone()),
            block_height: None,
            index_block_hash: None,
            burn_block_height: None,
            confirmations: 0,
            is_final: p.is_final,
            source: nexus_indexer::domain::EventSource::Relay,
            reason,
            reverted: None,
            at,
            reason_data,
            retry: attempt.next_delay_ms.map(|d| RetryInfo {
                attempt: attempt.attempt,
                next_delay_ms: d,
            }),
        };
        self.ingestor
            .commit_corrections(
                vec![Correction {
                    expected_seq: cur.updated_seq,
                    payment: p,
                    event,
                }],
                "relay_events",
                None,
            )
            .await?;
        Ok(())
    }
}
