//! `GET /ws`: admission (a connection limit) and the upgrade; the
//! connection itself is `delivery::ws`.

use std::sync::Arc;

use axum::extract::ws::WebSocketUpgrade;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};

use super::error::ApiError;
use crate::app::App;

/// The `GET /ws` handler.
#[utoipa::path(get, path = "/ws", tag = "events", responses(
    (status = 101, description = "WebSocket upgrade. JSON-RPC 2.0: `subscribe` (filters, `since_seq` to resume), `unsubscribe`; notifications carry payment events"),
    (status = 503, description = "Too many connections"),
))]
pub async fn handler(ws: WebSocketUpgrade, State(app): State<Arc<App>>) -> Response {
    let server = app.delivery.ws.clone();
    let Some(permit) = server.admit() else {
        return ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            true,
            "too_many_connections",
            format!(
                "at most {} WebSocket connections",
                server.config.max_connections
            ),
            None,
        )
        .retry_after(1)
        .into_response();
    };
    let max = server.config.max_message_bytes;
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| server.serve(socket, permit))
}
