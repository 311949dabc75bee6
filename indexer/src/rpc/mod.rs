//! The Stacks node's RPC, behind a narrow trait so the ingest path can be
//! tested without I/O and the real client can be reused (the verifier will
//! read blocks the same way).
//!
//! * [`replay`]: pure `GET /v3/blocks/replay/{block_id}` JSON -> the observer's
//!   [`NewBlock`] shape, so a fetched block goes through the same decode and
//!   fork choice as one stacks-node POSTed.
//! * [`node`]: [`NodeRpc`], the reqwest client for a real stacks-node.
//! * [`error`]: [`RpcError`], temporary vs permanent.

pub mod error;
pub mod node;
pub mod replay;

use async_trait::async_trait;

use crate::observer::NewBlock;

pub use error::RpcError;
pub use node::NodeRpc;
pub use replay::{new_block_from_replay, ReplayError, ReplayedBlock, ReplayedTx};

/// Where missing blocks come from when the observer skipped some (a gap).
#[async_trait]
pub trait BlockSource: Send + Sync {
    /// The block whose `index_block_hash` is given (`0x` optional), in the
    /// observer's `/new_block` shape; `Ok(None)` when the source does not have it.
    async fn block(&self, index_block_hash: &str) -> Result<Option<NewBlock>, RpcError>;
}
