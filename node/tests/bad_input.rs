//! Bad input through the real HTTP observer and API, into both store kinds:
//! each case gets the documented answer (see the table at the top of
//! `node/src/observer.rs`), a dead letter or a counter, and leaves the stored
//! payments, events and `last_seq` exactly as they were.

mod common;

use common::{snapshot, start_node, Snapshot, Stores, TestNode, SCENARIO};
use nexus_core::domain::{EventType, PaymentStatus};
use nexus_core::observer::Route;
use nexus_core::simnet::{block_envelope, print_entry, tx_entry, RecordedTx, Scenario};
use nexus_node::config::Config;
use serde_json::{json, Value};

fn scenario() -> Scenario {
    Scenario::parse(SCENARIO).expect("scenario")
}

/// The recorded transaction whose step starts with `step`.
fn recorded<'a>(sc: &'a Scenario, step: &str) -> &'a RecordedTx {
    sc.transactions
        .iter()
        .find(|t| t.step.starts_with(step))
        .unwrap_or_else(|| panic!("no recorded step {step:?}"))
}

/// The raw value of `t`'s print event.
fn print_of(t: &RecordedTx) -> &str {
    t.events
        .iter()
        .find_map(|e| e.raw_value.as_deref())
        .expect("a print event")
}

/// A node with some history: the scenario's first four deliveries (blocks 1
/// and 2, then p1 announced and mined in block 3), so "unchanged" means
/// something.
async fn node_with_history(
    stores: Stores,
    tweak: impl FnOnce(&mut Config),
) -> (TestNode, Scenario) {
    let sc = scenario();
    let node = start_node(stores, |c| {
        c.contract_id = sc.contract_id.clone();
        tweak(c);
    })
    .await;
    for d in sc.deliveries().iter().take(4) {
        node.post_ok(d.route.path(), d.body.clone()).await;
    }
    let snap = snapshot(&node).await;
    assert_eq!(snap.events.len(), 2, "p1 submitted and confirmed");
    (node, sc)
}

/// POST a payload that can never be processed: 200, exactly one new dead
/// letter for `path` holding the payload and a reason, nothing else changed.
async fn assert_poison(node: &TestNode, before: &Snapshot, path: &str, body: Vec<u8>) {
    let dead_before = node.dead_letters().await.len();
    let (code, answer) = node.post(path, body.clone()).await;
    assert_eq!(code, 200, "{path}: {answer}");
    assert_eq!(answer["dead_letters"], 1, "{path}: {answer}");
    assert_eq!(answer["events"], 0, "{path}: {answer}");
    let dead = node.dead_letters().await;
    assert_eq!(dead.len(), dead_before + 1, "{path}: one dead letter");
    let dl = dead.last().unwrap();
    assert_eq!(dl.source, Route::from_path(path).path());
    assert!(
        !dl.reason.trim().is_empty(),
        "{path}: dead letter without a reason"
    );
    // Kept as received (lossy UTF-8, control characters removed for PostgreSQL).
    let kept: String = String::from_utf8_lossy(&body)
        .chars()
        .filter(|c| !c.is_control() || *c == '\n' || *c == '\t')
        .collect();
    assert_eq!(dl.payload, kept, "{path}: payload kept");
    assert_eq!(
        &snapshot(node).await,
        before,
        "{path}: stored state changed"
    );
}

async fn malformed_json(stores: Stores) {
    let (node, _) = node_with_history(stores, |_| {}).await;
    let before = snapshot(&node).await;
    for path in [
        "/new_block",
        "/new_mempool_tx",
        "/drop_mempool_tx",
        "/new_burn_block",
    ] {
        assert_poison(
            &node,
            &before,
            path,
            br#"{"block_height": 4, "index_block_hash": "#.to_vec(),
        )
        .await;
        assert_poison(&node, &before, path, b"".to_vec()).await;
    }
    // Not even UTF-8, with a NUL (PostgreSQL TEXT rejects NUL).
    assert_poison(
        &node,
        &before,
        "/new_block",
        vec![0xff, 0xfe, 0x00, b'{', 0x00, 0x9f],
    )
    .await;
    assert_eq!(node.metric("nexus_dead_letters_total").await, 9.0);
    node.stop().await;
}

async fn wrong_types(stores: Stores) {
    let (node, _) = node_with_history(stores, |_| {}).await;
    let before = snapshot(&node).await;
    let mut block = block_envelope("main", 4, "main", &[], &[]);
    block["block_height"] = json!("4");
    let hash = block["index_block_hash"].as_str().unwrap().to_string();
    let cases = [
        ("/new_block", block),
        ("/new_block", json!([])),
        ("/new_block", json!({"block_height": 4})),
        ("/new_mempool_tx", json!([1, 2])),
        ("/new_mempool_tx", json!({"txs": ["0x00"]})),
        (
            "/drop_mempool_tx",
            json!({"dropped_txids": "0xabc", "reason": "StaleGarbageCollect", "new_txid": null}),
        ),
        (
            "/drop_mempool_tx",
            json!({"dropped_txids": [], "reason": 7}),
        ),
        (
            "/new_burn_block",
            json!({"burn_block_hash": "0x01", "burn_block_height": "5"}),
        ),
        ("/new_burn_block", json!(null)),
    ];
    for (path, body) in cases {
        assert_poison(&node, &before, path, serde_json::to_vec(&body).unwrap()).await;
    }
    let history = node.app().ingestor.history();
    assert!(
        !history.block_known(&hash).await.unwrap(),
        "a block with a string height was stored"
    );
    assert_eq!(history.tip().await.unwrap().unwrap().block.height, 3);
    node.stop().await;
}

/// Cut `raw_tx` a few bytes past the contract name: it still mentions the
/// contract (so it is not skipped as unrelated) but cannot be decoded.
fn truncate_after_contract_name(tx_hex: &str, contract_name: &str) -> String {
    let name_hex: String = contract_name.bytes().map(|b| format!("{b:02x}")).collect();
    let at = tx_hex.find(&name_hex).expect("the tx calls the contract") + name_hex.len();
    tx_hex[..at + 10].to_string()
}

/// A good block with two bad escrow transactions in it: the block is
/// committed, the good transaction applied, the bad ones counted or
/// dead-lettered, and nothing else changes.
async fn truncated_hex_inside_a_block(stores: Stores) {
    let (node, sc) = node_with_history(stores, |_| {}).await;
    let before = snapshot(&node).await;
    let contract = sc.contract_id.as_str();
    let name = contract.split_once('.').unwrap().1;
    let p2 = recorded(&sc, "wallet_2 pays wallet_3 (p2)");
    let p3 = recorded(&sc, "wallet_3 pays wallet_1 (p3");
    let zero = recorded(&sc, "wallet_1 creates a zero-amount payment");
    assert!(p2.success && p3.success && !zero.success);

    // A truncated create-payment in the mempool: counted, nothing else.
    let mempool = json!([truncate_after_contract_name(&p2.tx_hex, name)]);
    let answer = node.post_ok("/new_mempool_tx", mempool.to_string()).await;
    assert_eq!(answer["events"], 0, "{answer}");
    assert_eq!(node.metric("nexus_undecodable_txs_total").await, 1.0);
    assert_eq!(snapshot(&node).await, before);

    let print_p3 = print_of(p3);
    let txs = [
        // Good: p2 is created.
        tx_entry(&p2.txid, 0, true, &p2.tx_hex, &p2.result_hex),
        // An aborted create whose raw_tx is cut short: the payment cannot be
        // identified (no print either), so it is skipped and counted.
        tx_entry(
            &zero.txid,
            1,
            false,
            &truncate_after_contract_name(&zero.tx_hex, name),
            &zero.result_hex,
        ),
        // A readable create whose print is cut short: dead letter, no payment.
        tx_entry(&p3.txid, 2, true, &p3.tx_hex, &p3.result_hex),
    ];
    let events = [
        print_entry(&p2.txid, 0, contract, print_of(p2)),
        print_entry(&p3.txid, 1, contract, &print_p3[..print_p3.len() / 2]),
    ];
    let block = block_envelope("main", 4, "main", &txs, &events);
    let answer = node.post_ok("/new_block", block.to_string()).await;
    assert_eq!(answer["events"], 1, "{answer}");
    assert_eq!(answer["dead_letters"], 1, "{answer}");

    let history = node.app().ingestor.history();
    assert!(history
        .block_known(block["index_block_hash"].as_str().unwrap())
        .await
        .unwrap());
    assert_eq!(node.metric("nexus_blocks_ingested_total").await, 4.0);
    assert_eq!(node.metric("nexus_undecodable_txs_total").await, 2.0);
    assert_eq!(node.metric("nexus_dead_letters_total").await, 1.0);
    let dead = node.dead_letters().await;
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].source, "/new_block");
    assert!(dead[0].reason.contains("print"), "{:?}", dead[0]);
    assert!(dead[0].payload.contains(&p3.txid), "{:?}", dead[0]);

    // Exactly one change: p2 confirmed in block 4.
    let after = snapshot(&node).await;
    after.assert_consistent();
    assert_eq!(after.events[..before.events.len()], before.events[..]);
    let [new] = &after.events[before.events.len()..] else {
        panic!(
            "expected one new event, got {:?}",
            &after.events[before.events.len()..]
        );
    };
    assert_eq!(new.event_type, EventType::Confirmed);
    assert_eq!(new.payment_id.to_string(), payment_id_of(p2));
    assert_eq!(new.txid.as_deref(), Some(p2.txid.as_str()));
    assert_eq!(new.block_height, Some(4));
    let others: Vec<_> = after
        .payments
        .iter()
        .filter(|p| p.payment_id != new.payment_id)
        .cloned()
        .collect();
    assert_eq!(others, before.payments, "only p2 is new");
    let p2_record = after
        .payments
        .iter()
        .find(|p| p.payment_id == new.payment_id)
        .unwrap();
    assert_eq!(p2_record.status, PaymentStatus::Confirmed);
    node.stop().await;
}

/// Our exact print, from a contract that is not ours: ignored and counted.
async fn spoofed_contract_id(stores: Stores) {
    let (node, sc) = node_with_history(stores, |_| {}).await;
    let before = snapshot(&node).await;
    let p2 = recorded(&sc, "wallet_2 pays wallet_3 (p2)");
    let txid = format!("0x{}", "ab".repeat(32));
    let ours = sc.contract_id.as_str();
    let (address, name) = ours.split_once('.').unwrap();
    let txs = [tx_entry(&txid, 0, true, "0x00", "0x0703")];
    let events = [
        // Same name, another deployer.
        print_entry(
            &txid,
            0,
            &format!("ST000000000000000000002AMW42H.{name}"),
            print_of(p2),
        ),
        // Same deployer, another contract.
        print_entry(&txid, 1, &format!("{address}.{name}-v2"), print_of(p2)),
    ];
    let block = block_envelope("main", 4, "main", &txs, &events);
    let answer = node.post_ok("/new_block", block.to_string()).await;
    assert_eq!(answer["events"], 0, "{answer}");
    assert_eq!(answer["dead_letters"], 0, "{answer}");
    assert_eq!(node.metric("nexus_spoofed_prints_total").await, 2.0);
    assert_eq!(
        snapshot(&node).await,
        before,
        "a spoofed print changed state"
    );
    let (code, _) = node
        .get(&format!("/api/payments/{}", payment_id_of(p2)))
        .await;
    assert_eq!(code, 404, "the spoofed payment must not exist");
    assert!(node.dead_letters().await.is_empty());
    node.stop().await;
}

/// The payment id a recorded call is about (its first argument, `0x0200000020` + id).
fn payment_id_of(t: &RecordedTx) -> String {
    let v: Value = serde_json::from_str(SCENARIO).unwrap();
    let recorded = v["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|x| x["txid"] == t.txid.as_str())
        .unwrap();
    recorded["args"][0]["repr"].as_str().unwrap().to_string()
}

/// Over `body_limit_bytes`: 413, nothing stored (not even a dead letter);
/// stacks-node retries and an operator raises the limit.
async fn oversize_body(stores: Stores) {
    let sc = scenario();
    let node = start_node(stores, |c| {
        c.contract_id = sc.contract_id.clone();
        c.body_limit_bytes = 1024;
    })
    .await;
    let deliveries = sc.deliveries();
    let (mempool_p1, block_3) = (&deliveries[2], &deliveries[3]);
    assert!(mempool_p1.body.len() < 1024 && block_3.body.len() > 1024);
    node.post_ok(mempool_p1.route.path(), mempool_p1.body.clone())
        .await;
    let before = snapshot(&node).await;
    assert_eq!(before.events.len(), 1);

    let (code, answer) = node.post("/new_block", block_3.body.clone()).await;
    assert_eq!(code, 413, "{answer}");
    let (code, answer) = node.post("/new_mempool_tx", vec![b' '; 4096]).await;
    assert_eq!(code, 413, "{answer}");
    assert_eq!(snapshot(&node).await, before);
    assert!(node.dead_letters().await.is_empty());
    let block: Value = serde_json::from_slice(&block_3.body).unwrap();
    let history = node.app().ingestor.history();
    assert!(!history
        .block_known(block["index_block_hash"].as_str().unwrap())
        .await
        .unwrap());
    node.stop().await;
}

/// Paths stacks-node may call that we do not process: 200, nothing stored.
async fn other_observer_paths(stores: Stores) {
    let (node, _) = node_with_history(stores, |_| {}).await;
    let before = snapshot(&node).await;
    for (path, body) in [
        (
            "/proposal_response",
            json!({"result": "Accepted", "signer_signature_hash": "0x00"}),
        ),
        (
            "/stackerdb_chunks",
            json!({"contract_id": {}, "modified_slots": []}),
        ),
        (
            "/mined_block",
            json!({"block_hash": "0x00", "tx_events": []}),
        ),
        ("/mined_microblock", json!({"block_hash": "0x00"})),
        ("/mined_nakamoto_block", json!({"block_hash": "0x00"})),
        (
            "/new_microblocks",
            json!({"parent_index_block_hash": "0x00", "transactions": [], "events": []}),
        ),
        ("/attachments/new", json!([])),
    ] {
        let answer = node.post_ok(path, body.to_string()).await;
        assert_eq!(answer["dead_letters"], 0, "{path}: {answer}");
    }
    assert_eq!(snapshot(&node).await, before);
    assert!(node.dead_letters().await.is_empty());
    // Still checked for well-formedness: garbage is kept, not silently accepted.
    assert_poison(&node, &before, "/proposal_response", b"not json".to_vec()).await;
    node.stop().await;
}

/// The API's validation errors and its 404.
async fn api_errors(stores: Stores) {
    let (node, _) = node_with_history(stores, |_| {}).await;
    let before = snapshot(&node).await;
    let check = |body: &Value, field: &str| {
        assert_eq!(body["error"]["type"], "permanent", "{body}");
        assert_eq!(body["error"]["code"], "validation_error", "{body}");
        assert_eq!(body["error"]["field"], field, "{body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty()),
            "{body}"
        );
    };
    for (path, field) in [
        ("/api/payments/not-an-id", "payment_id"),
        ("/api/payments/0x1234", "payment_id"),
        (
            &format!("/api/payments/0x{}", "zz".repeat(32)) as &str,
            "payment_id",
        ),
        ("/api/payments?status=bogus", "status"),
        ("/api/payments?limit=0", "limit"),
        ("/api/payments?limit=501", "limit"),
        ("/api/payments?after=nope", "after"),
    ] {
        let (code, body) = node.get(path).await;
        assert_eq!(code, 400, "{path}: {body}");
        check(&body, field);
    }
    let (code, body) = node
        .get(&format!("/api/payments/0x{}", "11".repeat(32)))
        .await;
    assert_eq!(code, 404, "{body}");
    assert_eq!(body["error"]["code"], "not_found", "{body}");
    assert_eq!(body["error"]["type"], "permanent", "{body}");
    assert_eq!(snapshot(&node).await, before);
    node.stop().await;
}

/// Observer dead letters are listed for an admin, newest first, and only for one.
async fn observer_dead_letters_endpoint(stores: Stores) {
    const ADMIN: &str = "observer-admin-key";
    let (node, _) = node_with_history(stores, |c| c.api_keys = vec![ADMIN.into()]).await;
    let before = snapshot(&node).await;
    assert_poison(&node, &before, "/new_block", b"{not json".to_vec()).await;
    assert_poison(&node, &before, "/new_mempool_tx", b"[1,".to_vec()).await;
    let url = format!("http://{}/api/observer/dead-letters", node.api);
    let client = reqwest::Client::new();
    let anonymous = client.get(&url).send().await.unwrap();
    assert_eq!(anonymous.status(), 401, "an admin endpoint");
    let resp = client
        .get(format!("{url}?limit=1"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let body: Value = resp.json().await.unwrap();
    let listed = body["dead_letters"].as_array().unwrap();
    assert_eq!(listed.len(), 1, "{body}");
    assert_eq!(
        listed[0]["source"], "/new_mempool_tx",
        "newest first: {body}"
    );
    assert_eq!(listed[0]["payload"], "[1,");
    assert!(!listed[0]["reason"].as_str().unwrap().is_empty());
    let bad = client
        .get(format!("{url}?limit=0"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    node.stop().await;
}

common::both_stores!(
    malformed_json,
    wrong_types,
    truncated_hex_inside_a_block,
    spoofed_contract_id,
    oversize_body,
    other_observer_paths,
    api_errors,
    observer_dead_letters_endpoint,
);
