//! Waiting out a concurrent duplicate: the keys themselves live in
//! `nexus_store::idempotency`.

use std::time::Duration;

use nexus_core::backoff::{Backoff, Jitter};
use nexus_store::idempotency::{IdempotencyError, IdempotencyStore, Reservation};

/// How often a duplicate asks again: 2 ms doubling to 50 ms, for as long
/// as its patience lasts.
const POLL: Backoff = Backoff {
    initial: Duration::from_millis(2),
    factor: 2.0,
    max: Duration::from_millis(50),
    attempts: u32::MAX,
    jitter: Jitter::None,
};

/// Wait for an in-flight duplicate to finish: poll until it has a response
/// (or the reservation lapsed and the key is ours), at most `patience`.
pub async fn reserve_or_wait(
    store: &dyn IdempotencyStore,
    key: &str,
    fingerprint: &str,
    patience: Duration,
) -> Result<Reservation, IdempotencyError> {
    let started = tokio::time::Instant::now();
    let mut asked = 0u32;
    loop {
        let r = store.reserve(key, fingerprint).await?;
        if r != Reservation::InFlight || started.elapsed() >= patience {
            return Ok(r);
        }
        asked = asked.saturating_add(1);
        tokio::time::sleep(POLL.base(asked).unwrap_or(POLL.max)).await;
    }
}
