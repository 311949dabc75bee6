//! One suite, every `History` backend: the same assertions run against SQLite
//! (a temporary file) and PostgreSQL (a fresh database per test, on the server
//! at `NEXUS_TEST_PG_URL`, default `postgres://postgres@127.0.0.1:5432/test`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use nexus_core::decode::{BlockRef, EscrowTx, PaymentPrint, PrintKind, TxOutcome};
use nexus_core::domain::{
    EventSource, EventType, Payment, PaymentEvent, PaymentId, PaymentStatus, Proof,
};
use nexus_store::postgres::PgHistory;
use nexus_store::sqlite::SqliteHistory;
use nexus_store::{
    BlockRecord, CommitBatch, DeadLetter, Fence, History, MempoolRecord, PaymentFilter, StoreError,
    UndoRecord,
};
use nexus_store::{ChainLog, Queries};
use nexus_testkit::pg::PgTestDb as PgEmpty;

const AT: &str = "2025-01-01T00:00:00Z";
const ALICE: &str = "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM";
const BOB: &str = "ST2CY5V39NHDPWSXMW9QDT3HC3GD6Q6XX4CFRK9AG";
const CAROL: &str = "ST2JHG361ZXG51QTKY2NQCVBPPRRE2KZB1HR05NNC";

// ---------------------------------------------------------------------------
// Fixtures

/// A payment id whose text form sorts by `n`.
fn pid(n: u8) -> PaymentId {
    let mut b = [0x11u8; 32];
    b[0] = n;
    PaymentId(b)
}

fn payment(id: PaymentId, status: PaymentStatus, sender: &str, recipient: &str) -> Payment {
    let mut p = Payment::new(id, status, AT);
    p.sender = Some(sender.to_string());
    p.recipient = Some(recipient.to_string());
    p.amount = Some("1000000".to_string());
    p
}

fn event(id: PaymentId, ty: EventType, status: PaymentStatus) -> PaymentEvent {
    PaymentEvent {
        seq: 0,
        event_type: ty,
        payment_id: id,
        status,
        sender: Some(ALICE.to_string()),
        recipient: Some(BOB.to_string()),
        amount: Some("1000000".to_string()),
        txid: Some(txid(id.0[0] as u32)),
        block_height: None,
        index_block_hash: None,
        burn_block_height: None,
        confirmations: 0,
        is_final: false,
        source: EventSource::Observer,
        reason: None,
        reverted: None,
        at: AT.to_string(),
        reason_data: None,
        retry: None,
    }
}

fn txid(n: u32) -> String {
    format!("0x{n:064x}")
}

fn block(height: u64, fork: u8, canonical: bool) -> BlockRecord {
    BlockRecord {
        block: BlockRef {
            index_block_hash: format!("0x{fork:02x}{height:062x}"),
            parent_index_block_hash: format!("0x{fork:02x}{:062x}", height.saturating_sub(1)),
            block_hash: format!("0xbb{fork:02x}{height:060x}"),
            height,
            burn_height: 100 + height,
            burn_hash: format!("0xcc{height:062x}"),
            time: 1_700_000_000 + height,
        },
        canonical,
    }
}

fn escrow_tx(i: u32, id: PaymentId) -> EscrowTx {
    EscrowTx {
        txid: txid(i),
        tx_index: i,
        outcome: TxOutcome::Success,
        call: None,
        prints: vec![PaymentPrint {
            kind: PrintKind::Created,
            payment_id: id,
            sender: ALICE.to_string(),
            recipient: BOB.to_string(),
            // Past JSON's safe integers on purpose.
            amount: u128::MAX,
            memo: vec![0, 1, 2],
            expires_at: 500,
            block_height: 7,
        }],
        admin: vec![],
    }
}

fn events_batch(ids: &[PaymentId]) -> CommitBatch {
    CommitBatch {
        payments: ids
            .iter()
            .map(|&id| payment(id, PaymentStatus::Submitted, ALICE, BOB))
            .collect(),
        events: ids
            .iter()
            .map(|&id| event(id, EventType::Submitted, PaymentStatus::Submitted))
            .collect(),
        ..Default::default()
    }
}

fn seqs(events: &[PaymentEvent]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

fn ids(payments: &[Payment]) -> Vec<PaymentId> {
    payments.iter().map(|p| p.payment_id).collect()
}

fn filter(limit: u32) -> PaymentFilter {
    PaymentFilter {
        limit,
        ..Default::default()
    }
}

// ---------------------------------------------------------------------------
// The suite: each case takes any backend.

async fn empty_store(h: Arc<dyn History>) {
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

async fn seq_contiguous_across_commits(h: Arc<dyn History>) {
    let c1 = h
        .commit(events_batch(&[pid(1), pid(2), pid(3)]))
        .await
        .unwrap();
    assert_eq!(seqs(&c1.events), [1, 2, 3]);
    assert_eq!(c1.last_seq, 3);
    // Each payment carries the seq of its (last) event.
    assert_eq!(
        c1.payments
            .iter()
            .map(|p| p.updated_seq)
            .collect::<Vec<_>>(),
        [1, 2, 3]
    );

    let c2 = h.commit(events_batch(&[pid(4), pid(1)])).await.unwrap();
    assert_eq!(seqs(&c2.events), [4, 5]);
    assert_eq!(c2.last_seq, 5);
    assert_eq!(h.last_seq().await.unwrap(), 5);

    // A batch without events leaves the log where it was.
    let c3 = h
        .commit(CommitBatch {
            mempool: vec![MempoolRecord {
                txid: txid(9),
                payment_id: pid(9),
                function: "create-payment".into(),
            }],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(c3.last_seq, 5);
    assert_eq!(h.commit(CommitBatch::default()).await.unwrap().last_seq, 5);

    let all = h.events_since(0, 100).await.unwrap();
    assert_eq!(seqs(&all), [1, 2, 3, 4, 5]);
    assert_eq!(all, [c1.events, c2.events].concat());
}

async fn blocks_known_idempotent_and_tip(h: Arc<dyn History>) {
    let b1 = block(1, 0, true);
    let batch = CommitBatch {
        block: Some(b1.clone()),
        block_txs: vec![escrow_tx(0, pid(1)), escrow_tx(3, pid(2))],
        burn_block: Some((101, "0xburn".into())),
        ..events_batch(&[pid(1)])
    };
    h.commit(batch.clone()).await.unwrap();
    assert!(h.block_known(&b1.block.index_block_hash).await.unwrap());
    assert!(!h.block_known("0xnot-a-block").await.unwrap());
    assert_eq!(h.tip().await.unwrap(), Some(b1.clone()));

    // The same block again (a re-delivery): no error, no second copy.
    h.commit(CommitBatch {
        block: Some(b1.clone()),
        block_txs: batch.block_txs.clone(),
        burn_block: Some((101, "0xburn2".into())),
        ..Default::default()
    })
    .await
    .unwrap();
    assert_eq!(h.tip().await.unwrap(), Some(b1.clone()));

    // The highest canonical block is the tip, whatever the insertion order.
    let (b3, b2) = (block(3, 0, true), block(2, 0, true));
    for b in [&b3, &b2] {
        h.commit(CommitBatch {
            block: Some(b.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    }
    assert_eq!(h.tip().await.unwrap(), Some(b3.clone()));

    // A higher block on a fork we do not follow is known but is not the tip.
    let orphan = block(9, 7, false);
    h.commit(CommitBatch {
        block: Some(orphan.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    assert!(h.block_known(&orphan.block.index_block_hash).await.unwrap());
    assert_eq!(h.tip().await.unwrap(), Some(b3));
    assert_eq!(h.last_seq().await.unwrap(), 1);
}

async fn payments_upsert_filter_paginate(h: Arc<dyn History>) {
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

async fn payments_changed_since(h: Arc<dyn History>) {
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

async fn events_ordering_and_limit(h: Arc<dyn History>) {
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

async fn payments_for_txids_from_mempool(h: Arc<dyn History>) {
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

async fn dead_letters_round_trip(h: Arc<dyn History>) {
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

async fn nul_bytes_inside_json_bodies(h: Arc<dyn History>) {
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

/// A commit group is one transaction: its commits are visible through the
/// handle at once, to everyone else only after `finish`, and a dropped
/// unfinished group leaves nothing behind (and no lock held).
async fn commit_group_is_atomic(h: Arc<dyn History>) {
    let b1 = block(1, 0, true);
    let hash1 = b1.block.index_block_hash.clone();
    let g = h.group().await.unwrap();
    let c = g
        .commit(CommitBatch {
            block: Some(b1.clone()),
            ..events_batch(&[pid(1), pid(2)])
        })
        .await
        .unwrap();
    assert_eq!(seqs(&c.events), [1, 2]);
    let c = g.commit(events_batch(&[pid(3)])).await.unwrap();
    assert_eq!(seqs(&c.events), [3], "seqs continue inside the group");
    // A block-only commit (an empty block) may be held back until the next
    // statement: it is still seen through the handle and lands on finish.
    let side = block(5, 1, false);
    let c = g
        .commit(CommitBatch {
            block: Some(side.clone()),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((c.last_seq, c.events.len()), (3, 0));
    assert!(g.block_known(&hash1).await.unwrap());
    assert_eq!(g.last_seq().await.unwrap(), 3);
    assert_eq!(
        g.get_blocks(std::slice::from_ref(&hash1)).await.unwrap(),
        std::slice::from_ref(&b1)
    );
    // Not visible outside before the group commits.
    assert!(!h.block_known(&hash1).await.unwrap());
    assert_eq!(h.last_seq().await.unwrap(), 0);
    assert!(g.block_known(&side.block.index_block_hash).await.unwrap());
    g.finish().await.unwrap();
    assert!(h.block_known(&hash1).await.unwrap());
    assert!(h.block_known(&side.block.index_block_hash).await.unwrap());
    assert_eq!(seqs(&h.events_since(0, 10).await.unwrap()), [1, 2, 3]);
    assert!(
        g.finish().await.is_err(),
        "a finished group cannot finish twice"
    );
    assert!(g.last_seq().await.is_err(), "nor be used");

    // Dropped unfinished: rolled back.
    let b2 = block(2, 0, true);
    let g = h.group().await.unwrap();
    g.commit(CommitBatch {
        block: Some(b2.clone()),
        ..events_batch(&[pid(4)])
    })
    .await
    .unwrap();
    let held = block(6, 1, false);
    g.commit(CommitBatch {
        block: Some(held.clone()),
        ..Default::default()
    })
    .await
    .unwrap();
    drop(g);
    assert!(!h.block_known(&held.block.index_block_hash).await.unwrap());
    assert!(!h.block_known(&b2.block.index_block_hash).await.unwrap());
    assert_eq!(h.last_seq().await.unwrap(), 3);
    assert_eq!(h.get_payment(&pid(4)).await.unwrap(), None);
    // The lock went with it: a plain commit goes through, numbering on from 3.
    let c = h.commit(events_batch(&[pid(5)])).await.unwrap();
    assert_eq!(seqs(&c.events), [4]);
}

/// A group's commits leave what the same commits made one by one leave,
/// whether or not the store writes some of them later and together:
/// upserts keep the last record, `DO NOTHING` inserts the first, and reads
/// through the handle see everything committed before them.
async fn commit_group_merges_like_single_commits(h: Arc<dyn History>) {
    let (b1, b2, b3) = (block(1, 0, true), block(2, 0, true), block(3, 0, true));
    let (hash1, hash2) = (
        b1.block.index_block_hash.clone(),
        b2.block.index_block_hash.clone(),
    );
    let claimed = |id| {
        (
            payment(id, PaymentStatus::Claimed, ALICE, BOB),
            event(id, EventType::Claimed, PaymentStatus::Claimed),
        )
    };
    let mempool = |n, id| MempoolRecord {
        txid: txid(n),
        payment_id: id,
        function: "create-payment".to_string(),
    };
    let g = h.group().await.unwrap();
    g.commit(CommitBatch {
        block: Some(b1),
        ..events_batch(&[pid(1), pid(2)])
    })
    .await
    .unwrap();
    let (p, e) = claimed(pid(1));
    let c = g
        .commit(CommitBatch {
            block: Some(b2),
            block_txs: vec![escrow_tx(4, pid(1))],
            undo: vec![UndoRecord {
                index_block_hash: hash2.clone(),
                payment_id: pid(1),
                before: Some(payment(pid(1), PaymentStatus::Submitted, ALICE, BOB)),
            }],
            payments: vec![p.clone()],
            events: vec![e.clone()],
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!((seqs(&c.events), c.payments[0].updated_seq), (vec![3], 3));
    let mut later = p;
    later.status = PaymentStatus::Refunded;
    g.commit(CommitBatch {
        payments: vec![later.clone()],
        events: vec![e],
        mempool: vec![mempool(9, pid(2))],
        burn_block: Some((7, "0xaa".to_string())),
        ..Default::default()
    })
    .await
    .unwrap();
    g.commit(CommitBatch {
        block: Some(b3.clone()),
        mempool: vec![mempool(9, pid(3))],
        burn_block: Some((7, "0xbb".to_string())),
        undo: vec![UndoRecord {
            index_block_hash: hash2.clone(),
            payment_id: pid(1),
            before: None,
        }],
        ..Default::default()
    })
    .await
    .unwrap();
    let got = g.get_payment(&pid(1)).await.unwrap().unwrap();
    assert_eq!((got.status, got.updated_seq), (PaymentStatus::Refunded, 4));
    let asked = [
        hash1.clone(),
        hash2.clone(),
        b3.block.index_block_hash.clone(),
    ];
    let mut parents = g.with_children(&asked).await.unwrap();
    parents.sort();
    assert_eq!(parents, [hash1, hash2.clone()], "read through the handle");
    g.finish().await.unwrap();

    assert_eq!(h.last_seq().await.unwrap(), 4);
    assert_eq!(seqs(&h.events_since(0, 10).await.unwrap()), [1, 2, 3, 4]);
    let got = h.get_payment(&pid(1)).await.unwrap().unwrap();
    assert_eq!((got.status, got.updated_seq), (later.status, 4));
    assert_eq!(
        h.payments_for_txids(&[txid(9)]).await.unwrap(),
        [(txid(9), pid(2))],
        "a known mempool tx keeps its first record"
    );
    assert_eq!(
        h.undo(&hash2).await.unwrap(),
        [UndoRecord {
            index_block_hash: hash2.clone(),
            payment_id: pid(1),
            before: None,
        }],
        "the last before-image wins"
    );
    assert_eq!(h.block_txs(&hash2).await.unwrap(), [escrow_tx(4, pid(1))]);
    assert_eq!(h.tip().await.unwrap(), Some(b3));
}

/// The batched block reads answer what the one-block reads answer.
async fn batched_reads_match_single_reads(h: Arc<dyn History>) {
    let mut hashes = Vec::new();
    for height in 1..=3u64 {
        let b = block(height, 0, true);
        let hash = b.block.index_block_hash.clone();
        let n = u8::try_from(height).unwrap();
        let txs = if height == 2 {
            Vec::new()
        } else {
            vec![
                escrow_tx(u32::from(n) * 2, pid(n)),
                escrow_tx(u32::from(n) * 2 + 1, pid(n + 10)),
            ]
        };
        let undo = vec![
            UndoRecord {
                index_block_hash: hash.clone(),
                payment_id: pid(n),
                before: None,
            },
            UndoRecord {
                index_block_hash: hash.clone(),
                payment_id: pid(n + 10),
                before: Some(payment(pid(n + 10), PaymentStatus::Submitted, ALICE, BOB)),
            },
        ];
        h.commit(CommitBatch {
            block: Some(b),
            block_txs: txs,
            undo,
            ..Default::default()
        })
        .await
        .unwrap();
        hashes.push(hash);
    }
    let mut asked = hashes.clone();
    asked.push(block(9, 9, false).block.index_block_hash);
    let mut many = h.get_blocks(&asked).await.unwrap();
    many.sort_by_key(|b| b.block.height);
    let mut single = Vec::new();
    for hash in &hashes {
        single.push(h.get_block(hash).await.unwrap().unwrap());
    }
    assert_eq!(many, single, "unknown blocks are left out");

    let txs = h.block_txs_many(&asked).await.unwrap();
    let undo = h.undo_many(&asked).await.unwrap();
    for hash in &hashes {
        assert_eq!(
            txs.get(hash).cloned().unwrap_or_default(),
            h.block_txs(hash).await.unwrap()
        );
        assert_eq!(
            undo.get(hash).cloned().unwrap_or_default(),
            h.undo(hash).await.unwrap()
        );
    }
    assert_eq!(
        txs.len(),
        2,
        "a block without escrow transactions has no entry"
    );
    assert_eq!(undo.len(), 3);
    assert!(h.get_blocks(&[]).await.unwrap().is_empty());
    assert!(h.block_txs_many(&[]).await.unwrap().is_empty());
    assert!(h.undo_many(&[]).await.unwrap().is_empty());
}

/// Not a pass/fail benchmark: prints the time of a realistic large commit
/// (run with `--nocapture`), and fails only on a gross regression.
async fn large_batch_timing(h: Arc<dyn History>) {
    const N: u32 = 1_000;
    let mut timings = Vec::new();
    for round in 0..5u32 {
        let mut batch = CommitBatch {
            block: Some(block(u64::from(round) + 1, 0, true)),
            ..Default::default()
        };
        for i in 0..N {
            let mut b = [0u8; 32];
            b[..4].copy_from_slice(&round.to_be_bytes());
            b[4..8].copy_from_slice(&i.to_be_bytes());
            let id = PaymentId(b);
            batch.block_txs.push(escrow_tx(i, id));
            batch
                .payments
                .push(payment(id, PaymentStatus::Confirmed, ALICE, BOB));
            batch
                .events
                .push(event(id, EventType::Confirmed, PaymentStatus::Confirmed));
        }
        let t = Instant::now();
        let c = h.commit(batch).await.unwrap();
        timings.push(t.elapsed());
        assert_eq!(c.last_seq, u64::from((round + 1) * N));
    }
    timings.sort();
    let t = Instant::now();
    h.commit(CommitBatch::default()).await.unwrap();
    let empty = t.elapsed();
    println!(
        "commit of {N} events + {N} payments + {N} block_txs: median {:?}, min {:?}, max {:?}; empty batch {:?}",
        timings[2], timings[0], timings[4], empty
    );
    assert_eq!(
        h.events_since(0, 10_000).await.unwrap().len(),
        5 * N as usize
    );
    // Generous (debug build, tests in parallel): catches a row-per-round-trip loop.
    assert!(timings[2] < Duration::from_secs(2), "{timings:?}");
}

fn proof(id: PaymentId, status: PaymentStatus, tip: u64) -> Proof {
    Proof {
        payment_id: id,
        status,
        txid: Some(txid(1)),
        tx_index: Some(3),
        block_height: Some(7),
        index_block_hash: Some(block(7, 0, true).block.index_block_hash),
        block_hash: Some(block(7, 0, true).block.block_hash),
        burn_block_height: Some(107),
        burn_block_hash: Some(block(7, 0, true).block.burn_hash),
        confirmations: tip - 7 + 1,
        is_final: tip - 7 + 1 >= 6,
        verified_tip_height: tip,
        verified_tip: format!("0x{tip:064x}"),
        verified_at: AT.to_string(),
    }
}

/// Proofs of settlement: stored, replaced by newer checks, one per payment.
async fn proofs_round_trip_and_replace(h: Arc<dyn History>) {
    assert_eq!(h.get_proof(&pid(1)).await.unwrap(), None);
    h.put_proofs(&[], None).await.unwrap();
    h.put_proofs(
        &[
            proof(pid(1), PaymentStatus::Confirmed, 8),
            proof(pid(2), PaymentStatus::Claimed, 9),
        ],
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        h.get_proof(&pid(1)).await.unwrap(),
        Some(proof(pid(1), PaymentStatus::Confirmed, 8))
    );
    // A later check replaces it; the same id twice in one call: the last wins.
    h.put_proofs(
        &[
            proof(pid(1), PaymentStatus::Confirmed, 10),
            proof(pid(1), PaymentStatus::Confirmed, 12),
        ],
        None,
    )
    .await
    .unwrap();
    let p = h.get_proof(&pid(1)).await.unwrap().unwrap();
    assert_eq!(
        (p.verified_tip_height, p.confirmations, p.is_final),
        (12, 6, true)
    );
    assert_eq!(
        h.get_proof(&pid(2)).await.unwrap().unwrap().status,
        PaymentStatus::Claimed
    );
    // Position fields may be unknown (a transition learned from contract state).
    let mut bare = proof(pid(3), PaymentStatus::Refunded, 9);
    bare.txid = None;
    bare.block_height = None;
    h.put_proofs(&[bare.clone()], None).await.unwrap();
    assert_eq!(h.get_proof(&pid(3)).await.unwrap(), Some(bare));
}

/// Fenced writes: a token below the highest one seen is refused, and the
/// refused write changes nothing (neither the commit nor the proofs).
async fn fenced_writes_refuse_stale_tokens(h: Arc<dyn History>) {
    let fence = |token| Fence {
        name: "reconciler".to_string(),
        token,
    };
    let fenced = |ids: &[PaymentId], token| CommitBatch {
        fence: Some(fence(token)),
        ..events_batch(ids)
    };
    h.commit(fenced(&[pid(1)], 5)).await.unwrap();
    h.commit(fenced(&[pid(2)], 5)).await.unwrap();
    h.commit(fenced(&[pid(3)], 9)).await.unwrap();
    let err = h.commit(fenced(&[pid(4)], 8)).await.unwrap_err();
    assert!(matches!(err, StoreError::Rejected { .. }), "{err:?}");
    assert!(!err.is_temporary());
    assert_eq!(h.last_seq().await.unwrap(), 3);
    assert_eq!(h.get_payment(&pid(4)).await.unwrap(), None);
    let err = h
        .put_proofs(
            &[proof(pid(1), PaymentStatus::Confirmed, 8)],
            Some(&fence(8)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Rejected { .. }), "{err:?}");
    assert_eq!(h.get_proof(&pid(1)).await.unwrap(), None);
    h.put_proofs(
        &[proof(pid(1), PaymentStatus::Confirmed, 8)],
        Some(&fence(9)),
    )
    .await
    .unwrap();
    assert!(h.get_proof(&pid(1)).await.unwrap().is_some());
    // Unfenced writers (the observer) are never refused; other names are separate.
    h.commit(events_batch(&[pid(5)])).await.unwrap();
    h.commit(CommitBatch {
        fence: Some(Fence {
            name: "other".to_string(),
            token: 1,
        }),
        ..events_batch(&[pid(6)])
    })
    .await
    .unwrap();
    assert_eq!(h.last_seq().await.unwrap(), 5);
}

// ---------------------------------------------------------------------------
// Backends

/// `expect_last_seq` is a hint: right or stale, the commit numbers its
/// events after the log's real end and writes every row (and attached
/// rows) exactly once.
async fn expected_log_end_is_only_a_hint(h: Arc<dyn History>) {
    use nexus_store::{AttachedRows, AttachedValues};
    let rows = |names: &[&str]| AttachedRows {
        table: "mempool_txs",
        columns: vec![
            (
                "txid",
                AttachedValues::Text(names.iter().map(|n| Some(n.to_string())).collect()),
            ),
            (
                "payment_id",
                AttachedValues::Text(names.iter().map(|_| Some(pid(7).to_string())).collect()),
            ),
            (
                "function",
                AttachedValues::Text(
                    names
                        .iter()
                        .map(|_| Some("create-payment".into()))
                        .collect(),
                ),
            ),
        ],
    };
    // Right: numbered from it.
    let mut b = events_batch(&[pid(1), pid(2)]);
    b.expect_last_seq = Some(0);
    b.attached = vec![rows(&["0xaa"])];
    let c = h.commit(b).await.unwrap();
    assert_eq!((seqs(&c.events), c.last_seq), (vec![1, 2], 2));
    // Stale (another writer moved the log): numbered from the real end, nothing lost.
    let mut b = events_batch(&[pid(3)]);
    b.expect_last_seq = Some(1);
    b.attached = vec![rows(&["0xbb"])];
    let c = h.commit(b).await.unwrap();
    assert_eq!((seqs(&c.events), c.last_seq), (vec![3], 3));
    // Ahead of the log: the same.
    let mut b = events_batch(&[pid(1)]);
    b.expect_last_seq = Some(99);
    let c = h.commit(b).await.unwrap();
    assert_eq!((seqs(&c.events), c.last_seq), (vec![4], 4));
    // Attached rows only (no events): the log stays where it is.
    let b = CommitBatch {
        attached: vec![rows(&["0xaa", "0xcc"])],
        expect_last_seq: Some(4),
        ..Default::default()
    };
    assert_eq!(h.commit(b).await.unwrap().last_seq, 4);

    assert_eq!(h.last_seq().await.unwrap(), 4);
    let all = h.events_since(0, 100).await.unwrap();
    assert_eq!(seqs(&all), [1, 2, 3, 4]);
    assert_eq!(
        all.iter().map(|e| e.payment_id).collect::<Vec<_>>(),
        [pid(1), pid(2), pid(3), pid(1)]
    );
    let p1 = h.get_payment(&pid(1)).await.unwrap().expect("stored");
    assert_eq!(p1.updated_seq, 4);
    let known = h
        .payments_for_txids(&["0xaa".into(), "0xbb".into(), "0xcc".into()])
        .await
        .unwrap();
    assert_eq!(known.len(), 3, "each attached row written once: {known:?}");
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let dir = tempfile::tempdir().unwrap();
                    let h = super::SqliteHistory::open(&dir.path().join("history.db")).unwrap();
                    super::$case(std::sync::Arc::new(h)).await;
                }
            )*
        }
        mod postgres {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let db = super::PgTestDb::create().await;
                    super::$case(db.history.clone()).await;
                }
            )*
        }
    };
}

conformance!(
    empty_store,
    seq_contiguous_across_commits,
    blocks_known_idempotent_and_tip,
    payments_upsert_filter_paginate,
    payments_changed_since,
    events_ordering_and_limit,
    payments_for_txids_from_mempool,
    dead_letters_round_trip,
    nul_bytes_inside_json_bodies,
    large_batch_timing,
    commit_group_is_atomic,
    commit_group_merges_like_single_commits,
    batched_reads_match_single_reads,
    proofs_round_trip_and_replace,
    fenced_writes_refuse_stale_tokens,
    expected_log_end_is_only_a_hint,
);

#[tokio::test]
async fn sqlite_in_memory_group_rolls_back_on_drop() {
    // In memory there is one connection: the group shares it, and dropping
    // it unfinished must leave that connection usable outside a transaction.
    let h: Arc<dyn History> = Arc::new(SqliteHistory::open_in_memory().unwrap());
    let g = h.group().await.unwrap();
    g.commit(events_batch(&[pid(1)])).await.unwrap();
    drop(g);
    assert_eq!(h.last_seq().await.unwrap(), 0);
    h.commit(events_batch(&[pid(2)])).await.unwrap();
    assert_eq!(h.last_seq().await.unwrap(), 1);
    let g = h.group().await.unwrap();
    g.commit(events_batch(&[pid(3)])).await.unwrap();
    g.finish().await.unwrap();
    assert_eq!(h.last_seq().await.unwrap(), 2);
}

#[tokio::test]
async fn sqlite_in_memory_works() {
    let h: Arc<dyn History> = Arc::new(SqliteHistory::open_in_memory().unwrap());
    seq_contiguous_across_commits(h).await;
}

#[tokio::test]
async fn sqlite_reopen_keeps_data_and_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    let h = SqliteHistory::open(&path).unwrap();
    h.commit(events_batch(&[pid(1), pid(2)])).await.unwrap();
    drop(h);
    let h = SqliteHistory::open(&path).unwrap();
    assert_eq!(h.last_seq().await.unwrap(), 2);
}

#[tokio::test]
async fn postgres_reconnect_reruns_migrations_harmlessly() {
    let db = PgTestDb::create().await;
    db.history.commit(events_batch(&[pid(1)])).await.unwrap();
    let again = PgHistory::connect(&db.url).await.unwrap();
    assert_eq!(again.last_seq().await.unwrap(), 1);
}

/// Migration 7 turned `block_txs` and `block_undo` from one row per
/// transaction / payment into one row per block: rows written before it read
/// back the same after it.
#[tokio::test]
async fn postgres_block_sets_migration_keeps_earlier_rows() {
    // Dropped at the end, also on a failed assertion.
    let db = PgEmpty::create().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&db.url)
        .await
        .unwrap();
    let h = PgHistory::from_pool(pool.clone());
    h.migrate_to(6).await.unwrap();
    let (a, b) = ("0xaa".to_string(), "0xbb".to_string());
    let (t3, t1, t0) = (
        escrow_tx(3, pid(1)),
        escrow_tx(1, pid(2)),
        escrow_tx(0, pid(3)),
    );
    for (block, t) in [(&a, &t3), (&a, &t1), (&b, &t0)] {
        sqlx::query("INSERT INTO block_txs (index_block_hash, tx_index, txid, body) VALUES ($1, $2, $3, $4)")
            .bind(block)
            .bind(i64::from(t.tx_index))
            .bind(&t.txid)
            .bind(serde_json::to_string(t).unwrap())
            .execute(&pool)
            .await
            .unwrap();
    }
    let before = payment(pid(2), PaymentStatus::Confirmed, ALICE, BOB);
    for (id, prior) in [(pid(2), Some(&before)), (pid(1), None)] {
        sqlx::query(
            "INSERT INTO block_undo (index_block_hash, payment_id, before) VALUES ($1, $2, $3)",
        )
        .bind(&a)
        .bind(id.to_string())
        .bind(prior.map(|p| serde_json::to_string(p).unwrap()))
        .execute(&pool)
        .await
        .unwrap();
    }

    h.migrate().await.unwrap();

    block_sets_read_back(&h, &a, &b, [&t0, &t1, &t3], before).await;
}

/// What both block-sets migration tests wrote, read back through the
/// store: the transactions of `a` in `tx_index` order, its undo records in
/// `payment_id` order, nothing to undo for `b`.
async fn block_sets_read_back(
    h: &dyn History,
    a: &String,
    b: &String,
    [t0, t1, t3]: [&EscrowTx; 3],
    before: Payment,
) {
    assert_eq!(h.block_txs(a).await.unwrap(), [t1.clone(), t3.clone()]);
    let many = h.block_txs_many(&[a.clone(), b.clone()]).await.unwrap();
    assert_eq!(many[b], std::slice::from_ref(t0));
    let undo = h.undo(a).await.unwrap();
    assert_eq!(
        undo,
        [
            UndoRecord {
                index_block_hash: a.clone(),
                payment_id: pid(1),
                before: None
            },
            UndoRecord {
                index_block_hash: a.clone(),
                payment_id: pid(2),
                before: Some(before)
            },
        ]
    );
    assert!(h.undo(b).await.unwrap().is_empty());
    assert_eq!(h.undo_many(std::slice::from_ref(a)).await.unwrap()[a], undo);
}

/// SQLite's twin of the block-sets migration (its 9th): rows written before
/// it read back the same after it.
#[tokio::test]
async fn sqlite_block_sets_migration_keeps_earlier_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    nexus_store::sqlite::migrate_file_to(&path, 8).unwrap();
    let (a, b) = ("0xaa".to_string(), "0xbb".to_string());
    let (t3, t1, t0) = (
        escrow_tx(3, pid(1)),
        escrow_tx(1, pid(2)),
        escrow_tx(0, pid(3)),
    );
    let before = payment(pid(2), PaymentStatus::Confirmed, ALICE, BOB);
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        for (block, t) in [(&a, &t3), (&a, &t1), (&b, &t0)] {
            c.execute(
                "INSERT INTO block_txs (index_block_hash, tx_index, txid, body) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![block, t.tx_index, t.txid, serde_json::to_string(t).unwrap()],
            )
            .unwrap();
        }
        for (id, prior) in [(pid(2), Some(&before)), (pid(1), None)] {
            c.execute(
                "INSERT INTO block_undo (index_block_hash, payment_id, before) VALUES (?1, ?2, ?3)",
                rusqlite::params![
                    a,
                    id.to_string(),
                    prior.map(|p| serde_json::to_string(p).unwrap())
                ],
            )
            .unwrap();
        }
    }

    let h = SqliteHistory::open(&path).unwrap();

    block_sets_read_back(&h, &a, &b, [&t0, &t1, &t3], before).await;
}

#[tokio::test]
async fn postgres_outage_is_temporary() {
    // Nothing listens on port 1: connect fails fast and says "retry".
    let url = "postgres://postgres@127.0.0.1:1/test";
    let err = PgHistory::connect(url).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(err.is_temporary());

    // A pool that was fine at start and then lost its server: every call is
    // Unavailable, within the acquire timeout.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy(url)
        .unwrap();
    let h = PgHistory::from_pool(pool);
    let t = Instant::now();
    for err in [
        h.ping().await.unwrap_err(),
        h.commit(events_batch(&[pid(1)])).await.unwrap_err(),
        h.last_seq().await.unwrap_err(),
    ] {
        assert!(err.is_temporary(), "{err:?}");
    }
    assert!(t.elapsed() < Duration::from_secs(5));
}

// ---------------------------------------------------------------------------
// PostgreSQL: one fresh database per test, so tests run in parallel.

/// A fresh, migrated database (dropped with the value).
struct PgTestDb {
    history: Arc<dyn History>,
    url: String,
    _db: PgEmpty,
}

impl PgTestDb {
    async fn create() -> Self {
        let db = PgEmpty::create().await;
        let history = Arc::new(PgHistory::connect(&db.url).await.unwrap());
        PgTestDb {
            history,
            url: db.url.clone(),
            _db: db,
        }
    }
}
