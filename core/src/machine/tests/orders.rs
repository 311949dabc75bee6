//! One payment seen through the mempool and blocks in any order.

use super::*;

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
        transfer_candidates: Vec::new(),
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
        transfer_candidates: Vec::new(),
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
