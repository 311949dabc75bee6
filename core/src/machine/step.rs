use std::collections::HashMap;

use crate::decode::{
    Abort, BlockRef, DecodedBlock, EscrowCall, EscrowTx, PaymentPrint, PrintKind, Transfer,
    TxOutcome,
};
use crate::domain::{
    ChainPos, EventSource, EventType, Payment, PaymentEvent, PaymentId, PaymentStatus,
};

/// What happened, as far as one payment is concerned.
#[derive(Debug, Clone, Copy)]
pub enum Input<'a> {
    /// A create-payment transaction entered the mempool.
    Mempool { call: &'a EscrowCall },
    /// The node dropped a mempool transaction.
    Dropped {
        txid: &'a str,
        reason: &'a str,
        new_txid: Option<&'a str>,
    },
    /// A payment print in a block: the contract's own word.
    Printed {
        block: &'a BlockRef,
        tx: &'a EscrowTx,
        print: &'a PaymentPrint,
    },
    /// A create-payment that aborted in a block (no print, funds not moved).
    CreateAborted {
        block: &'a BlockRef,
        tx: &'a EscrowTx,
        call: &'a EscrowCall,
        abort: &'a Abort,
    },
    /// An x402 `exact` transfer mined: what its events moved.
    Transferred {
        block: &'a BlockRef,
        tx: &'a EscrowTx,
        transfer: &'a Transfer,
    },
    /// An x402 `exact` transfer that aborted in a block.
    TransferAborted {
        block: &'a BlockRef,
        tx: &'a EscrowTx,
        abort: &'a Abort,
    },
}

/// Context the pure machine needs from outside.
#[derive(Debug, Clone)]
pub struct Ctx {
    /// Height of the canonical tip when the event is emitted.
    pub tip_height: u64,
    /// RFC 3339 now, recorded on the event.
    pub now: String,
    pub source: EventSource,
}

fn pos(block: &BlockRef, tx: &EscrowTx) -> ChainPos {
    ChainPos {
        txid: tx.txid.clone(),
        tx_index: tx.tx_index,
        block_height: block.height,
        index_block_hash: block.index_block_hash.clone(),
        block_hash: block.block_hash.clone(),
        burn_block_height: block.burn_height,
        burn_block_hash: block.burn_hash.clone(),
    }
}

/// One transition. `None` means "nothing changes": duplicates, stale or
/// irrelevant observations. `Some` carries the new record and its event
/// (with `seq` 0: the history store assigns it at commit).
pub fn step(
    prev: Option<&Payment>,
    id: PaymentId,
    input: Input<'_>,
    ctx: &Ctx,
) -> Option<(Payment, PaymentEvent)> {
    use PaymentStatus::*;
    let fresh = || Payment::new(id, Pending, &ctx.now);
    let status = prev.map(|p| p.status);
    let (next, event_type, where_) = match input {
        Input::Transferred {
            block,
            tx,
            transfer,
        } => {
            // Only a transfer the facilitator settled is a payment.
            let p = prev.filter(|p| p.is_exact() && p.create_txid.as_deref() == Some(&tx.txid))?;
            if p.created_in.as_ref().is_some_and(|c| c.txid == tx.txid) {
                return None;
            }
            let here = pos(block, tx);
            let mut p = p.clone();
            p.status = Confirmed;
            // The chain's word: what the events moved.
            p.sender = Some(transfer.sender.clone());
            p.recipient = Some(transfer.recipient.clone());
            p.amount = Some(transfer.amount.to_string());
            p.asset = Some(transfer.asset.clone());
            p.created_in = Some(here.clone());
            p.reason = None;
            p.replaced_by = None;
            (p, EventType::Confirmed, (Some(tx.txid.clone()), Some(here)))
        }
        Input::TransferAborted { block, tx, abort } => {
            let p = prev.filter(|p| p.is_exact() && p.create_txid.as_deref() == Some(&tx.txid))?;
            if p.status == Failed {
                return None;
            }
            let mut p = p.clone();
            p.status = Failed;
            p.reason = Some(abort.reason().to_string());
            let here = pos(block, tx);
            (p, EventType::Failed, (Some(tx.txid.clone()), Some(here)))
        }
        Input::Mempool { call } => {
            if !call.function.creates() {
                return None;
            }
            let same_tx = prev
                .and_then(|p| p.create_txid.as_deref())
                .is_none_or(|t| t == call.txid);
            let resubmittable =
                matches!(status, None | Some(Pending)) || (status == Some(Dropped) && same_tx);
            if !resubmittable || !same_tx {
                return None;
            }
            let mut p = prev.cloned().unwrap_or_else(fresh);
            p.status = Submitted;
            p.sender = Some(call.sender.clone());
            p.recipient = call.recipient.clone();
            p.amount = call.amount.map(|a| a.to_string());
            p.memo = call.memo.as_ref().map(|m| format!("0x{}", hex::encode(m)));
            p.create_txid = Some(call.txid.clone());
            // Until the block's transfer names the asset in it: the contract.
            p.asset = call.token.clone();
            p.reason = None;
            p.replaced_by = None;
            (p, EventType::Submitted, (Some(call.txid.clone()), None))
        }
        Input::Dropped {
            txid,
            reason,
            new_txid,
        } => {
            let p = prev?;
            if !matches!(p.status, Pending | Submitted) || p.create_txid.as_deref() != Some(txid) {
                return None;
            }
            let mut p = p.clone();
            p.status = Dropped;
            p.reason = Some(reason.to_string());
            p.replaced_by = new_txid.map(str::to_string);
            (p, EventType::Dropped, (Some(txid.to_string()), None))
        }
        Input::Printed { block, tx, print } => {
            let here = pos(block, tx);
            let (to, ev) = match print.kind {
                PrintKind::Created => (Confirmed, EventType::Confirmed),
                PrintKind::Claimed => (Claimed, EventType::Claimed),
                PrintKind::Refunded => (Refunded, EventType::Refunded),
            };
            if let Some(p) = prev {
                let already = match print.kind {
                    PrintKind::Created => p.created_in.as_ref().is_some_and(|c| c.txid == tx.txid),
                    _ => p.settled_in.as_ref().is_some_and(|s| s.txid == tx.txid),
                };
                // A create can never follow a settlement: ids are unique forever.
                let stale =
                    print.kind == PrintKind::Created && matches!(p.status, Claimed | Refunded);
                if already || stale {
                    return None;
                }
            }
            let mut p = prev.cloned().unwrap_or_else(fresh);
            p.status = to;
            p.sender = Some(print.sender.clone());
            p.recipient = Some(print.recipient.clone());
            p.amount = Some(print.amount.to_string());
            p.memo = Some(format!("0x{}", hex::encode(&print.memo)));
            p.expires_at = Some(print.expires_at);
            p.asset = print.token.as_deref().map(|t| tx.asset_of(t));
            p.reason = None;
            p.replaced_by = None;
            if print.kind == PrintKind::Created {
                p.create_txid = Some(tx.txid.clone());
                p.created_in = Some(here.clone());
            } else {
                p.settled_in = Some(here.clone());
            }
            (p, ev, (Some(tx.txid.clone()), Some(here)))
        }
        Input::CreateAborted {
            block,
            tx,
            call,
            abort,
        } => {
            // Only the payment's own create can fail it: a replayed id (err u104)
            // from someone else's transaction leaves the real payment alone.
            let ours = match prev {
                None => true,
                Some(p) => {
                    // A replace-by-fee replacement has the same origin and nonce,
                    // so its abort is this payment's failure too.
                    matches!(p.status, Pending | Submitted | Dropped)
                        && (p.create_txid.as_deref().is_none_or(|t| t == tx.txid)
                            || p.replaced_by.as_deref() == Some(tx.txid.as_str()))
                }
            };
            if !ours {
                return None;
            }
            let mut p = prev.cloned().unwrap_or_else(fresh);
            p.status = Failed;
            p.sender = Some(call.sender.clone());
            p.recipient = call.recipient.clone();
            p.amount = call.amount.map(|a| a.to_string());
            p.memo = call.memo.as_ref().map(|m| format!("0x{}", hex::encode(m)));
            p.asset = call.token.clone();
            p.create_txid = Some(tx.txid.clone());
            p.reason = Some(abort.reason().to_string());
            let here = pos(block, tx);
            (p, EventType::Failed, (Some(tx.txid.clone()), Some(here)))
        }
    };
    let mut next = next;
    next.updated_at = ctx.now.clone();
    if where_.1.is_some() {
        // A new on-chain transition starts its own count to finality.
        next.is_final = false;
    }
    let (txid, at) = where_;
    let confirmations = at
        .as_ref()
        .map(|a| ctx.tip_height.saturating_sub(a.block_height) + 1)
        .unwrap_or(0);
    let event = PaymentEvent {
        txid,
        block_height: at.as_ref().map(|a| a.block_height),
        index_block_hash: at.as_ref().map(|a| a.index_block_hash.clone()),
        burn_block_height: at.as_ref().map(|a| a.burn_block_height),
        confirmations,
        reason: match event_type {
            EventType::Failed | EventType::Dropped => next.reason.clone(),
            _ => None,
        },
        // What the node said beside the abort's kind: the raw result.
        reason_data: match input {
            Input::CreateAborted { abort, .. } | Input::TransferAborted { abort, .. } => {
                Some(abort.detail())
            }
            _ => None,
        },
        ..PaymentEvent::about(&next, event_type, ctx.source, &ctx.now)
    };
    Some((next, event))
}

/// Apply every escrow transaction of a block, in order, to `current`
/// (which must hold the prior record of every payment the block touches).
/// Returns the events in emission order; `current` ends with the new records.
pub fn apply_block(
    current: &mut HashMap<PaymentId, Payment>,
    block: &DecodedBlock,
    ctx: &Ctx,
) -> Vec<PaymentEvent> {
    let mut events = Vec::new();
    for tx in &block.txs {
        let inputs: Vec<(PaymentId, Input<'_>)> = match (&tx.outcome, &tx.call) {
            (TxOutcome::Success, _) if tx.transfer.is_some() && tx.prints.is_empty() => {
                let transfer = tx.transfer.as_ref().expect("checked");
                vec![(
                    PaymentId::exact(&tx.txid),
                    Input::Transferred {
                        block: &block.block,
                        tx,
                        transfer,
                    },
                )]
            }
            (TxOutcome::Success, _) => tx
                .prints
                .iter()
                .map(|print| {
                    (
                        print.payment_id,
                        Input::Printed {
                            block: &block.block,
                            tx,
                            print,
                        },
                    )
                })
                .collect(),
            (TxOutcome::Aborted(abort), None) if tx.transfer.is_some() => vec![(
                PaymentId::exact(&tx.txid),
                Input::TransferAborted {
                    block: &block.block,
                    tx,
                    abort,
                },
            )],
            (TxOutcome::Aborted(abort), Some(call)) if call.function.creates() => {
                vec![(
                    call.payment_id,
                    Input::CreateAborted {
                        block: &block.block,
                        tx,
                        call,
                        abort,
                    },
                )]
            }
            _ => Vec::new(),
        };
        for (id, input) in inputs {
            if let Some((p, ev)) = step(current.get(&id), id, input, ctx) {
                current.insert(id, p);
                events.push(ev);
            }
        }
    }
    events
}

/// Every payment id a block can touch (to prefetch their records).
pub fn block_payment_ids(block: &DecodedBlock) -> Vec<PaymentId> {
    let mut ids: Vec<PaymentId> = block
        .txs
        .iter()
        .flat_map(|t| {
            t.prints
                .iter()
                .map(|p| p.payment_id)
                .chain(t.call.as_ref().map(|c| c.payment_id))
                .chain(t.transfer.as_ref().map(|_| PaymentId::exact(&t.txid)))
        })
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Roll one payment back across an orphaned block: restore its record from
/// before the block (`before`), or, when the block introduced it, keep what
/// we know as `pending` (the transaction may well be mined again). Emits
/// `payment:reverted` carrying the orphaned block and the status returned to.
pub fn revert(
    current: &Payment,
    before: Option<&Payment>,
    block: &BlockRef,
    ctx: &Ctx,
) -> (Payment, PaymentEvent) {
    let mut next = before.cloned().unwrap_or_else(|| {
        let mut p = current.clone();
        p.status = PaymentStatus::Pending;
        p.created_in = None;
        p.settled_in = None;
        p.is_final = false;
        p.reason = None;
        p
    });
    next.updated_at = ctx.now.clone();
    let orphaned_tx = [current.settled_in.as_ref(), current.created_in.as_ref()]
        .into_iter()
        .flatten()
        .find(|pos| pos.index_block_hash == block.index_block_hash)
        .map(|pos| pos.txid.clone());
    let event = PaymentEvent {
        txid: orphaned_tx,
        is_final: next.is_final,
        reverted: Some(crate::domain::Reverted {
            index_block_hash: block.index_block_hash.clone(),
            block_height: block.height,
            status: next.status,
        }),
        ..PaymentEvent::about(&next, EventType::Reverted, ctx.source, &ctx.now)
    };
    (next, event)
}

/// The payment's latest on-chain transition is now `depth` blocks deep:
/// mark it final and emit `payment:final`. `None` if not (yet) applicable.
pub fn finalize(
    p: &Payment,
    tip_height: u64,
    depth: u64,
    ctx: &Ctx,
) -> Option<(Payment, PaymentEvent)> {
    if p.is_final {
        return None;
    }
    let pos = p.latest_pos()?;
    let confirmations = tip_height.checked_sub(pos.block_height)? + 1;
    if confirmations < depth {
        return None;
    }
    let mut next = p.clone();
    next.is_final = true;
    next.updated_at = ctx.now.clone();
    let event = PaymentEvent {
        txid: Some(pos.txid.clone()),
        block_height: Some(pos.block_height),
        index_block_hash: Some(pos.index_block_hash.clone()),
        burn_block_height: Some(pos.burn_block_height),
        confirmations,
        is_final: true,
        ..PaymentEvent::about(p, EventType::Final, ctx.source, &ctx.now)
    };
    Some((next, event))
}
