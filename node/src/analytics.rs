//! The design's payment figures (success rate, processing time, retry rate,
//! revenue recovered, error distribution), counted from the one stream of
//! committed payment events (the event bus), so that every source counts:
//! the observer, the relay, the x402 facilitator and the reconciler.
//!
//! A payment's *origin* is the source of the first event this node saw of
//! it: `relay` or `x402` for payments sent through this node, `observer` for
//! ones first seen in the mempool or a block. Its *outcome* is its first
//! `confirmed`, `failed` or `dropped`; a reorg that reverts it and a later
//! confirmation do not count it twice. The tracking lives in memory (a
//! bounded map): after a restart, payments already open are counted from
//! their next event with origin `unknown`.

use std::collections::{HashMap, VecDeque};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;
use tokio::sync::broadcast::error::RecvError;
use tokio_util::sync::CancellationToken;

use nexus_core::domain::{EventSource, EventType, PaymentEvent, PaymentId};

/// Payments remembered at most (the oldest are forgotten first): bounded
/// memory whatever the traffic; a forgotten payment counts as `unknown`.
const TRACKED_MAX: usize = 200_000;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OriginLabel {
    pub origin: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct OutcomeLabel {
    pub origin: String,
    pub outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct SchemeLabel {
    pub scheme: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AssetLabel {
    pub asset: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReasonLabel {
    pub reason: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabel {
    pub error: String,
}

/// The figures, as Prometheus series (README, "Metrics").
#[derive(Clone)]
pub struct AnalyticsMetrics {
    pub seen: Family<OriginLabel, Counter>,
    pub outcomes: Family<OutcomeLabel, Counter>,
    pub processing: Family<SchemeLabel, Histogram>,
    pub retries: Family<OriginLabel, Counter>,
    pub recovered: Family<AssetLabel, Counter<f64, AtomicU64>>,
    pub errors: Family<ReasonLabel, Counter>,
    pub contract_errors: Family<ErrorLabel, Counter>,
    /// Events the analytics missed because it fell behind the bus.
    pub lagged: Counter,
}

fn processing_histogram() -> Histogram {
    // 1 s to ~34 min: a Nakamoto block is seconds, a congested mempool minutes.
    Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
        1.0, 2.0, 12,
    ))
}

impl Default for AnalyticsMetrics {
    fn default() -> Self {
        AnalyticsMetrics {
            seen: Family::default(),
            outcomes: Family::default(),
            processing: Family::new_with_constructor(processing_histogram),
            retries: Family::default(),
            recovered: Family::default(),
            errors: Family::default(),
            contract_errors: Family::default(),
            lagged: Counter::default(),
        }
    }
}

impl AnalyticsMetrics {
    pub fn register(&self, r: &mut Registry) {
        r.register(
            "payments_seen",
            "Payments this node saw start, by origin (the source of their first event)",
            self.seen.clone(),
        );
        r.register(
            "payment_outcomes",
            "Payments that reached an outcome (confirmed, failed, dropped), by origin; success rate = confirmed / all",
            self.outcomes.clone(),
        );
        r.register(
            "payment_processing_seconds",
            "From a payment's first sighting (or submission) to its confirmation, by scheme",
            self.processing.clone(),
        );
        r.register(
            "payment_retries",
            "Broadcast retries (payment:retrying), by origin; retry rate = retries / payments seen",
            self.retries.clone(),
        );
        r.register(
            "revenue_recovered",
            "Amount (base units) of payments confirmed after at least one retry, by asset",
            self.recovered.clone(),
        );
        r.register(
            "payment_errors",
            "Failed and dropped payments, by reason",
            self.errors.clone(),
        );
        r.register(
            "contract_errors",
            "Escrow calls that aborted in a block with the contract's error code, by code",
            self.contract_errors.clone(),
        );
        r.register(
            "analytics_lagged_events",
            "Payment events the analytics task missed (it fell behind the event bus)",
            self.lagged.clone(),
        );
    }

    fn apply(&self, counts: &[Count]) {
        for c in counts {
            match c {
                Count::Seen { origin } => {
                    self.seen.get_or_create(&origin_label(origin)).inc();
                }
                Count::Retry { origin } => {
                    self.retries.get_or_create(&origin_label(origin)).inc();
                }
                Count::Outcome {
                    origin,
                    outcome,
                    processing,
                    scheme,
                    recovered,
                } => {
                    let label = OutcomeLabel {
                        origin: origin.to_string(),
                        outcome: outcome.to_string(),
                    };
                    self.outcomes.get_or_create(&label).inc();
                    if let Some(d) = processing {
                        let label = SchemeLabel {
                            scheme: scheme.to_string(),
                        };
                        self.processing
                            .get_or_create(&label)
                            .observe(d.as_secs_f64());
                    }
                    if let Some((asset, amount)) = recovered {
                        let label = AssetLabel {
                            asset: asset.clone(),
                        };
                        self.recovered.get_or_create(&label).inc_by(*amount);
                    }
                }
                Count::Error { reason } => {
                    let label = ReasonLabel {
                        reason: reason.clone(),
                    };
                    self.errors.get_or_create(&label).inc();
                }
                Count::ContractError { error } => {
                    let label = ErrorLabel {
                        error: error.clone(),
                    };
                    self.contract_errors.get_or_create(&label).inc();
                }
            }
        }
    }
}

fn origin_label(origin: &str) -> OriginLabel {
    OriginLabel {
        origin: origin.to_string(),
    }
}

/// What one event adds to the figures.
#[derive(Debug, Clone, PartialEq)]
pub enum Count {
    Seen {
        origin: &'static str,
    },
    Retry {
        origin: &'static str,
    },
    Outcome {
        origin: &'static str,
        outcome: &'static str,
        processing: Option<Duration>,
        scheme: &'static str,
        /// A confirmation after a retry: the asset and the amount.
        recovered: Option<(String, f64)>,
    },
    Error {
        reason: String,
    },
    ContractError {
        error: String,
    },
}

/// One remembered payment.
#[derive(Debug, Clone)]
struct Tracked {
    origin: &'static str,
    /// `at` of its first event (RFC 3339, parsed).
    first_at: Option<chrono::DateTime<chrono::FixedOffset>>,
    retried: bool,
    /// Its outcome was counted.
    done: bool,
}

/// The payments seen so far. Pure: events in, counts out.
#[derive(Debug, Default)]
pub struct Tracker {
    open: HashMap<PaymentId, Tracked>,
    order: VecDeque<PaymentId>,
}

fn source_name(s: EventSource) -> &'static str {
    match s {
        EventSource::Relay => "relay",
        EventSource::X402 => "x402",
        EventSource::Observer => "observer",
        EventSource::Reconciler => "reconciler",
        EventSource::Import => "import",
    }
}

/// A failure's reason as a label: the node's own names (`AbortByResponse`,
/// `ReplaceByFee`, ...) as they are; the reconciler's explanations, which
/// carry numbers, as `reconciler`; anything else as `other`. Bounded, so a
/// label never grows with traffic.
fn reason_label(e: &PaymentEvent) -> String {
    if e.source == EventSource::Reconciler {
        return "reconciler".into();
    }
    match e.reason.as_deref() {
        Some(r) if (1..=40).contains(&r.len()) && r.bytes().all(|b| b.is_ascii_alphabetic()) => {
            r.to_string()
        }
        Some(_) => "other".into(),
        None => "unknown".into(),
    }
}

/// `(err uN)` of an aborted escrow call, as the failed event's detail holds it.
fn contract_error(e: &PaymentEvent) -> Option<String> {
    let result = e.reason_data.as_ref()?.get("result")?.as_str()?;
    let code = result.strip_prefix("(err u")?.strip_suffix(')')?;
    (code.len() <= 4 && code.bytes().all(|b| b.is_ascii_digit())).then(|| result.to_string())
}

impl Tracker {
    /// The counts `e` adds, remembering what later events need.
    pub fn observe(&mut self, e: &PaymentEvent) -> Vec<Count> {
        let at = chrono::DateTime::parse_from_rfc3339(&e.at).ok();
        let mut out = Vec::new();
        if !self.open.contains_key(&e.payment_id) {
            let origin = match e.event_type {
                EventType::Created | EventType::Submitted | EventType::Confirmed => {
                    source_name(e.source)
                }
                // Its start happened before this node (or before a restart).
                _ => "unknown",
            };
            if origin != "unknown" {
                out.push(Count::Seen { origin });
            }
            self.remember(
                e.payment_id,
                Tracked {
                    origin,
                    // A payment first seen confirmed has no sighting to time from.
                    first_at: at.filter(|_| e.event_type != EventType::Confirmed),
                    retried: false,
                    done: false,
                },
            );
        }
        let t = self.open.get_mut(&e.payment_id).expect("remembered above");
        match e.event_type {
            EventType::Retrying => {
                t.retried = true;
                out.push(Count::Retry { origin: t.origin });
            }
            EventType::Confirmed | EventType::Failed | EventType::Dropped if !t.done => {
                t.done = true;
                let confirmed = e.event_type == EventType::Confirmed;
                let processing = match (confirmed, t.first_at, at) {
                    (true, Some(first), Some(now)) => (now - first).to_std().ok(),
                    _ => None,
                };
                let recovered = (confirmed && t.retried).then(|| {
                    let asset = e.asset.clone().unwrap_or_else(|| "STX".into());
                    let amount = e
                        .amount
                        .as_deref()
                        .and_then(|a| a.parse::<f64>().ok())
                        .unwrap_or(0.0);
                    (asset, amount)
                });
                out.push(Count::Outcome {
                    origin: t.origin,
                    outcome: match e.event_type {
                        EventType::Confirmed => "confirmed",
                        EventType::Failed => "failed",
                        _ => "dropped",
                    },
                    processing,
                    scheme: e.scheme.map(|s| s.as_str()).unwrap_or("escrow"),
                    recovered,
                });
                if !confirmed {
                    out.push(Count::Error {
                        reason: reason_label(e),
                    });
                    if let Some(error) = contract_error(e) {
                        out.push(Count::ContractError { error });
                    }
                }
            }
            _ => {}
        }
        out
    }

    fn remember(&mut self, id: PaymentId, t: Tracked) {
        if self.order.len() >= TRACKED_MAX {
            if let Some(old) = self.order.pop_front() {
                self.open.remove(&old);
            }
        }
        self.open.insert(id, t);
        self.order.push_back(id);
    }
}

/// Count every event the bus publishes until `shutdown`.
pub async fn run(
    mut events: tokio::sync::broadcast::Receiver<PaymentEvent>,
    metrics: AnalyticsMetrics,
    shutdown: CancellationToken,
) {
    let mut tracker = Tracker::default();
    loop {
        let e = tokio::select! {
            _ = shutdown.cancelled() => return,
            e = events.recv() => e,
        };
        match e {
            Ok(e) => metrics.apply(&tracker.observe(&e)),
            Err(RecvError::Lagged(n)) => {
                metrics.lagged.inc_by(n);
                tracing::warn!(missed = n, "payment analytics fell behind the event bus");
            }
            Err(RecvError::Closed) => return,
        }
    }
}

/// How often the state store is pinged for `nexus_redis_connected`.
const PROBE_EVERY: Duration = Duration::from_secs(5);

/// Ping the state store every [`PROBE_EVERY`] until `shutdown`: the gauge
/// the "Redis connection lost" alert reads, kept current even when no
/// request or delivery touches the store.
pub async fn probe_state(app: &crate::app::App, shutdown: CancellationToken) {
    let mut ticker = tokio::time::interval(PROBE_EVERY);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = ticker.tick() => {}
        }
        let ok = tokio::time::timeout(PROBE_EVERY, app.ingestor.state().ping())
            .await
            .is_ok_and(|r| r.is_ok());
        app.metrics.redis_connected.set(i64::from(ok));
    }
}

#[cfg(test)]
mod tests;
