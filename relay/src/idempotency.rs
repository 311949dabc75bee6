//! Waiting out a concurrent duplicate: the keys themselves live in
//! `nexus_store::idempotency`.

use std::time::Duration;

use nexus_store::idempotency::{IdempotencyError, IdempotencyStore, Reservation};

/// Wait for an in-flight duplicate to finish: poll until it has a response
/// (or the reservation lapsed and the key is ours), at most `patience`.
pub async fn reserve_or_wait(
    store: &dyn IdempotencyStore,
    key: &str,
    fingerprint: &str,
    patience: Duration,
) -> Result<Reservation, IdempotencyError> {
    let started = tokio::time::Instant::now();
    let mut pause = Duration::from_millis(2);
    loop {
        let r = store.reserve(key, fingerprint).await?;
        if r != Reservation::InFlight || started.elapsed() >= patience {
            return Ok(r);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_millis(50));
    }
}
