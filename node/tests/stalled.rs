//! A stalled chain through a real node, on both store kinds. A trigger on
//! the history's `blocks` table refuses every insert (what a constraint, a
//! foreign schema or a bad migration does): the store's error is permanent,
//! so the observer answers 500 and stacks-node would resend the block
//! forever. `/health` must say `stalled` (still HTTP 200) with the error and
//! the streak's first failure, the gauges must say so, and the first
//! delivery answered 200 after the fix must clear all of it.

mod common;

use common::blocks::{payment_id, Chain, NewPayment};
use common::{start_node, Stores, TestNode};
use serde_json::Value;
use sqlx::Connection;

const REFUSAL: &str = "test: block writes refused";

/// Refuse (or stop refusing) every insert into `blocks`, beside the node.
async fn refuse_blocks(node: &TestNode, refuse: bool) {
    match node.stores {
        Stores::Embedded => {
            let db = rusqlite::Connection::open(&node.config.sqlite_path).expect("open SQLite");
            db.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
            let sql = if refuse {
                format!(
                    "CREATE TRIGGER test_refuse BEFORE INSERT ON blocks \
                     BEGIN SELECT RAISE(ABORT, '{REFUSAL}'); END;"
                )
            } else {
                "DROP TRIGGER test_refuse;".to_string()
            };
            db.execute_batch(&sql).expect("trigger");
        }
        Stores::Production => {
            let url = node.config.database_url.as_deref().expect("PostgreSQL");
            let mut db = sqlx::PgConnection::connect(url).await.expect("PostgreSQL");
            let sql = if refuse {
                format!(
                    "CREATE FUNCTION test_refuse() RETURNS trigger LANGUAGE plpgsql AS \
                     $$ BEGIN RAISE EXCEPTION '{REFUSAL}'; END $$; \
                     CREATE TRIGGER test_refuse BEFORE INSERT ON blocks \
                     FOR EACH ROW EXECUTE FUNCTION test_refuse();"
                )
            } else {
                "DROP TRIGGER test_refuse ON blocks; DROP FUNCTION test_refuse();".to_string()
            };
            sqlx::raw_sql(&sql).execute(&mut db).await.expect("trigger");
        }
    }
}

async fn health(node: &TestNode) -> Value {
    let (code, body) = node.get("/health").await;
    assert_eq!(code, 200, "a stall keeps the answer 200: {body}");
    body
}

async fn a_permanent_store_error_is_reported_until_a_delivery_succeeds(stores: Stores) {
    let node = start_node(stores, |_| {}).await;
    let mut chain = Chain::new();
    let new = |n| NewPayment {
        id: payment_id(n),
        payer: n,
        payee: n + 100,
        amount: 1_000,
    };
    node.post_ok("/new_block", chain.block(&[new(1)])).await;
    assert_eq!(health(&node).await["status"], "ok");

    refuse_blocks(&node, true).await;
    let block = chain.block(&[new(2)]);
    let (code, body) = node.post("/new_block", block.clone()).await;
    assert_eq!(code, 500, "{body}");
    assert_eq!(body["error"]["type"], "permanent", "{body}");

    let h = health(&node).await;
    assert_eq!(h["status"], "stalled", "{h}");
    let error = h["stalled"]["error"].as_str().expect("the error text");
    assert!(error.contains(REFUSAL), "{h}");
    assert_eq!(h["stalled"]["failures"], 1, "{h}");
    let since = h["stalled"]["since"].as_str().expect("since").to_string();
    let since_s = chrono::DateTime::parse_from_rfc3339(&since)
        .expect("RFC 3339")
        .timestamp();
    assert_eq!(node.metric("nexus_ingest_stalled").await, 1.0);
    assert_eq!(
        node.metric("nexus_ingest_stalled_since_seconds").await,
        since_s as f64
    );
    assert_eq!(
        node.metric("nexus_observer_requests_total{path=\"/new_block\",code=\"500\"}")
            .await,
        1.0
    );

    // stacks-node resends the same block: still refused, same streak.
    let (code, _) = node.post("/new_block", block.clone()).await;
    assert_eq!(code, 500);
    let h = health(&node).await;
    assert_eq!(h["status"], "stalled");
    assert_eq!(
        h["stalled"]["since"],
        since.as_str(),
        "the first failure's time"
    );
    assert_eq!(h["stalled"]["failures"], 2);

    // Fixed: the resend goes through and the stall is over.
    refuse_blocks(&node, false).await;
    let answer = node.post_ok("/new_block", block).await;
    assert_eq!(answer["events"], 1, "{answer}");
    let h = health(&node).await;
    assert_eq!(h["status"], "ok", "{h}");
    assert!(h["stalled"].is_null(), "{h}");
    assert_eq!(h["last_block_height"], 2);
    assert_eq!(node.metric("nexus_ingest_stalled").await, 0.0);
    assert_eq!(node.metric("nexus_ingest_stalled_since_seconds").await, 0.0);
    node.stop().await;
}

common::both_stores!(a_permanent_store_error_is_reported_until_a_delivery_succeeds);
