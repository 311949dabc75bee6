//! Nakamoto fork choice (a sibling at or below the tip replaces what is above the fork point), and orphans.

use super::*;

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
