//! What one broadcast outcome means for the transaction: try again later,
//! give up, or done. Pure: no I/O, no clock.
//!
//! The rejection reasons are stacks-core's, as `MemPoolRejection::into_json`
//! spells them in `stackslib/src/chainstate/stacks/db/blocks.rs`; the answer
//! shapes are those of `stackslib/src/net/api/posttransaction.rs` (a 200 also
//! when the mempool already holds the same txid). The whole table:
//!
//! | `reason` (variant)                                   | disposition | why |
//! |------------------------------------------------------|-------------|-----|
//! | `Serialization`, `Deserialization`                   | Fail  | the bytes are what they are |
//! | `SignatureValidation` (`FailedToValidate`)           | Fail  | a bad signature stays bad |
//! | `BadTransactionVersion`                              | Fail  | mainnet tx on a testnet node or back |
//! | `FeeTooLow`                                          | Fail  | the fee is signed in; only the client can raise it |
//! | `BadNonce`, actual < expected                        | Fail  | that nonce is spent (maybe by this very tx, mined: the indexer will know) |
//! | `BadNonce`, actual > expected                        | Retry | a gap: the earlier nonces may still arrive (older nodes refuse future nonces) |
//! | `BadNonce`, no readable nonces                       | Fail  | cannot tell; stacks-core always sends them |
//! | `TooMuchChaining`                                    | Retry | too many of the account's txs pending; room opens as they are mined |
//! | `ConflictingNonceInMempool`, `reason_data.txid` ours | AlreadyKnown | our own tx holds the nonce |
//! | `ConflictingNonceInMempool`, otherwise               | Retry | see below |
//! | `NotEnoughFunds`                                     | Retry | balance is read at the tip: an incoming transfer or an unlock fixes it without re-signing |
//! | `NoSuchContract`, `NoSuchPublicFunction`             | Fail  | the call targets nothing on this chain |
//! | `BadFunctionArgument`                                | Fail  | type-checked against the deployed contract |
//! | `ContractAlreadyExists`                              | Fail  | a deploy that can never happen again |
//! | `PoisonMicroblocksDoNotConflict`, `PoisonMicroblockHasUnknownPubKeyHash` (`NoAnchorBlockWithPubkeyHash`), `PoisonMicroblockIsInvalid` (`InvalidMicroblocks`) | Fail | the evidence is wrong |
//! | `BadAddressVersionByte`                              | Fail  | an address for another network |
//! | `NoCoinbaseViaMempool`, `NoTenureChangeViaMempool`   | Fail  | only miners make those |
//! | `TransferRecipientCannotEqualSender` (`TransferRecipientIsSender`), `TransferAmountMustBePositive` | Fail | the payload is wrong |
//! | `ServerFailureNoSuchChainTip` (`NoSuchChainTip`)     | Retry | the node's tip moved under it |
//! | `ServerFailureDatabase` (`DBError`)                  | Retry | the node's storage (a locked database) |
//! | `ServerFailureOther` (`Other`)                       | Retry | mostly the node's trouble ("Failed to load chain tip"); the attempt bound caps the rest |
//! | `EstimatorError`                                     | Retry | the node's fee estimator, not the tx |
//! | `TemporarilyBlacklisted`                             | Retry | the node's mempool holds it off for a while (slow: see `stats`) |
//! | anything else                                        | Retry | see below |
//!
//! `ConflictingNonceInMempool` means another transaction holds our origin (or
//! sponsor) nonce and we do not pay more. stacks-core sends no `reason_data`
//! with it, so it cannot say whose. Retrying converges on the truth: if the
//! holder is our own transaction (two broadcasts raced), the next post finds
//! the txid in the mempool and answers 200; if the holder is mined, the next
//! answer is `BadNonce` (spent) and we fail; if it is dropped, ours goes in.
//!
//! An unknown reason (a newer stacks-core, a proxy) is retried: the retry
//! policy bounds what a wrong guess costs (a few posts over minutes), while
//! failing a transient reason would drop a payment that would have gone
//! through. The reason is kept for the log so the table can learn it.
//!
//! Transport outcomes follow [`RpcError::is_temporary`]: no answer, a
//! timeout, a 5xx, 408, 429 and every breaker open are retried (with the
//! node's `Retry-After` or the breaker's wait); another 4xx and a bad
//! configuration fail. An unreadable answer is retried, unlike for reads:
//! it says nothing about the transaction, which may well be in the mempool.

use std::time::Duration;

use nexus_stacks::{BroadcastAnswer, RpcError};
use serde_json::Value;

/// What to do with a transaction after one broadcast.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Disposition {
    /// Not in a mempool yet, and a later attempt may get it there.
    Retry,
    /// Never will be, whatever we do; the client has to sign something else.
    Fail,
    /// Success-equivalent: the same txid already holds its nonce in the
    /// mempool.
    AlreadyKnown,
    /// The node took it (or already had it: stacks-core answers 200 then).
    Accepted,
}

impl Disposition {
    /// Done, one way or the other: no more attempts.
    pub fn is_final(self) -> bool {
        !matches!(self, Disposition::Retry)
    }

    /// In a mempool.
    pub fn is_success(self) -> bool {
        matches!(self, Disposition::Accepted | Disposition::AlreadyKnown)
    }
}

/// One outcome, classified; what the engine stores and the API shows.
#[derive(Debug, Clone, PartialEq)]
pub struct Classified {
    pub disposition: Disposition,
    /// The node's rejection reason, or the name of a transport outcome
    /// (`Timeout`, `Http503`, `RateLimited`, ...), or `Accepted`.
    pub reason: String,
    /// The node's details for a rejection (`expected`/`actual` nonces, ...).
    pub reason_data: Option<Value>,
    /// Wait at least this long before the next attempt (`Retry-After`, or the
    /// breakers' wait when all are open).
    pub retry_after: Option<Duration>,
    /// The outcome says the provider misbehaved (no answer, 5xx, 429, a
    /// server failure), rather than something about the transaction; what
    /// the provider statistics count as a failure.
    pub provider_fault: bool,
}

/// The reasons stacks-core sends, each with its disposition when the
/// `reason_data` does not change it. Exported for tests and documentation.
pub const KNOWN_REASONS: &[(&str, Disposition)] = &[
    ("Serialization", Disposition::Fail),
    ("Deserialization", Disposition::Fail),
    ("SignatureValidation", Disposition::Fail),
    ("BadTransactionVersion", Disposition::Fail),
    ("FeeTooLow", Disposition::Fail),
    ("BadNonce", Disposition::Fail),
    ("TooMuchChaining", Disposition::Retry),
    ("ConflictingNonceInMempool", Disposition::Retry),
    ("NotEnoughFunds", Disposition::Retry),
    ("NoSuchContract", Disposition::Fail),
    ("NoSuchPublicFunction", Disposition::Fail),
    ("BadFunctionArgument", Disposition::Fail),
    ("ContractAlreadyExists", Disposition::Fail),
    ("PoisonMicroblocksDoNotConflict", Disposition::Fail),
    ("PoisonMicroblockHasUnknownPubKeyHash", Disposition::Fail),
    ("PoisonMicroblockIsInvalid", Disposition::Fail),
    ("BadAddressVersionByte", Disposition::Fail),
    ("NoCoinbaseViaMempool", Disposition::Fail),
    ("NoTenureChangeViaMempool", Disposition::Fail),
    ("TransferRecipientCannotEqualSender", Disposition::Fail),
    ("TransferAmountMustBePositive", Disposition::Fail),
    ("ServerFailureNoSuchChainTip", Disposition::Retry),
    ("ServerFailureDatabase", Disposition::Retry),
    ("ServerFailureOther", Disposition::Retry),
    ("EstimatorError", Disposition::Retry),
    ("TemporarilyBlacklisted", Disposition::Retry),
];

/// The disposition of a mempool rejection (the table above). `our_txid` in
/// any case, with or without `0x`.
pub fn classify_rejection(
    reason: &str,
    reason_data: Option<&Value>,
    our_txid: &str,
) -> Disposition {
    match reason {
        "BadNonce" => match nonces(reason_data) {
            Some((expected, actual)) if actual > expected => Disposition::Retry,
            _ => Disposition::Fail,
        },
        "ConflictingNonceInMempool" => {
            let holder = reason_data
                .and_then(|d| d.get("txid"))
                .and_then(Value::as_str);
            if holder.is_some_and(|h| same_txid(h, our_txid)) {
                Disposition::AlreadyKnown
            } else {
                Disposition::Retry
            }
        }
        _ => KNOWN_REASONS
            .iter()
            .find(|(r, _)| *r == reason)
            .map_or(Disposition::Retry, |(_, d)| *d),
    }
}

/// Classify one broadcast outcome of the transaction `our_txid`.
pub fn classify(outcome: &Result<BroadcastAnswer, RpcError>, our_txid: &str) -> Classified {
    match outcome {
        Ok(BroadcastAnswer::Accepted { txid }) => Classified {
            disposition: Disposition::Accepted,
            // The node hashed other bytes than we did: still in its mempool,
            // but worth a look in the log.
            reason: if same_txid(txid, our_txid) {
                "Accepted".into()
            } else {
                "AcceptedOtherTxid".into()
            },
            reason_data: None,
            retry_after: None,
            provider_fault: false,
        },
        Ok(BroadcastAnswer::Rejected {
            reason,
            reason_data,
            ..
        }) => Classified {
            disposition: classify_rejection(reason, reason_data.as_ref(), our_txid),
            reason: reason.clone(),
            reason_data: reason_data.clone(),
            retry_after: None,
            provider_fault: is_server_failure(reason),
        },
        Err(e) => classify_error(e),
    }
}

/// The node's own trouble, not the transaction's.
fn is_server_failure(reason: &str) -> bool {
    reason.starts_with("ServerFailure") || reason == "EstimatorError"
}

fn classify_error(e: &RpcError) -> Classified {
    let (disposition, reason, provider_fault) = match e {
        RpcError::Exhausted { last, .. } => {
            // Every provider failed; the last failure speaks for them, but the
            // breakers' Retry-After of the whole error is kept below.
            let inner = classify_error(last);
            (inner.disposition, inner.reason, true)
        }
        RpcError::Transport { source, .. } => {
            let reason = if source.is_timeout() {
                "Timeout"
            } else if source.is_connect() {
                "ConnectFailed"
            } else {
                "TransportError"
            };
            (disposition_of(e), reason.to_string(), true)
        }
        RpcError::Status { status: 429, .. } => (Disposition::Retry, "RateLimited".into(), true),
        RpcError::Status { status, .. } => (
            disposition_of(e),
            format!("Http{status}"),
            e.is_provider_failure(),
        ),
        RpcError::Decode { .. } => (Disposition::Retry, "UnreadableAnswer".into(), true),
        RpcError::AllOpen { .. } => (Disposition::Retry, "AllProvidersOpen".into(), true),
        RpcError::CallRefused { .. } => (Disposition::Fail, "CallRefused".into(), false),
        RpcError::Config(_) => (Disposition::Fail, "Config".into(), false),
    };
    Classified {
        disposition,
        reason,
        reason_data: None,
        retry_after: e.retry_after(),
        provider_fault,
    }
}

fn disposition_of(e: &RpcError) -> Disposition {
    if e.is_temporary() {
        Disposition::Retry
    } else {
        Disposition::Fail
    }
}

/// `(expected, actual)` of a `BadNonce`'s `reason_data` (numbers; strings of
/// digits accepted too).
fn nonces(reason_data: Option<&Value>) -> Option<(u64, u64)> {
    let d = reason_data?;
    let num = |k: &str| match d.get(k)? {
        Value::Number(n) => n.as_u64(),
        Value::String(s) => s.parse().ok(),
        _ => None,
    };
    Some((num("expected")?, num("actual")?))
}

fn same_txid(a: &str, b: &str) -> bool {
    let bare = |s: &str| {
        let s = s.trim();
        s.strip_prefix("0x").unwrap_or(s).to_ascii_lowercase()
    };
    bare(a) == bare(b)
}

#[cfg(test)]
#[path = "classify_tests.rs"]
mod tests;
