//! What only one backend has: SQLite in memory and reopened, PostgreSQL
//! reconnects and outages, each backend's block-sets migration.

use crate::chain::seq_contiguous_across_commits;
use crate::fixtures::*;
use crate::PgTestDb;
use nexus_testkit::pg::PgTestDb as PgEmpty;

#[tokio::test]
async fn sqlite_in_memory_group_rolls_back_on_drop() {
    // In memory there is one connection: the group shares it, and dropping
    // it unfinished must leave that connection usable outside a transaction.
    let h: Arc<dyn History> = Arc::new(SqliteHistory::open_in_memory().unwrap());
    let g = h.group().await.unwrap();
    g.commit(events_batch(&[pid(1)])).await.unwrap();
    drop(g);
    assert_eq!(h.last_seq().await.unwrap(), 0);
    h.commit(events_batch(&[pid(2)])).await.unwrap();
    assert_eq!(h.last_seq().await.unwrap(), 1);
    let g = h.group().await.unwrap();
    g.commit(events_batch(&[pid(3)])).await.unwrap();
    g.finish().await.unwrap();
    assert_eq!(h.last_seq().await.unwrap(), 2);
}

#[tokio::test]
async fn sqlite_in_memory_works() {
    let h: Arc<dyn History> = Arc::new(SqliteHistory::open_in_memory().unwrap());
    seq_contiguous_across_commits(h).await;
}

#[tokio::test]
async fn sqlite_reopen_keeps_data_and_schema() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    let h = SqliteHistory::open(&path).unwrap();
    h.commit(events_batch(&[pid(1), pid(2)])).await.unwrap();
    drop(h);
    let h = SqliteHistory::open(&path).unwrap();
    assert_eq!(h.last_seq().await.unwrap(), 2);
}

#[tokio::test]
async fn postgres_reconnect_reruns_migrations_harmlessly() {
    let db = PgTestDb::create().await;
    db.history.commit(events_batch(&[pid(1)])).await.unwrap();
    let again = PgHistory::connect(&db.url).await.unwrap();
    assert_eq!(again.last_seq().await.unwrap(), 1);
}

/// Migration 7 turned `block_txs` and `block_undo` from one row per
/// transaction / payment into one row per block: rows written before it read
/// back the same after it.
#[tokio::test]
async fn postgres_block_sets_migration_keeps_earlier_rows() {
    // Dropped at the end, also on a failed assertion.
    let db = PgEmpty::create().await;
    let pool = sqlx::postgres::PgPoolOptions::new()
        .max_connections(2)
        .connect(&db.url)
        .await
        .unwrap();
    let h = PgHistory::from_pool(pool.clone());
    h.migrate_to(6).await.unwrap();
    let (a, b) = ("0xaa".to_string(), "0xbb".to_string());
    let (t3, t1, t0) = (
        escrow_tx(3, pid(1)),
        escrow_tx(1, pid(2)),
        escrow_tx(0, pid(3)),
    );
    for (block, t) in [(&a, &t3), (&a, &t1), (&b, &t0)] {
        sqlx::query("INSERT INTO block_txs (index_block_hash, tx_index, txid, body) VALUES ($1, $2, $3, $4)")
            .bind(block)
            .bind(i64::from(t.tx_index))
            .bind(&t.txid)
            .bind(serde_json::to_string(t).unwrap())
            .execute(&pool)
            .await
            .unwrap();
    }
    let before = payment(pid(2), PaymentStatus::Confirmed, ALICE, BOB);
    for (id, prior) in [(pid(2), Some(&before)), (pid(1), None)] {
        sqlx::query(
            "INSERT INTO block_undo (index_block_hash, payment_id, before) VALUES ($1, $2, $3)",
        )
        .bind(&a)
        .bind(id.to_string())
        .bind(prior.map(|p| serde_json::to_string(p).unwrap()))
        .execute(&pool)
        .await
        .unwrap();
    }

    h.migrate().await.unwrap();

    block_sets_read_back(&h, &a, &b, [&t0, &t1, &t3], before).await;
}

/// What both block-sets migration tests wrote, read back through the
/// store: the transactions of `a` in `tx_index` order, its undo records in
/// `payment_id` order, nothing to undo for `b`.
async fn block_sets_read_back(
    h: &dyn History,
    a: &String,
    b: &String,
    [t0, t1, t3]: [&EscrowTx; 3],
    before: Payment,
) {
    assert_eq!(h.block_txs(a).await.unwrap(), [t1.clone(), t3.clone()]);
    let many = h.block_txs_many(&[a.clone(), b.clone()]).await.unwrap();
    assert_eq!(many[b], std::slice::from_ref(t0));
    let undo = h.undo(a).await.unwrap();
    assert_eq!(
        undo,
        [
            UndoRecord {
                index_block_hash: a.clone(),
                payment_id: pid(1),
                before: None
            },
            UndoRecord {
                index_block_hash: a.clone(),
                payment_id: pid(2),
                before: Some(before)
            },
        ]
    );
    assert!(h.undo(b).await.unwrap().is_empty());
    assert_eq!(h.undo_many(std::slice::from_ref(a)).await.unwrap()[a], undo);
}

/// SQLite's twin of the block-sets migration (its 9th): rows written before
/// it read back the same after it.
#[tokio::test]
async fn sqlite_block_sets_migration_keeps_earlier_rows() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("history.db");
    nexus_store::sqlite::migrate_file_to(&path, 8).unwrap();
    let (a, b) = ("0xaa".to_string(), "0xbb".to_string());
    let (t3, t1, t0) = (
        escrow_tx(3, pid(1)),
        escrow_tx(1, pid(2)),
        escrow_tx(0, pid(3)),
    );
    let before = payment(pid(2), PaymentStatus::Confirmed, ALICE, BOB);
    {
        let c = rusqlite::Connection::open(&path).unwrap();
        for (block, t) in [(&a, &t3), (&a, &t1), (&b, &t0)] {
            c.execute(
                "INSERT INTO block_txs (index_block_hash, tx_index, txid, body) VALUES (?1, ?2, ?3, ?4)",
                rusqlite::params![block, t.tx_index, t.txid, serde_json::to_string(t).unwrap()],
            )
            .unwrap();
        }
        for (id, prior) in [(pid(2), Some(&before)), (pid(1), None)] {
            c.execute(
                "INSERT INTO block_undo (index_block_hash, payment_id, before) VALUES (?1, ?2, ?3)",
                rusqlite::params![
                    a,
                    id.to_string(),
                    prior.map(|p| serde_json::to_string(p).unwrap())
                ],
            )
            .unwrap();
        }
    }

    let h = SqliteHistory::open(&path).unwrap();

    block_sets_read_back(&h, &a, &b, [&t0, &t1, &t3], before).await;
}

#[tokio::test]
async fn postgres_outage_is_temporary() {
    // Nothing listens on port 1: connect fails fast and says "retry".
    let url = "postgres://postgres@127.0.0.1:1/test";
    let err = PgHistory::connect(url).await.unwrap_err();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(err.is_temporary());

    // A pool that was fine at start and then lost its server: every call is
    // Unavailable, within the acquire timeout.
    let pool = sqlx::postgres::PgPoolOptions::new()
        .acquire_timeout(Duration::from_millis(500))
        .connect_lazy(url)
        .unwrap();
    let h = PgHistory::from_pool(pool);
    let t = Instant::now();
    for err in [
        h.ping().await.unwrap_err(),
        h.commit(events_batch(&[pid(1)])).await.unwrap_err(),
        h.last_seq().await.unwrap_err(),
    ] {
        assert!(err.is_temporary(), "{err:?}");
    }
    assert!(t.elapsed() < Duration::from_secs(5));
}
