//! Real services for this crate's unit tests: Redis at
//! `NEXUS_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`), each test
//! under a key prefix of its own; PostgreSQL through `nexus_testkit::pg`,
//! each test in a fresh database.

use redis::aio::ConnectionManager;

pub async fn redis() -> (ConnectionManager, String) {
    let url = std::env::var("NEXUS_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
    let client = redis::Client::open(url).expect("redis url");
    let conn = ConnectionManager::new(client)
        .await
        .expect("Redis for tests (set NEXUS_TEST_REDIS_URL)");
    let prefix = format!("store_t_{:016x}:", rand::random::<u64>());
    (conn, prefix)
}

/// A fresh, migrated database; returns its URL. It is left in place: the
/// stores under test hold pools past any guard's reach.
pub async fn postgres() -> String {
    use nexus_testkit::pg::{admin_url, create_database, with_database};
    let admin = admin_url();
    let url = with_database(&admin, &create_database(&admin).await);
    // PgHistory::connect runs every migration.
    crate::postgres::PgHistory::connect(&url)
        .await
        .expect("migrate test database");
    url
}
