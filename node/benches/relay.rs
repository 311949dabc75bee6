//! `make bench-relay`: sustained `POST /api/payments` over loopback into a
//! real node on real Redis (idempotency keys, rate limits, state) and
//! PostgreSQL (history, broadcast schedule), the stacks-node RPC test double
//! answering each broadcast after 1 ms.
//!
//! Every request is a distinct create-payment signed here with a fresh key
//! (`stacks-codec`'s signer), so the node does the full work: decode, verify
//! the signature, check the call, reserve the key, schedule, commit.
//! Then the same requests again (idempotent replays), then the same client
//! loop against a bare axum handler that only parses the JSON body (HTTP +
//! JSON on this machine), then against [`floor`]: a server doing only the
//! work every relayed payment needs whatever the design (validate, reserve
//! the key, a durable row, the broadcast and its note), so that how close
//! the node comes, and whether the target is within reach here at all, are
//! measured in the same run.
//!
//! Knobs: `BENCH_PAYMENTS` (20000), `BENCH_CLIENTS` (64). Last line: one JSON object.

use std::sync::Arc;
use std::time::{Duration, Instant};

use clarity::types::chainstate::StacksAddress;
use clarity::types::Address;
use clarity::util::secp256k1::Secp256k1PrivateKey;
use clarity::vm::types::{PrincipalData, Value};
use clarity::vm::{ClarityName, ContractName};
use serde_json::json;
use sqlx::Connection;
use stacks_codec::codec::{
    FungibleConditionCode, PostConditionPrincipal, StacksMessageCodec, StacksTransaction,
    StacksTransactionSigner, TransactionAuth, TransactionContractCall, TransactionPayload,
    TransactionPostCondition, TransactionPostConditionMode, TransactionVersion,
};

use nexus_core::validate::{validate, RelayPolicy};
use nexus_node::config::{Config, DEFAULT_CONTRACT_ID};
use nexus_relay::ratelimit::Quota;
use nexus_stacks::scripted;

#[path = "relay/floor.rs"]
mod floor;
#[path = "common/load.rs"]
mod load;

use load::{env_usize, load, summary};

const RECIPIENT: &str = "ST2CY5V39NHDPWSXMW9QDT3HC3GD6Q6XX4CFRK9AG";

/// A signed create-payment of payment id `n` (JSON request body).
fn signed_create(n: u64, key: &Secp256k1PrivateKey) -> String {
    let (address, name) = DEFAULT_CONTRACT_ID.split_once('.').expect("contract id");
    let mut id = [0u8; 32];
    id[..8].copy_from_slice(&n.to_be_bytes());
    id[8..16].copy_from_slice(&rand::random::<u64>().to_be_bytes());
    let amount = 1_000 + n;
    let payload = TransactionPayload::ContractCall(TransactionContractCall {
        address: StacksAddress::from_string(address).expect("address"),
        contract_name: ContractName::try_from(name.to_string()).expect("name"),
        function_name: ClarityName::try_from("create-payment".to_string()).expect("fn"),
        function_args: vec![
            Value::buff_from(id.to_vec()).expect("buff"),
            Value::Principal(PrincipalData::parse(RECIPIENT).expect("principal")),
            Value::UInt(u128::from(amount)),
            Value::buff_from(b"bench".to_vec()).expect("memo"),
        ],
    });
    let auth = TransactionAuth::from_p2pkh(key).expect("auth");
    let mut tx = StacksTransaction::new(TransactionVersion::Testnet, auth, payload);
    tx.chain_id = 0x8000_0000;
    tx.post_condition_mode = TransactionPostConditionMode::Deny;
    tx.post_conditions = vec![TransactionPostCondition::STX(
        PostConditionPrincipal::Origin,
        FungibleConditionCode::SentEq,
        amount,
    )];
    tx.set_tx_fee(2_000);
    tx.set_origin_nonce(n);
    let mut signer = StacksTransactionSigner::new(&tx);
    signer.sign_origin(key).expect("sign");
    let tx = signer.get_tx().expect("signed");
    json!({ "tx": format!("0x{}", hex::encode(tx.serialize_to_vec())) }).to_string()
}

fn main() {
    let payments = env_usize("BENCH_PAYMENTS", 20_000);
    let clients = env_usize("BENCH_CLIENTS", 64);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(payments, clients));
}

async fn run(payments: usize, clients: usize) {
    eprintln!("relay bench: signing {payments} create-payment transactions…");
    let t = Instant::now();
    let bodies: Vec<String> = std::thread::scope(|s| {
        let parts: Vec<_> = (0..2u64)
            .map(|part| {
                s.spawn(move || {
                    (0..payments as u64)
                        .filter(|n| n % 2 == part)
                        .map(|n| signed_create(n, &Secp256k1PrivateKey::new()))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        parts
            .into_iter()
            .flat_map(|p| p.join().expect("signer"))
            .collect()
    });
    eprintln!("  signed in {:.1} s", t.elapsed().as_secs_f64());
    let bodies = Arc::new(bodies);

    // Real services, isolated: a fresh database and a key prefix of our own.
    let admin = std::env::var("NEXUS_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let redis = std::env::var("NEXUS_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
    let db = format!("nexus_bench_relay_{:08x}", rand::random::<u32>());
    let mut conn = sqlx::PgConnection::connect(&admin)
        .await
        .expect("PostgreSQL");
    sqlx::query(&format!("CREATE DATABASE {db}"))
        .execute(&mut conn)
        .await
        .expect("CREATE DATABASE");
    let mut url = reqwest::Url::parse(&admin).expect("pg url");
    url.set_path(&format!("/{db}"));
    let rpc = scripted::start().await;
    rpc.script.set_broadcast_delay(Duration::from_millis(1));
    let dir = tempfile::tempdir().expect("tempdir");
    let prefix = format!("bench-relay:{:08x}:", rand::random::<u32>());
    let cfg = Config {
        api_addr: "127.0.0.1:0".parse().expect("addr"),
        observer_addr: "127.0.0.1:0".parse().expect("addr"),
        redis_url: Some(redis.clone()),
        redis_prefix: prefix.clone(),
        database_url: Some(url.to_string()),
        sqlite_path: dir.path().join("unused.sqlite"),
        rpc_urls: vec![rpc.url()],
        // Limits on, never reached: their Redis round trip is part of the cost.
        rate_limit_per_ip: Some(Quota {
            per_second: 1e9,
            burst: 1_000_000_000,
        }),
        rate_limit_per_key: None,
        reconcile_interval_secs: 3_600,
        ..Config::default()
    };
    let policy = RelayPolicy::new(cfg.contract().expect("contract id"), cfg.relay_chain_id());
    // Validation alone (decode + signature recovery), on one thread: the
    // part of each request no design avoids, as this machine prices it.
    let validate_us = {
        let sample: Vec<Vec<u8>> = bodies
            .iter()
            .take(2_000)
            .map(|b| {
                let v: serde_json::Value = serde_json::from_str(b).expect("json");
                hex::decode(v["tx"].as_str().expect("tx").trim_start_matches("0x")).expect("hex")
            })
            .collect();
        let t = Instant::now();
        for tx in &sample {
            validate(tx, &policy).expect("valid");
        }
        (t.elapsed().as_secs_f64() * 1e6 / sample.len() as f64 * 10.0).round() / 10.0
    };
    let node = nexus_node::server::start(cfg).await.expect("node starts");
    let endpoint = format!("http://{}/api/payments", node.api_addr);

    // Warm-up: connections, statement caches.
    let warm: Arc<Vec<String>> = Arc::new(
        (0..500u64)
            .map(|n| signed_create(1_000_000_000 + n, &Secp256k1PrivateKey::new()))
            .collect(),
    );
    load(&endpoint, warm, clients, 202).await;

    eprintln!("  accepting {payments} payments with {clients} clients…");
    let (took, lat) = load(&endpoint, bodies.clone(), clients, 202).await;
    let (accepted_per_sec, p50, p99) = summary(took, lat);
    eprintln!("  {accepted_per_sec}/s, p50 {p50} ms, p99 {p99} ms");

    eprintln!("  replaying them (same bodies, same derived keys)…");
    let (took, lat) = load(&endpoint, bodies.clone(), clients, 202).await;
    let (replay_per_sec, replay_p50, replay_p99) = summary(took, lat);

    // Everything accepted is broadcast (the engine drains the schedule).
    let drain = Instant::now();
    let want = payments + 500;
    while rpc.script.broadcasts().len() < want && drain.elapsed() < Duration::from_secs(300) {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let broadcast = rpc.script.broadcasts().len();
    let drain_s = drain.elapsed().as_secs_f64();
    // ... and every payment it accepted reached `submitted` (its event committed).
    let state = node.app.ingestor.state().clone();
    let mut submitted = 0;
    while drain.elapsed() < Duration::from_secs(300) {
        submitted = state
            .counter("events:payment:submitted")
            .await
            .expect("counter");
        if submitted >= want as u64 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        submitted, want as u64,
        "every accepted payment becomes submitted"
    );

    node.shutdown.cancel();
    node.wait().await.expect("node stops");

    // The floor: the same client loop, a handler that only parses the body.
    let app = axum::Router::new().route(
        "/api/payments",
        axum::routing::post(|body: axum::body::Bytes| async move {
            let v: serde_json::Value = serde_json::from_slice(&body).expect("json");
            (
                axum::http::StatusCode::ACCEPTED,
                v["tx"].as_str().map(str::len).unwrap_or(0).to_string(),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let (took, lat) = load(
        &format!("http://{addr}/api/payments"),
        bodies.clone(),
        clients,
        202,
    )
    .await;
    let (baseline_per_sec, baseline_p50, baseline_p99) = summary(took, lat);
    server.abort();

    eprintln!("  the floor: the same payments through a server doing only the mandatory work…");
    let fl = floor::Server::start(url.as_ref(), &redis, &prefix, &rpc.url(), policy).await;
    let (took, lat) = load(&fl.url, bodies, clients, 202).await;
    let (floor_per_sec, floor_p50, floor_p99) = summary(took, lat);
    let (floor_submitted, floor_drain) = fl.drain(payments, Duration::from_secs(120)).await;
    assert_eq!(
        floor_submitted, payments,
        "the floor broadcasts everything it accepted"
    );
    eprintln!("  floor {floor_per_sec}/s, p50 {floor_p50} ms, p99 {floor_p99} ms");

    sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
        .execute(&mut conn)
        .await
        .ok();
    // Its keys too (idempotency keys would otherwise live 24 h).
    if let Ok(c) = nexus_store::redis::RedisState::connect(&redis, &prefix).await {
        let _ = c.flush_prefix().await;
    }
    println!(
        "{}",
        json!({
            "bench": "relay",
            "payments": payments,
            "clients": clients,
            "accepted_per_sec": accepted_per_sec,
            "p50_ms": p50,
            "p99_ms": p99,
            "replay_per_sec": replay_per_sec,
            "replay_p50_ms": replay_p50,
            "replay_p99_ms": replay_p99,
            "broadcast": broadcast,
            "submitted": submitted,
            "broadcast_drain_s": (drain_s * 100.0).round() / 100.0,
            "baseline_json_per_sec": baseline_per_sec,
            "baseline_p50_ms": baseline_p50,
            "baseline_p99_ms": baseline_p99,
            "floor_per_sec": floor_per_sec,
            "floor_p50_ms": floor_p50,
            "floor_p99_ms": floor_p99,
            "floor_drain_s": (floor_drain.as_secs_f64() * 100.0).round() / 100.0,
            "share_of_floor": (accepted_per_sec / floor_per_sec * 1000.0).round() / 1000.0,
            "validate_us": validate_us,
            "target": {"accepted_per_sec": 5000, "p99_ms": 20},
        })
    );
}
