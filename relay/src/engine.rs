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

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use nexus_stacks::{Providers, RpcError};

use crate::backoff::RetryPolicy;
use crate::classify::{classify, Disposition};
use crate::handoff::Handoff;
use crate::outcomes::{Done, Outcomes};
use crate::stats::ProviderStats;
use nexus_core::error_chain;
use nexus_store::broadcasts::{Attempt, AttemptOutcome, Broadcast, BroadcastStore, Next};

/// Tunables of the engine.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub retry: RetryPolicy,
    /// Broadcasts in flight at once.
    pub concurrency: usize,
    /// A claimed broadcast is re-tried after this long if its attempt never
    /// recorded an outcome (the node died mid-attempt).
    pub lease: Duration,
    /// Shortest time from one round's claim to the next. Each round ends
    /// with one bookkeeping commit through the serial ingest pipeline, which
    /// the accept path needs too: under load, waiting out the rest of this
    /// makes rounds bigger and those commits fewer; an idle engine still
    /// starts at once when woken.
    pub min_round: Duration,
}

impl Default for EngineConfig {
    fn default() -> Self {
        EngineConfig {
            retry: RetryPolicy::default(),
            concurrency: 32,
            lease: Duration::from_secs(60),
            min_round: Duration::from_millis(20),
        }
    }
}

pub struct Engine {
    pub cfg: EngineConfig,
    pub providers: Arc<Providers>,
    pub store: Arc<dyn BroadcastStore>,
    pub stats: Arc<ProviderStats>,
    /// Fresh broadcasts from this node's accept path (already leased to
    /// us), and the nudge when anything new is scheduled.
    pub handoff: Arc<Handoff>,
    /// Where recorded attempts wait for their payment events.
    pub outcomes: Arc<Outcomes>,
    /// When attempts happen and retries come due (the schedule is in unix ms).
    pub clock: Arc<dyn nexus_core::clock::Clock>,
}

/// How often the schedule is claimed from while handed-over broadcasts keep
/// the engine busy: retries coming due and other nodes' expired leases wait
/// at most this much longer than they would on an idle engine.
const CLAIM_INTERVAL: Duration = Duration::from_millis(100);

impl Engine {
    /// Run until `token` is cancelled. Resumes whatever the schedule holds.
    pub async fn run(self: Arc<Self>, token: CancellationToken) {
        let mut failures = 0u32;
        // Large rounds: the bookkeeping is one commit per round.
        let max = (self.cfg.concurrency * 8).max(64);
        // When the schedule is next claimed from (now: resume what it holds).
        let mut claim_at = Instant::now();
        loop {
            if token.is_cancelled() {
                break;
            }
            let round = Instant::now();
            if self.handoff.take_claim_request() {
                claim_at = round;
            }
            let mut due = self.handoff.take(max);
            if due.len() < max && round >= claim_at {
                let claimed = self
                    .store
                    .claim_due(
                        self.clock.now_ms(),
                        (max - due.len()) as u32,
                        self.cfg.lease.as_millis() as i64,
                    )
                    .await;
                match claimed {
                    Ok(more) => {
                        failures = 0;
                        // A full claim may have left more due rows: claim again next round.
                        claim_at = if more.len() + due.len() >= max {
                            round
                        } else {
                            round + CLAIM_INTERVAL
                        };
                        due.extend(more);
                    }
                    Err(e) => {
                        failures += 1;
                        tracing::warn!(error = %error_chain(&e), "relay: could not read the broadcast schedule");
                        let wait = Duration::from_millis(200 * u64::from(failures.min(25)));
                        claim_at = Instant::now() + wait;
                        if due.is_empty() {
                            tokio::select! { _ = token.cancelled() => break, _ = tokio::time::sleep(wait) => {} }
                            continue;
                        }
                    }
                }
            }
            if due.is_empty() {
                if !self.handoff.is_empty() {
                    continue;
                }
                if round < claim_at {
                    // Handed-over work only since the last claim: wait for
                    // more of it, or until the schedule is due a claim.
                    tokio::select! {
                        _ = token.cancelled() => break,
                        _ = self.handoff.wake.notified() => {}
                        _ = tokio::time::sleep_until(claim_at) => {}
                    }
                    continue;
                }
                let wait = match self.store.next_due_ms().await {
                    Ok(Some(at)) => {
                        Duration::from_millis((at - self.clock.now_ms()).clamp(1, 1_000) as u64)
                    }
                    _ => Duration::from_secs(1),
                };
                tokio::select! {
                    _ = token.cancelled() => break,
                    _ = self.handoff.wake.notified() => {}
                    // Something came due: claim it now.
                    _ = tokio::time::sleep(wait) => claim_at = Instant::now(),
                }
                continue;
            }
            use futures::StreamExt;
            let done: Vec<Done> = futures::stream::iter(due)
                .map(|b| {
                    let me = self.clone();
                    async move { me.attempt(b).await }
                })
                .buffer_unordered(self.cfg.concurrency)
                .collect()
                .await;
            // The bookkeeping of the whole batch in one commit here and its
            // events in the accept batcher's next one, not two per broadcast:
            // under load that is the difference between a few hundred and
            // several thousand broadcasts a second.
            self.finish(done).await;
            let rest = self.cfg.min_round.saturating_sub(round.elapsed());
            if !rest.is_zero() {
                tokio::select! { _ = token.cancelled() => break, _ = tokio::time::sleep(rest) => {} }
            }
        }
    }

    /// Record a batch of attempts, then leave their payment events to the
    /// accept batcher ([`Outcomes`]).
    async fn finish(&self, done: Vec<Done>) {
        let at = self.clock.now_ms();
        let records: Vec<(String, Attempt, Next)> = done
            .iter()
            .map(|d| (d.broadcast.txid.clone(), d.attempt.clone(), d.next.clone()))
            .collect();
        // The schedule first: an event published for an attempt that was
        // then lost would be repeated with the same attempt number.
        if let Err(e) = self.store.record_many(&records, at).await {
            // The leases run out and the attempts are made again: at worst a
            // second broadcast of the same transactions, which nodes dedupe.
            tracing::warn!(error = %error_chain(&e), n = records.len(), "relay: could not record attempts");
            return;
        }
        self.outcomes.push(done);
    }

    /// One attempt of one broadcast: what happened and what comes next.
    pub async fn attempt(&self, b: Broadcast) -> Done {
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
        let at = self.clock.now_ms();
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
                let delay = match &outcome {
                    Err(RpcError::AllOpen { retry_after }) => {
                        self.cfg.retry.after_open_breakers(elapsed, *retry_after)
                    }
                    _ => self.cfg.retry.next_delay(
                        n,
                        elapsed,
                        c.retry_after,
                        self.stats.slowness(&c.reason),
                        &mut rand::thread_rng(),
                    ),
                };
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
        Done {
            broadcast: b,
            attempt,
            next,
        }
    }
}
