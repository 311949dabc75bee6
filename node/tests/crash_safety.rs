//! Crash safety of the real `nexus-node` process (issue #4, "Crash safety").
//!
//! stacks-node retries a POST until it gets a 200 ([`event_dispatcher.rs`]),
//! so a `kill -9` of the node at any moment, a restart on the same stores and
//! the re-sent unacknowledged payload must give exactly what an uninterrupted
//! run gives: the same event log (`seq` 1..N, nothing lost, nothing twice)
//! and the same payments.
//!
//! For each deployment the recorded escrow scenario (plus empty blocks, so
//! every payment becomes final) is POSTed once without interruption: the
//! reference. Then crash runs, each on fresh stores, SIGKILL the process while
//! one POST is in flight (after a random 0–3 ms, so kills land before, during
//! and after the commit), restart it, re-send that POST unless its 200 had
//! arrived, and carry on. After every kill the stores must hold the state of
//! the reference either just before or just after that delivery (never a
//! mix), and after the re-send exactly the reference's log up to it; at the
//! end, the whole log, the payments and the API must equal the reference's
//! (ignoring only wall-clock timestamps).
//!
//! `NEXUS_CRASH_SEED` (printed) replays the same kill points and delays;
//! `NEXUS_TEST_PG_URL` / `NEXUS_TEST_REDIS_URL` name the services.
//!
//! [`event_dispatcher.rs`]: https://github.com/stacks-network/stacks-core/blob/master/testnet/stacks-node/src/event_dispatcher.rs

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nexus_core::domain::{Payment, PaymentEvent};
use nexus_core::observer::Route;
use nexus_core::simnet::{block_envelope, Delivery, Scenario};
use nexus_store::postgres::PgHistory;
use nexus_store::redis::RedisState;
use nexus_store::sqlite::SqliteHistory;
use nexus_store::{History, PaymentFilter, StateStore};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use sqlx::Connection;
use tokio::process::{Child, Command};
use tokio::sync::OnceCell;

/// The escrow the recorded scenario calls.
const CONTRACT_ID: &str = "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM.x402-nexus-escrow";

const SCENARIO: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/escrow-simnet.json"
));

/// Empty blocks after the scenario: enough for the last transition to reach
/// the default confirmation depth (6), so `payment:final` events fire late too.
const TAIL_BLOCKS: u64 = 6;

/// Crash runs per deployment, and kills in each.
const CRASH_RUNS: u64 = 4;
const KILLS_PER_RUN: usize = 5;

/// Upper bound of the random delay between starting a POST and the SIGKILL.
const MAX_KILL_DELAY_US: u64 = 3_000;

/// Default seed; `NEXUS_CRASH_SEED` overrides it.
const DEFAULT_SEED: u64 = 0x4e58_5553_0004;

/// `application_name` of the test's own PostgreSQL connections.
const READER_APP: &str = "nexus-crash-test";

/// How long a node may take to answer `GET /health`.
const READY_DEADLINE: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Memory state + SQLite history (rebuilt from the file on restart).
    Embedded,
    /// Redis state + PostgreSQL history.
    Production,
}

// ---------------------------------------------------------------------------
// Stores that outlive the process

/// The stores of one run, kept across kills; dropped (database, Redis keys,
/// temp dir) when this value is, also after a failed assertion.
struct Stores {
    /// SQLite file and the node's stderr log.
    dir: tempfile::TempDir,
    /// `(admin_url, database)` of the fresh PostgreSQL database.
    pg: Option<(String, String)>,
    /// `(redis_url, prefix)`.
    redis: Option<(String, String)>,
    /// The test's own reader of PostgreSQL, opened after the node created the schema.
    pg_history: OnceCell<PgHistory>,
    /// The test's own reader of Redis.
    redis_state: OnceCell<RedisState>,
}

fn pg_admin_url() -> String {
    std::env::var("NEXUS_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

fn redis_url() -> String {
    std::env::var("NEXUS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

fn random_hex() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl Stores {
    async fn create(kind: Kind) -> Stores {
        let dir = tempfile::tempdir().expect("temp dir");
        let (pg, redis) = match kind {
            Kind::Embedded => (None, None),
            Kind::Production => {
                let admin = pg_admin_url();
                let name = nexus_testkit::pg::create_database(&admin).await;
                let prefix = format!("nexus-crash-test:{}:", random_hex());
                (Some((admin, name)), Some((redis_url(), prefix)))
            }
        };
        Stores {
            dir,
            pg,
            redis,
            pg_history: OnceCell::new(),
            redis_state: OnceCell::new(),
        }
    }

    fn sqlite_path(&self) -> PathBuf {
        self.dir.path().join("history.sqlite")
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("node.log")
    }

    fn database_url(&self) -> Option<String> {
        let (admin, name) = self.pg.as_ref()?;
        let mut u = reqwest::Url::parse(admin).expect("database URL");
        u.set_path(&format!("/{name}"));
        Some(u.to_string())
    }

    /// A reader of the history store, straight from disk / the database.
    /// SQLite: opened for this call only (recovering the WAL a kill left, as
    /// the node itself does on restart); the node may be running or dead.
    async fn history(&self) -> Arc<dyn History> {
        match self.database_url() {
            Some(url) => Arc::new(self.pg_reader(&url).await.clone()),
            None => {
                let path = self.sqlite_path();
                let h = tokio::task::spawn_blocking(move || SqliteHistory::open(&path))
                    .await
                    .expect("open task")
                    .expect("test reader of SQLite");
                Arc::new(h)
            }
        }
    }

    /// The test's own pool on the node's database, named so that
    /// [`Stores::quiesce`] can tell its connections from the node's.
    async fn pg_reader(&self, url: &str) -> &PgHistory {
        self.pg_history
            .get_or_init(|| async {
                let mut u = reqwest::Url::parse(url).expect("database URL");
                u.query_pairs_mut()
                    .append_pair("application_name", READER_APP);
                PgHistory::connect(u.as_str())
                    .await
                    .expect("test reader of PostgreSQL")
            })
            .await
    }

    /// Wait until PostgreSQL has finished with a killed node's connections.
    ///
    /// A SIGKILL does not stop the server: a `COMMIT` the node sent just
    /// before dying still completes afterwards (a "ghost" commit), so the
    /// stores are only settled once the dead node's backends are gone.
    /// Restarting only after that keeps the kill runs deterministic; a
    /// restart during a ghost commit is [`ghost_commit_after_restart`].
    async fn quiesce(&self) {
        let Some(url) = self.database_url() else {
            return; // SQLite commits in-process: nothing outlives the kill.
        };
        let pool = self.pg_reader(&url).await.pool().clone();
        let started = Instant::now();
        loop {
            let others: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid() \
                 AND application_name <> $1",
            )
            .bind(READER_APP)
            .fetch_one(&pool)
            .await
            .expect("pg_stat_activity");
            if others == 0 {
                return;
            }
            assert!(
                started.elapsed() < READY_DEADLINE,
                "a killed node's PostgreSQL sessions still run after {READY_DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The Redis state store (production only).
    async fn state(&self) -> Option<&RedisState> {
        let (url, prefix) = self.redis.as_ref()?;
        Some(
            self.redis_state
                .get_or_init(|| async {
                    RedisState::connect(url, prefix)
                        .await
                        .expect("test reader of Redis")
                })
                .await,
        )
    }

    /// The last lines the node wrote, for failure messages.
    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Stores {
    /// Best effort: drop the database and the Redis keys on a separate thread
    /// with its own runtime (a destructor cannot await).
    fn drop(&mut self) {
        let (pg, redis) = (self.pg.take(), self.redis.take());
        if pg.is_none() && redis.is_none() {
            return;
        }
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                if let Some((url, prefix)) = redis {
                    // SCAN + UNLINK of this prefix only.
                    if let Ok(s) = RedisState::connect(&url, &prefix).await {
                        let _ = s.flush_prefix().await;
                    }
                }
                if let Some((admin, name)) = pg {
                    let mut con = sqlx::PgConnection::connect(&admin).await.ok()?;
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut con)
                        .await
                        .ok()?;
                }
                Some(())
            })
        })
        .join();
    }
}

// ---------------------------------------------------------------------------
// The real process

/// A running `nexus-node`; SIGKILLed when dropped (a failed assertion must
/// not leave it behind).
struct Node {
    child: Child,
    observer: SocketAddr,
    api: SocketAddr,
}

/// Two free local ports (both bound at once so they differ, then released).
fn free_ports() -> (SocketAddr, SocketAddr) {
    let a = TcpListener::bind("127.0.0.1:0").expect("free port");
    let b = TcpListener::bind("127.0.0.1:0").expect("free port");
    (a.local_addr().expect("addr"), b.local_addr().expect("addr"))
}

impl Node {
    /// Start the binary on `stores` (fresh ports) without waiting for it.
    fn spawn(stores: &Stores) -> Node {
        let (observer, api) = free_ports();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(stores.log_path())
            .expect("node log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nexus-node"));
        // Only our flags: no nexus.toml from the working directory, no
        // NEXUS_* from the environment (the config rejects unknown keys).
        cmd.arg("--config")
            .arg(stores.dir.path().join("absent.toml"))
            .arg("run")
            .args(["--observer-addr", &observer.to_string()])
            .args(["--api-addr", &api.to_string()])
            .args(["--contract-id", CONTRACT_ID]);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("NEXUS_") {
                cmd.env_remove(key);
            }
        }
        match (stores.database_url(), &stores.redis) {
            (Some(db), Some((url, prefix))) => {
                cmd.args(["--redis-url", url, "--database-url", &db])
                    .env("NEXUS_REDIS_PREFIX", prefix);
            }
            _ => {
                cmd.arg("--sqlite-path").arg(stores.sqlite_path());
            }
        }
        let child = cmd
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn nexus-node");
        Node {
            child,
            observer,
            api,
        }
    }

    /// Start and wait until `GET /health` answers 200.
    async fn start(stores: &Stores, client: &reqwest::Client) -> Node {
        let mut node = Node::spawn(stores);
        let started = Instant::now();
        let url = format!("http://{}/health", node.api);
        loop {
            if let Some(status) = node.child.try_wait().expect("child status") {
                panic!(
                    "nexus-node exited before it was ready ({status}):\n{}",
                    stores.log_tail()
                );
            }
            if let Ok(r) = client.get(&url).send().await {
                if r.status() == 200 {
                    return node;
                }
            }
            assert!(
                started.elapsed() < READY_DEADLINE,
                "nexus-node not healthy after {READY_DEADLINE:?}:\n{}",
                stores.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// `kill -9` and reap it: afterwards nothing of it runs.
    async fn kill(mut self) {
        self.child.start_kill().expect("SIGKILL");
        self.child.wait().await.expect("reap nexus-node");
    }
}

/// POST one delivery; `Err` when the connection failed or was cut.
async fn post(
    client: &reqwest::Client,
    observer: SocketAddr,
    d: &Delivery,
) -> Result<(u16, Value), reqwest::Error> {
    let resp = client
        .post(format!("http://{observer}{}", d.route.path()))
        .header("content-type", "application/json")
        .body(d.body.clone())
        .send()
        .await?;
    let code = resp.status().as_u16();
    let text = resp.text().await?;
    Ok((
        code,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// POST and require a 200 (an uninterrupted node acknowledges everything).
async fn post_ok(client: &reqwest::Client, node: &Node, d: &Delivery) -> Value {
    let (code, body) = post(client, node.observer, d)
        .await
        .unwrap_or_else(|e| panic!("POST {}: {e}", d.label));
    assert_eq!(code, 200, "{}: {body}", d.label);
    body
}

// ---------------------------------------------------------------------------
// What is compared

/// The stream: the scenario's 132 deliveries, then empty blocks.
fn stream() -> Vec<Delivery> {
    let scenario = Scenario::parse(SCENARIO).expect("scenario fixture");
    assert_eq!(scenario.contract_id, CONTRACT_ID);
    let mut out = scenario.deliveries();
    assert_eq!(out.len(), 132, "the recorded scenario's deliveries");
    let top = scenario
        .transactions
        .iter()
        .map(|t| t.block_height)
        .max()
        .expect("transactions");
    for h in top + 1..=top + TAIL_BLOCKS {
        out.push(Delivery {
            route: Route::NewBlock,
            body: serde_json::to_vec(&block_envelope("main", h, "main", &[], &[])).expect("json"),
            label: format!("block {h} (empty tail)"),
        });
    }
    out
}

/// The canonical tip after each delivery (the chain is linear).
fn tips(stream: &[Delivery]) -> Vec<Option<String>> {
    let mut tip = None;
    stream
        .iter()
        .map(|d| {
            if d.route == Route::NewBlock {
                let v: Value = serde_json::from_slice(&d.body).expect("block JSON");
                tip = Some(v["index_block_hash"].as_str().expect("hash").to_string());
            }
            tip.clone()
        })
        .collect()
}

/// Wall-clock timestamps are the only thing allowed to differ.
fn timeless_event(mut e: PaymentEvent) -> PaymentEvent {
    e.at.clear();
    e
}

fn timeless_payment(mut p: Payment) -> Payment {
    p.updated_at.clear();
    p
}

fn strip_times(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("at");
            m.remove("updated_at");
            m.values_mut().for_each(strip_times);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_times),
        _ => {}
    }
}

/// Everything compared at the end of a run.
#[derive(Debug, PartialEq)]
struct Outcome {
    /// The whole event log, read from the history store.
    events: Vec<PaymentEvent>,
    /// Every payment, read from the history store.
    payments: Vec<Payment>,
    /// `GET /api/payments?limit=500` and `GET /api/payments/{id}` of each.
    api: Vec<Value>,
}

/// The API's view, read from the live node before it is stopped.
async fn api_view(client: &reqwest::Client, node: &Node) -> Vec<Value> {
    let get = |path: String| {
        let client = client.clone();
        let url = format!("http://{}{path}", node.api);
        async move {
            let resp = client.get(&url).send().await.expect("GET");
            assert_eq!(resp.status(), 200, "GET {url}");
            let mut v: Value = resp.json().await.expect("JSON");
            strip_times(&mut v);
            v
        }
    };
    let list = get("/api/payments?limit=500".to_string()).await;
    assert!(list["next"].is_null(), "more than one page of payments");
    let mut out = vec![list.clone()];
    for p in list["payments"].as_array().expect("payments") {
        let id = p["payment_id"].as_str().expect("payment_id");
        out.push(get(format!("/api/payments/{id}")).await);
    }
    out
}

/// Read the log and the payments from the stores (node stopped), checking
/// `seq` is 1..N and, in production, that Redis holds what history says.
async fn read_outcome(stores: &Stores, api: Vec<Value>) -> Outcome {
    let history = stores.history().await;
    let events = history.events_since(0, 10_000).await.expect("events");
    let last = history.last_seq().await.expect("last_seq");
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=last).collect::<Vec<_>>(), "seq is 1..=last_seq");
    let payments = history
        .list_payments(&PaymentFilter {
            limit: 500,
            ..Default::default()
        })
        .await
        .expect("payments");
    assert!(payments.len() < 500, "more than one page of payments");
    if let Some(state) = stores.state().await {
        assert_eq!(state.last_seq().await.expect("redis seq"), last);
        let ids: Vec<_> = payments.iter().map(|p| p.payment_id).collect();
        let cached = state.get_many(&ids).await.expect("redis records");
        let expected: Vec<Option<Payment>> = payments.iter().cloned().map(Some).collect();
        assert_eq!(cached, expected, "Redis holds what history says");
    }
    Outcome {
        events: events.into_iter().map(timeless_event).collect(),
        payments: payments.into_iter().map(timeless_payment).collect(),
        api,
    }
}

/// The uninterrupted run.
struct Reference {
    outcome: Outcome,
    /// `last_seq` after each delivery.
    seq_after: Vec<u64>,
    tip_after: Vec<Option<String>>,
}

impl Reference {
    /// `(last_seq, tip)` just before delivery `i`.
    fn before(&self, i: usize) -> (u64, Option<String>) {
        match i.checked_sub(1) {
            Some(j) => self.after(j),
            None => (0, None),
        }
    }

    /// `(last_seq, tip)` just after delivery `i`.
    fn after(&self, i: usize) -> (u64, Option<String>) {
        (self.seq_after[i], self.tip_after[i].clone())
    }
}

async fn reference(kind: Kind, stream: &[Delivery], client: &reqwest::Client) -> Reference {
    let stores = Stores::create(kind).await;
    let node = Node::start(&stores, client).await;
    let mut seq = 0;
    let mut seq_after = Vec::with_capacity(stream.len());
    for d in stream {
        let body = post_ok(client, &node, d).await;
        seq += body["events"].as_u64().expect("events count");
        seq_after.push(seq);
    }
    let api = api_view(client, &node).await;
    // Everything is acknowledged, hence durable: a kill loses nothing.
    node.kill().await;
    let outcome = read_outcome(&stores, api).await;
    assert_eq!(outcome.events.len() as u64, seq, "answers' event counts");
    assert!(
        outcome
            .events
            .iter()
            .any(|e| e.event_type.as_str() == "payment:final"),
        "the stream makes payments final"
    );
    Reference {
        outcome,
        seq_after,
        tip_after: tips(stream),
    }
}

// ---------------------------------------------------------------------------
// Crash runs

/// Where a kill landed, judged from the stores afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Landed {
    /// The 200 arrived before the kill: not re-sent.
    Acknowledged,
    /// Committed, but the 200 never arrived: re-sent, must change nothing.
    CommittedUnacknowledged,
    /// Nothing committed: re-sent, must apply.
    NotCommitted,
    /// The delivery changes neither the log nor the tip: cannot tell.
    NoVisibleEffect,
}

/// Where to kill: the block with the most events, the delivery right after
/// the first block with events and the middle of the longest burst of
/// deliveries that each emit events (first run only); then seeded random
/// indices.
fn kill_points(
    reference: &Reference,
    stream: &[Delivery],
    rng: &mut StdRng,
    forced: bool,
) -> Vec<usize> {
    let mut points = BTreeSet::new();
    if forced {
        let events_of = |i: usize| reference.seq_after[i] - reference.before(i).0;
        let blocks_with_events: Vec<usize> = (0..stream.len())
            .filter(|&i| stream[i].route == Route::NewBlock && events_of(i) > 0)
            .collect();
        let busiest = blocks_with_events
            .iter()
            .copied()
            .max_by_key(|&i| (events_of(i), std::cmp::Reverse(i)))
            .expect("a block with events");
        points.insert(busiest);
        points.insert(blocks_with_events[0] + 1);
        // (start, length) of the longest run of event-emitting deliveries.
        let (mut burst, mut start) = ((0, 0), 0);
        for i in 0..stream.len() {
            if events_of(i) == 0 {
                start = i + 1;
            } else if i + 1 - start > burst.1 {
                burst = (start, i + 1 - start);
            }
        }
        assert!(burst.1 >= 3, "the stream has a burst of events");
        points.insert(burst.0 + burst.1 / 2);
    }
    // Half the random points among deliveries that emit events: most of the
    // stream is empty blocks, whose commits are the least interesting.
    let eventful: Vec<usize> = (0..stream.len())
        .filter(|&i| reference.seq_after[i] > reference.before(i).0)
        .collect();
    while points.len() < KILLS_PER_RUN {
        let i = if rng.gen_bool(0.5) {
            eventful[rng.gen_range(0..eventful.len())]
        } else {
            rng.gen_range(0..stream.len())
        };
        points.insert(i);
    }
    points.into_iter().collect()
}

/// `(last_seq, tip)` of the history store, and Redis' `last_seq` in production.
async fn progress(stores: &Stores) -> ((u64, Option<String>), Option<u64>) {
    let history = stores.history().await;
    let seq = history.last_seq().await.expect("last_seq");
    let tip = history
        .tip()
        .await
        .expect("tip")
        .map(|t| t.block.index_block_hash);
    let state = match stores.state().await {
        Some(s) => Some(s.last_seq().await.expect("redis seq")),
        None => None,
    };
    ((seq, tip), state)
}

/// The history log equals the reference's first `n` events.
async fn assert_prefix(stores: &Stores, reference: &Reference, n: u64, what: &str) {
    let events: Vec<PaymentEvent> = stores
        .history()
        .await
        .events_since(0, 10_000)
        .await
        .expect("events")
        .into_iter()
        .map(timeless_event)
        .collect();
    assert_eq!(
        events,
        reference.outcome.events[..n as usize],
        "{what}: the log is not the reference's first {n} events"
    );
}

/// One kill, for the summary.
#[derive(Debug)]
struct Kill {
    index: usize,
    delay_us: u64,
    landed: Landed,
    /// Killed between the history commit and the Redis write.
    state_behind: bool,
    /// Killed a second time while restarting.
    during_restart: bool,
}

async fn crash_run(
    kind: Kind,
    stream: &[Delivery],
    reference: &Reference,
    client: &reqwest::Client,
    seed: u64,
    forced: bool,
) -> Vec<Kill> {
    let mut rng = StdRng::seed_from_u64(seed);
    let points = kill_points(reference, stream, &mut rng, forced);
    let restart_kill = points[rng.gen_range(0..points.len())];
    let stores = Stores::create(kind).await;
    let mut node = Node::start(&stores, client).await;
    let mut kills = Vec::new();
    for (i, d) in stream.iter().enumerate() {
        if !points.contains(&i) {
            post_ok(client, &node, d).await;
            continue;
        }
        let what = format!("{kind:?}, seed {seed:#x}, kill at #{i} ({})", d.label);
        // The POST in flight, then SIGKILL after 0–3 ms (microsecond
        // resolution: tokio's timer only has milliseconds).
        let delay_us = rng.gen_range(0..=MAX_KILL_DELAY_US);
        let in_flight = tokio::spawn({
            let (client, observer, d) = (client.clone(), node.observer, d.clone());
            async move { post(&client, observer, &d).await }
        });
        tokio::task::spawn_blocking(move || std::thread::sleep(Duration::from_micros(delay_us)))
            .await
            .expect("delay");
        node.kill().await;
        stores.quiesce().await;
        let answer = in_flight.await.expect("POST task");
        let acknowledged = matches!(answer, Ok((200, _)));

        // The stores hold the state before or after this delivery, never a mix.
        let (before, after) = (reference.before(i), reference.after(i));
        let (seen, state_seq) = progress(&stores).await;
        let landed = if acknowledged {
            assert_eq!(seen, after, "{what}: acknowledged but not durable");
            Landed::Acknowledged
        } else if before == after {
            assert_eq!(seen, before, "{what}: a no-op delivery changed the stores");
            Landed::NoVisibleEffect
        } else if seen == after {
            Landed::CommittedUnacknowledged
        } else if seen == before {
            Landed::NotCommitted
        } else {
            panic!("{what}: partial commit: (last_seq, tip) = {seen:?}, expected {before:?} or {after:?}");
        };
        assert_prefix(&stores, reference, seen.0, &what).await;
        let state_behind = state_seq.is_some_and(|s| s < seen.0);
        if let Some(s) = state_seq {
            assert!(
                s <= seen.0,
                "{what}: Redis seq {s} ahead of history {}",
                seen.0
            );
        }

        // Sometimes die again while starting up (catching Redis up, warming).
        let during_restart = i == restart_kill;
        if during_restart {
            let early = Node::spawn(&stores);
            let wait = Duration::from_millis(rng.gen_range(0..=40));
            tokio::time::sleep(wait).await;
            early.kill().await;
            stores.quiesce().await;
            let (again, _) = progress(&stores).await;
            assert_eq!(again, seen, "{what}: a killed restart changed history");
        }

        // stacks-node re-sends what was not acknowledged.
        node = Node::start(&stores, client).await;
        if !acknowledged {
            post_ok(client, &node, d).await;
        }
        assert_prefix(&stores, reference, reference.seq_after[i], &what).await;
        kills.push(Kill {
            index: i,
            delay_us,
            landed,
            state_behind,
            during_restart,
        });
    }
    let api = api_view(client, &node).await;
    node.kill().await;
    let outcome = read_outcome(&stores, api).await;
    let what = format!("{kind:?}, seed {seed:#x}, kills at {points:?}");
    assert_eq!(
        outcome.events, reference.outcome.events,
        "{what}: event log"
    );
    assert_eq!(
        outcome.payments, reference.outcome.payments,
        "{what}: payments"
    );
    assert_eq!(outcome.api, reference.outcome.api, "{what}: API");
    kills
}

async fn crash_safety(kind: Kind) {
    let started = Instant::now();
    let seed = std::env::var("NEXUS_CRASH_SEED")
        .ok()
        .map(|s| {
            let s = s.trim_start_matches("0x");
            u64::from_str_radix(s, 16).expect("NEXUS_CRASH_SEED: hex")
        })
        .unwrap_or(DEFAULT_SEED);
    let client = reqwest::Client::builder()
        // A hang must fail the test, not block it.
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let stream = stream();
    let reference = reference(kind, &stream, &client).await;
    let mut kills = Vec::new();
    for run in 0..CRASH_RUNS {
        kills.extend(
            crash_run(
                kind,
                &stream,
                &reference,
                &client,
                seed.wrapping_add(run),
                run == 0,
            )
            .await,
        );
    }
    for k in &kills {
        println!(
            "{kind:?}: kill at #{:3} ({}) after {:4} µs: {:?}{}{}",
            k.index,
            stream[k.index].label,
            k.delay_us,
            k.landed,
            if k.state_behind {
                ", Redis behind history"
            } else {
                ""
            },
            if k.during_restart {
                ", killed again while restarting"
            } else {
                ""
            },
        );
    }
    println!(
        "{kind:?}: seed {seed:#x}, {} kills, {} events each run, {:.1} s",
        kills.len(),
        reference.outcome.events.len(),
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_anywhere_embedded() {
    crash_safety(Kind::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_anywhere_production() {
    crash_safety(Kind::Production).await;
}

/// The node restarts while PostgreSQL is still committing what the killed
/// process sent: a "ghost" commit that lands after the new process read its
/// starting point (tip, `last_seq`) from history.
///
/// A one-shot deferred constraint trigger (test-only, in this test's own
/// database) makes the `COMMIT` of one block sleep at the server, standing in
/// for a slow fsync; the node is killed during that sleep and restarted at
/// once, stacks-node re-sends the block, then the stream carries on.
///
/// Regression: the restarted node used to read its starting point without
/// waiting for that transaction, so the re-sent block was committed twice
/// (or, when the ghost landed later, Redis missed its changes and the next
/// block looped in `Ingestor::plan`). `History::settle` now waits out other
/// writers at start-up, a commit that finds history moved marks the view
/// stale, and `plan` re-reads the view instead of looping.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ghost_commit_after_restart() {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let stream = stream();
    let reference = reference(Kind::Production, &stream, &client).await;
    // Block 4: confirms p2 (events, a payment change).
    let at = stream
        .iter()
        .position(|d| d.label.starts_with("block 4:"))
        .expect("block 4");
    let stores = Stores::create(Kind::Production).await;
    let mut node = Node::start(&stores, &client).await;
    for d in &stream[..at] {
        post_ok(&client, &node, d).await;
    }
    let pool = stores
        .pg_reader(&stores.database_url().expect("production"))
        .await
        .pool()
        .clone();
    for sql in [
        "CREATE TABLE slow_commit (armed bool)",
        "INSERT INTO slow_commit VALUES (true)",
        "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN DELETE FROM slow_commit; IF FOUND THEN PERFORM pg_sleep(2); END IF; \
         RETURN NULL; END $$",
        "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON blocks \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()",
    ] {
        sqlx::query(sql).execute(&pool).await.expect(sql);
    }
    let in_flight = tokio::spawn({
        let (client, observer, d) = (client.clone(), node.observer, stream[at].clone());
        async move { post(&client, observer, &d).await }
    });
    // Kill once the node's COMMIT sleeps at the server.
    let started = Instant::now();
    loop {
        let sleeping: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event = 'PgSleep'",
        )
        .fetch_one(&pool)
        .await
        .expect("pg_stat_activity");
        if sleeping > 0 {
            break;
        }
        assert!(
            started.elapsed() < READY_DEADLINE,
            "the commit never started"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    node.kill().await;
    assert!(in_flight.await.expect("POST task").is_err(), "no 200 yet");
    node = Node::start(&stores, &client).await;
    // stacks-node re-sends the block at once, while the ghost still sleeps:
    // the block is not visible yet, so the node applies it again; its commit
    // waits for the ghost's lock on `meta`, then must not add anything.
    post_ok(&client, &node, &stream[at]).await;
    assert_prefix(&stores, &reference, reference.seq_after[at], "ghost commit").await;
    assert_eq!(progress(&stores).await.0, reference.after(at));
    let history = stores.history().await;
    let payments = history
        .list_payments(&PaymentFilter {
            limit: 500,
            ..Default::default()
        })
        .await
        .expect("payments");
    let ids: Vec<_> = payments.iter().map(|p| p.payment_id).collect();
    let cached = stores
        .state()
        .await
        .expect("redis")
        .get_many(&ids)
        .await
        .expect("redis records");
    assert_eq!(
        cached,
        payments.into_iter().map(Some).collect::<Vec<_>>(),
        "after a ghost commit, Redis holds what history says"
    );
    for d in &stream[at + 1..] {
        post_ok(&client, &node, d).await;
    }
    let api = api_view(&client, &node).await;
    node.kill().await;
    let outcome = read_outcome(&stores, api).await;
    assert_eq!(outcome.events, reference.outcome.events, "event log");
    assert_eq!(outcome.payments, reference.outcome.payments, "payments");
    assert_eq!(outcome.api, reference.outcome.api, "API");
}
