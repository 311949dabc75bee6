//! `GET /api/openapi.json`: the OpenAPI 3.1 document of the whole HTTP API,
//! generated from the handlers' `#[utoipa::path]` annotations and the
//! types' `ToSchema` derives, so it cannot drift from the code.

use axum::response::{IntoResponse, Response};
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::{Modify, OpenApi};

use nexus_core::domain::{Payment, PaymentEvent, Proof, ProofView};
use nexus_core::x402::{SettleResponse, VerifyResponse};

use super::schema::{
    Accepted, ErrorBody, ErrorDetail, Links, PaymentDetail, PaymentList, PaymentView, ProofResponse,
};

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
        description = "Payment-reliability node for x402 payments on Stacks: payments, proofs, relay, webhooks, and the x402 v2 facilitator (`/x402`). Every error body is `{\"error\": {type, code, message, field?, retry_after_seconds?}}`; every response carries `X-Request-Id`.",
    ),
    paths(
        crate::http::api::health,
        crate::http::api::metrics,
        crate::http::api::list_payments,
        crate::http::api::get_payment,
        crate::http::api::observer_dead_letters,
        crate::http::api::get_proof,
        crate::http::relay::submit,
        crate::http::relay::provider_stats,
        crate::http::ws::handler,
        crate::http::webhooks::list,
        crate::http::webhooks::retry,
        crate::http::x402::supported,
        crate::http::x402::verify,
        crate::http::x402::settle,
        document,
    ),
    components(schemas(ErrorBody, ErrorDetail, PaymentDetail, PaymentList, ProofResponse, Accepted, Links, PaymentView, PaymentEvent, Payment, Proof, ProofView, crate::http::relay::SubmitBody, nexus_core::x402::Supported, nexus_core::x402::wire::Kind, VerifyResponse, SettleResponse, nexus_core::x402::Reason)),
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
            ("/x402/supported", "get"),
            ("/x402/verify", "post"),
            ("/x402/settle", "post"),
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
            "VerifyResponse",
            "SettleResponse",
            "Reason",
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
