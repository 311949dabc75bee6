//! `GET /api/webhooks/dead-letters` and `POST /api/webhooks/dead-letters/{id}/retry`.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Deserialize;
use serde_json::json;

use crate::app::App;
use crate::http::error::ApiError;
use crate::http::guard::{authorize, Access};
use nexus_delivery::webhook::RetryOutcome;

#[derive(Debug, Deserialize)]
pub(crate) struct ListQuery {
    /// 1..=500, default 100.
    limit: Option<u32>,
}

/// Webhook deliveries that failed every attempt, newest first (admin).
#[utoipa::path(get, path = "/api/webhooks/dead-letters", tag = "webhooks",
    params(("limit" = Option<u32>, Query, description = "1..=500, default 100")),
    responses(
        (status = 200, description = "`{dead_letters: [...]}`", body = Object),
        (status = 401, description = "Missing or invalid API key", body = crate::http::schema::ErrorBody),
        (status = 403, description = "No api_keys configured", body = crate::http::schema::ErrorBody),
    ),
    security(("api_key" = [])))]
pub(crate) async fn list(
    State(app): State<Arc<App>>,
    headers: axum::http::HeaderMap,
    Query(q): Query<ListQuery>,
) -> Response {
    // Dead letters hold event bodies: an admin endpoint.
    if let Err(denied) = authorize(&app, &headers, Access::Admin) {
        return denied.into_response();
    }
    let limit = q.limit.unwrap_or(100);
    if !(1..=500).contains(&limit) {
        return ApiError::bad_request("limit", "limit must be between 1 and 500".into())
            .into_response();
    }
    match app.delivery.webhooks.store.dead_letters(limit).await {
        Ok(dl) => Json(json!({ "dead_letters": dl })).into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}

/// Queue a dead letter again; its attempts start over (admin).
#[utoipa::path(post, path = "/api/webhooks/dead-letters/{id}/retry", tag = "webhooks",
    params(("id" = i64, Path, description = "Dead letter id")),
    responses(
        (status = 202, description = "Queued again", body = Object),
        (status = 404, description = "No such dead letter", body = crate::http::schema::ErrorBody),
        (status = 409, description = "That event is already queued for that endpoint", body = crate::http::schema::ErrorBody),
        (status = 401, description = "Missing or invalid API key", body = crate::http::schema::ErrorBody),
    ),
    security(("api_key" = [])))]
pub(crate) async fn retry(
    State(app): State<Arc<App>>,
    headers: axum::http::HeaderMap,
    Path(id): Path<String>,
) -> Response {
    if let Err(denied) = authorize(&app, &headers, Access::Admin) {
        return denied.into_response();
    }
    let Ok(id) = id.parse::<i64>() else {
        return ApiError::bad_request(
            "id",
            format!(
                "dead-letter id must be an integer, got {:?}",
                id.chars().take(40).collect::<String>()
            ),
        )
        .into_response();
    };
    let w = &app.delivery.webhooks;
    match w.store.retry_dead_letter(id, w.clock.now_ms()).await {
        Ok(RetryOutcome::Queued(delivery)) => {
            w.wake.notify_one();
            (
                StatusCode::ACCEPTED,
                Json(json!({"queued": true, "delivery_id": delivery})),
            )
                .into_response()
        }
        Ok(RetryOutcome::NotFound) => {
            ApiError::not_found(format!("no dead letter {id}")).into_response()
        }
        Ok(RetryOutcome::AlreadyQueued) => ApiError::new(
            StatusCode::CONFLICT,
            false,
            "already_queued",
            format!(
                "dead letter {id}: that event is already queued or delivered for that endpoint"
            ),
            None,
        )
        .into_response(),
        Err(e) => ApiError::from(e).into_response(),
    }
}
