//! The second stage: commit the requests whose keys are new, as many as
//! queued up during the last commit, in one history transaction (payment,
//! `payment:created` event and broadcast schedule together), then hand the
//! broadcasts to the engine and answer.

use super::*;

/// Batches in flight at once. One: a batch reads and commits under the
/// (serial) ingest lock, so a second one formed meanwhile would only wait
/// for it, and the requests arriving during that wait would go to a third,
/// smaller batch. Forming the next batch when the last one is done gathers
/// everything that queued up during its commit.
const BATCHES_IN_FLIGHT: usize = 1;

pub(super) async fn batcher(
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

/// The `pending` payment a transaction starts, and its `payment:created`.
pub(super) fn created(tx: &Relayable, template: &Payment, at: &str) -> (Payment, PaymentEvent) {
    let mut p = template.clone();
    p.updated_at = at.to_string();
    let ev = PaymentEvent {
        txid: Some(tx.txid.clone()),
        ..PaymentEvent::about(&p, EventType::Created, tx.source, at)
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
                    let tx = &req.valid;
                    let body = accepted_body(&p, &tx.txid, tx.function, req.request_id.as_deref());
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
    ids.extend(jobs.iter().map(|j| j.req.valid.payment_id));
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
pub(super) struct Decided {
    /// Each job's answer, in job order.
    pub(super) results: Vec<Result<Payment, RelayError>>,
    /// Broadcasts committed leased to this node, for its engine.
    pub(super) handed: Vec<NewBroadcast>,
    /// Broadcasts scheduled in all (handed over or not).
    pub(super) scheduled: usize,
    /// Outcomes (indexes into the ones decided) whose payment already
    /// changed in this batch: decided in the next one, on fresh records.
    pub(super) deferred: Vec<usize>,
}

/// When a batch is decided, and how many of its broadcasts may go straight
/// to the engine.
pub(super) struct Times<'a> {
    pub(super) at: &'a str,
    pub(super) now_ms: i64,
    /// `next_attempt_ms` of a broadcast handed to the engine.
    pub(super) leased_until_ms: i64,
    pub(super) handoff_room: usize,
}

/// The outcomes' events, then each job's answer, against `current` (the
/// records of the outcomes' payments, then of the jobs', in order): the
/// payments to change or create, the broadcasts to schedule and those of
/// them handed straight to the engine. A payment changes at most once per
/// batch (one row per payment per commit): a second outcome for it waits
/// for the next batch. Pure.
pub(super) fn decide(
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
        let tx = &job.valid;
        let id = tx.payment_id;
        // A create earlier in this batch wins over what the stores said.
        let cur = fresh.get(&id).cloned().or(cur);
        // Only a payment created by this very batch has a broadcast row that
        // cannot exist yet (rows are inserted if absent): handing over any
        // other could attempt a row the store already has in another state.
        let fresh_create = tx.creates.is_some() && cur.is_none();
        let decided = match (&tx.creates, cur) {
            (Some(template), None) => {
                let (p, event) = created(tx, template, at);
                fresh.insert(id, p.clone());
                changes.push((p.clone(), event));
                Ok(p)
            }
            (Some(_), Some(p)) => {
                if p.create_txid.as_deref() == Some(&tx.txid) {
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
            (None, None) => Err(RelayError::UnknownPayment(id.to_string())),
            (None, Some(p)) if p.status.is_settled() => Err(RelayError::Settled {
                payment_id: id.to_string(),
                status: p.status.to_string(),
            }),
            (None, Some(p)) => Ok(p),
        };
        if decided.is_ok() {
            let hand_over = fresh_create && handed.len() < t.handoff_room;
            let b = NewBroadcast {
                txid: tx.txid.clone(),
                payment_id: id.to_string(),
                function: tx.function.to_string(),
                tx: tx.bytes.clone(),
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
