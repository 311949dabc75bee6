//! [`HttpProvider`]: one stacks-node RPC endpoint over HTTP (reqwest).

use std::time::Duration;

use async_trait::async_trait;
use clarity::vm::types::Value;
use reqwest::header::{AUTHORIZATION, CONTENT_TYPE, RETRY_AFTER};
use serde::de::DeserializeOwned;

use super::types::{
    decode_value, encode_value, parse_broadcast_accepted, parse_broadcast_rejection, Account,
    AccountResponse, BroadcastAnswer, CallReadResponse, MapEntryResponse, NodeInfo, Tip,
};
use super::{ContractRef, RpcError, StacksRpc};
use nexus_core::error_chain;
use nexus_outbound::Outbound;

/// Default bound on one request: the verifier would rather fall over to the
/// next provider than wait on a slow one.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);

/// Bound on one block replay, whatever `timeout` the provider has: the node
/// re-executes the block to answer, which takes longer than a read.
pub const REPLAY_TIMEOUT: Duration = Duration::from_secs(10);

/// How much of an error answer is kept for the log. Broadcast rejections are
/// parsed from the whole body before this applies.
const ERROR_BODY_CHARS: usize = 4096;

/// One stacks-node's RPC. Cheap to clone (pooled connections are shared).
#[derive(Clone)]
pub struct HttpProvider {
    client: reqwest::Client,
    /// The per-request bound the client was built with.
    timeout: Duration,
    /// Scheme, host and port (and any path prefix), without a trailing `/`.
    base: String,
    /// Sent as the raw `authorization` header (stacks-node's
    /// `connection_options.auth_token`); ignored where not required.
    auth_token: Option<String>,
}

impl std::fmt::Debug for HttpProvider {
    /// Never prints the token.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HttpProvider")
            .field("base", &self.base)
            .field("auth_token", &self.auth_token.as_ref().map(|_| "<set>"))
            .finish()
    }
}

/// The body of a successful answer, or a classified error.
pub struct Answer {
    pub status: u16,
    pub body: Vec<u8>,
}

/// Any answer, before the status is judged.
struct RawAnswer {
    url: String,
    status: u16,
    retry_after: Option<Duration>,
    body: Vec<u8>,
}

impl RawAnswer {
    /// A non-2xx answer as an [`RpcError::Status`], the body shortened for the log.
    fn into_error(self, provider: &str) -> RpcError {
        RpcError::Status {
            provider: provider.to_string(),
            url: self.url,
            status: self.status,
            retry_after: self.retry_after,
            body: String::from_utf8_lossy(&self.body)
                .chars()
                .filter(|c| !c.is_control())
                .take(ERROR_BODY_CHARS)
                .collect(),
        }
    }
}

impl HttpProvider {
    /// A provider at `base_url` (`http://host:20443` or `https://…`),
    /// `timeout` per request, trusting the platform's roots only.
    pub fn new(
        base_url: &str,
        auth_token: Option<String>,
        timeout: Duration,
    ) -> Result<Self, RpcError> {
        Self::with_outbound(base_url, auth_token, timeout, &Outbound::default())
    }

    /// [`HttpProvider::new`] with the client `outbound` builds (the node's
    /// one, which also trusts `ca_cert_path`).
    pub fn with_outbound(
        base_url: &str,
        auth_token: Option<String>,
        timeout: Duration,
        outbound: &Outbound,
    ) -> Result<Self, RpcError> {
        let url = reqwest::Url::parse(base_url)
            .map_err(|e| RpcError::Config(format!("rpc url {base_url:?}: {e}")))?;
        // Anything else would fail every call: refuse it at start instead.
        if !matches!(url.scheme(), "http" | "https") || url.cannot_be_a_base() {
            return Err(RpcError::Config(format!(
                "rpc url {base_url:?}: expected http://host:port or https://host:port"
            )));
        }
        let client = outbound
            .client(timeout)
            .map_err(|e| RpcError::Config(format!("HTTP client: {}", error_chain(&e))))?;
        Ok(HttpProvider {
            client,
            timeout,
            base: url.as_str().trim_end_matches('/').to_string(),
            auth_token: auth_token.filter(|t| !t.is_empty()),
        })
    }

    /// The base URL: the provider's name in logs and metrics.
    pub fn name(&self) -> &str {
        &self.base
    }

    /// Send `method path` with an optional JSON or raw body. 2xx answers come
    /// back whole; anything else is a classified [`RpcError`] (its body cut
    /// short for the log). Public for endpoints this client does not
    /// wrap; broadcasts go through [`HttpProvider::broadcast`].
    pub async fn request(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<Answer, RpcError> {
        let raw = self.send(method, path, body, None).await?;
        if !(200..300).contains(&raw.status) {
            return Err(raw.into_error(&self.base));
        }
        Ok(Answer {
            status: raw.status,
            body: raw.body,
        })
    }

    /// `POST /v2/transactions` with the raw transaction bytes. A 200 is
    /// [`BroadcastAnswer::Accepted`] (also when the mempool already held the
    /// transaction); a 400 carrying a mempool rejection is
    /// [`BroadcastAnswer::Rejected`], read from the whole body. Both are
    /// answers: only no answer, a 5xx, a 429, another 4xx or an unreadable
    /// 200 are [`RpcError`]s, classified as for every other call.
    pub async fn broadcast(&self, tx: &[u8]) -> Result<BroadcastAnswer, RpcError> {
        const PATH: &str = "/v2/transactions";
        let raw = self
            .send(
                reqwest::Method::POST,
                PATH,
                Some(("application/octet-stream", tx.to_vec())),
                None,
            )
            .await?;
        match raw.status {
            200..=299 => parse_broadcast_accepted(&raw.body)
                .map(|txid| BroadcastAnswer::Accepted { txid })
                .map_err(|e| self.decode_err(PATH, e)),
            400 => match parse_broadcast_rejection(&raw.body) {
                Some(rejected) => Ok(rejected),
                None => Err(raw.into_error(&self.base)),
            },
            _ => Err(raw.into_error(&self.base)),
        }
    }

    /// `GET /v3/blocks/replay/{block_id}` (`block_id`: 64 lowercase hex
    /// digits): the replay JSON, or `None` for stacks-core's 404 "No such
    /// block". Bounded by [`REPLAY_TIMEOUT`] or the provider's own timeout,
    /// whichever is longer.
    pub async fn block_replay(&self, block_id: &str) -> Result<Option<Vec<u8>>, RpcError> {
        let path = format!("/v3/blocks/replay/{block_id}");
        let timeout = self.timeout.max(REPLAY_TIMEOUT);
        let raw = self
            .send(reqwest::Method::GET, &path, None, Some(timeout))
            .await?;
        match raw.status {
            200..=299 => Ok(Some(raw.body)),
            404 => Ok(None),
            _ => Err(raw.into_error(&self.base)),
        }
    }

    /// One exchange, whatever the status; only a missing answer is an error.
    /// `timeout` overrides the provider's for this request.
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
        timeout: Option<Duration>,
    ) -> Result<RawAnswer, RpcError> {
        let url = format!("{}{path}", self.base);
        let mut req = self.client.request(method, &url);
        if let Some(t) = timeout {
            req = req.timeout(t);
        }
        if let Some(token) = &self.auth_token {
            req = req.header(AUTHORIZATION, token);
        }
        if let Some((content_type, bytes)) = body {
            req = req.header(CONTENT_TYPE, content_type).body(bytes);
        }
        let transport = |source| RpcError::Transport {
            provider: self.base.clone(),
            url: url.clone(),
            source,
        };
        let resp = req.send().await.map_err(transport)?;
        let status = resp.status().as_u16();
        let retry_after = resp
            .headers()
            .get(RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.trim().parse::<u64>().ok())
            .map(Duration::from_secs);
        let body = if (200..300).contains(&status) {
            resp.bytes().await.map_err(transport)?.to_vec()
        } else {
            // The status is the answer: a body cut short is still an error answer.
            resp.bytes().await.map(|b| b.to_vec()).unwrap_or_default()
        };
        Ok(RawAnswer {
            url,
            status,
            retry_after,
            body,
        })
    }

    async fn json<T: DeserializeOwned>(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<(&'static str, Vec<u8>)>,
    ) -> Result<T, RpcError> {
        let answer = self.request(method, path, body).await?;
        serde_json::from_slice(&answer.body).map_err(|e| self.decode_err(path, e.to_string()))
    }

    fn decode_err(&self, path: &str, detail: String) -> RpcError {
        RpcError::Decode {
            provider: self.base.clone(),
            url: format!("{}{path}", self.base),
            detail,
        }
    }
}

fn json_body(v: &serde_json::Value) -> Option<(&'static str, Vec<u8>)> {
    Some(("application/json", v.to_string().into_bytes()))
}

#[async_trait]
impl StacksRpc for HttpProvider {
    async fn info(&self) -> Result<NodeInfo, RpcError> {
        self.json(reqwest::Method::GET, "/v2/info", None).await
    }

    async fn call_read(
        &self,
        contract: &ContractRef,
        function: &str,
        args: &[Value],
        sender: &str,
        tip: &Tip,
    ) -> Result<Value, RpcError> {
        let path = format!(
            "/v2/contracts/call-read/{}/{}/{function}?tip={}",
            contract.address,
            contract.name,
            tip.query()
        );
        let arguments = args
            .iter()
            .map(encode_value)
            .collect::<Result<Vec<_>, _>>()
            .map_err(RpcError::Config)?;
        let body = serde_json::json!({ "sender": sender, "arguments": arguments });
        let resp: CallReadResponse = self
            .json(reqwest::Method::POST, &path, json_body(&body))
            .await?;
        match (resp.okay, resp.result) {
            (true, Some(hex)) => decode_value(&hex).map_err(|e| self.decode_err(&path, e)),
            (true, None) => Err(self.decode_err(&path, "okay without result".into())),
            (false, _) => Err(RpcError::CallRefused {
                provider: self.base.clone(),
                cause: resp.cause.unwrap_or_else(|| "no cause given".into()),
            }),
        }
    }

    async fn map_entry(
        &self,
        contract: &ContractRef,
        map: &str,
        key: &Value,
        tip: &Tip,
    ) -> Result<Option<Value>, RpcError> {
        let path = format!(
            "/v2/map_entry/{}/{}/{map}?proof=0&tip={}",
            contract.address,
            contract.name,
            tip.query()
        );
        let key = encode_value(key).map_err(RpcError::Config)?;
        let resp: MapEntryResponse = self
            .json(
                reqwest::Method::POST,
                &path,
                json_body(&serde_json::Value::String(key)),
            )
            .await?;
        match decode_value(&resp.data).map_err(|e| self.decode_err(&path, e))? {
            Value::Optional(o) => Ok(o.data.map(|v| *v)),
            other => Err(self.decode_err(&path, format!("expected an optional, got {other}"))),
        }
    }

    async fn account(&self, principal: &str, tip: &Tip) -> Result<Account, RpcError> {
        let path = format!("/v2/accounts/{principal}?proof=0&tip={}", tip.query());
        let resp: AccountResponse = self.json(reqwest::Method::GET, &path, None).await?;
        resp.decode().map_err(|e| self.decode_err(&path, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_must_be_http_or_https_and_token_stays_hidden() {
        let t = DEFAULT_TIMEOUT;
        assert!(HttpProvider::new("http://127.0.0.1:20443/", None, t).is_ok());
        assert!(HttpProvider::new("https://node.example:20443", None, t).is_ok());
        for bad in ["127.0.0.1:20443", "ftp://n:20443", "unix:/tmp/x"] {
            assert!(
                matches!(HttpProvider::new(bad, None, t), Err(RpcError::Config(_))),
                "{bad}"
            );
        }
        let p = HttpProvider::new("http://h:1", Some("s3cret".into()), t).unwrap();
        assert!(!format!("{p:?}").contains("s3cret"));
        assert_eq!(p.name(), "http://h:1");
    }

    /// Against a port nobody listens on: a temporary transport error.
    #[tokio::test]
    async fn connection_refused_is_a_temporary_provider_failure() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        drop(listener);
        let p = HttpProvider::new(&format!("http://{addr}"), None, DEFAULT_TIMEOUT).unwrap();
        let err = p.info().await.unwrap_err();
        assert!(matches!(err, RpcError::Transport { .. }), "{err:?}");
        assert!(err.is_temporary() && err.is_provider_failure());
    }
}
