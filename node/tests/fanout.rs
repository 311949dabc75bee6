//! Two node processes on one Redis and one PostgreSQL: an event ingested by
//! one (this test process) reaches a WebSocket client of the other (the real
//! `nexus-node` binary), through the Redis fan-out channel.

mod common;

use std::net::{SocketAddr, TcpListener};
use std::process::Stdio;
use std::time::Duration;

use common::blocks::{payment_id, principal_of, Chain, NewPayment};
use common::{eventually, start_node, Stores};
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::process::Command;
use tokio_tungstenite::tungstenite::Message;

type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The next text frame, as JSON.
async fn next(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(15), ws.next())
            .await
            .expect("a frame in time")
            .expect("open")
            .expect("frame");
        if let Message::Text(t) = m {
            return serde_json::from_str::<Value>(&t).unwrap();
        }
    }
}

fn free_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .expect("free port")
        .local_addr()
        .expect("addr")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_ingested_on_one_instance_reaches_a_client_of_another() {
    let a = start_node(Stores::Production, |_| {}).await;
    let dir = tempfile::tempdir().expect("temp dir");
    let (observer, api) = (free_port(), free_port());
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nexus-node"));
    cmd.arg("--config")
        .arg(dir.path().join("absent.toml"))
        .arg("run")
        .args(["--observer-addr", &observer.to_string()])
        .args(["--api-addr", &api.to_string()])
        .args(["--contract-id", &a.config.contract_id])
        .args(["--redis-url", a.config.redis_url.as_deref().expect("redis")])
        .args([
            "--database-url",
            a.config.database_url.as_deref().expect("pg"),
        ]);
    for (key, _) in std::env::vars_os() {
        if key.to_string_lossy().starts_with("NEXUS_") {
            cmd.env_remove(key);
        }
    }
    let mut b = cmd
        .env("NEXUS_REDIS_PREFIX", &a.config.redis_prefix)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("spawn nexus-node");
    let http = reqwest::Client::new();
    eventually("instance B is up", Duration::from_secs(30), || async {
        http.get(format!("http://{api}/health"))
            .send()
            .await
            .is_ok_and(|r| r.status().is_success())
    })
    .await;

    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{api}/ws"))
        .await
        .expect("connect to B");
    ws.send(Message::Text(
        json!({"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"event":"principal","principal":principal_of(2)}})
            .to_string(),
    ))
    .await
    .unwrap();
    assert!(
        next(&mut ws).await.get("result").is_some(),
        "subscribed on B"
    );

    // Ingested on A only.
    let mut chain = Chain::new();
    let p = |n, payer, payee| NewPayment {
        id: payment_id(n),
        payer,
        payee,
        amount: 5_000,
    };
    let t0 = std::time::Instant::now();
    a.post_ok("/new_block", chain.block(&[p(1, 1, 2), p(2, 3, 4)]))
        .await;
    let note = next(&mut ws).await;
    let latency = t0.elapsed();
    assert_eq!(
        note["params"]["payment_id"],
        json!(payment_id(1).to_string())
    );
    assert_eq!(note["params"]["seq"], 1);
    a.post_ok("/new_block", chain.block(&[p(3, 2, 5)])).await;
    let note = next(&mut ws).await;
    assert_eq!(
        note["params"]["payment_id"],
        json!(payment_id(3).to_string())
    );
    assert_eq!(note["params"]["seq"], 3);
    // Through Redis, not the 1 s log check.
    assert!(latency < Duration::from_millis(900), "took {latency:?}");
    let published = a.metric("nexus_fanout_published_total").await;
    assert!(published >= 3.0, "A published its events ({published})");

    b.kill().await.ok();
    a.stop().await;
}
