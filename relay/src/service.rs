//! Accepting a relay request: validate, then (batched with concurrent
//! requests) reserve the idempotency key, then (batched again) record the
//! `pending` payment with its `payment:created` event and schedule the
//! broadcast, and answer 202.
//!
//! Two stages, each taking whatever queued up while it was busy: the
//! reserver takes a group's keys in one call to the key store (one Redis
//! round trip for the group, not one or two per request) and answers
//! replays and conflicts itself; the batcher commits the requests whose keys
//! are new. The reserver works while a commit runs.
//!
//! The payment record, its event and the broadcast schedule are one history
//! transaction (the schedule rows ride on the ingest commit as attached
//! rows): a crash leaves either all of them or none, so the engine always
//! finds the payment it reports on and a 202 always has its broadcast. With
//! none (no 202 was sent), the client retries with the same key (its
//! reservation lapses after 30 s) and is handled afresh.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::sync::{mpsc, oneshot};
use tokio_util::sync::CancellationToken;

use nexus_core::decode::{EscrowCall, EscrowFunction};
use nexus_core::domain::{EventSource, EventType, Payment, PaymentEvent, PaymentId, PaymentStatus};
use nexus_indexer::ingest::{Decision, Ingestor};

use nexus_core::error_chain;

use crate::error::RelayError;
use crate::handoff::Handoff;
use crate::idempotency::reserve_or_wait;
use crate::outcomes::Done;
use crate::outcomes::Outcomes;
use nexus_core::validate::{validate, RelayPolicy, ValidTx};
use nexus_store::broadcasts::{schedule_rows, NewBroadcast};
use nexus_store::idempotency::{IdempotencyStore, Reservation, StoredResponse};

/// A request as the HTTP layer hands it over.
#[derive(Debug, Clone)]
pub struct Submission {
    /// The signed transaction's bytes.
    pub tx: Vec<u8>,
    /// `Idempotency-Key`; `None`: derived from the txid.
    pub idempotency_key: Option<String>,
    /// `X-Request-Id`, recorded with the broadcast.
    pub request_id: Option<String>,
}

/// The answer: exactly what is replayed for the same key and body.
pub type Reply = StoredResponse;

/// A request's answer, and whether it was a stored one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Answer {
    pub reply: Reply,
    /// Answered from the idempotency store (the same key and body came before).
    pub replayed: bool,
}

/// Tunables of the accept path.
#[derive(Debug, Clone)]
pub struct AcceptConfig {
    pub policy: RelayPolicy,
    /// Requests committed together at most.
    pub batch_max: usize,
    /// How long a duplicate waits for the first request's answer.
    pub duplicate_patience: Duration,
}

/// A validated request on its way through the stages.
struct Request {
    valid: ValidTx,
    key: String,
    /// sha256 of the body, stored with the key's response.
    fingerprint: String,
    request_id: Option<String>,
}

struct Job {
    req: Request,
    reply: oneshot::Sender<JobAnswer>,
}

/// What the stages tell a request.
enum JobAnswer {
    /// Its key was taken for it: the 202 once committed and stored under
    /// the key, or why not (then the key is given back).
    Committed(Result<Reply, RelayError>),
    /// Its key was not free: the stored response, or a conflict.
    Found(Reservation),
    /// A request with the same key and body is in flight (or the key lapsed
    /// between the store's two reads): wait for it one request at a time.
    InFlight(Box<Request>),
    /// Refused before its key was taken (the key store failed, or the node
    /// is stopping).
    Refused(RelayError),
}

/// The accept path. Cheap to share.
pub struct Acceptor {
    cfg: AcceptConfig,
    idempotency: Arc<dyn IdempotencyStore>,
    /// To the reserver.
    reserve: mpsc::Sender<Job>,
    /// To the batcher (requests whose key is already theirs).
    commit: mpsc::Sender<Job>,
}

/// Parts the batcher needs.
pub struct AcceptDeps {
    pub ingestor: Arc<Ingestor>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// To this node's broadcast engine: fresh creates go straight to it
    /// (committed leased to it), and it is woken once a batch is scheduled.
    pub handoff: Arc<Handoff>,
    /// From the engine: recorded attempts whose events ride on the next batch.
    pub outcomes: Arc<Outcomes>,
    /// When a batch is decided (its events' `at`, its leases).
    pub clock: Arc<dyn nexus_core::clock::Clock>,
}

/// Longest idempotency key accepted.
pub const MAX_KEY_LEN: usize = 255;

impl Acceptor {
    /// Start the batcher; it ends when `token` is cancelled.
    pub fn start(
        cfg: AcceptConfig,
        deps: AcceptDeps,
        token: CancellationToken,
        tasks: &tokio_util::task::TaskTracker,
    ) -> Arc<Self> {
        let batch_max = cfg.batch_max.max(1);
        let (reserve, reserve_rx) = mpsc::channel(batch_max * 4);
        let (commit, commit_rx) = mpsc::channel(batch_max * 4);
        let idempotency = deps.idempotency.clone();
        tasks.spawn(reserver(
            reserve_rx,
            idempotency.clone(),
            commit.clone(),
            batch_max,
            token.clone(),
        ));
        tasks.spawn(batcher(commit_rx, deps, batch_max, token));
        Arc::new(Acceptor {
            cfg,
            idempotency,
            reserve,
            commit,
        })
    }

    /// Hand `req` to a stage and wait for its answer; `closed`: the answer
    /// if that stage has stopped.
    async fn ask(stage: &mpsc::Sender<Job>, req: Request, closed: fn() -> JobAnswer) -> JobAnswer {
        let (reply, rx) = oneshot::channel();
        match stage.send(Job { req, reply }).await {
            Ok(()) => rx.await.unwrap_or_else(|_| closed()),
            Err(_) => closed(),
        }
    }

    /// Handle one request end to end.
    pub async fn submit(&self, s: Submission) -> Result<Answer, RelayError> {
        let valid = validate(&s.tx, &self.cfg.policy)?;
        let key = match s.idempotency_key {
            Some(k) => check_key(k)?,
            None => format!("txid:{}", valid.call.txid),
        };
        let fingerprint = hex::encode(Sha256::digest(&s.tx));
        let req = Request {
            valid,
            key: key.clone(),
            fingerprint,
            request_id: s.request_id,
        };
        let stopping = || JobAnswer::Refused(RelayError::ShuttingDown);
        let taken_then_stopping = || JobAnswer::Committed(Err(RelayError::ShuttingDown));
        let answer = match Self::ask(&self.reserve, req, stopping).await {
            JobAnswer::InFlight(req) => {
                // Rare: a concurrent duplicate. Poll until it has an answer
                // (or its reservation lapsed and the key is ours).
                let found = reserve_or_wait(
                    &*self.idempotency,
                    &req.key,
                    &req.fingerprint,
                    self.cfg.duplicate_patience,
                )
                .await
                .map_err(|e| RelayError::Unavailable(error_chain(&e)))?;
                match found {
                    Reservation::New => Self::ask(&self.commit, *req, taken_then_stopping).await,
                    other => JobAnswer::Found(other),
                }
            }
            answer => answer,
        };
        match answer {
            JobAnswer::Committed(Ok(reply)) => Ok(Answer {
                reply,
                replayed: false,
            }),
            JobAnswer::Committed(Err(e)) => {
                // Nothing promised: the key is free for a retry.
                if let Err(re) = self.idempotency.release(&key).await {
                    tracing::warn!(error = %error_chain(&re), key, "could not release an idempotency key");
                }
                Err(e)
            }
            JobAnswer::Found(Reservation::Replay(reply)) => Ok(Answer {
                reply,
                replayed: true,
            }),
            JobAnswer::Found(Reservation::Conflict) => Err(RelayError::IdempotencyConflict(key)),
            // Still in flight after the wait (`New` never comes back as found).
            JobAnswer::Found(_) | JobAnswer::InFlight(_) => Err(RelayError::InProgress(key)),
            JobAnswer::Refused(e) => Err(e),
        }
    }
}

/// The first stage: each group of queued requests has its keys reserved in
/// one call; new ones go on to the batcher, the rest are answered here.
async fn reserver(
    mut rx: mpsc::Receiver<Job>,
    store: Arc<dyn IdempotencyStore>,
    commit: mpsc::Sender<Job>,
    batch_max: usize,
    token: CancellationToken,
) {
    loop {
        let first = tokio::select! {
            _ = token.cancelled() => break,
            j = rx.recv() => match j { Some(j) => j, None => break },
        };
        let mut group = vec![first];
        while group.len() < batch_max {
            match rx.try_recv() {
                Ok(j) => group.push(j),
                Err(_) => break,
            }
        }
        let items: Vec<(String, String)> = group
            .iter()
            .map(|j| (j.req.key.clone(), j.req.fingerprint.clone()))
            .collect();
        match store.reserve_many(&items).await {
            Ok(found) => {
                for (job, r) in group.into_iter().zip(found) {
                    match r {
                        Reservation::New => {
                            if let Err(mpsc::error::SendError(job)) = commit.send(job).await {
                                let _ = job
                                    .reply
                                    .send(JobAnswer::Committed(Err(RelayError::ShuttingDown)));
                            }
                        }
                        Reservation::InFlight => {
                            let _ = job.reply.send(JobAnswer::InFlight(Box::new(job.req)));
                        }
                        r => {
                            let _ = job.reply.send(JobAnswer::Found(r));
                        }
                    }
                }
            }
            Err(e) => {
                let msg = error_chain(&e);
                for job in group {
                    let _ = job
                        .reply
                        .send(JobAnswer::Refused(RelayError::Unavailable(msg.clone())));
                }
            }
        }
    }
    // Requests still queued get a clear answer rather than a dropped connection.
    rx.close();
    while let Ok(j) = rx.try_recv() {
        let _ = j.reply.send(JobAnswer::Refused(RelayError::ShuttingDown));
    }
}

fn check_key(k: String) -> Result<String, RelayError> {
    if k.is_empty() || k.len() > MAX_KEY_LEN || !k.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(nexus_core::validate::ValidationError {
            field: "Idempotency-Key",
            message: format!(
                "must be 1 to {MAX_KEY_LEN} visible ASCII characters (no spaces), got {} bytes",
                k.len()
            ),
        }
        .into());
    }
    Ok(k)
}

/// The 202 body: the payment record, the txid and where to follow it.
pub fn accepted_body(
    p: &Payment,
    txid: &str,
    function: EscrowFunction,
    request_id: Option<&str>,
) -> serde_json::Value {
    let id = p.payment_id.to_string();
    json!({
        "payment_id": id,
        "txid": txid,
        "function": function.as_str(),
        "status": p.status,
        "broadcast": "scheduled",
        "request_id": request_id,
        "payment": p,
        "links": {
            "self": format!("/api/payments/{id}"),
            "proof": format!("/api/payments/{id}/proof"),
        },
    })
}

/// Batches in flight at once. One: a batch reads and commits under the
/// (serial) ingest lock, so a second one formed meanwhile would only wait
/// for it, and the requests arriving during that wait would go to a third,
/// smaller batch. Forming the next batch when the last one is done gathers
/// everything that queued up during its commit.
const BATCHES_IN_FLIGHT: usize = 1;

async fn batcher(
    mut rx: mpsc::Receiver<Job>,
    deps: AcceptDeps,
    batch_max: usize,
    token: CancellationToken,
) {
    let deps = Arc::new(deps);
    let slots = Arc::new(tokio::sync::Semaphore::new(BATCHES_IN_FLIGHT));
    loop {
        // A request, or the engine's outcomes (their events ride on the
        // next batch; with no request waiting, they make one of their own).
        let first = tokio::select! {
            _ = token.cancelled() => break,
            j = rx.recv() => match j { Some(j) => Some(j), None => break },
            _ = deps.outcomes.wake.notified() => None,
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let mut jobs: Vec<Job> = first.into_iter().collect();
        // Whatever arrived meanwhile joins this commit (group commit).
        while jobs.len() < batch_max {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let outcomes = deps.outcomes.take(OUTCOMES_MAX);
        if jobs.is_empty() && outcomes.is_empty() {
            continue;
        }
        let deps = deps.clone();
        tokio::spawn(async move { run_batch(&deps, jobs, outcomes, Some(slot)).await });
    }
    // Batches in flight finish (their requests get their answers) ...
    let _ = slots.acquire_many(BATCHES_IN_FLIGHT as u32).await;
    // ... outcomes recorded before the engine stopped get their events ...
    let outcomes = deps.outcomes.take(usize::MAX);
    if !outcomes.is_empty() {
        run_batch(&deps, Vec::new(), outcomes, None).await;
    }
    // ... and requests still queued get a clear answer rather than a dropped connection.
    rx.close();
    while let Ok(j) = rx.try_recv() {
        let _ = j
            .reply
            .send(JobAnswer::Committed(Err(RelayError::ShuttingDown)));
    }
}

/// The payment a create-payment describes, `pending`, and its event.
fn created(call: &EscrowCall, at: &str) -> (Payment, PaymentEvent) {
    let mut p = Payment::new(call.payment_id, PaymentStatus::Pending, at);
    p.sender = Some(call.sender.clone());
    p.recipient = call.recipient.clone();
    p.amount = call.amount.map(|a| a.to_string());
    p.memo = call.memo.as_ref().map(|m| format!("0x{}", hex::encode(m)));
    p.create_txid = Some(call.txid.clone());
    let ev = PaymentEvent {
        seq: 0,
        event_type: EventType::Created,
        payment_id: p.payment_id,
        status: PaymentStatus::Pending,
        sender: p.sender.clone(),
        recipient: p.recipient.clone(),
        amount: p.amount.clone(),
        txid: Some(call.txid.clone()),
        block_height: None,
        index_block_hash: None,
        burn_block_height: None,
        confirmations: 0,
        is_final: false,
        source: EventSource::Relay,
        reason: None,
        reverted: None,
        at: at.to_string(),
        reason_data: None,
        retry: None,
    };
    (p, ev)
}

/// Most engine outcomes one batch commits (more wait for the next batch).
/// The engine hands over a whole round at once (up to `8 x concurrency`);
/// taken in one batch, it made that batch's commit twice the size of the
/// others and its requests the slow tail. Spread over the next few batches
/// (each of which also takes new requests), `make bench-relay`'s p99 fell,
/// at the same throughput, from 25.4 ms (no cap) to 21.4 ms (96), and from
/// 24.0 ms (96) to 21.0 ms (48): means of three or four interleaved runs
/// each, 2026-11-23. Outcomes left over do not pile up: a partial take
/// leaves a wake-up, so they make the next batch even with no request.
const OUTCOMES_MAX: usize = 48;

/// Commit one batch, store the responses under their keys and answer the
/// requests. Outcomes it did not commit go back to the queue for the next
/// batch. `slot` (the batch in flight) is given back once the commit is
/// done: storing the responses need not hold up the next batch.
async fn run_batch(
    deps: &AcceptDeps,
    jobs: Vec<Job>,
    outcomes: Vec<Done>,
    slot: Option<tokio::sync::OwnedSemaphorePermit>,
) {
    let committed = accept_batch(deps, &jobs, &outcomes).await;
    drop(slot);
    match committed {
        Ok((results, deferred)) => {
            deps.outcomes
                .requeue(deferred.into_iter().map(|i| outcomes[i].clone()).collect());
            let mut answers = Vec::with_capacity(jobs.len());
            let mut stored = Vec::with_capacity(jobs.len());
            for (job, r) in jobs.into_iter().zip(results) {
                let req = job.req;
                let r = r.map(|p| {
                    let call = &req.valid.call;
                    let body =
                        accepted_body(&p, &call.txid, call.function, req.request_id.as_deref());
                    StoredResponse {
                        status: 202,
                        body: body.to_string(),
                    }
                });
                if let Ok(reply) = &r {
                    stored.push((req.key, req.fingerprint, reply.clone()));
                }
                answers.push((job.reply, r));
            }
            // Stored before anyone is answered, so a client's retry with the
            // same key gets this very response.
            if let Err(e) = deps.idempotency.complete_many(&stored).await {
                // The broadcasts are scheduled; a retry finds the same records.
                tracing::warn!(error = %error_chain(&e), n = stored.len(), "could not store the idempotent responses");
            }
            for (reply, r) in answers {
                let _ = reply.send(JobAnswer::Committed(r));
            }
        }
        Err(e) => {
            let msg = error_chain(&*e);
            tracing::warn!(error = %msg, n = jobs.len(), outcomes = outcomes.len(), "relay batch not committed");
            for job in jobs {
                let _ = job
                    .reply
                    .send(JobAnswer::Committed(Err(RelayError::Unavailable(
                        msg.clone(),
                    ))));
            }
            if !outcomes.is_empty() {
                // The store is failing: give it a moment before the events are tried again.
                tokio::time::sleep(Duration::from_millis(200)).await;
                deps.outcomes.requeue(outcomes);
            }
        }
    }
}

/// Each job's answer, and which outcomes (by index) wait for the next batch.
type BatchResult = Result<
    (Vec<Result<Payment, RelayError>>, Vec<usize>),
    Box<dyn std::error::Error + Send + Sync>,
>;

/// Decide the engine's outcomes, then every job, against the current
/// records and commit, in one history transaction, the outcomes' payment
/// events, the new `pending` payments with their `payment:created` events
/// and the broadcasts of every accepted job.
async fn accept_batch(deps: &AcceptDeps, jobs: &[Job], outcomes: &[Done]) -> BatchResult {
    let mut ids: Vec<PaymentId> = Vec::with_capacity(outcomes.len() + jobs.len());
    // Indexes of the outcomes decided (those whose payment id parses).
    let mut kept: Vec<usize> = Vec::with_capacity(outcomes.len());
    for (i, d) in outcomes.iter().enumerate() {
        match d.broadcast.payment_id.parse::<PaymentId>() {
            Ok(id) => {
                ids.push(id);
                kept.push(i);
            }
            // Rows are written from validated transactions: this is a damaged store.
            Err(e) => {
                tracing::error!(payment_id = %d.broadcast.payment_id, error = %e, "relay: broadcast with an unreadable payment id; its event is skipped")
            }
        }
    }
    ids.extend(jobs.iter().map(|j| j.req.valid.call.payment_id));
    let now_ms = deps.clock.now_ms();
    let at = nexus_core::clock::rfc3339(now_ms);
    let times = Times {
        at: &at,
        now_ms,
        leased_until_ms: deps.handoff.leased_until(now_ms),
        handoff_room: deps.handoff.room(),
    };
    // Decided under the ingest lock on the records as they are now: nothing
    // can change them between the decision and the commit.
    let (decided, _) = deps
        .ingestor
        .commit_decided(&ids, "relay_events", |current| {
            let decided: Vec<&Done> = kept.iter().map(|&i| &outcomes[i]).collect();
            decide(&decided, jobs, current, &times)
        })
        .await?;
    let Decided {
        results,
        handed,
        scheduled,
        deferred,
    } = decided;
    let deferred = deferred.into_iter().map(|i| kept[i]).collect();
    // Only once committed: the engine must never broadcast what a failed
    // commit did not schedule.
    if scheduled > handed.len() {
        deps.handoff.request_claim();
    }
    deps.handoff.push(handed);
    Ok((results, deferred))
}

/// What [`decide`] hands back once its changes are committed.
struct Decided {
    /// Each job's answer, in job order.
    results: Vec<Result<Payment, RelayError>>,
    /// Broadcasts committed leased to this node, for its engine.
    handed: Vec<NewBroadcast>,
    /// Broadcasts scheduled in all (handed over or not).
    scheduled: usize,
    /// Outcomes (indexes into the ones decided) whose payment already
    /// changed in this batch: decided in the next one, on fresh records.
    deferred: Vec<usize>,
}

/// When a batch is decided, and how many of its broadcasts may go straight
/// to the engine.
struct Times<'a> {
    at: &'a str,
    now_ms: i64,
    /// `next_attempt_ms` of a broadcast handed to the engine.
    leased_until_ms: i64,
    handoff_room: usize,
}

/// The outcomes' events, then each job's answer, against `current` (the
/// records of the outcomes' payments, then of the jobs', in order): the
/// payments to change or create, the broadcasts to schedule and those of
/// them handed straight to the engine. A payment changes at most once per
/// batch (one row per payment per commit): a second outcome for it waits
/// for the next batch. Pure.
fn decide(
    outcomes: &[&Done],
    jobs: &[Job],
    mut current: Vec<Option<Payment>>,
    t: &Times<'_>,
) -> Decision<Decided> {
    let at = t.at;
    let job_records = current.split_off(outcomes.len());
    let mut results: Vec<Result<Payment, RelayError>> = Vec::with_capacity(jobs.len());
    let mut schedule = Vec::new();
    let mut handed = Vec::new();
    let mut changes = Vec::new();
    let mut deferred = Vec::new();
    // Payments changed earlier in this batch: later decisions about them are
    // taken against the changed record.
    let mut fresh: std::collections::HashMap<PaymentId, Payment> = std::collections::HashMap::new();
    for (i, (d, cur)) in outcomes.iter().zip(current).enumerate() {
        let Some(cur) = cur else { continue };
        if fresh.contains_key(&cur.payment_id) {
            deferred.push(i);
            continue;
        }
        if let Some((p, event)) = crate::outcomes::correction(d, cur, at) {
            fresh.insert(p.payment_id, p.clone());
            changes.push((p, event));
        }
    }
    for (job, cur) in jobs.iter().map(|j| &j.req).zip(job_records) {
        let call = &job.valid.call;
        let id = call.payment_id;
        // A create earlier in this batch wins over what the stores said.
        let cur = fresh.get(&id).cloned().or(cur);
        // Only a payment created by this very batch has a broadcast row that
        // cannot exist yet (rows are inserted if absent): handing over any
        // other could attempt a row the store already has in another state.
        let fresh_create = call.function == EscrowFunction::CreatePayment && cur.is_none();
        let decided = match (call.function, cur) {
            (EscrowFunction::CreatePayment, None) => {
                let (p, event) = created(call, at);
                fresh.insert(id, p.clone());
                changes.push((p.clone(), event));
                Ok(p)
            }
            (EscrowFunction::CreatePayment, Some(p)) => {
                if p.create_txid.as_deref() == Some(&call.txid) {
                    Ok(p)
                } else {
                    Err(RelayError::PaymentExists {
                        payment_id: id.to_string(),
                        existing_txid: p
                            .create_txid
                            .unwrap_or_else(|| "an unknown transaction".into()),
                    })
                }
            }
            (_, None) => Err(RelayError::UnknownPayment(id.to_string())),
            (_, Some(p)) if p.status.is_settled() => Err(RelayError::Settled {
                payment_id: id.to_string(),
                status: p.status.to_string(),
            }),
            (_, Some(p)) => Ok(p),
        };
        if decided.is_ok() {
            let hand_over = fresh_create && handed.len() < t.handoff_room;
            let b = NewBroadcast {
                txid: call.txid.clone(),
                payment_id: id.to_string(),
                function: call.function.as_str().to_string(),
                tx: job.valid.bytes.clone(),
                request_id: job.request_id.clone(),
                idempotency_key: job.key.clone(),
                now_ms: t.now_ms,
                next_attempt_ms: if hand_over {
                    t.leased_until_ms
                } else {
                    t.now_ms
                },
            };
            if hand_over {
                handed.push(b.clone());
            }
            schedule.push(b);
        }
        results.push(decided);
    }
    Decision {
        changes,
        attached: vec![schedule_rows(&schedule)],
        value: Decided {
            results,
            handed,
            scheduled: schedule.len(),
            deferred,
        },
    }
}

#[cfg(test)]
#[path = "service_tests.rs"]
mod tests;
