//! Health, metrics, payments and their proofs, observer dead letters.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use nexus_core::domain::{Payment, PaymentId, PaymentStatus};
use nexus_store::{PaymentFilter, StoreError};

use super::error::ApiError;
use super::schema::PaymentView;
use crate::app::App;
use nexus_core::error_chain;

/// Store reachability, the chain tip, open gaps, a stalled observer and the
/// reconciler's state.
#[utoipa::path(get, path = "/health", tag = "node", responses(
    (status = 200, description = "Both stores answer (`status` is `stalled` while the observer refuses deliveries for good, `degraded` if the RPC is down)", body = Object),
    (status = 503, description = "A store is unreachable", body = Object),
))]
pub(crate) async fn health(State(app): State<Arc<App>>) -> Response {
    let state = app.ingestor.state().ping().await;
    let history = app.ingestor.history().ping().await;
    let tip = app.ingestor.history().tip().await.ok().flatten();
    let last_at = app.metrics.last_block_at.get();
    let now_s = app.ingestor.clock().now_ms().div_euclid(1000);
    let age = (last_at > 0).then(|| now_s - last_at);
    let gaps = app.ingestor.gaps().await.unwrap_or_default();
    app.metrics.open_gaps.set(gaps.len() as i64);
    let ok = state.is_ok() && history.is_ok();
    let show = |r: &Result<(), StoreError>| match r {
        Ok(()) => json!("ok"),
        Err(e) => json!(error_chain(e)),
    };
    // The reconciler cannot read the chain (RPC down): degraded, but the
    // node still ingests and serves, so the answer stays 200.
    let reconciler = reconciler_health(&app);
    let rpc_degraded = reconciler
        .as_ref()
        .is_some_and(|r| r["degraded"] == json!(true));
    // A permanent store error: the chain waits on us. Still 200 (README,
    // "Health"): the stores answer and the API serves; a restart would not help.
    let stalled = app.stall.current();
    let status = match (&stalled, ok && !rpc_degraded) {
        (Some(_), _) => "stalled",
        (None, true) => "ok",
        (None, false) => "degraded",
    };
    let body = json!({
        "status": status,
        "stalled": stalled,
        "reconciler": reconciler,
        "mode": if app.config.is_embedded() { "embedded" } else { "production" },
        "state_store": show(&state),
        "history_store": show(&history),
        "contract_id": app.config.contract_id,
        "last_block_height": tip.as_ref().map(|t| t.block.height),
        "last_block_hash": tip.as_ref().map(|t| t.block.index_block_hash.clone()),
        "last_block_age_seconds": age,
        // Held blocks whose parent never arrived: the chain view may be behind.
        "gaps": gaps.iter().map(|g| json!({
            "block": g.block.index_block_hash,
            "height": g.block.height,
            "missing_parent": g.block.parent_index_block_hash,
        })).collect::<Vec<_>>(),
    });
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, Json(body)).into_response()
}

/// Prometheus text exposition.
#[utoipa::path(get, path = "/metrics", tag = "node", responses(
    (status = 200, description = "Prometheus text format 0.0.4", content_type = "text/plain", body = String),
))]
pub(crate) async fn metrics(State(app): State<Arc<App>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        app.metrics.encode(),
    )
        .into_response()
}

/// The path's payment id, or a 400 saying what it must look like.
fn payment_id(s: &str) -> Result<PaymentId, ApiError> {
    s.parse().map_err(|e: nexus_core::domain::PaymentIdError| {
        ApiError::bad_request("payment_id", e.to_string())
    })
}

/// The payment's record: the state store is the fast path; settled records
/// expire from Redis after 24 h, history keeps them.
pub(crate) async fn load_payment(app: &App, id: &PaymentId) -> Result<Option<Payment>, StoreError> {
    match app.ingestor.state().get(id).await? {
        Some(p) => Ok(Some(p)),
        None => app.ingestor.history().get_payment(id).await,
    }
}

/// The height of the node's canonical tip (0 before the first block).
pub(crate) async fn tip_height(app: &App) -> Result<u64, StoreError> {
    Ok(app
        .ingestor
        .history()
        .tip()
        .await?
        .map(|t| t.block.height)
        .unwrap_or(0))
}

/// One payment: its record, its event log, and the relay's broadcasts of its transactions.
#[utoipa::path(get, path = "/api/payments/{payment_id}", tag = "payments",
    params(("payment_id" = String, Path, description = "0x + 64 hex digits")),
    responses(
        (status = 200, description = "The payment", body = super::schema::PaymentDetail),
        (status = 400, description = "Not a payment id", body = super::schema::ErrorBody),
        (status = 404, description = "Unknown payment", body = super::schema::ErrorBody),
    ))]
pub(crate) async fn get_payment(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = payment_id(&id)?;
    let Some(payment) = load_payment(&app, &id).await? else {
        return Err(ApiError::not_found(format!("no payment {id}")));
    };
    let events = app.ingestor.history().events_for_payment(&id).await?;
    // The relay's broadcasts of this payment's transactions, with every attempt.
    let broadcasts = app.relay.store.for_payment(&id.to_string()).await?;
    let view = PaymentView::new(payment, tip_height(&app).await?);
    Ok(
        Json(json!({ "payment": view, "events": events, "broadcasts": broadcasts }))
            .into_response(),
    )
}

/// Query of `GET /api/payments`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ListQuery {
    sender: Option<String>,
    recipient: Option<String>,
    status: Option<String>,
    /// `STX`, or a SIP-010 token by contract (`ADDR.contract`) or asset
    /// identifier (`ADDR.contract::name`): either matches that token's payments.
    asset: Option<String>,
    /// Keyset cursor from the previous page's `next`.
    after: Option<String>,
    /// 1..=500, default 100.
    limit: Option<u32>,
}

/// An `asset` filter is `STX` or a well-formed token contract, with or
/// without its asset name.
fn check_asset(asset: &str) -> Result<(), ApiError> {
    if !nexus_core::domain::is_asset_name(asset) {
        return Err(ApiError::bad_request(
            "asset",
            format!(
                "asset must be STX, a token contract (ADDR.contract) or an asset identifier \
                 (ADDR.contract::name), got {:?}",
                asset.chars().take(200).collect::<String>()
            ),
        ));
    }
    Ok(())
}

/// Payments, filtered, in payment-id order (keyset pagination).
#[utoipa::path(get, path = "/api/payments", tag = "payments", params(ListQuery),
    responses(
        (status = 200, description = "A page; `next` is the cursor of the following one", body = super::schema::PaymentList),
        (status = 400, description = "A bad filter", body = super::schema::ErrorBody),
    ))]
pub(crate) async fn list_payments(
    State(app): State<Arc<App>>,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let status = q
        .status
        .as_deref()
        .map(|s| {
            s.parse::<PaymentStatus>()
                .map_err(|e| ApiError::bad_request("status", e))
        })
        .transpose()?;
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "limit",
            "limit must be between 1 and 500".into(),
        ));
    }
    if let Some(a) = &q.after {
        a.parse::<PaymentId>()
            .map_err(|e| ApiError::bad_request("after", e.to_string()))?;
    }
    if let Some(a) = &q.asset {
        check_asset(a)?;
    }
    let filter = PaymentFilter {
        sender: q.sender,
        recipient: q.recipient,
        status,
        asset: q.asset,
        after: q.after,
        limit,
    };
    let payments = app.ingestor.history().list_payments(&filter).await?;
    let next = (payments.len() as u32 == limit)
        .then(|| payments.last().map(|p| p.payment_id.to_string()))
        .flatten();
    let tip = tip_height(&app).await?;
    let views: Vec<PaymentView> = payments
        .into_iter()
        .map(|p| PaymentView::new(p, tip))
        .collect();
    Ok(Json(json!({ "payments": views, "next": next })).into_response())
}

/// Query of `GET /api/observer/dead-letters`.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DeadLetterQuery {
    /// 1..=500, default 100.
    limit: Option<u32>,
}

/// Observer payloads (and import lines) that could never be processed, with
/// the reason, newest first (admin: they hold whole payloads).
#[utoipa::path(get, path = "/api/observer/dead-letters", tag = "node", params(DeadLetterQuery),
    responses(
        (status = 200, description = "`{dead_letters: [{id, source, reason, payload, at}]}`", body = Object),
        (status = 400, description = "A bad limit", body = super::schema::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = super::schema::ErrorBody),
        (status = 403, description = "No api_keys configured", body = super::schema::ErrorBody),
    ),
    security(("api_key" = [])))]
pub(crate) async fn observer_dead_letters(
    State(app): State<Arc<App>>,
    headers: axum::http::HeaderMap,
    Query(q): Query<DeadLetterQuery>,
) -> Result<Response, ApiError> {
    if let Err(denied) =
        crate::http::guard::authorize(&app, &headers, crate::http::guard::Access::Admin)
    {
        return Ok(denied.into_response());
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return Err(ApiError::bad_request(
            "limit",
            "limit must be between 1 and 500".into(),
        ));
    }
    let dead = app.ingestor.history().dead_letters(limit).await?;
    Ok(Json(json!({ "dead_letters": dead })).into_response())
}

/// `GET /api/payments/{payment_id}/proof`: the verifier's proof of settlement, as of
/// now ([`nexus_core::domain::Proof::current`]: status, position and depth from the payment's
/// record and the node's tip, so it never goes stale once the payment
/// settles or turns final).
#[utoipa::path(get, path = "/api/payments/{payment_id}/proof", tag = "payments",
    params(("payment_id" = String, Path, description = "0x + 64 hex digits")),
    responses(
        (status = 200, description = "`{proof: ...}`", body = super::schema::ProofResponse),
        (status = 404, description = "Not confirmed on chain, or not verified yet", body = super::schema::ErrorBody),
    ))]
pub async fn get_proof(
    State(app): State<Arc<App>>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let id = payment_id(&id)?;
    let stored = app.ingestor.history().get_proof(&id).await?;
    let record = load_payment(&app, &id).await?;
    let tip = tip_height(&app).await?;
    let exact = record.as_ref().is_some_and(|p| p.is_exact());
    let view = stored
        .zip(record)
        .and_then(|(proof, record)| proof.current(&record, tip, app.config.confirmation_depth));
    match view {
        Some(proof) => Ok(Json(json!({ "proof": proof })).into_response()),
        None => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            false,
            "not_found",
            if exact {
                format!(
                    "no proof for {id} yet: an x402 exact transfer is proven once it is \
                     confirmed and the verifier has found the payer's nonce spent at the \
                     chain's tip (within a reconcile cycle)"
                )
            } else {
                format!(
                    "no proof of settlement for {id} (not confirmed on chain, or not verified yet)"
                )
            },
            None,
        )),
    }
}

/// The reconciler's part of `/health`.
fn reconciler_health(app: &App) -> Option<serde_json::Value> {
    let rec = app.reconciler.as_ref()?;
    let st = rec.status();
    let providers = app.rpc.as_ref().map(|p| p.status()).unwrap_or_default();
    Some(json!({
        "leader": st.leader,
        "degraded": st.degraded,
        "cycles": st.cycles,
        "last_cycle": st.last_cycle,
        "last_error": st.last_error,
        "providers": providers,
    }))
}
