//! Answers of the stacks-node RPC endpoints we read, in the shapes of
//! stacks-core's `docs/rpc/openapi.yaml` (examples in
//! `shared/fixtures/stacks-node-events/stacks-core-rpc-examples/`). Pure.

use clarity::vm::types::Value;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha512_256};

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

/// One chain state: every read of a reconcile cycle is pinned to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tip {
    pub height: u64,
    /// `0x` + 64 lowercase hex (a `StacksBlockId`).
    pub index_block_hash: String,
    pub burn_height: u64,
}

impl Tip {
    /// The `tip` query value stacks-core accepts: 64 hex digits, no `0x`.
    pub fn query(&self) -> &str {
        self.index_block_hash
            .strip_prefix("0x")
            .unwrap_or(&self.index_block_hash)
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

/// A Clarity value from `0x` hex, as the node serialized it.
pub fn decode_value(hex: &str) -> Result<Value, String> {
    Value::try_deserialize_hex_untyped(hex).map_err(|e| format!("Clarity value {hex:.40}: {e}"))
}

/// A Clarity value as a call-read argument or map key: `0x` + hex.
pub fn encode_value(v: &Value) -> Result<String, String> {
    v.serialize_to_hex()
        .map(|h| format!("0x{h}"))
        .map_err(|e| format!("serializing {v}: {e:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIXTURES: &str = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../shared/fixtures/stacks-node-events/stacks-core-rpc-examples"
    );

    fn example(name: &str) -> serde_json::Value {
        let text = std::fs::read_to_string(format!("{FIXTURES}/{name}.example.json"))
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        v["value"].clone()
    }

    #[test]
    fn node_info_example_parses_and_names_its_tip() {
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
}
