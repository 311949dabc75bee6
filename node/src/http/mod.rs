//! The HTTP layer: every route of the two listeners and the handlers behind
//! them. Handlers share [`crate::app::App`]; the components they call
//! (delivery, relay, verifier wiring) import nothing from here.
//!
//! * [`api`]: health, metrics, payments, proofs, observer dead letters.
//! * [`dashboard`]: `GET /`, the live dashboard page built into the binary.
//! * [`relay`]: `POST /api/payments`, provider statistics.
//! * [`webhooks`]: webhook dead letters.
//! * [`ws`]: the `GET /ws` upgrade.
//! * [`x402`]: the x402 facilitator (`/x402/supported`, `/verify`, `/settle`).
//! * [`guard`]: request ids, the client's address, API keys, rate limits.
//! * [`observer`]: stacks-node's `[[events_observer]]` POSTs.
//! * [`error`], [`schema`], [`openapi`]: the one error body, the response
//!   bodies, and the OpenAPI document generated from the handlers.

pub mod api;
pub mod dashboard;
pub mod error;
pub mod guard;
pub mod observer;
pub mod openapi;
pub mod relay;
pub mod schema;
pub mod webhooks;
pub mod ws;
pub mod x402;

use std::sync::Arc;

use axum::routing::{get, post};
use axum::Router;

use crate::app::App;

/// Routes of the API listener.
pub fn api_router(app: Arc<App>) -> Router {
    Router::new()
        .merge(dashboard::router())
        .route("/health", get(api::health))
        .route("/metrics", get(api::metrics))
        .route("/api/payments", get(api::list_payments))
        .route("/api/payments/:payment_id", get(api::get_payment))
        .route("/api/payments/:payment_id/proof", get(api::get_proof))
        .route(
            "/api/observer/dead-letters",
            get(api::observer_dead_letters),
        )
        .route("/ws", get(ws::handler))
        .route("/api/webhooks/dead-letters", get(webhooks::list))
        .route(
            "/api/webhooks/dead-letters/:id/retry",
            post(webhooks::retry),
        )
        .merge(relay::router())
        .merge(x402::router())
        .route("/api/openapi.json", get(openapi::document))
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            guard::rate_limit,
        ))
        // Outermost: every response, a 429 included, carries the request id,
        // and the rate limit finds the client's address it settled.
        .layer(axum::middleware::from_fn_with_state(
            app.clone(),
            guard::request_id,
        ))
        .with_state(app)
}
