//! Relay series on `/metrics`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CodeLabel {
    pub code: String,
}

#[derive(Clone, Debug)]
pub struct RelayMetrics {
    /// `POST /api/payments` answered 202 for the first time.
    pub accepted: Counter,
    /// Answered from a stored idempotent response.
    pub replayed: Counter,
    /// Refused, by error code.
    pub refused: Family<CodeLabel, Counter>,
    pub rate_limited: Counter,
    /// The limiter could not answer (requests were let through).
    pub rate_limiter_errors: Counter,
    /// Time to answer a `POST /api/payments`.
    pub submit_latency: Histogram,
}

impl Default for RelayMetrics {
    fn default() -> Self {
        RelayMetrics {
            accepted: Counter::default(),
            replayed: Counter::default(),
            refused: Family::default(),
            rate_limited: Counter::default(),
            rate_limiter_errors: Counter::default(),
            // 0.25 ms .. ~2 s.
            submit_latency: Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.00025, 2.0, 14),
            ),
        }
    }
}

impl RelayMetrics {
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "relay_accepted",
            "Relayed transactions accepted (202)",
            self.accepted.clone(),
        );
        r.register(
            "relay_replayed",
            "Idempotent replays of a stored response",
            self.replayed.clone(),
        );
        r.register(
            "relay_refused",
            "Relay requests refused, by error code",
            self.refused.clone(),
        );
        r.register(
            "rate_limited",
            "API requests refused by a rate limit",
            self.rate_limited.clone(),
        );
        r.register(
            "rate_limiter_errors",
            "Rate-limit checks that could not be made (request let through)",
            self.rate_limiter_errors.clone(),
        );
        r.register(
            "relay_submit_latency_seconds",
            "Time to answer POST /api/payments",
            self.submit_latency.clone(),
        );
    }
}
