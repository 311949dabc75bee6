//! `POST /api/payments` (relay a client-signed transaction) and
//! `GET /api/stats/providers` (the adaptive engine's view of each provider).

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use serde::Deserialize;
use serde_json::json;

use nexus_relay::service::Submission;
use nexus_relay::RelayError;

use super::guard::{authorize, Access, RequestId};
use crate::app::App;
use crate::http::error::ApiError;

/// Largest request body: a Stacks transaction is far below this.
pub const MAX_BODY_BYTES: usize = 256 * 1024;

pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route(
            "/api/payments",
            post(submit).layer(DefaultBodyLimit::max(MAX_BODY_BYTES)),
        )
        .route("/api/stats/providers", get(provider_stats))
}

/// The JSON form of the request body.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SubmitBody {
    /// The signed transaction, `0x`-prefixed hex.
    pub tx: String,
}

fn relay_error(e: &RelayError) -> ApiError {
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let err = ApiError::new(status, e.is_temporary(), e.code(), e.to_string(), e.field());
    match e.retry_after() {
        Some(d) => err.retry_after(d.as_secs().max(1)),
        None => err,
    }
}

/// The transaction bytes of either body form.
fn tx_bytes(headers: &HeaderMap, body: &Bytes) -> Result<Vec<u8>, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match content_type.as_str() {
        "application/octet-stream" => {
            if body.is_empty() {
                return Err(ApiError::bad_request("tx", "the body is empty: send the signed transaction's bytes".into()));
            }
            Ok(body.to_vec())
        }
        "application/json" | "" => {
            let parsed: SubmitBody = serde_json::from_slice(body).map_err(|e| {
                ApiError::bad_request(
                    "body",
                    format!("expected {{\"tx\": \"0x…signed transaction hex…\"}}: {e}"),
                )
            })?;
            nexus_core::validate::parse_hex(&parsed.tx)
                .map_err(|v| ApiError::bad_request(v.field, v.message))
        }
        other => Err(ApiError::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            false,
            "unsupported_media_type",
            format!("Content-Type {other:?}: send application/json ({{\"tx\": \"0x…\"}}) or application/octet-stream (raw bytes)"),
            Some("Content-Type"),
        )),
    }
}

/// Relay a client-signed escrow transaction (create-payment, claim-payment,
/// refund-expired). Validated before anything is stored; idempotent by
/// `Idempotency-Key` (default: the txid) for 24 h; broadcast with retries.
#[utoipa::path(post, path = "/api/payments", tag = "relay",
    request_body(content(
        (SubmitBody = "application/json"),
        (Vec<u8> = "application/octet-stream"),
    )),
    params(
        ("Idempotency-Key" = Option<String>, Header, description = "1-255 visible ASCII characters; default: txid:<txid>"),
        ("X-Request-Id" = Option<String>, Header, description = "Correlation id; generated when absent, always returned"),
    ),
    responses(
        (status = 202, description = "Recorded (pending) and scheduled for broadcast; the same response is replayed for the same key and body", body = crate::http::schema::Accepted),
        (status = 400, description = "Not a transaction we relay (`field` says what to fix); nothing stored", body = crate::http::schema::ErrorBody),
        (status = 401, description = "Missing or invalid API key (when api_keys is set)", body = crate::http::schema::ErrorBody),
        (status = 404, description = "claim/refund of an unknown payment", body = crate::http::schema::ErrorBody),
        (status = 409, description = "idempotency_conflict, idempotency_in_progress, payment_exists or payment_settled", body = crate::http::schema::ErrorBody),
        (status = 415, description = "Neither JSON nor octet-stream", body = crate::http::schema::ErrorBody),
        (status = 429, description = "Rate limited (Retry-After)", body = crate::http::schema::ErrorBody),
        (status = 503, description = "No RPC provider, or a store is down (temporary)", body = crate::http::schema::ErrorBody),
    ),
    security((), ("api_key" = [])))]
pub(crate) async fn submit(
    State(app): State<Arc<App>>,
    request_id: Option<Extension<RequestId>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let started = std::time::Instant::now();
    let resp = submit_inner(&app, request_id.map(|e| e.0 .0), &headers, &body).await;
    app.metrics
        .relay
        .submit_latency
        .observe(started.elapsed().as_secs_f64());
    resp
}

async fn submit_inner(
    app: &App,
    request_id: Option<String>,
    headers: &HeaderMap,
    body: &Bytes,
) -> Response {
    if let Err(denied) = authorize(app, headers, Access::Write) {
        return denied.into_response();
    }
    let refused = |e: ApiError, code: &str| {
        app.metrics
            .relay
            .refused
            .get_or_create(&crate::relay::metrics::CodeLabel {
                code: code.to_string(),
            })
            .inc();
        e.into_response()
    };
    let tx = match tx_bytes(headers, body) {
        Ok(tx) => tx,
        Err(e) => return refused(e, "validation_error"),
    };
    let Some(acceptor) = &app.relay.acceptor else {
        // Validate first: a request that could never be relayed is a 400
        // whether or not a provider is configured.
        if let Err(v) = nexus_core::validate::validate(&tx, &app.relay.policy) {
            return refused(relay_error(&RelayError::Invalid(v)), "validation_error");
        }
        return refused(relay_error(&RelayError::NoProvider), "relay_unavailable");
    };
    let idempotency_key = match headers.get("idempotency-key").map(|v| v.to_str()) {
        None => None,
        Some(Ok(k)) => Some(k.to_string()),
        Some(Err(_)) => {
            return refused(
                ApiError::bad_request("Idempotency-Key", "must be visible ASCII".into()),
                "validation_error",
            )
        }
    };
    let submission = Submission {
        tx,
        idempotency_key,
        request_id,
    };
    match acceptor.submit(submission).await {
        Ok(answer) => {
            if answer.replayed {
                app.metrics.relay.replayed.inc();
            } else {
                app.metrics.relay.accepted.inc();
            }
            let reply = answer.reply;
            let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::ACCEPTED);
            (
                status,
                [(header::CONTENT_TYPE, "application/json")],
                reply.body,
            )
                .into_response()
        }
        Err(e) => {
            let code = e.code();
            if !e.is_temporary() {
                tracing::info!(code, error = %e, "relay request refused");
            }
            refused(relay_error(&e), code)
        }
    }
}

/// Per provider: breaker state and call counts; per provider and reason:
/// recent success rate and latency, as the adaptive engine ranks them.
#[utoipa::path(get, path = "/api/stats/providers", tag = "relay", responses(
    (status = 200, description = "Providers and their statistics", body = Object),
))]
pub(crate) async fn provider_stats(State(app): State<Arc<App>>) -> Response {
    let breakers = app
        .relay
        .providers
        .as_ref()
        .map(|p| p.status())
        .unwrap_or_default();
    Json(json!({
        "providers": breakers,
        "stats": app.relay.stats.snapshot(),
    }))
    .into_response()
}
