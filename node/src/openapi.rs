//! `GET /api/openapi.json`: the OpenAPI 3.1 document of the whole HTTP API,
//! generated from the handlers' `#[utoipa::path]` annotations and the
//! types' `ToSchema` derives, so it cannot drift from the code.

use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi, ToSchema};

use nexus_core::domain::{Payment, PaymentEvent, Proof, ProofView};

use crate::api::PaymentView;

/// Every error body: `{"error": {...}}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ErrorDetail {
    /// `temporary`: the same request may succeed later; `permanent`: it will not.
    #[schema(example = "permanent")]
    pub r#type: String,
    /// Machine-readable, e.g. `validation_error`, `idempotency_conflict`, `rate_limited`.
    pub code: String,
    pub message: String,
    /// The request field at fault.
    pub field: Option<String>,
    /// For 429 and temporary errors (also sent as `Retry-After`).
    pub retry_after_seconds: Option<u64>,
}

/// `GET /api/payments/{payment_id}`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentDetail {
    pub payment: PaymentView,
    pub events: Vec<PaymentEvent>,
    /// The relay's broadcasts of this payment's transactions, each with `attempts_made`.
    pub broadcasts: Vec<serde_json::Value>,
}

/// `GET /api/payments`.
#[derive(Debug, Serialize, ToSchema)]
pub struct PaymentList {
    pub payments: Vec<PaymentView>,
    /// Pass as `after` for the next page; absent on the last.
    pub next: Option<String>,
}

/// `GET /api/payments/{payment_id}/proof`.
#[derive(Debug, Serialize, ToSchema)]
pub struct ProofResponse {
    pub proof: ProofView,
}

/// Links of an accepted payment.
#[derive(Debug, Serialize, ToSchema)]
pub struct Links {
    #[serde(rename = "self")]
    pub this: String,
    pub proof: String,
}

/// `POST /api/payments` → 202.
#[derive(Debug, Serialize, ToSchema)]
pub struct Accepted {
    pub payment_id: String,
    pub txid: String,
    /// `create-payment`, `claim-payment` or `refund-expired`.
    pub function: String,
    /// The payment's status (`pending` for a new create).
    pub status: String,
    /// `scheduled`: the broadcast engine has it.
    pub broadcast: String,
    pub request_id: Option<String>,
    pub payment: Payment,
    pub links: Links,
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, api: &mut utoipa::openapi::OpenApi) {
        let components = api.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "api_key",
            SecurityScheme::Http(Http::new(HttpAuthScheme::Bearer)),
        );
    }
}

#[derive(OpenApi)]
#[openapi(
    info(
        title = "x402-Nexus node",
        description = "Payment-reliability node for the x402 STX escrow on Stacks: payments, proofs, relay, webhooks. Every error body is `{\"error\": {type, code, message, field?, retry_after_seconds?}}`; every response carries `X-Request-Id`.",
    ),
    paths(
        crate::api::health,
        crate::api::metrics,
        crate::api::list_payments,
        crate::api::get_payment,
        crate::api::observer_dead_letters,
        crate::verifier::get_proof,
        crate::relay::http::submit,
        crate::relay::http::provider_stats,
        crate::delivery::ws::handler,
        crate::delivery::webhook::api::list,
        crate::delivery::webhook::api::retry,
        document,
    ),
    components(schemas(ErrorBody, ErrorDetail, PaymentDetail, PaymentList, ProofResponse, Accepted, Links, PaymentView, PaymentEvent, Payment, Proof, ProofView, crate::relay::http::SubmitBody)),
    modifiers(&BearerAuth),
)]
pub struct ApiDoc;

/// This document.
#[utoipa::path(get, path = "/api/openapi.json", tag = "node", responses(
    (status = 200, description = "OpenAPI 3.1 document", content_type = "application/json", body = Object),
))]
pub(crate) async fn document() -> Response {
    (
        [(axum::http::header::CONTENT_TYPE, "application/json")],
        spec_json(),
    )
        .into_response()
}

/// The document as JSON.
pub fn spec_json() -> String {
    ApiDoc::openapi()
        .to_json()
        .expect("the generated document serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_is_documented() {
        let doc: serde_json::Value = serde_json::from_str(&spec_json()).unwrap();
        let paths = doc["paths"].as_object().unwrap();
        for (path, method) in [
            ("/health", "get"),
            ("/metrics", "get"),
            ("/api/payments", "get"),
            ("/api/payments", "post"),
            ("/api/payments/{payment_id}", "get"),
            ("/api/payments/{payment_id}/proof", "get"),
            ("/api/stats/providers", "get"),
            ("/api/webhooks/dead-letters", "get"),
            ("/api/webhooks/dead-letters/{id}/retry", "post"),
            ("/api/observer/dead-letters", "get"),
            ("/ws", "get"),
            ("/api/openapi.json", "get"),
        ] {
            assert!(
                paths.get(path).and_then(|p| p.get(method)).is_some(),
                "{method} {path}"
            );
        }
        let schemas = doc["components"]["schemas"].as_object().unwrap();
        for s in [
            "ErrorBody",
            "Payment",
            "PaymentEvent",
            "Accepted",
            "SubmitBody",
            "PaymentStatus",
        ] {
            assert!(schemas.contains_key(s), "schema {s}");
        }
        assert_eq!(
            doc["components"]["schemas"]["PaymentStatus"]["enum"],
            serde_json::json!([
                "pending",
                "submitted",
                "confirmed",
                "claimed",
                "refunded",
                "failed",
                "dropped"
            ])
        );
        assert!(doc["components"]["securitySchemes"]["api_key"].is_object());
    }
}
