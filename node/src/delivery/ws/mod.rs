//! `GET /ws`: JSON-RPC 2.0 subscriptions to payment events (see
//! [`crate::delivery::jsonrpc`] for the protocol).
//!
//! Each connection is two tasks: this one reads the client's frames, the
//! node's event stream ([`Hub`]) and the ping timer, and queues what to
//! send; a writer drains the bounded queue into the socket. A client that
//! does not read lets its queue fill; once a frame has waited
//! `send_timeout` for room, the connection is closed with [`CLOSE_SLOW`]
//! and the client resumes with `since_seq`. Nothing here ever waits on
//! another connection or on ingestion: the hub queues each event only for
//! the connections whose filters match it, without waiting, and a
//! connection whose queue overflows reads the event log instead.

mod subs;

pub use subs::{Subscriptions, TooMany};

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use futures::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use nexus_indexer::domain::PaymentEvent;

use super::filter::Filter;
use super::hub::{Feed, Hub};
use super::jsonrpc::{self, code, notification_text, parse_request, Method, RpcError};
use super::routes::Missed;
use crate::server::App;

/// Close code: the send queue stayed full (the client reads too slowly).
/// Private-use range (4000-4999, RFC 6455 7.4.2).
pub const CLOSE_SLOW: u16 = 4008;
/// Close code: no pong (or any frame) within `ping_timeout`.
pub const CLOSE_PING_TIMEOUT: u16 = 4000;
/// Close code: the event log could not be read for a replay.
pub const CLOSE_LOG_UNAVAILABLE: u16 = 1011;
/// Close code: the node is shutting down (RFC 6455 "going away").
pub const CLOSE_GOING_AWAY: u16 = 1001;
/// Close code: a frame larger than `max_message_bytes` (RFC 6455 "message too big").
pub const CLOSE_TOO_BIG: u16 = 1009;

/// Events replayed from the log per query.
const REPLAY_PAGE: u32 = 500;
/// How long the writer may take to get the close frame out before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
/// Frames written to the socket with one flush at most.
const WRITE_BATCH: usize = 64;
/// How long we wait for the client's answer to our close frame.
const CLOSE_DRAIN: Duration = Duration::from_secs(2);

/// Limits and timers of the WebSocket endpoint.
#[derive(Debug, Clone)]
pub struct WsConfig {
    pub max_connections: usize,
    pub max_subscriptions: usize,
    pub max_message_bytes: usize,
    pub send_queue: usize,
    pub send_timeout: Duration,
    pub ping_interval: Duration,
    pub ping_timeout: Duration,
}

/// State shared by every connection.
pub struct WsServer {
    pub config: WsConfig,
    pub hub: Hub,
    /// One permit per open connection.
    permits: Arc<Semaphore>,
    /// Cancelled at node shutdown: every connection closes with 1001.
    shutdown: CancellationToken,
    /// Tracks the connection tasks, so shutdown can wait for them.
    tracker: tokio_util::task::TaskTracker,
}

impl WsServer {
    pub fn new(
        config: WsConfig,
        hub: Hub,
        shutdown: CancellationToken,
        tracker: tokio_util::task::TaskTracker,
    ) -> Self {
        WsServer {
            permits: Arc::new(Semaphore::new(config.max_connections)),
            config,
            hub,
            shutdown,
            tracker,
        }
    }
}

/// The `GET /ws` handler.
#[utoipa::path(get, path = "/ws", tag = "events", responses(
    (status = 101, description = "WebSocket upgrade. JSON-RPC 2.0: `subscribe` (filters, `since_seq` to resume), `unsubscribe`; notifications carry payment events"),
    (status = 503, description = "Too many connections"),
))]
pub async fn handler(ws: WebSocketUpgrade, State(app): State<Arc<App>>) -> Response {
    let server = app.delivery.ws.clone();
    let Ok(permit) = server.permits.clone().try_acquire_owned() else {
        server.hub.metrics().ws_rejected.inc();
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"error": {
                "type": "temporary",
                "code": "too_many_connections",
                "message": format!("at most {} WebSocket connections", server.config.max_connections),
            }})),
        )
            .into_response();
    };
    let max = server.config.max_message_bytes;
    ws.max_message_size(max)
        .max_frame_size(max)
        .on_upgrade(move |socket| {
            let tracker = server.tracker.clone();
            // Tracked so that shutdown waits for the close frames to go out.
            tracker.track_future(serve(socket, server, permit))
        })
}

/// Why a connection ends.
enum End {
    /// The client closed or vanished: nothing to send.
    Gone,
    /// We close with this code and reason.
    Close(u16, String),
}

impl End {
    fn slow() -> End {
        End::Close(
            CLOSE_SLOW,
            "slow consumer: send queue full; reconnect and subscribe with since_seq".into(),
        )
    }
}

/// One connection's reading side: requests, the event stream, pings.
struct Conn {
    server: Arc<WsServer>,
    subs: Subscriptions,
    /// The hub's events for this connection's filters.
    feed: Feed,
    queue: mpsc::Sender<Message>,
}

async fn serve(socket: WebSocket, server: Arc<WsServer>, _permit: OwnedSemaphorePermit) {
    let metrics = server.hub.metrics().clone();
    metrics.ws_connections.inc();
    let (sink, mut stream) = socket.split();
    let (queue, rx) = mpsc::channel(server.config.send_queue.max(1));
    let (close_tx, close_rx) = oneshot::channel();
    let writer = tokio::spawn(write_loop(sink, rx, close_rx));
    let mut conn = Conn {
        subs: Subscriptions::new(server.config.max_subscriptions),
        feed: server.hub.connect(),
        queue,
        server: server.clone(),
    };
    let mut ping = tokio::time::interval_at(
        Instant::now() + server.config.ping_interval,
        server.config.ping_interval,
    );
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = Instant::now();
    let end = loop {
        let step = tokio::select! {
            _ = server.shutdown.cancelled() => Err(End::Close(CLOSE_GOING_AWAY, "node shutting down".into())),
            msg = stream.next() => match msg {
                None | Some(Ok(Message::Close(_))) => Err(End::Gone),
                Some(Err(e)) => Err(read_error(e)),
                Some(Ok(m)) => {
                    heard = Instant::now();
                    match m {
                        Message::Text(t) => conn.request(&t).await,
                        Message::Binary(_) => conn.send(Message::Text(RpcError::new(
                            Value::Null,
                            code::INVALID_REQUEST,
                            "binary frames are not supported; send JSON-RPC as text",
                        ).to_text())).await,
                        // axum answers pings itself; a pong is proof of life.
                        _ => Ok(()),
                    }
                }
            },
            r = conn.feed.recv() => match r {
                Ok(item) => {
                    if conn.subs.offer(&item.event) {
                        metrics.ws_notifications.inc();
                        conn.send(Message::Text(item.frame.clone())).await
                    } else {
                        Ok(())
                    }
                }
                // We fell more than the hub's capacity behind: the log has it all.
                Err(Missed::Lagged) => conn.catch_up().await,
                Err(Missed::Closed) => Err(End::Close(CLOSE_GOING_AWAY, "node shutting down".into())),
            },
            _ = ping.tick() => {
                if heard.elapsed() > server.config.ping_timeout {
                    metrics.ws_ping_timeouts.inc();
                    Err(End::Close(CLOSE_PING_TIMEOUT, "ping timeout".into()))
                } else {
                    conn.send(Message::Ping(Vec::new())).await
                }
            }
        };
        if let Err(end) = step {
            break end;
        }
    };
    drop(conn);
    let closing = matches!(end, End::Close(..));
    if let End::Close(code, reason) = end {
        if code == CLOSE_SLOW {
            metrics.ws_slow_consumers.inc();
        }
        tracing::debug!(code, %reason, "closing WebSocket");
        let _ = close_tx.send(CloseFrame {
            code,
            reason: reason.into(),
        });
    }
    let mut writer = writer;
    if tokio::time::timeout(CLOSE_GRACE, &mut writer)
        .await
        .is_err()
    {
        writer.abort();
    } else if closing {
        // Finish the close handshake: read (and drop) what the client still
        // sends until its close frame. Dropping the socket with unread input
        // makes the kernel send a reset, which can destroy the close frame
        // (and the last notifications) before the client has read them.
        let _ = tokio::time::timeout(CLOSE_DRAIN, async {
            while let Some(Ok(m)) = stream.next().await {
                if matches!(m, Message::Close(_)) {
                    break;
                }
            }
        })
        .await;
    }
    metrics.ws_connections.dec();
}

fn read_error(e: axum::Error) -> End {
    // tungstenite reports an oversized frame as a capacity error.
    let text = crate::observer::error_chain(&e);
    if text.contains("Space limit exceeded")
        || text.contains("too long")
        || text.contains("Message too")
    {
        End::Close(CLOSE_TOO_BIG, "message too big".into())
    } else {
        End::Gone
    }
}

impl Conn {
    /// Queue `msg`; a queue that stays full for `send_timeout` ends the connection.
    async fn send(&self, msg: Message) -> Result<(), End> {
        // The usual case, a queue with room, without arming a timer per frame.
        let msg = match self.queue.try_send(msg) {
            Ok(()) => return Ok(()),
            Err(mpsc::error::TrySendError::Closed(_)) => return Err(End::Gone),
            Err(mpsc::error::TrySendError::Full(m)) => m,
        };
        match self
            .queue
            .send_timeout(msg, self.server.config.send_timeout)
            .await
        {
            Ok(()) => Ok(()),
            Err(mpsc::error::SendTimeoutError::Timeout(_)) => Err(End::slow()),
            Err(mpsc::error::SendTimeoutError::Closed(_)) => Err(End::Gone),
        }
    }

    async fn request(&mut self, text: &str) -> Result<(), End> {
        let req = match parse_request(text) {
            Ok(r) => r,
            Err(e) => return self.send(Message::Text(e.to_text())).await,
        };
        match req.method {
            Method::Subscribe { filter, since_seq } => {
                // Routed first, then the head read under the same lock:
                // every later event arrives live, every earlier one by replay.
                let (head, idle) = self.feed.add(&filter);
                if idle {
                    // The other filters have seen everything up to `head`
                    // (only matching events are routed, so their cursors
                    // may trail it); without this the replay below would
                    // start from the oldest of them.
                    self.subs.advance(head);
                }
                let params = params_of(&filter, since_seq);
                match self
                    .subs
                    .subscribe(filter.clone(), since_seq.unwrap_or(head))
                {
                    Err(e) => {
                        // Not held before (re-subscribing never fails): unroute it.
                        self.feed.remove(&filter);
                        let err =
                            RpcError::new(req.id, code::TOO_MANY_SUBSCRIPTIONS, e.to_string());
                        self.send(Message::Text(err.to_text())).await
                    }
                    Ok(()) => {
                        let result = json!({"subscribed": params, "head_seq": head});
                        self.send(Message::Text(jsonrpc::result_text(&req.id, result)))
                            .await?;
                        self.catch_up().await
                    }
                }
            }
            Method::Unsubscribe { filter } => {
                let params = params_of(&filter, None);
                let text = if self.subs.unsubscribe(&filter) {
                    self.feed.remove(&filter);
                    jsonrpc::result_text(&req.id, json!({"unsubscribed": params}))
                } else {
                    RpcError::new(req.id, code::NOT_SUBSCRIBED, "not subscribed to that").to_text()
                };
                self.send(Message::Text(text)).await
            }
        }
    }

    /// Replay from the log until every subscription has considered every
    /// event the hub has emitted (events after that arrive live).
    async fn catch_up(&mut self) -> Result<(), End> {
        let history = self.server.hub.history().clone();
        while let Some(from) = self.subs.behind(self.server.hub.head()) {
            let page: Vec<PaymentEvent> = history
                .events_since(from, REPLAY_PAGE)
                .await
                .map_err(|e| {
                    tracing::warn!(error = %crate::observer::error_chain(&e), "WebSocket replay: event log unavailable");
                    End::Close(CLOSE_LOG_UNAVAILABLE, "event log unavailable; retry with since_seq".into())
                })?;
            if page.is_empty() {
                break;
            }
            for e in &page {
                if self.subs.offer(e) {
                    self.server.hub.metrics().ws_replayed.inc();
                    self.send(Message::Text(notification_text(e))).await?;
                }
            }
        }
        Ok(())
    }
}

/// The subscription params echoed in a result.
fn params_of(filter: &Filter, since_seq: Option<u64>) -> Value {
    let mut v = match filter {
        Filter::Payment(id) => json!({"event": "payment", "payment_id": id}),
        Filter::Principal(p) => json!({"event": "principal", "principal": p}),
        Filter::All => json!({"event": "all"}),
    };
    if let Some(s) = since_seq {
        v["since_seq"] = json!(s);
    }
    v
}

/// Drain the queue into the socket; on `close`, stop taking from the queue
/// (whatever is still in it is dropped) and send the close frame.
async fn write_loop(
    mut sink: futures::stream::SplitSink<WebSocket, Message>,
    mut queue: mpsc::Receiver<Message>,
    mut close: oneshot::Receiver<CloseFrame<'static>>,
) {
    loop {
        let msg = tokio::select! {
            biased;
            c = &mut close => {
                if let Ok(frame) = c {
                    let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(Message::Close(Some(frame)))).await;
                }
                return;
            }
            m = queue.recv() => match m {
                Some(m) => m,
                None => return,
            },
        };
        // Whatever else is already queued goes out with it: one flush (one
        // write to the socket) for the lot.
        let write = async {
            sink.feed(msg).await?;
            for _ in 1..WRITE_BATCH {
                match queue.try_recv() {
                    Ok(m) => sink.feed(m).await?,
                    Err(_) => break,
                }
            }
            sink.flush().await
        };
        tokio::select! {
            biased;
            c = &mut close => {
                // A send blocked on a client that does not read. tungstenite
                // keeps whole frames in its buffer, so the close frame goes
                // out after what was already written, once the client reads.
                if let Ok(frame) = c {
                    let _ = tokio::time::timeout(CLOSE_GRACE, sink.send(Message::Close(Some(frame)))).await;
                }
                return;
            }
            r = write => if r.is_err() { return },
        }
    }
}
