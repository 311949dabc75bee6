//! A whole `/new_block` payload -> the escrow transactions in it, in chain order.

use std::collections::HashMap;

use clarity::vm::types::Value;
use serde::{Deserialize, Serialize};

use super::print::{decode_print, AdminPrint, EscrowPrint, PaymentPrint};
use super::tx::{decode_escrow_call, decode_tx_hex, EscrowCall};
use super::ContractId;
use crate::observer::NewBlock;

/// Identity and position of a Stacks block.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BlockRef {
    pub index_block_hash: String,
    pub parent_index_block_hash: String,
    pub block_hash: String,
    pub height: u64,
    pub burn_height: u64,
    pub burn_hash: String,
    /// Unix seconds: `block_time`, or `burn_block_time` when the node sends null.
    pub time: u64,
}

/// How a mined transaction ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "status", content = "reason", rename_all = "snake_case")]
pub enum TxOutcome {
    Success,
    /// `abort_by_response` / `abort_by_post_condition`, with the node's reason
    /// (the `(err uN)` result or `vm_error`).
    Aborted(String),
}

/// One transaction of a block that concerns the escrow.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EscrowTx {
    pub txid: String,
    pub tx_index: u32,
    pub outcome: TxOutcome,
    /// The decoded call, when the raw transaction was readable.
    pub call: Option<EscrowCall>,
    /// Payment prints, in `event_index` order.
    pub prints: Vec<PaymentPrint>,
    pub admin: Vec<AdminPrint>,
}

/// Something in a block we had to skip; becomes a dead-letter record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub txid: String,
    pub event_index: Option<u32>,
    pub reason: String,
}

/// Counters for metrics; none of these stop a block.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DecodeStats {
    pub transactions: u64,
    /// Raw transactions that mention the contract but the codec could not read.
    pub undecodable_txs: u64,
    /// Look-alike payment prints from other contracts (ignored: anti-spoofing).
    pub spoofed_prints: u64,
    pub escrow_prints: u64,
}

/// The escrow-relevant content of one block.
#[derive(Debug, Clone)]
pub struct DecodedBlock {
    pub block: BlockRef,
    pub txs: Vec<EscrowTx>,
    pub problems: Vec<Problem>,
    pub stats: DecodeStats,
}

/// `payment-` as hex: present in any print that imitates ours.
const PAYMENT_PREFIX_HEX: &str = "7061796d656e742d";

/// Decode a block: pure, never fails; what it cannot read ends in `problems`.
pub fn decode_block(b: &NewBlock, contract: &ContractId) -> DecodedBlock {
    let block = BlockRef {
        index_block_hash: b.index_block_hash.clone(),
        parent_index_block_hash: b.parent_index_block_hash.clone(),
        block_hash: b.block_hash.clone(),
        height: b.block_height,
        burn_height: b.burn_block_height.unwrap_or(0),
        burn_hash: b.burn_block_hash.clone().unwrap_or_default(),
        time: b.block_time.or(b.burn_block_time).unwrap_or(0),
    };
    let mut stats = DecodeStats {
        transactions: b.transactions.len() as u64,
        ..Default::default()
    };
    let mut problems = Vec::new();
    let tx_index: HashMap<&str, u32> = b
        .transactions
        .iter()
        .map(|t| (t.txid.as_str(), t.tx_index))
        .collect();

    // Our prints, sorted into chain order: the node does not guarantee it.
    let mut ours: Vec<(u32, u32, &str, &str)> = Vec::new();
    for ev in &b.events {
        let Some(ce) = ev.contract_event.as_ref() else {
            continue;
        };
        if !ev.committed || ce.topic != "print" {
            continue;
        }
        if ce.contract_identifier != contract.as_str() {
            if ce.raw_value.contains(PAYMENT_PREFIX_HEX) {
                stats.spoofed_prints += 1;
            }
            continue;
        }
        let idx = tx_index.get(ev.txid.as_str()).copied().unwrap_or(u32::MAX);
        ours.push((idx, ev.event_index, ev.txid.as_str(), ce.raw_value.as_str()));
    }
    ours.sort_unstable_by_key(|(t, e, _, _)| (*t, *e));

    let mut prints_by_tx: HashMap<&str, Vec<EscrowPrint>> = HashMap::new();
    for (_, event_index, txid, raw) in ours {
        stats.escrow_prints += 1;
        match decode_print(raw) {
            Ok(p) => prints_by_tx.entry(txid).or_default().push(p),
            Err(e) => problems.push(Problem {
                txid: txid.to_string(),
                event_index: Some(event_index),
                reason: format!("escrow print: {}", error_chain(&e)),
            }),
        }
    }

    let mut txs = Vec::new();
    for t in &b.transactions {
        let prints = prints_by_tx.remove(t.txid.as_str()).unwrap_or_default();
        // Cheap pre-filter: a call to our contract carries its name's bytes.
        let mentions = t
            .raw_tx
            .as_deref()
            .is_some_and(|r| r.contains(&contract.name_hex));
        if prints.is_empty() && !mentions {
            continue;
        }
        let call = match t.raw_tx.as_deref().map(decode_tx_hex) {
            Some(Ok(tx)) => match decode_escrow_call(&tx, contract) {
                Ok(c) => c,
                Err(e) => {
                    problems.push(Problem {
                        txid: t.txid.clone(),
                        event_index: None,
                        reason: format!("escrow call: {}", error_chain(&e)),
                    });
                    None
                }
            },
            Some(Err(_)) => {
                stats.undecodable_txs += 1;
                None
            }
            None => None,
        };
        if prints.is_empty() && call.is_none() {
            continue;
        }
        let outcome = if t.status == "success" {
            TxOutcome::Success
        } else {
            TxOutcome::Aborted(abort_reason(
                t.raw_result.as_deref(),
                t.vm_error.as_deref(),
                &t.status,
            ))
        };
        let (mut payment_prints, mut admin) = (Vec::new(), Vec::new());
        for p in prints {
            match p {
                EscrowPrint::Payment(p) => payment_prints.push(p),
                EscrowPrint::Admin(a) => admin.push(a),
            }
        }
        txs.push(EscrowTx {
            txid: t.txid.clone(),
            tx_index: t.tx_index,
            outcome,
            call,
            prints: payment_prints,
            admin,
        });
    }
    txs.sort_by_key(|t| t.tx_index);
    DecodedBlock {
        block,
        txs,
        problems,
        stats,
    }
}

/// `(err u104)` from the result when it decodes, else the VM error, else the status.
fn abort_reason(raw_result: Option<&str>, vm_error: Option<&str>, status: &str) -> String {
    if let Some(v) = raw_result.and_then(|r| Value::try_deserialize_hex_untyped(r).ok()) {
        return v.to_string();
    }
    match vm_error {
        // vm_error may carry control characters and NULs (fuzzed-transactions-1.tsv).
        Some(e) if !e.is_empty() => e.chars().filter(|c| !c.is_control()).collect(),
        _ => status.to_string(),
    }
}

/// `Display` of an error and its sources, joined by `: `.
pub(crate) fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut cur = e.source();
    while let Some(src) = cur {
        s.push_str(": ");
        s.push_str(&src.to_string());
        cur = src.source();
    }
    s
}
