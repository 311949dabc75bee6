//! Idempotency keys: the same body replays, another conflicts, concurrent ones have one winner, a restart keeps them.

use super::*;

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
