//! `/new_block` bodies carrying escrow `create-payment` calls, built like
//! `benches/ingest.rs` does (real serialized transactions, the real print
//! tuple), for tests and `bench-ws` that need events flowing. The includer
//! provides `gen` (benches/common).

use std::collections::HashMap;

use clarity::types::chainstate::StacksAddress;
use clarity::types::Address;
use clarity::vm::types::Value;
use serde_json::json;
use stacks_codec::codec::StacksMessageCodec;

use nexus_core::domain::PaymentId;
use nexus_core::simnet::{block_envelope, print_entry, tx_entry};
use nexus_node::config::DEFAULT_CONTRACT_ID;

use super::gen::{escrow_call, payment_print, principal, splitmix64};

/// `(ok true)`.
const OK_TRUE_HEX: &str = "0x0703";
/// The contract's PAYMENT-TIMEOUT.
const TIMEOUT: u64 = 100;

/// One `create-payment` to put in a block.
#[derive(Debug, Clone, Copy)]
pub struct NewPayment {
    pub id: PaymentId,
    pub payer: u64,
    pub payee: u64,
    pub amount: u128,
}

/// A deterministic payment id for number `n`.
pub fn payment_id(n: u64) -> PaymentId {
    let mut id = [0u8; 32];
    for (k, chunk) in id.chunks_mut(8).enumerate() {
        chunk.copy_from_slice(
            &splitmix64(n.wrapping_mul(4).wrapping_add(k as u64) ^ 0x77).to_be_bytes(),
        );
    }
    PaymentId(id)
}

/// Account `n`'s principal as the node shows it.
pub fn principal_of(n: u64) -> String {
    principal(n).to_string()
}

/// A chain of blocks on fork "main", one height at a time.
pub struct Chain {
    height: u64,
    nonces: HashMap<u64, u64>,
    deployer: StacksAddress,
}

impl Default for Chain {
    fn default() -> Self {
        Self::new()
    }
}

impl Chain {
    pub fn new() -> Self {
        let (address, _) = DEFAULT_CONTRACT_ID.split_once('.').expect("contract id");
        Chain {
            height: 0,
            nonces: HashMap::new(),
            deployer: StacksAddress::from_string(address).expect("deployer"),
        }
    }

    /// The next block's `/new_block` body, with these payments created in it.
    pub fn block(&mut self, payments: &[NewPayment]) -> Vec<u8> {
        self.height += 1;
        let height = self.height;
        let mut txs = Vec::new();
        let mut events = Vec::new();
        for (i, p) in payments.iter().enumerate() {
            let nonce = self.nonces.entry(p.payer).or_default();
            let tx = escrow_call(
                self.deployer,
                p.payer,
                *nonce,
                "create-payment",
                vec![
                    Value::buff_from(p.id.0.to_vec()).expect("buff"),
                    Value::Principal(principal(p.payee)),
                    Value::UInt(p.amount),
                    Value::buff_from(b"memo".to_vec()).expect("buff"),
                ],
            );
            *nonce += 1;
            let mut raw = Vec::new();
            tx.consensus_serialize(&mut raw).expect("serialize tx");
            let txid = format!("0x{}", hex::encode(tx.txid().as_bytes()));
            txs.push(tx_entry(
                &txid,
                i as u32,
                true,
                &format!("0x{}", hex::encode(&raw)),
                OK_TRUE_HEX,
            ));
            events.push(json!({
                "txid": txid, "event_index": events.len(), "committed": true,
                "type": "stx_transfer_event",
                "stx_transfer_event": {"sender": principal_of(p.payer), "recipient": DEFAULT_CONTRACT_ID, "amount": p.amount.to_string(), "memo": ""},
            }));
            let print = payment_print(
                "payment-created",
                &p.id,
                p.payer,
                p.payee,
                p.amount,
                b"memo".to_vec(),
                height + TIMEOUT,
                height,
            );
            events.push(print_entry(
                &txid,
                events.len() as u32,
                DEFAULT_CONTRACT_ID,
                &print,
            ));
        }
        serde_json::to_vec(&block_envelope("main", height, "main", &txs, &events)).expect("JSON")
    }
}
