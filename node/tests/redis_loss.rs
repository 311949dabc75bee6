//! Redis comes back empty in the middle of a stream of deliveries: the state
//! store is rebuilt from PostgreSQL before the next delivery is answered,
//! nothing is lost, and subscribers see every event exactly once (no phantom
//! or repeated events).
//!
//! "Empty" is every key of this node's prefix deleted at once: the Redis on
//! this machine is shared with tests running in parallel, so a real
//! `FLUSHALL` would break them; for the node it is the same loss.

mod common;

use common::{snapshot, start_node, Stores, SCENARIO};
use nexus_core::simnet::Scenario;
use nexus_store::redis::RedisState;
use nexus_store::StateStore;

#[tokio::test]
async fn state_is_rebuilt_from_history_and_subscribers_see_each_event_once() {
    let scenario = Scenario::parse(SCENARIO).expect("scenario");
    let deliveries = scenario.deliveries();
    assert!(deliveries.len() >= 4);

    // Reference: the same stream on the embedded stores, no loss.
    let reference = start_node(Stores::Embedded, |c| {
        c.contract_id = scenario.contract_id.clone()
    })
    .await;
    for d in &deliveries {
        let (code, body) = reference.post(d.route.path(), d.body.clone()).await;
        assert_eq!(code, 200, "{}: {body}", d.label);
    }
    let expected = snapshot(&reference).await;
    reference.stop().await;

    let node = start_node(Stores::Production, |c| {
        c.contract_id = scenario.contract_id.clone()
    })
    .await;
    let mut rx = node.app().bus.subscribe();
    let redis = RedisState::connect(
        node.config.redis_url.as_deref().expect("redis"),
        &node.config.redis_prefix,
    )
    .await
    .expect("redis");
    let half = deliveries.len() / 2;
    for (i, d) in deliveries.iter().enumerate() {
        if i == half {
            let seq = node.app().ingestor.history().last_seq().await.unwrap();
            assert!(seq > 0, "events before the loss");
            redis.flush_prefix().await.expect("empty the state store");
            assert_eq!(redis.last_seq().await.unwrap(), 0, "Redis is empty");
        }
        let (code, body) = node.post(d.route.path(), d.body.clone()).await;
        assert_eq!(code, 200, "{}: {body}", d.label);
        if i == half {
            // Answered 200 only after the rebuild: state is back in step.
            let s = snapshot(&node).await;
            s.assert_consistent();
        }
    }

    let got = snapshot(&node).await;
    got.assert_consistent();
    // Nothing lost: the same payments and event log as without the loss
    // (times aside: the reference ran at another moment).
    let strip = |s: &common::Snapshot| {
        let mut s = s.clone();
        for p in &mut s.payments {
            p.updated_at.clear();
        }
        s.state
            .iter_mut()
            .flatten()
            .for_each(|p| p.updated_at.clear());
        for e in &mut s.events {
            e.at.clear();
        }
        s
    };
    assert_eq!(strip(&got), strip(&expected));

    // Every event published exactly once, in order.
    let mut seen = Vec::new();
    while let Ok(ev) = rx.try_recv() {
        seen.push(ev);
    }
    let seqs: Vec<u64> = seen.iter().map(|e| e.seq).collect();
    let want: Vec<u64> = (1..=got.history_seq).collect();
    assert_eq!(seqs, want, "no phantom, repeated or missing events");
    assert_eq!(seen, got.events);
    node.stop().await;
}
