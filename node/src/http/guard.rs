//! Request guards of the API listener: correlation ids, the client's
//! address (behind `trusted_proxies`), API keys and rate limits (the seeds'
//! API conventions).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use subtle::ConstantTimeEq;
use tracing::Instrument;

use nexus_relay::ratelimit::{Decision, Quota};

use crate::app::App;
use crate::http::error::ApiError;

/// `X-Request-Id` of the request being handled (accepted or generated).
#[derive(Debug, Clone)]
pub struct RequestId(pub String);

/// The client's address: the TCP peer, or the address a trusted proxy
/// forwards for (`crate::forwarded`). Keys the per-IP rate limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ClientAddr(pub IpAddr);

pub const REQUEST_ID: &str = "x-request-id";

/// A client's id is kept if it is 1..=128 visible ASCII characters;
/// anything else is replaced (it ends up in logs and records).
fn acceptable(id: &str) -> bool {
    (1..=128).contains(&id.len()) && id.bytes().all(|b| b.is_ascii_graphic())
}

/// Accept or generate the request id, find the client's address, run the
/// request inside a span that carries both (so every log line of the
/// request has them), return the id.
pub async fn request_id(State(app): State<Arc<App>>, mut req: Request, next: Next) -> Response {
    let id = req
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|v| acceptable(v))
        .map(str::to_string)
        .unwrap_or_else(|| hex::encode(rand::random::<[u8; 12]>()));
    req.extensions_mut().insert(RequestId(id.clone()));
    let client = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| crate::forwarded::client_ip(c.0.ip(), req.headers(), &app.config.trusted_proxies));
    if let Some(ip) = client {
        req.extensions_mut().insert(ClientAddr(ip));
    }
    let span = tracing::info_span!("request", request_id = %id, client = client.map(tracing::field::display), method = %req.method(), path = %req.uri().path());
    let mut resp = next.run(req).instrument(span).await;
    if let Ok(v) = HeaderValue::from_str(&id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

/// The bearer token of `headers`, if it is one of `keys`.
fn valid_key<'k>(headers: &HeaderMap, keys: &'k [String]) -> Option<&'k str> {
    let token = headers
        .get(header::AUTHORIZATION)?
        .to_str()
        .ok()?
        .strip_prefix("Bearer ")?
        .trim();
    keys.iter()
        .find(|k| k.as_bytes().ct_eq(token.as_bytes()).into())
        .map(String::as_str)
}

/// Which endpoints need a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Needs a key when `api_keys` is set.
    Write,
    /// Always needs a key (and `api_keys` must be set).
    Admin,
}

/// Why a request may not use an endpoint.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Denied {
    /// An admin endpoint, and no API key is configured at all.
    AdminDisabled,
    MissingKey,
    InvalidKey,
}

impl IntoResponse for Denied {
    fn into_response(self) -> Response {
        let (status, code, message) = match self {
            Denied::AdminDisabled => (
                StatusCode::FORBIDDEN,
                "admin_disabled",
                "admin endpoints need an API key, and none is configured (set api_keys)",
            ),
            Denied::MissingKey => (
                StatusCode::UNAUTHORIZED,
                "missing_api_key",
                "this endpoint needs `Authorization: Bearer <api key>`",
            ),
            Denied::InvalidKey => (
                StatusCode::UNAUTHORIZED,
                "invalid_api_key",
                "the API key is not valid",
            ),
        };
        let field = (self != Denied::AdminDisabled).then_some("Authorization");
        let mut resp = ApiError::new(status, false, code, message.into(), field).into_response();
        if status == StatusCode::UNAUTHORIZED {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        resp
    }
}

/// Check the caller may use an endpoint of `access`.
pub fn authorize(app: &App, headers: &HeaderMap, access: Access) -> Result<(), Denied> {
    let keys = &app.config.api_keys;
    if keys.is_empty() {
        return match access {
            Access::Write => Ok(()),
            Access::Admin => Err(Denied::AdminDisabled),
        };
    }
    if valid_key(headers, keys).is_some() {
        return Ok(());
    }
    Err(if headers.contains_key(header::AUTHORIZATION) {
        Denied::InvalidKey
    } else {
        Denied::MissingKey
    })
}

fn enabled(q: Option<Quota>) -> Option<Quota> {
    q.filter(|q| q.per_second > 0.0)
}

/// Rate limits on `/api/*`: per client IP, and per API key when the request
/// carries a valid one. A limiter that cannot answer lets the request through
/// (and says so in the log): a Redis hiccup must not take the API down.
pub async fn rate_limit(State(app): State<Arc<App>>, req: Request, next: Next) -> Response {
    if !req.uri().path().starts_with("/api/") {
        return next.run(req).await;
    }
    let ip = req.extensions().get::<ClientAddr>().map(|c| c.0);
    let mut checks: Vec<(String, Quota)> = Vec::with_capacity(2);
    if let (Some(q), Some(ip)) = (enabled(app.config.rate_limit_per_ip), ip) {
        checks.push((format!("ip:{ip}"), q));
    }
    if let Some(q) = enabled(app.config.rate_limit_per_key) {
        if let Some(k) = valid_key(req.headers(), &app.config.api_keys) {
            // The key's hash, not the key, goes into the store.
            use sha2::Digest;
            let h = hex::encode(&sha2::Sha256::digest(k.as_bytes())[..12]);
            checks.push((format!("key:{h}"), q));
        }
    }
    for (key, quota) in checks {
        match app.relay.limiter.check(&key, quota).await {
            Ok(Decision::Allow) => {}
            Ok(Decision::Deny { retry_after }) => {
                app.metrics.relay.rate_limited.inc();
                let secs = retry_after.as_secs_f64().ceil().max(1.0) as u64;
                let scope = key.split(':').next().unwrap_or("client");
                return ApiError::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    true,
                    "rate_limited",
                    format!(
                        "too many requests for this {} (limit {}/s, burst {})",
                        if scope == "ip" { "IP" } else { "API key" },
                        quota.per_second,
                        quota.burst
                    ),
                    None,
                )
                .retry_after(secs)
                .into_response();
            }
            Err(e) => {
                app.metrics.relay.rate_limiter_errors.inc();
                tracing::warn!(error = %nexus_core::error_chain(&e), "rate limiter unavailable; request let through");
            }
        }
    }
    next.run(req).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_bounded_visible_ascii() {
        assert!(acceptable("abc-123_XYZ"));
        assert!(!acceptable(""));
        assert!(!acceptable("has space"));
        assert!(!acceptable(&"a".repeat(129)));
        assert!(!acceptable("ünïcode"));
    }

    #[test]
    fn bearer_keys_match_exactly() {
        let keys = vec!["k-one".to_string(), "k-two".to_string()];
        let mut h = HeaderMap::new();
        assert_eq!(valid_key(&h, &keys), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer k-two"),
        );
        assert_eq!(valid_key(&h, &keys), Some("k-two"));
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Bearer k-tw"),
        );
        assert_eq!(valid_key(&h, &keys), None);
        h.insert(
            header::AUTHORIZATION,
            HeaderValue::from_static("Basic k-two"),
        );
        assert_eq!(valid_key(&h, &keys), None);
    }
}
