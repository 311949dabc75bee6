//! The event-observer endpoint stacks-node POSTs to.
//!
//! Response rules (stacks-node retries a non-200 forever and stops producing
//! blocks until it gets a 200, so the answer decides what is lost or stalled):
//!
//! | situation | answer | why |
//! |---|---|---|
//! | effects committed (history, then state) | 200 | only now is it safe for the node to forget the payload |
//! | already seen (same block, same mempool tx, same drop) | 200 | idempotent: nothing changes, nothing is emitted |
//! | payload that can never be processed (not JSON, wrong shape) | 200 + dead letter | stalling the chain on poison helps nobody; the dead-letter table keeps it with the reason |
//! | a bad escrow event inside a good block | 200 + dead letter for that event | the rest of the block is applied |
//! | body over `body_limit_bytes` | 413 | we cannot store it; raise the limit (the node retries) |
//! | storage unavailable (Redis or the database down) | 503 | temporary: the node retries the same payload and nothing is lost |
//! | any other storage failure (a rejected write, unreadable rows), a panicked delivery | 500 | permanent: the chain stalls until someone fixes it, so it is made loud (`crate::stall`: `/health` says `stalled`, `nexus_ingest_stalled` is 1, logged once a minute) |
//! | the state store came back empty (rebuilt from history during the delivery) | 200 after one reconcile cycle (bounded) | the chain wins before anything else is acknowledged |
//!
//! `/stackerdb_chunks`, `/proposal_response`, `/mined_*` and other paths are
//! acknowledged with 200 without processing (after a JSON well-formedness check).

use nexus_core::error_chain;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::json;

use nexus_core::observer::Route;

use crate::app::App;
use crate::metrics::{PathLabel, RequestLabel};

/// Router for the observer listener.
pub fn router(app: Arc<App>, body_limit: usize) -> Router {
    Router::new()
        .route("/*path", post(observe))
        .layer(DefaultBodyLimit::max(body_limit))
        .with_state(app)
}

async fn observe(State(app): State<Arc<App>>, uri: Uri, body: Bytes) -> Response {
    let route = Route::from_path(uri.path());
    let started = Instant::now();
    // Run the delivery on its own task: if stacks-node hangs up mid-commit the
    // work still completes (a dropped handler future would cancel it).
    let ingestor = app.ingestor.clone();
    let rebuilds = app.ingestor.rebuilds();
    let result = tokio::spawn(async move { ingestor.deliver(route, &body).await }).await;
    if app.ingestor.rebuilds() > rebuilds {
        reconcile_after_rebuild(&app).await;
    }
    let (code, response) = match result {
        Ok(Ok(outcome)) => {
            app.metrics.record(&outcome);
            if let Some(h) = outcome.tip_height {
                app.metrics.last_block_height.set(h as i64);
                app.metrics
                    .last_block_at
                    .set(app.ingestor.clock().now_ms().div_euclid(1000));
            }
            if let Some(r) = app.stall.delivered() {
                tracing::info!(
                    path = uri.path(),
                    stalled_since = %r.stall.since,
                    failures = r.stall.failures,
                    suppressed = r.suppressed,
                    "delivery committed: the stall is over, the chain moves again"
                );
            }
            tracing::debug!(
                path = uri.path(),
                events = outcome.events.len(),
                dead_letters = outcome.dead_letters,
                duplicate = outcome.duplicate,
                "delivery committed"
            );
            let body = Json(json!({
                "result": "ok",
                "events": outcome.events.len(),
                "dead_letters": outcome.dead_letters,
                "duplicate": outcome.duplicate,
            }));
            (StatusCode::OK, body.into_response())
        }
        Ok(Err(e)) => {
            let temporary = e.is_temporary();
            if temporary {
                tracing::error!(path = uri.path(), error = %error_chain(&e), temporary, "delivery not committed; stacks-node will retry");
            } else {
                stalled(&app, uri.path(), error_chain(&e));
            }
            let code = if temporary {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            };
            let body = Json(json!({"error": {
                "type": if temporary { "temporary" } else { "permanent" },
                "code": "storage_unavailable",
                "message": error_chain(&e),
            }}));
            // The status must be on the response itself: a 200 here would tell
            // stacks-node the uncommitted payload was delivered.
            (code, (code, body).into_response())
        }
        Err(join) => {
            stalled(&app, uri.path(), format!("delivery task panicked: {join}"));
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                StatusCode::INTERNAL_SERVER_ERROR.into_response(),
            )
        }
    };
    app.metrics
        .ingest_latency
        .get_or_create(&PathLabel {
            path: route.path().to_string(),
        })
        .observe(started.elapsed().as_secs_f64());
    app.metrics
        .observer_requests
        .get_or_create(&RequestLabel {
            path: route.path().to_string(),
            code: code.as_u16().to_string(),
        })
        .inc();
    response
}

/// A delivery failed for good: stacks-node will resend it, and it will
/// fail again until someone acts. Counted on every resend, logged once a
/// minute at most (with how many were not logged).
fn stalled(app: &App, path: &str, error: String) {
    let Some(suppressed) = app.stall.failed(error.clone()) else {
        return;
    };
    let since = app.stall.current().map(|s| s.since).unwrap_or_default();
    tracing::error!(
        path,
        error = %error,
        temporary = false,
        stalled_since = %since,
        suppressed,
        "delivery not committed; stacks-node will retry (the chain is stalled until this is fixed; logged once a minute)"
    );
}

/// The state store came back empty and was rebuilt from history during this
/// delivery: let the chain have its say (one reconcile cycle) before the
/// delivery is acknowledged. Bounded, so an RPC outage cannot stall the
/// chain: after the bound the answer goes out and the loop reconciles later.
async fn reconcile_after_rebuild(app: &App) {
    let Some(rec) = &app.reconciler else { return };
    let bound = std::time::Duration::from_millis(app.config.rpc_timeout_ms.saturating_mul(3))
        .max(std::time::Duration::from_secs(5));
    if rec.reconcile_now(bound).await {
        tracing::info!("state store rebuilt from history and reconciled with the chain");
    } else {
        tracing::warn!(
            bound_ms = bound.as_millis() as u64,
            "state store rebuilt from history; not reconciled yet (not the leader, or the cycle is slow)"
        );
    }
}
