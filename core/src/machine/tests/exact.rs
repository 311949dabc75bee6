//! x402 `exact` payments in blocks: a transfer is a payment only when the
//! facilitator settled it (a record exists under its exact id), and the
//! record takes what the events moved.

use super::*;
use crate::decode::Transfer;
use crate::domain::Scheme;

const TOKEN: &str = "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM.test-token::test-token";

fn transfer(amount: u128) -> Transfer {
    Transfer {
        asset: TOKEN.into(),
        sender: PAYER.into(),
        recipient: PAYEE.into(),
        amount,
    }
}

fn transfer_tx(txid: &str, outcome: TxOutcome, amount: u128) -> EscrowTx {
    EscrowTx {
        transfer: Some(transfer(amount)),
        ft_assets: Vec::new(),
        ..escrow_tx(txid, 0, outcome, None, Vec::new())
    }
}

/// The record `/x402/settle` commits before broadcasting.
fn settling(txid: &str) -> Payment {
    let mut p = Payment::new(PaymentId::exact(txid), PaymentStatus::Pending, EARLIER);
    p.scheme = Some(Scheme::Exact);
    p.asset = Some(TOKEN.into());
    p.sender = Some(PAYER.into());
    p.recipient = Some(PAYEE.into());
    p.amount = Some("500".into());
    p.create_txid = Some(txid.into());
    p
}

fn decoded(height: u64, txs: Vec<EscrowTx>) -> DecodedBlock {
    DecodedBlock {
        block: block(height),
        txs,
        problems: Vec::new(),
        stats: DecodeStats::default(),
        transfer_candidates: Vec::new(),
    }
}

#[test]
fn a_settled_transfer_is_confirmed_with_what_moved() {
    let id = PaymentId::exact(TX_A);
    let mut current = HashMap::from([(id, settling(TX_A))]);
    let b = decoded(HEIGHT, vec![transfer_tx(TX_A, TxOutcome::Success, 700)]);
    assert_eq!(block_payment_ids(&b), vec![id]);
    let events = apply_block(&mut current, &b, &ctx(TIP));
    assert_eq!(events.len(), 1);
    let ev = &events[0];
    assert_eq!(ev.event_type, EventType::Confirmed);
    assert_eq!(ev.scheme, Some(Scheme::Exact));
    assert_eq!(ev.asset.as_deref(), Some(TOKEN));
    assert_eq!(ev.amount.as_deref(), Some("700"));
    assert_eq!(ev.block_height, Some(HEIGHT));
    assert_eq!(ev.confirmations, TIP - HEIGHT + 1);
    let p = &current[&id];
    assert_eq!(p.status, PaymentStatus::Confirmed);
    assert_eq!(p.created_in.as_ref().unwrap().txid, TX_A);
    // The same block again changes nothing.
    assert!(apply_block(&mut current, &b, &ctx(TIP)).is_empty());
}

#[test]
fn transfers_nobody_settled_and_escrow_records_are_left_alone() {
    // No record: a transfer on the chain that is not ours.
    let mut current = HashMap::new();
    let b = decoded(HEIGHT, vec![transfer_tx(TX_A, TxOutcome::Success, 500)]);
    assert!(apply_block(&mut current, &b, &ctx(TIP)).is_empty());
    assert!(current.is_empty());
    // A record under the same id that is not an exact payment, or tracks
    // another transaction, is not moved by it.
    let id = PaymentId::exact(TX_A);
    let mut escrow = settling(TX_A);
    escrow.scheme = None;
    let mut other = settling(TX_X);
    other.payment_id = id;
    for p in [escrow, other] {
        let mut current = HashMap::from([(id, p.clone())]);
        assert!(apply_block(&mut current, &b, &ctx(TIP)).is_empty());
        assert_eq!(current[&id], p);
    }
}

#[test]
fn an_aborted_transfer_fails_the_payment_with_the_nodes_reason() {
    let id = PaymentId::exact(TX_A);
    let mut current = HashMap::from([(id, settling(TX_A))]);
    let abort = Abort::by_response("(err u1)");
    let b = decoded(
        HEIGHT,
        vec![transfer_tx(TX_A, TxOutcome::Aborted(abort), 500)],
    );
    let events = apply_block(&mut current, &b, &ctx(TIP));
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].event_type, EventType::Failed);
    assert_eq!(events[0].reason.as_deref(), Some("AbortByResponse"));
    assert_eq!(
        events[0].reason_data,
        Some(serde_json::json!({"result": "(err u1)"}))
    );
    assert_eq!(current[&id].status, PaymentStatus::Failed);
}

#[test]
fn an_orphaned_confirmation_reverts_to_the_settling_record_then_confirms_again() {
    let id = PaymentId::exact(TX_A);
    let before = settling(TX_A);
    let mut current = HashMap::from([(id, before.clone())]);
    let b = decoded(HEIGHT, vec![transfer_tx(TX_A, TxOutcome::Success, 500)]);
    apply_block(&mut current, &b, &ctx(HEIGHT));
    let (back, ev) = revert(&current[&id], Some(&before), &b.block, &ctx(HEIGHT));
    assert_eq!(ev.event_type, EventType::Reverted);
    assert_eq!(ev.txid.as_deref(), Some(TX_A));
    assert_eq!(ev.scheme, Some(Scheme::Exact));
    assert_eq!(back.status, PaymentStatus::Pending);
    // Mined again on the new branch.
    let mut current = HashMap::from([(id, back)]);
    let again = decoded(HEIGHT + 1, vec![transfer_tx(TX_A, TxOutcome::Success, 500)]);
    let events = apply_block(&mut current, &again, &ctx(HEIGHT + 1));
    assert_eq!(events[0].event_type, EventType::Confirmed);
    assert_eq!(events[0].block_height, Some(HEIGHT + 1));
}
