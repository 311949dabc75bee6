//! The real mainnet reorgs, replayed from captured stacks-blockchain-api TSVs.

use super::*;

/// A `/new_block` payload's fork-choice fields.
struct Captured {
    index_block_hash: String,
    parent_index_block_hash: String,
    block_hash: String,
    height: u64,
}

fn captured_blocks(name: &str) -> Vec<Captured> {
    let text = nexus_testkit::read_captured(&format!("stacks-blockchain-api/{name}"));
    text.lines()
        .filter_map(|line| {
            let mut cols = line.splitn(4, '\t');
            let (_id, _ts, route, body) = (cols.next()?, cols.next()?, cols.next()?, cols.next()?);
            (route == "/new_block").then_some(body)
        })
        .map(|body| {
            let j: serde_json::Value = serde_json::from_str(body).expect("new_block json");
            let s = |k: &str| j[k].as_str().unwrap_or_else(|| panic!("{k}")).to_string();
            Captured {
                index_block_hash: s("index_block_hash"),
                parent_index_block_hash: s("parent_index_block_hash"),
                block_hash: s("block_hash"),
                height: j["block_height"].as_u64().expect("block_height"),
            }
        })
        .collect()
}

/// Replays a capture; returns the tree, the block hashes, and every Reorg
/// plan with the height it happened at.
fn replay(name: &str) -> (Tree, HashMap<String, Captured>, Vec<(u64, Plan)>) {
    let blocks = captured_blocks(name);
    let mut t = Tree::new();
    let mut reorgs = Vec::new();
    for b in &blocks {
        let p = t.v2(&b.index_block_hash, &b.parent_index_block_hash, b.height);
        assert!(
            !matches!(p, Plan::Orphan { .. } | Plan::Duplicate),
            "{name}: h{} {}: unexpected {p:?}",
            b.height,
            b.index_block_hash
        );
        if matches!(p, Plan::Reorg { .. }) {
            reorgs.push((b.height, p));
        }
    }
    let by_hash = blocks
        .into_iter()
        .map(|b| (b.index_block_hash.clone(), b))
        .collect();
    (t, by_hash, reorgs)
}

/// Canonical block at `height`, walking down from the tip.
fn canonical_at<'a>(t: &Tree, by_hash: &'a HashMap<String, Captured>, height: u64) -> &'a Captured {
    let hash = t
        .chain()
        .into_iter()
        .find(|h| by_hash[h].height == height)
        .unwrap_or_else(|| panic!("no canonical block at h{height}"));
    &by_hash[&hash]
}

/// Checks the whole canonical chain, tip down to the first captured block:
/// parent-linked, one height step at a time, every captured height covered.
fn assert_full_chain(t: &Tree, by_hash: &HashMap<String, Captured>, lowest: u64, highest: u64) {
    let chain = t.chain();
    assert_eq!(chain.len() as u64, highest - lowest + 1, "chain length");
    for (i, hash) in chain.iter().enumerate() {
        let b = &by_hash[hash];
        assert_eq!(b.height, highest - i as u64, "height of {hash}");
        if let Some(below) = chain.get(i + 1) {
            assert_eq!(&b.parent_index_block_hash, below, "parent of {hash}");
        }
    }
}

/// Mainnet capture 1 (stacks-blockchain-api `mainnet-reorg-scenario1.tsv`),
/// heights 1..47 delivered in file order (2.x):
///
/// ```text
/// … ─ h29 ─ h30 0x6554…                       (h30 0x6554 first)
///         └─ h30 0x101d ─ h31 0xb9d2 ─ …      (h30 0x101d: side branch; h31: reorg)
/// … ─ h44 ─ h45 0x9cb7 ─ h46 0x4b72 ─ h47 0x4f6d    (first seen at h45 and h47)
///         └─ h45 0x5b3b               └─ h47 0x68fb (ties: side branches)
/// ```
#[test]
fn v17_mainnet_reorg_scenario1() {
    nexus_testkit::needs_captured!();
    let (t, by_hash, reorgs) = replay("mainnet-reorg-scenario1.tsv");
    assert_eq!(
        reorgs,
        vec![(
            31,
            reorg(
                &["0x65549af908664382673292297d6fad1353b23b8ebff8e69d4b6bef662c621f46"],
                &[
                    "0x101dc10b0ffda670c34c603ac0ef3f251c3f5b5ca310ec624fb9b32d19d5836c",
                    "0xb9d24ac312955f281352866eba5641762774585a1c3c2976289782ec446b2c11",
                ],
            )
        )]
    );
    let h45 = canonical_at(&t, &by_hash, 45);
    assert!(h45.index_block_hash.starts_with("0x9cb73562"));
    assert!(h45.block_hash.starts_with("0x4d27059a"));
    let h47 = canonical_at(&t, &by_hash, 47);
    assert!(h47.index_block_hash.starts_with("0x4f6dc8e3"));
    assert_eq!(t.tip(), Some(h47.index_block_hash.as_str()));
    assert!(!t.is_canonical("0x5b3b7490ce5ad15777164ebaae194b01b59f6dd876bca2ca899f29cd797dfa62"));
    assert!(!t.is_canonical("0x68fb02f8c3b14fee8e8d26f1985439c67d07d999f9831a3a258bdf912ac361df"));
    assert!(!t.is_canonical("0x65549af908664382673292297d6fad1353b23b8ebff8e69d4b6bef662c621f46"));
    assert_full_chain(&t, &by_hash, 1, 47);
}

/// Mainnet capture 2 (stacks-blockchain-api `mainnet-reorg-scenario2.tsv`),
/// delivered in file order (2.x):
///
/// ```text
/// h1 ─ h2 0xd4e8                      (first)
///    └─ h2 0x9f79 ─ h3 0x1bc3 ─ h4    (h2 0x9f79: side branch; h3: reorg; h4 extends)
/// ```
#[test]
fn v18_mainnet_reorg_scenario2() {
    nexus_testkit::needs_captured!();
    let (t, by_hash, reorgs) = replay("mainnet-reorg-scenario2.tsv");
    assert_eq!(
        reorgs,
        vec![(
            3,
            reorg(
                &["0xd4e86b872a4799fe275f4a759257400cadc60b3e6b9382bd1ff2a1c7473aff7a"],
                &[
                    "0x9f79f0a8ec99fea9e49e7324c1802c2282ed5c435c1752503f3e8678804f4f68",
                    "0x1bc3a55ec5807724b219bfd5d8f0d31064adb555a11375264ad6b66c1f05ea76",
                ],
            )
        )]
    );
    let h2 = canonical_at(&t, &by_hash, 2);
    assert!(h2.index_block_hash.starts_with("0x9f79f0a8"));
    assert!(h2.block_hash.starts_with("0x8f77bd15"));
    assert!(!t.is_canonical("0xd4e86b872a4799fe275f4a759257400cadc60b3e6b9382bd1ff2a1c7473aff7a"));
    assert_eq!(
        t.tip(),
        Some("0x68152e9344939b515e1c10c35eb6d96b14caf79bac02d81173da0d8c4a5369c1")
    );
    assert_full_chain(&t, &by_hash, 1, 4);
}
