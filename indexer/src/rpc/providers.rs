//! The providers as the ingest path's [`BlockSource`]: a gap's missing
//! blocks are read with `GET /v3/blocks/replay/{block_id}` (Nakamoto blocks;
//! the node must have an `auth_token`, else it answers 400), through the
//! same failover, circuit breakers and error classification as every other
//! RPC call (with a longer time bound: the node re-executes the block).

use async_trait::async_trait;
use nexus_core::observer::NewBlock;
use nexus_core::replay::new_block_from_replay;
use nexus_stacks::Providers;

use super::{block_id, BlockReadError as BlockError, BlockSource};

#[async_trait]
impl BlockSource for Providers {
    async fn block(&self, index_block_hash: &str) -> Result<Option<NewBlock>, BlockError> {
        let id = block_id(index_block_hash)?;
        let body = self
            .with("block_replay", |p| Box::pin(p.block_replay(&id)))
            .await
            .map_err(BlockError::Rpc)?;
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
    use nexus_stacks::http::REPLAY_TIMEOUT;
    use nexus_stacks::{breaker, NoObserver};

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
        assert!(matches!(err, BlockError::Rpc(_)), "{err:?}");
        assert!(err.is_temporary());
    }

    /// A replay slower than the provider's own timeout still gets its
    /// answer (here stacks-core's 404), within [`REPLAY_TIMEOUT`].
    #[tokio::test]
    async fn a_slow_replay_outlasts_the_read_timeout() {
        use axum::routing::get;
        let app = axum::Router::new().route(
            "/v3/blocks/replay/:id",
            get(|| async {
                tokio::time::sleep(Duration::from_millis(600)).await;
                (axum::http::StatusCode::NOT_FOUND, "No such block")
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        let p = Providers::new(
            &[url],
            None,
            Duration::from_millis(200),
            breaker::DEFAULT_FAILURE_THRESHOLD,
            breaker::DEFAULT_COOLDOWN,
            Arc::new(NoObserver),
        )
        .unwrap();
        assert!(REPLAY_TIMEOUT > Duration::from_millis(600));
        assert!(p.block(&"ab".repeat(32)).await.unwrap().is_none());
    }

    #[tokio::test]
    async fn a_bad_id_is_refused_before_any_request() {
        let p = providers(&[closed_port()]);
        let err = p.block("0x12").await.unwrap_err();
        assert!(matches!(err, BlockError::BadBlockId(_)), "{err:?}");
        assert!(!err.is_temporary());
    }
}
