//! 4. Duplicates.

use super::*;

/// Re-delivering a side-branch block, a block in the middle of the chain, the
/// tip and a held block: 200, `duplicate: true`, no event, nothing changes.
///
/// ```text
/// main1 ─ main2 ─┬─ main3 (create) ─ main4 ─ main5 (claim) ◄ tip
///                └─ alt3                      [main7: held, main6 missing]
/// ```
pub(crate) async fn duplicates_change_nothing(stores: Stores) {
    let p1 = P1::load();
    let node = start_node(stores, |c| c.contract_id = p1.contract_id.clone()).await;
    let mut bus = node.app().bus.subscribe();
    let mut bodies = Vec::new();
    for h in 1..=5 {
        let mined: Vec<&RecordedTx> = match h {
            3 => vec![&p1.create],
            5 => vec![&p1.claim],
            _ => vec![],
        };
        bodies.push(p1.block("main", h, "main", &mined));
    }
    for b in &bodies {
        node.post_ok("/new_block", b.clone()).await;
    }
    let side = p1.empty("alt", 3, "main");
    node.post_ok("/new_block", side.clone()).await;
    let held = p1.empty("main", 7, "main");
    node.post_ok("/new_block", held.clone()).await;
    let path = assert_canonical_chain(&node).await;
    assert_eq!(path[0].block.index_block_hash, index_hash("main", 5));
    while bus.try_recv().is_ok() {}

    let before = (snapshot(&node).await, chain_state(&node).await);
    let counters = (
        node.metric("nexus_blocks_ingested_total").await,
        node.metric("nexus_reorgs_total").await,
        node.metric("nexus_gaps_detected_total").await,
    );
    for (what, body) in [
        ("side-branch alt3", &side),
        ("mid-chain main3", &bodies[2]),
        ("mid-chain main4", &bodies[3]),
        ("tip main5", &bodies[4]),
        ("held main7", &held),
    ] {
        let (code, answer) = node.post("/new_block", body.clone()).await;
        assert_eq!(code, 200, "{what}: {answer}");
        assert_eq!(answer["duplicate"], true, "{what}: {answer}");
        assert_eq!(answer["events"], 0, "{what}: {answer}");
        assert_eq!(
            (snapshot(&node).await, chain_state(&node).await),
            before,
            "re-delivering {what} changed the stores"
        );
    }
    assert_eq!(
        (
            node.metric("nexus_blocks_ingested_total").await,
            node.metric("nexus_reorgs_total").await,
            node.metric("nexus_gaps_detected_total").await,
        ),
        counters
    );
    assert!(bus.try_recv().is_err(), "a duplicate published an event");
    assert_eq!(assert_canonical_chain(&node).await, path);
    before.0.assert_consistent();
    node.stop().await;
}
