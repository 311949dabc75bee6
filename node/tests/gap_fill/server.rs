//! The RPC test server.

use super::*;

/// What the test RPC answers for a block it has.
pub(crate) const SERVE: u16 = 200;
/// Never answer (a node stuck replaying).
pub(crate) const HANG: u16 = 0;

pub(crate) struct RpcState {
    /// Replay bodies by bare block id.
    pub(crate) blocks: HashMap<String, Value>,
    /// 200: serve the blocks; any other code: answer it for everything.
    pub(crate) mode: AtomicU16,
    /// Block ids asked for (authorized or not), in order.
    pub(crate) asked: Mutex<Vec<String>>,
}

/// A stacks-node RPC stand-in on an ephemeral port; stops when dropped.
pub(crate) struct Rpc {
    pub(crate) addr: SocketAddr,
    pub(crate) state: Arc<RpcState>,
    pub(crate) task: tokio::task::JoinHandle<()>,
}

impl Rpc {
    pub(crate) async fn serve(blocks: &[Value]) -> Rpc {
        let state = Arc::new(RpcState {
            blocks: blocks
                .iter()
                .map(|b| (b["block_id"].as_str().expect("id").to_string(), b.clone()))
                .collect(),
            mode: AtomicU16::new(SERVE),
            asked: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/v3/blocks/replay/:block_id", get(replay))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let task = tokio::spawn(async move {
            axum::serve(listener, app).await.expect("rpc server");
        });
        Rpc { addr, state, task }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub(crate) async fn asked(&self) -> Vec<String> {
        self.state.asked.lock().await.clone()
    }
}

impl Drop for Rpc {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// stacks-core's handler: 401 without the exact token, 404 for an unknown
/// block (`No such block`), else the replay JSON.
pub(crate) async fn replay(
    State(s): State<Arc<RpcState>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    s.asked.lock().await.push(id.clone());
    if headers.get("authorization").and_then(|v| v.to_str().ok()) != Some(TOKEN) {
        return (StatusCode::UNAUTHORIZED, "Unauthorized").into_response();
    }
    let mode = s.mode.load(Ordering::SeqCst);
    if mode == HANG {
        std::future::pending::<()>().await;
    }
    if mode != SERVE {
        let code = StatusCode::from_u16(mode).expect("status");
        return (code, [("retry-after", "1")], "busy").into_response();
    }
    match s.blocks.get(&id) {
        Some(b) => Json(b.clone()).into_response(),
        None => (StatusCode::NOT_FOUND, format!("No such block {id}\n")).into_response(),
    }
}

/// An address nothing listens on.
pub(crate) fn closed_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}
