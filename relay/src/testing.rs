//! Real services for this crate's tests: Redis at `NEXUS_TEST_REDIS_URL`
//! (default `redis://127.0.0.1:6379`), each test under a key prefix of its
//! own; PostgreSQL at `NEXUS_TEST_PG_URL` (default
//! `postgres://postgres@127.0.0.1:5432/test`), each test in a fresh database.

use redis::aio::ConnectionManager;

pub async fn redis() -> (ConnectionManager, String) {
    let url = std::env::var("NEXUS_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
    let client = redis::Client::open(url).expect("redis url");
    let conn = ConnectionManager::new(client)
        .await
        .expect("Redis for tests (set NEXUS_TEST_REDIS_URL)");
    let prefix = format!("relay_t_{:016x}:", rand::random::<u64>());
    (conn, prefix)
}

/// A fresh, migrated history database; returns its URL.
pub async fn postgres() -> String {
    use sqlx::Executor;
    let admin = std::env::var("NEXUS_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string());
    let name = format!("relay_t_{:016x}", rand::random::<u64>());
    let pool = sqlx::PgPool::connect(&admin)
        .await
        .expect("PostgreSQL for tests (set NEXUS_TEST_PG_URL)");
    pool.execute(format!("CREATE DATABASE {name}").as_str())
        .await
        .expect("create test database");
    let url = match admin.rsplit_once('/') {
        Some((base, _)) => format!("{base}/{name}"),
        None => panic!("NEXUS_TEST_PG_URL has no database part"),
    };
    // PgHistory::connect runs every migration, the relay's included.
    nexus_indexer::store::postgres::PgHistory::connect(&url)
        .await
        .expect("migrate test database");
    url
}
