//! 3. Gaps.

use super::*;

/// Blocks whose parent is unknown are held and shown on `/health`; when the
/// missing ancestor arrives, the held blocks connect, with their escrow effects.
///
/// ```text
/// main1 ─ main2 ─ [main3] ─ main4 (create) ─ main5 (claim)
/// delivered: 1, 2, 5 (gap: 4 missing), 4 (gap: 3 missing), 3 (all connect)
/// ```
pub(crate) async fn gap_is_held_then_connects(stores: Stores) {
    let p1 = P1::load();
    let node = start_node(stores, |c| c.contract_id = p1.contract_id.clone()).await;
    let (create, claim) = (p1.create.txid.as_str(), p1.claim.txid.as_str());
    let history = node.app().ingestor.history().clone();

    let (_, e) = deliver(&node, "/new_mempool_tx", p1.announce()).await;
    let mut log = evs(&e);
    assert_eq!(log, [Ev::submitted(1, create)]);
    quiet_block(&node, p1.empty("main", 1, "main")).await;
    quiet_block(&node, p1.empty("main", 2, "main")).await;

    let gap_of = |health: &Value| health["gaps"].clone();
    let answer = quiet_block(&node, p1.block("main", 5, "main", &[&p1.claim])).await;
    assert_eq!(answer["duplicate"], false, "{answer}");
    assert!(!block(&node, &index_hash("main", 5)).await.canonical);
    let path = assert_canonical_chain(&node).await;
    assert_eq!(
        path[0].block.index_block_hash,
        index_hash("main", 2),
        "tip unchanged"
    );
    let (_, health) = node.get("/health").await;
    assert_eq!(
        gap_of(&health),
        json!([{"block": index_hash("main", 5), "height": 5, "missing_parent": index_hash("main", 4)}]),
        "{health}"
    );
    assert_eq!(node.metric("nexus_gaps_detected_total").await, 1.0);
    assert_eq!(node.metric("nexus_open_gaps").await, 1.0);

    // The parent arrives, but its own parent is missing: the gap moves down.
    let answer = quiet_block(&node, p1.block("main", 4, "main", &[&p1.create])).await;
    assert_eq!(answer["duplicate"], false, "{answer}");
    assert!(!block(&node, &index_hash("main", 4)).await.canonical);
    assert!(!block(&node, &index_hash("main", 5)).await.canonical);
    let gaps: Vec<String> = history
        .gaps()
        .await
        .unwrap()
        .into_iter()
        .map(|b| b.block.index_block_hash)
        .collect();
    assert_eq!(gaps, [index_hash("main", 4)]);
    let (_, health) = node.get("/health").await;
    assert_eq!(health["last_block_height"], 2, "{health}");
    assert_eq!(
        gap_of(&health),
        json!([{"block": index_hash("main", 4), "height": 4, "missing_parent": index_hash("main", 3)}]),
        "{health}"
    );
    assert_eq!(node.metric("nexus_gaps_detected_total").await, 2.0);
    assert_log(&node, &p1, &log).await;

    // The missing block: both held blocks connect, and their effects apply.
    let (answer, e) = deliver(&node, "/new_block", p1.empty("main", 3, "main")).await;
    assert_eq!(answer["duplicate"], false, "{answer}");
    assert_eq!(
        evs(&e),
        [
            // Both held blocks apply in one commit at tip h5: h4 is 2 deep.
            Ev::mined(2, "confirmed", create, "main", 4, 2),
            Ev::mined(3, "claimed", claim, "main", 5, 1),
        ]
    );
    log.extend(evs(&e));
    let path = assert_canonical_chain(&node).await;
    let got: Vec<String> = path
        .iter()
        .map(|b| b.block.index_block_hash.clone())
        .collect();
    assert_eq!(
        got,
        (1..=5)
            .rev()
            .map(|h| index_hash("main", h))
            .collect::<Vec<_>>()
    );
    assert!(history.gaps().await.unwrap().is_empty());
    let (_, health) = node.get("/health").await;
    assert_eq!(gap_of(&health), json!([]), "{health}");
    assert_eq!(node.metric("nexus_open_gaps").await, 0.0);
    let p = history
        .get_payment(&p1.id.parse().unwrap())
        .await
        .unwrap()
        .expect("p1");
    assert_eq!(p.status.as_str(), "claimed");
    assert_log(&node, &p1, &log).await;
    node.stop().await;
}

/// A held block whose ancestry arrives as a side branch: once the branch is
/// complete it is longer than our chain, so it must win (longest chain).
///
/// ```text
/// main1 ─ main2 ─┬─ main3 ─ main4
///                └─ alt3 ─ alt4 (create) ─ alt5
/// delivered: main1..main4, alt5 (gap: alt4 missing), alt3 (side), alt4 (side, ties main4)
/// ```
/// After alt4 the node knows alt5 (h5) descends from main2: it must be the tip.
pub(crate) async fn held_branch_longer_than_tip_wins(stores: Stores) {
    let p1 = P1::load();
    let node = start_node(stores, |c| c.contract_id = p1.contract_id.clone()).await;
    for h in 1..=4 {
        quiet_block(&node, p1.empty("main", h, "main")).await;
    }
    quiet_block(&node, p1.empty("alt", 5, "alt")).await;
    quiet_block(&node, p1.empty("alt", 3, "main")).await;
    let (_, e) = deliver(
        &node,
        "/new_block",
        p1.block("alt", 4, "alt", &[&p1.create]),
    )
    .await;
    assert!(node
        .app()
        .ingestor
        .history()
        .gaps()
        .await
        .unwrap()
        .is_empty());
    let path = assert_canonical_chain(&node).await;
    assert_eq!(
        path[0].block.index_block_hash,
        index_hash("alt", 5),
        "alt5 (h5) is the longest chain; tip is h{} {}",
        path[0].block.height,
        path[0].block.index_block_hash
    );
    assert_eq!(
        evs(&e),
        [Ev::mined(1, "confirmed", &p1.create.txid, "alt", 4, 2)]
    );
    snapshot(&node).await.assert_consistent();
    node.stop().await;
}

/// Two held siblings wait for the same missing block; the one with a child
/// on top makes the longer branch and must win when the block arrives.
///
/// ```text
/// main1 ─ main2 ─ [main3] ─┬─ a4 (create)
///                          └─ b4 ─ b5 (create)
/// delivered: main1, main2, a4, b4, b5 (all held), main3
/// ```
pub(crate) async fn held_siblings_longest_wins(stores: Stores) {
    let p1 = P1::load();
    let node = start_node(stores, |c| c.contract_id = p1.contract_id.clone()).await;
    quiet_block(&node, p1.empty("main", 1, "main")).await;
    quiet_block(&node, p1.empty("main", 2, "main")).await;
    quiet_block(&node, p1.block("a", 4, "main", &[&p1.create])).await;
    quiet_block(&node, p1.empty("b", 4, "main")).await;
    quiet_block(&node, p1.block("b", 5, "b", &[&p1.create])).await;
    let (_, e) = deliver(&node, "/new_block", p1.empty("main", 3, "main")).await;
    let path = assert_canonical_chain(&node).await;
    assert_eq!(
        path[0].block.index_block_hash,
        index_hash("b", 5),
        "b5 (h5) is the longest chain; tip is h{} {}",
        path[0].block.height,
        path[0].block.index_block_hash
    );
    assert!(node
        .app()
        .ingestor
        .history()
        .gaps()
        .await
        .unwrap()
        .is_empty());
    assert_eq!(
        evs(&e),
        [Ev::mined(1, "confirmed", &p1.create.txid, "b", 5, 1)]
    );
    snapshot(&node).await.assert_consistent();
    node.stop().await;
}

/// `nexus_last_block_height` is the height of our tip, like `/health`'s
/// `last_block_height`, not of whichever block was delivered last (a held
/// or side-branch block may be far above or below the tip).
pub(crate) async fn last_block_height_metric_is_the_tip(stores: Stores) {
    let p1 = P1::load();
    let node = start_node(stores, |c| c.contract_id = p1.contract_id.clone()).await;
    quiet_block(&node, p1.empty("main", 1, "main")).await;
    quiet_block(&node, p1.empty("main", 2, "main")).await;
    quiet_block(&node, p1.empty("main", 5, "main")).await;
    assert_eq!(assert_canonical_chain(&node).await[0].block.height, 2);
    assert_eq!(
        node.metric("nexus_last_block_height").await,
        2.0,
        "held h5 over tip h2"
    );
    quiet_block(&node, p1.empty("main", 4, "main")).await;
    quiet_block(&node, p1.empty("main", 3, "main")).await;
    assert_eq!(assert_canonical_chain(&node).await[0].block.height, 5);
    assert_eq!(
        node.metric("nexus_last_block_height").await,
        5.0,
        "h3 connected h4 and h5"
    );
    node.stop().await;
}
