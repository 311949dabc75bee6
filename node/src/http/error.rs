//! The one error body every handler answers with:
//! `{"error": {type, code, message, field?, retry_after_seconds?}}`.

use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde_json::json;

use nexus_core::error_chain;
use nexus_store::StoreError;

/// The error body every endpoint uses.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    temporary: bool,
    code: &'static str,
    message: String,
    field: Option<&'static str>,
    /// For 429 and temporary errors: sent as `Retry-After` and `retry_after_seconds`.
    retry_after: Option<u64>,
}

impl ApiError {
    /// Any error body; see the helpers below for the common ones.
    pub(crate) fn new(
        status: StatusCode,
        temporary: bool,
        code: &'static str,
        message: String,
        field: Option<&'static str>,
    ) -> Self {
        ApiError {
            status,
            temporary,
            code,
            message,
            field,
            retry_after: None,
        }
    }

    /// Ask the client to come back in `secs` seconds.
    pub(crate) fn retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    pub(crate) fn not_found(message: String) -> Self {
        ApiError::new(StatusCode::NOT_FOUND, false, "not_found", message, None)
    }

    pub(crate) fn bad_request(field: &'static str, message: String) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            temporary: false,
            code: "validation_error",
            message,
            field: Some(field),
            retry_after: None,
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        ApiError {
            status: if e.is_temporary() {
                StatusCode::SERVICE_UNAVAILABLE
            } else {
                StatusCode::INTERNAL_SERVER_ERROR
            },
            temporary: e.is_temporary(),
            code: "storage_error",
            message: error_chain(&e),
            field: None,
            retry_after: e.is_temporary().then_some(1),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut err = json!({
            "type": if self.temporary { "temporary" } else { "permanent" },
            "code": self.code,
            "message": self.message,
        });
        if let Some(f) = self.field {
            err["field"] = json!(f);
        }
        if let Some(secs) = self.retry_after {
            err["retry_after_seconds"] = json!(secs);
        }
        let mut resp = (self.status, Json(json!({ "error": err }))).into_response();
        if let Some(secs) = self.retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, header::HeaderValue::from(secs));
        }
        resp
    }
}
