//! The test Redis at `NEXUS_TEST_REDIS_URL` (default
//! `redis://127.0.0.1:6379`), each test under a key prefix of its own.

use redis::aio::ConnectionManager;

/// A connection and a fresh `{tag}_t_<hex>:` key prefix.
pub async fn connection(tag: &str) -> (ConnectionManager, String) {
    let url = std::env::var("NEXUS_TEST_REDIS_URL")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
    let client = redis::Client::open(url).expect("redis url");
    let conn = ConnectionManager::new(client)
        .await
        .expect("Redis for tests (set NEXUS_TEST_REDIS_URL)");
    (conn, format!("{tag}_t_{:016x}:", rand::random::<u64>()))
}
