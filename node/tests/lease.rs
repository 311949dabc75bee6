//! Two real `nexus-node` processes on one Redis and one PostgreSQL: only one
//! reconciles; `kill -9` the leader and the other takes over within one lease
//! period; the dead leader's fencing token is refused by history from then on.

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nexus_core::domain::{
    ChainPos, EventSource, EventType, Payment, PaymentEvent, PaymentId, PaymentStatus, Proof, Tip,
};
use nexus_core::escrow::{ChainPayment, ChainStatus};
use nexus_stacks::scripted;
use nexus_store::postgres::PgHistory;
use nexus_store::{ChainLog, Proofs};
use nexus_store::{CommitBatch, Fence, StoreError};
use serde_json::Value;
use sqlx::Connection;

const TTL_MS: u64 = 2_000;
const AT: &str = "2026-01-01T00:00:00.000Z";
const SENDER: &str = "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM";
const RECIPIENT: &str = "ST2CY5V39NHDPWSXMW9QDT3HC3GD6Q6XX4CFRK9AG";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// A node process; killed (SIGKILL) when dropped.
struct Proc {
    child: Child,
    api: u16,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(db_url: &str, redis_prefix: &str, rpc: &str) -> Proc {
    let (api, obs) = (free_port(), free_port());
    let dir = tempfile::tempdir().expect("dir");
    let child = Command::new(env!("CARGO_BIN_EXE_nexus-node"))
        .args([
            "--config",
            dir.path().join("absent.toml").to_str().expect("path"),
            "run",
            "--api-addr",
            &format!("127.0.0.1:{api}"),
            "--observer-addr",
            &format!("127.0.0.1:{obs}"),
            "--database-url",
            db_url,
            "--redis-url",
            &common::redis_url(),
        ])
        .env("NEXUS_REDIS_PREFIX", redis_prefix)
        .env("NEXUS_RPC_URLS", format!("[\"{rpc}\"]"))
        .env("NEXUS_LEASE_TTL_MS", TTL_MS.to_string())
        .env("NEXUS_RECONCILE_INTERVAL_SECS", "1")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start nexus-node");
    Proc { child, api }
}

async fn health(client: &reqwest::Client, p: &Proc) -> Option<Value> {
    let resp = client
        .get(format!("http://127.0.0.1:{}/health", p.api))
        .send()
        .await
        .ok()?;
    resp.json().await.ok()
}

async fn is_leader(client: &reqwest::Client, p: &Proc) -> Option<bool> {
    health(client, p)
        .await
        .map(|h| h["reconciler"]["leader"] == Value::Bool(true))
}

/// The token in the Redis lease value (`holder|token`).
async fn lease_token(prefix: &str) -> Option<u64> {
    let client = redis::Client::open(common::redis_url()).ok()?;
    let mut con = client.get_multiplexed_async_connection().await.ok()?;
    let v: Option<String> = redis::cmd("GET")
        .arg(format!("{prefix}verifier:lease"))
        .query_async(&mut con)
        .await
        .ok()?;
    v?.rsplit_once('|')?.1.parse().ok()
}

/// The lease key's remaining time to live, in ms.
async fn lease_pttl(prefix: &str) -> Option<i64> {
    let client = redis::Client::open(common::redis_url()).ok()?;
    let mut con = client.get_multiplexed_async_connection().await.ok()?;
    redis::cmd("PTTL")
        .arg(format!("{prefix}verifier:lease"))
        .query_async(&mut con)
        .await
        .ok()
}

/// Wait until the leader has renewed its lease `n` times: each renewal
/// resets the key's TTL, so its remaining time goes up.
async fn renewals(prefix: &str, n: u32) {
    let start = Instant::now();
    let mut seen = 0;
    let mut last = lease_pttl(prefix).await.unwrap_or(0);
    while seen < n {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "timed out waiting for {n} lease renewals"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
        let now = lease_pttl(prefix).await.unwrap_or(0);
        if now > last {
            seen += 1;
        }
        last = now;
    }
}

async fn fence_in_history(db_url: &str) -> Option<i64> {
    let mut c = sqlx::PgConnection::connect(db_url).await.ok()?;
    sqlx::query_scalar("SELECT token FROM fences WHERE name = 'reconciler'")
        .fetch_optional(&mut c)
        .await
        .ok()?
}

fn seed_payment() -> (Payment, PaymentEvent) {
    let id = PaymentId([0x42; 32]);
    let mut p = Payment::new(id, PaymentStatus::Confirmed, AT);
    p.sender = Some(SENDER.into());
    p.recipient = Some(RECIPIENT.into());
    p.amount = Some("7".into());
    p.created_in = Some(ChainPos {
        txid: format!("0x{:064x}", 1),
        tx_index: 0,
        block_height: 5,
        index_block_hash: format!("0x{:064x}", 5),
        block_hash: format!("0x{:064x}", 6),
        burn_block_height: 105,
        burn_block_hash: format!("0x{:064x}", 7),
    });
    let ev = PaymentEvent {
        block_height: Some(5),
        confirmations: 1,
        ..PaymentEvent::about(&p, EventType::Confirmed, EventSource::Observer, AT)
    };
    (p, ev)
}

async fn wait_for<F, Fut, T>(what: &str, deadline: Duration, mut f: F) -> (T, Duration)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let start = Instant::now();
    loop {
        if let Some(v) = f().await {
            return (v, start.elapsed());
        }
        assert!(start.elapsed() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_leader_a_killed_leader_is_replaced_within_a_lease_and_its_token_is_refused() {
    // Fresh database and Redis prefix.
    let tag = format!("{:016x}", rand::random::<u64>());
    // Dropped at the end, also after a failed assertion.
    let pg = nexus_testkit::pg::PgTestDb::create().await;
    let db_url = pg.url.clone();
    let prefix = format!("nexus-lease-test:{tag}:");

    let rpc = scripted::start().await;
    rpc.script.set_tip(20, 0);
    let history = PgHistory::connect(&db_url).await.expect("history");
    let (p, ev) = seed_payment();
    rpc.script.put(
        p.payment_id,
        ChainPayment {
            sender: SENDER.into(),
            recipient: RECIPIENT.into(),
            amount: 7,
            memo: vec![],
            created_at: 5,
            expires_at: 105,
            status: ChainStatus::Pending,
            token: None,
        },
    );
    history
        .commit(CommitBatch {
            payments: vec![p.clone()],
            events: vec![ev],
            ..Default::default()
        })
        .await
        .expect("seed");

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(2))
        .build()
        .unwrap();
    let mut a = Some(spawn(&db_url, &prefix, &rpc.url()));
    let b = spawn(&db_url, &prefix, &rpc.url());

    // Exactly one leader.
    let (leader_is_a, _) = wait_for("one leader", Duration::from_secs(60), || {
        let (client, a, b) = (&client, a.as_ref().unwrap(), &b);
        async move {
            let (la, lb) = (is_leader(client, a).await?, is_leader(client, b).await?);
            (la ^ lb).then_some(la)
        }
    })
    .await;
    // Stable: still exactly one a few renewals later.
    renewals(&prefix, 3).await;
    assert_eq!(
        is_leader(&client, a.as_ref().unwrap()).await,
        Some(leader_is_a)
    );
    assert_eq!(is_leader(&client, &b).await, Some(!leader_is_a));
    let old_token = lease_token(&prefix).await.expect("a lease token");
    // The leader wrote the proof with its token.
    let (fence, _) = wait_for("the leader's proof", Duration::from_secs(20), || {
        let db_url = &db_url;
        async move {
            fence_in_history(db_url)
                .await
                .filter(|t| *t == old_token as i64)
        }
    })
    .await;
    assert_eq!(fence, old_token as i64);

    // kill -9 the leader: no release, the lease must expire.
    let (dead, survivor) = if leader_is_a {
        (a.take().unwrap(), b)
    } else {
        (b, a.take().unwrap())
    };
    drop(dead);
    let (_, took) = wait_for("the survivor to lead", Duration::from_secs(30), || {
        let (client, s) = (&client, &survivor);
        async move { is_leader(client, s).await.filter(|l| *l) }
    })
    .await;
    // One lease period, plus one renewal period for the survivor to notice.
    assert!(
        took <= Duration::from_millis(TTL_MS + TTL_MS / 3 + 1_000),
        "took over after {took:?}"
    );
    let new_token = lease_token(&prefix).await.expect("a new lease");
    assert!(new_token > old_token, "{new_token} > {old_token}");

    // The new leader re-checks at a new tip and writes with its own token.
    rpc.script.set_tip(21, 0);
    wait_for("the new leader's proof", Duration::from_secs(20), || {
        let (db_url, history, id) = (&db_url, &history, p.payment_id);
        async move {
            let proof = history.get_proof(&id).await.ok()??;
            let fence = fence_in_history(db_url).await?;
            (proof.verified_tip_height == 21 && fence == new_token as i64).then_some(())
        }
    })
    .await;
    // A write with the dead leader's token is refused by history.
    let stale = Fence {
        name: "reconciler".into(),
        token: old_token,
    };
    let err = history
        .put_proofs(
            &[Proof::verified(
                p.payment_id,
                PaymentStatus::Refunded,
                None,
                &Tip {
                    height: 20,
                    index_block_hash: String::new(),
                    burn_height: 0,
                },
                6,
                AT,
            )],
            Some(&stale),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Rejected { .. }), "{err:?}");
    let proof = history.get_proof(&p.payment_id).await.unwrap().unwrap();
    assert_eq!(proof.status, PaymentStatus::Confirmed);
    assert_eq!(proof.verified_tip_height, 21);

    drop(survivor);
    drop(history);
    if let Ok(s) = nexus_store::redis::RedisState::connect(&common::redis_url(), &prefix).await {
        let _ = s.flush_prefix().await;
    }
}
