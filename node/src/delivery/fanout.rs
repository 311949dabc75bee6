//! Several node instances: every committed event is published on a Redis
//! pub/sub channel (`{redis_prefix}events`), and every instance feeds what
//! it hears into its [`Hub`](super::hub::Hub), so a client connected to any
//! instance receives events ingested by any other.
//!
//! Pub/sub is fire-and-forget: a message published while a subscriber is
//! reconnecting is lost. That is acceptable because the hub never trusts a
//! source to be complete: it reads anything missing from the shared event
//! log (PostgreSQL), by `seq`. Redis only makes delivery fast.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use nexus_indexer::domain::PaymentEvent;
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
        metrics: DeliveryMetrics,
        shutdown: CancellationToken,
    ) -> Result<(Self, impl std::future::Future<Output = ()>), FanoutError> {
        let client = redis::Client::open(url).map_err(FanoutError::Url)?;
        let (tx, rx) = mpsc::channel(PUBLISH_QUEUE);
        let task = publish_loop(client, channel(prefix), rx, metrics.clone(), shutdown);
        Ok((RedisPublisher { tx, metrics }, task))
    }
}

async fn publish_loop(
    client: redis::Client,
    channel: String,
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
                .arg(serde_json::to_string(e).expect("an event serializes"))
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
                match serde_json::from_str::<PaymentEvent>(&payload) {
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
