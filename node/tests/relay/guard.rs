//! API keys and rate limits in front of the relay.

use super::*;

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
