//! Chain checks.

use super::*;

/// Check the canonical flags against the parent links, and `/health` against
/// the tip. Returns the canonical chain, tip first, down to the lowest block
/// we hold on it.
pub(crate) async fn assert_canonical_chain(node: &TestNode) -> Vec<BlockRecord> {
    let history = node.app().ingestor.history();
    let tip = history.tip().await.expect("tip").expect("a tip");
    let mut path = vec![tip];
    loop {
        let child = path.last().expect("non-empty");
        let parent_hash = child.block.parent_index_block_hash.clone();
        let child_height = child.block.height;
        match history.get_block(&parent_hash).await.expect("get_block") {
            Some(parent) => {
                assert_eq!(
                    parent.block.height + 1,
                    child_height,
                    "parent {parent_hash} of a block at h{child_height}"
                );
                path.push(parent);
            }
            None => break,
        }
    }
    for b in &path {
        assert!(
            b.canonical,
            "block {} at h{} is on the path from the tip but not canonical",
            b.block.index_block_hash, b.block.height
        );
    }
    let on_path: HashSet<&str> = path
        .iter()
        .map(|b| b.block.index_block_hash.as_str())
        .collect();
    let all = history.recent_blocks(1000).await.expect("recent blocks");
    assert!(all.len() < 1000, "the test chains are small");
    for b in &all {
        assert_eq!(
            b.canonical,
            on_path.contains(b.block.index_block_hash.as_str()),
            "block {} at h{}: canonical flag disagrees with the parent links from the tip",
            b.block.index_block_hash,
            b.block.height
        );
    }
    let lowest = path.last().expect("non-empty").block.height;
    assert!(
        all.iter().all(|b| !b.canonical || b.block.height >= lowest),
        "the path from the tip reaches the first canonical block"
    );
    let tip = &path[0];
    let (code, health) = node.get("/health").await;
    assert_eq!(code, 200, "{health}");
    assert_eq!(health["last_block_height"], tip.block.height, "{health}");
    assert_eq!(
        health["last_block_hash"], tip.block.index_block_hash,
        "{health}"
    );
    path
}

/// The stored record of `hash`, which must exist.
pub(crate) async fn block(node: &TestNode, hash: &str) -> BlockRecord {
    node.app()
        .ingestor
        .history()
        .get_block(hash)
        .await
        .expect("get_block")
        .unwrap_or_else(|| panic!("block {hash} is stored"))
}

/// Every block the history holds, and its tip and open gaps: what a
/// delivery that changes nothing must leave alone (with [`snapshot`]).
pub(crate) async fn chain_state(
    node: &TestNode,
) -> (Vec<BlockRecord>, Option<BlockRecord>, Vec<BlockRecord>) {
    let history = node.app().ingestor.history();
    (
        history.recent_blocks(1000).await.expect("recent blocks"),
        history.tip().await.expect("tip"),
        history.gaps().await.expect("gaps"),
    )
}
