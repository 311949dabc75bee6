//! Wiring: stores chosen by configuration, the ingest pipeline, both HTTP
//! listeners, and one cancellation token that every task ends on.

use std::net::SocketAddr;
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use nexus_core::clock::SystemClock;
use nexus_core::domain::EventSource;
use nexus_indexer::ingest::{BroadcastBus, IngestError, Ingestor};
use nexus_store::memory::MemoryState;
use nexus_store::postgres::PgHistory;
use nexus_store::redis::RedisState;
use nexus_store::sqlite::SqliteHistory;
use nexus_store::{History, StateStore, StoreError};

use crate::app::App;
use crate::config::Config;
use crate::metrics::Metrics;

/// Why the node could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("could not open the {0} store")]
    Store(&'static str, #[source] StoreError),
    #[error("could not catch the state store up with history")]
    Ingest(#[source] IngestError),
    #[error("could not listen on {0}")]
    Bind(SocketAddr, #[source] std::io::Error),
    #[error(transparent)]
    Config(#[from] nexus_core::decode::ContractIdError),
    #[error("could not start event delivery")]
    Delivery(#[from] nexus_delivery::DeliveryError),
    #[error("invalid rpc_url or rpc_urls")]
    Rpc(#[source] nexus_stacks::RpcError),
    #[error("could not reach Redis for the reconciler lease")]
    Lease(#[source] nexus_verifier::lease::LeaseError),
    #[error("could not start the relay")]
    Relay(#[from] crate::relay::RelayStartError),
    #[error("invalid x402 settings")]
    X402(#[source] crate::config::ConfigError),
    #[error("cannot build the outbound HTTP clients")]
    Outbound(#[source] crate::config::ConfigError),
}

/// A running node: its bound addresses and the handle to stop it.
pub struct Running {
    pub app: Arc<App>,
    pub observer_addr: SocketAddr,
    pub api_addr: SocketAddr,
    pub shutdown: CancellationToken,
    tasks: JoinSet<std::io::Result<()>>,
}

impl Running {
    /// Wait until every task has ended (after `shutdown` is cancelled).
    pub async fn wait(mut self) -> std::io::Result<()> {
        while let Some(r) = self.tasks.join_next().await {
            r.map_err(std::io::Error::other)??;
        }
        Ok(())
    }
}

/// Open the stores the configuration names.
pub async fn open_stores(
    cfg: &Config,
) -> Result<(Arc<dyn StateStore>, Arc<dyn History>), StartError> {
    let state: Arc<dyn StateStore> = match &cfg.redis_url {
        Some(url) => Arc::new(
            RedisState::connect(url, &cfg.redis_prefix)
                .await
                .map_err(|e| StartError::Store("redis", e))?,
        ),
        None => Arc::new(MemoryState::new()),
    };
    let history: Arc<dyn History> = match &cfg.database_url {
        Some(url) => Arc::new(
            PgHistory::connect(url)
                .await
                .map_err(|e| StartError::Store("postgres", e))?,
        ),
        None => Arc::new(
            SqliteHistory::open(&cfg.sqlite_path).map_err(|e| StartError::Store("sqlite", e))?,
        ),
    };
    Ok((state, history))
}

/// Start the node: stores, ingest pipeline, observer and API listeners.
pub async fn start(cfg: Config) -> Result<Running, StartError> {
    let contract = cfg.contract()?;
    // Before any store or listener: a bad `ca_cert_path` stops the start.
    let outbound = cfg.outbound().map_err(StartError::Outbound)?;
    if outbound.extra_roots() > 0 {
        tracing::info!(ca_cert_path = ?cfg.ca_cert_path, certificates = outbound.extra_roots(), "outbound calls also trust these roots");
    }
    let (state, history) = open_stores(&cfg).await?;
    if cfg.is_embedded() {
        tracing::info!(sqlite = %cfg.sqlite_path.display(), "embedded default: state in memory, history in SQLite (set redis_url/database_url for production)");
    } else {
        tracing::info!(
            redis = cfg.redis_url.is_some(),
            postgres = cfg.database_url.is_some(),
            "production stores"
        );
    }
    let bus = BroadcastBus::new(4096);
    let shutdown = CancellationToken::new();
    let delivery_tasks = tokio_util::task::TaskTracker::new();
    let metrics = Metrics::new();
    // This instance's name on the Redis fan-out channel (it skips its own echo).
    let origin = nexus_delivery::fanout::Origin::random();
    let publish = nexus_delivery::publisher(
        crate::delivery::fanout(&cfg).as_ref(),
        &bus,
        &metrics.delivery,
        &delivery_tasks,
        &shutdown,
        &origin,
    )?;
    let delivery = nexus_delivery::Delivery::start(
        crate::delivery::setup(&cfg, &outbound).await?,
        &bus,
        history.clone(),
        metrics.delivery.clone(),
        delivery_tasks.clone(),
        shutdown.clone(),
        origin,
    )
    .await?;
    let ingestor = Ingestor::start(
        state,
        history,
        publish,
        Arc::new(SystemClock),
        contract,
        EventSource::Observer,
    )
    .await
    .map_err(StartError::Ingest)?
    .with_confirmation_depth(cfg.confirmation_depth)
    .with_delivery_timeout(std::time::Duration::from_secs(
        cfg.delivery_timeout_secs.max(1),
    ));
    let rpc =
        crate::verifier::providers(&cfg, &metrics.verifier, &outbound).map_err(StartError::Rpc)?;
    let ingestor = match &rpc {
        Some(providers) => {
            tracing::info!(providers = ?providers.names(), auth = cfg.rpc_auth_token.is_some(), "gaps are filled from the stacks-node RPC");
            ingestor.with_block_source(providers.clone())
        }
        None => ingestor,
    };
    let ingestor = Arc::new(ingestor);
    let reconciler = rpc
        .as_ref()
        .map(|p| crate::verifier::reconciler(&cfg, &ingestor, p, &metrics.verifier));
    let relay_tasks = tokio_util::task::TaskTracker::new();
    let relay = crate::relay::start(&cfg, &ingestor, rpc.clone(), &relay_tasks, &shutdown).await?;
    let facilitator = Arc::new(nexus_facilitator::Facilitator {
        settings: nexus_facilitator::Settings {
            policy: cfg.x402_policy().map_err(StartError::X402)?,
            settle_wait: std::time::Duration::from_secs(cfg.x402_settle_wait_secs),
        },
        rpc: rpc.clone().map(|p| p as Arc<dyn nexus_stacks::StacksRpc>),
        acceptor: relay.acceptor.clone(),
        ingestor: ingestor.clone(),
        bus: bus.clone(),
        shutdown: shutdown.clone(),
    });
    let stall = crate::stall::StallWatch::new(
        ingestor.clock().clone(),
        metrics.ingest_stalled.clone(),
        metrics.ingest_stalled_since.clone(),
    );
    let app = Arc::new(App {
        stall,
        facilitator,
        relay,
        ingestor,
        metrics,
        bus,
        delivery,
        config: cfg.clone(),
        rpc,
        reconciler,
    });
    let observer = TcpListener::bind(cfg.observer_addr)
        .await
        .map_err(|e| StartError::Bind(cfg.observer_addr, e))?;
    let api = TcpListener::bind(cfg.api_addr)
        .await
        .map_err(|e| StartError::Bind(cfg.api_addr, e))?;
    let observer_addr = observer
        .local_addr()
        .map_err(|e| StartError::Bind(cfg.observer_addr, e))?;
    let api_addr = api
        .local_addr()
        .map_err(|e| StartError::Bind(cfg.api_addr, e))?;
    let mut tasks = JoinSet::new();
    {
        // Delivery tasks (hub, fan-out, WebSocket connections, webhooks) end
        // on the same token; this waits for all of them.
        let token = shutdown.clone();
        tasks.spawn(async move {
            token.cancelled().await;
            delivery_tasks.close();
            delivery_tasks.wait().await;
            relay_tasks.close();
            relay_tasks.wait().await;
            Ok(())
        });
    }
    let obs_router = crate::http::observer::router(app.clone(), cfg.body_limit_bytes);
    let api_router = crate::http::api_router(app.clone());
    {
        let token = shutdown.clone();
        tasks.spawn(async move {
            axum::serve(observer, obs_router)
                .tcp_nodelay(true)
                .with_graceful_shutdown(token.cancelled_owned())
                .await
        });
        // The API needs the peer address: rate limits are per client IP.
        // No Nagle: a WebSocket notification is one small write that must go
        // out now, not wait for the ACK of the previous one.
        let token = shutdown.clone();
        tasks.spawn(async move {
            axum::serve(
                api,
                api_router.into_make_service_with_connect_info::<SocketAddr>(),
            )
            .tcp_nodelay(true)
            .with_graceful_shutdown(token.cancelled_owned())
            .await
        });
    }
    {
        // The design's figures, from every committed event.
        let events = app.bus.subscribe();
        let metrics = app.metrics.analytics.clone();
        let token = shutdown.clone();
        tasks.spawn(async move {
            crate::analytics::run(events, metrics, token).await;
            Ok(())
        });
        let app = app.clone();
        let token = shutdown.clone();
        tasks.spawn(async move {
            crate::analytics::probe_state(&app, token).await;
            Ok(())
        });
    }
    if let Some(reconciler) = app.reconciler.clone() {
        let (role, lease) = crate::verifier::role(&cfg, &app.metrics.verifier)
            .await
            .map_err(StartError::Lease)?;
        if let Some((lease, tx)) = lease {
            let token = shutdown.clone();
            tasks.spawn(async move {
                lease.run(tx, token).await;
                Ok(())
            });
        }
        let metrics = app.metrics.verifier.clone();
        let watched = role.clone();
        tasks.spawn(async move {
            crate::verifier::watch_leader(watched, metrics).await;
            Ok(())
        });
        let token = shutdown.clone();
        tasks.spawn(async move {
            reconciler.run(role, token).await;
            Ok(())
        });
    }
    tracing::info!(%observer_addr, %api_addr, contract = %cfg.contract_id, "nexus-node listening");
    Ok(Running {
        app,
        observer_addr,
        api_addr,
        shutdown,
        tasks,
    })
}
