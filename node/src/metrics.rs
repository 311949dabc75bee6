//! Prometheus metrics (text exposition at `GET /metrics`).

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

use nexus_indexer::ingest::Outcome;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct TypeLabel {
    pub r#type: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PathLabel {
    pub path: String,
}

/// An x402 call and its answer (`valid`, `settled`, or the x402 reason).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct X402Label {
    pub call: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabel {
    pub path: String,
    pub code: String,
}

/// Every metric the node exports. One instance per node (not global), so
/// in-process tests can run several nodes side by side.
pub struct Metrics {
    registry: Registry,
    /// Series without the `nexus_` prefix.
    root: Registry,
    pub blocks_ingested: Counter,
    pub events: Family<TypeLabel, Counter>,
    pub dead_letters: Counter,
    pub spoofed_prints: Counter,
    pub undecodable_txs: Counter,
    pub observer_requests: Family<RequestLabel, Counter>,
    pub ingest_latency: Family<PathLabel, Histogram>,
    pub last_block_height: Gauge,
    /// Unix seconds when the last block was committed (for `/health`'s block age).
    pub last_block_at: Gauge,
    pub reorgs: Counter,
    pub reorg_depth: Histogram,
    /// Blocks that arrived with an unknown parent (held until it arrives).
    pub gaps_detected: Counter,
    /// Gaps still open at the last `/health` check.
    pub open_gaps: Gauge,
    /// 1 while the observer refuses deliveries for good (`crate::stall`).
    pub ingest_stalled: Gauge,
    /// Unix seconds of the stall's first failure; 0 when not stalled.
    pub ingest_stalled_since: Gauge,
    /// WebSocket, fan-out and webhook series (`nexus_delivery::metrics`).
    pub delivery: nexus_delivery::metrics::DeliveryMetrics,
    /// RPC providers, breakers and the reconcile loop.
    pub verifier: crate::verifier::VerifierMetrics,
    /// Relay requests, replays and rate limits.
    pub relay: crate::relay::metrics::RelayMetrics,
    /// `/x402/verify` and `/x402/settle` answers.
    pub x402: Family<X402Label, Counter>,
    /// Time from a `/x402/settle` request to its answer (mostly the wait
    /// for the confirming block).
    pub x402_settle_seconds: Histogram,
    /// Success rate, processing time, retries, revenue recovered, errors
    /// (`crate::analytics`, fed by the event bus).
    pub analytics: crate::analytics::AnalyticsMetrics,
    /// 1 while the Redis state store answered its last ping, 0 after a
    /// failed one; absent on the embedded default (no Redis).
    pub redis_connected: Gauge,
    /// Unix time the process started (`process_start_time_seconds`, no prefix).
    pub start_time: Gauge,
}

impl Metrics {
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("nexus");
        let m = Metrics {
            blocks_ingested: Counter::default(),
            events: Family::default(),
            dead_letters: Counter::default(),
            spoofed_prints: Counter::default(),
            undecodable_txs: Counter::default(),
            observer_requests: Family::default(),
            ingest_latency: Family::new_with_constructor(|| {
                // 0.5 ms .. ~4 s: one block commit should sit in the low buckets.
                Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                    0.0005, 2.0, 14,
                ))
            }),
            last_block_height: Gauge::default(),
            last_block_at: Gauge::default(),
            reorgs: Counter::default(),
            reorg_depth: Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(1.0, 2.0, 10),
            ),
            gaps_detected: Counter::default(),
            open_gaps: Gauge::default(),
            ingest_stalled: Gauge::default(),
            ingest_stalled_since: Gauge::default(),
            delivery: Default::default(),
            verifier: crate::verifier::VerifierMetrics::default(),
            relay: Default::default(),
            x402: Family::default(),
            // 10 ms .. ~80 s: a settle waits for a block (seconds), at most 45 s by default.
            x402_settle_seconds: Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.01, 2.0, 14),
            ),
            analytics: Default::default(),
            redis_connected: Gauge::default(),
            start_time: Gauge::default(),
            registry: Registry::default(),
            root: Registry::default(),
        };
        let started = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        m.start_time.set(i64::try_from(started).unwrap_or(0));
        // The conventional name, which dashboards and alerts expect unprefixed.
        let mut root = Registry::default();
        root.register(
            "process_start_time_seconds",
            "Unix time the process started",
            m.start_time.clone(),
        );
        registry.register(
            "blocks_ingested",
            "Blocks committed",
            m.blocks_ingested.clone(),
        );
        registry.register(
            "payment_events",
            "Payment events committed, by type",
            m.events.clone(),
        );
        registry.register(
            "dead_letters",
            "Payloads or events stored as dead letters",
            m.dead_letters.clone(),
        );
        registry.register(
            "spoofed_prints",
            "Payment-like prints from other contracts, ignored",
            m.spoofed_prints.clone(),
        );
        registry.register(
            "undecodable_txs",
            "Transactions mentioning the contract that the codec could not read",
            m.undecodable_txs.clone(),
        );
        registry.register(
            "observer_requests",
            "Observer POSTs by path and HTTP code",
            m.observer_requests.clone(),
        );
        registry.register(
            "ingest_latency_seconds",
            "Time from receiving an observer POST to its commit",
            m.ingest_latency.clone(),
        );
        registry.register(
            "last_block_height",
            "Height of our canonical tip",
            m.last_block_height.clone(),
        );
        registry.register(
            "last_block_timestamp_seconds",
            "When the last block was committed",
            m.last_block_at.clone(),
        );
        registry.register(
            "reorgs",
            "Reorgs applied (rollback then apply)",
            m.reorgs.clone(),
        );
        registry.register(
            "reorg_depth_blocks",
            "Blocks rolled back per reorg",
            m.reorg_depth.clone(),
        );
        registry.register(
            "gaps_detected",
            "Blocks received with an unknown parent",
            m.gaps_detected.clone(),
        );
        registry.register(
            "open_gaps",
            "Held blocks whose ancestry is still missing",
            m.open_gaps.clone(),
        );
        registry.register(
            "ingest_stalled",
            "1 while the observer answers a permanent error (500): stacks-node resends and the chain waits",
            m.ingest_stalled.clone(),
        );
        registry.register(
            "ingest_stalled_since_seconds",
            "Unix time of the first failure of the current stall; 0 when not stalled",
            m.ingest_stalled_since.clone(),
        );
        registry.register(
            "x402_requests",
            "x402 facilitator answers, by call (verify, settle) and outcome (ok or the x402 reason)",
            m.x402.clone(),
        );
        registry.register(
            "x402_settle_seconds",
            "Time from an x402 settle request to its answer (mostly waiting for the confirming block)",
            m.x402_settle_seconds.clone(),
        );
        m.delivery.register(&mut registry);
        m.verifier.register(&mut registry);
        m.relay.register(&mut registry);
        m.analytics.register(&mut registry);
        registry.register(
            "redis_connected",
            "1 while the state store (Redis in production; the in-memory one always answers) answered its last ping, every 5 s; 0 after a failed one",
            m.redis_connected.clone(),
        );
        Metrics {
            registry,
            root,
            ..m
        }
    }

    /// Count an x402 answer: `reason` `None` is a valid or settled payment.
    pub fn x402(&self, call: &str, reason: Option<nexus_core::x402::Reason>) {
        let outcome = reason.map(|r| r.as_str()).unwrap_or("ok");
        self.x402
            .get_or_create(&X402Label {
                call: call.to_string(),
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Record what a delivery did.
    pub fn record(&self, outcome: &Outcome) {
        for e in &outcome.events {
            self.events
                .get_or_create(&TypeLabel {
                    r#type: e.event_type.as_str().to_string(),
                })
                .inc();
        }
        self.dead_letters.inc_by(u64::from(outcome.dead_letters));
        self.spoofed_prints.inc_by(outcome.stats.spoofed_prints);
        self.undecodable_txs.inc_by(outcome.stats.undecodable_txs);
        if outcome.block_committed {
            self.blocks_ingested.inc();
        }
        if let Some(depth) = outcome.reorg_depth {
            self.reorgs.inc();
            self.reorg_depth.observe(depth as f64);
        }
        if outcome.gap.is_some() {
            self.gaps_detected.inc();
        }
    }

    /// Prometheus text format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        prometheus_client::encoding::text::encode_registry(&mut out, &self.root)
            .and_then(|()| prometheus_client::encoding::text::encode(&mut out, &self.registry))
            .expect("writing to a String cannot fail");
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
