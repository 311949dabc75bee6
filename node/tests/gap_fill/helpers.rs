//! Helpers.

use super::*;

pub(crate) async fn deliver(node: &TestNode, all: &[(u64, Vec<Delivery>)], h: u64) {
    let (_, ds) = all.iter().find(|(x, _)| *x == h).expect("height");
    for d in ds {
        node.post_ok(d.route.path(), d.body.clone()).await;
    }
}

/// An event as both paths must produce it (burn fields and times differ by
/// design: the replay carries no burn block).
pub(crate) fn key(e: &PaymentEvent) -> Value {
    json!({
        "seq": e.seq,
        "type": e.event_type.as_str(),
        "payment_id": e.payment_id.to_string(),
        "status": e.status.as_str(),
        "txid": e.txid,
        "block_height": e.block_height,
        "index_block_hash": e.index_block_hash,
        "confirmations": e.confirmations,
    })
}

/// `payment-id` argument of each `create-payment` in the fixture, by height.
pub(crate) fn created_at(h: u64) -> String {
    let fixture: Value = serde_json::from_str(SCENARIO).expect("fixture");
    fixture["transactions"]
        .as_array()
        .expect("transactions")
        .iter()
        .find(|t| t["block_height"] == h && t["function"] == "create-payment")
        .and_then(|t| t["args"][0]["repr"].as_str())
        .expect("a create-payment at that height")
        .to_string()
}

pub(crate) async fn health_gaps(node: &TestNode) -> Vec<Value> {
    let (code, health) = node.get("/health").await;
    assert_eq!(code, 200, "{health}");
    health["gaps"].as_array().expect("gaps").clone()
}

pub(crate) async fn counter(node: &TestNode, name: &str) -> u64 {
    node.app()
        .ingestor
        .state()
        .counter(name)
        .await
        .expect("counter")
}
