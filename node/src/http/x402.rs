//! The x402 v2 facilitator on the API address: `GET /x402/supported`,
//! `POST /x402/verify`, `POST /x402/settle` (so the facilitator URL a
//! resource server configures is `http://HOST:8402/x402`).
//!
//! Every answer is an x402 body. A refused payment is a 200 with
//! `isValid`/`success` false and the x402 reason; only this node's own
//! trouble (`unexpected_verify_error`, `unexpected_settle_error`) is a 503
//! with `Retry-After`, so a client knows to try again.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};

use nexus_core::x402::{Reason, Refusal, SettleResponse, VerifyResponse};

use crate::app::App;

/// Largest request body: a payment payload is a few kilobytes.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

pub fn router() -> Router<Arc<App>> {
    Router::new()
        .route("/x402/supported", get(supported))
        .route("/x402/verify", post(verify))
        .route("/x402/settle", post(settle))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
}

/// The schemes and networks this facilitator settles.
#[utoipa::path(get, path = "/x402/supported", tag = "x402", responses(
    (status = 200, description = "x402 v2 supported kinds", body = nexus_core::x402::Supported),
))]
pub(crate) async fn supported(State(app): State<Arc<App>>) -> Response {
    Json(app.facilitator.settings.policy.supported()).into_response()
}

/// The body as JSON, or the refusal a non-JSON body gets.
fn json_body(body: &Bytes) -> Result<serde_json::Value, Refusal> {
    serde_json::from_slice(body).map_err(|e| {
        Refusal::new(
            Reason::InvalidPayload,
            format!("the body is not JSON ({e}): send {{x402Version, paymentPayload, paymentRequirements}}"),
        )
    })
}

fn now_ms(app: &App) -> i64 {
    app.ingestor.clock().now_ms()
}

/// 503 for this node's own trouble, 200 for every answer about the payment.
fn status_of(reason: Option<Reason>) -> StatusCode {
    match reason {
        Some(Reason::UnexpectedVerifyError | Reason::UnexpectedSettleError) => {
            StatusCode::SERVICE_UNAVAILABLE
        }
        _ => StatusCode::OK,
    }
}

fn respond<T: serde::Serialize>(reason: Option<Reason>, body: &T) -> Response {
    let status = status_of(reason);
    let mut r = (status, Json(body)).into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        r.headers_mut()
            .insert(header::RETRY_AFTER, header::HeaderValue::from_static("5"));
    }
    r
}

/// Checks a payment and the payer's funds; stores and broadcasts nothing.
#[utoipa::path(post, path = "/x402/verify", tag = "x402",
    request_body(content = Object, description = "{x402Version: 2, paymentPayload, paymentRequirements}"),
    responses(
        (status = 200, description = "valid, or invalid with its x402 reason", body = VerifyResponse),
        (status = 413, description = "body over 64 KiB"),
        (status = 503, description = "unexpected_verify_error: this node's RPC is down; Retry-After", body = VerifyResponse),
    ))]
pub(crate) async fn verify(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let answer = match json_body(&body) {
        Ok(v) => match app.facilitator.verify(&v, now_ms(&app)).await {
            Ok(v) => VerifyResponse::valid(v.payer),
            Err(r) => VerifyResponse::invalid(&r, r.payer.clone()),
        },
        Err(r) => VerifyResponse::invalid(&r, None),
    };
    app.metrics.x402("verify", answer.invalid_reason);
    respond(answer.invalid_reason, &answer)
}

/// Verifies, records and broadcasts the payment, and answers once a
/// committed block holds it (or `transaction_pending` at the deadline).
#[utoipa::path(post, path = "/x402/settle", tag = "x402",
    request_body(content = Object, description = "{x402Version: 2, paymentPayload, paymentRequirements}"),
    responses(
        (status = 200, description = "settled, or refused with its x402 reason", body = SettleResponse),
        (status = 413, description = "body over 64 KiB"),
        (status = 503, description = "unexpected_settle_error: this node's RPC or stores are down; Retry-After", body = SettleResponse),
    ))]
pub(crate) async fn settle(State(app): State<Arc<App>>, body: Bytes) -> Response {
    let started = std::time::Instant::now();
    let answer = match json_body(&body) {
        Ok(v) => app.facilitator.settle(&v, now_ms(&app)).await,
        Err(r) => SettleResponse::failed(&r, &app.facilitator.network(), None, None),
    };
    app.metrics
        .x402_settle_seconds
        .observe(started.elapsed().as_secs_f64());
    app.metrics.x402("settle", answer.error_reason);
    respond(answer.error_reason, &answer)
}
