//! Pure tests of the payment state machine: every prior status × every kind of
//! observation, then the properties that matter across sequences (idempotency,
//! out-of-order delivery, replayed ids, confirmations, whole blocks).
//!
//! Inputs are built by hand; `tests/decode_fixtures.rs` covers the decoders
//! against payloads recorded from the real contract and a real node.

use std::collections::HashMap;

use super::*;
use crate::decode::{
    Abort, BlockRef, DecodeStats, DecodedBlock, EscrowCall, EscrowFunction, EscrowTx, PaymentPrint,
    PrintKind, TxOutcome,
};
use crate::domain::{
    ChainPos, EventSource, EventType, Payment, PaymentEvent, PaymentId, PaymentStatus,
};

const ID: PaymentId = PaymentId([0x11; 32]);
/// The create-payment transaction the record tracks.
const TX_A: &str = "0xaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
/// The claim/refund already recorded in `settled_in` of settled records.
const TX_S: &str = "0x5555555555555555555555555555555555555555555555555555555555555555";
/// Someone else's transaction.
const TX_X: &str = "0xeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeeee";
const PAYER: &str = "ST1SJ3DTE5DN7X54YDH5D64R3BCB6A2AG2ZQ8YPD5";
const PAYEE: &str = "ST2CY5V39NHDPWSXMW9QDT3HC3GD6Q6XX4CFRK9AG";
const INTRUDER: &str = "ST2JHG361ZXG51QTKY2NQCVBPPRRE2KZB1HR05NNC";
const EARLIER: &str = "2025-01-01T00:00:00Z";
const NOW: &str = "2025-01-01T00:05:00Z";
/// Height of the block every block input of the table is mined in.
const HEIGHT: u64 = 100;
const TIP: u64 = 105;

fn ctx(tip_height: u64) -> Ctx {
    Ctx {
        tip_height,
        now: NOW.to_string(),
        source: EventSource::Observer,
    }
}

fn block(height: u64) -> BlockRef {
    BlockRef {
        index_block_hash: format!("0x{:064x}", height),
        parent_index_block_hash: format!("0x{:064x}", height - 1),
        block_hash: format!("0x{:064x}", height + 0x1000),
        height,
        burn_height: height + 1,
        burn_hash: format!("0x{:064x}", height + 0x2000),
        time: 1_700_000_000 + height,
    }
}

fn create_call(txid: &str, id: PaymentId, sender: &str) -> EscrowCall {
    EscrowCall {
        txid: txid.to_string(),
        function: EscrowFunction::CreatePayment,
        sender: sender.to_string(),
        payment_id: id,
        recipient: Some(PAYEE.to_string()),
        amount: Some(1_000_000),
        memo: Some(b"invoice-1".to_vec()),
        nonce: 0,
        fee: 2000,
        chain_id: 0x8000_0000,
    }
}

fn claim_call(txid: &str, id: PaymentId) -> EscrowCall {
    EscrowCall {
        txid: txid.to_string(),
        function: EscrowFunction::ClaimPayment,
        sender: PAYEE.to_string(),
        payment_id: id,
        recipient: None,
        amount: None,
        memo: None,
        nonce: 3,
        fee: 2000,
        chain_id: 0x8000_0000,
    }
}

fn print(kind: PrintKind, id: PaymentId, height: u64) -> PaymentPrint {
    PaymentPrint {
        kind,
        payment_id: id,
        sender: PAYER.to_string(),
        recipient: PAYEE.to_string(),
        amount: 1_000_000,
        memo: b"invoice-1".to_vec(),
        expires_at: 103,
        block_height: height,
    }
}

fn escrow_tx(
    txid: &str,
    tx_index: u32,
    outcome: TxOutcome,
    call: Option<EscrowCall>,
    prints: Vec<PaymentPrint>,
) -> EscrowTx {
    EscrowTx {
        txid: txid.to_string(),
        tx_index,
        outcome,
        call,
        prints,
        admin: Vec::new(),
    }
}

fn chain_pos(txid: &str, height: u64) -> ChainPos {
    let b = block(height);
    ChainPos {
        txid: txid.to_string(),
        tx_index: 0,
        block_height: b.height,
        index_block_hash: b.index_block_hash,
        block_hash: b.block_hash,
        burn_block_height: b.burn_height,
        burn_block_hash: b.burn_hash,
    }
}

/// A realistic record in `status` for a payment created by `TX_A`
/// (mined at height 90) and, when settled, settled by `TX_S` (height 95).
fn prior(status: PaymentStatus) -> Payment {
    use PaymentStatus::*;
    let mut p = Payment::new(ID, status, EARLIER);
    p.sender = Some(PAYER.to_string());
    p.recipient = Some(PAYEE.to_string());
    p.amount = Some("1000000".to_string());
    p.memo = Some(format!("0x{}", hex::encode(b"invoice-1")));
    p.create_txid = Some(TX_A.to_string());
    p.updated_seq = 7;
    if matches!(status, Confirmed | Claimed | Refunded) {
        p.expires_at = Some(190);
        p.created_in = Some(chain_pos(TX_A, 90));
    }
    if matches!(status, Claimed | Refunded) {
        p.settled_in = Some(chain_pos(TX_S, 95));
    }
    match status {
        Failed => p.reason = Some("(err u110)".to_string()),
        Dropped => p.reason = Some("StaleGarbageCollect".to_string()),
        _ => {}
    }
    p
}

/// Whose transaction an input comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Who {
    /// The record's own transaction: `TX_A` for creates, `TX_S` for settlements.
    Own,
    /// `TX_X`.
    Other,
}

/// One column of the transition table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    MempoolCreate(Who),
    MempoolClaim,
    Dropped(Who),
    Printed(PrintKind, Who),
    CreateAborted(Who),
}

const KINDS: [Kind; 13] = [
    Kind::MempoolCreate(Who::Own),
    Kind::MempoolCreate(Who::Other),
    Kind::MempoolClaim,
    Kind::Dropped(Who::Own),
    Kind::Dropped(Who::Other),
    Kind::Printed(PrintKind::Created, Who::Own),
    Kind::Printed(PrintKind::Created, Who::Other),
    Kind::Printed(PrintKind::Claimed, Who::Own),
    Kind::Printed(PrintKind::Claimed, Who::Other),
    Kind::Printed(PrintKind::Refunded, Who::Own),
    Kind::Printed(PrintKind::Refunded, Who::Other),
    Kind::CreateAborted(Who::Own),
    Kind::CreateAborted(Who::Other),
];

fn txid_for(kind: Kind) -> &'static str {
    match kind {
        Kind::MempoolClaim => TX_S,
        Kind::MempoolCreate(Who::Own)
        | Kind::Dropped(Who::Own)
        | Kind::Printed(PrintKind::Created, Who::Own)
        | Kind::CreateAborted(Who::Own) => TX_A,
        Kind::Printed(_, Who::Own) => TX_S,
        _ => TX_X,
    }
}

/// Build the owned data behind `kind` and run one `step` on it.
fn run(prev: Option<&Payment>, kind: Kind, ctx: &Ctx) -> Option<(Payment, PaymentEvent)> {
    let txid = txid_for(kind);
    let b = block(HEIGHT);
    match kind {
        Kind::MempoolCreate(_) => {
            let call = create_call(txid, ID, PAYER);
            step(prev, ID, Input::Mempool { call: &call }, ctx)
        }
        Kind::MempoolClaim => {
            let call = claim_call(txid, ID);
            step(prev, ID, Input::Mempool { call: &call }, ctx)
        }
        Kind::Dropped(_) => step(
            prev,
            ID,
            Input::Dropped {
                txid,
                reason: "ReplaceByFee",
                new_txid: Some(TX_X),
            },
            ctx,
        ),
        Kind::Printed(pk, _) => {
            let p = print(pk, ID, HEIGHT);
            let tx = escrow_tx(txid, 4, TxOutcome::Success, None, vec![p.clone()]);
            step(
                prev,
                ID,
                Input::Printed {
                    block: &b,
                    tx: &tx,
                    print: &p,
                },
                ctx,
            )
        }
        Kind::CreateAborted(who) => {
            let sender = if who == Who::Own { PAYER } else { INTRUDER };
            let call = create_call(txid, ID, sender);
            let abort = Abort::by_response("(err u104)");
            let tx = escrow_tx(
                txid,
                4,
                TxOutcome::Aborted(abort.clone()),
                Some(call.clone()),
                Vec::new(),
            );
            step(
                prev,
                ID,
                Input::CreateAborted {
                    block: &b,
                    tx: &tx,
                    call: &call,
                    abort: &abort,
                },
                ctx,
            )
        }
    }
}

type Cell = Option<(PaymentStatus, EventType)>;
const NO: Cell = None;
const SUB: Cell = Some((PaymentStatus::Submitted, EventType::Submitted));
const DROP: Cell = Some((PaymentStatus::Dropped, EventType::Dropped));
const CONF: Cell = Some((PaymentStatus::Confirmed, EventType::Confirmed));
const CLM: Cell = Some((PaymentStatus::Claimed, EventType::Claimed));
const REF: Cell = Some((PaymentStatus::Refunded, EventType::Refunded));
const FAIL: Cell = Some((PaymentStatus::Failed, EventType::Failed));

/// The whole transition table; columns in `KINDS` order.
///
/// Reading guide: the mempool only ever moves a payment that is not on chain
/// yet; a drop only hits the tracked transaction while it is unmined; the
/// chain's prints win over anything we believed (except that a create cannot
/// follow a settlement, and the same transaction is never applied twice); an
/// aborted create fails only a payment whose own create it is.
#[rustfmt::skip]
const TABLE: [(Option<PaymentStatus>, [Cell; 13]); 8] = {
    use PaymentStatus::*;
    [
        //               mempool create   claim  dropped      created      claimed     refunded    aborted create
        //               own   other      mem    own   other  own   other  own  other  own  other  own   other
        (None,            [SUB,  SUB,     NO,    NO,   NO,    CONF, CONF,  CLM, CLM,   REF, REF,   FAIL, FAIL]),
        (Some(Pending),   [SUB,  NO,      NO,    DROP, NO,    CONF, CONF,  CLM, CLM,   REF, REF,   FAIL, NO  ]),
        (Some(Submitted), [NO,   NO,      NO,    DROP, NO,    CONF, CONF,  CLM, CLM,   REF, REF,   FAIL, NO  ]),
        (Some(Confirmed), [NO,   NO,      NO,    NO,   NO,    NO,   CONF,  CLM, CLM,   REF, REF,   NO,   NO  ]),
        (Some(Claimed),   [NO,   NO,      NO,    NO,   NO,    NO,   NO,    NO,  CLM,   NO,  REF,   NO,   NO  ]),
        (Some(Refunded),  [NO,   NO,      NO,    NO,   NO,    NO,   NO,    NO,  CLM,   NO,  REF,   NO,   NO  ]),
        (Some(Failed),    [NO,   NO,      NO,    NO,   NO,    CONF, CONF,  CLM, CLM,   REF, REF,   NO,   NO  ]),
        (Some(Dropped),   [SUB,  NO,      NO,    NO,   NO,    CONF, CONF,  CLM, CLM,   REF, REF,   FAIL, NO  ]),
    ]
};

#[test]
fn table_covers_none_and_every_status() {
    let mut covered: Vec<Option<PaymentStatus>> = TABLE.iter().map(|(s, _)| *s).collect();
    covered.sort();
    let mut all: Vec<Option<PaymentStatus>> = std::iter::once(None)
        .chain(PaymentStatus::ALL.into_iter().map(Some))
        .collect();
    all.sort();
    assert_eq!(covered, all);
}

#[test]
fn transition_table() {
    let ctx = ctx(TIP);
    let mut checked = 0;
    for (status, row) in TABLE {
        let before = status.map(prior);
        for (kind, want) in KINDS.into_iter().zip(row) {
            let got = run(before.as_ref(), kind, &ctx);
            let got_cell = got.as_ref().map(|(p, e)| (p.status, e.event_type));
            assert_eq!(got_cell, want, "prior {status:?}, input {kind:?}");
            if let Some((p, ev)) = got {
                check_event_matches_record(&p, &ev, kind, &ctx);
            }
            checked += 1;
        }
    }
    assert_eq!(checked, 8 * 13);
}

/// What every emitted event must say, whatever the transition.
fn check_event_matches_record(p: &Payment, ev: &PaymentEvent, kind: Kind, ctx: &Ctx) {
    let what = format!("{kind:?} -> {:?}", p.status);
    assert_eq!(ev.payment_id, ID, "{what}");
    assert_eq!(p.payment_id, ID, "{what}");
    assert_eq!(ev.status, p.status, "{what}");
    assert_eq!(ev.seq, 0, "{what}: the store assigns seq");
    assert!(!ev.is_final, "{what}");
    assert_eq!(ev.source, ctx.source, "{what}");
    assert_eq!(ev.at, NOW, "{what}");
    assert_eq!(p.updated_at, NOW, "{what}");
    assert_eq!(ev.sender, p.sender, "{what}");
    assert_eq!(ev.recipient, p.recipient, "{what}");
    assert_eq!(ev.amount, p.amount, "{what}");
    assert_eq!(ev.txid.as_deref(), Some(txid_for(kind)), "{what}");
    assert!(ev.reverted.is_none(), "{what}");
    match kind {
        Kind::MempoolCreate(_) | Kind::MempoolClaim | Kind::Dropped(_) => {
            assert_eq!(ev.confirmations, 0, "{what}");
            assert_eq!(ev.block_height, None, "{what}");
            assert_eq!(ev.index_block_hash, None, "{what}");
            assert_eq!(ev.burn_block_height, None, "{what}");
        }
        Kind::Printed(..) | Kind::CreateAborted(_) => {
            let b = block(HEIGHT);
            assert_eq!(ev.confirmations, TIP - HEIGHT + 1, "{what}");
            assert_eq!(ev.block_height, Some(HEIGHT), "{what}");
            assert_eq!(ev.index_block_hash, Some(b.index_block_hash), "{what}");
            assert_eq!(ev.burn_block_height, Some(b.burn_height), "{what}");
        }
    }
    match ev.event_type {
        EventType::Failed | EventType::Dropped => {
            assert!(ev.reason.is_some(), "{what}");
            assert_eq!(ev.reason, p.reason, "{what}");
        }
        _ => assert_eq!(ev.reason, None, "{what}"),
    }
    // Where the record says it was mined.
    match ev.event_type {
        EventType::Confirmed => {
            assert_eq!(p.create_txid.as_deref(), Some(txid_for(kind)), "{what}");
            let c = p.created_in.as_ref().expect("created_in");
            assert_eq!(c.txid, txid_for(kind));
            assert_eq!(c.block_height, HEIGHT);
            assert_eq!(c.tx_index, 4);
            assert_eq!(p.expires_at, Some(103));
            assert_eq!(p.reason, None);
            assert_eq!(p.replaced_by, None);
        }
        EventType::Claimed | EventType::Refunded => {
            let s = p.settled_in.as_ref().expect("settled_in");
            assert_eq!(s.txid, txid_for(kind));
            assert_eq!(s.block_height, HEIGHT);
            assert_eq!(p.reason, None);
        }
        EventType::Submitted => {
            assert_eq!(p.create_txid.as_deref(), Some(txid_for(kind)));
            assert_eq!(p.reason, None);
            assert_eq!(p.replaced_by, None);
            assert_eq!(p.amount.as_deref(), Some("1000000"));
            assert_eq!(p.memo, Some(format!("0x{}", hex::encode(b"invoice-1"))));
        }
        EventType::Dropped => {
            assert_eq!(p.reason.as_deref(), Some("ReplaceByFee"));
            assert_eq!(p.replaced_by.as_deref(), Some(TX_X));
        }
        EventType::Failed => {
            assert_eq!(p.reason.as_deref(), Some("AbortByResponse"));
            assert_eq!(p.create_txid.as_deref(), Some(txid_for(kind)));
            assert_eq!(p.created_in, None);
        }
        other => panic!("{what}: unexpected event type {other:?}"),
    }
}

#[test]
fn unchanged_fields_survive_a_transition() {
    // A settlement keeps where the payment was created.
    let before = prior(PaymentStatus::Confirmed);
    let (p, _) = run(
        Some(&before),
        Kind::Printed(PrintKind::Claimed, Who::Other),
        &ctx(TIP),
    )
    .unwrap();
    assert_eq!(p.created_in, before.created_in);
    assert_eq!(p.create_txid, before.create_txid);
    assert_eq!(p.updated_seq, before.updated_seq, "seq is the store's job");

    // A drop keeps who pays whom.
    let before = prior(PaymentStatus::Submitted);
    let (p, _) = run(Some(&before), Kind::Dropped(Who::Own), &ctx(TIP)).unwrap();
    assert_eq!(
        (&p.sender, &p.recipient, &p.amount),
        (&before.sender, &before.recipient, &before.amount)
    );
}

#[test]
fn every_accepted_input_is_idempotent() {
    let ctx = ctx(TIP);
    let mut applied = 0;
    for status in std::iter::once(None).chain(PaymentStatus::ALL.into_iter().map(Some)) {
        let before = status.map(prior);
        for kind in KINDS {
            let Some((once, _)) = run(before.as_ref(), kind, &ctx) else {
                continue;
            };
            assert!(
                run(Some(&once), kind, &ctx).is_none(),
                "prior {status:?}, input {kind:?} applied twice"
            );
            applied += 1;
        }
    }
    assert!(applied > 40, "only {applied} accepted transitions");
}

#[test]
fn pending_without_a_txid_adopts_the_first_create_seen() {
    let mut before = prior(PaymentStatus::Pending);
    before.create_txid = None;
    let (p, ev) = run(Some(&before), Kind::MempoolCreate(Who::Other), &ctx(TIP)).unwrap();
    assert_eq!(p.status, PaymentStatus::Submitted);
    assert_eq!(p.create_txid.as_deref(), Some(TX_X));
    assert_eq!(ev.event_type, EventType::Submitted);
    // No txid to match, so no drop can apply to it.
    assert!(run(Some(&before), Kind::Dropped(Who::Own), &ctx(TIP)).is_none());
}

#[test]
fn a_dropped_tx_seen_again_is_submitted_again() {
    let before = prior(PaymentStatus::Submitted);
    let (p, ev) = step(
        Some(&before),
        ID,
        Input::Dropped {
            txid: TX_A,
            reason: "StaleGarbageCollect",
            new_txid: None,
        },
        &ctx(TIP),
    )
    .unwrap();
    assert_eq!(p.status, PaymentStatus::Dropped);
    assert_eq!(p.replaced_by, None);
    assert_eq!(ev.reason.as_deref(), Some("StaleGarbageCollect"));

    // Re-seen in the mempool: back to submitted, the drop forgotten.
    let call = create_call(TX_A, ID, PAYER);
    let (p, ev) = step(Some(&p), ID, Input::Mempool { call: &call }, &ctx(TIP)).unwrap();
    assert_eq!(p.status, PaymentStatus::Submitted);
    assert_eq!((p.reason, p.replaced_by), (None, None));
    assert_eq!(ev.reason, None);
}

/// Replays a whole life: each input's resulting status, or `None` when ignored.
fn replay(inputs: &[Kind]) -> (Option<Payment>, Vec<Option<PaymentStatus>>) {
    let ctx = ctx(TIP);
    let mut cur: Option<Payment> = None;
    let mut seen = Vec::new();
    for &kind in inputs {
        match run(cur.as_ref(), kind, &ctx) {
            Some((p, ev)) => {
                assert_eq!(ev.status, p.status);
                seen.push(Some(p.status));
                cur = Some(p);
            }
            None => seen.push(None),
        }
    }
    (cur, seen)
}

#[test]
fn happy_path_in_order() {
    use PaymentStatus::*;
    let (p, seen) = replay(&[
        Kind::MempoolCreate(Who::Own),
        Kind::Printed(PrintKind::Created, Who::Own),
        Kind::Printed(PrintKind::Claimed, Who::Own),
    ]);
    assert_eq!(seen, [Some(Submitted), Some(Confirmed), Some(Claimed)]);
    let p = p.unwrap();
    assert_eq!(p.create_txid.as_deref(), Some(TX_A));
    assert_eq!(p.created_in.unwrap().txid, TX_A);
    assert_eq!(p.settled_in.unwrap().txid, TX_S);
}

#[test]
fn block_before_mempool_stays_confirmed() {
    use PaymentStatus::*;
    let (p, seen) = replay(&[
        Kind::Printed(PrintKind::Created, Who::Own),
        Kind::MempoolCreate(Who::Own),
    ]);
    assert_eq!(seen, [Some(Confirmed), None]);
    assert_eq!(p.unwrap().status, Confirmed);
}

#[test]
fn drop_after_mined_changes_nothing() {
    use PaymentStatus::*;
    let (p, seen) = replay(&[
        Kind::MempoolCreate(Who::Own),
        Kind::Printed(PrintKind::Created, Who::Own),
        // The node garbage-collects its mempool copy after mining it.
        Kind::Dropped(Who::Own),
    ]);
    assert_eq!(seen, [Some(Submitted), Some(Confirmed), None]);
    let p = p.unwrap();
    assert_eq!(p.status, Confirmed);
    assert_eq!(p.reason, None);
}

#[test]
fn claim_seen_before_its_create_is_not_undone_by_the_create() {
    use PaymentStatus::*;
    let (p, seen) = replay(&[
        Kind::Printed(PrintKind::Claimed, Who::Own),
        Kind::Printed(PrintKind::Created, Who::Own),
        Kind::MempoolCreate(Who::Own),
        Kind::Dropped(Who::Own),
    ]);
    assert_eq!(seen, [Some(Claimed), None, None, None]);
    assert_eq!(p.unwrap().status, Claimed);
}

#[test]
fn a_dropped_payment_mined_anyway_is_confirmed() {
    use PaymentStatus::*;
    let (_, seen) = replay(&[
        Kind::MempoolCreate(Who::Own),
        Kind::Dropped(Who::Own),
        Kind::Printed(PrintKind::Created, Who::Own),
    ]);
    assert_eq!(seen, [Some(Submitted), Some(Dropped), Some(Confirmed)]);
}

#[test]
fn replayed_payment_id_does_not_fail_a_confirmed_payment() {
    let mut current = HashMap::new();
    let b1 = block(50);
    let create = create_call(TX_A, ID, PAYER);
    let first = DecodedBlock {
        block: b1,
        txs: vec![escrow_tx(
            TX_A,
            0,
            TxOutcome::Success,
            Some(create),
            vec![print(PrintKind::Created, ID, 50)],
        )],
        problems: Vec::new(),
        stats: DecodeStats::default(),
    };
    let evs = apply_block(&mut current, &first, &ctx(50));
    assert_eq!(evs.len(), 1);
    assert_eq!(evs[0].event_type, EventType::Confirmed);
    let confirmed = current[&ID].clone();

    // An intruder re-submits the same id: the contract answers (err u104).
    let replay = create_call(TX_X, ID, INTRUDER);
    let second = DecodedBlock {
        block: block(51),
        txs: vec![escrow_tx(
            TX_X,
            0,
            TxOutcome::Aborted(Abort::by_response("(err u104)")),
            Some(replay),
            Vec::new(),
        )],
        problems: Vec::new(),
        stats: DecodeStats::default(),
    };
    assert!(apply_block(&mut current, &second, &ctx(51)).is_empty());
    assert_eq!(current[&ID], confirmed, "record untouched");
    assert_eq!(current[&ID].sender.as_deref(), Some(PAYER));
}

#[test]
fn replayed_payment_id_does_not_fail_a_submitted_payment() {
    // Our create is still in the mempool when someone else's create of the
    // same id aborts in a block (it can only have lost a race; ours will
    // then abort or confirm on its own).
    let before = prior(PaymentStatus::Submitted);
    assert!(run(Some(&before), Kind::CreateAborted(Who::Other), &ctx(TIP)).is_none());
    let (p, ev) = run(Some(&before), Kind::CreateAborted(Who::Own), &ctx(TIP)).unwrap();
    assert_eq!(p.status, PaymentStatus::Failed);
    assert_eq!(ev.reason.as_deref(), Some("AbortByResponse"));
    assert_eq!(
        ev.reason_data,
        Some(serde_json::json!({"result": "(err u104)"})),
        "the raw result is kept as a detail"
    );
}

#[test]
fn confirmations_count_from_the_tip() {
    let b = block(HEIGHT);
    let p = print(PrintKind::Created, ID, HEIGHT);
    let tx = escrow_tx(TX_A, 0, TxOutcome::Success, None, vec![p.clone()]);
    let input = Input::Printed {
        block: &b,
        tx: &tx,
        print: &p,
    };
    for (tip, want) in [
        (HEIGHT, 1),
        (HEIGHT + 1, 2),
        (HEIGHT + 5, 6),
        (HEIGHT + 1000, 1001),
        // A tip behind the block (tip not yet updated) never underflows.
        (HEIGHT - 3, 1),
    ] {
        let (_, ev) = step(None, ID, input, &ctx(tip)).unwrap();
        assert_eq!(ev.confirmations, want, "tip {tip}");
        assert_eq!(ev.block_height, Some(HEIGHT));
    }
    // Mempool events are at depth 0 whatever the tip.
    let (_, ev) = run(None, Kind::MempoolCreate(Who::Own), &ctx(HEIGHT + 1000)).unwrap();
    assert_eq!(ev.confirmations, 0);
}

fn pid(n: u8) -> PaymentId {
    PaymentId([n; 32])
}

fn txid(n: u8) -> String {
    format!("0x{}", hex::encode([n; 32]))
}

#[test]
fn apply_block_processes_txs_in_order_and_every_print() {
    let h = 200;
    let (p1, p2, p3, p4, p5) = (pid(1), pid(2), pid(3), pid(4), pid(5));
    let mut pre = HashMap::new();
    // p5 is already confirmed; p4 is in our mempool view.
    let mut p5_rec = Payment::new(p5, PaymentStatus::Confirmed, EARLIER);
    p5_rec.create_txid = Some(txid(0x50));
    p5_rec.created_in = Some(chain_pos(&txid(0x50), 150));
    pre.insert(p5, p5_rec.clone());
    let mut p4_rec = Payment::new(p4, PaymentStatus::Submitted, EARLIER);
    p4_rec.create_txid = Some(txid(4));
    pre.insert(p4, p4_rec);

    let block = DecodedBlock {
        block: block(h),
        txs: vec![
            // create p1, then claim it in the same block.
            escrow_tx(
                &txid(1),
                0,
                TxOutcome::Success,
                Some(create_call(&txid(1), p1, PAYER)),
                vec![print(PrintKind::Created, p1, h)],
            ),
            escrow_tx(
                &txid(2),
                1,
                TxOutcome::Success,
                Some(claim_call(&txid(2), p1)),
                vec![print(PrintKind::Claimed, p1, h)],
            ),
            // One transaction with several prints (e.g. through a batching contract).
            escrow_tx(
                &txid(3),
                2,
                TxOutcome::Success,
                None,
                vec![
                    print(PrintKind::Created, p2, h),
                    print(PrintKind::Created, p3, h),
                    print(PrintKind::Refunded, p5, h),
                ],
            ),
            // Our own create of p4 aborted.
            escrow_tx(
                &txid(4),
                3,
                TxOutcome::Aborted(Abort::by_response("(err u110)")),
                Some(create_call(&txid(4), p4, PAYER)),
                Vec::new(),
            ),
            // An aborted claim moves nothing and says nothing.
            escrow_tx(
                &txid(5),
                4,
                TxOutcome::Aborted(Abort::by_response("(err u106)")),
                Some(claim_call(&txid(5), p5)),
                Vec::new(),
            ),
            // An aborted transaction without a readable call: nothing to do.
            escrow_tx(
                &txid(6),
                5,
                TxOutcome::Aborted(Abort::by_response("(err u104)")),
                None,
                Vec::new(),
            ),
            // A successful escrow call without payment prints (e.g. admin).
            escrow_tx(&txid(7), 6, TxOutcome::Success, None, Vec::new()),
        ],
        problems: Vec::new(),
        stats: DecodeStats::default(),
    };
    let ids = block_payment_ids(&block);
    assert_eq!(ids, vec![p1, p2, p3, p4, p5], "sorted and deduplicated");

    let mut current = pre.clone();
    let events = apply_block(&mut current, &block, &ctx(h + 2));
    let got: Vec<(PaymentId, EventType, Option<String>)> = events
        .iter()
        .map(|e| (e.payment_id, e.event_type, e.txid.clone()))
        .collect();
    assert_eq!(
        got,
        vec![
            (p1, EventType::Confirmed, Some(txid(1))),
            (p1, EventType::Claimed, Some(txid(2))),
            (p2, EventType::Confirmed, Some(txid(3))),
            (p3, EventType::Confirmed, Some(txid(3))),
            (p5, EventType::Refunded, Some(txid(3))),
            (p4, EventType::Failed, Some(txid(4))),
        ]
    );
    assert!(events.iter().all(|e| e.confirmations == 3));
    assert!(events.iter().all(|e| e.block_height == Some(h)));
    let status = |id| current[&id].status;
    assert_eq!(status(p1), PaymentStatus::Claimed);
    assert_eq!(status(p2), PaymentStatus::Confirmed);
    assert_eq!(status(p3), PaymentStatus::Confirmed);
    assert_eq!(status(p4), PaymentStatus::Failed);
    assert_eq!(status(p5), PaymentStatus::Refunded);
    assert_eq!(current[&p4].reason.as_deref(), Some("AbortByResponse"));
    assert_eq!(current[&p5].created_in, p5_rec.created_in, "kept");
    assert_eq!(current[&p1].created_in.as_ref().unwrap().tx_index, 0);
    assert_eq!(current[&p1].settled_in.as_ref().unwrap().tx_index, 1);
    assert_eq!(current.len(), 5);

    // The same block again (redelivery): nothing new.
    assert!(apply_block(&mut current, &block, &ctx(h + 2)).is_empty());
}

#[test]
fn apply_block_follows_the_given_order() {
    // apply_block trusts the order of `txs` (decode_block sorts them): a claim
    // listed before its create settles the payment and the create is stale.
    let h = 300;
    let p1 = pid(9);
    let create = escrow_tx(
        &txid(1),
        0,
        TxOutcome::Success,
        None,
        vec![print(PrintKind::Created, p1, h)],
    );
    let claim = escrow_tx(
        &txid(2),
        1,
        TxOutcome::Success,
        None,
        vec![print(PrintKind::Claimed, p1, h)],
    );
    let decoded = |txs| DecodedBlock {
        block: block(h),
        txs,
        problems: Vec::new(),
        stats: DecodeStats::default(),
    };
    let mut cur = HashMap::new();
    let evs = apply_block(
        &mut cur,
        &decoded(vec![claim.clone(), create.clone()]),
        &ctx(h),
    );
    assert_eq!(
        evs.iter().map(|e| e.event_type).collect::<Vec<_>>(),
        [EventType::Claimed]
    );
    assert_eq!(cur[&p1].status, PaymentStatus::Claimed);

    let mut cur = HashMap::new();
    let evs = apply_block(&mut cur, &decoded(vec![create, claim]), &ctx(h));
    assert_eq!(
        evs.iter().map(|e| e.event_type).collect::<Vec<_>>(),
        [EventType::Confirmed, EventType::Claimed]
    );
}

#[test]
fn empty_block_emits_nothing() {
    let mut cur = HashMap::new();
    let b = DecodedBlock {
        block: block(10),
        txs: Vec::new(),
        problems: Vec::new(),
        stats: DecodeStats::default(),
    };
    assert!(apply_block(&mut cur, &b, &ctx(10)).is_empty());
    assert!(cur.is_empty());
    assert!(block_payment_ids(&b).is_empty());
}
