//! Column conversions both SQL backends share: integers that must fit an
//! `i64` column, JSON bodies and a block's sets (its escrow transactions,
//! its undo records), each failure classified for its backend (a value we
//! cannot write is `rejected`, a row we cannot read `corrupt`).

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::Serialize;

use nexus_core::decode::EscrowTx;
use nexus_core::domain::{Payment, PaymentId};

use crate::types::sanitize_text;
use crate::{StoreError, UndoRecord};

/// The conversions for one backend (its name goes into every error).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Codec(pub &'static str);

impl Codec {
    /// SQL integers are i64; a u64 past that is refused, not wrapped.
    pub fn write_int(self, v: u64) -> Result<i64, StoreError> {
        i64::try_from(v).map_err(|e| StoreError::rejected(self.0, e))
    }

    pub fn read_int(self, v: i64) -> Result<u64, StoreError> {
        u64::try_from(v).map_err(|e| StoreError::corrupt(self.0, e))
    }

    /// Bodies are TEXT: serde_json escapes control characters (`\u0000`),
    /// so they never carry a raw NUL.
    pub fn write_json<T: Serialize>(self, v: &T) -> Result<String, StoreError> {
        serde_json::to_string(v).map_err(|e| StoreError::rejected(self.0, e))
    }

    pub fn read_json<T: DeserializeOwned>(self, s: &str) -> Result<T, StoreError> {
        serde_json::from_str(s).map_err(|e| StoreError::corrupt(self.0, e))
    }

    /// `block_txs.body`: the transactions in `tx_index` order, the first of a
    /// repeated index kept (as the old per-transaction rows' `DO NOTHING` did).
    pub fn write_txs(self, txs: &[EscrowTx]) -> Result<String, StoreError> {
        let mut sorted: Vec<&EscrowTx> = txs.iter().collect();
        sorted.sort_by_key(|t| t.tx_index);
        sorted.dedup_by_key(|t| t.tx_index);
        self.write_json(&sorted)
    }

    /// `block_undo.body` of each block in `undo`, as `(block, body)`:
    /// `[payment_id, before]` pairs in `payment_id` order, the last record
    /// of a repeated payment kept.
    pub fn write_undo(self, undo: &[UndoRecord]) -> Result<Vec<(String, String)>, StoreError> {
        let mut by_block: BTreeMap<&str, BTreeMap<PaymentId, &Option<Payment>>> = BTreeMap::new();
        for u in undo {
            by_block
                .entry(&u.index_block_hash)
                .or_default()
                .insert(u.payment_id, &u.before);
        }
        by_block
            .into_iter()
            .map(|(block, set)| {
                let pairs: Vec<(PaymentId, &Option<Payment>)> = set.into_iter().collect();
                Ok((sanitize_text(block), self.write_json(&pairs)?))
            })
            .collect()
    }

    /// The undo records of block `hash` from its `block_undo.body`.
    pub fn read_undo(self, hash: &str, body: &str) -> Result<Vec<UndoRecord>, StoreError> {
        let pairs: Vec<(PaymentId, Option<Payment>)> = self.read_json(body)?;
        Ok(pairs
            .into_iter()
            .map(|(payment_id, before)| UndoRecord {
                index_block_hash: hash.to_string(),
                payment_id,
                before,
            })
            .collect())
    }
}
