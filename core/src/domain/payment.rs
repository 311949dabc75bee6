use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// The escrow contract's `(buff 32)` payment id, shown as `0x` + 64 hex.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PaymentId(pub [u8; 32]);

/// A string that is not `0x` + 64 hex digits.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("payment id must be 0x followed by 64 hex digits, got {0:?}")]
pub struct PaymentIdError(pub String);

impl PaymentId {
    /// The id of the x402 `exact` payment settled by transaction `txid`
    /// (`0x` hex or bare): sha256 of a tag and the txid's text. Escrow ids
    /// are chosen by whoever calls create-payment, so they could be any 32
    /// bytes, the txid itself included; a tagged hash is one nobody can
    /// choose to collide with.
    pub fn exact(txid: &str) -> Self {
        use sha2::{Digest, Sha256};
        let txid = txid.strip_prefix("0x").unwrap_or(txid).to_ascii_lowercase();
        let mut h = Sha256::new();
        h.update(b"x402-nexus:exact:");
        h.update(txid.as_bytes());
        PaymentId(h.finalize().into())
    }

    /// Build from a byte slice; `None` unless it is exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        <[u8; 32]>::try_from(bytes).ok().map(PaymentId)
    }
}

impl fmt::Display for PaymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // On the stack: ids are formatted for every key, row and event.
        let mut buf = [0u8; 66];
        buf[..2].copy_from_slice(b"0x");
        hex::encode_to_slice(self.0, &mut buf[2..]).expect("32 bytes are 64 hex digits");
        f.write_str(std::str::from_utf8(&buf).expect("hex is ASCII"))
    }
}

impl utoipa::PartialSchema for PaymentId {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::String)
            .pattern(Some("^0x[0-9a-f]{64}$"))
            .description(Some(
                "The escrow's (buff 32) payment id: 0x + 64 hex digits",
            ))
            .into()
    }
}

impl utoipa::ToSchema for PaymentId {}

impl fmt::Debug for PaymentId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for PaymentId {
    type Err = PaymentIdError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || PaymentIdError(s.chars().take(80).collect());
        let body = s.strip_prefix("0x").ok_or_else(err)?;
        if body.len() != 64 {
            return Err(err());
        }
        let bytes = hex::decode(body).map_err(|_| err())?;
        PaymentId::from_slice(&bytes).ok_or_else(err)
    }
}

impl Serialize for PaymentId {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for PaymentId {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// Where a payment stands. `expired` is not a status: it is derived
/// (`confirmed` and the chain has reached `expires_at`), see [`Payment::expired`].
#[derive(
    Debug,
    Clone,
    Copy,
    PartialEq,
    Eq,
    Hash,
    Serialize,
    Deserialize,
    PartialOrd,
    Ord,
    utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PaymentStatus {
    /// Known to us (relayed) but not yet seen by the node.
    Pending,
    /// The create-payment transaction is in the mempool.
    Submitted,
    /// create-payment succeeded in a canonical block; funds are locked.
    Confirmed,
    /// The recipient claimed the funds.
    Claimed,
    /// The funds went back to the sender after expiry.
    Refunded,
    /// The create-payment transaction aborted on chain or was rejected.
    Failed,
    /// The create-payment transaction left the mempool without being mined.
    Dropped,
}

impl PaymentStatus {
    /// Every status, in lifecycle order.
    pub const ALL: [PaymentStatus; 7] = [
        Self::Pending,
        Self::Submitted,
        Self::Confirmed,
        Self::Claimed,
        Self::Refunded,
        Self::Failed,
        Self::Dropped,
    ];

    /// The lowercase name used in JSON, SQL and Redis keys.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Submitted => "submitted",
            Self::Confirmed => "confirmed",
            Self::Claimed => "claimed",
            Self::Refunded => "refunded",
            Self::Failed => "failed",
            Self::Dropped => "dropped",
        }
    }

    /// Settled payments can no longer move funds; only these may expire from the cache.
    pub fn is_settled(self) -> bool {
        matches!(
            self,
            Self::Claimed | Self::Refunded | Self::Failed | Self::Dropped
        )
    }
}

impl FromStr for PaymentStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Self::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown payment status {s:?}"))
    }
}

impl fmt::Display for PaymentStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// How a payment moves its funds (x402's `scheme`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Scheme {
    /// Locked in our escrow contract: the merchant claims, or the payer is
    /// refunded after expiry.
    Escrow,
    /// A direct transfer to the merchant (STX, or a SIP-010 token's
    /// `transfer`), settled by the x402 facilitator.
    Exact,
}

impl Scheme {
    /// The x402 scheme name.
    pub fn as_str(self) -> &'static str {
        match self {
            Scheme::Escrow => "escrow",
            Scheme::Exact => "exact",
        }
    }
}

/// Where a transaction was mined: enough to find and prove it later.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct ChainPos {
    pub txid: String,
    pub tx_index: u32,
    pub block_height: u64,
    pub index_block_hash: String,
    pub block_hash: String,
    pub burn_block_height: u64,
    pub burn_block_hash: String,
}

/// The current state of one escrow payment (the `payment:{id}` record).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Payment {
    pub payment_id: PaymentId,
    pub status: PaymentStatus,
    /// Principal that locks the funds (tx-sender of create-payment).
    pub sender: Option<String>,
    pub recipient: Option<String>,
    /// uSTX as a decimal string: Clarity uints exceed JSON's safe integers.
    pub amount: Option<String>,
    /// The create-payment memo, `0x` hex.
    pub memo: Option<String>,
    /// Absolute stacks block height at which the payment becomes refundable.
    pub expires_at: Option<u64>,
    /// Txid of the create-payment transaction we track.
    pub create_txid: Option<String>,
    /// Where create-payment was mined (set once `confirmed`).
    pub created_in: Option<ChainPos>,
    /// Where claim-payment or refund-expired was mined.
    pub settled_in: Option<ChainPos>,
    /// Why it failed or was dropped, as the node said it (`ReplaceByFee`, `(err u104)`, ...).
    pub reason: Option<String>,
    /// For `dropped` by replacement: the txid that replaced ours.
    pub replaced_by: Option<String>,
    /// The latest on-chain transition (create, or claim/refund) is buried at
    /// least `confirmation_depth` blocks deep on the canonical chain.
    #[serde(default, rename = "final")]
    pub is_final: bool,
    /// `exact` for a transfer settled by the x402 facilitator; absent on
    /// escrow payments (records written before schemes existed read the same).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scheme: Option<Scheme>,
    /// What moves: `STX`, or the SIP-010 token as `ADDR.contract::token`.
    /// Absent on escrow payments, which are always STX.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub asset: Option<String>,
    /// The payer's account nonce the transaction spends. Set on `exact`
    /// payments: the reconciler checks them by whether the payer's nonce is
    /// spent at the chain's tip (a transfer leaves no contract state to read).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nonce: Option<u64>,
    /// `seq` of the last event that changed this record; 0 before its first commit.
    pub updated_seq: u64,
    /// RFC 3339 time of the last change.
    pub updated_at: String,
}

impl Payment {
    /// A blank record for a payment we have only just heard of.
    pub fn new(payment_id: PaymentId, status: PaymentStatus, at: &str) -> Self {
        Payment {
            payment_id,
            status,
            sender: None,
            recipient: None,
            amount: None,
            memo: None,
            expires_at: None,
            create_txid: None,
            created_in: None,
            settled_in: None,
            reason: None,
            replaced_by: None,
            is_final: false,
            scheme: None,
            asset: None,
            nonce: None,
            updated_seq: 0,
            updated_at: at.to_string(),
        }
    }

    /// Where the latest on-chain transition happened (settlement, else creation).
    pub fn latest_pos(&self) -> Option<&ChainPos> {
        self.settled_in.as_ref().or(self.created_in.as_ref())
    }

    /// Where the transition to the current status was mined: the claim or
    /// refund for a settled payment, the create for a confirmed one. `None`
    /// when it is not known, as for a settlement learned from the contract's
    /// state (then the create's position would mislead).
    pub fn status_pos(&self) -> Option<&ChainPos> {
        match self.status {
            PaymentStatus::Claimed | PaymentStatus::Refunded => self.settled_in.as_ref(),
            PaymentStatus::Confirmed => self.created_in.as_ref(),
            _ => None,
        }
    }

    /// The SIP-010 token contract (`ADDR.contract`) the payment moves, `None`
    /// for STX: `asset` without its `::name`. The key lists filter by, since
    /// a record knows the asset's name only once its block was seen.
    pub fn token_contract(&self) -> Option<&str> {
        token_contract_of(self.asset.as_deref()?)
    }

    /// Whether this is an x402 `exact` transfer (not an escrow lock).
    pub fn is_exact(&self) -> bool {
        self.scheme == Some(Scheme::Exact)
    }

    /// Derived flag: locked funds that the sender may now take back.
    pub fn expired(&self, tip_height: u64) -> bool {
        self.status == PaymentStatus::Confirmed && self.expires_at.is_some_and(|e| tip_height >= e)
    }
}

/// Whether `s` names an asset the way filters take it: `STX`, a token
/// contract (`ADDR.contract`) or an asset identifier (`ADDR.contract::name`),
/// with a well-formed (checksummed) contract principal.
pub fn is_asset_name(s: &str) -> bool {
    let Some(contract) = token_contract_of(s) else {
        return true;
    };
    let name_ok = s.split_once("::").is_none_or(|(_, n)| {
        !n.is_empty() && n.len() <= 128 && n.bytes().all(|b| b.is_ascii_graphic())
    });
    name_ok
        && matches!(
            clarity::vm::types::PrincipalData::parse(contract),
            Ok(clarity::vm::types::PrincipalData::Contract(_))
        )
}

/// The token contract of an asset name as records and queries write it
/// (`STX`, `ADDR.contract` or `ADDR.contract::name`); `None` for STX.
pub fn token_contract_of(asset: &str) -> Option<&str> {
    if asset.eq_ignore_ascii_case("STX") {
        return None;
    }
    Some(
        asset
            .split_once("::")
            .map_or(asset, |(contract, _)| contract),
    )
}
