//! Is this client-signed transaction a well-formed call to our escrow? Pure:
//! bytes in, a typed [`EscrowCall`] or a [`ValidationError`] out, no I/O.
//!
//! The relay runs this before it stores or broadcasts anything, so a client
//! learns at once, with a message saying what to change, about every mistake
//! that would otherwise cost a fee on chain or never be mined. What needs
//! chain state (does the payment exist, is the contract paused, is the nonce
//! next, can the account pay) is left to the node and the contract.
//!
//! Checks, in order (the first failure is reported):
//!
//! | field | rule |
//! | --- | --- |
//! | `tx` | exactly one transaction, canonically encoded ([SIP-005]) |
//! | `version`, `chain_id` | the policy's network |
//! | `signature` | origin (and sponsor) signatures verify |
//! | `anchor_mode` | not `OffChainOnly` (microblocks are gone since epoch 2.5) |
//! | `payload`, `contract`, `function` | a contract-call to the policy contract's create-payment, claim-payment or refund-expired |
//! | `args` | count and Clarity types of the contract's signature |
//! | `amount`, `recipient` | what the contract would refuse (ERR-ZERO-AMOUNT, ERR-SELF-PAYMENT) or a recipient who could never claim |
//! | `post_condition_mode`, `post_conditions` | see [`postcond`] |
//!
//! Sponsored transactions are accepted once the sponsor has signed too (the
//! relay never sponsors): the sender is the origin, which is the `tx-sender`
//! the contract sees, and the fee is the sponsor's.
//!
//! [SIP-005]: https://github.com/stacksgov/sips/blob/main/sips/sip-005/sip-005-blocks-and-transactions.md

use crate::decode::{decode_escrow_call, ContractId, EscrowCall, EscrowFunction};
use clarity::vm::types::{PrincipalData, SequenceData, TypeSignature, Value};
use stacks_codec::codec::{
    StacksMessageCodec, StacksTransaction, TransactionAnchorMode, TransactionAuth,
    TransactionPayload, TransactionVersion,
};

mod postcond;
#[cfg(test)]
mod tests;

/// Chain id of testnet and devnet.
pub const TESTNET_CHAIN_ID: u32 = 0x8000_0000;
/// Chain id of mainnet.
pub const MAINNET_CHAIN_ID: u32 = 0x0000_0001;

/// What the relay accepts: calls to one contract on one chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RelayPolicy {
    /// The escrow contract every relayed call must target.
    pub contract: ContractId,
    /// The chain id every relayed transaction must carry.
    pub chain_id: u32,
    /// Whether transactions must be mainnet-versioned (else testnet).
    pub mainnet: bool,
}

impl RelayPolicy {
    /// A policy for `contract` on `chain_id`; the network (mainnet or testnet)
    /// follows the contract's address, `SP`/`SM` being mainnet.
    pub fn new(contract: ContractId, chain_id: u32) -> Self {
        let mainnet = contract.address.starts_with("SP") || contract.address.starts_with("SM");
        Self {
            contract,
            chain_id,
            mainnet,
        }
    }

    fn network(&self) -> &'static str {
        network_name(self.mainnet)
    }
}

/// A transaction that passed every check.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidTx {
    /// The decoded call (txid, function, sender, typed arguments, nonce, fee).
    pub call: EscrowCall,
    /// The exact bytes to store and broadcast (they hash to `call.txid`).
    pub bytes: Vec<u8>,
}

/// Why a transaction is refused: the part of it at fault and what to change.
/// Permanent: the same bytes will always fail the same way.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{field}: {message}")]
pub struct ValidationError {
    /// `tx`, `version`, `chain_id`, `signature`, `anchor_mode`, `payload`,
    /// `contract`, `function`, `args`, `amount`, `recipient`,
    /// `post_condition_mode` or `post_conditions`.
    pub field: &'static str,
    /// What is wrong and how to fix it, for the client.
    pub message: String,
}

impl ValidationError {
    pub(crate) fn new(field: &'static str, message: impl Into<String>) -> Self {
        Self {
            field,
            message: message.into(),
        }
    }
}

/// Parses transaction hex, with or without `0x` (surrounding whitespace is
/// ignored); errors are on field `tx`.
pub fn parse_hex(s: &str) -> Result<Vec<u8>, ValidationError> {
    let s = s.trim();
    let digits = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    if digits.is_empty() {
        return Err(ValidationError::new(
            "tx",
            "empty; send the serialized signed transaction as hex",
        ));
    }
    hex::decode(digits).map_err(|e| {
        ValidationError::new(
            "tx",
            format!("not hex ({e}); send the serialized signed transaction as hex, optionally 0x-prefixed"),
        )
    })
}

/// Checks that `bytes` are one signed, relayable call to the policy's escrow.
pub fn validate(bytes: &[u8], policy: &RelayPolicy) -> Result<ValidTx, ValidationError> {
    let tx = decode_signed(bytes, policy.mainnet, policy.chain_id)?;
    let (function, args) = check_target(&tx, policy)?;
    let call = decode_escrow_call(&tx, &policy.contract)
        .map_err(|e| ValidationError::new("args", e.to_string()))?
        .ok_or_else(|| {
            ValidationError::new("payload", "not a payment call to the escrow contract")
        })?;
    if function.creates() {
        check_create(&call, args, policy)?;
    }
    postcond::check(&tx, &call, &policy.contract)?;
    Ok(ValidTx {
        call,
        bytes: bytes.to_vec(),
    })
}

/// The checks every transaction this node sends must pass, whatever it
/// calls: one canonically encoded transaction of the network (`mainnet`,
/// `chain_id`), origin (and sponsor) signatures valid, not microblock-only.
/// The relay's [`validate`] and the x402 facilitator share them.
pub fn decode_signed(
    bytes: &[u8],
    mainnet: bool,
    chain_id: u32,
) -> Result<StacksTransaction, ValidationError> {
    let tx = decode_exact(bytes)?;
    check_network(&tx, mainnet, chain_id)?;
    check_signatures(&tx)?;
    if tx.anchor_mode == TransactionAnchorMode::OffChainOnly {
        return Err(ValidationError::new(
            "anchor_mode",
            "OffChainOnly transactions can only go into microblocks, which Stacks no longer \
             produces (epoch 2.5 and later): sign it with anchor mode Any (3)",
        ));
    }
    Ok(tx)
}

/// `mainnet` or `testnet`, as clients name the network they build for.
pub fn network_name(mainnet: bool) -> &'static str {
    if mainnet {
        "mainnet"
    } else {
        "testnet"
    }
}

/// One transaction, every byte consumed, encoded exactly as the node would
/// re-encode it (else the node's txid would differ from ours).
fn decode_exact(bytes: &[u8]) -> Result<StacksTransaction, ValidationError> {
    let mut cursor = bytes;
    let tx = StacksTransaction::consensus_deserialize(&mut cursor).map_err(|e| {
        ValidationError::new(
            "tx",
            format!(
                "not a Stacks transaction this node can decode ({e}); send the exact bytes \
                 your wallet signed, serialized"
            ),
        )
    })?;
    if !cursor.is_empty() {
        return Err(ValidationError::new(
            "tx",
            format!(
                "{} trailing byte(s) after the transaction; send exactly one serialized \
                 transaction",
                cursor.len()
            ),
        ));
    }
    let mut again = Vec::with_capacity(bytes.len());
    tx.consensus_serialize(&mut again)
        .map_err(|e| ValidationError::new("tx", format!("cannot be re-encoded ({e})")))?;
    if again != bytes {
        return Err(ValidationError::new(
            "tx",
            "not canonically encoded (the version byte must be 0x00 or 0x80); re-serialize it \
             with your Stacks library",
        ));
    }
    Ok(tx)
}

fn check_network(
    tx: &StacksTransaction,
    mainnet: bool,
    chain_id: u32,
) -> Result<(), ValidationError> {
    let is_mainnet = tx.version == TransactionVersion::Mainnet;
    let network = network_name(mainnet);
    if is_mainnet != mainnet {
        return Err(ValidationError::new(
            "version",
            format!(
                "a {} transaction, but this node relays {network} (chain id {chain_id:#010x}): \
                 build it with network \"{network}\"",
                network_name(is_mainnet),
            ),
        ));
    }
    if tx.chain_id != chain_id {
        return Err(ValidationError::new(
            "chain_id",
            format!(
                "chain id {:#010x}, but this node relays chain id {chain_id:#010x}: build it for that network",
                tx.chain_id
            ),
        ));
    }
    Ok(())
}

fn check_signatures(tx: &StacksTransaction) -> Result<(), ValidationError> {
    tx.verify_origin().map_err(|e| {
        ValidationError::new(
            "signature",
            format!(
                "the origin signature does not verify ({e}): sign these exact bytes again; any \
                 change after signing, fee and nonce included, needs a new signature"
            ),
        )
    })?;
    if let TransactionAuth::Sponsored(..) = tx.auth {
        tx.verify().map_err(|e| {
            ValidationError::new(
                "signature",
                format!(
                    "the sponsor has not signed, or its signature does not verify ({e}): this \
                     node does not sponsor, so have the sponsor sign before submitting, or send \
                     a non-sponsored transaction"
                ),
            )
        })?;
    }
    Ok(())
}

/// The payload is a contract-call to the policy contract's payment
/// functions, with arguments of the contract's types.
fn check_target<'t>(
    tx: &'t StacksTransaction,
    policy: &RelayPolicy,
) -> Result<(EscrowFunction, &'t [Value]), ValidationError> {
    let TransactionPayload::ContractCall(call) = &tx.payload else {
        return Err(ValidationError::new(
            "payload",
            format!(
                "a {} transaction; the relay only takes a contract-call to {}",
                tx.payload.name(),
                policy.contract
            ),
        ));
    };
    let target = format!("{}.{}", call.address, call.contract_name.as_str());
    if target != policy.contract.as_str() {
        return Err(ValidationError::new(
            "contract",
            format!(
                "calls {target}; this node relays calls to {} only",
                policy.contract
            ),
        ));
    }
    let name = call.function_name.as_str();
    let function = EscrowFunction::parse(name).ok_or_else(|| {
        ValidationError::new(
            "function",
            format!(
                "{name} is not relayed; call create-payment, claim-payment or refund-expired \
                 (or their -ft twins for a SIP-010 token)"
            ),
        )
    })?;
    check_args(function, &call.function_args)?;
    Ok((function, &call.function_args))
}

/// The Clarity parameter types of a payment function.
#[derive(Clone, Copy)]
enum Param {
    Buff32,
    Principal,
    Uint,
    BuffUpTo34,
    /// A `<sip-010-trait>` argument: a contract principal.
    Token,
}

impl Param {
    fn admits(self, v: &Value) -> bool {
        match (self, v) {
            (Param::Buff32, Value::Sequence(SequenceData::Buffer(b))) => b.data.len() == 32,
            (Param::BuffUpTo34, Value::Sequence(SequenceData::Buffer(b))) => b.data.len() <= 34,
            (Param::Principal, Value::Principal(_)) => true,
            (Param::Uint, Value::UInt(_)) => true,
            (Param::Token, Value::Principal(PrincipalData::Contract(_))) => true,
            _ => false,
        }
    }

    fn clarity(self) -> &'static str {
        match self {
            Param::Buff32 => "(buff 32)",
            Param::Principal => "principal",
            Param::Uint => "uint",
            Param::BuffUpTo34 => "(buff 34)",
            Param::Token => "<sip-010-trait>",
        }
    }
}

fn params(function: EscrowFunction) -> &'static [(&'static str, Param)] {
    match function {
        EscrowFunction::CreatePayment => &[
            ("payment-id", Param::Buff32),
            ("recipient", Param::Principal),
            ("amount", Param::Uint),
            ("memo", Param::BuffUpTo34),
        ],
        EscrowFunction::ClaimPayment | EscrowFunction::RefundExpired => {
            &[("payment-id", Param::Buff32)]
        }
        EscrowFunction::CreatePaymentFt => &[
            ("payment-id", Param::Buff32),
            ("recipient", Param::Principal),
            ("amount", Param::Uint),
            ("memo", Param::BuffUpTo34),
            ("token", Param::Token),
        ],
        EscrowFunction::ClaimPaymentFt | EscrowFunction::RefundExpiredFt => {
            &[("payment-id", Param::Buff32), ("token", Param::Token)]
        }
    }
}

fn check_args(function: EscrowFunction, args: &[Value]) -> Result<(), ValidationError> {
    let params = params(function);
    let signature = params
        .iter()
        .map(|(name, p)| format!("({name} {})", p.clarity()))
        .collect::<Vec<_>>()
        .join(" ");
    if args.len() != params.len() {
        let plural = if params.len() == 1 { "" } else { "s" };
        return Err(ValidationError::new(
            "args",
            format!(
                "{} takes {} argument{plural} {signature}, got {}",
                function.as_str(),
                params.len(),
                args.len()
            ),
        ));
    }
    for (i, ((name, param), arg)) in params.iter().zip(args).enumerate() {
        if !param.admits(arg) {
            let got = TypeSignature::type_of(arg)
                .map(|t| t.to_string())
                .unwrap_or_else(|_| "a value of another type".into());
            let exact = match param {
                Param::Buff32 => " (exactly 32 bytes)",
                Param::BuffUpTo34 => " (at most 34 bytes)",
                Param::Token => " (the token's contract principal)",
                Param::Principal | Param::Uint => "",
            };
            return Err(ValidationError::new(
                "args",
                format!(
                    "argument {} ({name}) of {} must be a {}{exact}, got {got}",
                    i + 1,
                    function.as_str(),
                    param.clarity()
                ),
            ));
        }
    }
    Ok(())
}

/// What create-payment itself would refuse, or what could never be claimed.
fn check_create(
    call: &EscrowCall,
    args: &[Value],
    policy: &RelayPolicy,
) -> Result<(), ValidationError> {
    if call.amount == Some(0) {
        return Err(ValidationError::new(
            "amount",
            "amount must be greater than 0 uSTX (the contract answers ERR-ZERO-AMOUNT u102)",
        ));
    }
    let Some(recipient) = call.recipient.as_deref() else {
        return Ok(());
    };
    if recipient == call.sender {
        return Err(ValidationError::new(
            "recipient",
            format!(
                "the recipient {recipient} is the sender; the contract refuses self-payments \
                 (ERR-SELF-PAYMENT u103): pay another principal"
            ),
        ));
    }
    let version = match args.get(1) {
        Some(Value::Principal(PrincipalData::Standard(p))) => p.0,
        Some(Value::Principal(PrincipalData::Contract(c))) => c.issuer.0,
        _ => return Ok(()),
    };
    let (single, multi) = if policy.mainnet {
        (
            clarity::C32_ADDRESS_VERSION_MAINNET_SINGLESIG,
            clarity::C32_ADDRESS_VERSION_MAINNET_MULTISIG,
        )
    } else {
        (
            clarity::C32_ADDRESS_VERSION_TESTNET_SINGLESIG,
            clarity::C32_ADDRESS_VERSION_TESTNET_MULTISIG,
        )
    };
    if version != single && version != multi {
        return Err(ValidationError::new(
            "recipient",
            format!(
                "the recipient {recipient} is not a {net} address, so it could never claim \
                 on {net} (the payment could only be refunded): use the recipient's {net} \
                 address ({prefix}...)",
                net = policy.network(),
                prefix = if policy.mainnet { "SP/SM" } else { "ST/SN" },
            ),
        ));
    }
    Ok(())
}
