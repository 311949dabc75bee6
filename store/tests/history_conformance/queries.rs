//! [`Queries`]: payments, their filters and pages, events, dead letters.

use crate::fixtures::*;

pub async fn empty_store(h: Arc<dyn History>) {
    assert_eq!(h.last_seq().await.unwrap(), 0);
    assert_eq!(h.tip().await.unwrap(), None);
    assert!(!h
        .block_known(&block(1, 0, true).block.index_block_hash)
        .await
        .unwrap());
    assert!(h.events_since(0, 10).await.unwrap().is_empty());
    assert!(h.list_payments(&filter(10)).await.unwrap().is_empty());
    assert!(h.payments_changed_since(0).await.unwrap().is_empty());
    assert!(h.dead_letters(10).await.unwrap().is_empty());
    assert_eq!(h.get_payment(&pid(1)).await.unwrap(), None);
    assert!(h.payments_for_txids(&[txid(1)]).await.unwrap().is_empty());
    h.ping().await.unwrap();
    // An empty batch is a no-op that still reports where the log stands.
    let c = h.commit(CommitBatch::default()).await.unwrap();
    assert_eq!((c.last_seq, c.events.len(), c.payments.len()), (0, 0, 0));
}

pub async fn payments_upsert_filter_paginate(h: Arc<dyn History>) {
    use PaymentStatus::*;
    let ps = vec![
        payment(pid(5), Confirmed, ALICE, BOB),
        payment(pid(1), Submitted, ALICE, CAROL),
        payment(pid(3), Confirmed, BOB, CAROL),
        payment(pid(2), Claimed, ALICE, BOB),
        payment(pid(4), Pending, CAROL, BOB),
    ];
    h.commit(CommitBatch {
        payments: ps.clone(),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(h.get_payment(&pid(3)).await.unwrap(), Some(ps[2].clone()));

    // Ordered by id, limited.
    let all = h.list_payments(&filter(100)).await.unwrap();
    assert_eq!(ids(&all), [pid(1), pid(2), pid(3), pid(4), pid(5)]);
    assert_eq!(
        ids(&h.list_payments(&filter(2)).await.unwrap()),
        [pid(1), pid(2)]
    );

    // Keyset pagination: `after` is the last id of the previous page.
    let mut pages = Vec::new();
    let mut after = None;
    loop {
        let page = h
            .list_payments(&PaymentFilter {
                after: after.clone(),
                limit: 2,
                ..Default::default()
            })
            .await
            .unwrap();
        let Some(last) = page.last() else { break };
        after = Some(last.payment_id.to_string());
        pages.push(ids(&page));
    }
    assert_eq!(
        pages,
        [vec![pid(1), pid(2)], vec![pid(3), pid(4)], vec![pid(5)]]
    );

    let by = |sender: Option<&str>, recipient: Option<&str>, status: Option<PaymentStatus>| {
        PaymentFilter {
            sender: sender.map(str::to_string),
            recipient: recipient.map(str::to_string),
            status,
            asset: None,
            after: None,
            limit: 100,
        }
    };
    let q = |f: PaymentFilter| {
        let h = h.clone();
        async move { ids(&h.list_payments(&f).await.unwrap()) }
    };
    assert_eq!(
        q(by(Some(ALICE), None, None)).await,
        [pid(1), pid(2), pid(5)]
    );
    assert_eq!(q(by(None, Some(CAROL), None)).await, [pid(1), pid(3)]);
    assert_eq!(q(by(None, None, Some(Confirmed))).await, [pid(3), pid(5)]);
    assert_eq!(q(by(Some(ALICE), Some(BOB), None)).await, [pid(2), pid(5)]);
    assert_eq!(q(by(Some(ALICE), Some(BOB), Some(Claimed))).await, [pid(2)]);
    assert!(q(by(Some("ST-nobody"), None, None)).await.is_empty());
    let mut f = by(Some(ALICE), None, None);
    f.after = Some(pid(1).to_string());
    f.limit = 1;
    assert_eq!(q(f).await, [pid(2)]);

    // Upsert: a new record replaces the old one, indexes follow.
    let mut moved = ps[0].clone();
    moved.status = Claimed;
    moved.sender = Some(CAROL.to_string());
    moved.reason = Some("claimed by recipient".into());
    // The same payment twice in one batch: the last record wins.
    let mut stale = ps[0].clone();
    stale.status = Failed;
    h.commit(CommitBatch {
        payments: vec![stale, moved.clone()],
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(h.get_payment(&pid(5)).await.unwrap(), Some(moved));
    assert_eq!(q(by(Some(ALICE), None, None)).await, [pid(1), pid(2)]);
    assert_eq!(q(by(Some(CAROL), None, None)).await, [pid(4), pid(5)]);
    assert_eq!(q(by(None, None, Some(Claimed))).await, [pid(2), pid(5)]);
    assert_eq!(h.list_payments(&filter(100)).await.unwrap().len(), 5);
}

/// `?asset=`: STX records (no asset, or `STX`) and each token's, named by its
/// contract or its full asset identifier, whichever the record holds.
pub async fn payments_filter_by_asset(h: Arc<dyn History>) {
    const TOKEN: &str = "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM.test-sbtc";
    let with_asset = |n: u8, asset: Option<&str>| {
        let mut p = payment(pid(n), PaymentStatus::Confirmed, ALICE, BOB);
        p.asset = asset.map(str::to_string);
        p
    };
    let asset_id = format!("{TOKEN}::test-sbtc");
    h.commit(CommitBatch {
        payments: vec![
            with_asset(1, None),
            with_asset(2, Some("STX")),
            with_asset(3, Some(TOKEN)),
            with_asset(4, Some(&asset_id)),
            with_asset(
                5,
                Some("ST2CY5V39NHDPWSXMW9QDT3HC3GD6Q6XX4CFRK9AG.other::other"),
            ),
        ],
        ..Default::default()
    })
    .await
    .unwrap();
    let q = |asset: &str| {
        let h = h.clone();
        let f = PaymentFilter {
            asset: Some(asset.to_string()),
            limit: 100,
            ..Default::default()
        };
        async move { ids(&h.list_payments(&f).await.unwrap()) }
    };
    assert_eq!(q("STX").await, [pid(1), pid(2)]);
    assert_eq!(q("stx").await, [pid(1), pid(2)]);
    assert_eq!(q(TOKEN).await, [pid(3), pid(4)]);
    assert_eq!(q(&asset_id).await, [pid(3), pid(4)]);
    assert!(q("ST2CY5V39NHDPWSXMW9QDT3HC3GD6Q6XX4CFRK9AG.nothing")
        .await
        .is_empty());
    // A record moving to another asset moves in the index too.
    h.commit(CommitBatch {
        payments: vec![with_asset(3, None)],
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(q("STX").await, [pid(1), pid(2), pid(3)]);
}

pub async fn payments_changed_since(h: Arc<dyn History>) {
    h.commit(events_batch(&[pid(1), pid(2)])).await.unwrap(); // seqs 1, 2
    h.commit(events_batch(&[pid(3)])).await.unwrap(); // seq 3
    h.commit(events_batch(&[pid(1)])).await.unwrap(); // seq 4: pid 1 again

    let changed = |seq| {
        let h = h.clone();
        async move {
            h.payments_changed_since(seq)
                .await
                .unwrap()
                .iter()
                .map(|p| (p.payment_id, p.updated_seq))
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(changed(0).await, [(pid(2), 2), (pid(3), 3), (pid(1), 4)]);
    assert_eq!(changed(2).await, [(pid(3), 3), (pid(1), 4)]);
    assert_eq!(changed(3).await, [(pid(1), 4)]);
    assert!(changed(4).await.is_empty());
}

pub async fn events_ordering_and_limit(h: Arc<dyn History>) {
    use EventType as T;
    use PaymentStatus as S;
    let mut confirmed = event(pid(1), T::Confirmed, S::Confirmed);
    confirmed.block_height = Some(7);
    confirmed.index_block_hash = Some(block(7, 0, true).block.index_block_hash);
    confirmed.burn_block_height = Some(107);
    confirmed.confirmations = 1;
    h.commit(CommitBatch {
        events: vec![
            event(pid(1), T::Created, S::Pending),
            event(pid(2), T::Created, S::Pending),
            event(pid(1), T::Submitted, S::Submitted),
        ],
        ..Default::default()
    })
    .await
    .unwrap();
    h.commit(CommitBatch {
        events: vec![event(pid(2), T::Failed, S::Failed), confirmed.clone()],
        ..Default::default()
    })
    .await
    .unwrap();

    let for1 = h.events_for_payment(&pid(1)).await.unwrap();
    assert_eq!(seqs(&for1), [1, 3, 5]);
    assert_eq!(
        for1.iter().map(|e| e.event_type).collect::<Vec<_>>(),
        [T::Created, T::Submitted, T::Confirmed]
    );
    assert_eq!(
        for1[2],
        PaymentEvent {
            seq: 5,
            ..confirmed
        }
    );
    assert_eq!(seqs(&h.events_for_payment(&pid(2)).await.unwrap()), [2, 4]);
    assert!(h.events_for_payment(&pid(3)).await.unwrap().is_empty());

    assert_eq!(seqs(&h.events_since(0, 2).await.unwrap()), [1, 2]);
    assert_eq!(seqs(&h.events_since(2, 2).await.unwrap()), [3, 4]);
    assert_eq!(seqs(&h.events_since(3, 100).await.unwrap()), [4, 5]);
    assert!(h.events_since(5, 100).await.unwrap().is_empty());
}

pub async fn payments_for_txids_from_mempool(h: Arc<dyn History>) {
    let rec = |n: u32, id: PaymentId, f: &str| MempoolRecord {
        txid: txid(n),
        payment_id: id,
        function: f.to_string(),
    };
    h.commit(CommitBatch {
        mempool: vec![
            rec(1, pid(1), "create-payment"),
            rec(2, pid(2), "claim-payment"),
        ],
        ..Default::default()
    })
    .await
    .unwrap();
    // Seen again (a re-broadcast): the first record stays.
    h.commit(CommitBatch {
        mempool: vec![
            rec(2, pid(9), "claim-payment"),
            rec(3, pid(3), "refund-expired"),
        ],
        ..Default::default()
    })
    .await
    .unwrap();

    let got = h
        .payments_for_txids(&[txid(3), txid(7), txid(1), txid(2), txid(1)])
        .await
        .unwrap();
    assert_eq!(
        got,
        [(txid(3), pid(3)), (txid(1), pid(1)), (txid(2), pid(2))]
    );
    assert!(h.payments_for_txids(&[]).await.unwrap().is_empty());
}

pub async fn dead_letters_round_trip(h: Arc<dyn History>) {
    let nasty = "{\"vm_error\":\"bad\u{0}byte\u{1}\u{7f}\r\"}\n\ttail";
    let dl = |n: u32, payload: &str| DeadLetter {
        id: 0,
        source: "/new_block".to_string(),
        reason: format!("reason {n}\u{0}"),
        payload: payload.to_string(),
        at: AT.to_string(),
    };
    let id1 = h.dead_letter(dl(1, "plain")).await.unwrap();
    let id2 = h.dead_letter(dl(2, nasty)).await.unwrap();
    let id3 = h.dead_letter(dl(3, "")).await.unwrap();
    assert!(id1 < id2 && id2 < id3);

    let got = h.dead_letters(10).await.unwrap();
    assert_eq!(
        got.iter().map(|d| d.id).collect::<Vec<_>>(),
        [id3, id2, id1]
    );
    // Stored without the NUL and C0 controls (tab and newline kept).
    assert_eq!(got[1].payload, "{\"vm_error\":\"badbyte\"}\n\ttail");
    assert_eq!(got[1].reason, "reason 2");
    assert_eq!(got[1].source, "/new_block");
    assert_eq!(got[1].at, AT);
    assert_eq!(got[2].payload, "plain");
    assert_eq!(h.dead_letters(1).await.unwrap().len(), 1);
}

pub async fn nul_bytes_inside_json_bodies(h: Arc<dyn History>) {
    // stacks-node's vm_error can carry NULs; they end up inside JSON bodies.
    let mut p = payment(pid(1), PaymentStatus::Failed, ALICE, BOB);
    p.reason = Some("Runtime(\u{0}\u{1}oops)".into());
    let mut e = event(pid(1), EventType::Failed, PaymentStatus::Failed);
    e.reason = p.reason.clone();
    let mut tx = escrow_tx(0, pid(1));
    tx.outcome = TxOutcome::Aborted(nexus_core::decode::Abort {
        kind: nexus_core::decode::AbortKind::AbortByResponse,
        result: None,
        vm_error: Some("vm\u{0}error".into()),
    });
    let b = block(1, 0, true);
    let c = h
        .commit(CommitBatch {
            block: Some(b.clone()),
            block_txs: vec![tx],
            payments: vec![p.clone()],
            events: vec![e.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    // Bodies round-trip exactly.
    let stored = h.get_payment(&pid(1)).await.unwrap().unwrap();
    assert_eq!(
        stored,
        Payment {
            updated_seq: 1,
            ..p
        }
    );
    assert_eq!(h.events_for_payment(&pid(1)).await.unwrap(), c.events);
    assert_eq!(h.events_since(0, 10).await.unwrap()[0].reason, e.reason);
}
