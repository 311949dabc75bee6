//! Broadcasting: rejections fail, transients retry, a dead provider is failed over.

use super::*;

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
