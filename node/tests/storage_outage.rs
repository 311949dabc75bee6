//! Storage outages: the node runs on the real PostgreSQL and Redis through
//! TCP proxies the test cuts and restores. An outage must answer 503 (a
//! temporary error, so stacks-node retries the same payload) within the
//! stores' few-second timeouts, and the retry must succeed with nothing lost
//! and nothing emitted twice, including a Redis failure after the PostgreSQL
//! commit (the catch-up path of `indexer/src/ingest/ingestor.rs`).

mod common;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use common::proxy::Proxy;
use common::{pg_admin_url, redis_url, snapshot, start_node, via, Stores, TestNode, SCENARIO};
use nexus_core::domain::PaymentEvent;
use nexus_core::simnet::{Delivery, Scenario};

/// Longest a 503 may take: the stores give up after 2-3 s.
const OUTAGE_ANSWER_WITHIN: Duration = Duration::from_secs(6);

/// The address behind a service URL.
async fn upstream(url: &str) -> SocketAddr {
    let u = reqwest::Url::parse(url).expect("service URL");
    let host = u.host_str().expect("host").to_string();
    let port = u.port().expect("explicit port in the test service URL");
    let mut addrs = tokio::net::lookup_host((host.as_str(), port))
        .await
        .expect("resolve");
    addrs.next().expect("an address")
}

/// A production node whose PostgreSQL and Redis traffic goes through proxies.
async fn node_behind_proxies() -> (TestNode, Proxy, Proxy, Scenario) {
    let sc = Scenario::parse(SCENARIO).expect("scenario");
    let pg = Proxy::start(upstream(&pg_admin_url()).await).await;
    let redis = Proxy::start(upstream(&redis_url()).await).await;
    let node = start_node(Stores::Production, |c| {
        c.contract_id = sc.contract_id.clone();
        c.database_url = Some(via(c.database_url.as_deref().unwrap(), pg.addr));
        c.redis_url = Some(via(c.redis_url.as_deref().unwrap(), redis.addr));
        // A stalled store is abandoned after this long (answered 503).
        c.delivery_timeout_secs = 2;
    })
    .await;
    (node, pg, redis, sc)
}

/// POST `d` while a store is down: a 503 with a temporary error, quickly.
async fn expect_503(node: &TestNode, d: &Delivery, what: &str) {
    let started = Instant::now();
    let (code, body) = node.post(d.route.path(), d.body.clone()).await;
    let took = started.elapsed();
    assert_eq!(code, 503, "{what} ({}): {body}", d.label);
    assert_eq!(body["error"]["type"], "temporary", "{what}: {body}");
    assert_eq!(
        body["error"]["code"], "storage_unavailable",
        "{what}: {body}"
    );
    assert!(took < OUTAGE_ANSWER_WITHIN, "{what}: the 503 took {took:?}");
}

/// stacks-node's retry once the store is back: POST again (a few times, as
/// stacks-node does with backoff) until 200. Returns the 200 answer.
///
/// The first retry after a Redis outage can still fail: the connection
/// manager only notices its reconnect failed on the next command, which then
/// reconnects. Nothing is lost (the node answers 503 again), so up to three
/// attempts are allowed; PostgreSQL's pool pings before reuse and succeeds at once.
async fn expect_200(node: &TestNode, d: &Delivery, what: &str) -> serde_json::Value {
    const ATTEMPTS: usize = 3;
    for attempt in 1..=ATTEMPTS {
        let (code, body) = node.post(d.route.path(), d.body.clone()).await;
        match code {
            200 => return body,
            503 if attempt < ATTEMPTS => {
                assert_eq!(body["error"]["type"], "temporary", "{what}: {body}");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            _ => panic!("{what}: retry {attempt} of {}: {code} {body}", d.label),
        }
    }
    unreachable!()
}

fn position(deliveries: &[Delivery], label_prefix: &str) -> usize {
    deliveries
        .iter()
        .position(|d| d.label.starts_with(label_prefix))
        .unwrap_or_else(|| panic!("no delivery {label_prefix:?}"))
}

/// What identifies an event across runs (not `at`).
fn key(
    e: &PaymentEvent,
) -> (
    u64,
    String,
    String,
    String,
    Option<String>,
    Option<u64>,
    Option<String>,
) {
    (
        e.seq,
        e.event_type.as_str().to_string(),
        e.payment_id.to_string(),
        e.status.as_str().to_string(),
        e.txid.clone(),
        e.block_height,
        e.reason.clone(),
    )
}

/// The event log of the scenario delivered without any outage.
async fn uninterrupted_run(sc: &Scenario) -> Vec<PaymentEvent> {
    let node = start_node(Stores::Embedded, |c| c.contract_id = sc.contract_id.clone()).await;
    for d in sc.deliveries() {
        node.post_ok(d.route.path(), d.body.clone()).await;
    }
    let events = snapshot(&node).await.events;
    node.stop().await;
    events
}

#[tokio::test]
async fn outages_answer_503_and_retries_lose_nothing() {
    let (node, pg, redis, sc) = node_behind_proxies().await;
    let mut bus = node.app().bus.subscribe();
    let deliveries = sc.deliveries();
    let half = deliveries.len() / 2;
    for d in &deliveries[..half] {
        node.post_ok(d.route.path(), d.body.clone()).await;
    }
    let mut next = half;

    // PostgreSQL gone (live connections closed, new ones refused).
    pg.cut();
    expect_503(&node, &deliveries[next], "PostgreSQL cut").await;
    let (code, health) = node.get("/health").await;
    assert_eq!(code, 503, "{health}");
    pg.restore();
    let answer = expect_200(&node, &deliveries[next], "PostgreSQL back").await;
    assert_eq!(answer["duplicate"], false, "{answer}");
    next += 1;

    // Redis gone before anything is written.
    redis.cut();
    expect_503(&node, &deliveries[next], "Redis cut").await;
    redis.restore();
    expect_200(&node, &deliveries[next], "Redis back").await;
    next += 1;

    // PostgreSQL dies at COMMIT of a block with an event: rolled back, 503;
    // the retry applies it once.
    let refund = position(&deliveries, "block 111:");
    for d in &deliveries[next..refund] {
        node.post_ok(d.route.path(), d.body.clone()).await;
    }
    pg.cut_when_client_sends(b"COMMIT");
    expect_503(&node, &deliveries[refund], "PostgreSQL cut at COMMIT").await;
    assert!(pg.fired(), "the delivery never reached COMMIT");
    pg.restore();
    let answer = expect_200(&node, &deliveries[refund], "PostgreSQL back after COMMIT").await;
    assert_eq!(answer["events"], 1, "{answer}");
    next = refund + 1;

    // Redis dies at MULTI, after PostgreSQL committed: 503, and the retry
    // catches the state store up from history (a block: see the next test).
    for label in ["mempool: wallet_1 creates while paused"] {
        let at = position(&deliveries, label);
        for d in &deliveries[next..at] {
            node.post_ok(d.route.path(), d.body.clone()).await;
        }
        let seq_before = node.app().ingestor.history().last_seq().await.unwrap();
        redis.cut_when_client_sends(b"\r\nMULTI\r\n");
        expect_503(&node, &deliveries[at], "Redis cut at MULTI").await;
        assert!(redis.fired(), "{label}: the delivery never reached MULTI");
        let history = node.app().ingestor.history();
        let seq_after = history.last_seq().await.unwrap();
        assert!(
            seq_after > seq_before,
            "{label}: history committed before Redis failed"
        );
        redis.restore();
        expect_200(&node, &deliveries[at], "Redis back after MULTI").await;
        next = at + 1;
    }

    for d in &deliveries[next..] {
        node.post_ok(d.route.path(), d.body.clone()).await;
    }

    // Same log as a run without outages; state matches history; each event
    // published exactly once.
    let snap = snapshot(&node).await;
    snap.assert_consistent();
    let reference = uninterrupted_run(&sc).await;
    assert_eq!(
        snap.events.iter().map(key).collect::<Vec<_>>(),
        reference.iter().map(key).collect::<Vec<_>>()
    );
    assert_eq!(snap.history_seq, reference.len() as u64);
    let mut published = Vec::new();
    while let Ok(e) = bus.try_recv() {
        published.push(e);
    }
    assert_eq!(
        published, snap.events,
        "every event published once, in order"
    );
    let (code, health) = node.get("/health").await;
    assert_eq!(code, 200, "{health}");
    node.stop().await;
}

/// PostgreSQL stops answering in the middle of a delivery (a paused server,
/// a silent partition): the delivery must still end with a 503 in bounded
/// time, and the node must recover once the server is back.
/// (Regression: a query sent on a live connection used to wait forever and
/// hold the ingest lock; deliveries are now bounded by `delivery_timeout_secs`
/// and the next one re-reads its view from history.)
#[tokio::test]
async fn postgres_paused_mid_delivery() {
    let (node, pg, _redis, sc) = node_behind_proxies().await;
    let deliveries = sc.deliveries();
    let mempool_p1 = position(&deliveries, "mempool: wallet_1 pays wallet_2 (p1)");
    for d in &deliveries[..mempool_p1] {
        node.post_ok(d.route.path(), d.body.clone()).await;
    }
    pg.blackhole_when_client_sends(b"COMMIT");
    expect_503(
        &node,
        &deliveries[mempool_p1],
        "PostgreSQL paused at COMMIT",
    )
    .await;
    assert!(pg.fired());
    pg.restore();
    let answer = expect_200(&node, &deliveries[mempool_p1], "PostgreSQL back").await;
    assert_eq!(answer["events"], 1, "{answer}");
    for d in &deliveries[mempool_p1 + 1..] {
        node.post_ok(d.route.path(), d.body.clone()).await;
    }
    let snap = snapshot(&node).await;
    snap.assert_consistent();
    let reference = uninterrupted_run(&sc).await;
    assert_eq!(
        snap.events.iter().map(key).collect::<Vec<_>>(),
        reference.iter().map(key).collect::<Vec<_>>()
    );
    node.stop().await;
}

/// Redis stops answering in the middle of a delivery: 503 in bounded time,
/// then recovery.
#[tokio::test]
async fn redis_paused_mid_delivery() {
    let (node, _pg, redis, sc) = node_behind_proxies().await;
    let deliveries = sc.deliveries();
    let mempool_p1 = position(&deliveries, "mempool: wallet_1 pays wallet_2 (p1)");
    for d in &deliveries[..mempool_p1] {
        node.post_ok(d.route.path(), d.body.clone()).await;
    }
    redis.blackhole_when_client_sends(b"\r\nMULTI\r\n");
    expect_503(&node, &deliveries[mempool_p1], "Redis paused at MULTI").await;
    assert!(redis.fired());
    redis.restore();
    expect_200(&node, &deliveries[mempool_p1], "Redis back").await;
    for d in &deliveries[mempool_p1 + 1..] {
        node.post_ok(d.route.path(), d.body.clone()).await;
    }
    let snap = snapshot(&node).await;
    snap.assert_consistent();
    let reference = uninterrupted_run(&sc).await;
    assert_eq!(
        snap.events.iter().map(key).collect::<Vec<_>>(),
        reference.iter().map(key).collect::<Vec<_>>()
    );
    node.stop().await;
}

/// Redis dies at MULTI after PostgreSQL committed a *block*: the retry is a
/// duplicate (the block is in history) and catches the state store up; the
/// next block, built on it, must then extend the chain as usual.
/// (Regression: the chain view used to move only after the state store
/// applied, so block 117 was planned from a stale tip and its event lost.)
#[tokio::test]
async fn redis_fails_after_a_block_commit() {
    let (node, _pg, redis, sc) = node_behind_proxies().await;
    let deliveries = sc.deliveries();
    let at = position(&deliveries, "block 116:");
    for d in &deliveries[..at] {
        node.post_ok(d.route.path(), d.body.clone()).await;
    }
    let history = node.app().ingestor.history();
    let seq_before = history.last_seq().await.unwrap();
    redis.cut_when_client_sends(b"\r\nMULTI\r\n");
    expect_503(&node, &deliveries[at], "Redis cut at MULTI").await;
    assert!(redis.fired(), "the delivery never reached MULTI");
    assert!(
        history.last_seq().await.unwrap() > seq_before,
        "history committed first"
    );
    redis.restore();
    let answer = expect_200(&node, &deliveries[at], "Redis back after MULTI").await;
    assert_eq!(answer["duplicate"], true, "{answer}");
    for d in &deliveries[at + 1..] {
        node.post_ok(d.route.path(), d.body.clone()).await;
    }
    let gaps = node.app().ingestor.gaps().await.unwrap();
    assert!(
        gaps.is_empty(),
        "blocks held as gaps after the retry: {gaps:?}"
    );
    let snap = snapshot(&node).await;
    snap.assert_consistent();
    let reference = uninterrupted_run(&sc).await;
    assert_eq!(
        snap.events.iter().map(key).collect::<Vec<_>>(),
        reference.iter().map(key).collect::<Vec<_>>()
    );
    node.stop().await;
}
