//! `make bench-x402`: the x402 facilitator through a real node (embedded
//! default) over loopback, the stacks-node RPC test double answering its
//! reads and broadcasts.
//!
//! 1. `/x402/verify` per second, `BENCH_CLIENTS` at once over a pool of
//!    signed STX transfers (each fresh key, so each a real signature check
//!    and a real account read), beside the same run's floor: decoding and
//!    signature recovery alone (`decode_signed`), no HTTP, no RPC, on every
//!    core.
//! 2. Settle overhead: `BENCH_SETTLES` concurrent `/x402/settle`s; once the
//!    double has every broadcast, one block holding them all is delivered to
//!    the observer. Overhead = a settle's answer time minus the moment that
//!    delivery started: ingesting the block, waking the waiting settles,
//!    reading their records and answering.
//!
//! Floors beside them: the RPC reads each verify makes (tip and account),
//! alone against the same double; and the confirming block's own commit
//! (the observer's round trip), under which no settle can answer.
//!
//! Knobs: `BENCH_VERIFY` (4000 requests), `BENCH_CLIENTS` (32),
//! `BENCH_SETTLES` (100). Last line: one JSON object.

use std::sync::Arc;
use std::time::Instant;

use clarity::util::secp256k1::Secp256k1PrivateKey;
use clarity::vm::types::PrincipalData;
use serde_json::{json, Value};
use stacks_codec::codec::{
    StacksMessageCodec, StacksTransaction, StacksTransactionSigner, TokenTransferMemo,
    TransactionAuth, TransactionPayload, TransactionVersion,
};

use nexus_core::simnet::{block_envelope, tx_entry};
use nexus_core::validate::{decode_signed, TESTNET_CHAIN_ID};
use nexus_node::config::Config;
use nexus_stacks::scripted;

#[path = "common/load.rs"]
mod load;

use load::{env_usize, load, pct, summary};

const MERCHANT: &str = "ST2CY5V39NHDPWSXMW9QDT3HC3GD6Q6XX4CFRK9AG";
const AMOUNT: u64 = 1_000;

/// A signed STX transfer of `AMOUNT` to the merchant from a fresh key.
fn signed_transfer() -> StacksTransaction {
    let key = Secp256k1PrivateKey::new();
    let payload = TransactionPayload::TokenTransfer(
        PrincipalData::parse(MERCHANT).expect("principal"),
        AMOUNT,
        TokenTransferMemo([0; 34]),
    );
    let mut tx = StacksTransaction::new(
        TransactionVersion::Testnet,
        TransactionAuth::from_p2pkh(&key).expect("auth"),
        payload,
    );
    tx.chain_id = TESTNET_CHAIN_ID;
    tx.set_tx_fee(2_000);
    tx.set_origin_nonce(0);
    let mut signer = StacksTransactionSigner::new(&tx);
    signer.sign_origin(&key).expect("sign");
    signer.get_tx().expect("signed")
}

/// The request body x402-stacks' middleware sends for `tx`.
fn settle_body(tx: &[u8]) -> String {
    let req = json!({
        "scheme": "exact", "network": "stacks:2147483648", "amount": AMOUNT.to_string(),
        "asset": "STX", "payTo": MERCHANT, "maxTimeoutSeconds": 60,
    });
    json!({
        "x402Version": 2,
        "paymentPayload": {"x402Version": 2, "accepted": req, "payload": {"transaction": hex::encode(tx)}},
        "paymentRequirements": req,
    })
    .to_string()
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(run(
        env_usize("BENCH_VERIFY", 4_000),
        env_usize("BENCH_CLIENTS", 32),
        env_usize("BENCH_SETTLES", 100),
    ));
}

async fn run(verifies: usize, clients: usize, settles: usize) {
    let pool = 1_000.min(verifies).max(1);
    eprintln!("x402 bench: signing {} transfers…", pool + settles);
    let txs: Vec<Vec<u8>> = (0..pool + settles)
        .map(|_| signed_transfer().serialize_to_vec())
        .collect();
    let (verify_txs, settle_txs) = txs.split_at(pool);

    // The floor: decode + signature recovery, every core, no HTTP or RPC.
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    let rounds = verifies.div_ceil(pool);
    let t = Instant::now();
    std::thread::scope(|s| {
        for part in 0..cores {
            s.spawn(move || {
                for _ in 0..rounds {
                    for tx in verify_txs.iter().skip(part).step_by(cores) {
                        decode_signed(tx, false, TESTNET_CHAIN_ID).expect("valid");
                    }
                }
            });
        }
    });
    let floor_per_sec = ((rounds * pool) as f64 / t.elapsed().as_secs_f64()).round();
    eprintln!("  floor: {floor_per_sec}/s (decode + signature recovery on {cores} threads)");

    let rpc = scripted::start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = Config {
        api_addr: "127.0.0.1:0".parse().expect("addr"),
        observer_addr: "127.0.0.1:0".parse().expect("addr"),
        sqlite_path: dir.path().join("bench.sqlite"),
        rpc_urls: vec![rpc.url()],
        rate_limit_per_ip: None,
        rate_limit_per_key: None,
        reconcile_interval_secs: 3_600,
        ..Config::default()
    };
    let node = nexus_node::server::start(cfg).await.expect("node starts");
    let api = format!("http://{}", node.api_addr);

    // /verify: the pool, as many times as asked.
    let bodies: Arc<Vec<String>> = Arc::new(
        (0..verifies)
            .map(|i| settle_body(&verify_txs[i % pool]))
            .collect(),
    );
    load(
        &format!("{api}/x402/verify"),
        Arc::new(bodies[..pool.min(200)].to_vec()),
        clients,
        200,
    )
    .await;
    eprintln!("  verifying {verifies} payments with {clients} clients…");
    let (took, lat) = load(&format!("{api}/x402/verify"), bodies, clients, 200).await;
    let (verify_per_sec, verify_p50, verify_p99) = summary(took, lat);
    eprintln!("  {verify_per_sec}/s, p50 {verify_p50} ms, p99 {verify_p99} ms");

    // The RPC reads every verify makes (tip, then the payer's account),
    // alone, with the same clients: what the double costs this machine.
    let rpc_reads_per_sec = {
        let http = reqwest::Client::new();
        let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let t = Instant::now();
        let tasks: Vec<_> = (0..clients)
            .map(|_| {
                let (http, next, base) = (http.clone(), next.clone(), rpc.url());
                tokio::spawn(async move {
                    while next.fetch_add(1, std::sync::atomic::Ordering::Relaxed) < verifies {
                        for path in [
                            "/v2/info".to_string(),
                            format!("/v2/accounts/{MERCHANT}?proof=0"),
                        ] {
                            let r = http.get(format!("{base}{path}")).send().await.expect("RPC");
                            r.bytes().await.expect("body");
                        }
                    }
                })
            })
            .collect();
        for t in tasks {
            t.await.expect("reader");
        }
        (verifies as f64 / t.elapsed().as_secs_f64()).round()
    };
    eprintln!("  the RPC reads alone (tip + account): {rpc_reads_per_sec} verifies' worth/s");

    // /settle: all at once, then the block that confirms them all.
    eprintln!("  settling {settles} payments at once…");
    let http = reqwest::Client::new();
    let waiting: Vec<_> = settle_txs
        .iter()
        .map(|tx| {
            let (http, url, body) = (http.clone(), format!("{api}/x402/settle"), settle_body(tx));
            tokio::spawn(async move {
                let r = http
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .expect("settle");
                let answered = Instant::now();
                let v: Value = r.json().await.expect("JSON");
                assert_eq!(v["success"], true, "{v}");
                answered
            })
        })
        .collect();
    // Every settle has broadcast (its payment is recorded and waiting): the
    // double's own counter, polled, as the double has no other signal.
    while rpc.script.broadcasts().len() < settles {
        tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    }
    let entries: Vec<Value> = settle_txs
        .iter()
        .enumerate()
        .map(|(i, tx)| {
            let txid = format!("0x{}", scripted::txid_hex(tx));
            tx_entry(
                &txid,
                i as u32,
                true,
                &format!("0x{}", hex::encode(tx)),
                "0x0703",
            )
        })
        .collect();
    let events: Vec<Value> = entries
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let tx = StacksTransaction::consensus_deserialize(&mut &settle_txs[i][..]).expect("tx");
            let sender = nexus_core::decode::tx::origin_address(&tx);
            json!({"txid": e["txid"], "event_index": i, "committed": true, "type": "stx_transfer_event",
                   "stx_transfer_event": {"sender": sender, "recipient": MERCHANT, "amount": AMOUNT.to_string(), "memo": ""}})
        })
        .collect();
    let block = block_envelope("main", 1, "main", &entries, &events).to_string();
    let delivered = Instant::now();
    let r = http
        .post(format!("http://{}/new_block", node.observer_addr))
        .header("content-type", "application/json")
        .body(block)
        .send()
        .await
        .expect("deliver");
    assert!(r.status().is_success());
    // The observer answers once the block is committed: its own round trip
    // is the floor under any settle's answer.
    let committed = Instant::now();
    let block_commit_ms = (committed.duration_since(delivered).as_secs_f64() * 1e5).round() / 100.0;
    let mut overhead: Vec<f64> = Vec::with_capacity(settles);
    let mut after_commit: Vec<f64> = Vec::with_capacity(settles);
    for w in waiting {
        let answered = w.await.expect("settle task");
        overhead.push(answered.duration_since(delivered).as_secs_f64() * 1e3);
        // Signed: an answer can beat the observer's own 200 to the client.
        after_commit.push(
            answered.duration_since(delivered).as_secs_f64() * 1e3
                - committed.duration_since(delivered).as_secs_f64() * 1e3,
        );
    }
    overhead.sort_by(|a, b| a.total_cmp(b));
    after_commit.sort_by(|a, b| a.total_cmp(b));
    let (p50, p99) = (pct(&overhead, 0.5), pct(&overhead, 0.99));
    let (c50, c99) = (pct(&after_commit, 0.5), pct(&after_commit, 0.99));
    eprintln!("  settle overhead after the block: p50 {p50} ms, p99 {p99} ms (the block's own commit: {block_commit_ms} ms; after it: p50 {c50}, p99 {c99} ms)");
    node.shutdown.cancel();

    println!(
        "{}",
        json!({
            "bench": "x402",
            "verify_per_sec": verify_per_sec,
            "verify_floor_per_sec": floor_per_sec,
            "verify_share_of_floor": (verify_per_sec / floor_per_sec * 1000.0).round() / 1000.0,
            "verify_p50_ms": verify_p50,
            "verify_p99_ms": verify_p99,
            "rpc_reads_per_sec": rpc_reads_per_sec,
            "settles": settles,
            "settle_overhead_p50_ms": p50,
            "settle_overhead_p99_ms": p99,
            "block_commit_ms": block_commit_ms,
            "settle_after_commit_p50_ms": c50,
            "settle_after_commit_p99_ms": c99,
        })
    );
}
