//! The facilitator's MUST checks before anything is broadcast ("Exact
//! Payment Scheme for Stacks", and our `escrow` scheme). Pure: a request, the
//! policy and the time in; a [`Verified`] payment or the first [`Refusal`].
//!
//! | check | reason |
//! | --- | --- |
//! | `x402Version` 2 (in [`super::wire`]) | `invalid_x402_version` |
//! | the requirements' network is ours | `invalid_network` |
//! | scheme `exact` or `escrow` | `unsupported_scheme` |
//! | amount a positive integer, `payTo` a principal of our network, a known token | `invalid_payment_requirements` |
//! | `accepted` (when sent) matches the requirements | `invalid_payload` (`invalid_network` for the network) |
//! | one canonical, signed transaction of our chain id | `invalid_payload` (`invalid_network` for version and chain id) |
//! | the right kind: STX `token-transfer`, the token's `transfer`, our `create-payment` | `invalid_payload` |
//! | a token transfer's `sender` argument is the signer | `sender_mismatch` |
//! | the recipient is `payTo` | `recipient_mismatch` |
//! | the amount is at least `amount` | `amount_insufficient` |
//! | the memo carries `extra.nonce`, when one is given | `invalid_payload` |
//! | not past `extra.expiresAt` ([`verify`] only; see [`verify_terms`]) | `invalid_payment_requirements` |
//!
//! What needs chain state (balance, nonce) is in [`super::funds`].

use clarity::vm::types::{PrincipalData, SequenceData, Value};
use stacks_codec::codec::{StacksTransaction, TransactionPayload};

use super::reason::{Reason, Refusal};
use super::wire::{Request, Requirements};
use super::{Policy, Token};
pub use crate::decode::tx::origin_address;
use crate::decode::tx::txid_of;
use crate::decode::{EscrowCall, EscrowFunction};
use crate::domain::{PaymentId, Scheme};
use crate::validate::{decode_signed, parse_hex, validate, RelayPolicy, ValidationError};

/// What the transaction pays with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Paid {
    /// An STX `token-transfer`.
    Stx,
    /// A SIP-010 `transfer` of an allowed token.
    Token(Token),
    /// A `create-payment` on our escrow, or a `create-payment-ft` locking
    /// the allowed token. Boxed: the call is most of the enum's size.
    Escrow(Box<EscrowCall>, Option<Token>),
}

impl Paid {
    /// The SIP-010 token that moves, `None` for STX.
    pub fn token(&self) -> Option<&Token> {
        match self {
            Paid::Token(t) | Paid::Escrow(_, Some(t)) => Some(t),
            Paid::Stx | Paid::Escrow(_, None) => None,
        }
    }
}

/// A payment that passed every check that needs no chain state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    pub scheme: Scheme,
    pub paid: Paid,
    /// `STX`, or the token as `ADDR.contract::token`.
    pub asset: String,
    /// The signer (the origin; a sponsor only pays the fee).
    pub payer: String,
    pub pay_to: String,
    /// What the transaction moves, in base units.
    pub amount: u128,
    pub fee: u64,
    pub nonce: u64,
    /// A sponsor pays the fee, not the payer.
    pub sponsored: bool,
    /// `0x` + 64 hex.
    pub txid: String,
    /// Our record: the escrow's payment id, or [`PaymentId::exact`].
    pub payment_id: PaymentId,
    /// The called function: `token-transfer`, `transfer` or `create-payment`.
    pub function: &'static str,
    /// The exact bytes to broadcast.
    pub bytes: Vec<u8>,
    /// `maxTimeoutSeconds` of the requirements.
    pub max_timeout_seconds: u64,
    /// `extra.expiresAt` of the requirements, Unix milliseconds.
    pub expires_at_ms: Option<i64>,
}

fn refuse(reason: Reason, message: impl Into<String>) -> Refusal {
    Refusal::new(reason, message)
}

/// Checks `req` against `policy` at `now_ms` (Unix milliseconds): every
/// rule, the requirements' `extra.expiresAt` included.
pub fn verify(req: &Request, policy: &Policy, now_ms: i64) -> Result<Verified, Refusal> {
    let v = verify_terms(req, policy)?;
    check_expiry(&v, now_ms)?;
    Ok(v)
}

/// Every rule but the expiry: what a payment already being settled is
/// checked against again (a client retrying a settled payment after its
/// requirements expired gets the payment's outcome, not a refusal).
pub fn verify_terms(req: &Request, policy: &Policy) -> Result<Verified, Refusal> {
    let r = &req.requirements;
    let network = policy.network();
    if r.network != network {
        return Err(refuse(
            Reason::InvalidNetwork,
            format!(
                "the requirements are for {}, but this facilitator settles {network}",
                r.network
            ),
        ));
    }
    let scheme = match r.scheme.as_str() {
        "exact" => Scheme::Exact,
        "escrow" => Scheme::Escrow,
        other => {
            return Err(refuse(
                Reason::UnsupportedScheme,
                format!("scheme {other:?}: this facilitator settles \"exact\" and \"escrow\""),
            ))
        }
    };
    let required = parse_amount(&r.amount)?;
    let pay_to = parse_pay_to(&r.pay_to, policy.mainnet)?;
    let asset = Asset::of(r, scheme, policy)?;
    let expires_at_ms = expires_at(r)?;
    if let Some(a) = &req.accepted {
        check_accepted(a, r)?;
    }
    let bytes = parse_hex(&req.transaction).map_err(|e| payload_refusal(&e))?;
    let tx =
        decode_signed(&bytes, policy.mainnet, policy.chain_id).map_err(|e| payload_refusal(&e))?;
    let payer = origin_address(&tx);
    // Every refusal from here on names the payer.
    let mut v = paid_by(
        &tx, bytes, asset, scheme, required, pay_to, r, policy, &payer,
    )
    .map_err(|mut e| {
        e.payer = Some(payer);
        e
    })?;
    v.expires_at_ms = expires_at_ms;
    Ok(v)
}

/// The checks of a decoded transaction signed by `payer`.
#[allow(clippy::too_many_arguments)]
fn paid_by(
    tx: &StacksTransaction,
    bytes: Vec<u8>,
    asset: Asset,
    scheme: Scheme,
    required: u128,
    pay_to: String,
    r: &Requirements,
    policy: &Policy,
    payer: &str,
) -> Result<Verified, Refusal> {
    let nonce = tx.get_origin_nonce();
    let (paid, recipient, amount, memo, function) = match asset {
        Asset::Stx if scheme == Scheme::Exact => {
            let (to, amount, memo) = stx_transfer(tx)?;
            (Paid::Stx, to, u128::from(amount), memo, "token-transfer")
        }
        Asset::Token(token) => {
            let (to, amount, memo) = token_transfer(tx, &token, payer)?;
            (Paid::Token(token), to, amount, memo, "transfer")
        }
        Asset::Stx => escrow_paid(escrow_create(&bytes, policy, None)?, None),
        Asset::EscrowToken(token) => {
            let call = escrow_create(&bytes, policy, Some(&token))?;
            escrow_paid(call, Some(token))
        }
    };
    if recipient != pay_to {
        return Err(refuse(
            Reason::RecipientMismatch,
            format!("the transaction pays {recipient}, the requirements' payTo is {pay_to}"),
        ));
    }
    if amount < required {
        return Err(refuse(
            Reason::AmountInsufficient,
            format!("the transaction pays {amount}, the requirements ask for {required}"),
        ));
    }
    check_memo(r, &memo)?;
    let txid = txid_of(tx);
    let payment_id = match &paid {
        Paid::Escrow(call, _) => call.payment_id,
        _ => PaymentId::exact(&txid),
    };
    Ok(Verified {
        scheme,
        asset: match paid.token() {
            Some(t) => t.asset_id(),
            None => "STX".to_string(),
        },
        paid,
        payer: payer.to_string(),
        pay_to,
        amount,
        fee: tx.get_tx_fee(),
        nonce,
        sponsored: tx.auth.is_sponsored(),
        txid,
        payment_id,
        function,
        bytes,
        max_timeout_seconds: r.max_timeout_seconds,
        expires_at_ms: None,
    })
}

/// A relay validation failure as x402 names it.
fn payload_refusal(e: &ValidationError) -> Refusal {
    let reason = match e.field {
        "version" | "chain_id" => Reason::InvalidNetwork,
        _ => Reason::InvalidPayload,
    };
    refuse(reason, format!("the signed transaction: {e}"))
}

fn parse_amount(s: &str) -> Result<u128, Refusal> {
    let bad = || {
        refuse(
            Reason::InvalidPaymentRequirements,
            format!("amount {s:?}: a positive whole number of base units (uSTX, or the token's smallest unit) is needed"),
        )
    };
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    match s.parse::<u128>() {
        Ok(0) | Err(_) => Err(bad()),
        Ok(n) => Ok(n),
    }
}

fn parse_pay_to(s: &str, mainnet: bool) -> Result<String, Refusal> {
    let p = PrincipalData::parse(s).map_err(|_| {
        refuse(
            Reason::InvalidPaymentRequirements,
            format!("payTo {s:?} is not a Stacks principal"),
        )
    })?;
    let version = match &p {
        PrincipalData::Standard(a) => a.0,
        PrincipalData::Contract(c) => c.issuer.0,
    };
    let ours = if mainnet {
        [
            clarity::C32_ADDRESS_VERSION_MAINNET_SINGLESIG,
            clarity::C32_ADDRESS_VERSION_MAINNET_MULTISIG,
        ]
    } else {
        [
            clarity::C32_ADDRESS_VERSION_TESTNET_SINGLESIG,
            clarity::C32_ADDRESS_VERSION_TESTNET_MULTISIG,
        ]
    };
    if !ours.contains(&version) {
        return Err(refuse(
            Reason::InvalidPaymentRequirements,
            format!(
                "payTo {s} is not a {} address, so it could not be paid here",
                crate::validate::network_name(mainnet)
            ),
        ));
    }
    Ok(p.to_string())
}

/// An escrow create as x402 sees it: recipient, amount, memo, function.
fn escrow_paid(
    call: EscrowCall,
    token: Option<Token>,
) -> (Paid, String, u128, Vec<u8>, &'static str) {
    let to = call.recipient.clone().unwrap_or_default();
    let amount = call.amount.unwrap_or(0);
    let memo = call.memo.clone().unwrap_or_default();
    let function = call.function.as_str();
    (
        Paid::Escrow(Box::new(call), token),
        to,
        amount,
        memo,
        function,
    )
}

/// What the requirements ask to be paid in, and how: STX (by transfer, or
/// locked in the escrow), a token by transfer, or a token locked in the
/// escrow.
enum Asset {
    Stx,
    Token(Token),
    EscrowToken(Token),
}

impl Asset {
    fn of(r: &Requirements, scheme: Scheme, policy: &Policy) -> Result<Asset, Refusal> {
        let bad = |m: String| refuse(Reason::InvalidPaymentRequirements, m);
        if scheme == Scheme::Escrow {
            if let Some(c) = r.extra.get("contract").and_then(|v| v.as_str()) {
                if c != policy.escrow.as_str() {
                    return Err(bad(format!(
                        "extra.contract is {c}; this facilitator's escrow is {}",
                        policy.escrow
                    )));
                }
            }
        }
        if r.asset.eq_ignore_ascii_case("STX") {
            return Ok(Asset::Stx);
        }
        // `ADDR.contract::token`, `ADDR.contract` (what x402-stacks sends),
        // or `extra.tokenContract: {address, name}`.
        let contract = match r.asset.split_once("::") {
            Some((c, _)) => c.to_string(),
            None => match r.extra.get("tokenContract") {
                Some(tc) => match (
                    tc.get("address").and_then(|v| v.as_str()),
                    tc.get("name").and_then(|v| v.as_str()),
                ) {
                    (Some(a), Some(n)) => format!("{a}.{n}"),
                    _ => {
                        return Err(bad(
                            "extra.tokenContract: {address, name} strings are needed".into(),
                        ))
                    }
                },
                None => r.asset.clone(),
            },
        };
        let token = policy
            .tokens
            .iter()
            .find(|t| t.contract.as_str() == contract)
            .ok_or_else(|| {
                let allowed: Vec<String> = policy.tokens.iter().map(Token::asset_id).collect();
                bad(format!(
                    "asset {}: this facilitator accepts STX and the tokens [{}]",
                    r.asset,
                    allowed.join(", ")
                ))
            })?;
        if let Some((_, name)) = r.asset.split_once("::") {
            if name != token.name {
                return Err(bad(format!(
                    "asset {}: the token of {} is {}",
                    r.asset, token.contract, token.name
                )));
            }
        }
        Ok(match scheme {
            Scheme::Escrow => Asset::EscrowToken(token.clone()),
            Scheme::Exact => Asset::Token(token.clone()),
        })
    }
}

/// `extra.expiresAt`: RFC 3339, or Unix time (milliseconds; seconds when
/// below 10^11, which as milliseconds would be 1973).
fn expires_at(r: &Requirements) -> Result<Option<i64>, Refusal> {
    let Some(v) = r.extra.get("expiresAt") else {
        return Ok(None);
    };
    let at_ms = match v {
        serde_json::Value::Number(n) => n.as_i64().map(|n| {
            if n < 100_000_000_000 {
                n.saturating_mul(1000)
            } else {
                n
            }
        }),
        serde_json::Value::String(s) => chrono::DateTime::parse_from_rfc3339(s)
            .ok()
            .map(|t| t.timestamp_millis()),
        _ => None,
    };
    at_ms.map(Some).ok_or_else(|| {
        refuse(
            Reason::InvalidPaymentRequirements,
            format!("extra.expiresAt {v}: an RFC 3339 time or Unix milliseconds is needed"),
        )
    })
}

/// Refuses a payment whose requirements expired before `now_ms`.
pub fn check_expiry(v: &Verified, now_ms: i64) -> Result<(), Refusal> {
    match v.expires_at_ms {
        Some(at_ms) if now_ms > at_ms => {
            let mut r = refuse(
                Reason::InvalidPaymentRequirements,
                format!(
                    "the requirements expired at {} ({}s ago): ask the resource again for fresh ones",
                    crate::clock::rfc3339(at_ms),
                    (now_ms - at_ms) / 1000
                ),
            );
            r.payer = Some(v.payer.clone());
            Err(r)
        }
        _ => Ok(()),
    }
}

fn check_accepted(a: &Requirements, r: &Requirements) -> Result<(), Refusal> {
    if a.network != r.network {
        return Err(refuse(
            Reason::InvalidNetwork,
            format!(
                "the payer accepted network {}, the requirements are for {}",
                a.network, r.network
            ),
        ));
    }
    let pairs = [
        ("scheme", &a.scheme, &r.scheme),
        ("amount", &a.amount, &r.amount),
        ("asset", &a.asset, &r.asset),
        ("payTo", &a.pay_to, &r.pay_to),
    ];
    for (field, got, want) in pairs {
        if got != want {
            return Err(refuse(
                Reason::InvalidPayload,
                format!("the payer accepted {field} {got}, the requirements say {want}"),
            ));
        }
    }
    Ok(())
}

fn stx_transfer(tx: &StacksTransaction) -> Result<(String, u64, Vec<u8>), Refusal> {
    match &tx.payload {
        TransactionPayload::TokenTransfer(to, amount, memo) => {
            Ok((to.to_string(), *amount, memo.0.to_vec()))
        }
        other => Err(refuse(
            Reason::InvalidPayload,
            format!(
                "a {} transaction; asset STX is paid with an STX token-transfer",
                other.name()
            ),
        )),
    }
}

/// A SIP-010 `transfer(amount uint, sender principal, recipient principal,
/// memo (optional (buff 34)))` on `token`.
fn token_transfer(
    tx: &StacksTransaction,
    token: &Token,
    payer: &str,
) -> Result<(String, u128, Vec<u8>), Refusal> {
    let asset = token.asset_id();
    let TransactionPayload::ContractCall(call) = &tx.payload else {
        // x402-stacks pays any token it does not know as STX: say so.
        return Err(refuse(
            Reason::InvalidPayload,
            format!(
                "a {} transaction; asset {asset} is paid with a contract-call of {}'s transfer",
                tx.payload.name(),
                token.contract
            ),
        ));
    };
    let target = format!("{}.{}", call.address, call.contract_name.as_str());
    if target != token.contract.as_str() || call.function_name.as_str() != "transfer" {
        return Err(refuse(
            Reason::InvalidPayload,
            format!(
                "calls {target}'s {}; asset {asset} is paid with {}'s transfer",
                call.function_name.as_str(),
                token.contract
            ),
        ));
    }
    let args = &call.function_args;
    let shape = "transfer takes (amount uint) (sender principal) (recipient principal) (memo (optional (buff 34)))";
    let (amount, sender, recipient, memo) = match args.as_slice() {
        [Value::UInt(a), Value::Principal(s), Value::Principal(r), m] => (*a, s, r, m),
        _ => return Err(refuse(Reason::InvalidPayload, shape)),
    };
    let memo = match memo {
        Value::Optional(o) => match o.data.as_deref() {
            None => Vec::new(),
            Some(Value::Sequence(SequenceData::Buffer(b))) if b.data.len() <= 34 => b.data.clone(),
            Some(_) => return Err(refuse(Reason::InvalidPayload, shape)),
        },
        _ => return Err(refuse(Reason::InvalidPayload, shape)),
    };
    if sender.to_string() != payer {
        return Err(refuse(
            Reason::SenderMismatch,
            format!(
                "the transfer's sender argument is {sender}, but {payer} signed it (the token \
                 refuses a transfer whose sender is not tx-sender)"
            ),
        ));
    }
    Ok((recipient.to_string(), amount, memo))
}

/// The relay's own validation of an escrow call, which must be a create:
/// `create-payment` for STX, `create-payment-ft` naming `token` for a token.
fn escrow_create(
    bytes: &[u8],
    policy: &Policy,
    token: Option<&Token>,
) -> Result<EscrowCall, Refusal> {
    let relay = RelayPolicy {
        contract: policy.escrow.clone(),
        chain_id: policy.chain_id,
        mainnet: policy.mainnet,
    };
    let valid = validate(bytes, &relay).map_err(|e| payload_refusal(&e))?;
    let want = match token {
        None => EscrowFunction::CreatePayment,
        Some(_) => EscrowFunction::CreatePaymentFt,
    };
    if valid.call.function != want {
        return Err(refuse(
            Reason::InvalidPayload,
            format!(
                "calls {}; the escrow scheme is paid in this asset with {}",
                valid.call.function.as_str(),
                want.as_str()
            ),
        ));
    }
    if let Some(t) = token {
        if valid.call.token.as_deref() != Some(t.contract.as_str()) {
            return Err(refuse(
                Reason::InvalidPayload,
                format!(
                    "create-payment-ft locks {}; the requirements ask for {}",
                    valid.call.token.as_deref().unwrap_or("no token"),
                    t.asset_id()
                ),
            ));
        }
    }
    Ok(valid.call)
}

/// When the requirements carry `extra.nonce`, the memo must contain it, so
/// a payment signed for one request cannot be spent on another.
fn check_memo(r: &Requirements, memo: &[u8]) -> Result<(), Refusal> {
    let Some(nonce) = r.extra.get("nonce") else {
        return Ok(());
    };
    let Some(nonce) = nonce.as_str().filter(|n| !n.is_empty()) else {
        return Err(refuse(
            Reason::InvalidPaymentRequirements,
            format!("extra.nonce {nonce}: a non-empty string is needed"),
        ));
    };
    let found = memo.windows(nonce.len()).any(|w| w == nonce.as_bytes());
    if !found {
        let shown = String::from_utf8_lossy(memo);
        return Err(refuse(
            Reason::InvalidPayload,
            format!(
                "the memo {:?} does not carry the requirements' nonce {nonce:?}: sign a memo \
                 that contains it",
                shown.trim_end_matches('\0')
            ),
        ));
    }
    Ok(())
}
