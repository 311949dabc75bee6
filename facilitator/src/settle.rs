//! `/settle`: verify, record and broadcast once, then wait for the block.

use std::time::Duration;

use tokio::sync::broadcast::error::RecvError;
use tokio::time::Instant;

use nexus_core::domain::{EventSource, Payment, PaymentId, PaymentStatus, Scheme};
use nexus_core::validate::ValidTx;
use nexus_core::x402::settle::{answer, pending};
use nexus_core::x402::{Reason, Refusal, SettleResponse, Verified};
use nexus_relay::service::Relayable;
use nexus_relay::RelayError;

use crate::Facilitator;

/// How often a waiting settle re-reads the record even without an event:
/// the confirming block may be committed by another instance (Redis
/// deployments), whose events this instance's bus does not carry.
const RECHECK: Duration = Duration::from_secs(1);

impl Facilitator {
    /// `/settle`. Never fails: every outcome is an x402 answer.
    pub async fn settle(&self, body: &serde_json::Value, now_ms: i64) -> SettleResponse {
        let network = self.network();
        let failed = |r: &Refusal, txid: Option<String>| {
            SettleResponse::failed(r, &network, r.payer.clone(), txid)
        };
        let req = match nexus_core::x402::parse_request(body) {
            Ok(r) => r,
            Err(r) => return failed(&r, None),
        };
        // Expiry is checked below, for new payments only: a settled one
        // retried after its requirements expired answers as it stands.
        let v = match nexus_core::x402::rules::verify_terms(&req, &self.settings.policy) {
            Ok(v) => v,
            Err(r) => return failed(&r, None),
        };
        let deadline = Instant::now()
            + self
                .settings
                .settle_wait
                .min(Duration::from_secs(v.max_timeout_seconds));
        // Subscribed before anything is recorded, so no event is missed.
        let events = self.bus.subscribe();
        // The same transaction again: never broadcast twice, answer as it stands.
        match self.record(v.payment_id).await {
            Err(r) => return failed(&r, None),
            Ok(Some(p)) if p.create_txid.as_deref() == Some(v.txid.as_str()) => {
                return self.wait(v.payment_id, events, deadline).await;
            }
            Ok(Some(p)) => {
                let r = Refusal::new(
                    Reason::InvalidTransactionState,
                    format!(
                        "payment id {} is already taken by transaction {}",
                        p.payment_id,
                        p.create_txid.as_deref().unwrap_or("unknown")
                    ),
                );
                return failed(&r, Some(v.txid.clone()));
            }
            Ok(None) => {}
        }
        if let Err(r) = nexus_core::x402::rules::check_expiry(&v, now_ms) {
            return failed(&r, None);
        }
        if let Err(mut r) = crate::funds::check(self.rpc.as_deref(), &v).await {
            if r.reason == Reason::UnexpectedVerifyError {
                r.reason = Reason::UnexpectedSettleError;
            }
            return failed(&r, None);
        }
        if let Err(r) = self.submit(&v).await {
            return failed(&r, Some(v.txid.clone()));
        }
        self.wait(v.payment_id, events, deadline).await
    }

    /// Records the `pending` payment and schedules its broadcast, keyed by
    /// payer and nonce: a second transaction with the same nonce (a client
    /// that re-signed after a failed settle) is refused while the first one
    /// can still be mined, and named. Once the first one has definitely
    /// failed (refused by every node, aborted, dropped), the nonce is the
    /// payer's again and the new transaction is settled under its own key.
    async fn submit(&self, v: &Verified) -> Result<(), Refusal> {
        let Some(acceptor) = &self.acceptor else {
            return Err(Refusal::new(
                Reason::UnexpectedSettleError,
                "this node has no stacks-node RPC to broadcast through (rpc_url)",
            ));
        };
        let key = format!("x402:{}:{}", v.payer, v.nonce);
        let first = match acceptor.submit_checked(relayable(v), Some(key), None).await {
            Ok(_) | Err(RelayError::InProgress(_)) => return Ok(()),
            Err(RelayError::IdempotencyConflict(_, first)) => first,
            Err(e) => return Err(relay_refusal(e)),
        };
        // Who holds the nonce: the first transaction's answer names it.
        let first: Option<(PaymentId, String)> = first
            .as_deref()
            .and_then(|b| serde_json::from_str::<serde_json::Value>(b).ok())
            .and_then(|b| {
                let id = b["payment_id"].as_str()?.parse().ok()?;
                Some((id, b["txid"].as_str()?.to_string()))
            });
        let held = |txid: &str| {
            Refusal::new(
                Reason::InvalidTransactionState,
                format!(
                    "transaction {txid}, signed by {} with the same nonce {}, is already being \
                     settled; only one of them can be mined, so this one is not a second \
                     payment: settle {txid} again for its outcome",
                    v.payer, v.nonce
                ),
            )
        };
        let Some((first_id, first_txid)) = first else {
            return Err(held("another transaction (still being recorded)"));
        };
        match self.record(first_id).await? {
            Some(p) if matches!(p.status, PaymentStatus::Failed | PaymentStatus::Dropped) => {
                let key = format!("x402:{}:{}:{}", v.payer, v.nonce, v.txid);
                match acceptor.submit_checked(relayable(v), Some(key), None).await {
                    Ok(_) | Err(RelayError::InProgress(_)) => Ok(()),
                    Err(e) => Err(relay_refusal(e)),
                }
            }
            _ => Err(held(&first_txid)),
        }
    }

    async fn record(&self, id: PaymentId) -> Result<Option<Payment>, Refusal> {
        self.ingestor.state().get(&id).await.map_err(|e| {
            Refusal::new(
                Reason::UnexpectedSettleError,
                format!(
                    "could not read the payment's record ({}); try again",
                    nexus_core::error_chain(&e)
                ),
            )
        })
    }

    /// Answers once the payment is settled either way, or at `deadline`
    /// with `transaction_pending` (tracking goes on).
    async fn wait(
        &self,
        id: PaymentId,
        mut events: tokio::sync::broadcast::Receiver<nexus_core::domain::PaymentEvent>,
        deadline: Instant,
    ) -> SettleResponse {
        let network = self.network();
        let started = Instant::now();
        loop {
            let p = match self.record(id).await {
                Ok(Some(p)) => p,
                Ok(None) => {
                    let r = Refusal::new(
                        Reason::UnexpectedSettleError,
                        format!("payment {id} has no record after it was accepted; try again"),
                    );
                    return SettleResponse::failed(&r, &network, None, None);
                }
                Err(r) => return SettleResponse::failed(&r, &network, None, None),
            };
            if let Some(done) = answer(&p, &network) {
                return done;
            }
            // Until an event of this payment, the deadline, or the recheck.
            let recheck = (Instant::now() + RECHECK).min(deadline);
            loop {
                tokio::select! {
                    _ = self.shutdown.cancelled() => {
                        return pending(&p, &network, started.elapsed().as_secs())
                    }
                    _ = tokio::time::sleep_until(recheck) => break,
                    ev = events.recv() => match ev {
                        Ok(e) if e.payment_id == id => break,
                        Ok(_) => continue,
                        Err(RecvError::Lagged(_)) => break,
                        // No more events: answer with what we have.
                        Err(RecvError::Closed) => {
                            return pending(&p, &network, started.elapsed().as_secs())
                        }
                    },
                }
            }
            if Instant::now() >= deadline {
                // One last read: the block may have landed with the deadline.
                if let Ok(Some(p)) = self.record(id).await {
                    return answer(&p, &network)
                        .unwrap_or_else(|| pending(&p, &network, started.elapsed().as_secs()));
                }
                return pending(&p, &network, started.elapsed().as_secs());
            }
        }
    }
}

/// A relay refusal of a checked payment, as x402 names it.
fn relay_refusal(e: RelayError) -> Refusal {
    match e {
        RelayError::PaymentExists {
            payment_id,
            existing_txid,
        } => Refusal::new(
            Reason::InvalidTransactionState,
            format!("payment id {payment_id} is already taken by transaction {existing_txid}"),
        ),
        e => Refusal::new(
            Reason::UnexpectedSettleError,
            format!("could not record the payment ({e}); try again"),
        ),
    }
}

/// The relay's view of a verified payment: the `pending` record it starts.
fn relayable(v: &Verified) -> Relayable {
    let mut r = match &v.paid {
        // The relay's own record of an escrow create.
        nexus_core::x402::Paid::Escrow(call, _) => Relayable::escrow(ValidTx {
            call: (**call).clone(),
            bytes: v.bytes.clone(),
        }),
        _ => {
            let mut p = Payment::new(v.payment_id, PaymentStatus::Pending, "");
            p.scheme = Some(Scheme::Exact);
            p.asset = Some(v.asset.clone());
            p.sender = Some(v.payer.clone());
            p.recipient = Some(v.pay_to.clone());
            p.amount = Some(v.amount.to_string());
            p.create_txid = Some(v.txid.clone());
            p.nonce = Some(v.nonce);
            Relayable {
                txid: v.txid.clone(),
                payment_id: v.payment_id,
                function: v.function,
                creates: Some(p),
                source: EventSource::X402,
                bytes: v.bytes.clone(),
            }
        }
    };
    r.source = EventSource::X402;
    r
}
