//! The recorded escrow scenario (`tests/fixtures/escrow-simnet.json`, from
//! the real contract in the Clarinet simnet) end to end: observer POSTs over
//! HTTP into both store kinds, then the API, idempotent redelivery and a
//! restart on the same stores.
//!
//! The expected event sequence is derived here from the fixture itself (what
//! each recorded call did on chain), not copied from the node's output.

mod common;

use std::collections::{BTreeMap, HashMap};

use common::{snapshot, start_node, Snapshot, Stores, TestNode, SCENARIO};
use nexus_core::domain::{EventSource, PaymentEvent};
use nexus_core::simnet::Scenario;
use serde_json::Value;

/// One expected payment event.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    seq: u64,
    event_type: String,
    payment_id: String,
    status: String,
    txid: String,
    /// `None` for mempool events.
    block_height: Option<u64>,
    sender: String,
    recipient: String,
    amount: String,
    /// Only for `payment:failed`: which abort it was.
    reason: Option<String>,
    /// Only for `payment:failed`: the call's `(err uN)`, kept as a detail.
    result: Option<String>,
}

impl Expected {
    fn of(e: &PaymentEvent) -> Expected {
        Expected {
            seq: e.seq,
            event_type: e.event_type.as_str().to_string(),
            payment_id: e.payment_id.to_string(),
            status: e.status.as_str().to_string(),
            txid: e.txid.clone().unwrap_or_default(),
            block_height: e.block_height,
            sender: e.sender.clone().unwrap_or_default(),
            recipient: e.recipient.clone().unwrap_or_default(),
            amount: e.amount.clone().unwrap_or_default(),
            reason: e.reason.clone(),
            result: e
                .reason_data
                .as_ref()
                .and_then(|d| d["result"].as_str())
                .map(str::to_string),
        }
    }
}

fn hex_of(s: &str) -> String {
    s.bytes().map(|b| format!("{b:02x}")).collect()
}

/// What the node must emit for the recorded transactions, given how the
/// scenario is delivered (`Scenario::deliveries`: each height's transactions
/// announced in the mempool, then mined in that height's block):
///
/// * every `create-payment` seen in the mempool: `payment:submitted`;
/// * mined `create-payment`: `payment:confirmed` if it succeeded, else
///   `payment:failed` with reason `AbortByResponse` and the call's result
///   as its detail;
/// * successful `claim-payment` / `refund-expired`: `payment:claimed` / `payment:refunded`;
/// * failed claims and `pause`/`unpause`: nothing (no payment changes);
/// * after each block: `payment:final` for every payment whose latest
///   on-chain transition (confirmed, claimed, refunded: it has a position)
///   is now [`CONFIRMATION_DEPTH`] blocks deep, in payment-id order, carrying
///   that transition's block and txid. A new transition restarts the count;
///   a failed create has no position and never becomes final.
fn expected_events(fixture: &Value) -> Vec<Expected> {
    let txs = fixture["transactions"].as_array().expect("transactions");
    let mut by_height: BTreeMap<u64, Vec<&Value>> = BTreeMap::new();
    for t in txs {
        by_height
            .entry(t["block_height"].as_u64().expect("height"))
            .or_default()
            .push(t);
    }
    let s = |v: &Value| v.as_str().expect("string").to_string();
    // (sender, recipient, amount) of each payment, from its create-payment call.
    let mut parties = Parties::new();
    let mut out = Vec::new();
    // Finality of each payment: its status, latest on-chain position, final yet.
    let mut depth: BTreeMap<String, Finality> = BTreeMap::new();
    let top = *by_height.keys().last().expect("a block");
    for h in 1..=top {
        let here = by_height.get(&h).cloned().unwrap_or_default();
        for t in &here {
            if t["function"] == "create-payment" {
                let id = s(&t["args"][0]["repr"]);
                let recipient = s(&t["args"][1]["repr"])
                    .trim_start_matches('\'')
                    .to_string();
                let amount = s(&t["args"][2]["repr"]).trim_start_matches('u').to_string();
                parties.insert(id, (s(&t["sender"]), recipient, amount));
                push(
                    &mut out,
                    &parties,
                    t,
                    "payment:submitted",
                    "submitted",
                    None,
                );
            }
        }
        for t in &here {
            let ok = t["success"].as_bool().expect("success");
            let (ty, status, print) = match (t["function"].as_str().expect("function"), ok) {
                ("create-payment", true) => {
                    ("payment:confirmed", "confirmed", Some("payment-created"))
                }
                ("create-payment", false) => ("payment:failed", "failed", None),
                ("claim-payment", true) => ("payment:claimed", "claimed", Some("payment-claimed")),
                ("refund-expired", true) => {
                    ("payment:refunded", "refunded", Some("payment-refunded"))
                }
                _ => continue,
            };
            if let Some(name) = print {
                // The contract's print says the same thing about the same id.
                let id_arg = s(&t["args"][0]["hex"]);
                let printed = t["events"]
                    .as_array()
                    .expect("events")
                    .iter()
                    .filter(|e| e["type"] == "print_event")
                    .filter_map(|e| e["raw_value"].as_str())
                    .any(|raw| raw.contains(&hex_of(name)) && raw.contains(&id_arg[2..]));
                assert!(
                    printed,
                    "fixture: {} has no {name} print for its id",
                    s(&t["step"])
                );
            }
            push(&mut out, &parties, t, ty, status, Some(h));
            let id = s(&t["args"][0]["repr"]);
            let entry = depth.entry(id).or_insert((String::new(), None, false));
            entry.0 = status.to_string();
            if status != "failed" {
                entry.1 = Some((s(&t["txid"]), h));
            }
            entry.2 = false;
        }
        for (id, (status, pos, fin)) in depth.iter_mut() {
            let Some((txid, at)) = pos else { continue };
            if *fin || h + 1 - *at < CONFIRMATION_DEPTH {
                continue;
            }
            *fin = true;
            let (sender, recipient, amount) = parties[id].clone();
            out.push(Expected {
                seq: out.len() as u64 + 1,
                event_type: "payment:final".into(),
                payment_id: id.clone(),
                status: status.clone(),
                txid: txid.clone(),
                block_height: Some(*at),
                sender,
                recipient,
                amount,
                reason: None,
                result: None,
            });
        }
    }
    out
}

/// Blocks on top of a transition (its own included) before it is final:
/// the node's default (`nexus_indexer::ingest::DEFAULT_CONFIRMATION_DEPTH`).
const CONFIRMATION_DEPTH: u64 = 6;

type Parties = HashMap<String, (String, String, String)>;

/// A payment's status, the `(txid, height)` of its latest on-chain
/// transition, and whether that transition was declared final.
type Finality = (String, Option<(String, u64)>, bool);

/// Append the event `t` causes for its payment (the call's first argument).
fn push(
    out: &mut Vec<Expected>,
    parties: &Parties,
    t: &Value,
    ty: &str,
    status: &str,
    height: Option<u64>,
) {
    let s = |v: &Value| v.as_str().expect("string").to_string();
    let id = s(&t["args"][0]["repr"]);
    let (sender, recipient, amount) = parties[&id].clone();
    out.push(Expected {
        seq: out.len() as u64 + 1,
        event_type: ty.to_string(),
        payment_id: id,
        status: status.to_string(),
        txid: s(&t["txid"]),
        block_height: height,
        sender,
        recipient,
        amount,
        reason: (status == "failed").then(|| "AbortByResponse".to_string()),
        result: (status == "failed").then(|| s(&t["result_repr"])),
    });
}

/// POST every delivery of the scenario; all must be 200.
async fn deliver_all(node: &TestNode, scenario: &Scenario) {
    for d in scenario.deliveries() {
        let (code, body) = node.post(d.route.path(), d.body.clone()).await;
        assert_eq!(code, 200, "{}: {body}", d.label);
    }
}

/// `GET /api/payments?...` following `next` until the end.
async fn list_all(node: &TestNode, query: &str) -> Vec<Value> {
    let mut out = Vec::new();
    let mut after: Option<String> = None;
    for _ in 0..100 {
        let path = match &after {
            Some(a) => format!("/api/payments?{query}&after={a}"),
            None => format!("/api/payments?{query}"),
        };
        let (code, page) = node.get(&path).await;
        assert_eq!(code, 200, "{path}: {page}");
        out.extend(
            page["payments"]
                .as_array()
                .expect("payments")
                .iter()
                .cloned(),
        );
        match page["next"].as_str() {
            Some(n) => after = Some(n.to_string()),
            None => return out,
        }
    }
    panic!("pagination of {query} does not end");
}

/// The API's view of every payment, with its events.
async fn api_payments(node: &TestNode, snap: &Snapshot) -> Vec<Value> {
    let mut out = Vec::new();
    for p in &snap.payments {
        let (code, body) = node.get(&format!("/api/payments/{}", p.payment_id)).await;
        assert_eq!(code, 200, "{body}");
        out.push(body);
    }
    out
}

async fn escrow_scenario(stores: Stores) {
    let fixture: Value = serde_json::from_str(SCENARIO).expect("fixture JSON");
    let scenario = Scenario::parse(SCENARIO).expect("scenario");
    let expected = expected_events(&fixture);
    let transitions = expected
        .iter()
        .filter(|e| e.event_type != "payment:final")
        .count();
    assert_eq!(
        transitions, 19,
        "the fixture's 15 calls make 19 payment transitions"
    );

    let node = start_node(stores, |c| c.contract_id = scenario.contract_id.clone()).await;
    let mut bus = node.app().bus.subscribe();
    deliver_all(&node, &scenario).await;

    // The exact event log.
    let snap = snapshot(&node).await;
    snap.assert_consistent();
    let got: Vec<Expected> = snap.events.iter().map(Expected::of).collect();
    assert_eq!(got, expected);
    for e in &snap.events {
        assert_eq!(e.source, EventSource::Observer);
        // Mempool events have no depth; block events are emitted at the tip,
        // `final` ones once their block is deep enough.
        let depth = match (e.block_height, e.event_type.as_str()) {
            (_, "payment:final") => CONFIRMATION_DEPTH,
            (Some(_), _) => 1,
            (None, _) => 0,
        };
        assert_eq!(e.confirmations, depth, "seq {}", e.seq);
    }
    // Published once each, in order.
    let mut published = Vec::new();
    while let Ok(e) = bus.try_recv() {
        published.push(e);
    }
    assert_eq!(published, snap.events, "bus == event log");

    // Final status of every payment: the status of its last event.
    let mut finals: BTreeMap<String, String> = BTreeMap::new();
    for e in &expected {
        finals.insert(e.payment_id.clone(), e.status.clone());
    }
    let stored: BTreeMap<String, String> = snap
        .payments
        .iter()
        .map(|p| (p.payment_id.to_string(), p.status.as_str().to_string()))
        .collect();
    assert_eq!(stored, finals);

    // GET /api/payments/{id}: the record and its own events.
    let views = api_payments(&node, &snap).await;
    for (p, view) in snap.payments.iter().zip(&views) {
        let id = p.payment_id.to_string();
        assert_eq!(view["payment"]["payment_id"], id.as_str());
        assert_eq!(view["payment"]["status"], finals[&id].as_str());
        assert_eq!(
            view["payment"]["expired"], false,
            "every payment is settled"
        );
        let own: Vec<Value> = snap
            .events
            .iter()
            .filter(|e| e.payment_id == p.payment_id)
            .map(|e| serde_json::to_value(e).unwrap())
            .collect();
        assert_eq!(view["events"].as_array().unwrap(), &own, "events of {id}");
    }

    // Filter and keyset pagination.
    let claimed: Vec<String> = finals
        .iter()
        .filter(|(_, s)| *s == "claimed")
        .map(|(id, _)| id.clone())
        .collect();
    assert_eq!(claimed.len(), 3);
    let listed = list_all(&node, "status=claimed").await;
    let listed: Vec<&str> = listed
        .iter()
        .map(|p| p["payment_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed, claimed);
    let (_, first) = node.get("/api/payments?limit=2").await;
    assert_eq!(first["payments"].as_array().unwrap().len(), 2);
    assert_eq!(first["next"], first["payments"][1]["payment_id"]);
    let paged = list_all(&node, "limit=2").await;
    let paged: Vec<&str> = paged
        .iter()
        .map(|p| p["payment_id"].as_str().unwrap())
        .collect();
    assert_eq!(paged, finals.keys().map(String::as_str).collect::<Vec<_>>());

    let (code, health) = node.get("/health").await;
    assert_eq!(code, 200, "{health}");
    assert_eq!(health["status"], "ok");
    assert_eq!(health["last_block_height"], 117);
    let mode = if stores == Stores::Embedded {
        "embedded"
    } else {
        "production"
    };
    assert_eq!(health["mode"], mode);

    // stacks-node redelivers everything (e.g. after it lost our 200s): no
    // new event, nothing changes.
    deliver_all(&node, &scenario).await;
    assert_eq!(
        snapshot(&node).await,
        snap,
        "redelivery changed stored state"
    );
    assert!(bus.try_recv().is_err(), "redelivery published an event");

    // Restart on the same stores. Embedded: memory is rebuilt from the
    // SQLite file. Production: Redis is emptied first (losing the cache
    // loses nothing), so it is rebuilt from PostgreSQL too.
    if stores == Stores::Production {
        let cfg = &node.config;
        let redis = nexus_store::redis::RedisState::connect(
            cfg.redis_url.as_deref().unwrap(),
            &cfg.redis_prefix,
        )
        .await
        .unwrap();
        redis.flush_prefix().await.unwrap();
    }
    let node = node.restart().await;
    let again = snapshot(&node).await;
    assert_eq!(again, snap, "a restart serves the same payments and events");
    assert_eq!(api_payments(&node, &again).await, views);
    // And it carries on where it stopped: redelivery is still a no-op.
    deliver_all(&node, &scenario).await;
    assert_eq!(snapshot(&node).await, snap);
    node.stop().await;
}

#[tokio::test]
async fn escrow_scenario_embedded() {
    escrow_scenario(Stores::Embedded).await;
}

#[tokio::test]
async fn escrow_scenario_production() {
    escrow_scenario(Stores::Production).await;
}
