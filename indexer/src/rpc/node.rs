//! [`NodeRpc`]: a stacks-node's RPC over HTTP.

use std::time::Duration;

use async_trait::async_trait;
use reqwest::header::{AUTHORIZATION, RETRY_AFTER};
use reqwest::StatusCode;

use super::error::RpcError;
use super::replay::new_block_from_replay;
use super::BlockSource;
use crate::observer::NewBlock;

/// Longest one request may take: a replay re-executes the block, which is
/// quick for a normal block but not instant.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of an error answer is kept for the log.
const ERROR_BODY_CHARS: usize = 200;

/// Client for one stacks-node's RPC (`rpc_bind`, port 20443 by default).
///
/// Cheap to clone and meant to be shared: the ingest path reads missing
/// blocks with it ([`BlockSource`]), and [`NodeRpc::get`] is the plumbing
/// other readers (the verifier) can build their endpoints on, with the same
/// timeout, authentication and [`RpcError`] classification.
#[derive(Clone)]
pub struct NodeRpc {
    /// Pooled connections; carries the per-request timeout.
    client: reqwest::Client,
    /// Scheme, host and port (and any path prefix), without a trailing `/`.
    base: String,
    /// stacks-node's `connection_options.auth_token`, sent as the raw
    /// `authorization` header the authenticated endpoints compare it with.
    auth_token: Option<String>,
}

impl std::fmt::Debug for NodeRpc {
    /// Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeRpc")
            .field("base", &self.base)
            .field("auth_token", &self.auth_token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

impl NodeRpc {
    /// A client for the node at `base_url` (e.g. `http://127.0.0.1:20443`),
    /// with [`DEFAULT_TIMEOUT`] per request.
    pub fn new(base_url: &str, auth_token: Option<String>) -> Result<Self, RpcError> {
        Self::with_timeout(base_url, auth_token, DEFAULT_TIMEOUT)
    }

    /// [`NodeRpc::new`] with another per-request timeout.
    pub fn with_timeout(
        base_url: &str,
        auth_token: Option<String>,
        timeout: Duration,
    ) -> Result<Self, RpcError> {
        let url = reqwest::Url::parse(base_url)
            .map_err(|e| RpcError::Config(format!("rpc_url {base_url:?}: {e}")))?;
        // The workspace builds reqwest without a TLS backend (a node's RPC is
        // normally on a private network): refuse https now rather than fail
        // every request later.
        if url.scheme() != "http" || url.cannot_be_a_base() {
            return Err(RpcError::Config(format!(
                "rpc_url {base_url:?}: expected http://host:port (https is not supported)"
            )));
        }
        let client = reqwest::Client::builder()
            .timeout(timeout)
            .connect_timeout(timeout)
            .build()
            .map_err(|e| RpcError::Config(format!("HTTP client: {e}")))?;
        Ok(NodeRpc {
            client,
            base: url.as_str().trim_end_matches('/').to_string(),
            auth_token: auth_token.filter(|t| !t.is_empty()),
        })
    }

    /// `GET {base}{path}`: the body of a 2xx, `None` for a 404, an
    /// [`RpcError`] otherwise. The token goes on every request: stacks-node
    /// ignores it where it is not required.
    pub async fn get(&self, path: &str) -> Result<Option<Vec<u8>>, RpcError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.client.get(&url);
        if let Some(token) = &self.auth_token {
            req = req.header(AUTHORIZATION, token);
        }
        let transport = |source| RpcError::Transport {
            url: url.clone(),
            source,
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status();
        if status == StatusCode::NOT_FOUND {
            return Ok(None);
        }
        if !status.is_success() {
            let retry_after = resp
                .headers()
                .get(RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let text = resp.text().await.unwrap_or_default();
            return Err(RpcError::Status {
                url,
                status: status.as_u16(),
                retry_after,
                body: text
                    .chars()
                    .filter(|c| !c.is_control())
                    .take(ERROR_BODY_CHARS)
                    .collect(),
            });
        }
        resp.bytes()
            .await
            .map(|b| Some(b.to_vec()))
            .map_err(transport)
    }

    /// `GET /v3/blocks/replay/{block_id}` (Nakamoto blocks; the node must have
    /// an `auth_token`, else it answers 400), mapped to the observer shape.
    pub async fn block_replay(&self, index_block_hash: &str) -> Result<Option<NewBlock>, RpcError> {
        let id = block_id(index_block_hash)?;
        let Some(body) = self.get(&format!("/v3/blocks/replay/{id}")).await? else {
            return Ok(None);
        };
        let nb = new_block_from_replay(&body).map_err(|source| RpcError::Decode {
            block: id.clone(),
            source: Box::new(source),
        })?;
        if block_id(&nb.index_block_hash).ok().as_deref() != Some(id.as_str()) {
            return Err(RpcError::WrongBlock {
                asked: id,
                got: nb.index_block_hash,
            });
        }
        Ok(Some(nb))
    }
}

#[async_trait]
impl BlockSource for NodeRpc {
    async fn block(&self, index_block_hash: &str) -> Result<Option<NewBlock>, RpcError> {
        self.block_replay(index_block_hash).await
    }
}

/// A block id as stacks-core's path regex wants it: 64 lowercase hex digits, no `0x`.
fn block_id(index_block_hash: &str) -> Result<String, RpcError> {
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
    }

    #[test]
    fn base_url_must_be_http() {
        assert!(NodeRpc::new("http://127.0.0.1:20443/", None).is_ok());
        assert!(matches!(
            NodeRpc::new("127.0.0.1:20443", None),
            Err(RpcError::Config(_))
        ));
        assert!(matches!(
            NodeRpc::new("https://node.example:20443", None),
            Err(RpcError::Config(_))
        ));
        assert!(matches!(
            NodeRpc::new("unix:/tmp/x", None),
            Err(RpcError::Config(_))
        ));
        let dbg = format!(
            "{:?}",
            NodeRpc::new("http://h:1", Some("s3cret".into())).unwrap()
        );
        assert!(!dbg.contains("s3cret"), "{dbg}");
    }

    #[test]
    fn temporary_and_permanent_statuses() {
        let status = |status| RpcError::Status {
            url: String::new(),
            status,
            retry_after: None,
            body: String::new(),
        };
        for s in [500, 502, 503, 408, 429] {
            assert!(status(s).is_temporary(), "{s}");
        }
        for s in [400, 401, 403, 405] {
            assert!(!status(s).is_temporary(), "{s}");
        }
        assert!(!RpcError::BadBlockId(String::new()).is_temporary());
    }

    /// Against a port nobody listens on: a temporary transport error, quickly.
    #[tokio::test]
    async fn connection_refused_is_temporary() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let rpc = NodeRpc::new(&format!("http://{addr}"), None).unwrap();
        let err = rpc.block(&"00".repeat(32)).await.unwrap_err();
        assert!(matches!(err, RpcError::Transport { .. }), "{err:?}");
        assert!(err.is_temporary());
    }
}
