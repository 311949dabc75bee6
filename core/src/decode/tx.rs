//! Escrow contract-calls inside raw transactions (`transactions[].raw_tx`,
//! `/new_mempool_tx` entries), decoded with `stacks-codec`.

use clarity::vm::types::{PrincipalData, SequenceData, Value};
use stacks_codec::codec::{
    StacksMessageCodec, StacksTransaction, TransactionPayload, TransactionVersion,
};

use super::ContractId;
use crate::domain::PaymentId;

/// The escrow's public functions that move a payment: STX, and their `-ft`
/// twins that take the SIP-010 token as their last argument.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum EscrowFunction {
    CreatePayment,
    ClaimPayment,
    RefundExpired,
    CreatePaymentFt,
    ClaimPaymentFt,
    RefundExpiredFt,
}

impl EscrowFunction {
    /// Every payment function.
    pub const ALL: [EscrowFunction; 6] = [
        Self::CreatePayment,
        Self::ClaimPayment,
        Self::RefundExpired,
        Self::CreatePaymentFt,
        Self::ClaimPaymentFt,
        Self::RefundExpiredFt,
    ];

    /// The Clarity function name.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::CreatePayment => "create-payment",
            Self::ClaimPayment => "claim-payment",
            Self::RefundExpired => "refund-expired",
            Self::CreatePaymentFt => "create-payment-ft",
            Self::ClaimPaymentFt => "claim-payment-ft",
            Self::RefundExpiredFt => "refund-expired-ft",
        }
    }

    /// The function by its Clarity name.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == name)
    }

    /// It locks funds (STX or a token): a new payment.
    pub fn creates(self) -> bool {
        matches!(self, Self::CreatePayment | Self::CreatePaymentFt)
    }

    /// It moves a SIP-010 token (its last argument), not STX.
    pub fn is_ft(self) -> bool {
        matches!(
            self,
            Self::CreatePaymentFt | Self::ClaimPaymentFt | Self::RefundExpiredFt
        )
    }
}

/// A call to one of the escrow's payment functions, with typed arguments.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct EscrowCall {
    pub txid: String,
    pub function: EscrowFunction,
    /// The transaction's origin (the `tx-sender`).
    pub sender: String,
    pub payment_id: PaymentId,
    /// Creates only.
    pub recipient: Option<String>,
    pub amount: Option<u128>,
    pub memo: Option<Vec<u8>>,
    /// The `-ft` functions: the token contract (`ADDR.contract`) named.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    pub nonce: u64,
    pub fee: u64,
    pub chain_id: u32,
}

/// Why a transaction could not be read as an escrow call.
#[derive(Debug, thiserror::Error)]
pub enum TxDecodeError {
    #[error("transaction hex is not valid hex")]
    Hex(#[source] hex::FromHexError),
    #[error("bytes are not a Stacks transaction: {0}")]
    Codec(String),
    #[error("{function} argument {index} is not {expected}")]
    BadArgument {
        function: &'static str,
        index: usize,
        expected: &'static str,
    },
    #[error("{function} takes {expected} arguments, got {got}")]
    ArgCount {
        function: &'static str,
        expected: usize,
        got: usize,
    },
}

/// Parse `0x` transaction hex into a transaction.
pub fn decode_tx_hex(hex_str: &str) -> Result<StacksTransaction, TxDecodeError> {
    let bytes =
        hex::decode(hex_str.strip_prefix("0x").unwrap_or(hex_str)).map_err(TxDecodeError::Hex)?;
    let mut cursor = bytes.as_slice();
    let tx = StacksTransaction::consensus_deserialize(&mut cursor)
        .map_err(|e| TxDecodeError::Codec(e.to_string()))?;
    Ok(tx)
}

/// The signer (origin) as an address of the transaction's network.
pub fn origin_address(tx: &StacksTransaction) -> String {
    let origin = tx.auth.origin();
    match tx.version {
        TransactionVersion::Mainnet => origin.address_mainnet(),
        TransactionVersion::Testnet => origin.address_testnet(),
    }
    .to_string()
}

/// `0x` txid of a decoded transaction.
pub fn txid_of(tx: &StacksTransaction) -> String {
    format!("0x{}", hex::encode(tx.txid().as_bytes()))
}

/// `Ok(None)` when the transaction is not a payment call to `contract`;
/// an error when it is one but its arguments have the wrong types.
pub fn decode_escrow_call(
    tx: &StacksTransaction,
    contract: &ContractId,
) -> Result<Option<EscrowCall>, TxDecodeError> {
    let TransactionPayload::ContractCall(call) = &tx.payload else {
        return Ok(None);
    };
    if call.contract_name.as_str() != contract.name || call.address.to_string() != contract.address
    {
        return Ok(None);
    }
    let Some(function) = EscrowFunction::parse(call.function_name.as_str()) else {
        return Ok(None);
    };
    let args = &call.function_args;
    let expected = match function {
        EscrowFunction::CreatePayment => 4,
        EscrowFunction::CreatePaymentFt => 5,
        EscrowFunction::ClaimPayment | EscrowFunction::RefundExpired => 1,
        EscrowFunction::ClaimPaymentFt | EscrowFunction::RefundExpiredFt => 2,
    };
    if args.len() != expected {
        return Err(TxDecodeError::ArgCount {
            function: function.as_str(),
            expected,
            got: args.len(),
        });
    }
    let bad = |index, expected| TxDecodeError::BadArgument {
        function: function.as_str(),
        index,
        expected,
    };
    let payment_id = match &args[0] {
        Value::Sequence(SequenceData::Buffer(b)) => PaymentId::from_slice(&b.data),
        _ => None,
    }
    .ok_or_else(|| bad(0, "a 32-byte buffer"))?;
    let origin = tx.auth.origin();
    let sender = origin_address(tx);
    let mut out = EscrowCall {
        txid: txid_of(tx),
        function,
        sender,
        payment_id,
        recipient: None,
        amount: None,
        memo: None,
        token: None,
        nonce: origin.nonce(),
        fee: tx.get_tx_fee(),
        chain_id: tx.chain_id,
    };
    if function.is_ft() {
        // A trait argument travels as the contract's principal.
        let last = expected - 1;
        out.token = match &args[last] {
            Value::Principal(p @ PrincipalData::Contract(_)) => Some(p.to_string()),
            _ => return Err(bad(last, "a contract principal (the SIP-010 token)")),
        };
    }
    if function.creates() {
        out.recipient = match &args[1] {
            Value::Principal(p) => Some(p.to_string()),
            _ => return Err(bad(1, "a principal")),
        };
        out.amount = match &args[2] {
            Value::UInt(u) => Some(*u),
            _ => return Err(bad(2, "a uint")),
        };
        out.memo = match &args[3] {
            Value::Sequence(SequenceData::Buffer(b)) if b.data.len() <= 34 => Some(b.data.clone()),
            _ => return Err(bad(3, "a buffer of at most 34 bytes")),
        };
    }
    Ok(Some(out))
}
