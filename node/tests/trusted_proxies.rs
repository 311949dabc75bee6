//! `trusted_proxies` through a real node, on both store kinds (the per-IP
//! limit is in memory or in Redis): from a trusted peer (the test client on
//! 127.0.0.1, with `127.0.0.0/8` trusted) each forwarded client gets a
//! rate-limit bucket of its own; from an untrusted peer (no proxy trusted)
//! the headers are ignored and every request shares the peer's bucket.

mod common;

use common::{start_node, Stores, TestNode};
use nexus_node::config::Config;
use nexus_relay::ratelimit::Quota;

/// Two requests per client, then 429 (no refill within the test).
fn limited(trusted: &[&str]) -> impl FnOnce(&mut Config) {
    let trusted: Vec<nexus_node::forwarded::Cidr> =
        trusted.iter().map(|t| t.parse().unwrap()).collect();
    move |c: &mut Config| {
        c.rate_limit_per_ip = Some(Quota {
            per_second: 0.001,
            burst: 2,
        });
        c.trusted_proxies = trusted;
    }
}

/// `GET /api/payments` with `header: value`: the status.
async fn get(node: &TestNode, header: (&str, &str)) -> u16 {
    reqwest::Client::new()
        .get(format!("http://{}/api/payments", node.api))
        .header(header.0, header.1)
        .send()
        .await
        .expect("GET /api/payments")
        .status()
        .as_u16()
}

async fn a_trusted_proxy_names_each_client(stores: Stores) {
    let node = start_node(stores, limited(&["127.0.0.0/8"])).await;
    let xff = "x-forwarded-for";
    for _ in 0..2 {
        assert_eq!(get(&node, (xff, "198.51.100.1")).await, 200);
    }
    assert_eq!(
        get(&node, (xff, "198.51.100.1")).await,
        429,
        "its own bucket is empty"
    );
    // What a client writes on the left does not get it a new bucket: the
    // right-most address not of a trusted proxy is the client.
    assert_eq!(
        get(&node, (xff, "203.0.113.77, 198.51.100.1, 127.0.0.9")).await,
        429
    );
    // Another client behind the same proxy has a bucket of its own.
    assert_eq!(get(&node, (xff, "198.51.100.2")).await, 200);
    assert_eq!(
        get(&node, ("forwarded", "for=\"[2001:db8::7]:4711\"")).await,
        200
    );
    assert_eq!(
        get(&node, ("forwarded", "for=\"[2001:db8::7]:4711\"")).await,
        200
    );
    assert_eq!(get(&node, ("forwarded", "for=2001:db8::7")).await, 429);
    node.stop().await;
}

async fn an_untrusted_peer_shares_one_bucket(stores: Stores) {
    let node = start_node(stores, limited(&[])).await;
    let xff = "x-forwarded-for";
    assert_eq!(get(&node, (xff, "198.51.100.1")).await, 200);
    assert_eq!(get(&node, (xff, "198.51.100.2")).await, 200);
    // The headers are ignored: the peer's bucket (127.0.0.1) is empty.
    assert_eq!(get(&node, (xff, "198.51.100.3")).await, 429);
    assert_eq!(get(&node, ("forwarded", "for=198.51.100.4")).await, 429);
    node.stop().await;
}

common::both_stores!(
    a_trusted_proxy_names_each_client,
    an_untrusted_peer_shares_one_bucket
);
