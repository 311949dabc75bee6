//! The recorded escrow scenario (`tests/fixtures/escrow-simnet.json`, written
//! by `npm run fixtures` from the real contract in the Clarinet simnet),
//! wrapped in real stacks-node observer envelopes so it can be replayed
//! through the HTTP observer: the demo, end-to-end tests and benchmarks.
//!
//! Every recorded transaction is first announced with `/new_mempool_tx` (its
//! real signed `tx_hex`), then mined in a `/new_block` at its recorded height.
//! Heights in between get empty blocks so parent links form one chain.

use serde::Deserialize;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};

use crate::observer::Route;

/// The fixture file.
#[derive(Debug, Clone, Deserialize)]
pub struct Scenario {
    pub contract_id: String,
    pub timeout: u64,
    pub transactions: Vec<RecordedTx>,
}

/// One recorded transaction.
#[derive(Debug, Clone, Deserialize)]
pub struct RecordedTx {
    pub step: String,
    pub function: String,
    pub sender: String,
    pub block_height: u64,
    pub success: bool,
    pub result_hex: String,
    pub result_repr: String,
    pub events: Vec<RecordedEvent>,
    pub tx_hex: String,
    pub txid: String,
}

/// A recorded event: a print (`raw_value`), or an STX or SIP-010 transfer.
#[derive(Debug, Clone, Deserialize)]
pub struct RecordedEvent {
    #[serde(rename = "type")]
    pub event_type: String,
    #[serde(default)]
    pub contract_identifier: Option<String>,
    #[serde(default)]
    pub raw_value: Option<String>,
    #[serde(default)]
    pub sender: Option<String>,
    #[serde(default)]
    pub recipient: Option<String>,
    #[serde(default)]
    pub amount: Option<String>,
    /// `ft_transfer_event` only: `ADDR.contract::name`.
    #[serde(default)]
    pub asset_identifier: Option<String>,
}

/// One observer POST.
#[derive(Debug, Clone)]
pub struct Delivery {
    pub route: Route,
    pub body: Vec<u8>,
    /// What it carries, for progress output.
    pub label: String,
}

/// Deterministic fake 32-byte hash for synthetic envelopes.
pub fn fake_hash(tag: &str, n: u64) -> String {
    let mut h = Sha256::new();
    h.update(tag.as_bytes());
    h.update(n.to_be_bytes());
    format!("0x{}", hex::encode(h.finalize()))
}

/// The `index_block_hash` [`block_envelope`] gives height `h` on branch `fork`.
pub fn index_hash(fork: &str, h: u64) -> String {
    if h == 0 {
        return fake_hash("genesis", 0);
    }
    fake_hash(&format!("index:{fork}"), h)
}

/// A `/new_block` body in the shape stacks-node 4.x posts (see the
/// `stacks-node-mocknet` captures): `block_time` null, `raw_value`-only prints.
pub fn block_envelope(
    fork: &str,
    height: u64,
    parent_fork: &str,
    txs: &[Value],
    events: &[Value],
) -> Value {
    json!({
        "block_hash": fake_hash(&format!("block:{fork}"), height),
        "block_height": height,
        "block_time": null,
        "burn_block_hash": fake_hash("burn", height + 100),
        "burn_block_height": height + 100,
        "burn_block_time": 1_795_354_800u64 + height * 5,
        "index_block_hash": index_hash(fork, height),
        "parent_block_hash": fake_hash(&format!("block:{parent_fork}"), height.saturating_sub(1)),
        "parent_index_block_hash": index_hash(parent_fork, height.saturating_sub(1)),
        "parent_microblock": format!("0x{}", "0".repeat(64)),
        "parent_microblock_sequence": 0,
        "miner_txid": fake_hash("miner", height),
        "matured_miner_rewards": [],
        "transactions": txs,
        "events": events,
    })
}

/// A transaction entry of `transactions[]`.
pub fn tx_entry(txid: &str, tx_index: u32, success: bool, raw_tx: &str, raw_result: &str) -> Value {
    json!({
        "txid": txid,
        "tx_index": tx_index,
        "status": if success { "success" } else { "abort_by_response" },
        "raw_result": raw_result,
        "raw_tx": raw_tx,
        "contract_interface": null,
        "burnchain_op": null,
        "execution_cost": {"read_count": 0, "read_length": 0, "runtime": 0, "write_count": 0, "write_length": 0},
        "microblock_hash": null,
        "microblock_parent_hash": null,
        "microblock_sequence": null,
        "vm_error": null,
    })
}

/// A print `contract_event` entry of `events[]`.
pub fn print_entry(txid: &str, event_index: u32, contract: &str, raw_value: &str) -> Value {
    json!({
        "txid": txid,
        "event_index": event_index,
        "committed": true,
        "type": "contract_event",
        "contract_event": {"contract_identifier": contract, "topic": "print", "raw_value": raw_value},
    })
}

/// A block's `transactions` and `events` entries for `mined`, in order, with
/// their recorded results and events (a print's real `raw_value`; a print
/// without a contract is our contract's, `contract_id`).
pub fn block_entries(contract_id: &str, mined: &[&RecordedTx]) -> (Vec<Value>, Vec<Value>) {
    let mut txs = Vec::new();
    let mut events = Vec::new();
    for (i, t) in mined.iter().enumerate() {
        txs.push(tx_entry(
            &t.txid,
            i as u32,
            t.success,
            &t.tx_hex,
            &t.result_hex,
        ));
        for e in &t.events {
            let idx = events.len() as u32;
            events.push(match e.event_type.as_str() {
                "print_event" => print_entry(
                    &t.txid,
                    idx,
                    e.contract_identifier.as_deref().unwrap_or(contract_id),
                    e.raw_value.as_deref().unwrap_or_default(),
                ),
                "ft_transfer_event" => json!({
                    "txid": t.txid, "event_index": idx, "committed": true,
                    "type": "ft_transfer_event",
                    "ft_transfer_event": {"asset_identifier": e.asset_identifier, "sender": e.sender,
                                          "recipient": e.recipient, "amount": e.amount},
                }),
                _ => json!({
                    "txid": t.txid, "event_index": idx, "committed": true,
                    "type": "stx_transfer_event",
                    "stx_transfer_event": {"sender": e.sender, "recipient": e.recipient, "amount": e.amount, "memo": ""},
                }),
            });
        }
    }
    (txs, events)
}

impl Scenario {
    /// Parse the fixture.
    pub fn parse(json: &str) -> Result<Scenario, serde_json::Error> {
        serde_json::from_str(json)
    }

    /// Every delivery of the scenario, in order.
    pub fn deliveries(&self) -> Vec<Delivery> {
        let mut out = Vec::new();
        let top = self
            .transactions
            .iter()
            .map(|t| t.block_height)
            .max()
            .unwrap_or(0);
        for h in 1..=top {
            let here: Vec<&RecordedTx> = self
                .transactions
                .iter()
                .filter(|t| t.block_height == h)
                .collect();
            for t in &here {
                out.push(Delivery {
                    route: Route::NewMempoolTx,
                    body: serde_json::to_vec(&json!([t.tx_hex])).expect("json"),
                    label: format!("mempool: {} ({})", t.step, t.function),
                });
            }
            let (txs, events) = block_entries(&self.contract_id, &here);
            let label = match here.as_slice() {
                [] => format!("block {h} (empty)"),
                txs => format!(
                    "block {h}: {}",
                    txs.iter()
                        .map(|t| format!("{} -> {}", t.step, t.result_repr))
                        .collect::<Vec<_>>()
                        .join("; ")
                ),
            };
            out.push(Delivery {
                route: Route::NewBlock,
                body: serde_json::to_vec(&block_envelope("main", h, "main", &txs, &events))
                    .expect("json"),
                label,
            });
        }
        out
    }
}
