//! Reading missing blocks from a stacks-node RPC, behind a narrow trait so
//! the ingest path is tested without I/O.
//!
//! * [`providers`]: the node's one RPC client (`nexus_stacks::Providers`,
//!   failover and circuit breakers) as the [`BlockSource`]; the replay JSON
//!   is mapped to the observer's [`NewBlock`] shape by the pure
//!   `nexus_core::replay`, so a fetched block goes through the same decode
//!   and fork choice as one stacks-node POSTed.
//! * [`BlockReadError`]: temporary vs permanent.

mod block_error;
pub mod providers;

use async_trait::async_trait;

use nexus_core::observer::NewBlock;

pub use block_error::BlockReadError;

/// Where missing blocks come from when the observer skipped some (a gap).
#[async_trait]
pub trait BlockSource: Send + Sync {
    /// The block whose `index_block_hash` is given (`0x` optional), in the
    /// observer's `/new_block` shape; `Ok(None)` when the source does not have it.
    async fn block(&self, index_block_hash: &str) -> Result<Option<NewBlock>, BlockReadError>;
}

/// A block id as stacks-core's path regex wants it: 64 lowercase hex
/// digits, no `0x`.
pub fn block_id(index_block_hash: &str) -> Result<String, BlockReadError> {
    let bare = index_block_hash
        .strip_prefix("0x")
        .unwrap_or(index_block_hash);
    if bare.len() != 64 || !bare.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(BlockReadError::BadBlockId(index_block_hash.to_string()));
    }
    Ok(bare.to_ascii_lowercase())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn block_ids_are_normalized_and_checked() {
        let h = "AB".repeat(32);
        assert_eq!(block_id(&format!("0x{h}")).unwrap(), "ab".repeat(32));
        assert!(matches!(
            block_id("0x12"),
            Err(BlockReadError::BadBlockId(_))
        ));
        assert!(matches!(
            block_id(&"zz".repeat(32)),
            Err(BlockReadError::BadBlockId(_))
        ));
        assert!(!BlockReadError::BadBlockId(String::new()).is_temporary());
    }
}
