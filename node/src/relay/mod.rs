//! The relay as the node runs it: stores chosen by configuration (Redis,
//! else the history database, for idempotency keys; Redis or memory for
//! rate limits; PostgreSQL or SQLite for the broadcast schedule), the accept path, the broadcast engine, and the HTTP
//! endpoints and guards (request ids, API keys, rate limits).

pub mod metrics;

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use nexus_core::validate::RelayPolicy;
use nexus_indexer::ingest::Ingestor;
use nexus_relay::backoff::RetryPolicy;
use nexus_relay::engine::{Engine, EngineConfig};
use nexus_relay::handoff::Handoff;
use nexus_relay::outcomes::Outcomes;
use nexus_relay::ratelimit::{Grouped, MemoryRateLimiter, RateLimiter, RedisRateLimiter};
use nexus_relay::service::{AcceptConfig, AcceptDeps, Acceptor};
use nexus_relay::stats::ProviderStats;
use nexus_stacks::Providers;
use nexus_store::broadcasts::{BroadcastStore, PgBroadcasts, SqliteBroadcasts};
use nexus_store::idempotency::{
    IdempotencyStore, PgIdempotency, RedisIdempotency, SqliteIdempotency,
};
use nexus_store::StoreError;

use crate::config::Config;

/// The relay's parts, shared by the handlers.
pub struct Relay {
    /// `None` without an RPC provider: `POST /api/payments` answers 503.
    pub acceptor: Option<Arc<Acceptor>>,
    /// What a relayable transaction is: checked first, with or without a
    /// provider, so a bad request is a 400 whatever else is wrong.
    pub policy: RelayPolicy,
    pub store: Arc<dyn BroadcastStore>,
    pub stats: Arc<ProviderStats>,
    pub limiter: Arc<dyn RateLimiter>,
    pub providers: Option<Arc<Providers>>,
}

/// Why the relay could not start.
#[derive(Debug, thiserror::Error)]
pub enum RelayStartError {
    #[error("could not open the relay's {0} store")]
    Store(&'static str, #[source] StoreError),
    #[error("could not reach Redis for idempotency keys and rate limits")]
    Redis(#[source] redis::RedisError),
    #[error("could not open the idempotency keys in the SQLite file")]
    Idempotency(#[source] nexus_store::idempotency::IdempotencyError),
    #[error("invalid rate limit {0}: {1}")]
    Quota(&'static str, String),
}

/// Build the relay and start its tasks (batcher, engine) on `tasks`; they end on `token`.
pub async fn start(
    cfg: &Config,
    ingestor: &Arc<Ingestor>,
    providers: Option<Arc<Providers>>,
    tasks: &TaskTracker,
    token: &CancellationToken,
) -> Result<Relay, RelayStartError> {
    for (name, q) in [
        ("rate_limit_per_ip", cfg.rate_limit_per_ip),
        ("rate_limit_per_key", cfg.rate_limit_per_key),
    ] {
        if let Some(q) = q.filter(|q| q.per_second != 0.0) {
            q.check().map_err(|e| RelayStartError::Quota(name, e))?;
        }
    }
    let pool = match &cfg.database_url {
        Some(url) => Some(
            sqlx::postgres::PgPoolOptions::new()
                .max_connections(8)
                .acquire_timeout(Duration::from_secs(5))
                // As the history pool: no ping round trip before every use.
                .test_before_acquire(false)
                .connect(url)
                .await
                .map_err(|e| {
                    RelayStartError::Store("postgres", StoreError::unavailable("postgres", e))
                })?,
        ),
        None => None,
    };
    let (idempotency, limiter): (Arc<dyn IdempotencyStore>, Arc<dyn RateLimiter>) =
        match &cfg.redis_url {
            Some(url) => {
                let client = redis::Client::open(url.as_str()).map_err(RelayStartError::Redis)?;
                let conn = redis::aio::ConnectionManager::new(client)
                    .await
                    .map_err(RelayStartError::Redis)?;
                (
                    Arc::new(RedisIdempotency::new(conn.clone(), &cfg.redis_prefix)),
                    // Concurrent requests' checks go to Redis in groups.
                    Arc::new(Grouped::new(Arc::new(RedisRateLimiter::new(
                        conn,
                        &cfg.redis_prefix,
                    )))),
                )
            }
            None => {
                // Without Redis the keys live in the history database, so a
                // restart remembers them (the 24 h promise).
                let idempotency: Arc<dyn IdempotencyStore> = match &pool {
                    Some(pool) => Arc::new(PgIdempotency::new(pool.clone())),
                    None => Arc::new(
                        SqliteIdempotency::open(&cfg.sqlite_path)
                            .map_err(RelayStartError::Idempotency)?,
                    ),
                };
                (idempotency, Arc::new(MemoryRateLimiter::new()))
            }
        };
    let store: Arc<dyn BroadcastStore> = match pool {
        Some(pool) => Arc::new(PgBroadcasts::new(pool)),
        None => Arc::new(
            SqliteBroadcasts::open(&cfg.sqlite_path)
                .map_err(|e| RelayStartError::Store("sqlite", e))?,
        ),
    };
    let stats = Arc::new(ProviderStats::default());
    // A claim (up to 8 rounds of `relay_concurrency` attempts, each trying
    // every provider) must finish before its lease lapses.
    let providers_n = providers.as_ref().map_or(1, |p| p.names().len()) as u64;
    let lease = Duration::from_millis(
        cfg.rpc_timeout_ms
            .saturating_mul(8 * providers_n)
            .saturating_add(10_000),
    );
    let outcomes = Arc::new(Outcomes::new());
    // Room for a few engine rounds; past it, fresh broadcasts are claimed.
    let handoff = Arc::new(Handoff::new(cfg.relay_concurrency.max(1) * 8 * 4, lease));
    let policy = RelayPolicy::new(
        cfg.contract().expect("validated at load"),
        cfg.relay_chain_id(),
    );
    let acceptor = providers.as_ref().map(|_| {
        Acceptor::start(
            AcceptConfig {
                policy: policy.clone(),
                batch_max: cfg.relay_batch_max.max(1),
                duplicate_patience: Duration::from_secs(5),
            },
            AcceptDeps {
                ingestor: ingestor.clone(),
                idempotency: idempotency.clone(),
                handoff: handoff.clone(),
                outcomes: outcomes.clone(),
                clock: Arc::new(nexus_core::clock::SystemClock),
            },
            token.clone(),
            tasks,
        )
    });
    if let Some(p) = &providers {
        let engine = Arc::new(Engine {
            cfg: EngineConfig {
                retry: RetryPolicy {
                    initial: Duration::from_millis(cfg.relay_initial_backoff_ms.max(1)),
                    max_delay: Duration::from_millis(cfg.relay_max_backoff_ms.max(1)),
                    max_attempts: cfg.relay_max_attempts.max(1),
                    max_total: Duration::from_secs(cfg.relay_max_retry_secs),
                },
                concurrency: cfg.relay_concurrency.max(1),
                lease,
                ..EngineConfig::default()
            },
            providers: p.clone(),
            store: store.clone(),
            stats: stats.clone(),
            handoff,
            outcomes,
            clock: Arc::new(nexus_core::clock::SystemClock),
        });
        tasks.spawn(engine.run(token.clone()));
        tracing::info!(
            providers = p.names().len(),
            "relay: broadcasting through the RPC providers"
        );
    } else {
        tracing::info!("relay: no RPC provider configured; POST /api/payments answers 503");
    }
    Ok(Relay {
        acceptor,
        policy,
        store,
        stats,
        limiter,
        providers,
    })
}
