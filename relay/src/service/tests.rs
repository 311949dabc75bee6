//! `decide`: one batch's outcomes and jobs against the current records.

use super::*;
use nexus_core::decode::{EscrowCall, EscrowFunction};
use nexus_store::broadcasts::{Attempt, AttemptOutcome, Broadcast, BroadcastState, Next};

const AT: &str = "2026-11-23T00:00:00.000Z";
const NOW: i64 = 1_000;
const LEASED: i64 = 61_000;

fn id(n: u8) -> PaymentId {
    PaymentId([n; 32])
}

fn times(room: usize) -> Times<'static> {
    Times {
        at: AT,
        now_ms: NOW,
        leased_until_ms: LEASED,
        handoff_room: room,
    }
}

fn job(n: u8, function: EscrowFunction, txid: &str) -> (Job, oneshot::Receiver<JobAnswer>) {
    let (reply, rx) = oneshot::channel();
    let call = EscrowCall {
        txid: txid.into(),
        function,
        sender: "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM".into(),
        payment_id: id(n),
        recipient: Some("ST2CY5V39NHDPWSXMW9QDT3HC3GD6Q6XX4CFRK9AG".into()),
        amount: Some(1_000),
        memo: None,
        token: None,
        nonce: 0,
        fee: 200,
        chain_id: 0x8000_0000,
    };
    let job = Job {
        req: Request {
            valid: Relayable::escrow(ValidTx {
                call,
                bytes: vec![n, 1, 2],
            }),
            key: format!("txid:{txid}"),
            fingerprint: format!("fp-{txid}"),
            request_id: None,
        },
        reply,
    };
    (job, rx)
}

fn pending(n: u8, txid: &str) -> Payment {
    let mut p = Payment::new(id(n), PaymentStatus::Pending, AT);
    p.create_txid = Some(txid.into());
    p
}

fn outcome(n: u8, txid: &str, next: Next) -> Done {
    Done {
        broadcast: Broadcast {
            txid: txid.into(),
            payment_id: id(n).to_string(),
            function: "create-payment".into(),
            tx: vec![n],
            request_id: None,
            idempotency_key: format!("txid:{txid}"),
            state: BroadcastState::Scheduled,
            attempts: 0,
            next_attempt_ms: NOW,
            created_ms: NOW,
            updated_ms: NOW,
            last_reason: None,
            reason_data: None,
            provider: None,
        },
        attempt: Attempt {
            attempt: 1,
            at_ms: NOW,
            provider: Some("node".into()),
            outcome: AttemptOutcome::Accepted,
            reason: Some("accepted".into()),
            latency_ms: 1,
            next_delay_ms: None,
        },
        next,
    }
}

#[test]
fn fresh_creates_are_handed_over_up_to_the_room_and_leased() {
    let (a, _ra) = job(1, EscrowFunction::CreatePayment, "0xa");
    let (b, _rb) = job(2, EscrowFunction::CreatePayment, "0xb");
    let d = decide(&[], &[a, b], vec![None, None], &times(1));
    assert_eq!(d.changes.len(), 2, "two payments created");
    assert!(d
        .changes
        .iter()
        .all(|(p, e)| p.status == PaymentStatus::Pending && e.event_type == EventType::Created));
    let v = d.value;
    assert_eq!(v.scheduled, 2);
    assert_eq!(v.handed.len(), 1, "only as many as the engine has room for");
    assert_eq!(v.handed[0].txid, "0xa");
    assert_eq!(
        v.handed[0].next_attempt_ms, LEASED,
        "committed leased to this node"
    );
    assert!(v.results.iter().all(Result::is_ok));
    // The rows as committed: the handed one leased, the other due at once.
    let rows = &d.attached[0];
    let next = rows
        .columns
        .iter()
        .find(|(c, _)| *c == "next_attempt_ms")
        .map(|(_, v)| v.clone());
    assert_eq!(
        next,
        Some(nexus_store::AttachedValues::BigInt(vec![LEASED, NOW]))
    );
}

#[test]
fn a_known_payment_is_never_handed_over() {
    // The same create again (another idempotency key): its row exists already.
    let (a, _ra) = job(1, EscrowFunction::CreatePayment, "0xa");
    let (c, _rc) = job(1, EscrowFunction::ClaimPayment, "0xc");
    let d = decide(
        &[],
        &[a, c],
        vec![Some(pending(1, "0xa")), Some(pending(1, "0xa"))],
        &times(10),
    );
    assert!(d.changes.is_empty());
    assert_eq!(d.value.scheduled, 2);
    assert!(d.value.handed.is_empty());
}

#[test]
fn outcomes_change_their_payment_once_per_batch() {
    let first = outcome(1, "0xa", Next::RetryAt(NOW + 500));
    let second = outcome(1, "0xa", Next::Submitted);
    let other = outcome(2, "0xb", Next::Submitted);
    let d = decide(
        &[&first, &second, &other],
        &[],
        vec![
            Some(pending(1, "0xa")),
            Some(pending(1, "0xa")),
            Some(pending(2, "0xb")),
        ],
        &times(0),
    );
    let types: Vec<_> = d
        .changes
        .iter()
        .map(|(p, e)| (p.payment_id, e.event_type))
        .collect();
    assert_eq!(
        types,
        [(id(1), EventType::Retrying), (id(2), EventType::Submitted)]
    );
    assert_eq!(
        d.value.deferred,
        [1],
        "the second outcome of payment 1 waits"
    );
}

#[test]
fn a_job_is_decided_on_the_record_an_outcome_just_changed() {
    let failed = outcome(
        1,
        "0xa",
        Next::Failed {
            reason: "NotEnoughFunds".into(),
            reason_data: None,
        },
    );
    // A claim of the payment whose create just failed for good: settled.
    let (c, _rc) = job(1, EscrowFunction::ClaimPayment, "0xc");
    let d = decide(
        &[&failed],
        &[c],
        vec![Some(pending(1, "0xa")), Some(pending(1, "0xa"))],
        &times(10),
    );
    assert_eq!(d.changes.len(), 1, "one change for the payment");
    assert_eq!(d.changes[0].0.status, PaymentStatus::Failed);
    assert!(matches!(
        d.value.results[0],
        Err(RelayError::Settled { .. })
    ));
    assert_eq!(d.value.scheduled, 0);
}

#[test]
fn an_outcome_for_an_unknown_payment_changes_nothing() {
    let o = outcome(9, "0xz", Next::Submitted);
    let d = decide(&[&o], &[], vec![None], &times(0));
    assert!(d.changes.is_empty());
    assert!(d.value.deferred.is_empty());
}
