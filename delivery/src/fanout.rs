//! Several node instances: every committed event is published on a Redis
//! pub/sub channel (`{redis_prefix}events`), and every instance feeds what
//! it hears into its [`Hub`](super::hub::Hub), so a client connected to any
//! instance receives events ingested by any other.
//!
//! Pub/sub is fire-and-forget: a message published while a subscriber is
//! reconnecting is lost. That is acceptable because the hub never trusts a
//! source to be complete: it reads anything missing from the shared event
//! log (PostgreSQL), by `seq`. Redis only makes delivery fast.
//!
//! Each message is `{origin}\n{event JSON}`, `origin` naming the instance
//! that published it ([`Origin`]). An instance hears its own messages too;
//! it has already handed those events to its hub in-process, so it drops
//! them by their origin before parsing them (parsing its own echo was ~5%
//! of the node's CPU under `make bench-ingest`). A message that is bare
//! JSON (an instance from before the origin) is taken as foreign.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use nexus_core::domain::PaymentEvent;
use nexus_indexer::ingest::EventBus;

use super::metrics::DeliveryMetrics;

/// Events buffered for the publisher before new ones are dropped (other
/// instances then read them from the log).
const PUBLISH_QUEUE: usize = 65_536;
/// Wait before reconnecting to Redis after an error.
const RECONNECT: Duration = Duration::from_secs(1);

/// The pub/sub channel of a deployment.
pub fn channel(prefix: &str) -> String {
    format!("{prefix}events")
}

/// The name an instance publishes under: random per node start, so two
/// instances (even in one process) never take each other's events for
/// their own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin(String);

impl Origin {
    pub fn random() -> Self {
        Origin(format!("{:016x}", rand::random::<u64>()))
    }

    /// The message for `event_json` from this origin.
    pub fn encode(&self, event_json: &str) -> String {
        let mut m = String::with_capacity(self.0.len() + 1 + event_json.len());
        m.push_str(&self.0);
        m.push('\n');
        m.push_str(event_json);
        m
    }

    /// The event JSON of a message, or `None` when this origin published it.
    pub fn foreign<'a>(&self, message: &'a str) -> Option<&'a str> {
        // Bare JSON (no origin): an older instance's.
        if message.starts_with('{') {
            return Some(message);
        }
        match message.split_once('\n') {
            Some((origin, _)) if origin == self.0 => None,
            Some((_, json)) => Some(json),
            None => Some(message),
        }
    }
}

/// Publishes to several buses (the in-process one and Redis).
pub struct Tee(pub Vec<Arc<dyn EventBus>>);

impl EventBus for Tee {
    fn publish(&self, event: &PaymentEvent) {
        for b in &self.0 {
            b.publish(event);
        }
    }
}

/// The ingest side: hands events to a publisher task without waiting (the
/// ingest path must never block on Redis).
pub struct RedisPublisher {
    tx: mpsc::Sender<PaymentEvent>,
    metrics: DeliveryMetrics,
}

impl EventBus for RedisPublisher {
    fn publish(&self, event: &PaymentEvent) {
        if self.tx.try_send(event.clone()).is_err() {
            self.metrics.fanout_dropped.inc();
        }
    }
}

/// Why Redis fan-out could not start.
#[derive(Debug, thiserror::Error)]
pub enum FanoutError {
    #[error("invalid redis_url")]
    Url(#[source] redis::RedisError),
}

impl RedisPublisher {
    /// The publisher and its task (which ends on `shutdown`).
    pub fn start(
        url: &str,
        prefix: &str,
        origin: Origin,
        metrics: DeliveryMetrics,
        shutdown: CancellationToken,
    ) -> Result<(Self, impl std::future::Future<Output = ()>), FanoutError> {
        let client = redis::Client::open(url).map_err(FanoutError::Url)?;
        let (tx, rx) = mpsc::channel(PUBLISH_QUEUE);
        let task = publish_loop(
            client,
            channel(prefix),
            origin,
            rx,
            metrics.clone(),
            shutdown,
        );
        Ok((RedisPublisher { tx, metrics }, task))
    }
}

async fn publish_loop(
    client: redis::Client,
    channel: String,
    origin: Origin,
    mut rx: mpsc::Receiver<PaymentEvent>,
    metrics: DeliveryMetrics,
    shutdown: CancellationToken,
) {
    let mut conn: Option<redis::aio::MultiplexedConnection> = None;
    let mut batch = Vec::new();
    loop {
        tokio::select! {
            _ = shutdown.cancelled() => return,
            n = rx.recv_many(&mut batch, 256) => if n == 0 { return },
        }
        if conn.is_none() {
            match client.get_multiplexed_async_connection().await {
                Ok(c) => conn = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "fan-out: Redis unreachable; other instances read from the log");
                    metrics.fanout_dropped.inc_by(batch.len() as u64);
                    batch.clear();
                    continue;
                }
            }
        }
        let c = conn.as_mut().expect("connected above");
        let mut pipe = redis::pipe();
        for e in &batch {
            pipe.cmd("PUBLISH")
                .arg(&channel)
                .arg(origin.encode(&serde_json::to_string(e).expect("an event serializes")))
                .ignore();
        }
        let sent: redis::RedisResult<()> = pipe.query_async(c).await;
        match sent {
            Ok(()) => {
                metrics.fanout_published.inc_by(batch.len() as u64);
            }
            Err(e) => {
                tracing::warn!(error = %e, "fan-out: PUBLISH failed; other instances read from the log");
                metrics.fanout_dropped.inc_by(batch.len() as u64);
                conn = None;
            }
        }
        batch.clear();
    }
}

/// Listen on the deployment's channel and pass every event to `out`
/// (reconnecting after errors) until `shutdown`.
pub async fn subscribe_loop(
    url: String,
    prefix: String,
    origin: Origin,
    out: mpsc::Sender<PaymentEvent>,
    shutdown: CancellationToken,
) {
    let channel = channel(&prefix);
    loop {
        let run = async {
            let client = redis::Client::open(url.as_str())?;
            let mut pubsub = client.get_async_pubsub().await?;
            pubsub.subscribe(&channel).await?;
            let mut messages = pubsub.on_message();
            while let Some(msg) = messages.next().await {
                let Ok(payload) = msg.get_payload::<String>() else {
                    continue;
                };
                // Our own: the hub has it already.
                let Some(json) = origin.foreign(&payload) else {
                    continue;
                };
                match serde_json::from_str::<PaymentEvent>(json) {
                    // Full: the hub is behind; it reads the log for what it missed.
                    Ok(e) => {
                        let _ = out.try_send(e);
                    }
                    Err(e) => {
                        tracing::warn!(error = %e, "fan-out: ignoring a message that is not a payment event")
                    }
                }
            }
            Ok::<(), redis::RedisError>(())
        };
        tokio::select! {
            _ = shutdown.cancelled() => return,
            r = run => if let Err(e) = r {
                tracing::warn!(error = %e, "fan-out: Redis subscription lost; reconnecting");
            },
        }
        tokio::select! {
            _ = shutdown.cancelled() => return,
            _ = tokio::time::sleep(RECONNECT) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_instance_drops_its_own_messages_and_keeps_the_others() {
        let me = Origin::random();
        let other = Origin::random();
        assert_ne!(me, other);
        let json = r#"{"seq":7,"type":"payment:created"}"#;
        assert_eq!(me.foreign(&me.encode(json)), None);
        assert_eq!(me.foreign(&other.encode(json)), Some(json));
        // An instance from before the origin publishes bare JSON.
        assert_eq!(me.foreign(json), Some(json));
        // Anything else is handed on as it is (and then refused as not an event).
        assert_eq!(me.foreign("garbage"), Some("garbage"));
    }
}
