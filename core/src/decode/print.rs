//! The escrow contract's print events (documented in `contracts/EVENTS.md`).

use clarity::vm::types::{CharType, SequenceData, TupleData, Value};

use crate::domain::PaymentId;

/// Which payment event the contract printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum PrintKind {
    Created,
    Claimed,
    Refunded,
}

/// `{event: "payment-created" | "payment-claimed" | "payment-refunded", payment-id,
/// sender, recipient, amount, memo, expires-at, token, block-height}`: one
/// fixed shape for all three, STX and token payments alike.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct PaymentPrint {
    pub kind: PrintKind,
    pub payment_id: PaymentId,
    pub sender: String,
    pub recipient: String,
    pub amount: u128,
    pub memo: Vec<u8>,
    pub expires_at: u64,
    pub block_height: u64,
    /// The SIP-010 token contract (`ADDR.contract`) a token payment holds;
    /// `None` for STX (printed `none`, or absent in prints of contracts
    /// from before tokens). `amount` is in the token's base unit then.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// `paused`, `unpaused`, `owner-proposed`, `owner-changed`, `token-allowed`,
/// `token-disallowed`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct AdminPrint {
    pub event: String,
    pub sender: Option<String>,
    pub recipient: Option<String>,
    pub block_height: Option<u64>,
    /// The allowlist events: the token contract.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// A decoded print of the escrow contract.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EscrowPrint {
    Payment(PaymentPrint),
    Admin(AdminPrint),
}

/// Why a print of our contract could not be understood. Always permanent:
/// the same bytes never decode differently, so these go to the dead-letter table.
#[derive(Debug, thiserror::Error)]
pub enum PrintError {
    #[error("raw_value is not a SIP-005 Clarity value")]
    Clarity(#[source] Box<clarity::vm::types::serialization::SerializationError>),
    #[error("print is not a tuple")]
    NotATuple,
    #[error("print tuple lacks field `{0}`")]
    MissingField(&'static str),
    #[error("print field `{field}` is not {expected}")]
    WrongType {
        field: &'static str,
        expected: &'static str,
    },
    #[error("unknown escrow event {0:?}")]
    UnknownEvent(String),
}

impl PrintError {
    /// Decoding the same bytes again can never succeed.
    pub fn is_permanent(&self) -> bool {
        true
    }
}

/// Decode a print event's `raw_value` (`0x` hex of a SIP-005 value).
pub fn decode_print(raw_value: &str) -> Result<EscrowPrint, PrintError> {
    let value = Value::try_deserialize_hex_untyped(raw_value)
        .map_err(|e| PrintError::Clarity(Box::new(e)))?;
    let Value::Tuple(tuple) = value else {
        return Err(PrintError::NotATuple);
    };
    let event = ascii(&tuple, "event")?;
    let kind = match event.as_str() {
        "payment-created" => PrintKind::Created,
        "payment-claimed" => PrintKind::Claimed,
        "payment-refunded" => PrintKind::Refunded,
        "paused" | "unpaused" | "owner-proposed" | "owner-changed" | "token-allowed"
        | "token-disallowed" => {
            return Ok(EscrowPrint::Admin(AdminPrint {
                sender: optional(&tuple, "sender", principal)?,
                recipient: optional(&tuple, "recipient", principal)?,
                block_height: optional(&tuple, "block-height", height)?,
                token: optional(&tuple, "token", principal)?,
                event,
            }))
        }
        _ => return Err(PrintError::UnknownEvent(event)),
    };
    let id = buff(&tuple, "payment-id")?;
    Ok(EscrowPrint::Payment(PaymentPrint {
        kind,
        payment_id: PaymentId::from_slice(&id).ok_or(PrintError::WrongType {
            field: "payment-id",
            expected: "a 32-byte buffer",
        })?,
        sender: principal(&tuple, "sender")?,
        recipient: principal(&tuple, "recipient")?,
        amount: uint(&tuple, "amount")?,
        memo: buff(&tuple, "memo")?,
        expires_at: height(&tuple, "expires-at")?,
        block_height: height(&tuple, "block-height")?,
        token: optional(&tuple, "token", optional_principal)?.flatten(),
    }))
}

fn field<'a>(t: &'a TupleData, name: &'static str) -> Result<&'a Value, PrintError> {
    t.data_map
        .iter()
        .find(|(k, _)| k.as_str() == name)
        .map(|(_, v)| v)
        .ok_or(PrintError::MissingField(name))
}

fn optional<T>(
    t: &TupleData,
    name: &'static str,
    read: fn(&TupleData, &'static str) -> Result<T, PrintError>,
) -> Result<Option<T>, PrintError> {
    match read(t, name) {
        Ok(v) => Ok(Some(v)),
        Err(PrintError::MissingField(_)) => Ok(None),
        Err(e) => Err(e),
    }
}

fn ascii(t: &TupleData, name: &'static str) -> Result<String, PrintError> {
    match field(t, name)? {
        Value::Sequence(SequenceData::String(CharType::ASCII(s))) => {
            Ok(String::from_utf8_lossy(&s.data).into_owned())
        }
        _ => Err(PrintError::WrongType {
            field: name,
            expected: "an ASCII string",
        }),
    }
}

fn buff(t: &TupleData, name: &'static str) -> Result<Vec<u8>, PrintError> {
    match field(t, name)? {
        Value::Sequence(SequenceData::Buffer(b)) => Ok(b.data.clone()),
        _ => Err(PrintError::WrongType {
            field: name,
            expected: "a buffer",
        }),
    }
}

fn principal(t: &TupleData, name: &'static str) -> Result<String, PrintError> {
    match field(t, name)? {
        Value::Principal(p) => Ok(p.to_string()),
        _ => Err(PrintError::WrongType {
            field: name,
            expected: "a principal",
        }),
    }
}

/// An `(optional principal)` field.
fn optional_principal(t: &TupleData, name: &'static str) -> Result<Option<String>, PrintError> {
    match field(t, name)? {
        Value::Optional(o) => match o.data.as_deref() {
            None => Ok(None),
            Some(Value::Principal(p)) => Ok(Some(p.to_string())),
            Some(_) => Err(PrintError::WrongType {
                field: name,
                expected: "an optional principal",
            }),
        },
        _ => Err(PrintError::WrongType {
            field: name,
            expected: "an optional principal",
        }),
    }
}

fn uint(t: &TupleData, name: &'static str) -> Result<u128, PrintError> {
    match field(t, name)? {
        Value::UInt(u) => Ok(*u),
        _ => Err(PrintError::WrongType {
            field: name,
            expected: "a uint",
        }),
    }
}

fn height(t: &TupleData, name: &'static str) -> Result<u64, PrintError> {
    u64::try_from(uint(t, name)?).map_err(|_| PrintError::WrongType {
        field: name,
        expected: "a block height",
    })
}
