//! The webhooks as the configuration asks for them: endpoints, schedule,
//! store. Only wiring reads `Config`, so the webhook code itself (and the
//! configuration's `EndpointConfig`) do not import each other in a circle.

use std::sync::Arc;
use std::time::Duration;

use super::{postgres, sqlite, Backoff, Endpoint, Settings, WebhookConfigError, WebhookStore};
use crate::config::Config;

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
        backoff: Backoff {
            attempts: cfg.webhook_max_attempts.max(1),
            initial: Duration::from_millis(cfg.webhook_initial_backoff_ms.max(1)),
            max: Duration::from_millis(
                cfg.webhook_max_backoff_ms
                    .max(cfg.webhook_initial_backoff_ms.max(1)),
            ),
            jitter: 0.2,
        },
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
            postgres::PgWebhooks::connect(url)
                .await
                .map_err(WebhookConfigError::Store)?,
        ),
        None => Arc::new(
            sqlite::SqliteWebhooks::open(&cfg.sqlite_path).map_err(WebhookConfigError::Store)?,
        ),
    })
}
