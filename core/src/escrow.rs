//! The escrow's own record of a payment, as `get-payment` returns it. Pure.
//!
//! `(define-read-only (get-payment (payment-id (buff 32))) (map-get? payments payment-id))`
//! returns `(optional {sender: principal, recipient: principal, amount: uint,
//! memo: (buff 34), created-at: uint, expires-at: uint, status: (string-ascii 8),
//! token: (optional principal)})` (`contracts/x402-nexus-escrow.clar`);
//! `status` is `"pending"`, `"claimed"` or `"refunded"`; `token` is `none`
//! for STX.

use clarity::vm::types::{BuffData, CharType, PrincipalData, SequenceData, TupleData, Value};
use clarity::vm::ClarityName;
use serde::{Deserialize, Serialize};

use crate::domain::PaymentId;

/// The escrow's status string.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ChainStatus {
    /// Funds locked (our `confirmed`).
    Pending,
    Claimed,
    Refunded,
}

impl ChainStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ChainStatus::Pending => "pending",
            ChainStatus::Claimed => "claimed",
            ChainStatus::Refunded => "refunded",
        }
    }
}

/// One entry of the escrow's `payments` map.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChainPayment {
    pub sender: String,
    pub recipient: String,
    pub amount: u128,
    pub memo: Vec<u8>,
    /// Stacks block height of the create-payment.
    pub created_at: u64,
    pub expires_at: u64,
    pub status: ChainStatus,
    /// The SIP-010 token contract (`ADDR.contract`) of a token payment;
    /// `None` for STX.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// What `get-payment` said at one tip: the contract's word, or no entry.
pub type OnChain = Option<ChainPayment>;

/// A `get-payment` answer that is not the escrow's record shape (wrong
/// contract, changed contract): permanent.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ChainError {
    #[error("get-payment did not return an optional")]
    NotOptional,
    #[error("get-payment's record is not a tuple")]
    NotATuple,
    #[error("get-payment's record lacks `{0}`")]
    Missing(&'static str),
    #[error("get-payment's `{0}` has the wrong type")]
    WrongType(&'static str),
    #[error("unknown escrow status {0:?}")]
    UnknownStatus(String),
}

/// The argument of `get-payment`.
pub fn payment_id_arg(id: &PaymentId) -> Value {
    Value::buff_from(id.0.to_vec()).expect("32 bytes fit a buffer")
}

/// Decode `get-payment`'s result.
pub fn decode_get_payment(v: &Value) -> Result<OnChain, ChainError> {
    let Value::Optional(opt) = v else {
        return Err(ChainError::NotOptional);
    };
    let Some(inner) = &opt.data else {
        return Ok(None);
    };
    let Value::Tuple(t) = inner.as_ref() else {
        return Err(ChainError::NotATuple);
    };
    let status = match ascii(t, "status")?.as_str() {
        "pending" => ChainStatus::Pending,
        "claimed" => ChainStatus::Claimed,
        "refunded" => ChainStatus::Refunded,
        other => return Err(ChainError::UnknownStatus(other.to_string())),
    };
    Ok(Some(ChainPayment {
        sender: principal(t, "sender")?,
        recipient: principal(t, "recipient")?,
        amount: uint(t, "amount")?,
        memo: buff(t, "memo")?,
        created_at: height(t, "created-at")?,
        expires_at: height(t, "expires-at")?,
        status,
        // Absent in records of the contract from before tokens.
        token: match t.get("token") {
            Err(_) => None,
            Ok(Value::Optional(o)) => match o.data.as_deref() {
                None => None,
                Some(Value::Principal(p)) => Some(p.to_string()),
                Some(_) => return Err(ChainError::WrongType("token")),
            },
            Ok(_) => return Err(ChainError::WrongType("token")),
        },
    }))
}

/// The Clarity value `get-payment` returns for `p` (the RPC test double and
/// the tests build answers with it, through the real codec).
pub fn encode_get_payment(p: Option<&ChainPayment>) -> Value {
    let Some(p) = p else { return Value::none() };
    let field = |name: &str, v: Value| (ClarityName::try_from(name.to_string()).expect("name"), v);
    let principal = |s: &str| {
        Value::Principal(PrincipalData::parse(s).unwrap_or_else(|e| panic!("principal {s}: {e}")))
    };
    let tuple = TupleData::from_data(vec![
        field("sender", principal(&p.sender)),
        field("recipient", principal(&p.recipient)),
        field("amount", Value::UInt(p.amount)),
        field("memo", Value::buff_from(p.memo.clone()).expect("memo")),
        field("created-at", Value::UInt(p.created_at.into())),
        field("expires-at", Value::UInt(p.expires_at.into())),
        field(
            "status",
            Value::string_ascii_from_bytes(p.status.as_str().as_bytes().to_vec()).expect("ascii"),
        ),
        field(
            "token",
            match &p.token {
                Some(t) => Value::some(principal(t)).expect("an optional"),
                None => Value::none(),
            },
        ),
    ])
    .expect("a well-formed tuple");
    Value::some(Value::Tuple(tuple)).expect("an optional")
}

fn get<'a>(t: &'a TupleData, name: &'static str) -> Result<&'a Value, ChainError> {
    t.get(name).map_err(|_| ChainError::Missing(name))
}

fn ascii(t: &TupleData, name: &'static str) -> Result<String, ChainError> {
    match get(t, name)? {
        Value::Sequence(SequenceData::String(CharType::ASCII(a))) => {
            Ok(String::from_utf8_lossy(&a.data).into_owned())
        }
        _ => Err(ChainError::WrongType(name)),
    }
}

fn principal(t: &TupleData, name: &'static str) -> Result<String, ChainError> {
    match get(t, name)? {
        Value::Principal(p) => Ok(p.to_string()),
        _ => Err(ChainError::WrongType(name)),
    }
}

fn uint(t: &TupleData, name: &'static str) -> Result<u128, ChainError> {
    match get(t, name)? {
        Value::UInt(u) => Ok(*u),
        _ => Err(ChainError::WrongType(name)),
    }
}

fn height(t: &TupleData, name: &'static str) -> Result<u64, ChainError> {
    u64::try_from(uint(t, name)?).map_err(|_| ChainError::WrongType(name))
}

fn buff(t: &TupleData, name: &'static str) -> Result<Vec<u8>, ChainError> {
    match get(t, name)? {
        Value::Sequence(SequenceData::Buffer(BuffData { data })) => Ok(data.clone()),
        _ => Err(ChainError::WrongType(name)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    pub(crate) fn sample(status: ChainStatus) -> ChainPayment {
        ChainPayment {
            sender: "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM".into(),
            recipient: "ST2CY5V39NHDPWSXMW9QDT3HC3GD6Q6XX4CFRK9AG".into(),
            amount: 1_000_000,
            memo: vec![1, 2, 3],
            created_at: 10,
            expires_at: 110,
            status,
            token: None,
        }
    }

    #[test]
    fn round_trips_through_the_wire_format() {
        for st in [
            ChainStatus::Pending,
            ChainStatus::Claimed,
            ChainStatus::Refunded,
        ] {
            let p = sample(st);
            let token = ChainPayment {
                token: Some("ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM.test-sbtc".into()),
                ..sample(st)
            };
            for p in [p, token] {
                let hex = encode_get_payment(Some(&p)).serialize_to_hex().unwrap();
                let v = Value::try_deserialize_hex_untyped(&hex).unwrap();
                assert_eq!(decode_get_payment(&v).unwrap(), Some(p));
            }
        }
        let none = Value::try_deserialize_hex_untyped("0x09").unwrap();
        assert_eq!(decode_get_payment(&none).unwrap(), None);
    }

    #[test]
    fn other_shapes_are_refused() {
        assert_eq!(
            decode_get_payment(&Value::UInt(1)),
            Err(ChainError::NotOptional)
        );
        assert_eq!(
            decode_get_payment(&Value::some(Value::UInt(1)).unwrap()),
            Err(ChainError::NotATuple)
        );
        let mut bad = sample(ChainStatus::Pending);
        bad.status = ChainStatus::Pending;
        let v = encode_get_payment(Some(&bad));
        // Swap the status string for an unknown one.
        let hex = v.serialize_to_hex().unwrap();
        let pending = hex::encode("pending");
        let weird = hex::encode("pendinx");
        let v = Value::try_deserialize_hex_untyped(&hex.replace(&pending, &weird)).unwrap();
        assert_eq!(
            decode_get_payment(&v),
            Err(ChainError::UnknownStatus("pendinx".into()))
        );
    }
}
