//! x402 `exact` payments inside a block: STX `token-transfer`s and SIP-010
//! `transfer` calls, with what really moved, read from the block's
//! `stx_transfer_event` / `ft_transfer_event` (the chain's word, not the
//! transaction's intent).
//!
//! [`super::decode_block`] only lists a block's candidates (transactions
//! that moved tokens, or aborted); the indexer decodes, with
//! [`decode_transfers`], only those the facilitator settled (a record keyed
//! by [`crate::domain::PaymentId::exact`] tracks them), so we never decode
//! or index every transfer on the chain.

use serde::{Deserialize, Serialize};
use stacks_codec::codec::{StacksTransaction, TransactionPayload};

use super::block::{Abort, EscrowTx, TxOutcome};
use super::tx::decode_tx_hex;
use super::tx::origin_address;
use crate::observer::{BlockEvent, NewBlock};

/// What an `exact` payment's transaction moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transfer {
    /// `STX`, or the token as the event names it (`ADDR.contract::token`).
    /// For an aborted call, which moved nothing, the called contract.
    pub asset: String,
    pub sender: String,
    pub recipient: String,
    /// Base units moved (for an aborted transaction, what it tried to move).
    pub amount: u128,
}

/// Is `tx` shaped like an `exact` payment (an STX transfer, or a call of a
/// function named `transfer`)? Cheap: no events read.
pub fn is_transfer_shaped(tx: &StacksTransaction) -> bool {
    match &tx.payload {
        TransactionPayload::TokenTransfer(..) => true,
        TransactionPayload::ContractCall(c) => c.function_name.as_str() == "transfer",
        _ => false,
    }
}

/// The transfer `tx` made, from its committed `events` when it succeeded,
/// or from its payload when it aborted. `None`: not a transfer, or a
/// successful one whose events show no matching movement.
pub fn transfer_of(
    tx: &StacksTransaction,
    events: &[&BlockEvent],
    success: bool,
) -> Option<Transfer> {
    let sender = origin_address(tx);
    match &tx.payload {
        TransactionPayload::TokenTransfer(to, amount, _) => {
            if !success {
                return Some(Transfer {
                    asset: "STX".into(),
                    sender,
                    recipient: to.to_string(),
                    amount: u128::from(*amount),
                });
            }
            let ev = events.iter().find_map(|e| e.stx_transfer_event.as_ref())?;
            Some(Transfer {
                asset: "STX".into(),
                sender: ev.sender.clone(),
                recipient: ev.recipient.clone(),
                amount: ev.amount.parse().ok()?,
            })
        }
        TransactionPayload::ContractCall(c) if c.function_name.as_str() == "transfer" => {
            let contract = format!("{}.{}", c.address, c.contract_name.as_str());
            if !success {
                let (amount, recipient) = match c.function_args.as_slice() {
                    [clarity::vm::types::Value::UInt(a), _, r, ..] => (*a, r.to_string()),
                    _ => (0, String::new()),
                };
                return Some(Transfer {
                    asset: contract,
                    sender,
                    recipient,
                    amount,
                });
            }
            // The token's own movement, from the signer: a token contract
            // may move others as a side effect.
            let prefix = format!("{contract}::");
            let ev = events.iter().find_map(|e| {
                e.ft_transfer_event
                    .as_ref()
                    .filter(|f| f.asset_identifier.starts_with(&prefix) && f.sender == sender)
            })?;
            Some(Transfer {
                asset: ev.asset_identifier.clone(),
                sender: ev.sender.clone(),
                recipient: ev.recipient.clone(),
                amount: ev.amount.parse().ok()?,
            })
        }
        _ => None,
    }
}

/// The transactions `txids` of block `b` that are transfers, decoded with
/// what their committed events moved, in `tx_index` order.
pub fn decode_transfers(b: &NewBlock, txids: &[&str]) -> Vec<EscrowTx> {
    b.transactions
        .iter()
        .filter(|t| txids.contains(&t.txid.as_str()))
        .filter_map(|t| {
            let tx = decode_tx_hex(t.raw_tx.as_deref()?).ok()?;
            if !is_transfer_shaped(&tx) {
                return None;
            }
            let success = t.status == "success";
            let events: Vec<&BlockEvent> = b
                .events
                .iter()
                .filter(|e| e.committed && e.txid == t.txid)
                .collect();
            let transfer = transfer_of(&tx, &events, success)?;
            Some(EscrowTx {
                txid: t.txid.clone(),
                tx_index: t.tx_index,
                outcome: if success {
                    TxOutcome::Success
                } else {
                    TxOutcome::Aborted(Abort::from_observer(
                        &t.status,
                        t.raw_result.as_deref(),
                        t.vm_error.as_deref(),
                    ))
                },
                call: None,
                prints: Vec::new(),
                admin: Vec::new(),
                transfer: Some(transfer),
                ft_assets: Vec::new(),
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::decode_transfers;
    use crate::decode::{decode_block, ContractId, TxOutcome};
    use crate::observer::NewBlock;

    const FIXTURE: &str = include_str!("../../../tests/fixtures/x402-txs.json");

    fn tx(label: &str) -> serde_json::Value {
        let f: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
        f["txs"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["label"] == label)
            .unwrap()
            .clone()
    }

    /// A block of the fixture's STX and token transfers with the events a
    /// node sends: the token's are those the test token emitted in the
    /// Clarinet simnet (`token_transfer_events`), its amount changed to show
    /// that the event, not the argument, is read.
    fn block() -> NewBlock {
        let f: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
        let (stx, token, claim) = (tx("stx"), tx("token"), tx("escrow claim"));
        let entry = |t: &serde_json::Value, i: u32, status: &str| json!({"txid": t["txid"], "tx_index": i, "status": status, "raw_tx": t["tx_hex"], "raw_result": "0x0703"});
        let mut events = vec![
            json!({"txid": stx["txid"], "event_index": 0, "type": "stx_transfer_event", "committed": true,
             "stx_transfer_event": {"sender": f["payer"], "recipient": f["pay_to"], "amount": "1000", "memo": ""}}),
        ];
        for (i, e) in f["token_transfer_events"]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let kind = e["type"].as_str().unwrap();
            let mut data = e.clone();
            data.as_object_mut().unwrap().remove("type");
            if kind == "ft_transfer_event" {
                data["amount"] = json!("499");
            }
            events.push(json!({"txid": token["txid"], "event_index": i + 1, "type": kind, "committed": true, kind: data}));
        }
        serde_json::from_value(json!({
            "block_hash": "0x01", "block_height": 7, "index_block_hash": "0x02",
            "parent_index_block_hash": "0x03",
            "transactions": [entry(&stx, 0, "success"), entry(&token, 1, "success"), entry(&claim, 2, "abort_by_response")],
            "events": events,
        }))
        .unwrap()
    }

    #[test]
    fn transfers_carry_what_their_events_moved() {
        let f: serde_json::Value = serde_json::from_str(FIXTURE).unwrap();
        let escrow: ContractId = f["escrow"].as_str().unwrap().parse().unwrap();
        let b = block();
        let d = decode_block(&b, &escrow);
        // The block lists both transfers as candidates, and decodes neither.
        let (stx, token) = (tx("stx"), tx("token"));
        assert_eq!(
            d.transfer_candidates,
            [
                stx["txid"].as_str().unwrap(),
                token["txid"].as_str().unwrap()
            ]
        );
        assert!(d.txs.iter().all(|t| t.transfer.is_none()));
        let candidates: Vec<&str> = d.transfer_candidates.iter().map(String::as_str).collect();
        let decoded = decode_transfers(&b, &candidates);
        let transfers: Vec<_> = decoded
            .iter()
            .filter_map(|t| t.transfer.as_ref().map(|x| (t.txid.as_str(), x)))
            .collect();
        assert_eq!(transfers.len(), 2, "{decoded:?}");
        assert_eq!(transfers[0].0, tx("stx")["txid"]);
        assert_eq!(transfers[0].1.asset, "STX");
        assert_eq!(transfers[0].1.amount, 1000);
        assert_eq!(transfers[1].1.asset, f["token"]);
        // The event's amount, not the argument's 500.
        assert_eq!(transfers[1].1.amount, 499);
        assert_eq!(transfers[1].1.recipient, f["pay_to"]);
        // The aborted escrow claim is an escrow call, not a transfer.
        let claim = d
            .txs
            .iter()
            .find(|t| t.txid == tx("escrow claim")["txid"])
            .unwrap();
        assert!(claim.transfer.is_none() && claim.call.is_some());
        assert!(matches!(claim.outcome, TxOutcome::Aborted(_)));
    }
}
