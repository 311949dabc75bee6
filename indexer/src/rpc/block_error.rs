use nexus_core::replay::ReplayError;
use nexus_stacks::RpcError;

/// Why a missing block could not be read. Whether a retry can help is part
/// of the value ([`BlockReadError::is_temporary`]), not a string to parse.
#[derive(Debug, thiserror::Error)]
pub enum BlockReadError {
    /// The caller asked for something that is not a block id.
    #[error("invalid block id {0:?}: expected 32 bytes of hex")]
    BadBlockId(String),
    /// The RPC client failed: no answer, an error status, every provider
    /// down or refused. The client classified it.
    #[error("the block could not be read from the RPC")]
    Rpc(#[from] RpcError),
    /// The answer is not a block replay we can read.
    #[error("could not read the replay of block {block}")]
    Decode {
        block: String,
        /// Boxed: it can carry clarity's large deserialization error.
        #[source]
        source: Box<ReplayError>,
    },
    /// The node answered with another block than the one asked for.
    #[error("asked for block {asked}, the node answered block {got}")]
    WrongBlock { asked: String, got: String },
}

impl BlockReadError {
    /// A retry of the same request later may succeed: what the client said
    /// of its failure. A bad id, an unreadable answer or the wrong block
    /// need someone to change something.
    pub fn is_temporary(&self) -> bool {
        match self {
            BlockReadError::Rpc(e) => e.is_temporary(),
            BlockReadError::BadBlockId(_)
            | BlockReadError::Decode { .. }
            | BlockReadError::WrongBlock { .. } => false,
        }
    }
}
