//! The WebSocket protocol: JSON-RPC 2.0 shaped like stacks-blockchain-api's
//! `/extended/v1/ws` (`subscribe` / `unsubscribe` with an `event` param, one
//! notification per event whose `method` is the event type). Pure: text in,
//! typed request or a ready-to-send error out.

use serde::Deserialize;
use serde_json::{json, Value};

use nexus_core::domain::{PaymentEvent, PaymentId};

use super::filter::{valid_asset, valid_principal, Filter};

/// JSON-RPC 2.0 error codes (the reserved ones, plus ours from -32000 down).
pub mod code {
    pub const PARSE_ERROR: i64 = -32700;
    pub const INVALID_REQUEST: i64 = -32600;
    pub const METHOD_NOT_FOUND: i64 = -32601;
    pub const INVALID_PARAMS: i64 = -32602;
    pub const INTERNAL: i64 = -32603;
    /// The connection already holds `ws_max_subscriptions` subscriptions.
    pub const TOO_MANY_SUBSCRIPTIONS: i64 = -32001;
    /// `unsubscribe` of something not subscribed.
    pub const NOT_SUBSCRIBED: i64 = -32002;
}

/// A parsed request.
#[derive(Debug, Clone, PartialEq)]
pub struct Request {
    /// Echoed in the answer (`null` when the request had none).
    pub id: Value,
    pub method: Method,
}

#[derive(Debug, Clone, PartialEq)]
pub enum Method {
    Subscribe {
        filter: Filter,
        /// Replay every matching event after this `seq` first.
        since_seq: Option<u64>,
    },
    Unsubscribe {
        filter: Filter,
    },
}

/// A request we answer with a JSON-RPC error.
#[derive(Debug, Clone, PartialEq)]
pub struct RpcError {
    pub id: Value,
    pub code: i64,
    pub message: String,
}

impl RpcError {
    pub fn new(id: Value, code: i64, message: impl Into<String>) -> Self {
        RpcError {
            id,
            code,
            message: message.into(),
        }
    }

    /// The error response text.
    pub fn to_text(&self) -> String {
        json!({
            "jsonrpc": "2.0",
            "id": self.id,
            "error": {"code": self.code, "message": self.message},
        })
        .to_string()
    }
}

/// A success response text.
pub fn result_text(id: &Value, result: Value) -> String {
    json!({"jsonrpc": "2.0", "id": id, "result": result}).to_string()
}

/// The notification for one event: `method` is its type, `params` the event record.
pub fn notification_text(event: &PaymentEvent) -> String {
    #[derive(serde::Serialize)]
    struct Note<'a> {
        jsonrpc: &'static str,
        method: &'static str,
        params: &'a PaymentEvent,
    }
    serde_json::to_string(&Note {
        jsonrpc: "2.0",
        method: event.event_type.as_str(),
        params: event,
    })
    .expect("an event always serializes")
}

#[derive(Deserialize)]
struct RawRequest {
    jsonrpc: Option<String>,
    #[serde(default)]
    id: Value,
    method: Option<String>,
    #[serde(default)]
    params: Value,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawParams {
    event: String,
    payment_id: Option<String>,
    principal: Option<String>,
    asset: Option<String>,
    since_seq: Option<u64>,
}

/// Parse one text frame.
pub fn parse_request(text: &str) -> Result<Request, RpcError> {
    let value: Value = serde_json::from_str(text)
        .map_err(|e| RpcError::new(Value::Null, code::PARSE_ERROR, format!("parse error: {e}")))?;
    if value.is_array() {
        return Err(RpcError::new(
            Value::Null,
            code::INVALID_REQUEST,
            "batch requests are not supported",
        ));
    }
    let raw: RawRequest = serde_json::from_value(value).map_err(|e| {
        RpcError::new(
            Value::Null,
            code::INVALID_REQUEST,
            format!("invalid request: {e}"),
        )
    })?;
    let id = raw.id;
    if !(id.is_null() || id.is_string() || id.is_number()) {
        return Err(RpcError::new(
            Value::Null,
            code::INVALID_REQUEST,
            "id must be a string, a number or null",
        ));
    }
    if raw.jsonrpc.as_deref() != Some("2.0") {
        return Err(RpcError::new(
            id,
            code::INVALID_REQUEST,
            "jsonrpc must be \"2.0\"",
        ));
    }
    let Some(method) = raw.method else {
        return Err(RpcError::new(id, code::INVALID_REQUEST, "missing method"));
    };
    let is_sub = match method.as_str() {
        "subscribe" => true,
        "unsubscribe" => false,
        other => {
            return Err(RpcError::new(
                id,
                code::METHOD_NOT_FOUND,
                format!("unknown method {:?}", truncate(other)),
            ))
        }
    };
    let params: RawParams = serde_json::from_value(raw.params).map_err(|e| {
        RpcError::new(
            id.clone(),
            code::INVALID_PARAMS,
            format!("invalid params: {e}"),
        )
    })?;
    let bad = |m: String| RpcError::new(id.clone(), code::INVALID_PARAMS, m);
    let filter = match params.event.as_str() {
        "payment" => {
            if params.principal.is_some() {
                return Err(bad(
                    "event \"payment\" takes payment_id, not principal".into()
                ));
            }
            let pid = params
                .payment_id
                .ok_or_else(|| bad("event \"payment\" needs payment_id".into()))?;
            Filter::Payment(
                pid.parse::<PaymentId>()
                    .map_err(|e| bad(format!("invalid payment_id: {e}")))?,
            )
        }
        "principal" => {
            if params.payment_id.is_some() {
                return Err(bad(
                    "event \"principal\" takes principal, not payment_id".into()
                ));
            }
            let p = params
                .principal
                .ok_or_else(|| bad("event \"principal\" needs principal".into()))?;
            if !valid_principal(&p) {
                return Err(bad(format!("invalid principal {:?}", truncate(&p))));
            }
            Filter::Principal(p)
        }
        "asset" => {
            if params.payment_id.is_some() || params.principal.is_some() {
                return Err(bad(
                    "event \"asset\" takes asset, not payment_id or principal".into(),
                ));
            }
            let a = params
                .asset
                .ok_or_else(|| bad("event \"asset\" needs asset (STX or ADDR.contract)".into()))?;
            if !valid_asset(&a) {
                return Err(bad(format!(
                    "invalid asset {:?}: STX, a token contract (ADDR.contract) or an asset \
                     identifier (ADDR.contract::name)",
                    truncate(&a)
                )));
            }
            Filter::asset(&a)
        }
        "all" => {
            if params.payment_id.is_some() || params.principal.is_some() {
                return Err(bad("event \"all\" takes no payment_id or principal".into()));
            }
            Filter::All
        }
        other => {
            return Err(bad(format!(
                "unknown event {:?} (expected \"payment\", \"principal\", \"asset\" or \"all\")",
                truncate(other)
            )))
        }
    };
    let method = if is_sub {
        Method::Subscribe {
            filter,
            since_seq: params.since_seq,
        }
    } else {
        Method::Unsubscribe { filter }
    };
    Ok(Request { id, method })
}

/// Echo at most 80 characters of client input in an error.
fn truncate(s: &str) -> String {
    s.chars().take(80).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "0x0101010101010101010101010101010101010101010101010101010101010101";
    const SP: &str = "SP2J6ZY48GV1EZ5V2V5RB9MP66SW86PYKKNRV9EJ7";

    fn err(text: &str) -> (i64, Value) {
        let e = parse_request(text).expect_err("an error");
        (e.code, e.id)
    }

    #[test]
    fn parses_an_asset_subscription_and_refuses_a_bad_asset() {
        let token = "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM.test-sbtc";
        let r = parse_request(&format!(
            r#"{{"jsonrpc":"2.0","id":3,"method":"subscribe","params":{{"event":"asset","asset":"{token}::test-sbtc"}}}}"#
        ))
        .unwrap();
        assert_eq!(
            r.method,
            Method::Subscribe {
                filter: Filter::Asset(token.into()),
                since_seq: None
            }
        );
        for params in [
            r#"{"event":"asset"}"#,
            r#"{"event":"asset","asset":"not a token"}"#,
            r#"{"event":"asset","asset":"STX","principal":"SP2J6ZY48GV1EZ5V2V5RB9MP66SW86PYKKNRV9EJ7"}"#,
        ] {
            let (code, id) = err(&format!(
                r#"{{"jsonrpc":"2.0","id":4,"method":"subscribe","params":{params}}}"#
            ));
            assert_eq!((code, id), (code::INVALID_PARAMS, json!(4)), "{params}");
        }
    }

    #[test]
    fn parses_each_subscription() {
        let r = parse_request(&format!(
            r#"{{"jsonrpc":"2.0","id":1,"method":"subscribe","params":{{"event":"payment","payment_id":"{ID}"}}}}"#
        ))
        .unwrap();
        assert_eq!(r.id, json!(1));
        assert_eq!(
            r.method,
            Method::Subscribe {
                filter: Filter::Payment(ID.parse().unwrap()),
                since_seq: None
            }
        );
        let r = parse_request(&format!(
            r#"{{"jsonrpc":"2.0","id":"a","method":"subscribe","params":{{"event":"principal","principal":"{SP}","since_seq":7}}}}"#
        ))
        .unwrap();
        assert_eq!(
            r.method,
            Method::Subscribe {
                filter: Filter::Principal(SP.into()),
                since_seq: Some(7)
            }
        );
        let r = parse_request(
            r#"{"jsonrpc":"2.0","id":2,"method":"unsubscribe","params":{"event":"all"}}"#,
        )
        .unwrap();
        assert_eq!(
            r.method,
            Method::Unsubscribe {
                filter: Filter::All
            }
        );
    }

    #[test]
    fn bad_requests_get_the_right_code() {
        assert_eq!(err("{not json").0, code::PARSE_ERROR);
        assert_eq!(err("[]").0, code::INVALID_REQUEST);
        assert_eq!(
            err(r#"{"id":1,"method":"subscribe"}"#),
            (code::INVALID_REQUEST, json!(1))
        );
        assert_eq!(
            err(r#"{"jsonrpc":"2.0","id":{"x":1},"method":"subscribe"}"#).0,
            code::INVALID_REQUEST
        );
        assert_eq!(
            err(r#"{"jsonrpc":"2.0","id":3,"method":"frobnicate","params":{"event":"all"}}"#),
            (code::METHOD_NOT_FOUND, json!(3))
        );
        for params in [
            r#"{}"#,
            r#"{"event":"blocks"}"#,
            r#"{"event":"payment"}"#,
            r#"{"event":"payment","payment_id":"0x12"}"#,
            r#"{"event":"principal","principal":"SP000"}"#,
            r#"{"event":"all","since_seq":-1}"#,
            r#"{"event":"all","extra":1}"#,
            r#"{"event":"all","principal":"SP2J6ZY48GV1EZ5V2V5RB9MP66SW86PYKKNRV9EJ7"}"#,
        ] {
            let text =
                format!(r#"{{"jsonrpc":"2.0","id":4,"method":"subscribe","params":{params}}}"#);
            assert_eq!(err(&text), (code::INVALID_PARAMS, json!(4)), "{params}");
        }
    }

    #[test]
    fn notification_carries_the_event_record() {
        let e = super::super::filter::tests_support::event(9);
        let v: Value = serde_json::from_str(&notification_text(&e)).unwrap();
        assert_eq!(v["jsonrpc"], "2.0");
        assert_eq!(v["method"], "payment:confirmed");
        assert_eq!(v["params"]["seq"], 9);
        assert_eq!(v["params"]["type"], "payment:confirmed");
        assert_eq!(v["params"]["status"], "confirmed");
        assert_eq!(v["params"]["block_height"], 5);
        assert!(v.get("id").is_none(), "a notification has no id");
    }
}
