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

mod common;

use std::collections::HashSet;

use common::{read_tsv, snapshot, start_node, Snapshot, Stores, TestNode, SCENARIO};
use nexus_core::domain::PaymentEvent;
use nexus_core::simnet::{block_entries, block_envelope, index_hash, RecordedTx, Scenario};
use nexus_store::BlockRecord;
use serde_json::{json, Value};

// ---------------------------------------------------------------------------
// Chain checks

/// Check the canonical flags against the parent links, and `/health` against
/// the tip. Returns the canonical chain, tip first, down to the lowest block
/// we hold on it.
async fn assert_canonical_chain(node: &TestNode) -> Vec<BlockRecord> {
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
async fn block(node: &TestNode, hash: &str) -> BlockRecord {
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
async fn chain_state(node: &TestNode) -> (Vec<BlockRecord>, Option<BlockRecord>, Vec<BlockRecord>) {
    let history = node.app().ingestor.history();
    (
        history.recent_blocks(1000).await.expect("recent blocks"),
        history.tip().await.expect("tip"),
        history.gaps().await.expect("gaps"),
    )
}

// ---------------------------------------------------------------------------
// 1. The real mainnet reorgs

/// Scenario 1, h45: the sibling that h46 builds on.
const S1_H45_BLOCK_HASH: &str =
    "0x4d27059a847f3c3f6dbbd43343d11981b67409a2710597c6cb1814945cfc4d48";
const S1_H45: &str = "0x9cb73562d8eabb0cd991f23eac7de8402de27408e40b9827b33854f54e0a46f5";
/// Scenario 1, h45: the later sibling, never built on.
const S1_H45_ORPHAN: &str = "0x5b3b7490ce5ad15777164ebaae194b01b59f6dd876bca2ca899f29cd797dfa62";
/// Scenario 1, h47: the first of two siblings (first seen wins the tie).
const S1_H47: &str = "0x4f6dc8e302792fe2e3c5b66ae29db7d6170baa0e2120fb8f7b3c3956bbc3901c";
const S1_H47_SIBLING: &str = "0x68fb02f8c3b14fee8e8d26f1985439c67d07d999f9831a3a258bdf912ac361df";
/// Scenario 1, h30: arrives first, is canonical until h31 builds on its sibling.
const S1_H30_ORPHAN: &str = "0x65549af908664382673292297d6fad1353b23b8ebff8e69d4b6bef662c621f46";
const S1_H30: &str = "0x101dc10b0ffda670c34c603ac0ef3f251c3f5b5ca310ec624fb9b32d19d5836c";
/// Scenario 2, h2: arrives second; h3 builds on it.
const S2_H2_BLOCK_HASH: &str = "0x8f77bd15d37346543c64340e79b891b48628e36fcde9ae27d4e5e3f3992b5c8b";
const S2_H2: &str = "0x9f79f0a8ec99fea9e49e7324c1802c2282ed5c435c1752503f3e8678804f4f68";
/// Scenario 2, h2: arrives first, orphaned by h3.
const S2_H2_ORPHAN: &str = "0xd4e86b872a4799fe275f4a759257400cadc60b3e6b9382bd1ff2a1c7473aff7a";
const S2_H4: &str = "0x68152e9344939b515e1c10c35eb6d96b14caf79bac02d81173da0d8c4a5369c1";

/// POST every line of `file` in order; every answer 200. Returns the
/// answers to `/new_block`s.
async fn replay(node: &TestNode, file: &str) -> Vec<Value> {
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
async fn replay_again_changes_nothing(node: &TestNode, file: &str) {
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
async fn mainnet_reorg_scenario1(stores: Stores) {
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
async fn mainnet_reorg_scenario2(stores: Stores) {
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

// ---------------------------------------------------------------------------
// Escrow blocks from the recorded scenario

/// p1 of the recorded scenario: its create and its claim, as the real
/// contract ran them.
struct P1 {
    contract_id: String,
    id: String,
    create: RecordedTx,
    claim: RecordedTx,
}

impl P1 {
    fn load() -> P1 {
        let scenario = Scenario::parse(SCENARIO).expect("fixture");
        let find = |function: &str, step: &str| {
            scenario
                .transactions
                .iter()
                .find(|t| t.function == function && t.step.contains(step) && t.success)
                .unwrap_or_else(|| panic!("fixture: no successful {function} {step:?}"))
                .clone()
        };
        let create = find("create-payment", "(p1)");
        let claim = find("claim-payment", "claims p1");
        // The id is create-payment's first argument.
        let raw: Value = serde_json::from_str(SCENARIO).expect("fixture");
        let id = raw["transactions"]
            .as_array()
            .expect("transactions")
            .iter()
            .find(|t| t["txid"] == create.txid.as_str())
            .and_then(|t| t["args"][0]["repr"].as_str())
            .expect("create-payment's id argument")
            .to_string();
        P1 {
            contract_id: scenario.contract_id.clone(),
            id,
            create,
            claim,
        }
    }

    /// `/new_block` at `height` on `fork` (parent on `parent_fork`) mining `mined`
    /// with their recorded results and events (the prints' real `raw_value`s).
    fn block(&self, fork: &str, height: u64, parent_fork: &str, mined: &[&RecordedTx]) -> String {
        let (txs, events) = block_entries(&self.contract_id, mined);
        block_envelope(fork, height, parent_fork, &txs, &events).to_string()
    }

    /// `/new_block` of an empty block.
    fn empty(&self, fork: &str, height: u64, parent_fork: &str) -> String {
        self.block(fork, height, parent_fork, &[])
    }

    /// `/new_mempool_tx` announcing the create.
    fn announce(&self) -> String {
        json!([self.create.tx_hex]).to_string()
    }
}

/// POST `body` to `path` (200 required); the answer and the events it committed.
async fn deliver(node: &TestNode, path: &str, body: String) -> (Value, Vec<PaymentEvent>) {
    let history = node.app().ingestor.history();
    let before = history.last_seq().await.expect("last_seq");
    let answer = node.post_ok(path, body).await;
    let events = history.events_since(before, 10_000).await.expect("events");
    assert_eq!(answer["events"], events.len(), "{answer}");
    (answer, events)
}

/// Deliver a block that must change no payment.
async fn quiet_block(node: &TestNode, body: String) -> Value {
    let (answer, events) = deliver(node, "/new_block", body).await;
    assert!(events.is_empty(), "unexpected events: {events:#?}");
    answer
}

/// The part of a payment event a test can predict.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Ev {
    seq: u64,
    event_type: String,
    status: String,
    txid: Option<String>,
    /// `(height, index_block_hash)` of the event's block.
    block: Option<(u64, String)>,
    confirmations: u64,
    is_final: bool,
    /// `(orphaned index_block_hash, its height, status returned to)`.
    reverted: Option<(String, u64, String)>,
}

impl Ev {
    fn of(e: &PaymentEvent) -> Ev {
        Ev {
            seq: e.seq,
            event_type: e.event_type.as_str().to_string(),
            status: e.status.as_str().to_string(),
            txid: e.txid.clone(),
            block: e
                .block_height
                .map(|h| (h, e.index_block_hash.clone().unwrap_or_default())),
            confirmations: e.confirmations,
            is_final: e.is_final,
            reverted: e.reverted.as_ref().map(|r| {
                (
                    r.index_block_hash.clone(),
                    r.block_height,
                    r.status.as_str().to_string(),
                )
            }),
        }
    }

    fn submitted(seq: u64, txid: &str) -> Ev {
        Ev {
            seq,
            event_type: "payment:submitted".into(),
            status: "submitted".into(),
            txid: Some(txid.into()),
            block: None,
            confirmations: 0,
            is_final: false,
            reverted: None,
        }
    }

    /// A transition mined at `fork`'s `height`, emitted with the tip
    /// `confirmations - 1` blocks above it.
    fn mined(seq: u64, kind: &str, txid: &str, fork: &str, height: u64, confirmations: u64) -> Ev {
        Ev {
            seq,
            event_type: format!("payment:{kind}"),
            status: kind.into(),
            txid: Some(txid.into()),
            block: Some((height, index_hash(fork, height))),
            confirmations,
            is_final: false,
            reverted: None,
        }
    }

    /// `payment:final` for the transition to `status` mined at `fork`'s `height`.
    fn final_(seq: u64, status: &str, txid: &str, fork: &str, height: u64) -> Ev {
        Ev {
            seq,
            event_type: "payment:final".into(),
            status: status.into(),
            txid: Some(txid.into()),
            block: Some((height, index_hash(fork, height))),
            confirmations: 6,
            is_final: true,
            reverted: None,
        }
    }

    /// `payment:reverted`: the transition `txid` in `fork`'s `height` was
    /// orphaned and the payment went back to `status`.
    fn reverted(seq: u64, status: &str, txid: &str, fork: &str, height: u64) -> Ev {
        Ev {
            seq,
            event_type: "payment:reverted".into(),
            status: status.into(),
            txid: Some(txid.into()),
            block: None,
            confirmations: 0,
            is_final: false,
            reverted: Some((index_hash(fork, height), height, status.into())),
        }
    }
}

fn evs(events: &[PaymentEvent]) -> Vec<Ev> {
    events.iter().map(Ev::of).collect()
}

/// The state store equals history, seqs are gap-free, and the log is `expected`.
async fn assert_log(node: &TestNode, p1: &P1, expected: &[Ev]) -> Snapshot {
    let snap = snapshot(node).await;
    snap.assert_consistent();
    assert_eq!(evs(&snap.events), expected, "the whole event log");
    assert!(snap
        .events
        .iter()
        .all(|e| e.payment_id.to_string() == p1.id));
    snap
}

// ---------------------------------------------------------------------------
// 2. An escrow reorg, and back

/// p1 is created at main h3 and claimed at main h5; `alt` forks at h2 and
/// mines the create at h4' without the claim. alt wins at h6', becomes final
/// at h9', then main wins again at h10.
///
/// ```text
///            ┌─ main3 (create) ─ main4 ─ main5 (claim) ─ main6 ─ … ─ main10 ◄ tip at the end
/// main1 ─ main2
///            └─ alt3 ─ alt4 (create) ─ alt5 ─ alt6 ◄ reorg ─ … ─ alt9 (create final)
/// ```
///
/// With `announce`, the create was in the mempool first, so an orphaned
/// create goes back to `submitted`; without, to `pending`.
async fn escrow_reorg_and_back(stores: Stores, announce: bool) {
    let p1 = P1::load();
    let node = start_node(stores, |c| c.contract_id = p1.contract_id.clone()).await;
    let mut bus = node.app().bus.subscribe();
    let (create, claim) = (p1.create.txid.as_str(), p1.claim.txid.as_str());
    let back_to = if announce { "submitted" } else { "pending" };
    let mut log = Vec::new();

    // main: h1..h5.
    quiet_block(&node, p1.empty("main", 1, "main")).await;
    quiet_block(&node, p1.empty("main", 2, "main")).await;
    if announce {
        let (_, e) = deliver(&node, "/new_mempool_tx", p1.announce()).await;
        assert_eq!(evs(&e), [Ev::submitted(1, create)]);
        log.extend(evs(&e));
    }
    let s = log.len() as u64;
    let (_, e) = deliver(
        &node,
        "/new_block",
        p1.block("main", 3, "main", &[&p1.create]),
    )
    .await;
    assert_eq!(
        evs(&e),
        [Ev::mined(s + 1, "confirmed", create, "main", 3, 1)]
    );
    log.extend(evs(&e));
    quiet_block(&node, p1.empty("main", 4, "main")).await;
    let (_, e) = deliver(
        &node,
        "/new_block",
        p1.block("main", 5, "main", &[&p1.claim]),
    )
    .await;
    assert_eq!(evs(&e), [Ev::mined(s + 2, "claimed", claim, "main", 5, 1)]);
    log.extend(evs(&e));

    // alt: h3'..h5' lose (not longer than main), h6' wins.
    quiet_block(&node, p1.empty("alt", 3, "main")).await;
    quiet_block(&node, p1.block("alt", 4, "alt", &[&p1.create])).await;
    quiet_block(&node, p1.empty("alt", 5, "alt")).await;
    assert_eq!(
        assert_canonical_chain(&node).await[0]
            .block
            .index_block_hash,
        index_hash("main", 5)
    );
    let (answer, e) = deliver(&node, "/new_block", p1.empty("alt", 6, "alt")).await;
    assert_eq!(answer["duplicate"], false);
    assert_eq!(
        evs(&e),
        [
            Ev::reverted(s + 3, "confirmed", claim, "main", 5),
            Ev::reverted(s + 4, back_to, create, "main", 3),
            Ev::mined(s + 5, "confirmed", create, "alt", 4, 3),
        ],
        "rollback of main5..main3 (tip first), then alt3..alt6"
    );
    log.extend(evs(&e));
    let path = assert_canonical_chain(&node).await;
    let expected_path: Vec<String> = [
        ("alt", 6),
        ("alt", 5),
        ("alt", 4),
        ("alt", 3),
        ("main", 2),
        ("main", 1),
    ]
    .iter()
    .map(|(f, h)| index_hash(f, *h))
    .collect();
    let got: Vec<String> = path
        .iter()
        .map(|b| b.block.index_block_hash.clone())
        .collect();
    assert_eq!(got, expected_path);
    let p = node
        .app()
        .ingestor
        .state()
        .get(&p1.id.parse().unwrap())
        .await
        .unwrap()
        .expect("p1");
    assert_eq!(p.status.as_str(), "confirmed");
    assert_eq!(
        p.created_in.as_ref().map(|c| c.index_block_hash.clone()),
        Some(index_hash("alt", 4))
    );
    assert!(p.settled_in.is_none() && !p.is_final, "{p:?}");
    assert_log(&node, &p1, &log).await;

    // alt h7', h8': nothing; h9': the create at h4' is 6 deep.
    quiet_block(&node, p1.empty("alt", 7, "alt")).await;
    quiet_block(&node, p1.empty("alt", 8, "alt")).await;
    let (_, e) = deliver(&node, "/new_block", p1.empty("alt", 9, "alt")).await;
    assert_eq!(evs(&e), [Ev::final_(s + 6, "confirmed", create, "alt", 4)]);
    log.extend(evs(&e));

    // main h6..h9 lose (not longer than alt), h10 wins: the corrections again.
    for h in 6..=9 {
        quiet_block(&node, p1.empty("main", h, "main")).await;
    }
    let (_, e) = deliver(&node, "/new_block", p1.empty("main", 10, "main")).await;
    assert_eq!(
        evs(&e),
        [
            Ev::reverted(s + 7, back_to, create, "alt", 4),
            Ev::mined(s + 8, "confirmed", create, "main", 3, 8),
            Ev::mined(s + 9, "claimed", claim, "main", 5, 6),
            Ev::final_(s + 10, "claimed", claim, "main", 5),
        ],
        "rollback of alt9..alt3, then main3..main10; the claim is 6 deep at once"
    );
    log.extend(evs(&e));
    let path = assert_canonical_chain(&node).await;
    let got: Vec<String> = path
        .iter()
        .map(|b| b.block.index_block_hash.clone())
        .collect();
    let expected_path: Vec<String> = (1..=10).rev().map(|h| index_hash("main", h)).collect();
    assert_eq!(got, expected_path);
    assert_eq!(node.metric("nexus_reorgs_total").await, 2.0);

    // The API: the final state and the whole history.
    let (code, body) = node.get(&format!("/api/payments/{}", p1.id)).await;
    assert_eq!(code, 200, "{body}");
    let view = &body["payment"];
    assert_eq!(view["status"], "claimed", "{view}");
    assert_eq!(view["final"], true, "{view}");
    assert_eq!(view["confirmations"], 8, "{view}");
    assert_eq!(
        view["created_in"]["index_block_hash"],
        index_hash("main", 3)
    );
    assert_eq!(
        view["settled_in"]["index_block_hash"],
        index_hash("main", 5)
    );
    let api_events: Vec<PaymentEvent> =
        serde_json::from_value(body["events"].clone()).expect("events");
    assert_eq!(evs(&api_events), log, "GET /api/payments/{{id}} events");

    let snap = assert_log(&node, &p1, &log).await;
    // Subscribers saw every correction, in order.
    let mut published = Vec::new();
    while let Ok(e) = bus.try_recv() {
        published.push(e);
    }
    assert_eq!(published, snap.events, "bus == event log");
    node.stop().await;
}

// ---------------------------------------------------------------------------
// 3. Gaps

/// Blocks whose parent is unknown are held and shown on `/health`; when the
/// missing ancestor arrives, the held blocks connect, with their escrow effects.
///
/// ```text
/// main1 ─ main2 ─ [main3] ─ main4 (create) ─ main5 (claim)
/// delivered: 1, 2, 5 (gap: 4 missing), 4 (gap: 3 missing), 3 (all connect)
/// ```
async fn gap_is_held_then_connects(stores: Stores) {
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
async fn held_branch_longer_than_tip_wins(stores: Stores) {
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
async fn held_siblings_longest_wins(stores: Stores) {
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
async fn last_block_height_metric_is_the_tip(stores: Stores) {
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

// ---------------------------------------------------------------------------
// 4. Duplicates

/// Re-delivering a side-branch block, a block in the middle of the chain, the
/// tip and a held block: 200, `duplicate: true`, no event, nothing changes.
///
/// ```text
/// main1 ─ main2 ─┬─ main3 (create) ─ main4 ─ main5 (claim) ◄ tip
///                └─ alt3                      [main7: held, main6 missing]
/// ```
async fn duplicates_change_nothing(stores: Stores) {
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

// ---------------------------------------------------------------------------

async fn escrow_reorg_announced(stores: Stores) {
    escrow_reorg_and_back(stores, true).await;
}

async fn escrow_reorg_unannounced(stores: Stores) {
    escrow_reorg_and_back(stores, false).await;
}

macro_rules! both_stores {
    ($($name:ident),* $(,)?) => {
        $(
            mod $name {
                #[tokio::test]
                async fn embedded() {
                    super::$name(super::Stores::Embedded).await;
                }
                #[tokio::test]
                async fn production() {
                    super::$name(super::Stores::Production).await;
                }
            }
        )*
    };
}

both_stores!(
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
