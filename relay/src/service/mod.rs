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

use nexus_core::domain::{EventSource, EventType, Payment, PaymentEvent, PaymentId, PaymentStatus};
use nexus_indexer::ingest::{Decision, Ingestor};

use nexus_core::error_chain;

mod batch;

use crate::error::RelayError;
use crate::handoff::Handoff;
use crate::idempotency::reserve_or_wait;
use crate::outcomes::Done;
use crate::outcomes::Outcomes;
use batch::batcher;
#[cfg(test)]
use batch::{decide, Times};
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

/// A checked transaction the accept path records and broadcasts: an escrow
/// call from `POST /api/payments`, or an x402 payment from `/x402/settle`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Relayable {
    /// `0x` + 64 hex.
    pub txid: String,
    /// The payment the transaction moves.
    pub payment_id: PaymentId,
    /// The called function (`create-payment`, `claim-payment`,
    /// `refund-expired`), or `token-transfer` / `transfer` for x402 `exact`.
    pub function: &'static str,
    /// For a transaction that starts a payment: its `pending` record (the
    /// batch sets `updated_at`). `None`: it moves an existing payment.
    pub creates: Option<Payment>,
    /// Who records the `payment:created` event.
    pub source: EventSource,
    /// The exact bytes to broadcast.
    pub bytes: Vec<u8>,
}

impl Relayable {
    /// An escrow call the relay's validation accepted.
    pub fn escrow(valid: ValidTx) -> Self {
        let call = &valid.call;
        let creates = call.function.creates().then(|| {
            let mut p = Payment::new(call.payment_id, PaymentStatus::Pending, "");
            p.sender = Some(call.sender.clone());
            p.recipient = call.recipient.clone();
            p.amount = call.amount.map(|a| a.to_string());
            p.memo = call.memo.as_ref().map(|m| format!("0x{}", hex::encode(m)));
            p.create_txid = Some(call.txid.clone());
            // A token create: the token's contract, until its block's
            // transfer names the asset in it.
            p.asset = call.token.clone();
            p
        });
        Relayable {
            txid: call.txid.clone(),
            payment_id: call.payment_id,
            function: call.function.as_str(),
            creates,
            source: EventSource::Relay,
            bytes: valid.bytes,
        }
    }
}

/// Whether a broadcast of `function` is the one that starts its payment
/// (its failure fails the payment): an escrow create, or an x402 transfer.
pub fn starts_payment(function: &str) -> bool {
    matches!(
        function,
        "create-payment" | "create-payment-ft" | "token-transfer" | "transfer"
    )
}

/// A validated request on its way through the stages.
struct Request {
    valid: Relayable,
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
        self.submit_checked(Relayable::escrow(valid), s.idempotency_key, s.request_id)
            .await
    }

    /// Record and schedule a transaction already checked by its caller (the
    /// x402 facilitator), idempotently: the same key and bytes answer the
    /// same; `None` keys it by txid.
    pub async fn submit_checked(
        &self,
        valid: Relayable,
        idempotency_key: Option<String>,
        request_id: Option<String>,
    ) -> Result<Answer, RelayError> {
        let key = match idempotency_key {
            Some(k) => check_key(k)?,
            None => format!("txid:{}", valid.txid),
        };
        let fingerprint = hex::encode(Sha256::digest(&valid.bytes));
        let req = Request {
            valid,
            key: key.clone(),
            fingerprint,
            request_id,
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
            JobAnswer::Found(Reservation::Conflict(first)) => {
                Err(RelayError::IdempotencyConflict(key, first.map(|r| r.body)))
            }
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
    function: &str,
    request_id: Option<&str>,
) -> serde_json::Value {
    let id = p.payment_id.to_string();
    json!({
        "payment_id": id,
        "txid": txid,
        "function": function,
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

#[cfg(test)]
mod tests;
