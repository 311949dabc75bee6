//! `make bench-ingest`: end-to-end `/new_block` ingest throughput.
//!
//! Generates realistic stacks-node `/new_block` payloads (blocks of escrow
//! contract-calls, each a real serialized `StacksTransaction` with its STX
//! transfer and its print event carrying the real SIP-005 serialization of the
//! `contracts/EVENTS.md` payment tuple), starts the real node in-process on the
//! real Redis and a fresh PostgreSQL database, and POSTs the blocks one at a
//! time over loopback, as stacks-node does. A 200 means the block is durably
//! committed, so POST sent -> 200 received is the figure that matters.
//!
//! On the same payloads it also times a bare `serde_json` parse into a
//! `serde_json::Value`: the floor any JSON observer pays. Then, on the same
//! stores, the durable floors (`floor.rs`): the rows the node committed,
//! written again block by block the cheapest way (parse, `COPY`, one COMMIT
//! beside one Redis pipeline), once for the event log alone and once with
//! the `payments` table.
//!
//! Run: `cargo bench -p nexus-node --bench ingest` (release profile).
//! Knobs: `BENCH_BLOCKS` (measured blocks, default 30), `BENCH_TXS` (escrow
//! transactions per block, default 1000), `NEXUS_TEST_PG_URL`
//! (default `postgres://postgres@127.0.0.1:5432/test`; a `nexus_bench_<hex>`
//! database is created next to it and dropped afterwards),
//! `NEXUS_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`; keys live under a
//! unique prefix that is deleted afterwards), `BENCH_PG_LOG=1` (log every
//! statement of the bench database with its duration in the server log).
//!
//! Progress goes to stderr; the last stdout line is one JSON object.

use std::time::{Duration, Instant};

use clarity::types::chainstate::StacksAddress;
use clarity::types::Address;
use clarity::vm::types::Value;
use serde_json::json;
use sqlx::Connection;
use stacks_codec::codec::StacksMessageCodec;

use nexus_core::domain::{PaymentId, PaymentStatus};
use nexus_core::simnet::{block_envelope, index_hash, print_entry, tx_entry};
use nexus_node::config::{Config, DEFAULT_CONTRACT_ID};

mod common;
#[path = "ingest/floor.rs"]
mod floor;
#[path = "common/stores.rs"]
mod stores;
use common::{escrow_call, payment_print, principal, splitmix64};
use stores::Stores;

/// Blocks POSTed before measuring (connection pools, prepared statements, caches).
const WARMUP_BLOCKS: usize = 2;
/// Distinct payer/payee accounts: senders repeat, as on a real chain.
const ACCOUNTS: u64 = 500;
/// `PAYMENT-TIMEOUT` of the contract (EVENTS.md).
const TIMEOUT: u64 = 100;
/// `(ok true)`, what create-payment and claim-payment return.
const OK_TRUE_HEX: &str = "0x0703";
/// Rounds of the bare-parse baseline (its figure is over all rounds).
const PARSE_ROUNDS: usize = 3;

fn main() {
    let blocks = env_usize("BENCH_BLOCKS", 30);
    let txs = env_usize("BENCH_TXS", 1000);
    assert!(
        blocks >= 2 && txs >= 1,
        "BENCH_BLOCKS >= 2 and BENCH_TXS >= 1"
    );
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("tokio runtime");
    let report = rt.block_on(run(blocks, txs));
    println!("{report}");
}

fn env_usize(name: &str, default: usize) -> usize {
    match std::env::var(name) {
        Ok(v) => v
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?} is not a count")),
        Err(_) => default,
    }
}

async fn run(blocks: usize, txs: usize) -> serde_json::Value {
    let started = Instant::now();
    let plan = Plan::new(WARMUP_BLOCKS, blocks, txs);
    let payloads = plan.payloads();
    let bytes: usize = payloads.iter().map(|p| p.len()).sum();
    eprintln!(
        "bench-ingest: generated {} blocks ({} warm-up) x {txs} escrow txs, {:.1} MB of /new_block JSON in {:.1?}",
        payloads.len(),
        WARMUP_BLOCKS,
        bytes as f64 / 1e6,
        started.elapsed()
    );

    let stores = Stores::create("ingest").await;
    if std::env::var_os("BENCH_PG_LOG").is_some() {
        log_statements(&stores).await;
    }
    let cfg = Config {
        observer_addr: "127.0.0.1:0".parse().expect("addr"),
        api_addr: "127.0.0.1:0".parse().expect("addr"),
        contract_id: DEFAULT_CONTRACT_ID.to_string(),
        redis_url: Some(stores.redis_url.clone()),
        redis_prefix: stores.redis_prefix.clone(),
        database_url: Some(stores.pg_url.clone()),
        ..Config::default()
    };
    let node = nexus_node::server::start(cfg).await.expect("node starts");
    let url = format!("http://{}/new_block", node.observer_addr);
    eprintln!(
        "bench-ingest: node on {} (redis prefix {}, database {})",
        node.observer_addr, stores.redis_prefix, stores.pg_name
    );

    let client = reqwest::Client::new();
    let cpu = [
        CpuMeter::this_process(),
        CpuMeter::pg_backends(&stores.pg_name),
        CpuMeter::by_program("redis-server"),
    ];
    let mut latencies = Vec::with_capacity(blocks);
    let mut measured_wall = Duration::ZERO;
    let mut committed_events = 0u64;
    // Each POST's committed events, warm-up included: block i's seq range.
    let mut answered = Vec::with_capacity(payloads.len());
    for (i, payload) in payloads.iter().enumerate() {
        let warm = i < WARMUP_BLOCKS;
        let body = payload.clone();
        let t0 = Instant::now();
        let resp = client
            .post(&url)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("POST /new_block");
        let status = resp.status();
        let text = resp.text().await.expect("response body");
        let took = t0.elapsed();
        assert!(status.is_success(), "block {i}: HTTP {status}: {text}");
        // Measure real work only: every print must become a committed event
        // (the node may add more, e.g. `payment:final` once a block is deep enough).
        let answer: serde_json::Value = serde_json::from_str(&text).expect("JSON answer");
        let committed = answer["events"].as_u64().unwrap_or(0);
        assert!(committed >= txs as u64, "block {i}: {text}");
        assert_eq!(answer["dead_letters"], json!(0), "block {i}: {text}");
        answered.push(committed);
        if !warm {
            latencies.push(took);
            measured_wall += took;
            committed_events += committed;
        }
        eprintln!(
            "  block {:>3} {:<6} {:>8.2} ms{}",
            plan.height(i),
            plan.kind(i),
            took.as_secs_f64() * 1e3,
            if warm { "  (warm-up)" } else { "" }
        );
    }

    // Where the CPU went during the measured blocks (plus the two warm-up ones).
    let ticks = cpu.map(|m| m.elapsed());
    let per_block = |t: u64| t as f64 * 1e3 / clock_ticks_per_sec() / payloads.len() as f64;
    eprintln!(
        "bench-ingest: CPU per block: node process {:.1} ms, its PostgreSQL backends {:.1} ms, redis-server {:.1} ms (wall {:.1} ms)",
        per_block(ticks[0]),
        per_block(ticks[1]),
        per_block(ticks[2]),
        measured_wall.as_secs_f64() * 1e3 / blocks as f64,
    );

    // The stores hold what the chain says.
    let state = node.app.ingestor.state().clone();
    let claimed = state
        .get(&plan.payment_id(plan.first_measured_create(), 0))
        .await;
    // Warm-up payments are never claimed.
    let confirmed = state.get(&plan.payment_id(0, txs - 1)).await;
    let status =
        |r: Result<Option<nexus_core::domain::Payment>, _>| r.ok().flatten().map(|p| p.status);
    if plan.claim_blocks() > 0 {
        assert_eq!(status(claimed), Some(PaymentStatus::Claimed));
    }
    assert_eq!(status(confirmed), Some(PaymentStatus::Confirmed));

    node.shutdown.cancel();
    node.wait().await.expect("node stops cleanly");

    // The durable floor: the same rows, written the cheapest way, same order.
    let mut seq_ranges = Vec::with_capacity(answered.len());
    let mut next = 1u64;
    for n in &answered {
        seq_ranges.push((next, next + n - 1));
        next += n;
    }
    let heights: Vec<u64> = (0..payloads.len()).map(|i| plan.height(i)).collect();
    let rows = floor::read_rows(&stores.pg_url, &seq_ranges, &heights).await;
    let mut floors = Vec::new();
    for scope in [floor::Scope::Log, floor::Scope::LogAndPayments] {
        let fl = floor::measure(
            scope,
            &stores.pg_url,
            &stores.redis_url,
            &stores.redis_prefix,
            &payloads,
            &rows,
            WARMUP_BLOCKS,
        )
        .await;
        floors.push(fl);
    }
    stores.cleanup().await;

    // Baseline on the same measured payloads: parse into a Value and free it.
    let measured = &payloads[WARMUP_BLOCKS..];
    let t0 = Instant::now();
    for _ in 0..PARSE_ROUNDS {
        for p in measured {
            let v: serde_json::Value = serde_json::from_slice(p).expect("valid JSON");
            std::hint::black_box(&v);
        }
    }
    let parse_time = t0.elapsed();
    let events = (blocks * txs) as f64;
    let parse_eps = events * PARSE_ROUNDS as f64 / parse_time.as_secs_f64();

    latencies.sort();
    let ms = |d: Duration| (d.as_secs_f64() * 1e6).round() / 1e3;
    let pct = |p: f64| latencies[((p * latencies.len() as f64).ceil() as usize).max(1) - 1];
    let eps = events / measured_wall.as_secs_f64();
    let mean = measured_wall / blocks as u32;
    eprintln!(
        "bench-ingest: {events} events in {:.2?}: {eps:.0} events/s end-to-end, p50 {} ms, p99 {} ms, max {} ms; bare parse {parse_eps:.0} events/s (ratio {:.3})",
        measured_wall,
        ms(pct(0.50)),
        ms(pct(0.99)),
        ms(latencies[latencies.len() - 1]),
        eps / parse_eps
    );
    let floor_figures = |name: &str, fl: &floor::Floor| {
        let mut lat = fl.latencies.clone();
        lat.sort();
        let pct = |p: f64| ms(lat[((p * lat.len() as f64).ceil() as usize).max(1) - 1]);
        let mean = |d: Duration| ms(d / blocks as u32);
        let eps = (events / fl.wall.as_secs_f64()).round();
        eprintln!(
            "bench-ingest: durable floor, {name}: {eps} events/s, p50 {} ms, p99 {} ms; per block parse {} ms, then PostgreSQL {} ms beside Redis {} ms",
            pct(0.50),
            pct(0.99),
            mean(fl.parse),
            mean(fl.postgres),
            mean(fl.redis),
        );
        json!({
            "events_per_sec": eps,
            "p50_ms": pct(0.50),
            "p99_ms": pct(0.99),
            "parse_ms": mean(fl.parse),
            "postgres_ms": mean(fl.postgres),
            "redis_ms": mean(fl.redis),
        })
    };
    let floor_log = floor_figures("event log + blocks + escrow txs", &floors[0]);
    let floor_all = floor_figures("with the payments table", &floors[1]);
    json!({
        "bench": "ingest",
        "blocks": blocks,
        "warmup_blocks": WARMUP_BLOCKS,
        "events_per_block": txs,
        "create_blocks": plan.create_blocks(),
        "claim_blocks": plan.claim_blocks(),
        "avg_block_bytes": bytes / payloads.len(),
        "events_per_sec": eps.round(),
        "p50_ms": ms(pct(0.50)),
        "p99_ms": ms(pct(0.99)),
        "max_ms": ms(latencies[latencies.len() - 1]),
        "mean_ms": ms(mean),
        "committed_events": committed_events,
        "parse_events_per_sec": parse_eps.round(),
        "ingest_to_parse_ratio": ((eps / parse_eps) * 1e4).round() / 1e4,
        "floor_log": floor_log,
        "floor_log_and_payments": floor_all,
        "stores": "redis+postgres",
        "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}

/// Which blocks carry what. Warm-up blocks create their own payments; of the
/// measured blocks the first half create payments and the second half claim
/// the payments of the first measured create blocks (insert, then update paths).
struct Plan {
    warmup: usize,
    measured: usize,
    txs: usize,
    deployer: StacksAddress,
    contract: String,
}

/// What one block does.
#[derive(Clone, Copy)]
enum Kind {
    Create,
    /// Claims the payments created by this block number.
    Claim(usize),
}

impl Plan {
    fn new(warmup: usize, measured: usize, txs: usize) -> Self {
        let (address, _) = DEFAULT_CONTRACT_ID.split_once('.').expect("contract id");
        Plan {
            warmup,
            measured,
            txs,
            deployer: StacksAddress::from_string(address).expect("deployer address"),
            contract: DEFAULT_CONTRACT_ID.to_string(),
        }
    }

    fn total(&self) -> usize {
        self.warmup + self.measured
    }

    fn create_blocks(&self) -> usize {
        self.measured - self.claim_blocks()
    }

    fn claim_blocks(&self) -> usize {
        self.measured / 2
    }

    fn first_measured_create(&self) -> usize {
        self.warmup
    }

    fn kind_of(&self, block: usize) -> Kind {
        let first_claim = self.warmup + self.create_blocks();
        if block < first_claim {
            Kind::Create
        } else {
            Kind::Claim(self.warmup + (block - first_claim))
        }
    }

    fn kind(&self, block: usize) -> &'static str {
        match self.kind_of(block) {
            Kind::Create => "create",
            Kind::Claim(_) => "claim",
        }
    }

    /// Stacks block height of block number `block` (heights start at 1 after genesis).
    fn height(&self, block: usize) -> u64 {
        block as u64 + 1
    }

    /// Unique, random-looking id of payment `i` created in block `block`.
    fn payment_id(&self, block: usize, i: usize) -> PaymentId {
        let n = (block * self.txs + i) as u64;
        let mut id = [0u8; 32];
        for (k, chunk) in id.chunks_mut(8).enumerate() {
            chunk.copy_from_slice(
                &splitmix64(n.wrapping_mul(4).wrapping_add(k as u64)).to_be_bytes(),
            );
        }
        PaymentId(id)
    }

    /// Payer and payee of payment `i` of block `block`.
    fn parties(&self, block: usize, i: usize) -> (u64, u64) {
        let n = (block * self.txs + i) as u64;
        let payer = n % ACCOUNTS;
        (
            payer,
            (payer + 1 + n / ACCOUNTS % (ACCOUNTS - 1)) % ACCOUNTS,
        )
    }

    fn amount(&self, block: usize, i: usize) -> u128 {
        1_000 + ((block * self.txs + i) as u128 % 997) * 1_000
    }

    /// Every payload, in delivery order.
    fn payloads(&self) -> Vec<Vec<u8>> {
        // Nonces per account, carried across blocks.
        let mut nonces = vec![0u64; ACCOUNTS as usize];
        (0..self.total())
            .map(|b| {
                let body = self.block(b, &mut nonces);
                serde_json::to_vec(&body).expect("JSON")
            })
            .collect()
    }

    fn block(&self, block: usize, nonces: &mut [u64]) -> serde_json::Value {
        let height = self.height(block);
        let mut txs = Vec::with_capacity(self.txs);
        let mut events = Vec::with_capacity(2 * self.txs);
        for i in 0..self.txs {
            let (create_block, name) = match self.kind_of(block) {
                Kind::Create => (block, "payment-created"),
                Kind::Claim(of) => (of, "payment-claimed"),
            };
            let id = self.payment_id(create_block, i);
            let (payer, payee) = self.parties(create_block, i);
            let amount = self.amount(create_block, i);
            let memo = format!("invoice-{create_block}-{i}").into_bytes();
            let created_at = self.height(create_block);
            let id_arg = Value::buff_from(id.0.to_vec()).expect("buff");
            let (origin, function, args) = match self.kind_of(block) {
                Kind::Create => (
                    payer,
                    "create-payment",
                    vec![
                        id_arg,
                        Value::Principal(principal(payee)),
                        Value::UInt(amount),
                        Value::buff_from(memo.clone()).expect("buff"),
                    ],
                ),
                Kind::Claim(_) => (payee, "claim-payment", vec![id_arg]),
            };
            let nonce = &mut nonces[origin as usize];
            let tx = escrow_call(self.deployer, origin, *nonce, function, args);
            *nonce += 1;
            let mut raw = Vec::with_capacity(256);
            tx.consensus_serialize(&mut raw).expect("serialize tx");
            let txid = format!("0x{}", hex::encode(tx.txid().as_bytes()));
            let raw_tx = format!("0x{}", hex::encode(&raw));
            txs.push(tx_entry(&txid, i as u32, true, &raw_tx, OK_TRUE_HEX));

            // EVENTS.md: the STX transfer comes first, then the print.
            let escrow = &self.contract;
            let (from, to) = match self.kind_of(block) {
                Kind::Create => (principal(payer).to_string(), escrow.clone()),
                Kind::Claim(_) => (escrow.clone(), principal(payee).to_string()),
            };
            events.push(json!({
                "txid": txid, "event_index": events.len(), "committed": true,
                "type": "stx_transfer_event",
                "stx_transfer_event": {"sender": from, "recipient": to, "amount": amount.to_string(), "memo": ""},
            }));
            let print = payment_print(
                name,
                &id,
                payer,
                payee,
                amount,
                memo,
                created_at + TIMEOUT,
                height,
            );
            events.push(print_entry(&txid, events.len() as u32, escrow, &print));
        }
        // Parent links chain: height h's parent is h - 1 on the same fork (genesis for h = 1).
        let body = block_envelope("main", height, "main", &txs, &events);
        debug_assert_eq!(
            body["parent_index_block_hash"],
            json!(index_hash("main", height - 1))
        );
        body
    }
}

/// Which processes a [`CpuMeter`] counts: `(pid, command line)`.
type Matcher = dyn Fn(u32, &str) -> bool;

/// CPU time (user + system, in clock ticks) of the processes whose command
/// line matches, read from `/proc` (Linux; zero elsewhere). Coarse (10 ms
/// ticks), but over dozens of blocks it shows whether the node, PostgreSQL or
/// Redis is busy. Processes started after the first reading (pool
/// connections opened on demand) count from zero.
struct CpuMeter {
    matches: Box<Matcher>,
    start: std::collections::HashMap<u32, u64>,
}

impl CpuMeter {
    /// The PostgreSQL backends serving `database` (the node's pool).
    fn pg_backends(database: &str) -> Self {
        let database = database.to_string();
        Self::new(move |_, cmdline| cmdline.starts_with("postgres:") && cmdline.contains(&database))
    }

    /// The bench process itself (the node and the client).
    fn this_process() -> Self {
        let me = std::process::id();
        Self::new(move |pid, _| pid == me)
    }

    fn by_program(program: &'static str) -> Self {
        Self::new(move |_, cmdline| {
            cmdline
                .split_whitespace()
                .next()
                .is_some_and(|c| c.ends_with(program))
        })
    }

    fn new(matches: impl Fn(u32, &str) -> bool + 'static) -> Self {
        let mut m = CpuMeter {
            matches: Box::new(matches),
            start: Default::default(),
        };
        m.start = m.read();
        m
    }

    fn read(&self) -> std::collections::HashMap<u32, u64> {
        std::fs::read_dir("/proc")
            .into_iter()
            .flatten()
            .flatten()
            .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
            .filter(|pid| {
                std::fs::read(format!("/proc/{pid}/cmdline"))
                    .map(|c| (self.matches)(*pid, &String::from_utf8_lossy(&c).replace('\0', " ")))
                    .unwrap_or(false)
            })
            .filter_map(|pid| Some((pid, process_ticks(pid)?)))
            .collect()
    }

    /// Ticks used since the meter was made.
    fn elapsed(&self) -> u64 {
        self.read()
            .iter()
            .map(|(pid, t)| t.saturating_sub(self.start.get(pid).copied().unwrap_or(0)))
            .sum()
    }
}

/// `utime + stime` of `pid` (all its threads), in clock ticks.
fn process_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let rest = &stat[stat.rfind(')')? + 2..];
    let f: Vec<&str> = rest.split(' ').collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// `USER_HZ`: 100 on every Linux this runs on.
fn clock_ticks_per_sec() -> f64 {
    100.0
}

/// Profiling aid (`BENCH_PG_LOG=1`): every statement of the bench database,
/// with its duration, in the server log (parameters left out: they are
/// arrays of a thousand bodies).
async fn log_statements(stores: &Stores) {
    let mut admin = sqlx::PgConnection::connect(&stores.pg_admin_url)
        .await
        .expect("PostgreSQL for the bench (set NEXUS_TEST_PG_URL)");
    for setting in [
        "log_min_duration_statement = 0",
        "log_parameter_max_length = 0",
    ] {
        sqlx::query(&format!("ALTER DATABASE {} SET {setting}", stores.pg_name))
            .execute(&mut admin)
            .await
            .expect("ALTER DATABASE");
    }
}
