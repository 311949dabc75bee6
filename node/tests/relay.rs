//! The relay end to end: real signed transactions (built with
//! `@stacks/transactions` on devnet keys: `tests/fixtures/relay-txs.json`,
//! `npm run relay-fixtures`) posted to a real node over HTTP, broadcast to a
//! stacks-node RPC test double that can accept, reject with any reason, fail
//! or rate-limit; on the embedded stores and on real Redis + PostgreSQL.

mod common;

use std::time::Duration;

use common::{eventually, split, start_node, Stores, TestNode};
use nexus_node::config::Config;
use nexus_relay::ratelimit::Quota;
use nexus_stacks::scripted::{self, BroadcastOutcome, ScriptedNode};
use serde_json::{json, Value};

const FIXTURE: &str = include_str!("../../tests/fixtures/relay-txs.json");
const WAIT: Duration = Duration::from_secs(20);

fn cases() -> Vec<Value> {
    let v: Value = serde_json::from_str(FIXTURE).expect("relay fixture");
    v["cases"].as_array().expect("cases").clone()
}

/// The fixture case whose label starts with `label`.
fn case(label: &str) -> Value {
    cases()
        .into_iter()
        .find(|c| c["label"].as_str().unwrap().starts_with(label))
        .unwrap_or_else(|| panic!("no fixture case {label:?}"))
}

fn tx_hex(c: &Value) -> String {
    c["tx_hex"].as_str().unwrap().to_string()
}

fn tx_bytes(c: &Value) -> Vec<u8> {
    hex::decode(tx_hex(c).trim_start_matches("0x")).unwrap()
}

const CREATE: &str = "create: Deny, sender willSendEq(amount)";
const CREATE_LTE: &str = "create: Deny, sender willSendLte";
const CREATE_GTE: &str = "create: Deny, sender willSendGte";
const CLAIM: &str = "claim-payment: Deny";

async fn relay_node(
    stores: Stores,
    rpc: &[&ScriptedNode],
    tweak: impl FnOnce(&mut Config),
) -> TestNode {
    let urls: Vec<String> = rpc.iter().map(|r| r.url()).collect();
    start_node(stores, move |c: &mut Config| {
        c.rpc_urls = urls;
        c.rpc_timeout_ms = 2_000;
        // Fast retries: the schedule's shape is the backoff module's unit tests.
        c.relay_initial_backoff_ms = 20;
        c.relay_max_backoff_ms = 100;
        tweak(c)
    })
    .await
}

struct Post<'a> {
    body: reqwest::Body,
    content_type: &'a str,
    key: Option<&'a str>,
    request_id: Option<&'a str>,
    bearer: Option<&'a str>,
}

impl<'a> Post<'a> {
    fn json(tx: &str) -> Self {
        Post {
            body: json!({ "tx": tx }).to_string().into(),
            content_type: "application/json",
            key: None,
            request_id: None,
            bearer: None,
        }
    }

    fn raw(bytes: Vec<u8>) -> Self {
        Post {
            body: bytes.into(),
            content_type: "application/octet-stream",
            ..Post::json("")
        }
    }

    fn key(mut self, k: &'a str) -> Self {
        self.key = Some(k);
        self
    }

    async fn send(self, node: &TestNode) -> (u16, Value, reqwest::header::HeaderMap) {
        let mut req = reqwest::Client::new()
            .post(format!("http://{}/api/payments", node.api))
            .header("content-type", self.content_type)
            .body(self.body);
        if let Some(k) = self.key {
            req = req.header("idempotency-key", k);
        }
        if let Some(r) = self.request_id {
            req = req.header("x-request-id", r);
        }
        if let Some(b) = self.bearer {
            req = req.bearer_auth(b);
        }
        let resp = req.send().await.expect("POST /api/payments");
        let headers = resp.headers().clone();
        let (code, body) = split(resp).await;
        (code, body, headers)
    }
}

async fn payment(node: &TestNode, id: &str) -> Value {
    let (code, body) = node.get(&format!("/api/payments/{id}")).await;
    assert_eq!(code, 200, "{body}");
    body
}

async fn status_becomes(node: &TestNode, id: &str, status: &str) -> Value {
    let mut last = Value::Null;
    let deadline = std::time::Instant::now() + WAIT;
    while std::time::Instant::now() < deadline {
        last = payment(node, id).await;
        if last["payment"]["status"] == status {
            return last;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("payment {id} never became {status}: {last}");
}

fn event_types(p: &Value) -> Vec<String> {
    p["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap().to_string())
        .collect()
}

async fn accepted_then_submitted(stores: Stores) {
    let rpc = scripted::start().await;
    let node = relay_node(stores, &[&rpc], |_| {}).await;
    let create = case(CREATE);
    let mut post = Post::json(&tx_hex(&create));
    post.request_id = Some("req-abc-1");
    let (code, body, headers) = post.send(&node).await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(
        headers["x-request-id"], "req-abc-1",
        "the client's request id comes back"
    );
    let id = body["payment_id"].as_str().unwrap().to_string();
    assert_eq!(id, create["payment_id"]);
    assert_eq!(body["txid"], create["txid"]);
    assert_eq!(body["status"], "pending");
    assert_eq!(body["function"], "create-payment");
    assert_eq!(body["request_id"], "req-abc-1");
    assert_eq!(body["links"]["self"], format!("/api/payments/{id}"));
    assert_eq!(body["links"]["proof"], format!("/api/payments/{id}/proof"));
    assert_eq!(body["payment"]["amount"], create["amount"]);
    assert_eq!(body["payment"]["sender"], create["sender"]);

    let p = status_becomes(&node, &id, "submitted").await;
    assert_eq!(event_types(&p), ["payment:created", "payment:submitted"]);
    for e in p["events"].as_array().unwrap() {
        assert_eq!(e["source"], "relay");
        assert_eq!(e["txid"], create["txid"]);
    }
    let b = &p["broadcasts"][0];
    assert_eq!(b["txid"], create["txid"]);
    assert_eq!(b["state"], "submitted");
    assert_eq!(
        b["request_id"], "req-abc-1",
        "the request id is on the payment's records"
    );
    assert_eq!(b["attempts_made"][0]["outcome"], "accepted");
    assert_eq!(b["attempts_made"][0]["provider"], rpc.url());
    assert_eq!(
        rpc.script.broadcasts(),
        vec![tx_bytes(&create)],
        "exactly one broadcast, the client's bytes"
    );

    // The claim of that payment, as raw bytes: accepted, broadcast, and the
    // payment's status is left to the chain.
    let claim = case(CLAIM);
    let (code, body, headers) = Post::raw(tx_bytes(&claim)).send(&node).await;
    assert_eq!(code, 202, "{body}");
    assert!(
        !headers["x-request-id"].is_empty(),
        "a request id is generated"
    );
    assert_eq!(body["function"], "claim-payment");
    assert_eq!(body["status"], "submitted");
    eventually("the claim is broadcast", WAIT, || async {
        rpc.script.broadcasts().len() == 2
    })
    .await;
    assert_eq!(node.metric("nexus_relay_accepted_total").await, 2.0);
    node.stop().await;
}

#[tokio::test]
async fn accepted_then_submitted_embedded() {
    accepted_then_submitted(Stores::Embedded).await;
}

#[tokio::test]
async fn accepted_then_submitted_production() {
    accepted_then_submitted(Stores::Production).await;
}

/// Every invalid fixture case: 400 naming the field, and nothing stored or sent.
async fn invalid_requests_store_nothing(stores: Stores) {
    let rpc = scripted::start().await;
    let node = relay_node(stores, &[&rpc], |_| {}).await;
    let mut checked = 0;
    for c in cases().into_iter().filter(|c| c["expect"] != "valid") {
        let (code, body, _) = Post::json(&tx_hex(&c)).send(&node).await;
        assert_eq!(code, 400, "{}: {body}", c["label"]);
        let e = &body["error"];
        assert_eq!(e["type"], "permanent", "{}", c["label"]);
        assert_eq!(e["code"], "validation_error", "{}", c["label"]);
        assert_eq!(e["field"], c["expect"]["field"], "{}: {body}", c["label"]);
        let contains = c["expect"]["contains"].as_str().unwrap();
        assert!(
            e["message"].as_str().unwrap().contains(contains),
            "{}: {e} should mention {contains:?}",
            c["label"]
        );
        checked += 1;
    }
    assert!(
        checked >= 30,
        "the fixture covers every field ({checked} cases)"
    );
    // Malformed bodies, wrong types and sizes.
    let bad: Vec<(Post<'_>, u16, &str)> = vec![
        (
            Post {
                body: "{not json".into(),
                ..Post::json("")
            },
            400,
            "body",
        ),
        (
            Post {
                body: json!({"tx": 7}).to_string().into(),
                ..Post::json("")
            },
            400,
            "body",
        ),
        (
            Post {
                body: json!({"tx": "0x00", "extra": 1}).to_string().into(),
                ..Post::json("")
            },
            400,
            "body",
        ),
        (Post::json("0xzz"), 400, "tx"),
        (Post::json(""), 400, "tx"),
        (Post::raw(Vec::new()), 400, "tx"),
        (
            Post {
                content_type: "text/plain",
                ..Post::json(&tx_hex(&case(CREATE)))
            },
            415,
            "Content-Type",
        ),
        (
            Post::json(&tx_hex(&case(CREATE))).key("has space"),
            400,
            "Idempotency-Key",
        ),
    ];
    for (post, want, field) in bad {
        let (code, body, _) = post.send(&node).await;
        assert_eq!(code, want, "{body}");
        assert_eq!(body["error"]["field"], field, "{body}");
    }
    let (code, _, _) = Post::raw(vec![0u8; 300 * 1024]).send(&node).await;
    assert_eq!(code, 413, "oversize bodies are refused before parsing");
    let (_, list) = node.get("/api/payments").await;
    assert_eq!(list["payments"], json!([]), "no payment recorded");
    let log = node
        .app()
        .ingestor
        .history()
        .events_since(0, 10)
        .await
        .expect("event log");
    assert!(log.is_empty(), "no event: {log:?}");
    // Nothing scheduled, so nothing can ever be broadcast.
    assert_eq!(
        node.app().relay.store.next_due_ms().await.unwrap(),
        None,
        "nothing scheduled"
    );
    assert!(rpc.script.broadcasts().is_empty(), "nothing broadcast");
    node.stop().await;
}

#[tokio::test]
async fn invalid_requests_store_nothing_embedded() {
    invalid_requests_store_nothing(Stores::Embedded).await;
}

#[tokio::test]
async fn invalid_requests_store_nothing_production() {
    invalid_requests_store_nothing(Stores::Production).await;
}

/// The context seed's idempotency rules, on Redis.
#[tokio::test]
async fn idempotency_same_different_concurrent() {
    let rpc = scripted::start().await;
    let node = relay_node(Stores::Production, &[&rpc], |_| {}).await;
    let a = tx_hex(&case(CREATE));
    let (c1, b1, _) = Post::json(&a).key("order-1").send(&node).await;
    let (c2, b2, _) = Post::json(&a).key("order-1").send(&node).await;
    assert_eq!((c1, c2), (202, 202));
    assert_eq!(b1, b2, "the same key and body get the stored response");
    assert_eq!(node.metric("nexus_relay_replayed_total").await, 1.0);
    let (c3, b3, _) = Post::json(&tx_hex(&case(CREATE_LTE)))
        .key("order-1")
        .send(&node)
        .await;
    assert_eq!(c3, 409, "{b3}");
    assert_eq!(b3["error"]["code"], "idempotency_conflict");
    assert_eq!(b3["error"]["type"], "permanent");

    // 16 concurrent identical requests (key derived from the txid): one
    // owner, the rest wait for its answer; exactly one broadcast.
    let gte = case(CREATE_GTE);
    let gte_hex = tx_hex(&gte);
    let node_ref = &node;
    let answers = futures::future::join_all(
        (0..16).map(|_| async { Post::json(&gte_hex).send(node_ref).await }),
    )
    .await;
    for (code, body, _) in &answers {
        assert_eq!(*code, 202, "{body}");
        assert_eq!(body, &answers[0].1, "every duplicate gets the same body");
    }
    let gte_bytes = tx_bytes(&gte);
    // Once the one broadcast is recorded as submitted, no engine will send
    // it again; the 15 duplicates never had a broadcast of their own.
    let id = gte["payment_id"].as_str().unwrap();
    status_becomes(&node, id, "submitted").await;
    let sent = rpc
        .script
        .broadcasts()
        .iter()
        .filter(|b| **b == gte_bytes)
        .count();
    assert_eq!(
        sent, 1,
        "exactly one broadcast for 16 concurrent duplicates"
    );
    assert_eq!(
        event_types(&payment(&node, id).await)
            .iter()
            .filter(|t| *t == "payment:created")
            .count(),
        1
    );
    node.stop().await;
}

/// Idempotency keys outlive a restart on every store set (Redis; without
/// Redis, PostgreSQL or the embedded default's SQLite file): the same key
/// and body get the stored answer, another body a conflict.
async fn idempotency_survives_a_restart(stores: Stores, tweak: impl FnOnce(&mut Config)) {
    let rpc = scripted::start().await;
    let node = relay_node(stores, &[&rpc], tweak).await;
    let a = tx_hex(&case(CREATE));
    let (c1, b1, _) = Post::json(&a).key("order-9").send(&node).await;
    assert_eq!(c1, 202, "{b1}");
    let node = node.restart().await;
    let (c2, b2, _) = Post::json(&a).key("order-9").send(&node).await;
    assert_eq!((c2, &b2), (202, &b1), "the stored answer, after a restart");
    assert_eq!(node.metric("nexus_relay_replayed_total").await, 1.0);
    let (c3, b3, _) = Post::json(&tx_hex(&case(CREATE_LTE)))
        .key("order-9")
        .send(&node)
        .await;
    assert_eq!(c3, 409, "{b3}");
    assert_eq!(b3["error"]["code"], "idempotency_conflict");
    node.stop().await;
}

#[tokio::test]
async fn idempotency_survives_a_restart_embedded() {
    idempotency_survives_a_restart(Stores::Embedded, |_| {}).await;
}

#[tokio::test]
async fn idempotency_survives_a_restart_production() {
    idempotency_survives_a_restart(Stores::Production, |_| {}).await;
}

#[tokio::test]
async fn idempotency_survives_a_restart_postgres_without_redis() {
    idempotency_survives_a_restart(Stores::Production, |c| c.redis_url = None).await;
}

/// A permanent rejection fails the payment with the node's reason and data;
/// transient failures retry (each a `payment:retrying`) until accepted.
#[tokio::test]
async fn rejections_fail_and_transients_retry() {
    let rpc = scripted::start().await;
    let node = relay_node(Stores::Embedded, &[&rpc], |_| {}).await;
    let data = json!({"expected": 8, "actual": 7, "is_origin": true, "principal": "ST1SJ3DTE5DN7X54YDH5D64R3BCB6A2AG2ZQ8YPD5"});
    rpc.script
        .push_broadcasts([BroadcastOutcome::reject("BadNonce", Some(data.clone()))]);
    let c = case(CREATE);
    let (code, _, _) = Post::json(&tx_hex(&c)).send(&node).await;
    assert_eq!(code, 202);
    let id = c["payment_id"].as_str().unwrap();
    let p = status_becomes(&node, id, "failed").await;
    assert_eq!(event_types(&p), ["payment:created", "payment:failed"]);
    let failed = &p["events"][1];
    assert_eq!(failed["reason"], "BadNonce");
    assert_eq!(failed["reason_data"], data);
    assert_eq!(p["payment"]["reason"], "BadNonce");
    assert_eq!(p["broadcasts"][0]["state"], "failed");
    assert_eq!(p["broadcasts"][0]["reason_data"], data);

    rpc.script.push_broadcasts([
        BroadcastOutcome::Status(503),
        BroadcastOutcome::reject("ServerFailureDatabase", None),
    ]);
    let c = case(CREATE_LTE);
    let (code, _, _) = Post::json(&tx_hex(&c)).send(&node).await;
    assert_eq!(code, 202);
    let id = c["payment_id"].as_str().unwrap();
    let p = status_becomes(&node, id, "submitted").await;
    assert_eq!(
        event_types(&p),
        [
            "payment:created",
            "payment:retrying",
            "payment:retrying",
            "payment:submitted"
        ]
    );
    for (i, e) in p["events"].as_array().unwrap()[1..3].iter().enumerate() {
        assert_eq!(e["retry"]["attempt"], i as u64 + 1, "{e}");
        assert!(e["retry"]["next_delay_ms"].as_u64().unwrap() <= 100, "{e}");
        assert_eq!(e["status"], "pending");
    }
    assert_eq!(p["events"][2]["reason"], "ServerFailureDatabase");
    let attempts = p["broadcasts"][0]["attempts_made"].as_array().unwrap();
    assert_eq!(attempts.len(), 3);
    assert_eq!(attempts[2]["outcome"], "accepted");
    let (code, stats) = node.get("/api/stats/providers").await;
    assert_eq!(code, 200);
    assert_eq!(stats["providers"][0]["url"], rpc.url(), "{stats}");
    node.stop().await;
}

/// The first provider is down: broadcasts fall over to the second.
#[tokio::test]
async fn broadcasts_fail_over_to_a_healthy_provider() {
    let down = scripted::start().await;
    down.script.set_mode(scripted::Mode::Status(500));
    let up = scripted::start().await;
    let node = relay_node(Stores::Embedded, &[&down, &up], |_| {}).await;
    for label in [CREATE, CREATE_LTE, CREATE_GTE] {
        let (code, body, _) = Post::json(&tx_hex(&case(label))).send(&node).await;
        assert_eq!(code, 202, "{body}");
    }
    for label in [CREATE, CREATE_LTE, CREATE_GTE] {
        let p = status_becomes(
            &node,
            case(label)["payment_id"].as_str().unwrap(),
            "submitted",
        )
        .await;
        assert_eq!(p["broadcasts"][0]["provider"], up.url());
    }
    assert_eq!(up.script.broadcasts().len(), 3);
    node.stop().await;
}

/// API keys on write endpoints, and the per-IP limit with Retry-After
/// (in memory; in Redis, where concurrent checks go in groups).
async fn api_keys_and_rate_limits(stores: Stores) {
    let rpc = scripted::start().await;
    let node = relay_node(stores, &[&rpc], |c| {
        c.api_keys = vec!["key-1".into()];
        c.rate_limit_per_ip = Some(Quota {
            per_second: 0.5,
            burst: 3,
        });
    })
    .await;
    let tx = tx_hex(&case(CREATE));
    let (code, body, headers) = Post::json(&tx).send(&node).await;
    assert_eq!(code, 401, "{body}");
    assert_eq!(body["error"]["code"], "missing_api_key");
    assert_eq!(headers["www-authenticate"], "Bearer");
    let mut wrong = Post::json(&tx);
    wrong.bearer = Some("nope");
    let (code, body, _) = wrong.send(&node).await;
    assert_eq!(
        (code, body["error"]["code"].as_str()),
        (401, Some("invalid_api_key"))
    );
    let mut good = Post::json(&tx);
    good.bearer = Some("key-1");
    let (code, body, _) = good.send(&node).await;
    assert_eq!(code, 202, "{body}");
    let mut again = Post::json(&tx);
    again.bearer = Some("key-1");
    let (code, body, headers) = again.send(&node).await;
    assert_eq!(code, 429, "{body}");
    assert_eq!(body["error"]["type"], "temporary");
    assert_eq!(body["error"]["code"], "rate_limited");
    let secs = body["error"]["retry_after_seconds"].as_u64().unwrap();
    assert!((1..=2).contains(&secs), "{body}");
    assert_eq!(headers["retry-after"].to_str().unwrap(), secs.to_string());
    // Reads under /api are limited too; /health is not.
    let (code, _) = node.get("/api/payments").await;
    assert_eq!(code, 429);
    let (code, _) = node.get("/health").await;
    assert_eq!(code, 200);
    node.stop().await;
}

#[tokio::test]
async fn api_keys_and_rate_limits_embedded() {
    api_keys_and_rate_limits(Stores::Embedded).await;
}

#[tokio::test]
async fn api_keys_and_rate_limits_production() {
    api_keys_and_rate_limits(Stores::Production).await;
}

/// A broadcast still being retried when the node stops resumes after a
/// restart: the schedule is in the history database.
async fn restart_resumes_a_pending_broadcast(stores: Stores) {
    let failing = scripted::start().await;
    // A transient rejection: an answer, so the breaker stays closed and the
    // retry schedule is the backoff alone (a 5xx would open the breaker after
    // three attempts and the next one would wait out its 60 s cooldown).
    failing.script.push_broadcasts(std::iter::repeat_n(
        BroadcastOutcome::reject("ServerFailureDatabase", None),
        10_000,
    ));
    let node = relay_node(stores, &[&failing], |c| {
        c.relay_initial_backoff_ms = 300;
        c.relay_max_backoff_ms = 300;
    })
    .await;
    let c = case(CREATE);
    let (code, _, _) = Post::json(&tx_hex(&c)).send(&node).await;
    assert_eq!(code, 202);
    let id = c["payment_id"].as_str().unwrap().to_string();
    eventually("a first attempt fails", WAIT, || async {
        payment(&node, &id).await["broadcasts"][0]["attempts"]
            .as_u64()
            .unwrap_or(0)
            >= 1
    })
    .await;
    let healthy = scripted::start().await;
    let url = healthy.url();
    let node = node.restart_with(|cfg| cfg.rpc_urls = vec![url]).await;
    let p = status_becomes(&node, &id, "submitted").await;
    let b = &p["broadcasts"][0];
    assert!(b["attempts"].as_u64().unwrap() >= 2, "{b}");
    assert_eq!(b["provider"], healthy.url());
    assert_eq!(healthy.script.broadcasts(), vec![tx_bytes(&c)]);
    node.stop().await;
}

#[tokio::test]
async fn restart_resumes_a_pending_broadcast_embedded() {
    restart_resumes_a_pending_broadcast(Stores::Embedded).await;
}

#[tokio::test]
async fn restart_resumes_a_pending_broadcast_production() {
    restart_resumes_a_pending_broadcast(Stores::Production).await;
}

/// Without an RPC the relay says so (after validating), and the OpenAPI
/// document describes the whole API.
#[tokio::test]
async fn without_rpc_relay_is_unavailable_and_openapi_is_served() {
    let node = start_node(Stores::Embedded, |_| {}).await;
    // Garbage that happens to be hex is a 400 from validation, RPC or not.
    let (code, body, _) = Post::json("0xdeadbeef").send(&node).await;
    assert_eq!(code, 400, "{body}");
    assert_eq!(body["error"]["code"], "validation_error");
    assert_eq!(body["error"]["type"], "permanent");
    let (code, body, headers) = Post::json(&tx_hex(&case(CREATE))).send(&node).await;
    assert_eq!(code, 503, "{body}");
    assert_eq!(body["error"]["code"], "relay_unavailable");
    // A 503 is always temporary and says when to come back.
    assert_eq!(body["error"]["type"], "temporary");
    assert_eq!(body["error"]["retry_after_seconds"], 60);
    assert_eq!(headers["retry-after"], "60");
    let (code, doc) = node.get("/api/openapi.json").await;
    assert_eq!(code, 200);
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["paths"]["/api/payments"]["post"].is_object());
    node.stop().await;
}
