//! Delivery as the configuration asks for it (`nexus-delivery` reads no
//! `Config`): the Redis fan-out, the WebSocket limits, the webhook
//! endpoints, schedule and store.

use std::sync::Arc;
use std::time::Duration;

use nexus_core::backoff::{Backoff, Jitter};
use nexus_delivery::webhook::{Endpoint, Settings, WebhookConfigError, WebhookStore};
use nexus_delivery::ws::WsConfig;
use nexus_delivery::{DeliveryError, FanoutConfig, Setup};
use nexus_outbound::Outbound;

use crate::config::Config;

/// Everything `Delivery::start` needs; opens the webhook store. Webhooks
/// are sent with a client `outbound` builds.
pub async fn setup(cfg: &Config, outbound: &Outbound) -> Result<Setup, DeliveryError> {
    Ok(Setup {
        fanout: fanout(cfg),
        ws: ws_config(cfg),
        endpoints: endpoints(cfg)?,
        webhook_settings: settings(cfg),
        webhook_store: open_store(cfg).await?,
        outbound: outbound.clone(),
    })
}

/// The Redis fan-out, when `redis_url` is set.
pub fn fanout(cfg: &Config) -> Option<FanoutConfig> {
    cfg.redis_url.as_ref().map(|url| FanoutConfig {
        redis_url: url.clone(),
        prefix: cfg.redis_prefix.clone(),
    })
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

/// Check every endpoint (and that names are unique).
pub fn endpoints(cfg: &Config) -> Result<Vec<Endpoint>, WebhookConfigError> {
    let mut out: Vec<Endpoint> = Vec::new();
    for c in &cfg.webhooks {
        let e = c.endpoint()?;
        if out.iter().any(|o| o.name == e.name) {
            return Err(WebhookConfigError::Invalid {
                name: e.name,
                problem: "two webhooks with this name".into(),
            });
        }
        out.push(e);
    }
    Ok(out)
}

/// The schedule and timeout the configuration asks for.
pub fn settings(cfg: &Config) -> Settings {
    Settings {
        // Waits grow evenly from the first to the last, each ±20 %.
        backoff: Backoff::spanning(
            cfg.webhook_max_attempts.max(1),
            Duration::from_millis(cfg.webhook_initial_backoff_ms.max(1)),
            Duration::from_millis(
                cfg.webhook_max_backoff_ms
                    .max(cfg.webhook_initial_backoff_ms.max(1)),
            ),
            Jitter::Proportional(0.2),
        ),
        timeout: Duration::from_millis(cfg.webhook_timeout_ms.max(1)),
        retention: match cfg.webhook_retention_hours {
            0 => None,
            h => Some(Duration::from_secs(h.saturating_mul(3600))),
        },
    }
}

/// Open the delivery store next to the history the configuration names.
pub async fn open_store(cfg: &Config) -> Result<Arc<dyn WebhookStore>, WebhookConfigError> {
    Ok(match &cfg.database_url {
        Some(url) => Arc::new(
            nexus_store::webhooks::PgWebhooks::connect(url)
                .await
                .map_err(WebhookConfigError::Store)?,
        ),
        None => Arc::new(
            nexus_store::webhooks::SqliteWebhooks::open(&cfg.sqlite_path)
                .map_err(WebhookConfigError::Store)?,
        ),
    })
}
