//! The relay end to end: real signed transactions (built with
//! `@stacks/transactions` on devnet keys: `tests/fixtures/relay-txs.json`,
//! `npm run relay-fixtures`) posted to a real node over HTTP, broadcast to a
//! stacks-node RPC test double that can accept, reject with any reason, fail
//! or rate-limit; on the embedded stores and on real Redis + PostgreSQL.

#[path = "../common/mod.rs"]
mod common;

use std::time::Duration;

use common::{event_types, eventually, split, start_node, Stores, TestNode};
use nexus_node::config::Config;
use nexus_relay::ratelimit::Quota;
use nexus_stacks::scripted::{self, BroadcastOutcome, ScriptedNode};
use serde_json::{json, Value};

// Accepted, then submitted; invalid requests store nothing.
mod accept;
// Idempotency keys: the same body replays, another conflicts, concurrent ones have one winner, a restart keeps them.
mod idempotency;
// Broadcasting: rejections fail, transients retry, a dead provider is failed over.
mod broadcast;
// API keys and rate limits in front of the relay.
mod guard;

const FIXTURE: &str = include_str!("../../../tests/fixtures/relay-txs.json");
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
