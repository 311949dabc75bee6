//! The state every HTTP handler shares. It holds the components; it imports
//! no route module, so the routes (`http`) and the wiring (`server`) depend
//! on it and not on each other.

use std::sync::Arc;

use nexus_indexer::ingest::{BroadcastBus, Ingestor};

use crate::config::Config;
use crate::metrics::Metrics;

/// Shared by every handler (`State<Arc<App>>`).
pub struct App {
    pub config: Config,
    pub ingestor: Arc<Ingestor>,
    pub metrics: Metrics,
    /// In-process event fan-out (WebSocket and webhooks subscribe here).
    pub bus: BroadcastBus,
    /// WebSocket subscriptions, Redis fan-out and webhooks.
    pub delivery: nexus_delivery::Delivery,
    /// The verifier's RPC providers (breakers, failover), when an RPC is configured.
    pub rpc: Option<Arc<nexus_stacks::Providers>>,
    /// The reconcile loop, when an RPC is configured.
    pub reconciler: Option<Arc<nexus_verifier::reconcile::Reconciler>>,
    /// `POST /api/payments`: validation, idempotency, rate limits, broadcasts.
    pub relay: crate::relay::Relay,
    /// `/x402/*`: the x402 facilitator.
    pub facilitator: Arc<nexus_facilitator::Facilitator>,
    /// Whether the observer is stuck on a permanent error (`/health`, metrics, logs).
    pub stall: crate::stall::StallWatch,
}
