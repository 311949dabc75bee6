//! Harness for the node's end-to-end tests: a real node on ephemeral ports,
//! backed either by the embedded stores (memory + a temporary SQLite file) or
//! by the real Redis and PostgreSQL on this machine, each test isolated (a
//! fresh database and a random Redis key prefix), driven over real HTTP.
//!
//! Services: `NEXUS_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`,
//! used to `CREATE DATABASE nexus_t_<hex>`) and `NEXUS_TEST_REDIS_URL`
//! (default `redis://127.0.0.1:6379`).

// Each test binary uses a different part of the harness.
#![allow(dead_code)]

pub mod proxy;
// Block generators (`blocks`) built on the benches' print/account generators (`gen`).
pub mod blocks;
#[path = "../../benches/common/mod.rs"]
pub mod gen;

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nexus_core::domain::{Payment, PaymentEvent};
use nexus_node::app::App;
use nexus_node::config::Config;
use nexus_node::server::{self, Running};
use nexus_store::{DeadLetter, PaymentFilter};
use serde_json::Value;
use sqlx::Connection;

/// Runs each named `async fn(Stores)` of the test file as two tests,
/// `name::embedded` and `name::production`.
#[allow(unused_macros)]
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
#[allow(unused_imports)]
pub(crate) use both_stores;

/// Which store implementations the node runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stores {
    /// Memory state + SQLite history (the default deployment).
    Embedded,
    /// Redis state + PostgreSQL history (the real services).
    Production,
}

/// The `type` of each event of a `GET /api/payments/{id}` answer, in order.
pub fn event_types(p: &Value) -> Vec<String> {
    p["events"]
        .as_array()
        .expect("events")
        .iter()
        .map(|e| e["type"].as_str().expect("type").to_string())
        .collect()
}

/// Admin URL of the test PostgreSQL server.
pub fn pg_admin_url() -> String {
    std::env::var("NEXUS_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// URL of the test Redis server.
pub fn redis_url() -> String {
    std::env::var("NEXUS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

/// `url` with its path (the database) replaced by `/db`.
pub fn with_database(url: &str, db: &str) -> String {
    let mut u = reqwest::Url::parse(url).expect("database URL");
    u.set_path(&format!("/{db}"));
    u.to_string()
}

/// `url` pointing at `addr` instead of its own host and port (to go through a proxy).
pub fn via(url: &str, addr: SocketAddr) -> String {
    let mut u = reqwest::Url::parse(url).expect("service URL");
    u.set_host(Some(&addr.ip().to_string())).expect("host");
    u.set_port(Some(addr.port())).expect("port");
    u.to_string()
}

fn random_hex() -> String {
    format!("{:016x}", rand::random::<u64>())
}

/// What the node stores into, kept across restarts; cleaned up on drop
/// (also after a failed assertion).
struct Backing {
    /// Holds the SQLite file of the embedded default.
    dir: tempfile::TempDir,
    /// `(admin_url, database)` of the fresh PostgreSQL database.
    pg: Option<(String, String)>,
    /// `(redis_url, prefix)` of the random Redis key prefix.
    redis: Option<(String, String)>,
}

impl Backing {
    async fn create(stores: Stores) -> Backing {
        let dir = tempfile::tempdir().expect("temp dir");
        if stores == Stores::Embedded {
            return Backing {
                dir,
                pg: None,
                redis: None,
            };
        }
        let admin_url = pg_admin_url();
        let name = nexus_testkit::pg::create_database(&admin_url).await;
        Backing {
            dir,
            pg: Some((admin_url, name)),
            redis: Some((redis_url(), format!("nexus-node-test:{}:", random_hex()))),
        }
    }

    /// The configuration of a node on these stores, on ephemeral ports.
    fn config(&self) -> Config {
        Config {
            observer_addr: "127.0.0.1:0".parse().expect("static"),
            api_addr: "127.0.0.1:0".parse().expect("static"),
            sqlite_path: self.dir.path().join("history.sqlite"),
            database_url: self
                .pg
                .as_ref()
                .map(|(admin, name)| with_database(admin, name)),
            redis_url: self.redis.as_ref().map(|(url, _)| url.clone()),
            redis_prefix: self
                .redis
                .as_ref()
                .map(|(_, p)| p.clone())
                .unwrap_or_else(|| "unused:".into()),
            // Tests poll the API quickly; the relay tests turn limits on.
            rate_limit_per_ip: None,
            rate_limit_per_key: None,
            ..Config::default()
        }
    }
}

impl Drop for Backing {
    /// Best effort: drop the database and the Redis keys on a separate
    /// thread with its own runtime (a destructor cannot await).
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
                    if let Ok(s) = nexus_store::redis::RedisState::connect(&url, &prefix).await {
                        let _ = s.flush_prefix().await;
                    }
                }
                if let Some((admin_url, name)) = pg {
                    let mut admin = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut admin)
                        .await
                        .ok()?;
                }
                Some(())
            })
        })
        .join();
    }
}

/// A running node under test.
pub struct TestNode {
    pub stores: Stores,
    /// The configuration it was started with (after the test's tweak).
    pub config: Config,
    pub observer: SocketAddr,
    pub api: SocketAddr,
    running: Option<Running>,
    client: reqwest::Client,
    backing: Arc<Backing>,
}

/// Start a node on fresh stores of kind `stores`; `tweak` may change the
/// configuration (body limit, URLs through a proxy) before it starts.
pub async fn start_node(stores: Stores, tweak: impl FnOnce(&mut Config)) -> TestNode {
    let backing = Arc::new(Backing::create(stores).await);
    let mut config = backing.config();
    tweak(&mut config);
    start_with(stores, config, backing).await
}

async fn start_with(stores: Stores, config: Config, backing: Arc<Backing>) -> TestNode {
    let running = server::start(config.clone()).await.expect("node starts");
    TestNode {
        stores,
        observer: running.observer_addr,
        api: running.api_addr,
        config,
        running: Some(running),
        // A hang must fail the test, not block it forever.
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .expect("client"),
        backing,
    }
}

impl TestNode {
    /// The node's shared state (stores, bus, metrics).
    pub fn app(&self) -> &Arc<App> {
        &self.running.as_ref().expect("running").app
    }

    /// POST `body` to the observer at `path`: the status and the JSON answer
    /// (a JSON string holding the text when the answer is not JSON).
    pub async fn post(&self, path: &str, body: impl Into<reqwest::Body>) -> (u16, Value) {
        let resp = self
            .client
            .post(format!("http://{}{}", self.observer, path))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .unwrap_or_else(|e| panic!("POST {path}: {e}"));
        split(resp).await
    }

    /// POST and require a 200.
    pub async fn post_ok(&self, path: &str, body: impl Into<reqwest::Body>) -> Value {
        let (code, v) = self.post(path, body).await;
        assert_eq!(code, 200, "POST {path}: {v}");
        v
    }

    /// GET `path` on the API listener.
    pub async fn get(&self, path: &str) -> (u16, Value) {
        let resp = self
            .client
            .get(format!("http://{}{}", self.api, path))
            .send()
            .await
            .unwrap_or_else(|e| panic!("GET {path}: {e}"));
        split(resp).await
    }

    /// The value of one Prometheus sample, e.g. `nexus_blocks_ingested_total`
    /// (0 when absent: a family with no labels yet).
    pub async fn metric(&self, sample: &str) -> f64 {
        let text = self
            .client
            .get(format!("http://{}/metrics", self.api))
            .send()
            .await
            .expect("GET /metrics")
            .text()
            .await
            .expect("metrics text");
        text.lines()
            .filter(|l| !l.starts_with('#'))
            .find_map(|l| {
                let (name, value) = l.rsplit_once(' ')?;
                (name == sample).then(|| value.parse().expect("metric value"))
            })
            .unwrap_or(0.0)
    }

    /// Every dead letter, oldest first.
    pub async fn dead_letters(&self) -> Vec<DeadLetter> {
        let mut dl = self
            .app()
            .ingestor
            .history()
            .dead_letters(10_000)
            .await
            .expect("dead letters");
        dl.reverse();
        dl
    }

    /// Stop the node and wait for every task to end; the stores are kept
    /// until the last handle is dropped.
    async fn shutdown(&mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown.cancel();
            tokio::time::timeout(Duration::from_secs(10), running.wait())
                .await
                .expect("node stops within 10 s")
                .expect("node tasks end cleanly");
        }
    }

    /// Stop the node, then drop its stores.
    pub async fn stop(mut self) {
        self.shutdown().await;
    }

    /// Stop the node and start a new one on the same stores and configuration
    /// (new ephemeral ports).
    pub async fn restart(self) -> TestNode {
        self.restart_with(|_| {}).await
    }

    /// [`TestNode::restart`], with `tweak` applied to the configuration.
    pub async fn restart_with(mut self, tweak: impl FnOnce(&mut Config)) -> TestNode {
        self.shutdown().await;
        let mut config = self.config.clone();
        tweak(&mut config);
        config.observer_addr = "127.0.0.1:0".parse().expect("static");
        config.api_addr = "127.0.0.1:0".parse().expect("static");
        start_with(self.stores, config, self.backing.clone()).await
    }
}

/// The status and the JSON answer (a JSON string holding the text when not JSON).
pub async fn split(resp: reqwest::Response) -> (u16, Value) {
    let code = resp.status().as_u16();
    let text = resp.text().await.expect("response body");
    let v = serde_json::from_str(&text).unwrap_or(Value::String(text));
    (code, v)
}

/// Poll `cond` every 10 ms until it holds; panic after `deadline`.
pub async fn eventually<F, Fut>(what: &str, deadline: Duration, mut cond: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let start = Instant::now();
    while !cond().await {
        assert!(
            start.elapsed() < deadline,
            "timed out after {deadline:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

// ---------------------------------------------------------------------------
// Fixtures

/// One line of a stacks-blockchain-api event-replay dump.
#[derive(Debug, Clone)]
pub struct TsvEvent {
    pub id: String,
    pub timestamp: String,
    /// The observer path (`/new_block`, ...).
    pub path: String,
    /// The raw JSON body, exactly as stacks-node POSTed it.
    pub body: String,
}

/// Read the captured `stacks-blockchain-api/<name>` (not in the repository:
/// call `nexus_testkit::needs_captured!()` first): 4 TAB-separated fields a
/// line, no header.
pub fn read_tsv(name: &str) -> Vec<TsvEvent> {
    let text = nexus_testkit::read_captured(&format!("stacks-blockchain-api/{name}"));
    text.lines()
        .filter(|l| !l.trim().is_empty())
        .enumerate()
        .map(|(i, line)| {
            let f: Vec<&str> = line.trim_end_matches('\r').splitn(4, '\t').collect();
            assert_eq!(
                f.len(),
                4,
                "{name} line {}: expected 4 TAB-separated fields",
                i + 1
            );
            TsvEvent {
                id: f[0].to_string(),
                timestamp: f[1].to_string(),
                path: f[2].to_string(),
                body: f[3].to_string(),
            }
        })
        .collect()
}

/// A file of `stacks-node-mocknet/`.
pub fn read_mocknet(name: &str) -> String {
    nexus_testkit::read_captured(&format!("stacks-node-mocknet/{name}"))
}

/// The recorded escrow scenario (`tests/fixtures/escrow-simnet.json`).
pub const SCENARIO: &str = include_str!("../../../tests/fixtures/escrow-simnet.json");

// ---------------------------------------------------------------------------
// Snapshots

/// Everything the node has stored that a delivery could change, except dead
/// letters: compare before and after.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// Every payment in history, by id.
    pub payments: Vec<Payment>,
    /// The state store's record of each of those payments.
    pub state: Vec<Option<Payment>>,
    /// The whole event log.
    pub events: Vec<PaymentEvent>,
    pub history_seq: u64,
    pub state_seq: u64,
}

/// Read a [`Snapshot`] straight from the node's stores.
pub async fn snapshot(node: &TestNode) -> Snapshot {
    let history = node.app().ingestor.history();
    let state = node.app().ingestor.state();
    let mut payments = Vec::new();
    let mut after = None;
    loop {
        let page = history
            .list_payments(&PaymentFilter {
                after: after.clone(),
                limit: 500,
                ..Default::default()
            })
            .await
            .expect("list payments");
        let full = page.len() == 500;
        after = page.last().map(|p| p.payment_id.to_string());
        payments.extend(page);
        if !full {
            break;
        }
    }
    let ids: Vec<_> = payments.iter().map(|p| p.payment_id).collect();
    Snapshot {
        state: state.get_many(&ids).await.expect("state records"),
        events: history.events_since(0, 1_000_000).await.expect("events"),
        history_seq: history.last_seq().await.expect("history seq"),
        state_seq: state.last_seq().await.expect("state seq"),
        payments,
    }
}

impl Snapshot {
    /// The state store holds exactly what history says.
    pub fn assert_consistent(&self) {
        assert_eq!(
            self.state_seq, self.history_seq,
            "state last_seq == history last_seq"
        );
        for (p, s) in self.payments.iter().zip(&self.state) {
            assert_eq!(
                s.as_ref(),
                Some(p),
                "state record of {} equals history",
                p.payment_id
            );
        }
        let seqs: Vec<u64> = self.events.iter().map(|e| e.seq).collect();
        let expected: Vec<u64> = (1..=self.history_seq).collect();
        assert_eq!(seqs, expected, "event seqs are 1..=last_seq, gap-free");
    }
}
