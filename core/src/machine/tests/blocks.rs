//! `apply_block`: every transaction and print of a block, in order.

use super::*;

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
        transfer_candidates: Vec::new(),
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
        transfer_candidates: Vec::new(),
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
        transfer_candidates: Vec::new(),
    };
    assert!(apply_block(&mut cur, &b, &ctx(10)).is_empty());
    assert!(cur.is_empty());
    assert!(block_payment_ids(&b).is_empty());
}
