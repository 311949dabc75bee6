//! Wiring of the verifier (`nexus-verifier`): the RPC providers with breakers
//! (the node's one RPC client, also used by the relay and the gap fill),
//! the leader lease, the reconcile loop, their metrics, and the proof endpoint.

use std::sync::Arc;
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::sync::watch;

use nexus_core::clock::SystemClock;
use nexus_core::decide::Rules;
use nexus_core::domain::PaymentStatus;
use nexus_indexer::ingest::Ingestor;
use nexus_stacks::{breaker, BreakerState, Providers, RpcError, RpcObserver};
use nexus_verifier::lease::{self, RedisLease, Role};
use nexus_verifier::reconcile::{CycleReport, ReconcileConfig, ReconcileObserver, Reconciler};

use crate::config::Config;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ProviderLabel {
    pub provider: String,
    pub result: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct UrlLabel {
    pub provider: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct DiscrepancyLabel {
    pub from: String,
    pub to: String,
}

/// The verifier's metrics. Clones share the same series.
#[derive(Clone)]
pub struct VerifierMetrics {
    pub rpc_calls: Family<ProviderLabel, Counter>,
    pub rpc_latency: Family<UrlLabel, Histogram>,
    /// 0 closed, 1 half-open, 2 open.
    pub breaker_state: Family<UrlLabel, Gauge>,
    pub cycles: Counter,
    pub slow_cycles: Counter,
    pub cycle_seconds: Histogram,
    pub cycle_rpc_calls: Gauge,
    pub open_payments: Gauge,
    pub carried_over: Gauge,
    pub discrepancies: Family<DiscrepancyLabel, Counter>,
    pub proofs: Counter,
    /// 1 while the last cycle could not read the chain.
    pub degraded: Gauge,
    /// 1 while this node holds the reconciler lease.
    pub leader: Gauge,
    /// The chain tip height the last cycle read (`/v2/info`).
    pub tip_height: Gauge,
}

impl Default for VerifierMetrics {
    fn default() -> Self {
        VerifierMetrics {
            rpc_calls: Family::default(),
            rpc_latency: Family::new_with_constructor(|| {
                Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(
                    0.001, 2.0, 14,
                ))
            }),
            breaker_state: Family::default(),
            cycles: Counter::default(),
            slow_cycles: Counter::default(),
            cycle_seconds: Histogram::new(
                prometheus_client::metrics::histogram::exponential_buckets(0.005, 2.0, 14),
            ),
            cycle_rpc_calls: Gauge::default(),
            open_payments: Gauge::default(),
            carried_over: Gauge::default(),
            discrepancies: Family::default(),
            proofs: Counter::default(),
            degraded: Gauge::default(),
            leader: Gauge::default(),
            tip_height: Gauge::default(),
        }
    }
}

impl VerifierMetrics {
    /// Add every series to `registry` (prefix `nexus_`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "rpc_calls",
            "Verifier RPC calls by provider and result",
            self.rpc_calls.clone(),
        );
        registry.register(
            "rpc_latency_seconds",
            "Verifier RPC call latency by provider",
            self.rpc_latency.clone(),
        );
        registry.register(
            "rpc_breaker_state",
            "Circuit breaker per RPC provider: 0 closed, 1 half-open, 2 open",
            self.breaker_state.clone(),
        );
        registry.register(
            "reconcile_cycles",
            "Reconcile cycles run",
            self.cycles.clone(),
        );
        registry.register(
            "reconcile_tip_height",
            "The chain tip height the last reconcile cycle read from the RPC (its lag behind nexus_last_block_height is the node's or the provider's)",
            self.tip_height.clone(),
        );
        registry.register(
            "reconcile_slow_cycles",
            "Reconcile cycles that took longer than the interval",
            self.slow_cycles.clone(),
        );
        registry.register(
            "reconcile_cycle_seconds",
            "Duration of a reconcile cycle",
            self.cycle_seconds.clone(),
        );
        registry.register(
            "reconcile_cycle_rpc_calls",
            "RPC calls of the last reconcile cycle",
            self.cycle_rpc_calls.clone(),
        );
        registry.register(
            "reconcile_open_payments",
            "Payments the reconciler watches",
            self.open_payments.clone(),
        );
        registry.register(
            "reconcile_carried_over",
            "Payments left for the next cycle by the last one",
            self.carried_over.clone(),
        );
        registry.register(
            "reconcile_discrepancies",
            "Stored states corrected from the chain, by stored and corrected status",
            self.discrepancies.clone(),
        );
        registry.register(
            "reconcile_proofs",
            "Proofs of settlement written",
            self.proofs.clone(),
        );
        registry.register(
            "reconcile_degraded",
            "1 while the reconciler cannot read the chain (RPC down); no payment changes then",
            self.degraded.clone(),
        );
        registry.register(
            "reconcile_leader",
            "1 while this node holds the reconciler lease",
            self.leader.clone(),
        );
    }
}

impl RpcObserver for VerifierMetrics {
    fn call(&self, provider: &str, _op: &'static str, ok: bool, latency: Duration) {
        self.rpc_calls
            .get_or_create(&ProviderLabel {
                provider: provider.to_string(),
                result: if ok { "ok" } else { "error" }.to_string(),
            })
            .inc();
        self.rpc_latency
            .get_or_create(&UrlLabel {
                provider: provider.to_string(),
            })
            .observe(latency.as_secs_f64());
    }

    fn breaker(&self, provider: &str, state: BreakerState) {
        self.breaker_state
            .get_or_create(&UrlLabel {
                provider: provider.to_string(),
            })
            .set(state.as_gauge());
    }
}

impl ReconcileObserver for VerifierMetrics {
    fn cycle(&self, r: &CycleReport, slow: bool) {
        self.cycles.inc();
        if slow {
            self.slow_cycles.inc();
        }
        self.cycle_seconds.observe(r.duration_ms as f64 / 1000.0);
        self.cycle_rpc_calls.set(r.rpc_calls as i64);
        self.open_payments.set(r.open as i64);
        self.carried_over.set(r.carried_over as i64);
        self.proofs.inc_by(r.proofs as u64);
        self.degraded.set(i64::from(r.degraded.is_some()));
        if let Some(h) = r.tip_height {
            self.tip_height.set(i64::try_from(h).unwrap_or(i64::MAX));
        }
    }

    fn discrepancy(&self, from: PaymentStatus, to: PaymentStatus) {
        self.discrepancies
            .get_or_create(&DiscrepancyLabel {
                from: from.as_str().to_string(),
                to: to.as_str().to_string(),
            })
            .inc();
    }
}

/// The node's one RPC client, when the configuration names a node
/// (`rpc_urls`, else `rpc_url`): the verifier reads through it, the relay
/// broadcasts through it and the ingest path fills gaps through it, all
/// sharing its breakers. Its clients are built by `outbound` (rustls, the
/// platform's roots and `ca_cert_path`'s).
pub fn providers(
    cfg: &Config,
    metrics: &VerifierMetrics,
    outbound: &nexus_outbound::Outbound,
) -> Result<Option<Arc<Providers>>, RpcError> {
    let urls = cfg.rpc_provider_urls();
    if urls.is_empty() {
        return Ok(None);
    }
    Ok(Some(Arc::new(Providers::with_outbound(
        &urls,
        cfg.rpc_auth_token.clone(),
        Duration::from_millis(cfg.rpc_timeout_ms.max(1)),
        breaker::DEFAULT_FAILURE_THRESHOLD,
        breaker::DEFAULT_COOLDOWN,
        Arc::new(metrics.clone()),
        outbound,
    )?)))
}

/// The reconciler over `providers`.
pub fn reconciler(
    cfg: &Config,
    ingestor: &Arc<Ingestor>,
    providers: &Arc<Providers>,
    metrics: &VerifierMetrics,
) -> Arc<Reconciler> {
    tracing::info!(providers = ?providers.names(), interval_secs = cfg.reconcile_interval_secs, "verifier: reconciling against the chain");
    Arc::new(Reconciler::new(
        ingestor.clone(),
        providers.clone(),
        ReconcileConfig {
            interval: Duration::from_secs(cfg.reconcile_interval_secs.max(1)),
            concurrency: cfg.reconcile_concurrency.max(1),
            budget: cfg.reconcile_budget,
            rules: Rules {
                drop_after: Duration::from_secs(cfg.reconcile_drop_after_secs),
                ..Rules::default()
            },
            confirmation_depth: cfg.confirmation_depth.max(1),
        },
        Arc::new(SystemClock),
        Arc::new(metrics.clone()),
    ))
}

/// Who reconciles: with Redis, the holder of the lease (the task holding it
/// is returned to be spawned); alone, always this node.
pub async fn role(
    cfg: &Config,
    metrics: &VerifierMetrics,
) -> Result<
    (
        watch::Receiver<Role>,
        Option<(RedisLease, watch::Sender<Role>)>,
    ),
    lease::LeaseError,
> {
    let Some(url) = &cfg.redis_url else {
        metrics.leader.set(1);
        return Ok((lease::fixed(Role::Leader(None)), None));
    };
    let lease = RedisLease::connect(
        url,
        &cfg.redis_prefix,
        Duration::from_millis(cfg.lease_ttl_ms.max(300)),
    )
    .await?;
    let (tx, rx) = watch::channel(Role::Follower);
    Ok((rx, Some((lease, tx))))
}

/// Mirror the role into the `leader` gauge until the sender goes away.
pub async fn watch_leader(mut rx: watch::Receiver<Role>, metrics: VerifierMetrics) {
    loop {
        metrics
            .leader
            .set(i64::from(matches!(*rx.borrow(), Role::Leader(_))));
        if rx.changed().await.is_err() {
            return;
        }
    }
}
