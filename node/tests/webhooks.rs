//! Webhooks against a real local HTTP receiver, on both store kinds: the
//! signature verifies; a receiver failing 3 times then succeeding gets
//! exactly one successful delivery; a receiver always failing ends in the
//! dead-letter table after 5 attempts on the default 1 s -> 5 min schedule
//! (a paused clock that skips the waits), and a dead letter can be retried
//! through the API; a restart between attempts resumes the delivery.

mod common;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use common::blocks::{payment_id, Chain, NewPayment};
use common::{eventually, split, start_node, Stores, TestNode};
use nexus_core::domain::PaymentEvent;
use nexus_delivery::webhook::signature::verify_at;
use nexus_delivery::webhook::{
    verify_webhook_signature, EndpointConfig, Engine, DEFAULT_TOLERANCE,
};
use nexus_node::config::Config;
use serde_json::{json, Value};

/// The dead-letter endpoints are admin endpoints.
const ADMIN_KEY: &str = "admin-test-key";
use tokio_util::sync::CancellationToken;

const SECRET: &str = "whsec_test_0123456789abcdef";
const WAIT: Duration = Duration::from_secs(30);

/// One request the receiver got.
#[derive(Debug, Clone)]
struct Received {
    body: Bytes,
    signature: String,
    timestamp: String,
    event_id: String,
    /// What the receiver answered.
    status: u16,
}

/// A local HTTP receiver that answers 500 to the first `fail` requests
/// (all of them while `fail` is `u32::MAX`), then 200.
#[derive(Clone, Default)]
struct Receiver {
    got: Arc<Mutex<Vec<Received>>>,
    fail: Arc<AtomicU32>,
}

impl Receiver {
    async fn start(fail: u32) -> (Receiver, SocketAddr, CancellationToken) {
        let r = Receiver::default();
        r.fail.store(fail, Ordering::SeqCst);
        let app = Router::new()
            .route("/hook", post(receive))
            .with_state(r.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let stop = CancellationToken::new();
        let token = stop.clone();
        tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(token.cancelled_owned())
                .await
        });
        (r, addr, stop)
    }

    fn got(&self) -> Vec<Received> {
        self.got.lock().unwrap().clone()
    }
}

async fn receive(State(r): State<Receiver>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let fail = r.fail.load(Ordering::SeqCst);
    let status = if fail > 0 {
        if fail != u32::MAX {
            r.fail.store(fail - 1, Ordering::SeqCst);
        }
        StatusCode::INTERNAL_SERVER_ERROR
    } else {
        StatusCode::OK
    };
    r.got.lock().unwrap().push(Received {
        body,
        signature: h("x402-nexus-signature"),
        timestamp: h("x402-nexus-timestamp"),
        event_id: h("x402-nexus-event-id"),
        status: status.as_u16(),
    });
    status
}

fn endpoint(addr: SocketAddr) -> EndpointConfig {
    EndpointConfig {
        name: "merchant".into(),
        url: format!("http://{addr}/hook"),
        secret: SECRET.into(),
        events: vec![],
        principal: None,
        payment_id: None,
    }
}

async fn one_payment(node: &TestNode) {
    let mut chain = Chain::new();
    node.post_ok(
        "/new_block",
        chain.block(&[NewPayment {
            id: payment_id(1),
            payer: 1,
            payee: 2,
            amount: 7_000,
        }]),
    )
    .await;
}

async fn three_failures_then_one_success(stores: Stores) {
    let (rx, addr, stop) = Receiver::start(3).await;
    let node = start_node(stores, |c: &mut Config| {
        c.webhooks = vec![endpoint(addr)];
        c.webhook_initial_backoff_ms = 20;
        c.webhook_max_backoff_ms = 100;
    })
    .await;
    one_payment(&node).await;
    // The node writes delivered_ms only after the 2xx: once the store says
    // delivered, the delivery is over and nothing more can be sent.
    let store = node.app().delivery.webhooks.store.clone();
    eventually("delivered in the store", WAIT, || async {
        store
            .deliveries_of(1)
            .await
            .unwrap()
            .first()
            .is_some_and(|r| r.delivered_ms.is_some())
    })
    .await;
    let got = rx.got();
    assert_eq!(
        got.iter().map(|g| g.status).collect::<Vec<_>>(),
        vec![500, 500, 500, 200],
        "exactly one successful delivery"
    );
    for g in &got {
        verify_webhook_signature(
            &g.body,
            &g.signature,
            &g.timestamp,
            SECRET,
            DEFAULT_TOLERANCE,
        )
        .expect("signature verifies");
        assert!(verify_webhook_signature(
            &g.body,
            &g.signature,
            &g.timestamp,
            "wrong-secret-0123456",
            DEFAULT_TOLERANCE
        )
        .is_err());
        assert_eq!(g.event_id, "evt_1", "same event id on every attempt");
        assert_eq!(g.body, got[0].body, "same body on every attempt");
    }
    let event: PaymentEvent =
        serde_json::from_slice(&got[0].body).expect("the body is the event record");
    assert_eq!((event.seq, event.payment_id), (1, payment_id(1)));
    let stored = &node
        .app()
        .delivery
        .webhooks
        .store
        .deliveries_of(1)
        .await
        .unwrap()[0];
    assert_eq!(stored.attempts, 4);
    assert!(stored.delivered_ms.is_some());
    assert_eq!(node.metric("nexus_webhook_deliveries_total").await, 1.0);
    assert_eq!(node.metric("nexus_webhook_failures_total").await, 3.0);
    assert_eq!(node.metric("nexus_webhook_retries_total").await, 3.0);
    assert_eq!(node.metric("nexus_webhook_dead_letters_total").await, 0.0);
    node.stop().await;
    stop.cancel();
}

/// Delivered rows go once past their retention; undelivered ones stay.
async fn delivered_rows_are_pruned(stores: Stores) {
    let (ok, ok_addr, stop_ok) = Receiver::start(0).await;
    let (down, down_addr, stop_down) = Receiver::start(u32::MAX).await;
    let node = start_node(stores, |c: &mut Config| {
        let mut failing = endpoint(down_addr);
        failing.name = "down".into();
        c.webhooks = vec![endpoint(ok_addr), failing];
        // The failing endpoint's next attempt is far away: its row stays pending.
        c.webhook_initial_backoff_ms = 600_000;
        c.webhook_max_backoff_ms = 600_000;
    })
    .await;
    one_payment(&node).await;
    // Wait for the store, not the receivers: the node records an attempt
    // only after the receiver has answered it.
    let store = node.app().delivery.webhooks.store.clone();
    eventually("delivered and failed once, in the store", WAIT, || async {
        let rows = store.deliveries_of(1).await.unwrap();
        rows.iter()
            .any(|r| r.endpoint == "merchant" && r.delivered_ms.is_some())
            && rows.iter().any(|r| r.endpoint == "down" && r.attempts == 1)
    })
    .await;
    assert_eq!(ok.got().len(), 1, "one delivery to merchant");
    assert_eq!(down.got().len(), 1, "one failed attempt to down");
    let rows = store.deliveries_of(1).await.unwrap();
    assert_eq!(rows.len(), 2, "{rows:?}");
    let delivered = rows
        .iter()
        .find(|r| r.endpoint == "merchant")
        .and_then(|r| r.delivered_ms)
        .expect("delivered to merchant");
    assert_eq!(store.prune_delivered(delivered, 100).await.unwrap(), 0);
    assert_eq!(store.prune_delivered(delivered + 1, 100).await.unwrap(), 1);
    let left = store.deliveries_of(1).await.unwrap();
    assert_eq!(left.len(), 1, "{left:?}");
    assert_eq!(left[0].endpoint, "down");
    assert!(left[0].delivered_ms.is_none());
    assert_eq!(left[0].attempts, 1);
    // Nothing older is left to delete, whatever the cutoff.
    assert_eq!(store.prune_delivered(i64::MAX, 100).await.unwrap(), 0);
    node.stop().await;
    stop_ok.cancel();
    stop_down.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_rows_are_pruned_embedded() {
    delivered_rows_are_pruned(Stores::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivered_rows_are_pruned_production() {
    delivered_rows_are_pruned(Stores::Production).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_failures_then_one_success_embedded() {
    three_failures_then_one_success(Stores::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_failures_then_one_success_production() {
    three_failures_then_one_success(Stores::Production).await;
}

/// The scheduler on the node's stores with a paused clock and the default
/// schedule (5 attempts, 1 s -> 5 min, ±20%).
async fn always_failing_is_dead_lettered(stores: Stores) {
    let (rx, addr, stop) = Receiver::start(u32::MAX).await;
    // The node itself runs no webhooks: the test drives the scheduler.
    let node = start_node(stores, |c: &mut Config| c.api_keys = vec![ADMIN_KEY.into()]).await;
    let mut cfg = node.config.clone();
    cfg.webhooks = vec![endpoint(addr)];
    let start_ms = 1_800_000_000_000;
    let clock = Arc::new(nexus_core::clock::SkipClock::new(start_ms));
    let store = nexus_node::delivery::open_store(&cfg).await.expect("store");
    // A new scheduler starts at the log's head; this one from the start.
    assert_eq!(store.cursor(0).await.unwrap(), 0);
    let engine = Engine {
        store: store.clone(),
        history: node.app().ingestor.history().clone(),
        endpoints: Arc::new(nexus_node::delivery::endpoints(&cfg).unwrap()),
        settings: nexus_node::delivery::settings(&cfg),
        clock: clock.clone(),
        metrics: Default::default(),
        wake: Arc::new(tokio::sync::Notify::new()),
        client: reqwest::Client::new(),
    };
    let shutdown = CancellationToken::new();
    let task = tokio::spawn(
        engine
            .clone()
            .run(node.app().delivery.hub.subscribe(), shutdown.clone()),
    );
    one_payment(&node).await;
    eventually("a dead letter", WAIT, || async {
        !store.dead_letters(10).await.unwrap().is_empty()
    })
    .await;
    let got = rx.got();
    assert_eq!(got.len(), 5, "5 attempts, then no more");
    let ts: Vec<i64> = got.iter().map(|g| g.timestamp.parse().unwrap()).collect();
    let base: [f64; 4] = [1.0, 6.694, 44.81, 300.0];
    for (i, w) in ts.windows(2).enumerate() {
        let gap = (w[1] - w[0]) as f64;
        assert!(
            gap >= (base[i] * 0.8).floor() - 1.0 && gap <= (base[i] * 1.2).ceil() + 1.0,
            "wait {i} was {gap} s, expected {} s ±20%",
            base[i]
        );
    }
    for g in &got {
        verify_at(
            &g.body,
            &g.signature,
            &g.timestamp,
            SECRET,
            DEFAULT_TOLERANCE,
            g.timestamp.parse().unwrap(),
        )
        .expect("signature verifies at its own time");
    }
    // The API lists it; a retry queues it again and (receiver fixed) it goes through.
    // Admin endpoints need an API key.
    let (code, _) = node.get("/api/webhooks/dead-letters").await;
    assert_eq!(code, 401, "no key, no dead letters");
    let admin = |req: reqwest::RequestBuilder| req.bearer_auth(ADMIN_KEY);
    let (code, body) = split(
        admin(reqwest::Client::new().get(format!("http://{}/api/webhooks/dead-letters", node.api)))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(code, 200, "{body}");
    let dl = &body["dead_letters"][0];
    assert_eq!(dl["attempts"], 5);
    assert_eq!(dl["event_seq"], 1);
    assert_eq!(dl["endpoint"], "merchant");
    assert_eq!(dl["last_error"], "HTTP 500");
    assert!(
        store.deliveries_of(1).await.unwrap().is_empty(),
        "moved, not copied"
    );
    rx.fail.store(0, Ordering::SeqCst);
    let id = dl["id"].as_i64().unwrap();
    let resp = admin(reqwest::Client::new().post(format!(
        "http://{}/api/webhooks/dead-letters/{id}/retry",
        node.api
    )))
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 202);
    let again = admin(reqwest::Client::new().post(format!(
        "http://{}/api/webhooks/dead-letters/{id}/retry",
        node.api
    )))
    .send()
    .await
    .unwrap();
    assert_eq!(again.status(), 409, "already queued");
    let missing = admin(reqwest::Client::new().post(format!(
        "http://{}/api/webhooks/dead-letters/999999/retry",
        node.api
    )))
    .send()
    .await
    .unwrap();
    assert_eq!(missing.status(), 404);
    eventually("the retried delivery goes through", WAIT, || async {
        rx.got().last().is_some_and(|g| g.status == 200)
    })
    .await;
    assert_eq!(rx.got().len(), 6);
    let (_, body) = split(
        admin(reqwest::Client::new().get(format!("http://{}/api/webhooks/dead-letters", node.api)))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert!(body["dead_letters"][0]["retried_ms"].is_i64(), "{body}");
    shutdown.cancel();
    task.await.unwrap();
    node.stop().await;
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_failing_is_dead_lettered_embedded() {
    always_failing_is_dead_lettered(Stores::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn always_failing_is_dead_lettered_production() {
    always_failing_is_dead_lettered(Stores::Production).await;
}

async fn restart_mid_retry_resumes(stores: Stores) {
    let (rx, addr, stop) = Receiver::start(u32::MAX).await;
    let node = start_node(stores, |c: &mut Config| {
        c.webhooks = vec![endpoint(addr)];
        // Long enough that the restart happens between attempts 1 and 2.
        c.webhook_initial_backoff_ms = 3_000;
        c.webhook_max_backoff_ms = 3_000;
    })
    .await;
    one_payment(&node).await;
    eventually("the first attempt fails", WAIT, || async {
        node.app()
            .delivery
            .webhooks
            .store
            .deliveries_of(1)
            .await
            .unwrap()
            .first()
            .is_some_and(|d| d.attempts == 1)
    })
    .await;
    rx.fail.store(0, Ordering::SeqCst);
    let node = node.restart().await;
    eventually("delivered after the restart", WAIT, || async {
        node.app()
            .delivery
            .webhooks
            .store
            .deliveries_of(1)
            .await
            .unwrap()[0]
            .delivered_ms
            .is_some()
    })
    .await;
    let d = &node
        .app()
        .delivery
        .webhooks
        .store
        .deliveries_of(1)
        .await
        .unwrap()[0];
    assert_eq!(d.attempts, 2, "the count survived the restart");
    assert_eq!(
        rx.got().iter().map(|g| g.status).collect::<Vec<_>>(),
        vec![500, 200]
    );
    node.stop().await;
    stop.cancel();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_retry_resumes_embedded() {
    restart_mid_retry_resumes(Stores::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_mid_retry_resumes_production() {
    restart_mid_retry_resumes(Stores::Production).await;
}

#[tokio::test]
async fn bad_webhook_config_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    for (ep, why) in [
        (
            EndpointConfig {
                url: "ftp://example.com/h".into(),
                ..endpoint("127.0.0.1:1".parse().unwrap())
            },
            "scheme",
        ),
        (
            EndpointConfig {
                secret: "short".into(),
                ..endpoint("127.0.0.1:1".parse().unwrap())
            },
            "secret",
        ),
        (
            EndpointConfig {
                events: vec!["payment:nope".into()],
                ..endpoint("127.0.0.1:1".parse().unwrap())
            },
            "event",
        ),
    ] {
        let cfg = Config {
            observer_addr: "127.0.0.1:0".parse().unwrap(),
            api_addr: "127.0.0.1:0".parse().unwrap(),
            sqlite_path: dir.path().join("h.sqlite"),
            webhooks: vec![ep],
            ..Config::default()
        };
        let err = nexus_node::server::start(cfg).await.err().expect("refused");
        let text = format!("{:?}", err);
        assert!(text.contains("merchant"), "{why}: {text}");
    }
    let _ = json!(null) == Value::Null;
}
