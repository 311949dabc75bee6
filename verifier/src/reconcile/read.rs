//! The chain reads of one cycle, all pinned to the same tip: the escrow's
//! `get-payment` for each escrow payment, and the payer's account (its
//! nonce) for each x402 `exact` transfer, one read per payer however many
//! of its transfers are open.

use std::collections::BTreeMap;

use futures::stream::{self, StreamExt};

use nexus_core::domain::{Payment, PaymentId};
use nexus_core::escrow::{decode_get_payment, payment_id_arg};
use nexus_stacks::{ContractRef, RpcError, StacksRpc, Tip};

use super::workset::Answer;

/// One RPC read and the payments its answer is for.
enum Read {
    Escrow(PaymentId),
    Account {
        payer: String,
        payments: Vec<PaymentId>,
    },
}

/// What a cycle's reads found.
pub(super) struct Reads {
    /// One per payment asked about; an error is the RPC's (or the decoder's) message.
    pub answers: Vec<(PaymentId, Result<Answer, String>)>,
    /// RPC calls made.
    pub calls: u64,
}

/// Read what the chain says of `payments` at `tip`, `concurrency` calls at a time.
pub(super) async fn read_all(
    rpc: &dyn StacksRpc,
    contract: &ContractRef,
    concurrency: usize,
    payments: &[&Payment],
    tip: &Tip,
) -> Reads {
    let mut reads = Vec::new();
    let mut by_payer: BTreeMap<&str, Vec<PaymentId>> = BTreeMap::new();
    for p in payments {
        match (p.is_exact(), p.sender.as_deref()) {
            (true, Some(payer)) => by_payer.entry(payer).or_default().push(p.payment_id),
            // The work set only watches transfers whose payer it knows.
            (true, None) => {}
            (false, _) => reads.push(Read::Escrow(p.payment_id)),
        }
    }
    reads.extend(by_payer.into_iter().map(|(payer, payments)| Read::Account {
        payer: payer.to_string(),
        payments,
    }));
    let calls = reads.len() as u64;
    let sender = contract.address.as_str();
    let answers = stream::iter(reads)
        .map(|read| async move {
            match read {
                Read::Escrow(id) => {
                    let r = rpc
                        .call_read(contract, "get-payment", &[payment_id_arg(&id)], sender, tip)
                        .await
                        .map_err(|e: RpcError| nexus_core::error_chain(&e))
                        .and_then(|v| decode_get_payment(&v).map_err(|e| e.to_string()))
                        .map(Answer::Escrow);
                    vec![(id, r)]
                }
                Read::Account { payer, payments } => {
                    let r = rpc
                        .account(&payer, tip)
                        .await
                        .map(|a| Answer::Nonce(a.nonce))
                        .map_err(|e| nexus_core::error_chain(&e));
                    payments.into_iter().map(|id| (id, r.clone())).collect()
                }
            }
        })
        .buffer_unordered(concurrency.max(1))
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .flatten()
        .collect();
    Reads { answers, calls }
}
