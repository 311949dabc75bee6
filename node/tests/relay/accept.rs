//! Accepted, then submitted; invalid requests store nothing.

use super::*;

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

/// A token escrow payment through the relay: the create is accepted and
/// broadcast, its record names the token, and its claim is relayed too.
async fn a_token_create_and_its_claim_are_relayed(stores: Stores) {
    let rpc = scripted::start().await;
    let node = relay_node(stores, &[&rpc], |_| {}).await;
    let create = case("create-payment-ft: Deny");
    let (code, body, _) = Post::json(&tx_hex(&create)).send(&node).await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["function"], "create-payment-ft");
    assert_eq!(body["payment"]["asset"], create["token"]);
    assert_eq!(body["payment"]["amount"], create["amount"]);
    let id = body["payment_id"].as_str().unwrap().to_string();
    let p = status_becomes(&node, &id, "submitted").await;
    assert_eq!(p["payment"]["asset"], create["token"]);
    let (code, _) = node
        .get(&format!(
            "/api/payments?asset={}",
            create["token"].as_str().unwrap()
        ))
        .await;
    assert_eq!(code, 200);
    let claim = case("claim-payment-ft: Deny");
    let (code, body, _) = Post::raw(tx_bytes(&claim)).send(&node).await;
    assert_eq!(code, 202, "{body}");
    assert_eq!(body["function"], "claim-payment-ft");
    eventually("both are broadcast", WAIT, || async {
        rpc.script.broadcasts() == vec![tx_bytes(&create), tx_bytes(&claim)]
    })
    .await;
    node.stop().await;
}

#[tokio::test]
async fn a_token_create_and_its_claim_are_relayed_embedded() {
    a_token_create_and_its_claim_are_relayed(Stores::Embedded).await;
}

#[tokio::test]
async fn a_token_create_and_its_claim_are_relayed_production() {
    a_token_create_and_its_claim_are_relayed(Stores::Production).await;
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
