//! The providers as the ingest path's [`BlockSource`]: a gap's missing
//! blocks are read with `GET /v3/blocks/replay/{block_id}` (Nakamoto blocks;
//! the node must have an `auth_token`, else it answers 400), through the
//! same failover, circuit breakers, timeout and error classification as
//! every other RPC call.

use async_trait::async_trait;
use nexus_indexer::observer::NewBlock;
use nexus_indexer::rpc::{block_id, new_block_from_replay, BlockSource};

use super::{Providers, RpcError};

type BlockError = nexus_indexer::rpc::RpcError;

#[async_trait]
impl BlockSource for Providers {
    async fn block(&self, index_block_hash: &str) -> Result<Option<NewBlock>, BlockError> {
        let id = block_id(index_block_hash)?;
        let path = format!("/v3/blocks/replay/{id}");
        let path = path.as_str();
        let body = self
            .with("block_replay", |p| {
                Box::pin(async move {
                    match p.request(reqwest::Method::GET, path, None).await {
                        Ok(answer) => Ok(Some(answer.body)),
                        // stacks-core's "No such block": an answer, not a failure.
                        Err(RpcError::Status { status: 404, .. }) => Ok(None),
                        Err(e) => Err(e),
                    }
                })
            })
            .await
            .map_err(|e| BlockError::Client {
                temporary: e.is_temporary(),
                retry_after: e.retry_after(),
                source: Box::new(e),
            })?;
        let Some(body) = body else {
            return Ok(None);
        };
        new_block_from_replay(&body)
            .map(Some)
            .map_err(|source| BlockError::Decode {
                block: id,
                source: Box::new(source),
            })
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::Duration;

    use super::*;
    use crate::rpc::{breaker, NoObserver};

    fn providers(urls: &[String]) -> Providers {
        Providers::new(
            urls,
            Some("t0ken".into()),
            Duration::from_secs(2),
            breaker::DEFAULT_FAILURE_THRESHOLD,
            breaker::DEFAULT_COOLDOWN,
            Arc::new(NoObserver),
        )
        .unwrap()
    }

    fn closed_port() -> String {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        format!("http://{}", l.local_addr().unwrap())
    }

    /// Nobody listens: a temporary failure, quickly, whatever the id's spelling.
    #[tokio::test]
    async fn an_unreachable_node_is_a_temporary_failure() {
        let p = providers(&[closed_port()]);
        let err = p
            .block(&format!("0x{}", "AB".repeat(32)))
            .await
            .unwrap_err();
        assert!(matches!(err, BlockError::Client { .. }), "{err:?}");
        assert!(err.is_temporary());
    }

    #[tokio::test]
    async fn a_bad_id_is_refused_before_any_request() {
        let p = providers(&[closed_port()]);
        let err = p.block("0x12").await.unwrap_err();
        assert!(matches!(err, BlockError::BadBlockId(_)), "{err:?}");
        assert!(!err.is_temporary());
    }
}
