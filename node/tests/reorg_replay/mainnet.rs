//! 1. The real mainnet reorgs.

use super::*;

/// Scenario 1, h45: the sibling that h46 builds on.
pub(crate) const S1_H45_BLOCK_HASH: &str =
    "0x4d27059a847f3c3f6dbbd43343d11981b67409a2710597c6cb1814945cfc4d48";
pub(crate) const S1_H45: &str =
    "0x9cb73562d8eabb0cd991f23eac7de8402de27408e40b9827b33854f54e0a46f5";
/// Scenario 1, h45: the later sibling, never built on.
pub(crate) const S1_H45_ORPHAN: &str =
    "0x5b3b7490ce5ad15777164ebaae194b01b59f6dd876bca2ca899f29cd797dfa62";
/// Scenario 1, h47: the first of two siblings (first seen wins the tie).
pub(crate) const S1_H47: &str =
    "0x4f6dc8e302792fe2e3c5b66ae29db7d6170baa0e2120fb8f7b3c3956bbc3901c";
pub(crate) const S1_H47_SIBLING: &str =
    "0x68fb02f8c3b14fee8e8d26f1985439c67d07d999f9831a3a258bdf912ac361df";
/// Scenario 1, h30: arrives first, is canonical until h31 builds on its sibling.
pub(crate) const S1_H30_ORPHAN: &str =
    "0x65549af908664382673292297d6fad1353b23b8ebff8e69d4b6bef662c621f46";
pub(crate) const S1_H30: &str =
    "0x101dc10b0ffda670c34c603ac0ef3f251c3f5b5ca310ec624fb9b32d19d5836c";
/// Scenario 2, h2: arrives second; h3 builds on it.
pub(crate) const S2_H2_BLOCK_HASH: &str =
    "0x8f77bd15d37346543c64340e79b891b48628e36fcde9ae27d4e5e3f3992b5c8b";
pub(crate) const S2_H2: &str = "0x9f79f0a8ec99fea9e49e7324c1802c2282ed5c435c1752503f3e8678804f4f68";
/// Scenario 2, h2: arrives first, orphaned by h3.
pub(crate) const S2_H2_ORPHAN: &str =
    "0xd4e86b872a4799fe275f4a759257400cadc60b3e6b9382bd1ff2a1c7473aff7a";
pub(crate) const S2_H4: &str = "0x68152e9344939b515e1c10c35eb6d96b14caf79bac02d81173da0d8c4a5369c1";

/// POST every line of `file` in order; every answer 200. Returns the
/// answers to `/new_block`s.
pub(crate) async fn replay(node: &TestNode, file: &str) -> Vec<Value> {
    let mut answers = Vec::new();
    for (i, ev) in read_tsv(file).iter().enumerate() {
        let (code, body) = node.post(&ev.path, ev.body.clone()).await;
        assert_eq!(code, 200, "{file} line {} ({}): {body}", i + 1, ev.path);
        if ev.path == "/new_block" {
            answers.push(body);
        }
    }
    answers
}

/// A second replay of the same file is all duplicates and changes nothing.
pub(crate) async fn replay_again_changes_nothing(node: &TestNode, file: &str) {
    let before = (snapshot(node).await, chain_state(node).await);
    for answer in replay(node, file).await {
        assert_eq!(answer["duplicate"], true, "{answer}");
        assert_eq!(answer["events"], 0, "{answer}");
    }
    assert_eq!(
        (snapshot(node).await, chain_state(node).await),
        before,
        "replaying {file} again changed the stores"
    );
}

/// stacks-blockchain-api's `mainnet-reorg-scenario1` test: after the replay
/// the h45 with block hash `0x4d27…` is canonical, `0x5b3b…` and the
/// first-seen h30 `0x6554…` are not, and the chain ends on `0x4f6d…` at h47.
///
/// ```text
/// h29 ─┬─ 0x6554 (h30, first seen, orphaned by h31)
///      └─ 0x101d (h30) ─ h31 ─ … ─ h44 ─┬─ 0x9cb7 (h45) ─ h46 ─┬─ 0x4f6d (h47) ◄ tip
///                                       └─ 0x5b3b (h45)        └─ 0x68fb (h47)
/// ```
pub(crate) async fn mainnet_reorg_scenario1(stores: Stores) {
    nexus_testkit::needs_captured!();
    let node = start_node(stores, |_| {}).await;
    let answers = replay(&node, "mainnet-reorg-scenario1.tsv").await;
    assert_eq!(answers.len(), 50);

    let h45 = block(&node, S1_H45).await;
    assert_eq!(h45.block.block_hash, S1_H45_BLOCK_HASH);
    assert_eq!(h45.block.height, 45);
    assert!(h45.canonical, "h45 0x9cb7… is canonical");
    for orphan in [S1_H45_ORPHAN, S1_H30_ORPHAN, S1_H47_SIBLING] {
        assert!(
            !block(&node, orphan).await.canonical,
            "{orphan} is not canonical"
        );
    }
    assert!(block(&node, S1_H30).await.canonical);

    let path = assert_canonical_chain(&node).await;
    assert_eq!(path[0].block.index_block_hash, S1_H47, "canonical h47");
    assert_eq!(path[0].block.height, 47);
    assert_eq!(path.len(), 47, "h47 down to h1, no hole");
    let on_path: Vec<&str> = path
        .iter()
        .map(|b| b.block.index_block_hash.as_str())
        .collect();
    assert!(on_path.contains(&S1_H45) && on_path.contains(&S1_H30));
    // Only h31 (built on the second h30) moved the tip off a block.
    assert_eq!(node.metric("nexus_reorgs_total").await, 1.0);
    assert!(node
        .app()
        .ingestor
        .history()
        .gaps()
        .await
        .unwrap()
        .is_empty());
    snapshot(&node).await.assert_consistent();

    // The chain view survives a restart, and a full re-replay is all duplicates.
    let node = node.restart().await;
    assert_eq!(assert_canonical_chain(&node).await, path);
    replay_again_changes_nothing(&node, "mainnet-reorg-scenario1.tsv").await;
    node.stop().await;
}

/// stacks-blockchain-api's `mainnet-reorg-scenario2` test: the h2 with block
/// hash `0x8f77…` (arrived second) is canonical, the first-seen `0xd4e8…` is not.
///
/// ```text
/// h1 ─┬─ 0xd4e8 (h2, first seen, orphaned by h3)
///     └─ 0x9f79 (h2) ─ h3 ─ 0x6815 (h4) ◄ tip
/// ```
pub(crate) async fn mainnet_reorg_scenario2(stores: Stores) {
    nexus_testkit::needs_captured!();
    let node = start_node(stores, |_| {}).await;
    let answers = replay(&node, "mainnet-reorg-scenario2.tsv").await;
    assert_eq!(answers.len(), 5);

    let h2 = block(&node, S2_H2).await;
    assert_eq!(h2.block.block_hash, S2_H2_BLOCK_HASH);
    assert_eq!(h2.block.height, 2);
    assert!(h2.canonical, "h2 0x9f79… is canonical");
    assert!(
        !block(&node, S2_H2_ORPHAN).await.canonical,
        "h2 0xd4e8… is not"
    );

    let path = assert_canonical_chain(&node).await;
    assert_eq!(path[0].block.index_block_hash, S2_H4);
    assert_eq!(path.len(), 4, "h4 down to h1");
    assert_eq!(path[2].block.index_block_hash, S2_H2);
    assert_eq!(node.metric("nexus_reorgs_total").await, 1.0);
    snapshot(&node).await.assert_consistent();
    replay_again_changes_nothing(&node, "mainnet-reorg-scenario2.tsv").await;
    node.stop().await;
}
