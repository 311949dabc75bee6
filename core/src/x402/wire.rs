//! The x402 v2 facilitator messages: `POST /verify` and `POST /settle`
//! bodies in, their answers and `GET /supported` out.
//!
//! Shapes: coinbase/x402 `specs/x402-specification-v2.md` and what
//! `x402-stacks` 2.0.3 really sends (`dist/verifier-v2.js`). The body is read
//! field by field from JSON, never trusted whole, so a hostile or broken
//! payload gets the x402 code of the field at fault, not a parse error.

use serde::Serialize;
use serde_json::{Map, Value};

use super::reason::{Reason, Refusal};

/// The protocol version this facilitator speaks.
pub const X402_VERSION: u64 = 2;

/// What a resource server requires (`paymentRequirements`), as sent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Requirements {
    pub scheme: String,
    /// CAIP-2: `stacks:1` or `stacks:2147483648`.
    pub network: String,
    /// Base units (uSTX, or the token's smallest unit), a decimal string.
    pub amount: String,
    /// `STX`, `ADDR.contract` or `ADDR.contract::token`.
    pub asset: String,
    pub pay_to: String,
    pub max_timeout_seconds: u64,
    /// Scheme-specific: `nonce`, `expiresAt`, `tokenContract`, `contract`.
    #[serde(skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// A `/verify` or `/settle` request, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub requirements: Requirements,
    /// `paymentPayload.accepted`: the terms the payer signed for, when sent.
    pub accepted: Option<Requirements>,
    /// The signed transaction's hex (`payload.transaction`, or the scheme
    /// write-up's `payload.signedTransaction`).
    pub transaction: String,
}

fn refuse(reason: Reason, message: impl Into<String>) -> Refusal {
    Refusal::new(reason, message)
}

/// Reads a request body. The top-level `x402Version` is optional (the v2
/// spec has none; `x402-stacks` sends it); the payload's is required.
pub fn parse_request(body: &Value) -> Result<Request, Refusal> {
    let Some(obj) = body.as_object() else {
        return Err(refuse(
            Reason::InvalidPayload,
            "the body must be a JSON object {x402Version, paymentPayload, paymentRequirements}",
        ));
    };
    if let Some(v) = obj.get("x402Version") {
        check_version(v, "x402Version")?;
    }
    let payload = obj
        .get("paymentPayload")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            refuse(
                Reason::InvalidPayload,
                "paymentPayload: missing, or not an object",
            )
        })?;
    check_version(
        payload.get("x402Version").unwrap_or(&Value::Null),
        "paymentPayload.x402Version",
    )?;
    let requirements = obj
        .get("paymentRequirements")
        .ok_or_else(|| {
            refuse(
                Reason::InvalidPaymentRequirements,
                "paymentRequirements: missing",
            )
        })
        .and_then(|r| parse_requirements(r, "paymentRequirements"))?;
    let accepted = match payload.get("accepted") {
        None | Some(Value::Null) => None,
        Some(a) => Some(
            parse_requirements(a, "paymentPayload.accepted")
                .map_err(|r| Refusal::new(Reason::InvalidPayload, r.message))?,
        ),
    };
    let inner = payload
        .get("payload")
        .and_then(Value::as_object)
        .ok_or_else(|| {
            refuse(
                Reason::InvalidPayload,
                "paymentPayload.payload: missing, or not an object",
            )
        })?;
    let transaction = ["transaction", "signedTransaction"]
        .iter()
        .find_map(|k| inner.get(*k))
        .and_then(Value::as_str)
        .ok_or_else(|| {
            refuse(
                Reason::InvalidPayload,
                "paymentPayload.payload.transaction: missing, or not a string of the signed \
                 transaction's hex",
            )
        })?
        .to_string();
    Ok(Request {
        requirements,
        accepted,
        transaction,
    })
}

fn check_version(v: &Value, field: &str) -> Result<(), Refusal> {
    if v.as_u64() == Some(X402_VERSION) {
        return Ok(());
    }
    Err(refuse(
        Reason::InvalidX402Version,
        format!("{field} is {v}; this facilitator speaks x402 version {X402_VERSION}"),
    ))
}

fn parse_requirements(v: &Value, at: &str) -> Result<Requirements, Refusal> {
    let bad = |m: String| refuse(Reason::InvalidPaymentRequirements, format!("{at}.{m}"));
    let obj = v.as_object().ok_or_else(|| {
        refuse(
            Reason::InvalidPaymentRequirements,
            format!("{at}: not an object"),
        )
    })?;
    let text = |k: &str| -> Result<String, Refusal> {
        match obj.get(k) {
            Some(Value::String(s)) if !s.is_empty() && s.len() <= 256 => Ok(s.clone()),
            Some(Value::String(_)) => Err(bad(format!("{k}: empty, or over 256 characters"))),
            Some(other) => Err(bad(format!("{k}: a string is needed, got {other}"))),
            None => Err(bad(format!("{k}: missing"))),
        }
    };
    // `amount` is a decimal string in v2; a JSON integer is taken too.
    let amount = match obj.get("amount") {
        Some(Value::Number(n)) if n.is_u64() => n.to_string(),
        _ => text("amount")?,
    };
    let max_timeout_seconds = match obj.get("maxTimeoutSeconds") {
        None | Some(Value::Null) => 300,
        Some(v) => v.as_u64().ok_or_else(|| {
            bad(format!(
                "maxTimeoutSeconds: a whole number of seconds, got {v}"
            ))
        })?,
    };
    let extra = match obj.get("extra") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m.clone(),
        Some(other) => return Err(bad(format!("extra: an object is needed, got {other}"))),
    };
    Ok(Requirements {
        scheme: text("scheme")?,
        network: text("network")?,
        amount,
        asset: text("asset")?,
        pay_to: text("payTo")?,
        max_timeout_seconds,
        extra,
    })
}

/// `POST /verify`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct VerifyResponse {
    pub is_valid: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalid_reason: Option<Reason>,
    /// What is wrong, for people (not in the spec; clients ignore it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub invalid_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
}

impl VerifyResponse {
    pub fn valid(payer: String) -> Self {
        VerifyResponse {
            is_valid: true,
            invalid_reason: None,
            invalid_message: None,
            payer: Some(payer),
        }
    }

    pub fn invalid(r: &Refusal, payer: Option<String>) -> Self {
        VerifyResponse {
            is_valid: false,
            invalid_reason: Some(r.reason),
            invalid_message: Some(r.message.clone()),
            payer,
        }
    }
}

/// `POST /settle`'s answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct SettleResponse {
    pub success: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_reason: Option<Reason>,
    /// What went wrong, for people (not in the spec; clients ignore it).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error_message: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payer: Option<String>,
    /// The txid, `0x` hex; `""` when nothing was broadcast.
    pub transaction: String,
    pub network: String,
    /// Our record of the payment (`GET /api/payments/{id}`), once there is one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub payment_id: Option<String>,
}

impl SettleResponse {
    pub fn failed(r: &Refusal, network: &str, payer: Option<String>, txid: Option<String>) -> Self {
        SettleResponse {
            success: false,
            error_reason: Some(r.reason),
            error_message: Some(r.message.clone()),
            payer,
            transaction: txid.unwrap_or_default(),
            network: network.to_string(),
            payment_id: None,
        }
    }
}

/// One `GET /supported` kind.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "camelCase")]
pub struct Kind {
    pub x402_version: u64,
    pub scheme: &'static str,
    pub network: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub extra: Option<Value>,
}

/// `GET /supported`'s answer: all three keys are required by the spec.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, utoipa::ToSchema)]
pub struct Supported {
    pub kinds: Vec<Kind>,
    #[schema(value_type = Vec<Object>)]
    pub extensions: Vec<Value>,
    #[schema(value_type = Object)]
    pub signers: Map<String, Value>,
}
