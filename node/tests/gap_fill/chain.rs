//! The scripted chain.

use super::*;

/// The scenario's deliveries by block height: the mempool announcements of a
/// height's transactions, then its `/new_block`.
pub(crate) fn deliveries_by_height() -> Vec<(u64, Vec<Delivery>)> {
    let scenario = Scenario::parse(SCENARIO).expect("fixture parses");
    let mut out: Vec<(u64, Vec<Delivery>)> = Vec::new();
    let mut pending = Vec::new();
    for d in scenario.deliveries() {
        let is_block = d.route == Route::NewBlock;
        pending.push(d);
        if is_block {
            let body: Value = serde_json::from_slice(&pending.last().expect("block").body)
                .expect("envelope json");
            let h = body["block_height"].as_u64().expect("height");
            out.push((h, std::mem::take(&mut pending)));
        }
    }
    out
}

/// The `/new_block` envelope of height `h`.
pub(crate) fn envelope(all: &[(u64, Vec<Delivery>)], h: u64) -> Value {
    let (_, ds) = all
        .iter()
        .find(|(x, _)| *x == h)
        .expect("height in scenario");
    let block = ds.last().expect("block delivery");
    serde_json::from_slice(&block.body).expect("envelope json")
}

pub(crate) fn bare(s: &str) -> String {
    s.trim_start_matches("0x").to_string()
}

/// The block as stacks-core's replay endpoint returns it: ids without `0x`,
/// each transaction's events inside it and numbered per transaction, every
/// event `committed: true`, plus the fields we do not read.
pub(crate) fn replay_of(envelope: &Value) -> Value {
    let events = envelope["events"].as_array().expect("events");
    let txs: Vec<Value> = envelope["transactions"]
        .as_array()
        .expect("transactions")
        .iter()
        .map(|t| {
            let mine: Vec<Value> = events
                .iter()
                .filter(|e| e["txid"] == t["txid"])
                .enumerate()
                .map(|(i, e)| {
                    let mut e = e.clone();
                    e["event_index"] = json!(i);
                    e["committed"] = json!(true);
                    e
                })
                .collect();
            json!({
                "txid": bare(t["txid"].as_str().expect("txid")),
                "tx_index": t["tx_index"],
                "data": null,
                "hex": bare(t["raw_tx"].as_str().expect("raw_tx")),
                "result_hex": t["raw_result"],
                "post_condition_aborted": false,
                "stx_burned": 0,
                "execution_cost": {"read_count": 0, "read_length": 0, "runtime": 0, "write_count": 0, "write_length": 0},
                "vm_error": null,
                "profiler": null,
                "events": mine,
            })
        })
        .collect();
    json!({
        "block_id": bare(envelope["index_block_hash"].as_str().expect("hash")),
        "block_hash": bare(envelope["block_hash"].as_str().expect("hash")),
        "block_height": envelope["block_height"],
        "parent_block_id": bare(envelope["parent_index_block_hash"].as_str().expect("hash")),
        "consensus_hash": "00".repeat(20),
        "fees": 0,
        "miner_signature": "00".repeat(65),
        "signer_signature": [],
        "state_index_root": "00".repeat(32),
        "timestamp": envelope["burn_block_time"],
        "tx_merkle_root": "00".repeat(32),
        "valid_merkle_root": true,
        "transactions": txs,
    })
}
