//! What every case builds: payments, events, blocks, escrow transactions,
//! proofs; and the names the cases use.

pub use std::sync::Arc;
pub use std::time::{Duration, Instant};

pub use nexus_core::decode::{BlockRef, EscrowTx, PaymentPrint, PrintKind, TxOutcome};
pub use nexus_core::domain::{
    EventSource, EventType, Payment, PaymentEvent, PaymentId, PaymentStatus, Proof,
};
pub use nexus_store::postgres::PgHistory;
pub use nexus_store::sqlite::SqliteHistory;
pub use nexus_store::{
    BlockRecord, CommitBatch, DeadLetter, Fence, History, MempoolRecord, PaymentFilter, StoreError,
    UndoRecord,
};
pub use nexus_store::{ChainLog, Queries};

pub const AT: &str = "2025-01-01T00:00:00Z";
pub const ALICE: &str = "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM";
pub const BOB: &str = "ST2CY5V39NHDPWSXMW9QDT3HC3GD6Q6XX4CFRK9AG";
pub const CAROL: &str = "ST2JHG361ZXG51QTKY2NQCVBPPRRE2KZB1HR05NNC";

/// A payment id whose text form sorts by `n`.
pub fn pid(n: u8) -> PaymentId {
    let mut b = [0x11u8; 32];
    b[0] = n;
    PaymentId(b)
}

pub fn payment(id: PaymentId, status: PaymentStatus, sender: &str, recipient: &str) -> Payment {
    let mut p = Payment::new(id, status, AT);
    p.sender = Some(sender.to_string());
    p.recipient = Some(recipient.to_string());
    p.amount = Some("1000000".to_string());
    p
}

pub fn event(id: PaymentId, ty: EventType, status: PaymentStatus) -> PaymentEvent {
    PaymentEvent {
        seq: 0,
        event_type: ty,
        payment_id: id,
        status,
        sender: Some(ALICE.to_string()),
        recipient: Some(BOB.to_string()),
        amount: Some("1000000".to_string()),
        scheme: None,
        asset: None,
        txid: Some(txid(id.0[0] as u32)),
        block_height: None,
        index_block_hash: None,
        burn_block_height: None,
        confirmations: 0,
        is_final: false,
        source: EventSource::Observer,
        reason: None,
        reverted: None,
        at: AT.to_string(),
        reason_data: None,
        retry: None,
    }
}

pub fn txid(n: u32) -> String {
    format!("0x{n:064x}")
}

pub fn block(height: u64, fork: u8, canonical: bool) -> BlockRecord {
    BlockRecord {
        block: BlockRef {
            index_block_hash: format!("0x{fork:02x}{height:062x}"),
            parent_index_block_hash: format!("0x{fork:02x}{:062x}", height.saturating_sub(1)),
            block_hash: format!("0xbb{fork:02x}{height:060x}"),
            height,
            burn_height: 100 + height,
            burn_hash: format!("0xcc{height:062x}"),
            time: 1_700_000_000 + height,
        },
        canonical,
    }
}

pub fn escrow_tx(i: u32, id: PaymentId) -> EscrowTx {
    EscrowTx {
        txid: txid(i),
        tx_index: i,
        outcome: TxOutcome::Success,
        call: None,
        prints: vec![PaymentPrint {
            kind: PrintKind::Created,
            payment_id: id,
            sender: ALICE.to_string(),
            recipient: BOB.to_string(),
            // Past JSON's safe integers on purpose.
            amount: u128::MAX,
            memo: vec![0, 1, 2],
            expires_at: 500,
            block_height: 7,
            // A token payment, so the stored print round-trips its token.
            token: Some("ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM.test-sbtc".into()),
        }],
        admin: vec![],
        transfer: None,
        ft_assets: vec!["ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM.test-sbtc::test-sbtc".into()],
    }
}

pub fn events_batch(ids: &[PaymentId]) -> CommitBatch {
    CommitBatch {
        payments: ids
            .iter()
            .map(|&id| payment(id, PaymentStatus::Submitted, ALICE, BOB))
            .collect(),
        events: ids
            .iter()
            .map(|&id| event(id, EventType::Submitted, PaymentStatus::Submitted))
            .collect(),
        ..Default::default()
    }
}

pub fn seqs(events: &[PaymentEvent]) -> Vec<u64> {
    events.iter().map(|e| e.seq).collect()
}

pub fn ids(payments: &[Payment]) -> Vec<PaymentId> {
    payments.iter().map(|p| p.payment_id).collect()
}

pub fn filter(limit: u32) -> PaymentFilter {
    PaymentFilter {
        limit,
        ..Default::default()
    }
}

pub fn proof(id: PaymentId, status: PaymentStatus, tip: u64) -> Proof {
    Proof {
        payment_id: id,
        status,
        txid: Some(txid(1)),
        tx_index: Some(3),
        block_height: Some(7),
        index_block_hash: Some(block(7, 0, true).block.index_block_hash),
        block_hash: Some(block(7, 0, true).block.block_hash),
        burn_block_height: Some(107),
        burn_block_hash: Some(block(7, 0, true).block.burn_hash),
        confirmations: tip - 7 + 1,
        is_final: tip - 7 + 1 >= 6,
        verified_tip_height: tip,
        verified_tip: format!("0x{tip:064x}"),
        verified_at: AT.to_string(),
    }
}
