//! Accepting a relay request: validate, reserve the idempotency key, then
//! (batched with concurrent requests) record the `pending` payment with its
//! `payment:created` event and schedule the broadcast, and answer 202.
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
use tokio::sync::{mpsc, oneshot, Notify};
use tokio_util::sync::CancellationToken;

use nexus_indexer::decode::{EscrowCall, EscrowFunction};
use nexus_indexer::domain::{EventSource, EventType, Payment, PaymentEvent, PaymentStatus};
use nexus_indexer::ingest::{Decision, Ingestor};

use nexus_verifier::error_chain;

use crate::error::RelayError;
use crate::idempotency::{reserve_or_wait, IdempotencyStore, Reservation, StoredResponse};
use crate::store::{schedule_rows, NewBroadcast};
use crate::validate::{validate, RelayPolicy, ValidTx};

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

struct Job {
    valid: ValidTx,
    key: String,
    request_id: Option<String>,
    reply: oneshot::Sender<Result<Payment, RelayError>>,
}

/// The accept path. Cheap to share.
pub struct Acceptor {
    cfg: AcceptConfig,
    idempotency: Arc<dyn IdempotencyStore>,
    jobs: mpsc::Sender<Job>,
}

/// Parts the batcher needs.
pub struct AcceptDeps {
    pub ingestor: Arc<Ingestor>,
    pub idempotency: Arc<dyn IdempotencyStore>,
    /// Woken once a batch is scheduled (the broadcast engine).
    pub wake: Arc<Notify>,
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
        let (tx, rx) = mpsc::channel(cfg.batch_max.max(1) * 4);
        let idempotency = deps.idempotency.clone();
        tasks.spawn(batcher(rx, deps, cfg.batch_max.max(1), token));
        Arc::new(Acceptor {
            cfg,
            idempotency,
            jobs: tx,
        })
    }

    /// Handle one request end to end.
    pub async fn submit(&self, s: Submission) -> Result<Answer, RelayError> {
        let valid = validate(&s.tx, &self.cfg.policy)?;
        let key = match s.idempotency_key {
            Some(k) => check_key(k)?,
            None => format!("txid:{}", valid.call.txid),
        };
        let fingerprint = hex::encode(Sha256::digest(&s.tx));
        let unavailable = |e: &dyn std::error::Error| RelayError::Unavailable(error_chain(e));
        let reservation = reserve_or_wait(
            &*self.idempotency,
            &key,
            &fingerprint,
            self.cfg.duplicate_patience,
        )
        .await
        .map_err(|e| unavailable(&e))?;
        match reservation {
            Reservation::Replay(reply) => {
                return Ok(Answer {
                    reply,
                    replayed: true,
                })
            }
            Reservation::Conflict => return Err(RelayError::IdempotencyConflict(key)),
            Reservation::InFlight => return Err(RelayError::InProgress(key)),
            Reservation::New => {}
        }
        let (reply, rx) = oneshot::channel();
        let txid = valid.call.txid.clone();
        let function = valid.call.function;
        let sent = self
            .jobs
            .send(Job {
                valid,
                key: key.clone(),
                request_id: s.request_id.clone(),
                reply,
            })
            .await;
        let result = match sent {
            Ok(()) => rx.await.unwrap_or(Err(RelayError::ShuttingDown)),
            Err(_) => Err(RelayError::ShuttingDown),
        };
        let payment = match result {
            Ok(p) => p,
            Err(e) => {
                // Nothing promised: the key is free for a retry.
                if let Err(re) = self.idempotency.release(&key).await {
                    tracing::warn!(error = %error_chain(&re), key, "could not release an idempotency key");
                }
                return Err(e);
            }
        };
        let body = accepted_body(&payment, &txid, function, s.request_id.as_deref());
        let reply = StoredResponse {
            status: 202,
            body: body.to_string(),
        };
        if let Err(e) = self.idempotency.complete(&key, &fingerprint, &reply).await {
            // The broadcast is scheduled; a retry finds the same records.
            tracing::warn!(error = %error_chain(&e), key, "could not store the idempotent response");
        }
        Ok(Answer {
            reply,
            replayed: false,
        })
    }
}

fn check_key(k: String) -> Result<String, RelayError> {
    if k.is_empty() || k.len() > MAX_KEY_LEN || !k.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(crate::validate::ValidationError {
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
        let first = tokio::select! {
            _ = token.cancelled() => break,
            j = rx.recv() => match j { Some(j) => j, None => break },
        };
        let Ok(slot) = slots.clone().acquire_owned().await else {
            break;
        };
        let mut jobs = vec![first];
        // Whatever arrived meanwhile joins this commit (group commit).
        while jobs.len() < batch_max {
            match rx.try_recv() {
                Ok(j) => jobs.push(j),
                Err(_) => break,
            }
        }
        let deps = deps.clone();
        tokio::spawn(async move {
            match accept_batch(&deps, &jobs).await {
                Ok(results) => {
                    for (job, r) in jobs.into_iter().zip(results) {
                        let _ = job.reply.send(r);
                    }
                }
                Err(e) => {
                    let msg = error_chain(&*e);
                    tracing::warn!(error = %msg, n = jobs.len(), "relay batch not committed");
                    for job in jobs {
                        let _ = job.reply.send(Err(RelayError::Unavailable(msg.clone())));
                    }
                }
            }
            deps.wake.notify_one();
            drop(slot);
        });
    }
    // Batches in flight finish (their requests get their answers) ...
    let _ = slots.acquire_many(BATCHES_IN_FLIGHT as u32).await;
    // ... and requests still queued get a clear answer rather than a dropped connection.
    rx.close();
    while let Ok(j) = rx.try_recv() {
        let _ = j.reply.send(Err(RelayError::ShuttingDown));
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

type BatchResult =
    Result<Vec<Result<Payment, RelayError>>, Box<dyn std::error::Error + Send + Sync>>;

/// Decide every job against the current records and commit, in one history
/// transaction, the new `pending` payments with their `payment:created`
/// events and the broadcasts of every accepted job.
async fn accept_batch(deps: &AcceptDeps, jobs: &[Job]) -> BatchResult {
    let ids: Vec<_> = jobs.iter().map(|j| j.valid.call.payment_id).collect();
    let now = chrono::Utc::now();
    let at = now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    let now_ms = now.timestamp_millis();
    // Decided under the ingest lock on the records as they are now: nothing
    // can change them between the decision and the commit.
    let (results, _) = deps
        .ingestor
        .commit_decided(&ids, "relay_created", |current| {
            decide(jobs, current, &at, now_ms)
        })
        .await?;
    Ok(results)
}

/// Each job's answer against `current` (its payment's record, in job
/// order), the payments to create and the broadcasts to schedule. Pure.
fn decide(
    jobs: &[Job],
    current: Vec<Option<Payment>>,
    at: &str,
    now_ms: i64,
) -> Decision<Vec<Result<Payment, RelayError>>> {
    let mut results: Vec<Result<Payment, RelayError>> = Vec::with_capacity(jobs.len());
    let mut schedule = Vec::new();
    let mut changes = Vec::new();
    // Payments created earlier in this batch: a second create of the same id is decided against it.
    let mut fresh: std::collections::HashMap<_, Payment> = std::collections::HashMap::new();
    for (job, cur) in jobs.iter().zip(current) {
        let call = &job.valid.call;
        let id = call.payment_id;
        // A create earlier in this batch wins over what the stores said.
        let cur = fresh.get(&id).cloned().or(cur);
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
            schedule.push(NewBroadcast {
                txid: call.txid.clone(),
                payment_id: id.to_string(),
                function: call.function.as_str().to_string(),
                tx: job.valid.bytes.clone(),
                request_id: job.request_id.clone(),
                idempotency_key: job.key.clone(),
                now_ms,
            });
        }
        results.push(decided);
    }
    Decision {
        changes,
        attached: vec![schedule_rows(&schedule)],
        value: results,
    }
}
