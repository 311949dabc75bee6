//! Property: after every `/new_block` delivery, the stored payments equal the
//! state computed from scratch on the current canonical chain.
//!
//! A case is a random tree of pre-Nakamoto blocks (1 to 200, most of them
//! small; each new block hangs off a block within [`MAX_FORK`] of the deepest
//! one, so reorgs are up to ~10 blocks deep) carrying escrow prints that are
//! valid whichever branch wins: creates of fresh payment ids (or the same
//! create re-mined on another branch), and claims/refunds of payments created
//! on the block's own ancestry (also possibly re-mined). The blocks go through
//! the real ingest path (`Ingestor::deliver(Route::NewBlock, ..)`) in a random
//! parents-first order, with random re-deliveries. After each delivery:
//!
//! * the tip is the highest delivered block, the first delivered on a tie
//!   (the longest-chain rule of `nexus_core::chain`);
//! * every payment in the state store matches the oracle: `apply_block`
//!   folded over the tip's ancestry from the root, then `finalize` at the
//!   tip; a payment the oracle does not know is absent or `pending` off-chain;
//! * the delivery's on-chain events name canonical blocks, and its
//!   `payment:reverted` events name blocks it has just made non-canonical.
//!
//! At the end of a case: `seq` is gap-free in history and on the bus, every
//! `payment:reverted` names a block that left the canonical chain, the stored
//! canonical flags match, and history's payments equal the state store's.
//!
//! * `memory_and_sqlite`: `MemoryState` + in-memory SQLite, `PROPTEST_CASES`
//!   cases (default [`MAIN_CASES`]).
//! * `redis_and_postgres`: the real Redis (own key prefix per case) and a
//!   fresh PostgreSQL database per case, `NEXUS_PROPTEST_SERVICE_CASES` cases
//!   (default [`SERVICE_CASES`]); `NEXUS_TEST_REDIS_URL`, `NEXUS_TEST_PG_URL`.
//!
//! Seed with `PROPTEST_RNG_SEED`; a failure shrinks to a small tree, printed
//! block by block (`b3 h2 <- b1: claim p0 (tx4)`) with the delivery order.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::sync::{Arc, Mutex};

use clarity::vm::types::{PrincipalData, TupleData, Value};
use clarity::vm::ClarityName;
use nexus_core::clock::FixedClock;
use nexus_core::decode::{decode_block, ContractId};
use nexus_core::domain::{
    ChainPos, EventSource, EventType, Payment, PaymentEvent, PaymentId, PaymentStatus,
};
use nexus_core::machine::{apply_block, finalize, Ctx};
use nexus_core::observer::NewBlock;
use nexus_core::simnet::{block_envelope, index_hash, print_entry, tx_entry};
use nexus_indexer::ingest::{EventBus, Ingestor, Route};
use nexus_store::memory::MemoryState;
use nexus_store::postgres::PgHistory;
use nexus_store::redis::RedisState;
use nexus_store::sqlite::SqliteHistory;
use nexus_store::{History, StateStore};
use nexus_testkit::pg::PgTestDb;
use proptest::collection::vec;
use proptest::prelude::*;
use proptest::test_runner::TestCaseError;

const CONTRACT: &str = "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM.x402-nexus-escrow";
const PEOPLE: [&str; 3] = [
    "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM",
    "ST2CY5V39NHDPWSXMW9QDT3HC3GD6Q6XX4CFRK9AG",
    "ST2JHG361ZXG51QTKY2NQCVBPPRRE2KZB1HR05NNC",
];
const NOW: &str = "2025-01-01T00:00:00.000Z";
/// A new block attaches to a block at most this far below the deepest one.
const MAX_FORK: u64 = 10;
/// `PROPTEST_CASES` default for the in-process run: the 10,000 cases,
/// about 100 s of CPU in a debug build (~0.9 ms per delivery). Lower it
/// locally (`PROPTEST_CASES=500`) for a quick loop.
const MAIN_CASES: u32 = 10_000;
/// `NEXUS_PROPTEST_SERVICE_CASES` default for the Redis + PostgreSQL run.
const SERVICE_CASES: u32 = 50;

// ---------------------------------------------------------------------------
// Generation: raw numbers, interpreted into a valid case. Every raw value is
// meaningful whatever the others are, so proptest shrinks freely; zero means
// "the simplest choice" (extend the last block, fresh create, first
// deliverable block), so shrunk cases read as straight chains.

#[derive(Debug, Clone)]
struct RawBlock {
    /// `% 4 == 3`: attach to a random block within reach; else to the last one made.
    parent: u8,
    /// `(kind, pick)` per transaction; see [`Case::build`].
    txs: Vec<(u8, u16)>,
}

fn raw_block() -> impl Strategy<Value = RawBlock> {
    let txs = prop_oneof![
        3 => Just(Vec::new()),
        2 => vec((any::<u8>(), any::<u16>()), 1..4),
    ];
    (any::<u8>(), txs).prop_map(|(parent, txs)| RawBlock { parent, txs })
}

fn case_strategy() -> impl Strategy<Value = Case> {
    // Skewed to small trees: most bugs need few blocks, and the big ones are costly.
    let blocks = prop_oneof![
        85 => vec(raw_block(), 1..10),
        13 => vec(raw_block(), 10..50),
        2 => vec(raw_block(), 50..=200),
    ];
    (
        blocks,
        vec(any::<u16>(), 0..200),
        vec((any::<u16>(), any::<u16>()), 0..4),
        1u64..=12,
    )
        .prop_map(|(blocks, order, dups, depth)| Case::build(&blocks, &order, &dups, depth))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Create,
    Claim,
    Refund,
}

/// One escrow transaction: its print names `payment`, its txid is `txid(tx)`.
#[derive(Debug, Clone, Copy)]
struct Op {
    kind: Kind,
    payment: usize,
    tx: usize,
}

#[derive(Debug, Clone)]
struct Node {
    parent: Option<usize>,
    height: u64,
    ops: Vec<Op>,
}

/// A block tree, the order it is delivered in and the confirmation depth.
#[derive(Clone)]
struct Case {
    nodes: Vec<Node>,
    /// Node indices; every node appears after its parent, some more than once.
    deliveries: Vec<usize>,
    depth: u64,
    payments: usize,
}

impl Case {
    fn build(raw: &[RawBlock], order: &[u16], dups: &[(u16, u16)], depth: u64) -> Case {
        let mut nodes: Vec<Node> = Vec::with_capacity(raw.len());
        // Per node, on its ancestry (itself included): payment -> its create's tx, and settled payments.
        let mut created: Vec<BTreeMap<usize, usize>> = Vec::new();
        let mut settled: Vec<BTreeSet<usize>> = Vec::new();
        // Every create and settlement made so far, anywhere: re-mining candidates.
        let mut creates: Vec<Op> = Vec::new();
        let mut settles: Vec<Op> = Vec::new();
        let (mut payments, mut txs) = (0, 0);
        for (i, rb) in raw.iter().enumerate() {
            let parent = match i {
                0 => None,
                _ if rb.parent % 4 == 3 => {
                    let deepest = nodes.iter().map(|n| n.height).max().unwrap_or(0);
                    let reach: Vec<usize> = (0..i)
                        .filter(|&j| nodes[j].height + MAX_FORK >= deepest)
                        .collect();
                    Some(reach[usize::from(rb.parent / 4) % reach.len()])
                }
                // The last block made is always within reach of the deepest.
                _ => Some(i - 1),
            };
            let height = parent.map_or(1, |p| nodes[p].height + 1);
            let (mut c, mut s) = match parent {
                Some(p) => (created[p].clone(), settled[p].clone()),
                None => Default::default(),
            };
            let mut ops = Vec::new();
            for &(kind, pick) in &rb.txs {
                let pick = usize::from(pick);
                let open: Vec<usize> = c.keys().filter(|p| !s.contains(p)).copied().collect();
                let remine_create: Vec<Op> = creates
                    .iter()
                    .filter(|o| !c.contains_key(&o.payment))
                    .copied()
                    .collect();
                let remine_settle: Vec<Op> = settles
                    .iter()
                    .filter(|o| open.contains(&o.payment))
                    .copied()
                    .collect();
                let op = match kind % 8 {
                    3 if !remine_create.is_empty() => remine_create[pick % remine_create.len()],
                    4..=6 if !open.is_empty() => {
                        txs += 1;
                        Op {
                            kind: if kind % 8 == 6 {
                                Kind::Refund
                            } else {
                                Kind::Claim
                            },
                            payment: open[pick % open.len()],
                            tx: txs - 1,
                        }
                    }
                    7 if !remine_settle.is_empty() => remine_settle[pick % remine_settle.len()],
                    _ => {
                        payments += 1;
                        txs += 1;
                        Op {
                            kind: Kind::Create,
                            payment: payments - 1,
                            tx: txs - 1,
                        }
                    }
                };
                match op.kind {
                    Kind::Create => {
                        c.insert(op.payment, op.tx);
                        if !creates.iter().any(|o| o.tx == op.tx) {
                            creates.push(op);
                        }
                    }
                    Kind::Claim | Kind::Refund => {
                        s.insert(op.payment);
                        if !settles.iter().any(|o| o.tx == op.tx) {
                            settles.push(op);
                        }
                    }
                }
                ops.push(op);
            }
            created.push(c);
            settled.push(s);
            nodes.push(Node {
                parent,
                height,
                ops,
            });
        }

        let mut children: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
        for (i, n) in nodes.iter().enumerate() {
            if let Some(p) = n.parent {
                children[p].push(i);
            }
        }
        let mut frontier = vec![0];
        let mut first: Vec<usize> = Vec::with_capacity(nodes.len());
        let mut deliveries = Vec::new();
        for k in 0..nodes.len() {
            let pick = usize::from(order.get(k).copied().unwrap_or(0)) % frontier.len();
            let b = frontier.remove(pick);
            first.push(b);
            deliveries.push(b);
            frontier.extend(&children[b]);
            for &(at, which) in dups {
                if usize::from(at) % nodes.len() == k {
                    deliveries.push(first[usize::from(which) % first.len()]);
                }
            }
        }
        Case {
            nodes,
            deliveries,
            depth,
            payments,
        }
    }
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "confirmation depth {}", self.depth)?;
        for (i, n) in self.nodes.iter().enumerate() {
            let parent = n.parent.map_or("genesis".to_string(), |p| format!("b{p}"));
            let ops: Vec<String> = n
                .ops
                .iter()
                .map(|o| format!("{:?} p{} (tx{})", o.kind, o.payment, o.tx).to_lowercase())
                .collect();
            writeln!(f, "  b{i} h{} <- {parent}: {}", n.height, ops.join(", "))?;
        }
        let order: Vec<String> = self.deliveries.iter().map(|b| format!("b{b}")).collect();
        write!(f, "delivered: {}", order.join(" "))
    }
}

// ---------------------------------------------------------------------------
// Envelopes and the oracle.

fn contract() -> ContractId {
    CONTRACT.parse().expect("contract id")
}

fn payment_id(n: usize) -> PaymentId {
    let mut id = [0x5a; 32];
    id[24..].copy_from_slice(&(n as u64).to_be_bytes());
    PaymentId(id)
}

fn txid(n: usize) -> String {
    format!("0x{:064x}", 0x7700_0000_0000u64 + n as u64)
}

fn label(node: usize) -> String {
    format!("n{node}")
}

/// The contract's print for `op` mined at `height` (contracts/EVENTS.md).
fn print_hex(op: &Op, height: u64) -> String {
    let name = |s: &str| ClarityName::try_from(s.to_string()).expect("clarity name");
    let person = |i: usize| {
        Value::Principal(PrincipalData::parse(PEOPLE[i % PEOPLE.len()]).expect("principal"))
    };
    let event = match op.kind {
        Kind::Create => "payment-created",
        Kind::Claim => "payment-claimed",
        Kind::Refund => "payment-refunded",
    };
    let p = op.payment;
    let tuple = TupleData::from_data(vec![
        (
            name("event"),
            Value::string_ascii_from_bytes(event.as_bytes().to_vec()).expect("ascii"),
        ),
        (
            name("payment-id"),
            Value::buff_from(payment_id(p).0.to_vec()).expect("buff"),
        ),
        (name("sender"), person(p)),
        (name("recipient"), person(p + 1)),
        (name("amount"), Value::UInt(1_000 + p as u128)),
        (
            name("memo"),
            Value::buff_from(vec![p as u8; p % 3]).expect("buff"),
        ),
        (name("expires-at"), Value::UInt(500)),
        (name("block-height"), Value::UInt(u128::from(height))),
    ])
    .expect("tuple");
    let bytes = Value::Tuple(tuple).serialize_to_vec().expect("serialize");
    format!("0x{}", hex::encode(bytes))
}

/// A `/new_block` body for `node`. Its index hash is unique per node:
/// `block_envelope` derives it from the fork label (`n{node}`) and height.
fn envelope(case: &Case, node: usize) -> Vec<u8> {
    let n = &case.nodes[node];
    let mut txs = Vec::new();
    let mut events = Vec::new();
    for (k, op) in n.ops.iter().enumerate() {
        let id = txid(op.tx);
        // `(ok true)`. No raw_tx: a successful call is decoded from its print.
        let mut tx = tx_entry(&id, k as u32, true, "", "0x0703");
        tx.as_object_mut().expect("object").remove("raw_tx");
        txs.push(tx);
        events.push(print_entry(
            &id,
            k as u32,
            CONTRACT,
            &print_hex(op, n.height),
        ));
    }
    let parent = n.parent.map_or("genesis".to_string(), label);
    let body = block_envelope(&label(node), n.height, &parent, &txs, &events);
    serde_json::to_vec(&body).expect("json")
}

fn ctx(tip_height: u64) -> Ctx {
    Ctx {
        tip_height,
        now: NOW.to_string(),
        source: EventSource::Observer,
    }
}

/// Everything about a case computed without the ingest path.
struct Oracle {
    bodies: Vec<Vec<u8>>,
    hashes: Vec<String>,
    by_hash: HashMap<String, usize>,
    /// Payments after applying each node's whole ancestry, root first (not finalized).
    after: Vec<HashMap<PaymentId, Payment>>,
    pids: Vec<PaymentId>,
}

impl Oracle {
    fn new(case: &Case) -> Result<Oracle, TestCaseError> {
        let contract = contract();
        let mut o = Oracle {
            bodies: Vec::new(),
            hashes: Vec::new(),
            by_hash: HashMap::new(),
            after: Vec::new(),
            pids: (0..case.payments).map(payment_id).collect(),
        };
        for (i, n) in case.nodes.iter().enumerate() {
            let body = envelope(case, i);
            let nb: NewBlock = serde_json::from_slice(&body).expect("own envelope parses");
            let decoded = decode_block(&nb, &contract);
            prop_assert!(decoded.problems.is_empty(), "b{i}: {:?}", decoded.problems);
            prop_assert_eq!(decoded.txs.len(), n.ops.len(), "b{}: escrow txs decoded", i);
            let hash = index_hash(&label(i), n.height);
            prop_assert_eq!(&decoded.block.index_block_hash, &hash);
            let mut state = n.parent.map(|p| o.after[p].clone()).unwrap_or_default();
            apply_block(&mut state, &decoded, &ctx(n.height));
            o.after.push(state);
            o.by_hash.insert(hash.clone(), i);
            o.hashes.push(hash);
            o.bodies.push(body);
        }
        Ok(o)
    }

    fn node(&self, hash: &str) -> Result<usize, TestCaseError> {
        self.by_hash
            .get(hash)
            .copied()
            .ok_or_else(|| TestCaseError::fail(format!("unknown block {hash}")))
    }
}

/// Which nodes are on the chain ending at `tip`.
fn chain_of(case: &Case, tip: usize) -> Vec<bool> {
    let mut on = vec![false; case.nodes.len()];
    let mut at = Some(tip);
    while let Some(b) = at {
        on[b] = true;
        at = case.nodes[b].parent;
    }
    on
}

/// What the property compares of a payment record.
#[derive(Debug, PartialEq, Eq)]
struct View {
    status: PaymentStatus,
    created_in: Option<ChainPos>,
    settled_in: Option<ChainPos>,
    is_final: bool,
    sender: Option<String>,
    recipient: Option<String>,
    amount: Option<String>,
}

impl View {
    fn of(p: &Payment) -> View {
        View {
            status: p.status,
            created_in: p.created_in.clone(),
            settled_in: p.settled_in.clone(),
            is_final: p.is_final,
            sender: p.sender.clone(),
            recipient: p.recipient.clone(),
            amount: p.amount.clone(),
        }
    }
}

/// Records the `seq` of every published event.
#[derive(Default)]
struct RecordingBus(Mutex<Vec<u64>>);

impl EventBus for RecordingBus {
    fn publish(&self, event: &PaymentEvent) {
        self.0.lock().expect("bus lock").push(event.seq);
    }
}

fn io<T, E: fmt::Display>(r: Result<T, E>, what: &str) -> Result<T, TestCaseError> {
    r.map_err(|e| TestCaseError::fail(format!("{what}: {e}")))
}

// ---------------------------------------------------------------------------
// The property.

async fn check_case(
    case: &Case,
    state: Arc<dyn StateStore>,
    history: Arc<dyn History>,
) -> Result<(), TestCaseError> {
    let oracle = Oracle::new(case)?;
    let bus = Arc::new(RecordingBus::default());
    let ingestor = Ingestor::start(
        state.clone(),
        history.clone(),
        bus.clone(),
        Arc::new(FixedClock(NOW.to_string())),
        contract(),
        EventSource::Observer,
    )
    .await;
    let ingestor = io(ingestor, "start")?.with_confirmation_depth(case.depth);

    let n = case.nodes.len();
    let mut seen = vec![false; n];
    // Payments of the blocks delivered so far: the only ones the stores can know.
    let mut known = vec![false; case.payments];
    let mut pids: Vec<PaymentId> = Vec::new();
    let mut best: Option<usize> = None;
    let mut canon = vec![false; n];
    // Was canonical after some delivery and not after a later one.
    let mut left_chain = vec![false; n];
    for (step, &b) in case.deliveries.iter().enumerate() {
        let out = io(
            ingestor.deliver(Route::NewBlock, &oracle.bodies[b]).await,
            "deliver",
        )?;
        if seen[b] {
            prop_assert!(
                out.duplicate && out.events.is_empty(),
                "step {}: re-delivered b{} changed something: {:?}",
                step,
                b,
                out.events
            );
        } else {
            seen[b] = true;
            for op in &case.nodes[b].ops {
                if !std::mem::replace(&mut known[op.payment], true) {
                    pids.push(oracle.pids[op.payment]);
                }
            }
            prop_assert!(!out.duplicate && out.gap.is_none(), "step {}: b{}", step, b);
            if best.is_none_or(|t| case.nodes[b].height > case.nodes[t].height) {
                best = Some(b);
            }
        }
        let best = best.expect("something was delivered");

        let tip = io(history.tip().await, "tip")?;
        let tip = tip.ok_or_else(|| TestCaseError::fail("no tip after a delivery"))?;
        prop_assert_eq!(
            oracle.node(&tip.block.index_block_hash)?,
            best,
            "step {}: tip",
            step
        );
        prop_assert!(tip.canonical, "step {}: tip not canonical", step);

        let now = chain_of(case, best);
        for ev in &out.events {
            match ev.event_type {
                EventType::Reverted => {
                    let r = ev.reverted.as_ref().expect("reverted names its block");
                    let x = oracle.node(&r.index_block_hash)?;
                    prop_assert!(
                        canon[x] && !now[x],
                        "step {}: payment:reverted names b{}, which did not just leave the chain",
                        step,
                        x
                    );
                }
                EventType::Confirmed
                | EventType::Claimed
                | EventType::Refunded
                | EventType::Final => {
                    let hash = ev.index_block_hash.as_deref().unwrap_or_default();
                    let x = oracle.node(hash)?;
                    prop_assert!(
                        now[x],
                        "step {}: {:?} of {} names non-canonical b{}",
                        step,
                        ev.event_type,
                        ev.payment_id,
                        x
                    );
                }
                _ => {}
            }
        }
        for x in 0..n {
            left_chain[x] |= canon[x] && !now[x];
        }
        canon = now;

        let tip_height = case.nodes[best].height;
        let want = &oracle.after[best];
        let got = io(state.get_many(&pids).await, "get_many")?;
        for (id, got) in pids.iter().zip(got) {
            match want.get(id) {
                Some(p) => {
                    let want = finalize(p, tip_height, case.depth, &ctx(tip_height))
                        .map_or_else(|| p.clone(), |(f, _)| f);
                    let got = got.ok_or_else(|| {
                        TestCaseError::fail(format!("step {step}: {id} missing from the state"))
                    })?;
                    prop_assert_eq!(View::of(&got), View::of(&want), "step {}: {}", step, id);
                }
                None => {
                    if let Some(g) = got {
                        prop_assert!(
                            g.status == PaymentStatus::Pending
                                && g.created_in.is_none()
                                && g.settled_in.is_none()
                                && !g.is_final,
                            "step {}: {} is not on the canonical chain but stored as {:?}",
                            step,
                            id,
                            View::of(&g)
                        );
                    }
                }
            }
        }
    }

    // The event log: gap-free, published once each, reverts name orphaned blocks.
    let events = io(history.events_since(0, u32::MAX).await, "events_since")?;
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    let last = seqs.len() as u64;
    prop_assert_eq!(&seqs, &(1..=last).collect::<Vec<_>>(), "history seq");
    prop_assert_eq!(io(history.last_seq().await, "last_seq")?, last);
    prop_assert_eq!(io(state.last_seq().await, "last_seq")?, last);
    let published = bus.0.lock().expect("bus lock").clone();
    prop_assert_eq!(&published, &seqs, "published seq");
    for ev in events
        .iter()
        .filter(|e| e.event_type == EventType::Reverted)
    {
        let r = ev.reverted.as_ref().expect("reverted names its block");
        let x = oracle.node(&r.index_block_hash)?;
        prop_assert!(
            left_chain[x],
            "seq {}: reverted b{} never left the chain",
            ev.seq,
            x
        );
    }

    // Canonical flags as stored.
    for (x, (hash, &on)) in oracle.hashes.iter().zip(&canon).enumerate() {
        let rec = io(history.get_block(hash).await, "get_block")?;
        prop_assert_eq!(rec.map(|r| r.canonical), Some(on), "b{} canonical", x);
    }

    // History's current payments are the state store's.
    for p in io(history.payments_changed_since(0).await, "payments")? {
        prop_assert!(
            pids.contains(&p.payment_id),
            "stored unknown {}",
            p.payment_id
        );
        let cached = io(state.get(&p.payment_id).await, "get")?;
        prop_assert_eq!(
            cached.as_ref(),
            Some(&p),
            "history vs state for {}",
            p.payment_id
        );
    }
    Ok(())
}

fn config(var: &str, default: u32) -> ProptestConfig {
    let cases = std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default);
    ProptestConfig {
        cases,
        ..ProptestConfig::default()
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("tokio runtime")
}

proptest! {
    #![proptest_config(config("PROPTEST_CASES", MAIN_CASES))]

    #[test]
    fn memory_and_sqlite(case in case_strategy()) {
        runtime().block_on(async {
            let history = io(SqliteHistory::open_in_memory(), "sqlite")?;
            check_case(&case, Arc::new(MemoryState::new()), Arc::new(history)).await
        })?;
    }
}

proptest! {
    #![proptest_config(config("NEXUS_PROPTEST_SERVICE_CASES", SERVICE_CASES))]

    #[test]
    fn redis_and_postgres(case in case_strategy()) {
        runtime().block_on(async {
            let redis_url = std::env::var("NEXUS_TEST_REDIS_URL")
                .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
            let prefix = format!("nexus-test:{:016x}:", random());
            let redis = RedisState::connect(&redis_url, &prefix)
                .await
                .expect("Redis for tests (set NEXUS_TEST_REDIS_URL)");
            let redis = Arc::new(redis);
            let db = PgTestDb::create().await;
            let history = Arc::new(PgHistory::connect(&db.url).await.expect("PgHistory"));
            let result = check_case(&case, redis.clone(), history.clone()).await;
            history.pool().close().await;
            redis.flush_prefix().await.expect("flush the test prefix");
            result
        })?;
    }
}

fn random() -> u64 {
    rand::random()
}
