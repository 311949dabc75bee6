//! [`ChainLog`]: commits, sequence numbers, blocks, commit groups, batched reads.

use crate::fixtures::*;

pub async fn seq_contiguous_across_commits(h: Arc<dyn History>) {
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

pub async fn blocks_known_idempotent_and_tip(h: Arc<dyn History>) {
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

/// A commit group is one transaction: its commits are visible through the
/// handle at once, to everyone else only after `finish`, and a dropped
/// unfinished group leaves nothing behind (and no lock held).
pub async fn commit_group_is_atomic(h: Arc<dyn History>) {
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
pub async fn commit_group_merges_like_single_commits(h: Arc<dyn History>) {
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
pub async fn batched_reads_match_single_reads(h: Arc<dyn History>) {
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
pub async fn large_batch_timing(h: Arc<dyn History>) {
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

/// `expect_last_seq` is a hint: right or stale, the commit numbers its
/// events after the log's real end and writes every row (and attached
/// rows) exactly once.
pub async fn expected_log_end_is_only_a_hint(h: Arc<dyn History>) {
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
