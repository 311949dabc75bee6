//! Delivery metrics, registered into the node's registry (`nexus_ws_*`,
//! `nexus_webhook_*`). Clones share the same series.

use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug)]
pub struct DeliveryMetrics {
    pub ws_connections: Gauge,
    pub ws_rejected: Counter,
    pub ws_notifications: Counter,
    pub ws_slow_consumers: Counter,
    pub ws_ping_timeouts: Counter,
    pub ws_replayed: Counter,
    /// Events the hub read from the log because no source delivered them.
    pub hub_filled: Counter,
    /// Events published to other instances through Redis.
    pub fanout_published: Counter,
    /// Events a full publish queue or a Redis error kept from other instances
    /// (they read them from the log instead).
    pub fanout_dropped: Counter,
    pub webhook_deliveries: Counter,
    pub webhook_failures: Counter,
    pub webhook_retries: Counter,
    pub webhook_dead_letters: Counter,
    /// Event queued -> 2xx received.
    pub webhook_latency: Histogram,
}

impl Default for DeliveryMetrics {
    fn default() -> Self {
        DeliveryMetrics {
            ws_connections: Gauge::default(),
            ws_rejected: Counter::default(),
            ws_notifications: Counter::default(),
            ws_slow_consumers: Counter::default(),
            ws_ping_timeouts: Counter::default(),
            ws_replayed: Counter::default(),
            hub_filled: Counter::default(),
            fanout_published: Counter::default(),
            fanout_dropped: Counter::default(),
            webhook_deliveries: Counter::default(),
            webhook_failures: Counter::default(),
            webhook_retries: Counter::default(),
            webhook_dead_letters: Counter::default(),
            // 1 ms .. ~9 min: retries stretch over minutes.
            webhook_latency: Histogram::new(exponential_buckets(0.001, 2.5, 16)),
        }
    }
}

impl DeliveryMetrics {
    /// Register every series into `registry`.
    pub fn register(&self, registry: &mut Registry) {
        let r = registry;
        r.register(
            "ws_connections",
            "Open WebSocket connections",
            self.ws_connections.clone(),
        );
        r.register(
            "ws_rejected",
            "WebSocket upgrades refused (connection limit)",
            self.ws_rejected.clone(),
        );
        r.register(
            "ws_notifications",
            "WebSocket notifications queued",
            self.ws_notifications.clone(),
        );
        r.register(
            "ws_slow_consumers",
            "Connections closed because their send queue stayed full",
            self.ws_slow_consumers.clone(),
        );
        r.register(
            "ws_ping_timeouts",
            "Connections closed because the client stopped answering pings",
            self.ws_ping_timeouts.clone(),
        );
        r.register(
            "ws_replayed",
            "Notifications sent from the event log (resume, catch-up)",
            self.ws_replayed.clone(),
        );
        r.register(
            "delivery_hub_filled",
            "Events the hub read from the log because no source delivered them",
            self.hub_filled.clone(),
        );
        r.register(
            "fanout_published",
            "Events published to other instances through Redis",
            self.fanout_published.clone(),
        );
        r.register(
            "fanout_dropped",
            "Events not published through Redis (other instances read them from the log)",
            self.fanout_dropped.clone(),
        );
        r.register(
            "webhook_deliveries",
            "Webhook deliveries answered 2xx",
            self.webhook_deliveries.clone(),
        );
        r.register(
            "webhook_failures",
            "Webhook attempts that failed",
            self.webhook_failures.clone(),
        );
        r.register(
            "webhook_retries",
            "Webhook attempts after the first",
            self.webhook_retries.clone(),
        );
        r.register(
            "webhook_dead_letters",
            "Webhook deliveries moved to the dead-letter table",
            self.webhook_dead_letters.clone(),
        );
        r.register(
            "webhook_delivery_latency_seconds",
            "Webhook delivery queued -> 2xx",
            self.webhook_latency.clone(),
        );
    }
}
