//! Real Redis for this crate's tests, at `NEXUS_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`), each test under a key prefix of its own.

pub async fn redis() -> (redis::aio::ConnectionManager, String) {
    nexus_testkit::redis::connection("relay").await
}
