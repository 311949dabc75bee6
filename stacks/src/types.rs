//! Answers of the stacks-node RPC endpoints we read, in the shapes of
//! stacks-core's `docs/rpc/openapi.yaml` (examples in
//! `shared/fixtures/stacks-node-events/stacks-core-rpc-examples/`). Pure.

use clarity::vm::types::Value;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512_256};

pub use nexus_core::domain::Tip;

/// `GET /v2/info` (stacks-core `RPCPeerInfoData`), the fields we use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeInfo {
    pub stacks_tip_height: u64,
    /// The tip's block hash (not its index hash), hex without `0x`.
    pub stacks_tip: String,
    /// Consensus hash of the tip's tenure (sortition), hex without `0x`.
    pub stacks_tip_consensus_hash: String,
    pub burn_block_height: u64,
    /// Absent on older nodes: treated as synced.
    #[serde(default = "yes")]
    pub is_fully_synced: bool,
}

fn yes() -> bool {
    true
}

impl NodeInfo {
    /// The tip as the `?tip=` parameter and our block records name it.
    pub fn tip(&self) -> Result<Tip, String> {
        Ok(Tip {
            height: self.stacks_tip_height,
            index_block_hash: index_block_hash(&self.stacks_tip, &self.stacks_tip_consensus_hash)?,
            burn_height: self.burn_block_height,
        })
    }
}

/// A block's index hash: SHA-512/256 of its block hash then its consensus
/// hash (stacks-common `StacksBlockId::new`). Returns `0x` + hex.
pub fn index_block_hash(block_hash: &str, consensus_hash: &str) -> Result<String, String> {
    let bytes = |s: &str, len: usize, what: &str| -> Result<Vec<u8>, String> {
        let b = hex::decode(s.strip_prefix("0x").unwrap_or(s))
            .map_err(|e| format!("{what} {s:?}: {e}"))?;
        if b.len() != len {
            return Err(format!("{what} {s:?}: expected {len} bytes"));
        }
        Ok(b)
    };
    let mut h = Sha512_256::new();
    h.update(bytes(block_hash, 32, "stacks_tip")?);
    h.update(bytes(consensus_hash, 20, "stacks_tip_consensus_hash")?);
    Ok(format!("0x{}", hex::encode(h.finalize())))
}

/// `POST /v2/contracts/call-read/...` answer (`ReadOnlyFunctionResult`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct CallReadResponse {
    pub okay: bool,
    /// `0x` hex of the SIP-005 result, when `okay`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<String>,
    /// Why the node refused, when not `okay`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cause: Option<String>,
}

/// `POST /v2/map_entry/...` answer (`ClarityData`): `data` is the
/// serialized `(optional value)`; a missing key is `none` (`0x09`).
#[derive(Debug, Clone, Deserialize, Serialize)]
pub struct MapEntryResponse {
    pub data: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub proof: Option<String>,
}

/// `GET /v2/accounts/{principal}` answer (`AccountEntryResponse`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
pub struct AccountResponse {
    /// `0x` + hex of a big-endian u128 (uSTX).
    pub balance: String,
    pub locked: String,
    pub unlock_height: u64,
    pub nonce: u64,
}

/// An account, decoded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Account {
    pub balance: u128,
    pub locked: u128,
    pub unlock_height: u64,
    pub nonce: u64,
}

impl AccountResponse {
    pub fn decode(&self) -> Result<Account, String> {
        let amount = |s: &str| {
            u128::from_str_radix(s.strip_prefix("0x").unwrap_or(s), 16)
                .map_err(|e| format!("amount {s:?}: {e}"))
        };
        Ok(Account {
            balance: amount(&self.balance)?,
            locked: amount(&self.locked)?,
            unlock_height: self.unlock_height,
            nonce: self.nonce,
        })
    }
}

/// What a stacks-node said to `POST /v2/transactions`. Both are answers
/// (the node is healthy); transport failures, 5xx and 429 stay [`RpcError`]s.
///
/// Shapes: stacks-core `stackslib/src/net/api/posttransaction.rs` (200 with
/// the txid as a JSON string, hex without `0x`; also 200 when the mempool
/// already holds that txid) and `MemPoolRejection::into_json` in
/// `stackslib/src/chainstate/stacks/db/blocks.rs` (400 with
/// `{"error": "transaction rejected", "reason", "reason_data"?, "txid"}`).
///
/// [`RpcError`]: super::RpcError
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "answer", rename_all = "snake_case")]
pub enum BroadcastAnswer {
    /// In the node's mempool (new, or already there).
    Accepted {
        /// `0x` + 64 lowercase hex, whatever form the node used.
        txid: String,
    },
    /// The node's mempool refused it.
    Rejected {
        /// The `MemPoolRejection` code (`BadNonce`, `FeeTooLow`, ...).
        reason: String,
        /// Per-reason details (`{"expected", "actual", ...}`), when given.
        reason_data: Option<serde_json::Value>,
        /// The txid the node computed, `0x` + lowercase hex, when given.
        txid: Option<String>,
        /// One line for people: the `error` field, and `reason_data.message`
        /// when the node gave one.
        message: String,
    },
}

/// A txid in our form (`0x` + lowercase hex), from the node's (bare hex, or
/// `0x`-prefixed). `None` if it is not 32 bytes of hex.
pub fn normalize_txid(s: &str) -> Option<String> {
    let s = s.trim();
    let hex_part = s
        .strip_prefix("0x")
        .or_else(|| s.strip_prefix("0X"))
        .unwrap_or(s);
    (hex_part.len() == 64 && hex_part.bytes().all(|b| b.is_ascii_hexdigit()))
        .then(|| format!("0x{}", hex_part.to_ascii_lowercase()))
}

/// The txid of a successful broadcast: a JSON string (the node's form), or
/// the bare text some proxies send.
pub fn parse_broadcast_accepted(body: &[u8]) -> Result<String, String> {
    let text = String::from_utf8_lossy(body);
    let raw = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(serde_json::Value::String(s)) => s,
        Ok(other) => return Err(format!("expected a txid string, got {other:.80}")),
        Err(_) => text.trim().trim_matches('"').to_string(),
    };
    normalize_txid(&raw).ok_or_else(|| format!("expected a txid, got {raw:.80?}"))
}

/// A 400 answer that is a mempool rejection; `None` for any other 400 (a
/// body that is not the rejection object, e.g. the plain-text "Failed to
/// deserialize posted transaction" of the HTTP layer).
pub fn parse_broadcast_rejection(body: &[u8]) -> Option<BroadcastAnswer> {
    let v: serde_json::Value = serde_json::from_slice(body).ok()?;
    let obj = v.as_object()?;
    let reason = obj.get("reason")?.as_str()?.to_string();
    let reason_data = obj.get("reason_data").filter(|d| !d.is_null()).cloned();
    let txid = obj
        .get("txid")
        .and_then(|t| t.as_str())
        .and_then(normalize_txid);
    let error = obj
        .get("error")
        .and_then(|e| e.as_str())
        .unwrap_or("transaction rejected");
    let message = match reason_data
        .as_ref()
        .and_then(|d| d.get("message"))
        .and_then(|m| m.as_str())
    {
        Some(m) => format!("{error}: {reason}: {m}"),
        None => format!("{error}: {reason}"),
    };
    Some(BroadcastAnswer::Rejected {
        reason,
        reason_data,
        txid,
        message,
    })
}

/// A Clarity value from `0x` hex, as the node serialized it.
pub fn decode_value(hex: &str) -> Result<Value, String> {
    // The same as `Value::try_deserialize_hex_untyped`, with the `hex` crate's
    // decoder instead of stacks-common's char-by-char one (a reconcile cycle
    // decodes one answer per open payment).
    let bytes = ::hex::decode(hex.strip_prefix("0x").unwrap_or(hex))
        .map_err(|e| format!("Clarity value {hex:.40}: bad hex string: {e}"))?;
    Value::deserialize_read(&mut bytes.as_slice(), None, false)
        .map_err(|e| format!("Clarity value {hex:.40}: {e}"))
}

/// A Clarity value as a call-read argument or map key: `0x` + hex.
pub fn encode_value(v: &Value) -> Result<String, String> {
    // `serialize_to_hex` formats byte by byte (`write!("{:02x}")`); the
    // bytes are the same.
    let bytes = v
        .serialize_to_vec()
        .map_err(|e| format!("serializing {v}: {e:?}"))?;
    let mut out = String::with_capacity(2 + 2 * bytes.len());
    out.push_str("0x");
    out.push_str(&::hex::encode(bytes));
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// stacks-core's openapi example `name` (captured, read at run time).
    fn example(name: &str) -> serde_json::Value {
        let text =
            nexus_testkit::read_captured(&format!("stacks-core-rpc-examples/{name}.example.json"));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["value"].clone()
    }

    #[test]
    fn node_info_example_parses_and_names_its_tip() {
        nexus_testkit::needs_captured!();
        let info: NodeInfo = serde_json::from_value(example("node-info")).unwrap();
        assert_eq!(info.stacks_tip_height, 1_832_097);
        assert!(!info.is_fully_synced);
        let tip = info.tip().unwrap();
        assert_eq!(tip.height, 1_832_097);
        assert_eq!(tip.index_block_hash.len(), 66);
        assert_eq!(tip.query().len(), 64);
        // Deterministic, and block hash first: swapping the inputs is refused (lengths differ).
        assert_eq!(
            index_block_hash(&info.stacks_tip, &info.stacks_tip_consensus_hash).unwrap(),
            tip.index_block_hash
        );
        assert!(index_block_hash(&info.stacks_tip_consensus_hash, &info.stacks_tip).is_err());
    }

    #[test]
    fn read_only_examples_parse() {
        nexus_testkit::needs_captured!();
        let ok: CallReadResponse =
            serde_json::from_value(example("read-only-function-success")).unwrap();
        assert!(ok.okay);
        let v = decode_value(ok.result.as_deref().unwrap()).unwrap();
        assert_eq!(v, Value::UInt(1));
        let bad: CallReadResponse =
            serde_json::from_value(example("read-only-function-failure")).unwrap();
        assert!(!bad.okay);
        assert_eq!(bad.cause.as_deref(), Some("NotReadOnly"));
        let data: MapEntryResponse = serde_json::from_value(example("clarity-data")).unwrap();
        assert!(decode_value(&data.data).is_ok());
    }

    #[test]
    fn broadcast_rejection_example_parses_whole() {
        nexus_testkit::needs_captured!();
        let body = serde_json::to_vec(&example("transaction-submission-error")).unwrap();
        let answer = parse_broadcast_rejection(&body).expect("a rejection");
        let BroadcastAnswer::Rejected {
            reason,
            reason_data,
            txid,
            message,
        } = answer
        else {
            panic!("{answer:?}")
        };
        assert_eq!(reason, "BadNonce");
        let data = reason_data.unwrap();
        assert_eq!(
            (data["expected"].as_u64(), data["actual"].as_u64()),
            (Some(0), Some(4))
        );
        assert_eq!(
            txid.as_deref(),
            Some("0xcaf6fd60ae05b0c2d19ef14ab6a7670b1095d117fa7c80224c74e76214d0a791")
        );
        assert_eq!(message, "transaction rejected: BadNonce");
        // A message in reason_data is carried; a 400 that is not a rejection is not one.
        let with_msg = br#"{"error":"transaction rejected","reason":"ServerFailureOther","reason_data":{"message":"Failed to load chain tip"}}"#;
        match parse_broadcast_rejection(with_msg) {
            Some(BroadcastAnswer::Rejected { message, txid, .. }) => {
                assert_eq!(
                    message,
                    "transaction rejected: ServerFailureOther: Failed to load chain tip"
                );
                assert_eq!(txid, None);
            }
            other => panic!("{other:?}"),
        }
        for not_one in [
            &b"Failed to deserialize posted transaction: bad"[..],
            br#"{"error":"x"}"#,
            br#""0xab""#,
        ] {
            assert_eq!(parse_broadcast_rejection(not_one), None);
        }
    }

    #[test]
    fn broadcast_txid_in_every_form_the_node_uses() {
        let hex = "E161978626f216b2141b156ade10501207ae535fa365a13ef5d7a7c9310a09f2";
        let ours = format!("0x{}", hex.to_ascii_lowercase());
        for body in [
            format!("\"{hex}\""),
            format!("\"0x{hex}\""),
            hex.to_string(),
            format!("0x{hex}\n"),
        ] {
            assert_eq!(
                parse_broadcast_accepted(body.as_bytes()),
                Ok(ours.clone()),
                "{body}"
            );
        }
        assert!(parse_broadcast_accepted(b"\"abc\"").is_err());
        assert!(parse_broadcast_accepted(br#"{"txid":"ab"}"#).is_err());
    }

    #[test]
    fn values_round_trip_and_accounts_decode() {
        let v = Value::buff_from(vec![7; 32]).unwrap();
        assert_eq!(decode_value(&encode_value(&v).unwrap()).unwrap(), v);
        let acct = AccountResponse {
            balance: "0x0000000000000000000000000000ff00".into(),
            locked: "0x00000000000000000000000000000000".into(),
            unlock_height: 0,
            nonce: 3,
        };
        assert_eq!(acct.decode().unwrap().balance, 0xff00);
    }

    /// The `hex`-crate shortcuts agree with the Clarity codec's own hex functions.
    #[test]
    fn hex_codec_matches_clarity() {
        let tuple =
            nexus_core::escrow::encode_get_payment(Some(&nexus_core::escrow::ChainPayment {
                sender: "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM".into(),
                recipient: "ST2CY5V39NHDPWSXMW9QDT3HC3GD6Q6XX4CFRK9AG".into(),
                amount: 1_000,
                memo: vec![0xab; 34],
                created_at: 1,
                expires_at: 2,
                status: nexus_core::escrow::ChainStatus::Claimed,
                token: None,
            }));
        for v in [
            Value::buff_from(vec![0x5a; 32]).unwrap(),
            Value::none(),
            Value::UInt(u128::MAX),
            tuple,
        ] {
            let ours = encode_value(&v).unwrap();
            assert_eq!(ours, format!("0x{}", v.serialize_to_hex().unwrap()));
            assert_eq!(decode_value(&ours).unwrap(), v);
            assert_eq!(decode_value(&ours.to_uppercase()[2..]).unwrap(), v);
            assert_eq!(
                decode_value(&ours).unwrap(),
                Value::try_deserialize_hex_untyped(&ours).unwrap()
            );
        }
        for bad in ["0x0", "0xzz", "0x"] {
            assert!(decode_value(bad).is_err(), "{bad}");
            assert!(Value::try_deserialize_hex_untyped(bad).is_err(), "{bad}");
        }
    }
}
