//! A stacks-node RPC test double (feature `test-server`): a real HTTP server
//! that answers `/v2/info`, `call-read get-payment`, `map_entry payments` and
//! `/v2/accounts` (per principal) and SIP-010 `get-balance` from a scripted chain state, with the real Clarity
//! serialization and the shapes of stacks-core's `docs/rpc/openapi.yaml`, and
//! `POST /v2/transactions` from a scripted queue of outcomes
//! ([`BroadcastOutcome`]).
//! Tests move the tip, change payments, take the node down or slow it.
//! (A stacks-node is not something the tests can run here; Redis and
//! PostgreSQL they do run for real.)

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use clarity::vm::types::{SequenceData, Value};
use serde_json::json;
use sha2::{Digest, Sha512_256};
use tokio_util::sync::CancellationToken;

use nexus_core::domain::PaymentId;

use crate::types::{decode_value, encode_value, index_block_hash};
use nexus_core::escrow::{encode_get_payment, ChainPayment};

/// How the node behaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Up,
    /// Every request gets this status (e.g. 500, 503).
    Status(u16),
    /// 429 with `Retry-After: secs`.
    RateLimited(u64),
}

/// What the node answers to one `POST /v2/transactions`, in the shapes of
/// stacks-core's `net/api/posttransaction.rs` and `MemPoolRejection::into_json`.
#[derive(Debug, Clone, PartialEq)]
pub enum BroadcastOutcome {
    /// 200 with the txid (SHA-512/256 of the posted bytes) as a JSON string of
    /// bare hex, as stacks-core sends it. What an empty queue answers.
    Accept,
    /// 400 `{"error": "transaction rejected", "reason", "reason_data"?, "txid"}`.
    Reject {
        reason: String,
        reason_data: Option<serde_json::Value>,
    },
    /// This status with a text body (e.g. 500, 503).
    Status(u16),
    /// 429 with `Retry-After: secs`.
    RateLimited(u64),
    /// No answer for an hour: the client's timeout fires first. (Not for
    /// tests on a paused clock, which would skip the hour.)
    Hang,
}

impl BroadcastOutcome {
    /// A rejection with this reason and `reason_data`.
    pub fn reject(reason: &str, reason_data: Option<serde_json::Value>) -> Self {
        BroadcastOutcome::Reject {
            reason: reason.to_string(),
            reason_data,
        }
    }
}

struct ChainState {
    height: u64,
    block_hash: String,
    consensus_hash: String,
    burn_height: u64,
    synced: bool,
    /// Each escrow entry with its `get-payment` answer already serialized
    /// (`0x` hex of `(some tuple)`): encoding it per request made the double
    /// cost as much CPU as the node under test in `bench-reconcile`.
    payments: HashMap<PaymentId, (ChainPayment, String)>,
    mode: Mode,
    delay: Duration,
    /// Answers for the next broadcasts, first first; empty: accept.
    broadcast_script: VecDeque<BroadcastOutcome>,
    /// Extra processing time of a broadcast (after `delay`).
    broadcast_delay: Duration,
    /// Every posted body, in arrival order (including refused ones).
    broadcast_bodies: Vec<Vec<u8>>,
    /// `/v2/accounts` answers by principal: (uSTX, nonce). Others have
    /// [`DEFAULT_BALANCE`] and nonce 0.
    accounts: HashMap<String, (u128, u64)>,
    /// SIP-010 `get-balance` answers by (`ADDR.contract`, principal); others 0.
    token_balances: HashMap<(String, String), u128>,
}

/// uSTX of an account the script has not set: 1,000 STX.
pub const DEFAULT_BALANCE: u128 = 1_000_000_000;

/// The scripted chain and its counters; shared by the server and the test.
pub struct Script {
    state: Mutex<ChainState>,
    /// Requests answered, by endpoint (`info`, `call_read`, `map_entry`, `account`).
    calls: Mutex<HashMap<&'static str, u64>>,
    total: AtomicU64,
    /// The distinct `tip` query values seen, to check a cycle reads one
    /// chain state (a set: a bench makes tens of thousands of requests).
    tips_seen: Mutex<BTreeSet<String>>,
}

impl Script {
    fn lock(&self) -> std::sync::MutexGuard<'_, ChainState> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Move the tip to `height` (a new block hash derived from it and `fork`).
    pub fn set_tip(&self, height: u64, fork: u8) {
        let mut s = self.lock();
        s.height = height;
        s.block_hash = format!("{fork:02x}{height:062x}");
        s.consensus_hash = format!("{fork:02x}{height:038x}");
        s.burn_height = 100 + height;
    }

    /// The current tip's index block hash (`0x` hex), as `?tip=` names it.
    pub fn tip_index_hash(&self) -> String {
        let s = self.lock();
        index_block_hash(&s.block_hash, &s.consensus_hash).expect("well-formed hashes")
    }

    pub fn tip_height(&self) -> u64 {
        self.lock().height
    }

    pub fn set_synced(&self, synced: bool) {
        self.lock().synced = synced;
    }

    /// Put (or replace) a payment in the escrow's map.
    pub fn put(&self, id: PaymentId, p: ChainPayment) {
        let hex = encode_value(&encode_get_payment(Some(&p))).expect("serializable");
        self.lock().payments.insert(id, (p, hex));
    }

    /// `/v2/accounts/{principal}` answers this balance (uSTX) and nonce.
    pub fn set_account(&self, principal: &str, balance: u128, nonce: u64) {
        self.lock()
            .accounts
            .insert(principal.to_string(), (balance, nonce));
    }

    /// `get-balance` of SIP-010 `token` (`ADDR.contract`) for `principal`.
    pub fn set_token_balance(&self, token: &str, principal: &str, amount: u128) {
        self.lock()
            .token_balances
            .insert((token.to_string(), principal.to_string()), amount);
    }

    pub fn remove(&self, id: &PaymentId) {
        self.lock().payments.remove(id);
    }

    pub fn set_mode(&self, mode: Mode) {
        self.lock().mode = mode;
    }

    /// Answer every request after `delay` (a node's processing time).
    pub fn set_delay(&self, delay: Duration) {
        self.lock().delay = delay;
    }

    /// Answer the next broadcasts with `outcomes`, in order (after any
    /// already queued); once the queue is empty broadcasts are accepted.
    pub fn push_broadcasts(&self, outcomes: impl IntoIterator<Item = BroadcastOutcome>) {
        self.lock().broadcast_script.extend(outcomes);
    }

    /// Answer each broadcast `delay` later (on top of [`Script::set_delay`]).
    pub fn set_broadcast_delay(&self, delay: Duration) {
        self.lock().broadcast_delay = delay;
    }

    /// Every body posted to `/v2/transactions` so far, in arrival order
    /// (counted on arrival, whatever the answer).
    pub fn broadcasts(&self) -> Vec<Vec<u8>> {
        self.lock().broadcast_bodies.clone()
    }

    /// Requests answered at `endpoint` so far (errors included; a broadcast
    /// is `broadcast`).
    pub fn calls(&self, endpoint: &str) -> u64 {
        *self
            .calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(endpoint)
            .unwrap_or(&0)
    }

    /// Every request so far.
    pub fn total_calls(&self) -> u64 {
        self.total.load(Ordering::Relaxed)
    }

    /// The distinct `tip` values the requests named.
    pub fn tips_seen(&self) -> Vec<String> {
        self.tips_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }

    pub fn clear_tips_seen(&self) {
        self.tips_seen
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// Count the call; `Err` is the failure the mode scripts.
    async fn enter(&self, endpoint: &'static str) -> Result<(), Response> {
        self.total.fetch_add(1, Ordering::Relaxed);
        *self
            .calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(endpoint)
            .or_default() += 1;
        let (mode, delay) = {
            let s = self.lock();
            (s.mode, s.delay)
        };
        if !delay.is_zero() {
            tokio::time::sleep(delay).await;
        }
        match mode {
            Mode::Up => Ok(()),
            Mode::Status(code) => Err((
                StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
                "scripted failure",
            )
                .into_response()),
            Mode::RateLimited(secs) => {
                let mut h = HeaderMap::new();
                h.insert("retry-after", secs.to_string().parse().expect("digits"));
                Err((StatusCode::TOO_MANY_REQUESTS, h, "slow down").into_response())
            }
        }
    }

    fn saw_tip(&self, q: &HashMap<String, String>) {
        if let Some(t) = q.get("tip") {
            let mut seen = self
                .tips_seen
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            if !seen.contains(t) {
                seen.insert(t.clone());
            }
        }
    }
}

/// A running test node; stops when dropped.
pub struct ScriptedNode {
    pub addr: SocketAddr,
    pub script: Arc<Script>,
    stop: CancellationToken,
}

impl ScriptedNode {
    /// `http://addr`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

impl Drop for ScriptedNode {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Start a node at tip height 1, synced, with no payments.
pub async fn start() -> ScriptedNode {
    let script = Arc::new(Script {
        state: Mutex::new(ChainState {
            height: 0,
            block_hash: String::new(),
            consensus_hash: String::new(),
            burn_height: 0,
            synced: true,
            payments: HashMap::new(),
            mode: Mode::Up,
            delay: Duration::ZERO,
            broadcast_script: VecDeque::new(),
            broadcast_delay: Duration::ZERO,
            broadcast_bodies: Vec::new(),
            accounts: HashMap::new(),
            token_balances: HashMap::new(),
        }),
        calls: Mutex::new(HashMap::new()),
        total: AtomicU64::new(0),
        tips_seen: Mutex::new(BTreeSet::new()),
    });
    script.set_tip(1, 0);
    let router = Router::new()
        .route("/v2/info", get(info))
        .route(
            "/v2/contracts/call-read/:addr/:contract/:function",
            post(call_read),
        )
        .route("/v2/map_entry/:addr/:contract/:map", post(map_entry))
        .route("/v2/accounts/:principal", get(account))
        .route("/v2/transactions", post(broadcast))
        .with_state(script.clone());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind the RPC test double");
    let addr = listener.local_addr().expect("addr");
    let stop = CancellationToken::new();
    let token = stop.clone();
    tokio::spawn(async move {
        let _ = axum::serve(listener, router)
            .with_graceful_shutdown(token.cancelled_owned())
            .await;
    });
    ScriptedNode { addr, script, stop }
}

type Q = Query<HashMap<String, String>>;

/// `none`, serialized.
const NONE_HEX: &str = "0x09";

/// `get-payment`'s answer for `id` (also the `payments` map entry), serialized.
fn answer_hex(s: &Script, id: &PaymentId) -> String {
    s.lock()
        .payments
        .get(id)
        .map_or_else(|| NONE_HEX.to_string(), |(_, hex)| hex.clone())
}

async fn info(State(s): State<Arc<Script>>) -> Response {
    if let Err(r) = s.enter("info").await {
        return r;
    }
    let st = s.lock();
    Json(json!({
        "peer_version": 385875968u64,
        "pox_consensus": st.consensus_hash,
        "burn_block_height": st.burn_height,
        "stable_pox_consensus": st.consensus_hash,
        "stable_burn_block_height": st.burn_height.saturating_sub(1),
        "server_version": "scripted stacks-node (nexus-verifier test double)",
        "network_id": 2147483648u64,
        "parent_network_id": 3669344250u64,
        "stacks_tip_height": st.height,
        "stacks_tip": st.block_hash,
        "stacks_tip_consensus_hash": st.consensus_hash,
        "unanchored_tip": null,
        "exit_at_block_height": null,
        "is_fully_synced": st.synced,
    }))
    .into_response()
}

fn payment_id_of(v: &Value) -> Option<PaymentId> {
    match v {
        Value::Sequence(SequenceData::Buffer(b)) => PaymentId::from_slice(&b.data),
        _ => None,
    }
}

async fn call_read(
    State(s): State<Arc<Script>>,
    Path((addr, contract, function)): Path<(String, String, String)>,
    q: Q,
    Json(body): Json<serde_json::Value>,
) -> Response {
    if let Err(r) = s.enter("call_read").await {
        return r;
    }
    s.saw_tip(&q.0);
    if function == "get-balance" {
        // SIP-010: (get-balance (who principal)) -> (response uint uint).
        let arg = body["arguments"][0].as_str().unwrap_or_default();
        let Ok(Value::Principal(who)) = decode_value(arg) else {
            return (StatusCode::BAD_REQUEST, "bad arguments").into_response();
        };
        let amount = s
            .lock()
            .token_balances
            .get(&(format!("{addr}.{contract}"), who.to_string()))
            .copied()
            .unwrap_or(0);
        let ok = Value::okay(Value::UInt(amount)).expect("(ok uint)");
        return Json(json!({"okay": true, "result": encode_value(&ok).expect("serializable")}))
            .into_response();
    }
    if function != "get-payment" {
        return Json(json!({"okay": false, "cause": format!("Unchecked(NoSuchPublicFunction(\"{function}\"))")}))
            .into_response();
    }
    let arg = body["arguments"][0].as_str().unwrap_or_default();
    let Some(id) = decode_value(arg).ok().as_ref().and_then(payment_id_of) else {
        return (StatusCode::BAD_REQUEST, "bad arguments").into_response();
    };
    Json(json!({"okay": true, "result": answer_hex(&s, &id)})).into_response()
}

async fn map_entry(
    State(s): State<Arc<Script>>,
    Path((_addr, _contract, map)): Path<(String, String, String)>,
    q: Q,
    Json(key): Json<String>,
) -> Response {
    if let Err(r) = s.enter("map_entry").await {
        return r;
    }
    s.saw_tip(&q.0);
    let Some(id) = decode_value(&key).ok().as_ref().and_then(payment_id_of) else {
        return (StatusCode::BAD_REQUEST, "bad key").into_response();
    };
    let data = if map == "payments" {
        answer_hex(&s, &id)
    } else {
        NONE_HEX.to_string()
    };
    Json(json!({"data": data, "proof": ""})).into_response()
}

async fn account(State(s): State<Arc<Script>>, Path(p): Path<String>, q: Q) -> Response {
    if let Err(r) = s.enter("account").await {
        return r;
    }
    s.saw_tip(&q.0);
    let (balance, nonce) = s
        .lock()
        .accounts
        .get(&p)
        .copied()
        .unwrap_or((DEFAULT_BALANCE, 0));
    Json(json!({
        "balance": format!("0x{balance:032x}"),
        "locked": "0x00000000000000000000000000000000",
        "unlock_height": 0,
        "nonce": nonce,
        "balance_proof": "",
        "nonce_proof": "",
    }))
    .into_response()
}

/// The txid stacks-core computes for a transaction: SHA-512/256 of its
/// consensus serialization (the posted bytes), bare lowercase hex.
pub fn txid_hex(tx: &[u8]) -> String {
    hex::encode(Sha512_256::digest(tx))
}

async fn broadcast(State(s): State<Arc<Script>>, headers: HeaderMap, body: Bytes) -> Response {
    s.lock().broadcast_bodies.push(body.to_vec());
    if let Err(r) = s.enter("broadcast").await {
        return r;
    }
    // The HTTP layer's own refusals come first, as plain text (stacks-core
    // `RPCPostTransactionRequestHandler::try_parse_request`).
    let content_type = headers
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    if content_type != "application/octet-stream" {
        return (
            StatusCode::BAD_REQUEST,
            "Wrong Content-Type for transaction",
        )
            .into_response();
    }
    if body.is_empty() {
        return (
            StatusCode::BAD_REQUEST,
            "Invalid Http request: expected non-zero-length body for PostTransaction",
        )
            .into_response();
    }
    let (outcome, delay) = {
        let mut st = s.lock();
        let outcome = st
            .broadcast_script
            .pop_front()
            .unwrap_or(BroadcastOutcome::Accept);
        (outcome, st.broadcast_delay)
    };
    if !delay.is_zero() {
        tokio::time::sleep(delay).await;
    }
    let txid = txid_hex(&body);
    match outcome {
        BroadcastOutcome::Accept => Json(json!(txid)).into_response(),
        BroadcastOutcome::Reject {
            reason,
            reason_data,
        } => {
            let mut v = json!({
                "txid": txid,
                "error": "transaction rejected",
                "reason": reason,
            });
            if let Some(d) = reason_data {
                v["reason_data"] = d;
            }
            (StatusCode::BAD_REQUEST, Json(v)).into_response()
        }
        BroadcastOutcome::Status(code) => (
            StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR),
            "scripted failure",
        )
            .into_response(),
        BroadcastOutcome::RateLimited(secs) => {
            let mut h = HeaderMap::new();
            h.insert("retry-after", secs.to_string().parse().expect("digits"));
            (StatusCode::TOO_MANY_REQUESTS, h, "slow down").into_response()
        }
        BroadcastOutcome::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            (StatusCode::GATEWAY_TIMEOUT, "hung").into_response()
        }
    }
}
