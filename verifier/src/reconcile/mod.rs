//! The reconciliation loop: every `interval`, read the tip once, check the
//! open payments against the chain at that tip (the escrow's `get-payment
//! ?tip=`; for an x402 `exact` transfer, its payer's nonce), and let the
//! chain win.
//!
//! Cost follows change: a payment already checked at this same tip, whose
//! record has not changed since, is decided again from the cached answer (an
//! answer pinned to a tip never changes), so an unchanged tip costs one
//! `/v2/info` and no `get-payment`. The rest are read with bounded
//! concurrency within a per-cycle budget; what does not fit waits for the
//! next cycle, least recently checked first.
//!
//! With the RPC down the loop keeps ticking, reports itself degraded and
//! changes nothing: only answers are ever acted on.

mod read;
mod report;
mod workset;

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use nexus_core::clock::Clock;
use nexus_core::domain::{PaymentId, PaymentStatus, Proof};
use nexus_indexer::ingest::{Correction, IngestError, Ingestor};
use nexus_store::{Fence, StoreError};

use crate::lease::Role;
use nexus_core::decide::{
    correction, decide, decide_exact, Check, Decision, ExactCheck, Rules, Wait,
};
use nexus_stacks::{ContractRef, StacksRpc, Tip};

pub use report::{CycleReport, NoReconcileObserver, ReconcileObserver, ReconcileStatus};
pub use workset::{done_once_final, is_open, Answer, Tracked, Verified, WorkSet};

/// Defaults of the node's `reconcile_*` keys.
pub const DEFAULT_INTERVAL: Duration = Duration::from_secs(10);
pub const DEFAULT_CONCURRENCY: usize = 32;
pub const DEFAULT_BUDGET: usize = 20_000;

/// How the loop runs.
#[derive(Debug, Clone)]
pub struct ReconcileConfig {
    /// Time between cycle starts; a slow cycle delays the next, never overlaps it.
    pub interval: Duration,
    /// Chain reads (`get-payment`, or a payer's account) in flight at once.
    pub concurrency: usize,
    /// Payments read per cycle at most; the rest carry over.
    pub budget: usize,
    pub rules: Rules,
    /// Blocks (the transition's own included) before a proof is final.
    pub confirmation_depth: u64,
}

impl Default for ReconcileConfig {
    fn default() -> Self {
        ReconcileConfig {
            interval: DEFAULT_INTERVAL,
            concurrency: DEFAULT_CONCURRENCY,
            budget: DEFAULT_BUDGET,
            rules: Rules::default(),
            confirmation_depth: nexus_indexer::ingest::DEFAULT_CONFIRMATION_DEPTH,
        }
    }
}

/// Why a cycle stopped early (the RPC's failures are not errors: they are
/// reported as `degraded`).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    #[error("storage failed while reconciling")]
    Store(#[from] StoreError),
    #[error("committing corrections failed")]
    Ingest(#[from] IngestError),
}

/// The reconciler. Share it (`Arc`); [`Reconciler::run`] is the loop.
pub struct Reconciler {
    ingestor: Arc<Ingestor>,
    rpc: Arc<dyn StacksRpc>,
    contract: ContractRef,
    cfg: ReconcileConfig,
    clock: Arc<dyn Clock>,
    observer: Arc<dyn ReconcileObserver>,
    work: tokio::sync::Mutex<WorkSet>,
    /// Short critical sections only, never across an `.await`.
    status: Mutex<ReconcileStatus>,
    cycles: std::sync::atomic::AtomicU64,
    /// Cycles started (one ahead of `cycles` while a cycle runs).
    started: std::sync::atomic::AtomicU64,
    /// Run a cycle now (after the state store was rebuilt, in tests).
    wake: tokio::sync::Notify,
}

impl Reconciler {
    pub fn new(
        ingestor: Arc<Ingestor>,
        rpc: Arc<dyn StacksRpc>,
        cfg: ReconcileConfig,
        clock: Arc<dyn Clock>,
        observer: Arc<dyn ReconcileObserver>,
    ) -> Self {
        let contract = ContractRef::from(ingestor.contract());
        Reconciler {
            ingestor,
            rpc,
            contract,
            cfg,
            clock,
            observer,
            work: tokio::sync::Mutex::new(WorkSet::default()),
            status: Mutex::new(ReconcileStatus::default()),
            cycles: std::sync::atomic::AtomicU64::new(0),
            started: std::sync::atomic::AtomicU64::new(0),
            wake: tokio::sync::Notify::new(),
        }
    }

    pub fn config(&self) -> &ReconcileConfig {
        &self.cfg
    }

    /// A snapshot for `/health`.
    pub fn status(&self) -> ReconcileStatus {
        self.status
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Start a cycle now instead of at the next tick.
    pub fn wake(&self) {
        self.wake.notify_one();
    }

    /// Run a whole cycle that starts after this call, and wait (at most
    /// `within`) for it to end; `false` if it did not end in time or this
    /// node is not the leader (the leader reconciles on its own). Used after
    /// the state store was rebuilt from history, so the chain has had its
    /// say before the observer acknowledges the next delivery.
    pub async fn reconcile_now(&self, within: Duration) -> bool {
        use std::sync::atomic::Ordering::SeqCst;
        if !self.status().leader {
            return false;
        }
        // A cycle already running may have read the state before the
        // rebuild: wait for the next one to end too.
        let target = self.started.load(SeqCst) + 1;
        self.wake();
        let deadline = Instant::now() + within;
        while self.cycles.load(SeqCst) < target {
            if Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        true
    }

    fn set_status(&self, f: impl FnOnce(&mut ReconcileStatus)) {
        f(&mut self.status.lock().unwrap_or_else(PoisonError::into_inner));
    }

    /// The loop: a cycle per tick while this node is the leader, until
    /// `shutdown`. Ticks missed by a slow cycle are delayed, not stacked.
    pub async fn run(
        self: Arc<Self>,
        mut role: watch::Receiver<Role>,
        shutdown: CancellationToken,
    ) {
        let mut ticker = tokio::time::interval(self.cfg.interval);
        ticker.set_missed_tick_behavior(MissedTickBehavior::Delay);
        // A fixed role (no lease) may have no sender left: stop listening then.
        let mut role_open = true;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => break,
                _ = ticker.tick() => {}
                _ = self.wake.notified() => {}
                changed = role.changed(), if role_open => {
                    if changed.is_err() {
                        // The sender is gone (a fixed role): nothing changed,
                        // so no extra cycle; keep ticking with the last role.
                        role_open = false;
                        continue;
                    }
                    // Leadership changed: act on it at once (a new leader reconciles now).
                }
            }
            // Marks the role seen: a change this cycle acts on does not
            // trigger a second cycle right after it.
            let current = role.borrow_and_update().clone();
            let Role::Leader(fence) = current else {
                self.set_status(|s| s.leader = false);
                // A follower forgets: when it becomes leader it reloads from history.
                self.work.lock().await.reset();
                continue;
            };
            self.set_status(|s| s.leader = true);
            let started = Instant::now();
            let result = tokio::select! {
                _ = shutdown.cancelled() => break,
                r = self.cycle(fence) => r,
            };
            let slow = started.elapsed() > self.cfg.interval;
            match result {
                Ok(report) => {
                    if slow {
                        tracing::warn!(
                            duration_ms = report.duration_ms,
                            interval_ms = self.cfg.interval.as_millis() as u64,
                            "reconcile cycle slower than its interval; the next one starts late"
                        );
                    }
                    self.observer.cycle(&report, slow);
                }
                Err(e) => {
                    tracing::error!(error = %nexus_core::error_chain(&e), "reconcile cycle failed");
                    self.set_status(|s| s.last_error = Some(nexus_core::error_chain(&e)));
                }
            }
        }
    }

    /// One cycle, fenced with `fence` when this node holds a lease.
    pub async fn cycle(&self, fence: Option<Fence>) -> Result<CycleReport, ReconcileError> {
        self.started
            .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        let started = Instant::now();
        let mut report = self.cycle_inner(fence).await;
        let n = self
            .cycles
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        if let Ok(r) = &mut report {
            r.duration_ms = started.elapsed().as_millis() as u64;
            let r = r.clone();
            tracing::info!(
                tip = r.tip_height,
                open = r.open,
                rpc_calls = r.rpc_calls,
                cached = r.cached,
                carried_over = r.carried_over,
                corrections = r.corrections,
                proofs = r.proofs,
                degraded = r.degraded.as_deref(),
                duration_ms = r.duration_ms,
                "reconcile cycle"
            );
            self.set_status(|s| {
                s.degraded = r.degraded.is_some();
                s.last_error = None;
                s.cycles = n;
                s.last_cycle = Some(r);
            });
        }
        report
    }

    async fn cycle_inner(&self, fence: Option<Fence>) -> Result<CycleReport, ReconcileError> {
        let mut report = CycleReport::default();
        // Redis may have come back empty: rebuild it from history first.
        if self.ingestor.sync_state().await? {
            tracing::warn!("state store was behind history; rebuilt before reconciling");
        }
        let mut work = self.work.lock().await;
        work.refresh(&self.ingestor).await?;
        report.open = work.open.len();

        report.rpc_calls += 1;
        let tip = match self.rpc.info().await {
            Ok(info) if !info.is_fully_synced => {
                report.degraded = Some("the RPC node is not fully synced".into());
                return Ok(report);
            }
            Ok(info) => match info.tip() {
                Ok(t) => t,
                Err(e) => {
                    report.degraded = Some(format!("unreadable /v2/info: {e}"));
                    return Ok(report);
                }
            },
            Err(e) => {
                report.rpc_errors += 1;
                report.degraded = Some(nexus_core::error_chain(&e));
                tracing::warn!(error = %nexus_core::error_chain(&e), "RPC unavailable; reconcile cycle changes nothing");
                return Ok(report);
            }
        };
        report.tip_height = Some(tip.height);
        report.tip = Some(tip.index_block_hash.clone());
        let cycle_no = self.cycles.load(std::sync::atomic::Ordering::Relaxed) + 1;

        // Who needs a call: not checked at this tip since their record last changed.
        let mut need: Vec<(Option<u64>, PaymentId)> = work
            .open
            .values()
            .filter(|t| {
                !t.last.as_ref().is_some_and(|v| {
                    v.tip == tip.index_block_hash && v.seq == t.payment.updated_seq
                })
            })
            .map(|t| (t.checked_in, t.payment.payment_id))
            .collect();
        // Never checked first, then least recently checked; ids break ties.
        need.sort_unstable();
        let take = need.len().min(self.cfg.budget);
        let carried = need.len() - take;
        let batch: Vec<&nexus_core::domain::Payment> = need
            .into_iter()
            .take(take)
            .filter_map(|(_, id)| work.open.get(&id).map(|t| &t.payment))
            .collect();
        let reads = read::read_all(
            self.rpc.as_ref(),
            &self.contract,
            self.cfg.concurrency,
            &batch,
            &tip,
        )
        .await;
        report.rpc_calls += reads.calls;

        let mut fresh: std::collections::HashSet<PaymentId> = std::collections::HashSet::new();
        let mut failed = 0u64;
        let mut last_err = None;
        for (id, answer) in reads.answers {
            let Some(t) = work.open.get_mut(&id) else {
                continue;
            };
            t.checked_in = Some(cycle_no);
            match answer {
                Ok(chain) => {
                    t.absent_streak = if chain.shows(t.payment.nonce) {
                        0
                    } else {
                        t.absent_streak + 1
                    };
                    t.last = Some(Verified {
                        tip: tip.index_block_hash.clone(),
                        tip_height: tip.height,
                        chain,
                        seq: t.payment.updated_seq,
                    });
                    fresh.insert(id);
                }
                Err(e) => {
                    failed += 1;
                    last_err = Some(e);
                }
            }
        }
        report.rpc_errors += failed;
        report.carried_over = carried + failed as usize;
        if failed > 0 && fresh.is_empty() {
            let e = last_err.expect("a failure was counted");
            report.degraded = Some(e);
        }

        // Decide every payment with an answer at this tip (fresh or cached).
        let now = self.clock.now_rfc3339();
        let now_t = chrono::DateTime::parse_from_rfc3339(&now).ok();
        let mut corrections = Vec::new();
        let mut proofs = Vec::new();
        let mut leave = Vec::new();
        for t in work.open.values_mut() {
            let Some(v) = &t.last else { continue };
            if v.tip != tip.index_block_hash || v.seq != t.payment.updated_seq {
                continue;
            }
            let is_fresh = fresh.contains(&t.payment.payment_id);
            if !is_fresh {
                report.cached += 1;
            }
            let age = match (
                now_t,
                chrono::DateTime::parse_from_rfc3339(&t.payment.updated_at),
            ) {
                (Some(n), Ok(u)) => (n - u).to_std().unwrap_or_default(),
                _ => Duration::ZERO,
            };
            match judge(t, &v.chain, &tip, age, &self.cfg.rules) {
                Decision::Agree => {
                    if !is_fresh {
                        continue;
                    }
                    if let Some(proof) = self.proof(t, &tip, &now) {
                        // Done and final (or settled where no block is known): leave.
                        // Confirmed escrow payments stay: a claim or refund can come at any block.
                        if done_once_final(&t.payment)
                            && (proof.is_final || t.payment.status_pos().is_none())
                        {
                            leave.push(t.payment.payment_id);
                        }
                        proofs.push(proof);
                    }
                }
                Decision::Wait(_) => {}
                Decision::Correct { to, event, reason } => {
                    let (next, ev) =
                        correction(&t.payment, v.chain.entry(), to, event, &reason, &now);
                    tracing::warn!(
                        target: "nexus::discrepancy",
                        payment_id = %t.payment.payment_id,
                        stored = %t.payment.status,
                        on_chain = %on_chain(&v.chain),
                        corrected_to = %to,
                        event = event.as_str(),
                        tip_height = tip.height,
                        tip = %tip.index_block_hash,
                        reason = %reason,
                        "discrepancy: the chain wins"
                    );
                    let shown = v.chain.shows(next.nonce);
                    if let Some(p) = self.proof_of(&next, shown, &tip, &now) {
                        proofs.push(p);
                    }
                    corrections.push((
                        t.payment.status,
                        Correction {
                            expected_seq: t.payment.updated_seq,
                            payment: next,
                            event: ev,
                        },
                    ));
                }
            }
        }
        for id in leave {
            work.open.remove(&id);
        }
        drop(work);

        if !corrections.is_empty() {
            let from: Vec<(PaymentId, PaymentStatus, PaymentStatus)> = corrections
                .iter()
                .map(|(s, c)| (c.payment.payment_id, *s, c.payment.status))
                .collect();
            let out = self
                .ingestor
                .commit_corrections(
                    corrections.into_iter().map(|(_, c)| c).collect(),
                    "reconciler_corrections",
                    fence.clone(),
                )
                .await?;
            report.stale = out.stale.len();
            report.corrections = out.events.len();
            for (id, from, to) in from {
                if !out.stale.contains(&id) {
                    self.observer.discrepancy(from, to);
                }
            }
            // Corrected payments are read again at the next cycle (their record changed).
            let stale: std::collections::HashSet<_> = out.stale.into_iter().collect();
            proofs.retain(|p| !stale.contains(&p.payment_id));
        }
        if !proofs.is_empty() {
            report.proofs = proofs.len();
            self.ingestor
                .history()
                .put_proofs(&proofs, fence.as_ref())
                .await?;
        }
        Ok(report)
    }

    fn proof(&self, t: &Tracked, tip: &Tip, now: &str) -> Option<Proof> {
        self.proof_of(&t.payment, true, tip, now)
    }

    /// The proof of a record the chain agrees with at `tip`: only statuses
    /// the chain holds (`confirmed`, `claimed`, `refunded`).
    fn proof_of(
        &self,
        p: &nexus_core::domain::Payment,
        on_chain: bool,
        tip: &Tip,
        now: &str,
    ) -> Option<Proof> {
        if !on_chain
            || !matches!(
                p.status,
                PaymentStatus::Confirmed | PaymentStatus::Claimed | PaymentStatus::Refunded
            )
        {
            return None;
        }
        // Only where this status's own transition was mined: a claim learned
        // from the contract's state has no position, not the create's.
        Some(Proof::verified(
            p.payment_id,
            p.status,
            p.status_pos(),
            tip,
            self.cfg.confirmation_depth,
            now,
        ))
    }
}

/// Decide one payment from what the chain said of it.
fn judge(t: &Tracked, answer: &Answer, tip: &Tip, age: Duration, rules: &Rules) -> Decision {
    match (answer, t.payment.nonce) {
        (Answer::Escrow(chain), _) => decide(
            &Check {
                stored: &t.payment,
                chain: chain.as_ref(),
                tip,
                age,
                absent_streak: t.absent_streak,
            },
            rules,
        ),
        (Answer::Nonce(next), Some(nonce)) => decide_exact(
            &ExactCheck {
                stored: &t.payment,
                nonce,
                account_nonce: *next,
                tip,
                age,
                unspent_streak: t.absent_streak,
            },
            rules,
        ),
        // The work set only reads accounts for records with a nonce.
        (Answer::Nonce(_), None) => Decision::Wait(Wait::NotYetOnChain),
    }
}

/// What the chain said, for the discrepancy log.
fn on_chain(answer: &Answer) -> String {
    match answer {
        Answer::Escrow(Some(c)) => c.status.as_str().to_string(),
        Answer::Escrow(None) => "none".to_string(),
        Answer::Nonce(next) => format!("payer's next nonce {next}"),
    }
}

#[cfg(test)]
mod tests;
