use std::time::Duration;

use super::replay::ReplayError;

/// Why a block could not be read from the node's RPC. Whether a retry can
/// help is part of the value ([`RpcError::is_temporary`]), not a string to parse.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// `rpc_url` is not a usable base URL, or the client could not be built.
    #[error("invalid RPC configuration: {0}")]
    Config(String),
    /// The caller asked for something that is not a block id.
    #[error("invalid block id {0:?}: expected 32 bytes of hex")]
    BadBlockId(String),
    /// No answer: timeout, connection refused or reset, body cut short.
    #[error("request to {url} failed")]
    Transport {
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The node answered with an error status (404 is not an error: `Ok(None)`).
    #[error("{url} answered HTTP {status}: {body}")]
    Status {
        url: String,
        status: u16,
        /// `Retry-After` in seconds, when the node sent one (429, 503).
        retry_after: Option<Duration>,
        /// The start of the (text/plain) answer, for the log.
        body: String,
    },
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

impl RpcError {
    /// A retry of the same request later may succeed: no answer at all, a
    /// 5xx, a 408, or a 429 (rate limited). 400 (the endpoint is disabled:
    /// the node has no `auth_token`), 401/403 (wrong token) and unreadable
    /// answers need someone to change something.
    pub fn is_temporary(&self) -> bool {
        match self {
            RpcError::Transport { source, .. } => !source.is_builder(),
            RpcError::Status { status, .. } => *status >= 500 || matches!(status, 408 | 429),
            RpcError::Config(_)
            | RpcError::BadBlockId(_)
            | RpcError::Decode { .. }
            | RpcError::WrongBlock { .. } => false,
        }
    }

    /// How long the node asked us to wait (`Retry-After`), if it did.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RpcError::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}
