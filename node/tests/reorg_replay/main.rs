//! Chain following end to end (issue #4), through the real HTTP observer, on
//! both store kinds:
//!
//! * the real mainnet reorgs of stacks-blockchain-api
//!   (`mainnet-reorg-scenario{1,2}.tsv`) end on the canonical blocks its
//!   tests expect;
//! * escrow effects (the real contract's prints from
//!   `tests/fixtures/escrow-simnet.json`) are rolled back and re-applied
//!   across a reorg and back again, with the exact event sequence;
//! * a block with an unknown parent is held, shown on `/health`, and
//!   connects when its ancestry arrives;
//! * re-delivered blocks are acknowledged as duplicates and change nothing.
//!
//! The canonical chain is always checked the same way: walk the parent links
//! down from the tip; exactly the blocks on that path are canonical.

#[path = "../common/mod.rs"]
mod common;

use std::collections::HashSet;

use common::{read_tsv, snapshot, start_node, Snapshot, Stores, TestNode, SCENARIO};
use nexus_core::domain::PaymentEvent;
use nexus_core::simnet::{block_entries, block_envelope, index_hash, RecordedTx, Scenario};
use nexus_store::BlockRecord;
use serde_json::{json, Value};

mod checks;
mod duplicates;
mod escrow_blocks;
mod escrow_reorg;
mod gaps;
mod mainnet;

use checks::*;
use duplicates::*;
use escrow_blocks::*;
use escrow_reorg::*;
use gaps::*;
use mainnet::*;

// ---------------------------------------------------------------------------
// The tests: every case on both deployments.

async fn escrow_reorg_announced(stores: Stores) {
    escrow_reorg_and_back(stores, true).await;
}

async fn escrow_reorg_unannounced(stores: Stores) {
    escrow_reorg_and_back(stores, false).await;
}

common::both_stores!(
    mainnet_reorg_scenario1,
    mainnet_reorg_scenario2,
    escrow_reorg_announced,
    escrow_reorg_unannounced,
    gap_is_held_then_connects,
    duplicates_change_nothing,
    last_block_height_metric_is_the_tip,
    held_branch_longer_than_tip_wins,
    held_siblings_longest_wins,
);
