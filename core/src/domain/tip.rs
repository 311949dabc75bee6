use serde::{Deserialize, Serialize};

/// One chain state: every read of a reconcile cycle is pinned to it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Tip {
    pub height: u64,
    /// `0x` + 64 lowercase hex (a `StacksBlockId`).
    pub index_block_hash: String,
    pub burn_height: u64,
}

impl Tip {
    /// The `tip` query value stacks-core accepts: 64 hex digits, no `0x`.
    pub fn query(&self) -> &str {
        self.index_block_hash
            .strip_prefix("0x")
            .unwrap_or(&self.index_block_hash)
    }
}
