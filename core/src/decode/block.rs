//! A whole `/new_block` payload -> the escrow transactions in it, in chain order.

use std::collections::HashMap;

use clarity::vm::types::Value;
use serde::{Deserialize, Serialize};

use super::print::{decode_print, AdminPrint, EscrowPrint, PaymentPrint};
use super::transfer::Transfer;
use super::tx::{decode_escrow_call, decode_tx_hex, EscrowCall};
use super::ContractId;
use crate::error_chain;
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
    /// `abort_by_response` / `abort_by_post_condition`.
    Aborted(Abort),
}

/// Which kind of abort the node reported (the observer's `status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AbortKind {
    /// The call returned `(err ...)`: the contract refused.
    AbortByResponse,
    /// The post-conditions refused what the call did, whatever it returned
    /// (the node reports `(ok true)` then: the result alone would mislead).
    AbortByPostCondition,
}

/// An aborted transaction: the kind names it, the rest is detail.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(from = "AbortRepr")]
pub struct Abort {
    pub kind: AbortKind,
    /// The call's result as Clarity (`(err u104)`, `(ok true)`), when it decodes.
    pub result: Option<String>,
    /// The node's `vm_error`, control characters removed.
    pub vm_error: Option<String>,
}

/// Stored block rows written before the kind was kept hold the reason string.
#[derive(Deserialize)]
#[serde(untagged)]
enum AbortRepr {
    Full {
        kind: AbortKind,
        result: Option<String>,
        vm_error: Option<String>,
    },
    Reason(String),
}

impl From<AbortRepr> for Abort {
    fn from(r: AbortRepr) -> Self {
        match r {
            AbortRepr::Full {
                kind,
                result,
                vm_error,
            } => Abort {
                kind,
                result,
                vm_error,
            },
            AbortRepr::Reason(s) if s == "abort_by_post_condition" => Abort {
                kind: AbortKind::AbortByPostCondition,
                result: None,
                vm_error: None,
            },
            AbortRepr::Reason(s) => Abort {
                kind: AbortKind::AbortByResponse,
                result: Some(s),
                vm_error: None,
            },
        }
    }
}

impl Abort {
    /// From the observer's `status`, `raw_result` and `vm_error`.
    pub fn from_observer(status: &str, raw_result: Option<&str>, vm_error: Option<&str>) -> Self {
        Abort {
            kind: if status == "abort_by_post_condition" {
                AbortKind::AbortByPostCondition
            } else {
                AbortKind::AbortByResponse
            },
            result: raw_result
                .and_then(|r| Value::try_deserialize_hex_untyped(r).ok())
                .map(|v| v.to_string()),
            // vm_error may carry control characters and NULs (fuzzed-transactions-1.tsv).
            vm_error: vm_error
                .map(|e| e.chars().filter(|c| !c.is_control()).collect::<String>())
                .filter(|e| !e.is_empty()),
        }
    }

    /// An `abort_by_response` with this result (tests and the simnet recorder).
    pub fn by_response(result: &str) -> Self {
        Abort {
            kind: AbortKind::AbortByResponse,
            result: Some(result.to_string()),
            vm_error: None,
        }
    }

    /// The failure reason: which abort it was (`AbortByResponse`,
    /// `AbortByPostCondition`), named like the node's other reasons.
    pub fn reason(&self) -> &'static str {
        match self.kind {
            AbortKind::AbortByResponse => "AbortByResponse",
            AbortKind::AbortByPostCondition => "AbortByPostCondition",
        }
    }

    /// The `reason_data` of the failure: the raw result and VM error.
    pub fn detail(&self) -> serde_json::Value {
        let mut d = serde_json::Map::new();
        if let Some(r) = &self.result {
            d.insert("result".into(), r.clone().into());
        }
        if let Some(e) = &self.vm_error {
            d.insert("vm_error".into(), e.clone().into());
        }
        serde_json::Value::Object(d)
    }
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
    /// An STX or SIP-010 transfer (an x402 `exact` payment candidate).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub transfer: Option<Transfer>,
    /// The SIP-010 assets (`ADDR.contract::name`) the transaction moved: a
    /// token payment's print names only the token's contract, and its
    /// transfer event the asset in it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ft_assets: Vec<String>,
}

impl EscrowTx {
    /// The asset identifier of `token` (`ADDR.contract`) this transaction
    /// moved; the contract itself when no transfer event names it.
    pub fn asset_of(&self, token: &str) -> String {
        self.ft_assets
            .iter()
            .find(|a| crate::domain::token_contract_of(a) == Some(token))
            .cloned()
            .unwrap_or_else(|| token.to_string())
    }
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
    /// Txids that may be x402 `exact` transfers (they moved tokens, or
    /// aborted), not decoded: the indexer decodes only those a payment
    /// record tracks ([`super::transfer::decode_transfers`]), so a block
    /// full of other people's transfers costs a hash each, not a decode.
    pub transfer_candidates: Vec<String>,
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

    // Transactions that moved tokens (x402 `exact` candidates).
    let moved: std::collections::HashSet<&str> = b
        .events
        .iter()
        .filter(|ev| {
            ev.committed && (ev.stx_transfer_event.is_some() || ev.ft_transfer_event.is_some())
        })
        .map(|ev| ev.txid.as_str())
        .collect();
    let mut transfer_candidates = Vec::new();

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

    // The SIP-010 assets a transaction moved, read only for one whose print
    // names a token: most blocks carry none, and the ingest path should not
    // pay a pass over every event for them.
    let ft_assets_of = |txid: &str| -> Vec<String> {
        let mut list: Vec<String> = Vec::new();
        for ev in b.events.iter().filter(|ev| ev.committed && ev.txid == txid) {
            if let Some(ft) = &ev.ft_transfer_event {
                if !list.contains(&ft.asset_identifier) {
                    list.push(ft.asset_identifier.clone());
                }
            }
        }
        list
    };

    let mut txs = Vec::new();
    for t in &b.transactions {
        let prints = prints_by_tx.remove(t.txid.as_str()).unwrap_or_default();
        // Cheap pre-filter: a call to our contract carries its name's bytes.
        let mentions = t
            .raw_tx
            .as_deref()
            .is_some_and(|r| r.contains(contract.name_hex()));
        if prints.is_empty() && !mentions {
            // A transfer moved tokens (success), or may have tried to (abort).
            if t.raw_tx.is_some() && (moved.contains(t.txid.as_str()) || t.status != "success") {
                transfer_candidates.push(t.txid.clone());
            }
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
            TxOutcome::Aborted(Abort::from_observer(
                &t.status,
                t.raw_result.as_deref(),
                t.vm_error.as_deref(),
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
            ft_assets: if payment_prints.iter().any(|p| p.token.is_some()) {
                ft_assets_of(&t.txid)
            } else {
                Vec::new()
            },
            prints: payment_prints,
            admin,
            transfer: None,
        });
    }
    txs.sort_by_key(|t| t.tx_index);
    DecodedBlock {
        block,
        txs,
        problems,
        stats,
        transfer_candidates,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_condition_abort_is_named_and_its_ok_result_kept_as_detail() {
        // What stacks-node sent for a create whose post-conditions refused
        // it: status abort_by_post_condition with raw_result (ok true).
        let a = Abort::from_observer("abort_by_post_condition", Some("0x0703"), None);
        assert_eq!(a.reason(), "AbortByPostCondition");
        assert_eq!(a.detail(), serde_json::json!({"result": "(ok true)"}));
    }

    #[test]
    fn a_response_abort_is_named_and_keeps_the_error_and_vm_error() {
        // (err u104) is 0x08 (err) 0x01 (uint) + 16 bytes.
        let a = Abort::from_observer(
            "abort_by_response",
            Some("0x080100000000000000000000000000000068"),
            Some("some\u{0}error"),
        );
        assert_eq!(a.reason(), "AbortByResponse");
        assert_eq!(
            a.detail(),
            serde_json::json!({"result": "(err u104)", "vm_error": "someerror"})
        );
    }

    #[test]
    fn stored_outcomes_read_in_both_shapes() {
        let now = TxOutcome::Aborted(Abort::from_observer(
            "abort_by_post_condition",
            Some("0x0703"),
            None,
        ));
        let json = serde_json::to_string(&now).unwrap();
        assert_eq!(serde_json::from_str::<TxOutcome>(&json).unwrap(), now);
        // Rows written before the kind was kept hold the reason string.
        let old: TxOutcome =
            serde_json::from_str(r#"{"status":"aborted","reason":"(err u104)"}"#).unwrap();
        assert_eq!(old, TxOutcome::Aborted(Abort::by_response("(err u104)")));
    }
}
