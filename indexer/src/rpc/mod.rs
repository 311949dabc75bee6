//! Reading missing blocks from a stacks-node RPC, behind a narrow trait so
//! the ingest path is tested without I/O. The HTTP client is the verifier's
//! (`nexus_verifier::rpc::Providers`, with failover and circuit breakers),
//! which implements [`BlockSource`]; this crate cannot depend on it.
//!
//! * [`replay`]: pure `GET /v3/blocks/replay/{block_id}` JSON -> the observer's
//!   [`NewBlock`] shape, so a fetched block goes through the same decode and
//!   fork choice as one stacks-node POSTed.
//! * [`error`]: [`RpcError`], temporary vs permanent.

pub mod error;

use async_trait::async_trait;

use nexus_core::observer::NewBlock;

pub use error::RpcError;
pub use nexus_core::replay::{new_block_from_replay, ReplayError, ReplayedBlock, ReplayedTx};

/// Where missing blocks come from when the observer skipped some (a gap).
#[async_trait]
pub trait BlockSource: Send + Sync {
    /// The block whose `index_block_hash` is given (`0x` optional), in the
    /// observer's `/new_block` shape; `Ok(None)` when the source does not have it.
    async fn block(&self, index_block_hash: &str) -> Result<Option<NewBlock>, RpcError>;
}

/// A block id as stacks-core's path regex wants it: 64 lowercase hex
/// digits, no `0x`.
pub fn block_id(index_block_hash: &str) -> Result<String, RpcError> {
    let bare = index_block_hash
        .strip_prefix("0x")
        .unwrap_or(index_block_hash);
    if bare.len() != 64 || !bare.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(RpcError::BadBlockId(index_block_hash.to_string()));
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
        assert!(matches!(block_id("0x12"), Err(RpcError::BadBlockId(_))));
        assert!(matches!(
            block_id(&"zz".repeat(32)),
            Err(RpcError::BadBlockId(_))
        ));
        assert!(!RpcError::BadBlockId(String::new()).is_temporary());
    }
}
