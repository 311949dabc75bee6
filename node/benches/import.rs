//! `cargo bench -p nexus-node --bench import`: TSV import throughput and
//! deep-reorg switch time on the real Redis and PostgreSQL.
//!
//! 1. Import: writes an event-export TSV of `BENCH_IMPORT_BLOCKS` (default
//!    100,000) `/new_block` lines, one chain. Nine blocks in ten hold only a
//!    coinbase; every tenth holds escrow contract-calls (real serialized
//!    `StacksTransaction`s) with their STX transfers and prints (the real
//!    SIP-005 serialization of the `contracts/EVENTS.md` tuple): creates, and
//!    claims of the previous escrow block's creates. The file goes through
//!    `nexus_node::import::run`, exactly what `nexus-node import` runs, into a
//!    fresh PostgreSQL database and a fresh Redis prefix.
//! 2. Deep reorg, on other fresh stores, through `Ingestor::deliver`:
//!
//!    ```text
//!    main 1..10 ─┬─ A 11 ─ … ─ A 110 ─────────── A 111 ─ A 112   (3) switch back: roll back 101, apply 102
//!                └─ B 11 ─ … ─ B 110 ─ B 111                     (2) switch: roll back 100, apply 101
//!    ```
//!
//!    Both branches carry the same escrow transactions at the same heights
//!    (as when a miner's fork is re-mined), so every switch reverts and
//!    re-applies payments. The time of the delivery that triggers each switch
//!    is measured; `reorg100_ms` is the larger of the two.
//!
//! Knobs: `BENCH_IMPORT_BLOCKS`, `BENCH_IMPORT_PG_QUERY` (query string added
//! to the bench databases' URLs, e.g. `options=-c%20synchronous_commit%3Doff`), `NEXUS_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`; `nexus_bench_<hex>` databases
//! are created next to it and dropped afterwards), `NEXUS_TEST_REDIS_URL`
//! (default `redis://127.0.0.1:6379`; keys under a unique prefix, deleted
//! afterwards). Progress goes to stderr; the last stdout line is one JSON object.

use std::io::{BufWriter, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clarity::types::chainstate::StacksAddress;
use clarity::types::Address;
use clarity::vm::types::Value;
use serde_json::json;
use stacks_codec::codec::StacksMessageCodec;

use nexus_core::clock::SystemClock;
use nexus_core::domain::{EventSource, EventType, PaymentEvent, PaymentId};
use nexus_core::simnet::{block_envelope, tx_entry};
use nexus_indexer::ingest::{EventBus, IngestError, Ingestor, Route};
use nexus_node::config::{Config, DEFAULT_CONTRACT_ID};
use nexus_node::import::{self, ImportOptions};

mod common;
#[path = "common/stores.rs"]
mod stores;
use common::{escrow_call, payment_print, principal, splitmix64};
use stores::Stores;

/// One block in this many carries escrow transactions.
const ESCROW_EVERY: u64 = 10;
/// Creates (and, from the second escrow block on, as many claims) per escrow block.
const CREATES_PER_BLOCK: u64 = 2;
/// Distinct payer/payee accounts.
const ACCOUNTS: u64 = 500;
/// `PAYMENT-TIMEOUT` of the contract (EVENTS.md).
const TIMEOUT: u64 = 100;
/// `(ok true)`, what create-payment and claim-payment return.
const OK_TRUE_HEX: &str = "0x0703";
/// Reorg shape (see the module diagram).
const COMMON: u64 = 10;
const FORK_LEN: u64 = 100;

fn main() {
    let blocks: u64 = match std::env::var("BENCH_IMPORT_BLOCKS") {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("BENCH_IMPORT_BLOCKS={v:?} is not a count")),
        Err(_) => 100_000,
    };
    assert!(
        blocks >= 2 * ESCROW_EVERY,
        "BENCH_IMPORT_BLOCKS >= {}",
        2 * ESCROW_EVERY
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let report = rt.block_on(run(blocks));
    println!("{}", serde_json::to_string(&report).expect("JSON"));
}

async fn run(blocks: u64) -> Report {
    let gen = Generator::new();
    let dir = tempfile::tempdir().expect("temp dir");
    let tsv = dir.path().join("export.tsv");
    let t0 = Instant::now();
    let bytes = gen.write_tsv(&tsv, blocks);
    eprintln!(
        "bench-import: wrote {blocks} /new_block lines, {:.1} MB, in {:.1?}",
        bytes as f64 / 1e6,
        t0.elapsed()
    );

    // The syntax pre-check `import` makes per line, alone: its share of the import.
    let t0 = Instant::now();
    let text = std::fs::read_to_string(&tsv).expect("read tsv");
    for line in text.lines() {
        let body = line.splitn(4, '\t').nth(3).expect("4 fields");
        let v: serde::de::IgnoredAny = serde_json::from_str(body).expect("JSON");
        std::hint::black_box(v);
    }
    let precheck = t0.elapsed();
    drop(text);

    let stores = Stores::create("import").await;
    let summary = import::run(&config(&stores), &tsv, ImportOptions { quiet: true })
        .await
        .expect("import");
    eprintln!("bench-import: import {summary}");
    eprintln!(
        "bench-import: JSON syntax pre-check alone: {:.2?} ({:.1}% of the import)",
        precheck,
        100.0 * precheck.as_secs_f64() / summary.elapsed_secs
    );
    assert_eq!(summary.blocks, blocks, "every block committed");
    assert_eq!(summary.dead_letters, 0);
    stores.cleanup().await;

    let probes = round_trips().await;
    let reorg = match reorg_bench(&gen).await {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!(
                "bench-import: reorg measurement FAILED: {}",
                nexus_core::error_chain(&e)
            );
            None
        }
    };

    Report {
        bench: "import",
        blocks,
        blocks_per_sec: summary.blocks_per_sec().round(),
        events_per_sec: summary.events_per_sec().round(),
        reorg100_ms: reorg.as_ref().map(ReorgResult::max_ms),
        stores: "redis+postgres",
        date: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        bytes,
        payment_events: summary.payment_events,
        elapsed_s: (summary.elapsed_secs * 1e3).round() / 1e3,
        precheck_ms: (precheck.as_secs_f64() * 1e4).round() / 10.0,
        round_trip_us: probes,
        reorg_switch_ms: reorg.as_ref().map(|r| [r.switch_ms, r.back_ms]),
        reorg_reverted_events: reorg.as_ref().map(|r| r.reverted),
    }
}

/// The last stdout line; fields serialize in this order.
#[derive(serde::Serialize)]
struct Report {
    bench: &'static str,
    blocks: u64,
    blocks_per_sec: f64,
    events_per_sec: f64,
    /// The slower of the two 100-deep switches; `null` if the reorg run failed.
    reorg100_ms: Option<f64>,
    stores: &'static str,
    date: String,
    bytes: u64,
    payment_events: u64,
    elapsed_s: f64,
    /// Time of the JSON syntax pre-check `import` makes, alone, over the whole file.
    precheck_ms: f64,
    /// Mean single round trips to each store.
    round_trip_us: serde_json::Value,
    /// A -> B, then B -> A.
    reorg_switch_ms: Option<[f64; 2]>,
    reorg_reverted_events: Option<u64>,
}

struct ReorgResult {
    switch_ms: f64,
    back_ms: f64,
    /// `payment:reverted` events over both switches.
    reverted: u64,
}

impl ReorgResult {
    fn max_ms(&self) -> f64 {
        self.switch_ms.max(self.back_ms)
    }
}

/// Nobody listens in the bench.
struct NoSubscribers;

impl EventBus for NoSubscribers {
    fn publish(&self, _: &PaymentEvent) {}
}

async fn reorg_bench(gen: &Generator) -> Result<ReorgResult, IngestError> {
    let stores = Stores::create("import").await;
    let cfg = config(&stores);
    let (state, history) = nexus_node::server::open_stores(&cfg).await.expect("stores");
    let ing = Ingestor::start(
        state,
        history,
        Arc::new(NoSubscribers),
        Arc::new(SystemClock),
        cfg.contract().expect("contract"),
        EventSource::Observer,
    )
    .await
    .expect("ingestor");
    let deliver = |fork: &'static str, h: u64| {
        let parent = if h == COMMON + 1 { "main" } else { fork };
        let body = gen.block(fork, parent, h);
        let ing = &ing;
        async move {
            let t0 = Instant::now();
            let out = ing.deliver(Route::NewBlock, &body).await?;
            Ok::<_, IngestError>((t0.elapsed(), out))
        }
    };
    for h in 1..=COMMON {
        deliver("main", h).await?;
    }
    let last = COMMON + FORK_LEN;
    for h in COMMON + 1..=last {
        deliver("a", h).await?;
    }
    for h in COMMON + 1..=last {
        deliver("b", h).await?;
    }
    let reverted = |out: &nexus_indexer::ingest::Outcome| {
        out.events
            .iter()
            .filter(|e| e.event_type == EventType::Reverted)
            .count() as u64
    };
    let (switch, out1) = deliver("b", last + 1).await?;
    report_switch("A -> B", switch, &out1, reverted(&out1));
    deliver("a", last + 1).await?;
    let (back, out2) = deliver("a", last + 2).await?;
    report_switch("B -> A", back, &out2, reverted(&out2));
    stores.cleanup().await;
    Ok(ReorgResult {
        switch_ms: ms(switch),
        back_ms: ms(back),
        reverted: reverted(&out1) + reverted(&out2),
    })
}

/// Mean latency (µs) of the single round trips every delivery makes, to
/// show where the import's time per block goes.
async fn round_trips() -> serde_json::Value {
    const N: u32 = 2_000;
    let stores = Stores::create("import").await;
    let (state, history) = nexus_node::server::open_stores(&config(&stores))
        .await
        .expect("stores");
    let hash = nexus_core::simnet::index_hash("probe", 1);
    let t0 = Instant::now();
    for _ in 0..N {
        state.last_seq().await.expect("redis");
    }
    let redis = t0.elapsed() / N;
    let t0 = Instant::now();
    for _ in 0..N {
        history.block_known(&hash).await.expect("postgres");
    }
    let pg = t0.elapsed() / N;
    let t0 = Instant::now();
    for _ in 0..N {
        state
            .apply(&[], 0, &[("bench_probe", 1)])
            .await
            .expect("redis");
    }
    let apply = t0.elapsed() / N;
    stores.cleanup().await;
    let us = |d: Duration| (d.as_secs_f64() * 1e7).round() / 10.0;
    eprintln!(
        "bench-import: round trips: redis last_seq {} us, postgres block_known {} us, redis apply {} us",
        us(redis),
        us(pg),
        us(apply)
    );
    json!({"redis_last_seq": us(redis), "pg_block_known": us(pg), "redis_apply": us(apply)})
}

fn report_switch(name: &str, took: Duration, out: &nexus_indexer::ingest::Outcome, reverted: u64) {
    eprintln!(
        "bench-import: reorg {name}: {:.2} ms, rolled back {:?} blocks, {} events ({reverted} payment:reverted)",
        ms(took),
        out.reorg_depth,
        out.events.len()
    );
    if out.reorg_depth.is_none() || reverted == 0 {
        eprintln!("bench-import: WARNING: this delivery did not switch branches with reverts; the reorg figure is not a reorg");
    }
}

fn ms(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}

/// Deterministic chain content: which payments each height creates and claims.
struct Generator {
    deployer: StacksAddress,
    contract: String,
}

impl Generator {
    fn new() -> Self {
        let (address, _) = DEFAULT_CONTRACT_ID.split_once('.').expect("contract id");
        Generator {
            deployer: StacksAddress::from_string(address).expect("deployer address"),
            contract: DEFAULT_CONTRACT_ID.to_string(),
        }
    }

    /// Write `/new_block` lines for heights `1..=blocks` on one chain; returns the bytes written.
    fn write_tsv(&self, path: &std::path::Path, blocks: u64) -> u64 {
        let mut out =
            BufWriter::with_capacity(1 << 20, std::fs::File::create(path).expect("create tsv"));
        let mut bytes = 0u64;
        for h in 1..=blocks {
            let body = self.block("main", "main", h);
            let head = format!("{h}\t2026-01-01 00:00:00.000000+00\t/new_block\t");
            out.write_all(head.as_bytes()).expect("write");
            out.write_all(&body).expect("write");
            out.write_all(b"\n").expect("write");
            bytes += (head.len() + body.len() + 1) as u64;
        }
        out.flush().expect("flush");
        bytes
    }

    /// The `/new_block` body at height `h` of `fork` (parent on `parent`).
    fn block(&self, fork: &str, parent: &str, h: u64) -> Vec<u8> {
        let mut txs = vec![tx_entry(
            &fake_txid(fork, h, 999),
            0,
            true,
            &coinbase_hex(h),
            OK_TRUE_HEX,
        )];
        let mut events = Vec::new();
        let escrow_block = h.is_multiple_of(ESCROW_EVERY);
        if escrow_block {
            let round = h / ESCROW_EVERY;
            for i in 0..CREATES_PER_BLOCK {
                self.escrow_tx(Call::Create { round, i }, h, &mut txs, &mut events);
                if round > 1 {
                    self.escrow_tx(
                        Call::Claim {
                            round: round - 1,
                            i,
                        },
                        h,
                        &mut txs,
                        &mut events,
                    );
                }
            }
        }
        serde_json::to_vec(&block_envelope(fork, h, parent, &txs, &events)).expect("JSON")
    }

    fn escrow_tx(
        &self,
        call: Call,
        height: u64,
        txs: &mut Vec<serde_json::Value>,
        events: &mut Vec<serde_json::Value>,
    ) {
        let (round, i) = call.payment();
        let n = round * CREATES_PER_BLOCK + i;
        let id = payment_id(n);
        let payer = n % ACCOUNTS;
        let payee = (n * 7 + 1) % ACCOUNTS;
        let amount = 1_000 + u128::from(n % 997) * 1_000;
        let memo = format!("invoice-{n}").into_bytes();
        let id_arg = Value::buff_from(id.0.to_vec()).expect("buff");
        let (origin, function, args, event, from, to) = match call {
            Call::Create { .. } => (
                payer,
                "create-payment",
                vec![
                    id_arg,
                    Value::Principal(principal(payee)),
                    Value::UInt(amount),
                    Value::buff_from(memo.clone()).expect("buff"),
                ],
                "payment-created",
                principal(payer).to_string(),
                self.contract.clone(),
            ),
            Call::Claim { .. } => (
                payee,
                "claim-payment",
                vec![id_arg],
                "payment-claimed",
                self.contract.clone(),
                principal(payee).to_string(),
            ),
        };
        // Nonces only need to make txids distinct: one call of each kind per payment.
        let nonce = 2 * n + u64::from(matches!(call, Call::Claim { .. }));
        let tx = escrow_call(self.deployer, origin, nonce, function, args);
        let mut raw = Vec::with_capacity(256);
        tx.consensus_serialize(&mut raw).expect("serialize tx");
        let txid = format!("0x{}", hex::encode(tx.txid().as_bytes()));
        txs.push(tx_entry(
            &txid,
            txs.len() as u32,
            true,
            &format!("0x{}", hex::encode(&raw)),
            OK_TRUE_HEX,
        ));
        // EVENTS.md: the STX transfer first, then the print.
        events.push(json!({
            "txid": txid, "event_index": events.len(), "committed": true,
            "type": "stx_transfer_event",
            "stx_transfer_event": {"sender": from, "recipient": to, "amount": amount.to_string(), "memo": ""},
        }));
        let created_at = round * ESCROW_EVERY;
        let print = payment_print(
            event,
            &id,
            payer,
            payee,
            amount,
            memo,
            created_at + TIMEOUT,
            height,
        );
        events.push(nexus_core::simnet::print_entry(
            &txid,
            events.len() as u32,
            &self.contract,
            &print,
        ));
    }
}

/// An escrow call of payment `i` of escrow round `round` (created at height `round * ESCROW_EVERY`).
#[derive(Clone, Copy)]
enum Call {
    Create { round: u64, i: u64 },
    Claim { round: u64, i: u64 },
}

impl Call {
    fn payment(self) -> (u64, u64) {
        match self {
            Call::Create { round, i } | Call::Claim { round, i } => (round, i),
        }
    }
}

/// A coinbase-sized stand-in: not a call to the escrow, so the decoder skips it as it would a real one.
fn coinbase_hex(h: u64) -> String {
    format!("0x80800000000400{:0>64}{:0>130}", format!("{h:x}"), "")
}

fn fake_txid(fork: &str, h: u64, i: u64) -> String {
    nexus_core::simnet::fake_hash(&format!("tx:{fork}"), h * 1_000 + i)
}

fn payment_id(n: u64) -> PaymentId {
    let mut id = [0u8; 32];
    for (k, chunk) in id.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(&splitmix64(n.wrapping_mul(4).wrapping_add(k as u64)).to_be_bytes());
    }
    PaymentId(id)
}

/// The node configuration on the bench's stores.
fn config(stores: &Stores) -> Config {
    let mut url = reqwest::Url::parse(&stores.pg_url).expect("database URL");
    // e.g. `options=-c synchronous_commit=off`, to see what the per-commit fsync costs.
    if let Ok(q) = std::env::var("BENCH_IMPORT_PG_QUERY") {
        url.set_query(Some(&q));
    }
    Config {
        contract_id: DEFAULT_CONTRACT_ID.to_string(),
        redis_url: Some(stores.redis_url.clone()),
        redis_prefix: stores.redis_prefix.clone(),
        database_url: Some(url.to_string()),
        ..Config::default()
    }
}
