//! The PostgreSQL and SQLite migrations must build the same schema: the
//! same tables, the same columns with the same kind of type and the same
//! nullability, the same named indexes. Each backend's own idioms are
//! normalised away (PostgreSQL's `BOOLEAN` is SQLite's `INTEGER`, a SQLite
//! `INTEGER PRIMARY KEY` is PostgreSQL's `BIGSERIAL`); a real difference
//! fails with both sides named.

use std::collections::BTreeMap;

use nexus_store::postgres::PgHistory;
use nexus_store::sqlite::SqliteHistory;
use nexus_testkit::pg::PgTestDb;
use sqlx::Row;

/// `table -> column -> (kind, not null)`.
type Columns = BTreeMap<String, BTreeMap<String, (&'static str, bool)>>;

/// PostgreSQL columns that SQLite keeps as the table's implicit `rowid`
/// (insertion order; the SQLite queries order by `rowid`).
const ROWID_COLUMNS: &[(&str, &str)] = &[("blocks", "inserted")];

/// Bookkeeping tables of the migrators, not ours.
const MIGRATOR_TABLES: &[&str] = &["_sqlx_migrations", "sqlite_sequence"];

fn kind(declared: &str) -> &'static str {
    let t = declared.to_ascii_lowercase();
    match t.as_str() {
        // SQLite keeps times as RFC 3339 text.
        "text" | "character varying" | "varchar" | "timestamp with time zone" => "text",
        // SQLite has no boolean: it stores 0 and 1.
        "bigint" | "integer" | "smallint" | "int" | "boolean" | "bool" => "integer",
        "bytea" | "blob" => "bytes",
        "double precision" | "real" => "real",
        _ => panic!("a column type this test does not know: {declared}"),
    }
}

async fn postgres_schema() -> (Columns, Vec<String>) {
    let db = PgTestDb::create().await;
    let h = PgHistory::connect(&db.url).await.expect("migrate");
    let rows = sqlx::query(
        "SELECT c.table_name, c.column_name, c.data_type, c.is_nullable \
         FROM information_schema.columns c \
         JOIN information_schema.tables t USING (table_schema, table_name) \
         WHERE c.table_schema = 'public' AND t.table_type = 'BASE TABLE'",
    )
    .fetch_all(h.pool())
    .await
    .expect("columns");
    let mut cols = Columns::new();
    for r in rows {
        let table: String = r.get(0);
        if MIGRATOR_TABLES.contains(&table.as_str()) {
            continue;
        }
        let not_null = r.get::<String, _>(3) == "NO";
        cols.entry(table)
            .or_default()
            .insert(r.get(1), (kind(&r.get::<String, _>(2)), not_null));
    }
    // Named indexes; primary keys and unique constraints are constraints
    // (`*_pkey`, `*_key`), compared through the columns.
    let mut indexes: Vec<String> = sqlx::query_scalar(
        "SELECT i.indexname FROM pg_indexes i WHERE i.schemaname = 'public' \
         AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)",
    )
    .fetch_all(h.pool())
    .await
    .expect("indexes");
    indexes.sort();
    h.pool().close().await;
    (cols, indexes)
}

fn sqlite_schema() -> (Columns, Vec<String>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("history.db");
    drop(SqliteHistory::open(&path).expect("migrate"));
    let c = rusqlite::Connection::open(&path).expect("open");
    let tables: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("tables");
    let mut cols = Columns::new();
    for table in tables {
        if MIGRATOR_TABLES.contains(&table.as_str()) {
            continue;
        }
        let info: Vec<(String, String, bool, i64)> = c
            .prepare(&format!("PRAGMA table_info({table})"))
            .and_then(|mut s| {
                s.query_map([], |r| Ok((r.get(1)?, r.get(2)?, r.get(3)?, r.get(5)?)))?
                    .collect()
            })
            .expect("table_info");
        for (name, ty, not_null, pk) in info {
            // A primary-key column is never null, declared so or not.
            cols.entry(table.clone())
                .or_default()
                .insert(name, (kind(&ty), not_null || pk > 0));
        }
    }
    for (table, col) in ROWID_COLUMNS {
        if let Some(t) = cols.get_mut(*table) {
            t.insert(col.to_string(), ("integer", true));
        }
    }
    let mut indexes: Vec<String> = c
        .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")
        .and_then(|mut s| s.query_map([], |r| r.get(0))?.collect())
        .expect("indexes");
    indexes.sort();
    (cols, indexes)
}

#[tokio::test]
async fn postgres_and_sqlite_migrations_build_the_same_schema() {
    let (pg_cols, pg_idx) = postgres_schema().await;
    let (sq_cols, sq_idx) = sqlite_schema();

    let mut diffs = Vec::new();
    for table in pg_cols.keys().chain(sq_cols.keys()) {
        match (pg_cols.get(table), sq_cols.get(table)) {
            (Some(p), Some(s)) => {
                for col in p.keys().chain(s.keys()) {
                    if p.get(col) != s.get(col) {
                        diffs.push(format!(
                            "{table}.{col}: postgres {:?}, sqlite {:?}",
                            p.get(col),
                            s.get(col)
                        ));
                    }
                }
            }
            (p, s) => diffs.push(format!(
                "table {table}: postgres {}, sqlite {}",
                if p.is_some() { "has it" } else { "lacks it" },
                if s.is_some() { "has it" } else { "lacks it" },
            )),
        }
    }
    for i in pg_idx.iter().filter(|i| !sq_idx.contains(i)) {
        diffs.push(format!("index {i}: only in postgres"));
    }
    for i in sq_idx.iter().filter(|i| !pg_idx.contains(i)) {
        diffs.push(format!("index {i}: only in sqlite"));
    }
    diffs.sort();
    diffs.dedup();
    assert!(
        diffs.is_empty(),
        "the migrations disagree:\n  {}",
        diffs.join("\n  ")
    );
    // The comparison saw the schema, not two empty lists.
    assert!(pg_cols.contains_key("payments") && pg_cols.contains_key("block_txs"));
}
