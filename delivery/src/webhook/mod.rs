//! Signed webhooks with persisted retries and a dead-letter table.
//!
//! Each endpoint (`[[webhooks]]` in `nexus.toml`) receives every matching
//! event as a JSON POST of the event record, with headers
//! `x402-nexus-signature` (hex HMAC-SHA256 over `{timestamp}.{body}`),
//! `x402-nexus-timestamp` (unix seconds) and `x402-nexus-event-id`. A 2xx
//! ends delivery; anything else is retried on the `nexus_core::backoff` schedule, and
//! after the last attempt the delivery moves to the dead-letter table
//! (`GET /api/webhooks/dead-letters`, `POST /api/webhooks/dead-letters/{id}/retry`).
//! The queue lives in the history database, so a restart resumes it.
//! Receivers check requests with [`verify_webhook_signature`].

pub mod engine;
pub mod signature;

pub use engine::{Engine, Settings};
pub use nexus_store::webhooks::{RetryOutcome, WebhookDeadLetter, WebhookStore};
pub use signature::{
    sign, verify_webhook_signature, SignatureError, DEFAULT_TOLERANCE, EVENT_ID_HEADER,
    SIGNATURE_HEADER, TIMESTAMP_HEADER,
};

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use tokio::sync::Notify;

use nexus_core::domain::{EventType, PaymentId};
use nexus_store::StoreError;

use super::filter::{valid_principal, Filter, TypedFilter};

/// One `[[webhooks]]` entry of the configuration.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct EndpointConfig {
    /// Unique, stable name: deliveries are stored under it.
    pub name: String,
    /// `http://` or `https://` URL the events are POSTed to (https trusts
    /// the platform's roots and `ca_cert_path`'s).
    pub url: String,
    /// HMAC key of the signature.
    pub secret: String,
    /// Event types to send (`payment:confirmed`, ...); empty = all.
    #[serde(default)]
    pub events: Vec<String>,
    /// Only events with this principal as sender or recipient.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub principal: Option<String>,
    /// Only events of this payment.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
}

impl std::fmt::Debug for EndpointConfig {
    // The secret stays out of logs.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EndpointConfig")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("secret", &"<redacted>")
            .field("events", &self.events)
            .field("principal", &self.principal)
            .field("payment_id", &self.payment_id)
            .finish()
    }
}

/// A checked endpoint.
#[derive(Debug, Clone)]
pub struct Endpoint {
    pub name: String,
    pub url: reqwest::Url,
    pub secret: String,
    pub filter: TypedFilter,
}

/// A `[[webhooks]]` entry that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum WebhookConfigError {
    #[error("webhook {name:?}: {problem}")]
    Invalid { name: String, problem: String },
    #[error("could not open the webhook delivery store")]
    Store(#[source] StoreError),
}

impl EndpointConfig {
    /// Check the entry (URL, filters, secret).
    pub fn endpoint(&self) -> Result<Endpoint, WebhookConfigError> {
        let bad = |problem: String| WebhookConfigError::Invalid {
            name: self.name.clone(),
            problem,
        };
        if self.name.trim().is_empty() {
            return Err(bad("name must not be empty".into()));
        }
        if self.secret.len() < 16 {
            return Err(bad("secret must be at least 16 characters".into()));
        }
        let url: reqwest::Url = self
            .url
            .parse()
            .map_err(|e| bad(format!("invalid url: {e}")))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(bad(format!(
                "url must be http:// or https://, not {}://",
                url.scheme()
            )));
        }
        let types = self
            .events
            .iter()
            .map(|t| EventType::parse(t).ok_or_else(|| bad(format!("unknown event type {t:?}"))))
            .collect::<Result<Vec<_>, _>>()?;
        let filter = match (&self.principal, &self.payment_id) {
            (Some(_), Some(_)) => return Err(bad("set principal or payment_id, not both".into())),
            (Some(p), None) if !valid_principal(p) => {
                return Err(bad(format!("invalid principal {p:?}")))
            }
            (Some(p), None) => Filter::Principal(p.clone()),
            (None, Some(id)) => Filter::Payment(
                id.parse::<PaymentId>()
                    .map_err(|e| bad(format!("invalid payment_id: {e}")))?,
            ),
            (None, None) => Filter::All,
        };
        Ok(Endpoint {
            name: self.name.clone(),
            url,
            secret: self.secret.clone(),
            filter: TypedFilter { filter, types },
        })
    }
}

/// What the API needs: the store, the clock, and a way to wake the sender.
pub struct Webhooks {
    pub store: Arc<dyn WebhookStore>,
    pub clock: Arc<dyn nexus_core::clock::Clock>,
    pub wake: Arc<Notify>,
}
