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

// Epoch 2.x fork choice: extension, duplicates, ties, siblings, deep and repeated reorgs.
mod epoch2;
// Nakamoto fork choice (a sibling at or below the tip replaces what is above the fork point), and orphans.
mod nakamoto;
// The real mainnet reorgs, replayed from captured stacks-blockchain-api TSVs.
mod mainnet;

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
