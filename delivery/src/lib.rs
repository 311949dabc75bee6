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
use nexus_store::webhooks::WebhookStore;
use nexus_store::{History, StoreError};

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
    /// Permanent, like every `OutboundError`.
    #[error("could not build the webhook HTTP client")]
    Client(#[source] nexus_outbound::OutboundError),
}

/// The Redis fan-out between instances: where, and under which key prefix.
#[derive(Debug, Clone)]
pub struct FanoutConfig {
    pub redis_url: String,
    pub prefix: String,
}

/// Everything delivery needs from the node's configuration (the binary
/// builds it: `nexus-node`'s `delivery.rs`).
pub struct Setup {
    /// `None`: a single instance, no Redis fan-out.
    pub fanout: Option<FanoutConfig>,
    pub ws: WsConfig,
    /// No endpoints: no webhook sender runs (the store still answers the API).
    pub endpoints: Vec<webhook::Endpoint>,
    pub webhook_settings: webhook::Settings,
    pub webhook_store: Arc<dyn WebhookStore>,
    /// Builds the webhook sender's client (rustls, the operator's extra roots).
    pub outbound: nexus_outbound::Outbound,
}

/// What the ingest path publishes to, besides the in-process bus: the Redis
/// fan-out when there is one. Its task is tracked by `tracker`.
pub fn publisher(
    fanout: Option<&FanoutConfig>,
    local: &BroadcastBus,
    metrics: &DeliveryMetrics,
    tracker: &TaskTracker,
    shutdown: &CancellationToken,
    origin: &fanout::Origin,
) -> Result<Arc<dyn EventBus>, DeliveryError> {
    let local: Arc<dyn EventBus> = Arc::new(local.clone());
    let Some(f) = fanout else {
        return Ok(local);
    };
    let (publisher, task) = fanout::RedisPublisher::start(
        &f.redis_url,
        &f.prefix,
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
    /// Start the hub (and the Redis subscriber with a fan-out) and the
    /// webhook sender when endpoints are configured.
    pub async fn start(
        setup: Setup,
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
        let remote = match setup.fanout {
            Some(f) => {
                let (tx, rx) = mpsc::channel(REMOTE_QUEUE);
                tracker.spawn(fanout::subscribe_loop(
                    f.redis_url,
                    f.prefix,
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
        let endpoints = setup.endpoints;
        let webhooks = webhook::Webhooks {
            store: setup.webhook_store,
            clock: Arc::new(nexus_core::clock::SystemClock),
            wake: Arc::new(tokio::sync::Notify::new()),
        };
        if !endpoints.is_empty() {
            tracing::info!(endpoints = endpoints.len(), "webhooks enabled");
            let client = setup
                .outbound
                .client(setup.webhook_settings.timeout)
                .map_err(DeliveryError::Client)?;
            let engine = webhook::Engine {
                store: webhooks.store.clone(),
                history: hub.history().clone(),
                endpoints: Arc::new(endpoints),
                settings: setup.webhook_settings,
                clock: webhooks.clock.clone(),
                metrics: metrics.clone(),
                wake: webhooks.wake.clone(),
                client,
            };
            tracker.spawn(engine.run(hub.subscribe(), shutdown.clone()));
        }
        let ws = Arc::new(WsServer::new(
            setup.ws,
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
