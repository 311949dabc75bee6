//! Epoch 2.x fork choice: extension, duplicates, ties, siblings, deep and repeated reorgs.

use super::*;

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
