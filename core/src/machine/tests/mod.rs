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

// Arrival orders: the same payment seen through mempool and blocks in any order.
mod orders;
// Whole blocks: every transaction and print of a block, in order.
mod blocks;
// x402 `exact` transfers: only those the facilitator settled, and what moved.
mod exact;

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
        token: None,
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
        token: None,
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
        token: None,
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
        transfer: None,
        ft_assets: Vec::new(),
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
