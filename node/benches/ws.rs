//! `make bench-ws`: WebSocket delivery latency and memory, with the node as a
//! separate process (the real `nexus-node` binary) on the real Redis and a
//! fresh PostgreSQL database; the subscribers are real tokio-tungstenite
//! clients in this process. Both sides share this machine's 2 cores.
//!
//! (a) `BENCH_A_SUBS` (default 1,000) clients subscribed to `all`; one
//!     `/new_block` carrying one escrow event is POSTed at a time
//!     (`BENCH_A_ROUNDS`, default 100, after 3 warm-up rounds): latency from
//!     just before the POST to each client's receipt of the frame. The same
//!     rounds with a single subscriber run first, as the in-run baseline
//!     (`a_one_subscriber_*`: the ingest commit plus one frame). After
//!     them, the same rounds go through a bare fan-out server (`ws/bare.rs`:
//!     one task per connection writing a prepared frame, nothing else) in
//!     its own process, timed from the write that triggers it:
//!     `a_bare_fanout_*` is what 1,000 WebSocket frames over loopback cost
//!     on this machine, with no node at all.
//! (b) `BENCH_B_SUBS` (default 10,000) clients, each subscribed to one
//!     principal (a merchant or agent watching its own payments). Blocks of
//!     `BENCH_B_PER_BLOCK` (100) payments between random principals are
//!     POSTed at `BENCH_B_RATE` (1,000) events/s for `BENCH_B_SECS` (30) s;
//!     each event goes to its sender's and its recipient's subscriber.
//!     Latency from just before the POST of the event's block to receipt;
//!     dropped = expected notifications never received (after a 10 s
//!     drain); node RSS growth per connection (VmRSS with every client
//!     connected and subscribed, minus VmRSS before the first connection).
//!
//! Progress on stderr; the last stdout line is one JSON object.

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::process::Stdio;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::{SinkExt, StreamExt};
use rand::Rng;
use serde_json::{json, Value};
use sqlx::Connection;
use tokio::process::Command;
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;

#[path = "ws/bare.rs"]
mod bare;
mod common;
use common as gen;
#[path = "../tests/common/blocks.rs"]
mod blocks;
use blocks::{payment_id, principal_of, Chain, NewPayment};

/// Warm-up rounds of (a), not measured.
const A_WARMUP: usize = 3;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .map(|v| v.parse().unwrap_or_else(|_| panic!("{name}={v:?}")))
        .unwrap_or(default)
}

fn main() {
    if let Ok(spec) = std::env::var(bare::ENV) {
        return bare::serve(&spec);
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let report = rt.block_on(run());
    println!("{report}");
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

fn rss_kib(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn pct(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return -1.0;
    }
    let i = ((p * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len()) - 1;
    (sorted[i] * 1e3).round() / 1e3
}

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// Connect and subscribe with `params`; returns once the subscription is confirmed.
async fn subscriber(api: SocketAddr, params: Value) -> Ws {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{api}/ws"))
        .await
        .expect("connect");
    ws.send(Message::Text(
        json!({"jsonrpc":"2.0","id":1,"method":"subscribe","params":params}).to_string(),
    ))
    .await
    .expect("subscribe");
    loop {
        match ws.next().await {
            Some(Ok(Message::Text(t))) => {
                assert!(t.contains("\"result\""), "subscribe failed: {t}");
                return ws;
            }
            Some(Ok(_)) => continue,
            other => panic!("subscribe: {other:?}"),
        }
    }
}

/// A client of (a): the latency of each text frame, from `sent_at`, goes to
/// `tx`; the first frame is kept in `keep` if given.
async fn latency_client(
    mut ws: Ws,
    tx: mpsc::UnboundedSender<f64>,
    sent_at: Arc<AtomicU64>,
    nanos: impl Fn() -> u64 + Send + 'static,
    keep: Option<Arc<std::sync::Mutex<Option<String>>>>,
) {
    while let Some(Ok(m)) = ws.next().await {
        if let Message::Text(t) = m {
            let lat = nanos().saturating_sub(sent_at.load(Ordering::Acquire));
            if tx.send(lat as f64 / 1e6).is_err() {
                return;
            }
            if let Some(k) = &keep {
                k.lock().unwrap().get_or_insert(t);
            }
        }
    }
}

/// (a)'s rounds through the bare fan-out server ([`bare`]): `subs` clients,
/// `rounds` frames (after the warm-up), each timed from the write of the
/// frame to the control socket to its receipt. Sorted latencies in ms.
async fn bare_floor(
    subs: usize,
    rounds: usize,
    frame: String,
    nanos: impl Fn() -> u64 + Copy + Send + 'static,
) -> Vec<f64> {
    use tokio::io::AsyncWriteExt;
    let (ws_addr, control) = (free_port(), free_port());
    let mut server = Command::new(std::env::current_exe().expect("own path"))
        .env(bare::ENV, format!("{ws_addr} {control}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn the bare server");
    let t = Instant::now();
    let mut ctl = loop {
        match tokio::net::TcpStream::connect(control).await {
            Ok(s) => break s,
            Err(e) => {
                assert!(t.elapsed() < Duration::from_secs(30), "bare server: {e}");
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    };
    ctl.set_nodelay(true).expect("nodelay");
    let sent_at = Arc::new(AtomicU64::new(0));
    let (tx, mut samples) = mpsc::unbounded_channel::<f64>();
    let mut clients = Vec::with_capacity(subs);
    for _ in 0..subs {
        let ws = subscriber(ws_addr, json!({"event": "all"})).await;
        clients.push(tokio::spawn(latency_client(
            ws,
            tx.clone(),
            sent_at.clone(),
            nanos,
            None,
        )));
    }
    drop(tx);
    let line = format!("{frame}\n");
    let mut lat = Vec::with_capacity(subs * rounds);
    for round in 0..A_WARMUP + rounds {
        sent_at.store(nanos(), Ordering::Release);
        ctl.write_all(line.as_bytes()).await.expect("control");
        for _ in 0..subs {
            let l = tokio::time::timeout(Duration::from_secs(30), samples.recv())
                .await
                .unwrap_or_else(|_| panic!("bare round {round}: a client got nothing in 30 s"))
                .expect("clients alive");
            if round >= A_WARMUP {
                lat.push(l);
            }
        }
    }
    for c in &clients {
        c.abort();
    }
    server.kill().await.ok();
    lat.sort_by(f64::total_cmp);
    lat
}

async fn run() -> Value {
    let a_subs = env_usize("BENCH_A_SUBS", 1_000);
    let a_rounds = env_usize("BENCH_A_ROUNDS", 100);
    let b_subs = env_usize("BENCH_B_SUBS", 10_000);
    let b_rate = env_usize("BENCH_B_RATE", 1_000);
    let b_secs = env_usize("BENCH_B_SECS", 30);
    let b_per_block = env_usize("BENCH_B_PER_BLOCK", 100);

    // A fresh database and Redis prefix.
    let tag = format!("{:016x}", rand::random::<u64>());
    let admin = std::env::var("NEXUS_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let redis =
        std::env::var("NEXUS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let db = format!("nexus_bench_ws_{tag}");
    {
        let mut conn = sqlx::PgConnection::connect(&admin)
            .await
            .expect("PostgreSQL");
        sqlx::query(&format!("CREATE DATABASE {db}"))
            .execute(&mut conn)
            .await
            .expect("create database");
    }
    let mut db_url = reqwest::Url::parse(&admin).unwrap();
    db_url.set_path(&format!("/{db}"));
    let prefix = format!("nexus-bench-ws:{tag}:");

    let (observer, api) = (free_port(), free_port());
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nexus-node"));
    cmd.arg("--config")
        .arg(dir.path().join("absent.toml"))
        .arg("run")
        .args(["--observer-addr", &observer.to_string()])
        .args(["--api-addr", &api.to_string()])
        .args(["--redis-url", &redis])
        .args(["--database-url", db_url.as_str()]);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("NEXUS_") {
            cmd.env_remove(key);
        }
    }
    let mut node = cmd
        .env("NEXUS_REDIS_PREFIX", &prefix)
        .env(
            "NEXUS_WS_MAX_CONNECTIONS",
            (b_subs + a_subs + 100).to_string(),
        )
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn nexus-node");
    let pid = node.id().expect("pid");
    let http = reqwest::Client::new();
    let t = Instant::now();
    while !http
        .get(format!("http://{api}/health"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(t.elapsed() < Duration::from_secs(60), "node did not start");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_start = rss_kib(pid);
    eprintln!("bench-ws: node pid {pid} on {api} (database {db}), RSS {rss_start} KiB");
    let post = |body: Vec<u8>| {
        let http = http.clone();
        async move {
            // Like stacks-node: a 5xx (a store timing out under load) is retried.
            for _ in 0..50 {
                let r = http
                    .post(format!("http://{observer}/new_block"))
                    .header("content-type", "application/json")
                    .body(body.clone())
                    .send()
                    .await
                    .expect("POST /new_block");
                if r.status().is_success() {
                    return;
                }
                assert!(r.status().is_server_error(), "HTTP {}", r.status());
                eprintln!("bench-ws: HTTP {}, retrying", r.status());
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            panic!("/new_block kept failing");
        }
    };
    let mut chain = Chain::new();
    let mut next_id = 0u64;
    let base = Instant::now();
    let nanos = move || base.elapsed().as_nanos() as u64;

    // ---- (a): one event at a time to every subscriber; first with one
    // subscriber (the ingest commit plus one frame: the floor of (a) on this
    // machine, measured in the same run), then with all of them.
    let sent_at = Arc::new(AtomicU64::new(0));
    let (tx, mut samples) = mpsc::unbounded_channel::<f64>();
    // One notification as the node sent it, for the bare floor below.
    let frame = Arc::new(std::sync::Mutex::new(None::<String>));
    let mut clients = Vec::new();
    let mut lat_base = Vec::with_capacity(a_rounds);
    let mut lat_a = Vec::with_capacity(a_subs * a_rounds);
    for (phase, subs) in [(0, 1), (1, a_subs)] {
        while clients.len() < subs {
            let ws = subscriber(api, json!({"event": "all"})).await;
            clients.push(tokio::spawn(latency_client(
                ws,
                tx.clone(),
                sent_at.clone(),
                nanos,
                Some(frame.clone()),
            )));
        }
        eprintln!("bench-ws (a): {subs} subscribers connected");
        let out = if phase == 0 {
            &mut lat_base
        } else {
            &mut lat_a
        };
        for round in 0..A_WARMUP + a_rounds {
            next_id += 1;
            let body = chain.block(&[NewPayment {
                id: payment_id(next_id),
                payer: 20_000 + next_id % 50,
                payee: 20_100 + next_id % 50,
                amount: 1_000,
            }]);
            sent_at.store(nanos(), Ordering::Release);
            post(body).await;
            for _ in 0..subs {
                let lat = tokio::time::timeout(Duration::from_secs(30), samples.recv())
                    .await
                    .unwrap_or_else(|_| {
                        panic!("(a) round {round}: a subscriber got nothing in 30 s")
                    })
                    .expect("clients alive");
                if round >= A_WARMUP {
                    out.push(lat);
                }
            }
        }
    }
    drop(tx);
    lat_base.sort_by(f64::total_cmp);
    eprintln!(
        "bench-ws (a) baseline, 1 subscriber: p50 {} ms, p99 {} ms",
        pct(&lat_base, 0.5),
        pct(&lat_base, 0.99)
    );
    for c in &clients {
        c.abort();
    }
    lat_a.sort_by(f64::total_cmp);
    eprintln!(
        "bench-ws (a): {} samples, p50 {} ms, p99 {} ms, max {} ms",
        lat_a.len(),
        pct(&lat_a, 0.5),
        pct(&lat_a, 0.99),
        pct(&lat_a, 1.0)
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    let frame = frame.lock().unwrap().clone().expect("(a) received a frame");
    let lat_bare = bare_floor(a_subs, a_rounds, frame, nanos).await;
    eprintln!(
        "bench-ws (a) floor, bare fan-out server: p50 {} ms, p99 {} ms",
        pct(&lat_bare, 0.5),
        pct(&lat_bare, 0.99)
    );

    // ---- (b): many principal subscribers, a steady event rate.
    let blocks_n = (b_rate * b_secs).div_ceil(b_per_block);
    let mut rng = rand::thread_rng();
    let mut block_of: HashMap<String, usize> = HashMap::new();
    let mut bodies = Vec::with_capacity(blocks_n);
    for b in 0..blocks_n {
        let ps: Vec<NewPayment> = (0..b_per_block)
            .map(|_| {
                next_id += 1;
                let payer = rng.gen_range(0..b_subs as u64);
                let payee = (payer + rng.gen_range(1..b_subs as u64)) % b_subs as u64;
                block_of.insert(payment_id(next_id).to_string(), b);
                NewPayment {
                    id: payment_id(next_id),
                    payer,
                    payee,
                    amount: 1_000,
                }
            })
            .collect();
        bodies.push(chain.block(&ps));
    }
    let expected = blocks_n * b_per_block * 2;
    eprintln!("bench-ws (b): generated {blocks_n} blocks of {b_per_block} payments");
    let block_of = Arc::new(block_of);
    let block_sent: Arc<Vec<AtomicU64>> =
        Arc::new((0..blocks_n).map(|_| AtomicU64::new(0)).collect());
    let closed = Arc::new(AtomicUsize::new(0));
    let (tx, mut samples) = mpsc::unbounded_channel::<f64>();
    let t_connect = Instant::now();
    let subs: Vec<Ws> = futures::stream::iter(0..b_subs)
        .map(|i| {
            subscriber(
                api,
                json!({"event": "principal", "principal": principal_of(i as u64)}),
            )
        })
        .buffer_unordered(64)
        .collect()
        .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    let rss_connected = rss_kib(pid);
    let per_conn_kib = (rss_connected.saturating_sub(rss_start)) as f64 / b_subs as f64;
    eprintln!(
        "bench-ws (b): {b_subs} subscribers in {:.1?}; node RSS {rss_start} -> {rss_connected} KiB ({per_conn_kib:.1} KiB per connection)",
        t_connect.elapsed()
    );
    let mut clients = Vec::with_capacity(b_subs);
    for mut ws in subs {
        let (tx, block_of, block_sent, closed) = (
            tx.clone(),
            block_of.clone(),
            block_sent.clone(),
            closed.clone(),
        );
        clients.push(tokio::spawn(async move {
            while let Some(msg) = ws.next().await {
                match msg {
                    Ok(Message::Text(t)) => {
                        let now = nanos();
                        let v: Value = serde_json::from_str(&t).expect("JSON");
                        // The block's own event; its `payment:final` comes
                        // `confirmation_depth` blocks later and is not this
                        // block's delivery latency.
                        if v["params"]["type"] != "payment:confirmed" {
                            continue;
                        }
                        if let Some(b) = v["params"]["payment_id"]
                            .as_str()
                            .and_then(|id| block_of.get(id))
                        {
                            let sent = block_sent[*b].load(Ordering::Acquire);
                            let _ = tx.send(now.saturating_sub(sent) as f64 / 1e6);
                        }
                    }
                    Ok(Message::Close(_)) | Err(_) => {
                        closed.fetch_add(1, Ordering::AcqRel);
                        return;
                    }
                    Ok(_) => {}
                }
            }
            closed.fetch_add(1, Ordering::AcqRel);
        }));
    }
    drop(tx);
    let interval = Duration::from_secs_f64(b_per_block as f64 / b_rate as f64);
    let mut tick = tokio::time::interval(interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let t_post = Instant::now();
    let mut lat_b = Vec::with_capacity(expected);
    for (b, body) in bodies.into_iter().enumerate() {
        tick.tick().await;
        block_sent[b].store(nanos(), Ordering::Release);
        post(body).await;
        while let Ok(l) = samples.try_recv() {
            lat_b.push(l);
        }
    }
    let posting = t_post.elapsed();
    let drain = Instant::now();
    while lat_b.len() < expected && drain.elapsed() < Duration::from_secs(10) {
        match tokio::time::timeout(Duration::from_millis(200), samples.recv()).await {
            Ok(Some(l)) => lat_b.push(l),
            Ok(None) => break,
            Err(_) => {}
        }
    }
    let rss_end = rss_kib(pid);
    let dropped = expected.saturating_sub(lat_b.len());
    let achieved = (blocks_n * b_per_block) as f64 / posting.as_secs_f64();
    lat_b.sort_by(f64::total_cmp);
    eprintln!(
        "bench-ws (b): {} of {expected} notifications, p50 {} ms, p99 {} ms, max {} ms; {} events/s achieved; {} connections closed; node RSS at end {rss_end} KiB",
        lat_b.len(),
        pct(&lat_b, 0.5),
        pct(&lat_b, 0.99),
        pct(&lat_b, 1.0),
        achieved.round(),
        closed.load(Ordering::Acquire),
    );
    for c in &clients {
        c.abort();
    }
    node.kill().await.ok();
    {
        if let Ok(mut conn) = sqlx::PgConnection::connect(&admin).await {
            let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                .execute(&mut conn)
                .await;
        }
        if let Ok(c) = nexus_store::redis::RedisState::connect(&redis, &prefix).await {
            let _ = c.flush_prefix().await;
        }
    }
    json!({
        "bench": "ws",
        "a_subscribers": a_subs,
        "a_rounds": a_rounds,
        "a_p50_ms": pct(&lat_a, 0.5),
        "a_p99_ms": pct(&lat_a, 0.99),
        "a_max_ms": pct(&lat_a, 1.0),
        "a_one_subscriber_p50_ms": pct(&lat_base, 0.5),
        "a_one_subscriber_p99_ms": pct(&lat_base, 0.99),
        "a_bare_fanout_p50_ms": pct(&lat_bare, 0.5),
        "a_bare_fanout_p99_ms": pct(&lat_bare, 0.99),
        "b_subscribers": b_subs,
        "b_filter": "principal",
        "b_events_per_sec_target": b_rate,
        "b_events_per_sec_achieved": achieved.round(),
        "b_secs": b_secs,
        "b_expected": expected,
        "b_received": lat_b.len(),
        "b_p50_ms": pct(&lat_b, 0.5),
        "b_p99_ms": pct(&lat_b, 0.99),
        "b_max_ms": pct(&lat_b, 1.0),
        "b_dropped": dropped,
        "b_closed": closed.load(Ordering::Acquire),
        "b_rss_per_conn_kib": (per_conn_kib * 10.0).round() / 10.0,
        "node_rss_kib": {"start": rss_start, "connected": rss_connected, "end": rss_end},
        "stores": "redis+postgres",
        "date": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
    })
}
