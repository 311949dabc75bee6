//! Delivery: payment events out of the node.
//!
//! * [`hub`]: one ordered, gap-free event stream per node, fed by the
//!   in-process bus and (with Redis) by the other instances ([`fanout`]),
//!   with the event log as the backstop for anything a source missed.
//! * [`ws`]: `GET /ws`, JSON-RPC 2.0 subscriptions with resume by `seq`.
//! * [`webhook`]: signed POSTs with persisted retries and a dead-letter table.
//!
//! The pure parts (filters, the JSON-RPC protocol, resume cursors, the
//! backoff schedule, signatures) are unit-tested without I/O.

pub mod fanout;
pub mod filter;
pub mod hub;
pub mod jsonrpc;
pub mod metrics;
pub mod routes;
pub mod webhook;
pub mod ws;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use nexus_indexer::ingest::{BroadcastBus, EventBus};
use nexus_indexer::store::{History, StoreError};

use crate::config::Config;
use hub::Hub;
use metrics::DeliveryMetrics;
use ws::{WsConfig, WsServer};

/// How often the hub checks the log for events no source delivered.
const HUB_CHECK: Duration = Duration::from_secs(1);
/// Events a WebSocket connection may fall behind the hub before it reads the log instead.
const HUB_CAPACITY: usize = 8192;
/// Events from other instances buffered for the hub.
const REMOTE_QUEUE: usize = 65_536;

/// Why delivery could not start.
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("could not read the event log's last seq")]
    History(#[source] StoreError),
    #[error(transparent)]
    Fanout(#[from] fanout::FanoutError),
    #[error(transparent)]
    Webhook(#[from] webhook::WebhookConfigError),
}

/// What the ingest path publishes to, besides the in-process bus: the Redis
/// fan-out when `redis_url` is set. Its task is tracked by `tracker`.
pub fn publisher(
    cfg: &Config,
    local: &BroadcastBus,
    metrics: &DeliveryMetrics,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
    origin: &fanout::Origin,
) -> Result<Arc<dyn EventBus>, DeliveryError> {
    let local: Arc<dyn EventBus> = Arc::new(local.clone());
    let Some(url) = &cfg.redis_url else {
        return Ok(local);
    };
    let (publisher, task) = fanout::RedisPublisher::start(
        url,
        &cfg.redis_prefix,
        origin.clone(),
        metrics.clone(),
        shutdown.clone(),
    )?;
    tracker.spawn(task);
    Ok(Arc::new(fanout::Tee(vec![local, Arc::new(publisher)])))
}

/// The running delivery side of a node.
pub struct Delivery {
    pub hub: Hub,
    pub ws: Arc<WsServer>,
    pub metrics: DeliveryMetrics,
    pub webhooks: webhook::Webhooks,
    /// Every delivery task (hub, fan-out, connections, webhooks).
    pub tracker: TaskTracker,
}

impl Delivery {
    /// Start the hub (and the Redis subscriber when `redis_url` is set) and
    /// the webhook scheduler when endpoints are configured.
    pub async fn start(
        cfg: &Config,
        local: &BroadcastBus,
        history: Arc<dyn History>,
        metrics: DeliveryMetrics,
        tracker: TaskTracker,
        shutdown: CancellationToken,
        origin: fanout::Origin,
    ) -> Result<Delivery, DeliveryError> {
        // Subscribe before reading the head: every later event reaches the hub.
        let local_rx = local.subscribe();
        let head = history.last_seq().await.map_err(DeliveryError::History)?;
        let hub = Hub::new(history, head, HUB_CAPACITY, metrics.clone());
        let remote = match &cfg.redis_url {
            Some(url) => {
                let (tx, rx) = mpsc::channel(REMOTE_QUEUE);
                tracker.spawn(fanout::subscribe_loop(
                    url.clone(),
                    cfg.redis_prefix.clone(),
                    origin,
                    tx,
                    shutdown.clone(),
                ));
                Some(rx)
            }
            None => None,
        };
        tracker.spawn(
            hub.clone()
                .run(local_rx, remote, HUB_CHECK, shutdown.clone()),
        );
        let endpoints = webhook::wiring::endpoints(cfg)?;
        let webhooks = webhook::Webhooks {
            store: webhook::wiring::open_store(cfg).await?,
            clock: Arc::new(nexus_core::clock::SystemClock),
            wake: Arc::new(tokio::sync::Notify::new()),
        };
        if !endpoints.is_empty() {
            tracing::info!(endpoints = endpoints.len(), "webhooks enabled");
            let engine = webhook::Engine {
                store: webhooks.store.clone(),
                history: hub.history().clone(),
                endpoints: Arc::new(endpoints),
                settings: webhook::wiring::settings(cfg),
                clock: webhooks.clock.clone(),
                metrics: metrics.clone(),
                wake: webhooks.wake.clone(),
                client: reqwest::Client::new(),
            };
            tracker.spawn(engine.run(hub.subscribe(), shutdown.clone()));
        }
        let ws = Arc::new(WsServer::new(
            ws_config(cfg),
            hub.clone(),
            shutdown.clone(),
            tracker.clone(),
        ));
        Ok(Delivery {
            hub,
            ws,
            metrics,
            webhooks,
            tracker,
        })
    }
}

fn ws_config(cfg: &Config) -> WsConfig {
    WsConfig {
        max_connections: cfg.ws_max_connections.max(1),
        max_subscriptions: cfg.ws_max_subscriptions.max(1),
        max_message_bytes: cfg.ws_max_message_bytes.max(256),
        send_queue: cfg.ws_send_queue.max(1),
        send_timeout: Duration::from_millis(cfg.ws_send_timeout_ms.max(1)),
        ping_interval: Duration::from_millis(cfg.ws_ping_interval_ms.max(10)),
        ping_timeout: Duration::from_millis(cfg.ws_ping_timeout_ms.max(10)),
    }
}
