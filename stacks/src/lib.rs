//! The stacks-node RPC, as the verifier, the relay and the ingest path's
//! gap fill read it: the node's one RPC client, with one [`RpcError`].
//!
//! * [`StacksRpc`]: the narrow trait the reconciler depends on.
//! * [`HttpProvider`]: one node over HTTP or HTTPS (reqwest; its client
//!   from `nexus-outbound`), typed answers decoded with the real Clarity
//!   codec ([`types`]).
//! * [`Providers`]: several nodes, each behind a [`CircuitBreaker`], with
//!   failover; also a `StacksRpc`.
//! * [`RpcError`]: temporary vs permanent, with `Retry-After`.
//! * [`BroadcastAnswer`]: `POST /v2/transactions` accepted or rejected (an
//!   answer, not a provider failure).
//! * [`scripted`] (feature `test-server`): a stacks-node RPC double that
//!   answers from a scripted chain state with the real Clarity codec, for
//!   end-to-end tests and benchmarks. Never used by the binary.
//!
//! Endpoint shapes: stacks-core `docs/rpc/openapi.yaml`.

pub mod breaker;
mod error;
pub mod failover;
pub mod http;
#[cfg(feature = "test-server")]
pub mod scripted;
pub mod types;

use async_trait::async_trait;
use clarity::vm::types::Value;

pub use breaker::{BreakerState, CircuitBreaker};
pub use error::RpcError;
pub use failover::{NoObserver, ProviderStatus, Providers, RpcObserver};
pub use http::HttpProvider;
pub use types::{Account, BroadcastAnswer, NodeInfo, Tip};

/// A deployed contract, as RPC paths name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ContractRef {
    pub address: String,
    pub name: String,
}

impl From<&nexus_core::decode::ContractId> for ContractRef {
    fn from(c: &nexus_core::decode::ContractId) -> Self {
        ContractRef {
            address: c.address.clone(),
            name: c.name.clone(),
        }
    }
}

/// The stacks-node RPC endpoints the verifier reads. Every state read takes
/// the tip it is pinned to (`?tip=`), so one reconcile cycle sees one chain state.
#[async_trait]
pub trait StacksRpc: Send + Sync + 'static {
    /// `GET /v2/info`: the tip and sync state.
    async fn info(&self) -> Result<NodeInfo, RpcError>;
    /// `POST /v2/contracts/call-read/{address}/{contract}/{function}?tip=`.
    async fn call_read(
        &self,
        contract: &ContractRef,
        function: &str,
        args: &[Value],
        sender: &str,
        tip: &Tip,
    ) -> Result<Value, RpcError>;
    /// `POST /v2/map_entry/{address}/{contract}/{map}?proof=0&tip=`; `None`: no entry.
    async fn map_entry(
        &self,
        contract: &ContractRef,
        map: &str,
        key: &Value,
        tip: &Tip,
    ) -> Result<Option<Value>, RpcError>;
    /// `GET /v2/accounts/{principal}?proof=0&tip=`.
    async fn account(&self, principal: &str, tip: &Tip) -> Result<Account, RpcError>;
}
