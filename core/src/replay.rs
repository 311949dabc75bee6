//! `GET /v3/blocks/replay/{block_id}` -> the observer's [`NewBlock`]. Pure.
//!
//! The response is stacks-core's `RPCReplayedBlock`
//! (`stackslib/src/net/api/blockreplay.rs`; schema `docs/rpc/openapi.yaml`,
//! `components/schemas/block-replay.schema.yaml`; example in
//! `shared/fixtures/stacks-node-events/stacks-core-rpc-examples/block-replay.example.json`).
//! It carries what `/new_block` carries for our purposes, in other places:
//!
//! | replay | `/new_block` |
//! |---|---|
//! | `block_id` (no `0x`) | `index_block_hash` |
//! | `parent_block_id` | `parent_index_block_hash` |
//! | `block_hash`, `block_height` | same |
//! | `timestamp` | `block_time` |
//! | `transactions[].txid`, `tx_index` | same (`0x` added) |
//! | `transactions[].hex` | `raw_tx` (`0x` added) |
//! | `transactions[].result_hex` | `raw_result` |
//! | `post_condition_aborted`, `result_hex` | `status` (see [`tx_status`]) |
//! | `transactions[].events[]` | `events[]`, flattened in transaction order |
//!
//! Not in the replay: the burn block (height, hash, time). [`NewBlock`] leaves
//! them unset, so the stored block has burn height 0 and an empty burn hash;
//! nothing in the escrow's state machine reads them.
//!
//! Events: the replay numbers `event_index` per transaction and marks every
//! event `committed: true`; stacks-node's event dispatcher numbers them across
//! the whole block and sets `committed = !post_condition_aborted`
//! (`stacks-node/src/event_dispatcher.rs`, `create_dispatch_matrix_and_event_vector`).
//! We renumber and re-mark them the dispatcher's way, so a block read here and
//! the same block POSTed by stacks-node decode to the same positions.

use clarity::vm::types::Value;
use serde::Deserialize;

use crate::observer::{BlockEvent, BlockTx, NewBlock};

/// The parts of the replay response we read. Unknown fields are ignored.
#[derive(Debug, Clone, Deserialize)]
pub struct ReplayedBlock {
    /// The block's `index_block_hash`, hex without `0x`.
    pub block_id: String,
    pub block_hash: String,
    pub block_height: u64,
    pub parent_block_id: String,
    /// The Nakamoto header's timestamp (Unix seconds).
    pub timestamp: u64,
    #[serde(default)]
    pub transactions: Vec<ReplayedTx>,
}

/// One replayed transaction.
#[derive(Debug, Clone, Deserialize)]
pub struct ReplayedTx {
    pub txid: String,
    pub tx_index: u32,
    /// The serialized transaction, hex without `0x`.
    pub hex: String,
    /// SIP-005 serialized result, `0x` hex. Older nodes sent only the JSON
    /// `result`, which we do not read: such a node is reported as a decode error.
    pub result_hex: String,
    pub post_condition_aborted: bool,
    #[serde(default)]
    pub vm_error: Option<String>,
    /// Already in the observer's event shape (`StacksTransactionEvent::json_serialize`).
    #[serde(default)]
    pub events: Vec<serde_json::Value>,
}

/// Why a replay response could not be mapped.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    #[error("the response is not a block replay")]
    Json(#[source] serde_json::Error),
    #[error("transaction {txid}: result_hex is not a Clarity value")]
    Result {
        txid: String,
        /// Boxed: clarity's error is over 200 bytes.
        #[source]
        source: Box<clarity::vm::types::serialization::SerializationError>,
    },
    #[error("transaction {txid}: event {index} is not an observer event")]
    Event {
        txid: String,
        index: usize,
        #[source]
        source: serde_json::Error,
    },
}

/// Parse a replay response body and map it.
pub fn new_block_from_replay(body: &[u8]) -> Result<NewBlock, ReplayError> {
    let replayed: ReplayedBlock = serde_json::from_slice(body).map_err(ReplayError::Json)?;
    replayed.into_new_block()
}

impl ReplayedBlock {
    /// The block in the shape stacks-node POSTs to `/new_block`.
    pub fn into_new_block(self) -> Result<NewBlock, ReplayError> {
        let mut transactions = Vec::with_capacity(self.transactions.len());
        let mut events = Vec::new();
        for tx in self.transactions {
            let txid = with_0x(&tx.txid);
            let status = tx_status(&tx)?;
            for (index, mut ev) in tx.events.into_iter().enumerate() {
                if let Some(obj) = ev.as_object_mut() {
                    obj.insert("txid".into(), txid.clone().into());
                    obj.insert("event_index".into(), events.len().into());
                    obj.insert("committed".into(), (!tx.post_condition_aborted).into());
                }
                let ev: BlockEvent =
                    serde_json::from_value(ev).map_err(|source| ReplayError::Event {
                        txid: txid.clone(),
                        index,
                        source,
                    })?;
                events.push(ev);
            }
            transactions.push(BlockTx {
                txid,
                tx_index: tx.tx_index,
                status: status.to_string(),
                raw_result: Some(with_0x(&tx.result_hex)),
                raw_tx: Some(with_0x(&tx.hex)),
                vm_error: tx.vm_error,
            });
        }
        Ok(NewBlock {
            block_hash: with_0x(&self.block_hash),
            block_height: self.block_height,
            index_block_hash: with_0x(&self.block_id),
            parent_index_block_hash: with_0x(&self.parent_block_id),
            parent_block_hash: None,
            burn_block_hash: None,
            burn_block_height: None,
            burn_block_time: None,
            block_time: Some(self.timestamp),
            signer_bitvec: None,
            signer_signature_hash: None,
            transactions,
            events,
        })
    }
}

/// The observer's `status`: `abort_by_post_condition` when the post-conditions
/// aborted it, `abort_by_response` when it returned `(err ...)`, else `success`.
/// A result that is not a Clarity value is an error, never a guessed success.
pub fn tx_status(tx: &ReplayedTx) -> Result<&'static str, ReplayError> {
    if tx.post_condition_aborted {
        return Ok("abort_by_post_condition");
    }
    let result =
        Value::try_deserialize_hex_untyped(&tx.result_hex).map_err(|e| ReplayError::Result {
            txid: with_0x(&tx.txid),
            source: Box::new(e),
        })?;
    Ok(match result {
        Value::Response(r) if !r.committed => "abort_by_response",
        _ => "success",
    })
}

/// `s` with a single `0x` prefix.
pub(crate) fn with_0x(s: &str) -> String {
    let bare = s.strip_prefix("0x").unwrap_or(s);
    format!("0x{bare}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::decode::{decode_block, decode_tx_hex, ContractId};

    /// The `value` of stacks-core's openapi example (the file wraps it in
    /// `summary`/`value`; read at run time: it is not in the repository).
    fn example_body() -> Vec<u8> {
        let text =
            nexus_testkit::read_captured("stacks-core-rpc-examples/block-replay.example.json");
        let v: serde_json::Value = serde_json::from_str(&text).expect("example json");
        serde_json::to_vec(&v["value"]).expect("json")
    }

    #[test]
    fn maps_the_stacks_core_example() {
        nexus_testkit::needs_captured!();
        let nb = new_block_from_replay(&example_body()).expect("maps");
        assert_eq!(
            nb.index_block_hash,
            "0x856f6b08f338164df7422f66337c8ce916b6b0301fcaa09de06c61cfb79e2a45"
        );
        assert_eq!(
            nb.parent_index_block_hash,
            "0x3ac36fc1acfc86ba80ea27cd26017c675f75bc07fb042814b72e74cd7d331503"
        );
        assert_eq!(
            nb.block_hash,
            "0x732f57eefc4dbfb015c9988d9943c47273d25fbe039220d53f311b307609c83f"
        );
        assert_eq!(nb.block_height, 123);
        assert_eq!(nb.block_time, Some(1758284349));
        assert_eq!(
            (nb.burn_block_height, nb.burn_block_hash.as_deref()),
            (None, None)
        );

        assert_eq!(nb.transactions.len(), 1);
        let tx = &nb.transactions[0];
        let txid = "0xf14dd7dec56405fd7dac69c3080fb569fae4c49c591f9ad0e5cf5c797add9005";
        assert_eq!(tx.txid, txid);
        assert_eq!(tx.tx_index, 0);
        assert_eq!(tx.status, "success", "0x0703 is (ok true)");
        assert_eq!(tx.raw_result.as_deref(), Some("0x0703"));
        assert_eq!(tx.vm_error, None);
        // The raw transaction is the real signed STX transfer: the codec reads
        // it, and its txid is the one the node reports.
        let raw = tx.raw_tx.as_deref().expect("raw_tx");
        assert!(raw.starts_with("0x808000000004"));
        let decoded = decode_tx_hex(raw).expect("real transaction decodes");
        assert_eq!(crate::decode::tx::txid_of(&decoded), txid);

        assert_eq!(nb.events.len(), 1);
        let ev = &nb.events[0];
        assert_eq!((ev.txid.as_str(), ev.event_index), (txid, 0));
        assert_eq!(ev.event_type, "stx_transfer_event");
        assert!(ev.committed);
        let stx = ev.stx_transfer_event.as_ref().expect("stx transfer");
        assert_eq!(stx.amount, "1");
        assert_eq!(stx.sender, "STMPB976WGH6GT7T7BM8PAWVQ7MKFNVZQAXS4BFS");

        // And the indexer's own decoder accepts the result like any observer block.
        let contract: ContractId = "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM.x402-nexus-escrow"
            .parse()
            .expect("contract");
        let d = decode_block(&nb, &contract);
        assert_eq!(d.block.index_block_hash, nb.index_block_hash);
        assert_eq!(
            (d.block.height, d.block.time, d.block.burn_height),
            (123, 1758284349, 0)
        );
        assert!(d.problems.is_empty());
    }

    fn example_tx(result_hex: &str, post_condition_aborted: bool) -> ReplayedTx {
        ReplayedTx {
            txid: "ab".repeat(32),
            tx_index: 0,
            hex: "00".into(),
            result_hex: result_hex.into(),
            post_condition_aborted,
            vm_error: None,
            events: Vec::new(),
        }
    }

    #[test]
    fn status_follows_the_result_and_post_conditions() {
        // (ok true), (err u106), u1 (a non-response), as the contract returns them.
        let ok = Value::okay_true().serialize_to_hex().expect("hex");
        let err = Value::error(Value::UInt(106))
            .expect("err")
            .serialize_to_hex()
            .expect("hex");
        let plain = Value::UInt(1).serialize_to_hex().expect("hex");
        assert_eq!(tx_status(&example_tx(&ok, false)).unwrap(), "success");
        assert_eq!(
            tx_status(&example_tx(&format!("0x{err}"), false)).unwrap(),
            "abort_by_response"
        );
        assert_eq!(tx_status(&example_tx(&plain, false)).unwrap(), "success");
        assert_eq!(
            tx_status(&example_tx(&ok, true)).unwrap(),
            "abort_by_post_condition"
        );
        assert!(tx_status(&example_tx("0xzz", false)).is_err());
    }

    #[test]
    fn events_are_renumbered_across_the_block_and_uncommitted_after_a_post_condition_abort() {
        let print = |i: u32| {
            serde_json::json!({
                "txid": "0xignored", "event_index": i, "committed": true,
                "type": "contract_event",
                "contract_event": {"contract_identifier": "SP000000000000000000002Q6VF78.pox", "topic": "print", "raw_value": "0x0703"},
            })
        };
        let ok = Value::okay_true().serialize_to_hex().expect("hex");
        let mut a = example_tx(&ok, false);
        a.txid = "aa".repeat(32);
        a.events = vec![print(0), print(1)];
        let mut b = example_tx(&ok, true);
        b.txid = "bb".repeat(32);
        b.tx_index = 1;
        b.events = vec![print(0)];
        let nb = ReplayedBlock {
            block_id: "01".repeat(32),
            block_hash: "02".repeat(32),
            block_height: 7,
            parent_block_id: "0x".to_string() + &"03".repeat(32),
            timestamp: 1,
            transactions: vec![a, b],
        }
        .into_new_block()
        .expect("maps");
        let got: Vec<(String, u32, bool)> = nb
            .events
            .iter()
            .map(|e| (e.txid.clone(), e.event_index, e.committed))
            .collect();
        let (ta, tb) = (
            format!("0x{}", "aa".repeat(32)),
            format!("0x{}", "bb".repeat(32)),
        );
        assert_eq!(
            got,
            vec![(ta.clone(), 0, true), (ta, 1, true), (tb, 2, false)]
        );
        assert_eq!(
            nb.parent_index_block_hash,
            format!("0x{}", "03".repeat(32)),
            "no double 0x"
        );
    }

    #[test]
    fn older_nodes_without_result_hex_and_bad_events_are_errors() {
        nexus_testkit::needs_captured!();
        let mut v: serde_json::Value = serde_json::from_slice(&example_body()).unwrap();
        v["transactions"][0]
            .as_object_mut()
            .unwrap()
            .remove("result_hex");
        assert!(matches!(
            new_block_from_replay(&serde_json::to_vec(&v).unwrap()),
            Err(ReplayError::Json(_))
        ));
        let mut v: serde_json::Value = serde_json::from_slice(&example_body()).unwrap();
        v["transactions"][0]["events"][0]["type"] = serde_json::json!(5);
        assert!(matches!(
            new_block_from_replay(&serde_json::to_vec(&v).unwrap()),
            Err(ReplayError::Event { index: 0, .. })
        ));
        assert!(matches!(
            new_block_from_replay(b"Not found"),
            Err(ReplayError::Json(_))
        ));
    }
}
