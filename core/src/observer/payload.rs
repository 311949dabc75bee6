use serde::Deserialize;

/// Body of `POST /new_block`.
#[derive(Debug, Clone, Deserialize)]
pub struct NewBlock {
    pub block_hash: String,
    pub block_height: u64,
    pub index_block_hash: String,
    pub parent_index_block_hash: String,
    #[serde(default)]
    pub parent_block_hash: Option<String>,
    #[serde(default)]
    pub burn_block_hash: Option<String>,
    #[serde(default)]
    pub burn_block_height: Option<u64>,
    #[serde(default)]
    pub burn_block_time: Option<u64>,
    /// Null on mocknet and on pre-Nakamoto blocks: fall back to `burn_block_time`.
    #[serde(default)]
    pub block_time: Option<u64>,
    /// Set on Nakamoto blocks only (null or absent before epoch 3.0).
    #[serde(default)]
    pub signer_bitvec: Option<serde_json::Value>,
    #[serde(default)]
    pub signer_signature_hash: Option<String>,
    #[serde(default)]
    pub transactions: Vec<BlockTx>,
    /// Not guaranteed to be in transaction order: sort by (tx_index, event_index).
    #[serde(default)]
    pub events: Vec<BlockEvent>,
}

/// One entry of `transactions[]`.
#[derive(Debug, Clone, Deserialize)]
pub struct BlockTx {
    pub txid: String,
    pub tx_index: u32,
    /// `success`, `abort_by_response`, `abort_by_post_condition`.
    pub status: String,
    /// `0x` SIP-005 serialized result.
    #[serde(default)]
    pub raw_result: Option<String>,
    /// `0x` serialized transaction. Burnchain ops carry `0x00`.
    #[serde(default)]
    pub raw_tx: Option<String>,
    /// Only newer nodes send it; may carry control characters.
    #[serde(default)]
    pub vm_error: Option<String>,
}

/// One entry of `events[]`. Only the kinds the escrow needs are typed.
#[derive(Debug, Clone, Deserialize)]
pub struct BlockEvent {
    pub txid: String,
    pub event_index: u32,
    #[serde(rename = "type")]
    pub event_type: String,
    /// Events of aborted transactions arrive with `committed: false`.
    #[serde(default = "default_true")]
    pub committed: bool,
    #[serde(default)]
    pub contract_event: Option<ContractEvent>,
    #[serde(default)]
    pub stx_transfer_event: Option<StxTransferEvent>,
    #[serde(default)]
    pub ft_transfer_event: Option<FtTransferEvent>,
}

fn default_true() -> bool {
    true
}

/// `contract_event` (a `print`). stacks-core 3.4 dropped the JSON `value`
/// (commit 35e7c38674), so only `raw_value` is read.
#[derive(Debug, Clone, Deserialize)]
pub struct ContractEvent {
    pub contract_identifier: String,
    pub topic: String,
    pub raw_value: String,
}

/// `stx_transfer_event`.
#[derive(Debug, Clone, Deserialize)]
pub struct StxTransferEvent {
    pub sender: String,
    pub recipient: String,
    pub amount: String,
}

/// `ft_transfer_event`: a SIP-010 token moved (`asset_identifier` is
/// `ADDR.contract::token`).
#[derive(Debug, Clone, Deserialize)]
pub struct FtTransferEvent {
    pub asset_identifier: String,
    pub sender: String,
    pub recipient: String,
    pub amount: String,
}

/// Body of `POST /new_burn_block` (only what we record).
#[derive(Debug, Clone, Deserialize)]
pub struct NewBurnBlock {
    pub burn_block_hash: String,
    pub burn_block_height: u64,
}

/// Body of `POST /drop_mempool_tx`.
#[derive(Debug, Clone, Deserialize)]
pub struct DropMempoolTx {
    pub dropped_txids: Vec<String>,
    /// `ReplaceByFee`, `ReplaceAcrossFork`, `TooExpensive`, `StaleGarbageCollect`, `Problematic`.
    pub reason: String,
    #[serde(default)]
    pub new_txid: Option<String>,
}

impl NewBlock {
    /// Announced by a Nakamoto (epoch 3.x) node: drives fork choice, see `crate::chain`.
    pub fn is_nakamoto(&self) -> bool {
        self.signer_signature_hash.is_some()
            || self.signer_bitvec.as_ref().is_some_and(|v| !v.is_null())
    }
}
