//! Fork-choice test vectors for [`nexus_core::chain::plan`].
//!
//! Each vector is a `#[test]` whose doc comment draws the block tree it builds
//! (blocks are named `<height letter><branch digit>`, e.g. `B2` is the second
//! branch at height 2; the order of arrival is written next to the shape), and
//! which checks the exact [`Plan`] returned at every delivery. A tiny in-test
//! block tree applies each plan the way the indexer is meant to (canonical
//! flags and tip), and after every delivery checks that the canonical flags
//! are exactly the blocks reachable from the tip through parent links.
//!
//! Fork-choice rule under test (see `indexer/src/chain/mod.rs`):
//! * Stacks 2.x: the longest chain wins; a tie keeps the block seen first.
//! * Nakamoto: a block that doesn't extend the tip replaces what it conflicts
//!   with, even at or below the tip's height.
//!
//! The last two vectors replay the real mainnet reorgs captured by
//! stacks-blockchain-api (`mainnet-reorg-scenario{1,2}.tsv`).

use std::collections::{HashMap, HashSet};

use nexus_core::chain::{plan, Header, Plan};

/// Parent of the first block of every synthetic tree: never delivered.
const PRE_GENESIS: &str = "pre-genesis";

/// The blocks we know, with their canonical flags, plus our tip.
#[derive(Default)]
struct Tree {
    blocks: HashMap<String, Header>,
    tip: Option<String>,
}

impl Tree {
    fn new() -> Self {
        Self::default()
    }

    /// Deliver a Stacks 2.x block.
    fn v2(&mut self, hash: &str, parent: &str, height: u64) -> Plan {
        self.deliver(hash, parent, height, false)
    }

    /// Deliver a Nakamoto block.
    fn nak(&mut self, hash: &str, parent: &str, height: u64) -> Plan {
        self.deliver(hash, parent, height, true)
    }

    /// Ask `plan` what to do with the block, then do exactly that.
    fn deliver(&mut self, hash: &str, parent: &str, height: u64, nakamoto: bool) -> Plan {
        let new = Header {
            index_block_hash: hash.to_string(),
            parent_index_block_hash: parent.to_string(),
            height,
            nakamoto,
            canonical: false,
        };
        let tip = self.tip.as_ref().map(|t| self.blocks[t].clone());
        let blocks = &self.blocks;
        let p = plan(tip.as_ref(), &new, |h| blocks.get(h).cloned());
        match &p {
            Plan::Duplicate | Plan::Orphan { .. } => {}
            Plan::Extend => {
                self.blocks.insert(
                    hash.to_string(),
                    Header {
                        canonical: true,
                        ..new
                    },
                );
                self.tip = Some(hash.to_string());
            }
            Plan::Reorg { rollback, apply } => {
                assert_eq!(
                    apply.last().map(String::as_str),
                    Some(hash),
                    "a reorg ends with the new block"
                );
                self.blocks.insert(hash.to_string(), new);
                for h in rollback {
                    self.flag(h, false);
                }
                for h in apply {
                    self.flag(h, true);
                }
                self.tip = apply.last().cloned();
            }
            Plan::SideBranch => {
                self.blocks.insert(hash.to_string(), new);
            }
        }
        self.check_consistent();
        p
    }

    fn flag(&mut self, hash: &str, canonical: bool) {
        let h = self
            .blocks
            .get_mut(hash)
            .unwrap_or_else(|| panic!("plan names unknown block {hash}"));
        assert_ne!(h.canonical, canonical, "{hash} flagged twice");
        h.canonical = canonical;
    }

    /// Forget a stored block (a pruned or lost row), to leave a gap.
    fn forget(&mut self, hash: &str) {
        let h = self.blocks.remove(hash).expect("forgetting a known block");
        assert!(!h.canonical, "only side-branch blocks are forgotten here");
    }

    fn tip(&self) -> Option<&str> {
        self.tip.as_deref()
    }

    fn is_canonical(&self, hash: &str) -> bool {
        self.blocks[hash].canonical
    }

    fn is_known(&self, hash: &str) -> bool {
        self.blocks.contains_key(hash)
    }

    /// Canonical chain from the tip down, following parent links, while the
    /// parent is known.
    fn chain(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut cursor = self.tip.clone();
        while let Some(h) = cursor.and_then(|c| self.blocks.get(&c)) {
            out.push(h.index_block_hash.clone());
            cursor = Some(h.parent_index_block_hash.clone());
        }
        out
    }

    /// Canonical flags == blocks on the chain from the tip; heights descend by 1.
    fn check_consistent(&self) {
        let chain = self.chain();
        for pair in chain.windows(2) {
            assert_eq!(
                self.blocks[&pair[0]].height,
                self.blocks[&pair[1]].height + 1,
                "{} is not one above its parent {}",
                pair[0],
                pair[1]
            );
        }
        let on_chain: HashSet<&String> = chain.iter().collect();
        for (hash, h) in &self.blocks {
            assert_eq!(
                h.canonical,
                on_chain.contains(hash),
                "canonical flag of {hash} disagrees with the chain from the tip"
            );
        }
    }
}

fn reorg(rollback: &[&str], apply: &[&str]) -> Plan {
    Plan::Reorg {
        rollback: rollback.iter().map(|s| s.to_string()).collect(),
        apply: apply.iter().map(|s| s.to_string()).collect(),
    }
}

fn orphan(missing: &str) -> Plan {
    Plan::Orphan {
        missing: missing.to_string(),
    }
}

fn chain_of(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

/// `A1 ─ B1 ─ C1 ─ D1` on top of a fresh tree (A1's parent is never seen).
fn linear_abcd(t: &mut Tree) {
    assert_eq!(t.v2("A1", PRE_GENESIS, 1), Plan::Extend);
    assert_eq!(t.v2("B1", "A1", 2), Plan::Extend);
    assert_eq!(t.v2("C1", "B1", 3), Plan::Extend);
    assert_eq!(t.v2("D1", "C1", 4), Plan::Extend);
}

/// ```text
/// A1 ─ B1 ─ C1 ─ D1      (in order: each one extends the tip)
/// ```
#[test]
fn v01_linear_extension() {
    let mut t = Tree::new();
    linear_abcd(&mut t);
    assert_eq!(t.tip(), Some("D1"));
    assert_eq!(t.chain(), chain_of(&["D1", "C1", "B1", "A1"]));
}

/// ```text
/// ?? ─ X1                (no tip yet: the first block extends, whatever its parent)
///      X1 ─ Y1
/// ```
#[test]
fn v02_first_block_without_tip() {
    let mut t = Tree::new();
    assert_eq!(t.tip(), None);
    assert_eq!(t.v2("X1", "never-seen", 500), Plan::Extend);
    assert_eq!(t.tip(), Some("X1"));
    assert!(t.is_canonical("X1"));
    assert_eq!(t.v2("Y1", "X1", 501), Plan::Extend);
    assert_eq!(t.chain(), chain_of(&["Y1", "X1"]));

    // The same holds for a first Nakamoto block.
    let mut t = Tree::new();
    assert_eq!(t.nak("N1", "never-seen", 9000), Plan::Extend);
    assert_eq!(t.tip(), Some("N1"));
}

/// ```text
/// A1 ─ B1 ─ B1           (B1 delivered twice: nothing to do)
///    └─ B2 ─ B2          (a side-branch block delivered twice: nothing to do)
/// ```
#[test]
fn v03_duplicate_delivery() {
    let mut t = Tree::new();
    assert_eq!(t.v2("A1", PRE_GENESIS, 1), Plan::Extend);
    assert_eq!(t.v2("B1", "A1", 2), Plan::Extend);
    assert_eq!(t.v2("B1", "A1", 2), Plan::Duplicate);
    assert_eq!(t.v2("A1", PRE_GENESIS, 1), Plan::Duplicate);
    assert_eq!(t.v2("B2", "A1", 2), Plan::SideBranch);
    assert_eq!(t.v2("B2", "A1", 2), Plan::Duplicate);
    // A duplicate is recognised by hash alone, even re-announced as Nakamoto.
    assert_eq!(t.nak("B2", "A1", 2), Plan::Duplicate);
    assert_eq!(t.tip(), Some("B1"));
    assert!(!t.is_canonical("B2"));
    assert_eq!(t.chain(), chain_of(&["B1", "A1"]));
}

/// ```text
/// A1 ─ B1                (B1 first)
///    └─ B2               (B2 second, same height: tie, first seen stays)
/// ```
#[test]
fn v04_v2_tie_keeps_first_seen() {
    let mut t = Tree::new();
    assert_eq!(t.v2("A1", PRE_GENESIS, 1), Plan::Extend);
    assert_eq!(t.v2("B1", "A1", 2), Plan::Extend);
    assert_eq!(t.v2("B2", "A1", 2), Plan::SideBranch);
    assert_eq!(t.tip(), Some("B1"));
    assert!(t.is_known("B2"));
    assert!(!t.is_canonical("B2"));
    // A third sibling changes nothing either.
    assert_eq!(t.v2("B3", "A1", 2), Plan::SideBranch);
    assert_eq!(t.chain(), chain_of(&["B1", "A1"]));
}

/// ```text
/// A1 ─ B1                (1, 2)
///    └─ B2 ─ C2          (3: side branch; 4: C2 makes it longer -> reorg)
/// ```
#[test]
fn v05_v2_sibling_then_child_reorgs() {
    let mut t = Tree::new();
    assert_eq!(t.v2("A1", PRE_GENESIS, 1), Plan::Extend);
    assert_eq!(t.v2("B1", "A1", 2), Plan::Extend);
    assert_eq!(t.v2("B2", "A1", 2), Plan::SideBranch);
    assert_eq!(t.v2("C2", "B2", 3), reorg(&["B1"], &["B2", "C2"]));
    assert_eq!(t.tip(), Some("C2"));
    assert!(!t.is_canonical("B1"));
    assert_eq!(t.chain(), chain_of(&["C2", "B2", "A1"]));
    // And the new branch keeps extending normally.
    assert_eq!(t.v2("D2", "C2", 4), Plan::Extend);
}

/// ```text
/// A1 ─ B1 ─ C1
///    └─ B2               (B2 arrives after C1: side branch, no reorg)
/// ```
#[test]
fn v06_v2_late_sibling_below_tip() {
    let mut t = Tree::new();
    assert_eq!(t.v2("A1", PRE_GENESIS, 1), Plan::Extend);
    assert_eq!(t.v2("B1", "A1", 2), Plan::Extend);
    assert_eq!(t.v2("C1", "B1", 3), Plan::Extend);
    assert_eq!(t.v2("B2", "A1", 2), Plan::SideBranch);
    assert_eq!(t.tip(), Some("C1"));
    assert_eq!(t.chain(), chain_of(&["C1", "B1", "A1"]));
}

/// ```text
/// A1 ─ B1 ─ C1 ─ D1            (1..4)
///    └─ B2 ─ C2 ─ D2 ─ E2      (5..7 side branch, D2 only ties; 8: E2 is strictly longer)
/// ```
#[test]
fn v07_side_branch_overtakes_only_when_strictly_longer() {
    let mut t = Tree::new();
    linear_abcd(&mut t);
    assert_eq!(t.v2("B2", "A1", 2), Plan::SideBranch);
    assert_eq!(t.v2("C2", "B2", 3), Plan::SideBranch);
    assert_eq!(t.v2("D2", "C2", 4), Plan::SideBranch);
    assert_eq!(t.tip(), Some("D1"));
    assert_eq!(
        t.v2("E2", "D2", 5),
        reorg(&["D1", "C1", "B1"], &["B2", "C2", "D2", "E2"])
    );
    assert_eq!(t.chain(), chain_of(&["E2", "D2", "C2", "B2", "A1"]));
}

/// Generated: a canonical chain `a1..aN` over genesis `G`, a side branch
/// `b1..bN` that only ties, then `b(N+1)` wins.
///
/// ```text
/// G ─ a1 ─ a2 ─ … ─ aN
///   └─ b1 ─ b2 ─ … ─ bN ─ b(N+1)
/// ```
fn deep_reorg(depth: u64) {
    let mut t = Tree::new();
    assert_eq!(t.v2("G", PRE_GENESIS, 0), Plan::Extend);
    let a = |i: u64| format!("a{i}");
    let b = |i: u64| format!("b{i}");
    let parent = |name: &dyn Fn(u64) -> String, i: u64| {
        if i == 1 {
            "G".to_string()
        } else {
            name(i - 1)
        }
    };
    for i in 1..=depth {
        assert_eq!(t.v2(&a(i), &parent(&a, i), i), Plan::Extend, "a{i}");
    }
    for i in 1..=depth {
        assert_eq!(t.v2(&b(i), &parent(&b, i), i), Plan::SideBranch, "b{i}");
    }
    assert_eq!(t.tip(), Some(a(depth).as_str()));

    let winner = depth + 1;
    let rollback: Vec<String> = (1..=depth).rev().map(a).collect();
    let apply: Vec<String> = (1..=winner).map(b).collect();
    assert_eq!(rollback.first(), Some(&a(depth)), "tip first");
    assert_eq!(apply.first(), Some(&b(1)), "oldest first");
    assert_eq!(
        t.v2(&b(winner), &b(depth), winner),
        Plan::Reorg { rollback, apply }
    );
    assert_eq!(t.tip(), Some(b(winner).as_str()));
    let mut expected: Vec<String> = (1..=winner).rev().map(b).collect();
    expected.push("G".to_string());
    assert_eq!(t.chain(), expected);
    assert!((1..=depth).all(|i| !t.is_canonical(&a(i))));
}

/// ```text
/// G ─ a1 ─ … ─ a10
///   └─ b1 ─ … ─ b10 ─ b11    (rollback a10..a1, apply b1..b11)
/// ```
#[test]
fn v08_deep_reorg_depth_10() {
    deep_reorg(10);
}

/// ```text
/// G ─ a1 ─ … ─ a100
///   └─ b1 ─ … ─ b100 ─ b101  (rollback a100..a1, apply b1..b101)
/// ```
#[test]
fn v09_deep_reorg_depth_100() {
    deep_reorg(100);
}

/// ```text
/// A1 ─ B1 ─ C1 ─ D1 ─ E1     (1..3, then 7: D1 ties, 8: E1 wins back)
///    └─ B2 ─ C2 ─ D2         (4, 5, 6: D2 wins)
/// ```
#[test]
fn v10_reorg_back_and_forth() {
    let mut t = Tree::new();
    assert_eq!(t.v2("A1", PRE_GENESIS, 1), Plan::Extend);
    assert_eq!(t.v2("B1", "A1", 2), Plan::Extend);
    assert_eq!(t.v2("C1", "B1", 3), Plan::Extend);
    assert_eq!(t.v2("B2", "A1", 2), Plan::SideBranch);
    assert_eq!(t.v2("C2", "B2", 3), Plan::SideBranch);
    assert_eq!(
        t.v2("D2", "C2", 4),
        reorg(&["C1", "B1"], &["B2", "C2", "D2"])
    );
    assert_eq!(t.chain(), chain_of(&["D2", "C2", "B2", "A1"]));
    // Branch 1 catches up: a tie, the current (branch 2) tip stays.
    assert_eq!(t.v2("D1", "C1", 4), Plan::SideBranch);
    assert_eq!(t.tip(), Some("D2"));
    // Branch 1 is longer again: back to it, through the rolled-back blocks.
    assert_eq!(
        t.v2("E1", "D1", 5),
        reorg(&["D2", "C2", "B2"], &["B1", "C1", "D1", "E1"])
    );
    assert_eq!(t.chain(), chain_of(&["E1", "D1", "C1", "B1", "A1"]));
    // A duplicate of a block that was rolled back twice is still a duplicate.
    assert_eq!(t.v2("B2", "A1", 2), Plan::Duplicate);
}

/// ```text
/// A1 ─ B1 ─ C1 ─ D1      (Nakamoto)
///              └─ D2     (Nakamoto, same height as the tip: replaces D1)
/// ```
#[test]
fn v11_nakamoto_sibling_at_tip_height_replaces_tip() {
    let mut t = Tree::new();
    assert_eq!(t.nak("A1", PRE_GENESIS, 1), Plan::Extend);
    assert_eq!(t.nak("B1", "A1", 2), Plan::Extend);
    assert_eq!(t.nak("C1", "B1", 3), Plan::Extend);
    assert_eq!(t.nak("D1", "C1", 4), Plan::Extend);
    assert_eq!(t.nak("D2", "C1", 4), reorg(&["D1"], &["D2"]));
    assert_eq!(t.tip(), Some("D2"));
    assert_eq!(t.chain(), chain_of(&["D2", "C1", "B1", "A1"]));
}

/// ```text
/// A1 ─ B1 ─ C1 ─ D1      (Nakamoto)
///         └─ C2          (Nakamoto, below the tip: replaces C1 and D1 above the fork)
///              └─ D3     (Nakamoto, extends C2)
/// ```
#[test]
fn v12_nakamoto_below_tip_replaces_blocks_above_fork_point() {
    let mut t = Tree::new();
    assert_eq!(t.nak("A1", PRE_GENESIS, 1), Plan::Extend);
    assert_eq!(t.nak("B1", "A1", 2), Plan::Extend);
    assert_eq!(t.nak("C1", "B1", 3), Plan::Extend);
    assert_eq!(t.nak("D1", "C1", 4), Plan::Extend);
    assert_eq!(t.nak("C2", "B1", 3), reorg(&["D1", "C1"], &["C2"]));
    assert_eq!(t.tip(), Some("C2"));
    assert_eq!(t.chain(), chain_of(&["C2", "B1", "A1"]));
    assert_eq!(t.nak("D3", "C2", 4), Plan::Extend);
    // The old D1 coming back is only a duplicate; it does not win back.
    assert_eq!(t.nak("D1", "C1", 4), Plan::Duplicate);
    assert_eq!(t.chain(), chain_of(&["D3", "C2", "B1", "A1"]));
}

/// ```text
/// A1 ─ B1 ─ C1 ─ D1 ─ E1     (Nakamoto, in order: each one extends the tip)
/// ```
#[test]
fn v13_nakamoto_extends_normally() {
    let mut t = Tree::new();
    assert_eq!(t.nak("A1", PRE_GENESIS, 1), Plan::Extend);
    for (i, (hash, parent)) in [("B1", "A1"), ("C1", "B1"), ("D1", "C1"), ("E1", "D1")]
        .into_iter()
        .enumerate()
    {
        assert_eq!(t.nak(hash, parent, i as u64 + 2), Plan::Extend, "{hash}");
    }
    assert_eq!(t.chain(), chain_of(&["E1", "D1", "C1", "B1", "A1"]));
}

/// ```text
/// A1 ─ B1 ─ C1 ─ D1          (2.x)
///    └─ B2                   (2.x side branch)
///         └─ C3              (first Nakamoto block, on the side branch, below the tip:
///                             replaces B1..D1 with B2, C3)
/// ```
#[test]
fn v14_nakamoto_over_a_stored_side_branch() {
    let mut t = Tree::new();
    linear_abcd(&mut t);
    assert_eq!(t.v2("B2", "A1", 2), Plan::SideBranch);
    assert_eq!(
        t.nak("C3", "B2", 3),
        reorg(&["D1", "C1", "B1"], &["B2", "C3"])
    );
    assert_eq!(t.chain(), chain_of(&["C3", "B2", "A1"]));
}

/// ```text
/// A1 ─ B1 ─ ?? ─ D1      (D1 first: its parent C1 is unknown -> orphan, not stored)
/// A1 ─ B1 ─ C1 ─ D1      (C1 arrives, then D1 is delivered again and extends)
/// ```
#[test]
fn v15_orphan_unknown_parent() {
    let mut t = Tree::new();
    assert_eq!(t.v2("A1", PRE_GENESIS, 1), Plan::Extend);
    assert_eq!(t.v2("B1", "A1", 2), Plan::Extend);
    assert_eq!(t.v2("D1", "C1", 4), orphan("C1"));
    assert!(!t.is_known("D1"));
    assert_eq!(t.tip(), Some("B1"));
    // Nakamoto blocks need a known parent too.
    assert_eq!(t.nak("D9", "C9", 4), orphan("C9"));
    assert!(!t.is_known("D9"));
    assert_eq!(t.v2("C1", "B1", 3), Plan::Extend);
    assert_eq!(t.v2("D1", "C1", 4), Plan::Extend);
    assert_eq!(t.chain(), chain_of(&["D1", "C1", "B1", "A1"]));
}

/// ```text
/// A1 ─ B1 ─ C1 ─ D1
///    └─ B2 ─ ?? ─ D2 ─ E2    (C2 was stored, then lost; E2 would win but the walk
///                             down its branch hits the gap -> Orphan{missing: C2})
/// ```
#[test]
fn v16_missing_ancestor_in_the_middle_of_a_side_branch() {
    let mut t = Tree::new();
    linear_abcd(&mut t);
    assert_eq!(t.v2("B2", "A1", 2), Plan::SideBranch);
    assert_eq!(t.v2("C2", "B2", 3), Plan::SideBranch);
    assert_eq!(t.v2("D2", "C2", 4), Plan::SideBranch);
    t.forget("C2");
    assert_eq!(t.v2("E2", "D2", 5), orphan("C2"));
    assert!(!t.is_known("E2"));
    assert_eq!(t.tip(), Some("D1"));
    // The same gap stops a Nakamoto replacement below the tip.
    assert_eq!(t.nak("E9", "D2", 5), orphan("C2"));
    // Once the gap is filled, E2 wins.
    assert_eq!(t.v2("C2", "B2", 3), Plan::SideBranch);
    assert_eq!(
        t.v2("E2", "D2", 5),
        reorg(&["D1", "C1", "B1"], &["B2", "C2", "D2", "E2"])
    );
}

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
