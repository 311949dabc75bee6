//! Real services for this crate's unit tests: Redis at
//! `NEXUS_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`), each test
//! under a key prefix of its own; PostgreSQL through `nexus_testkit::pg`,
//! each test in a fresh database.

pub async fn redis() -> (redis::aio::ConnectionManager, String) {
    nexus_testkit::redis::connection("store").await
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
