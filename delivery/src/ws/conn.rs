//! One WebSocket connection: a single task that reads the client's
//! requests, this connection's hub feed and the ping timer, and writes its
//! bounded queue ([`Outgoing`]) to the socket when nothing else is ready.
//!
//! Why one task and not a reader plus a writer: every frame then costs one
//! wake-up instead of two. With 1,000 subscribers one event is 1,000
//! frames, and the second hop (a channel to the writer task, and its
//! wake-up) was most of the per-frame cost on the node (`make bench-ws` (a)).

use std::sync::Arc;

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use futures::StreamExt;
use serde_json::{json, Value};
use tokio::sync::OwnedSemaphorePermit;
use tokio::time::Instant;

use nexus_core::domain::PaymentEvent;

use super::outgoing::Outgoing;
use super::{
    Subscriptions, WsServer, CLOSE_DRAIN, CLOSE_GOING_AWAY, CLOSE_GRACE, CLOSE_LOG_UNAVAILABLE,
    CLOSE_PING_TIMEOUT, CLOSE_SLOW, CLOSE_TOO_BIG, REPLAY_PAGE,
};
use crate::filter::Filter;
use crate::hub::Feed;
use crate::jsonrpc::{self, code, notification_text, parse_request, Method, RpcError};
use crate::routes::Missed;

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

/// One connection's state, apart from the socket's reading half.
struct Conn {
    server: Arc<WsServer>,
    subs: Subscriptions,
    /// The hub's events for this connection's filters.
    feed: Feed,
    out: Outgoing,
}

pub(super) async fn serve(socket: WebSocket, server: Arc<WsServer>, _permit: OwnedSemaphorePermit) {
    let metrics = server.hub.metrics().clone();
    metrics.ws_connections.inc();
    let (sink, mut stream) = socket.split();
    let mut conn = Conn {
        subs: Subscriptions::new(server.config.max_subscriptions),
        feed: server.hub.connect(),
        out: Outgoing::new(sink, server.config.send_queue),
        server: server.clone(),
    };
    let mut ping = tokio::time::interval_at(
        Instant::now() + server.config.ping_interval,
        server.config.ping_interval,
    );
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut heard = Instant::now();
    let end = loop {
        // Biased: requests and events are taken (queued) before the queue
        // is written, so whatever arrived together goes out in one write.
        let step = tokio::select! {
            biased;
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
            r = conn.out.write(), if conn.out.busy() => r.map_err(|_| End::Gone),
        };
        if let Err(end) = step {
            break end;
        }
    };
    let Conn { feed, mut out, .. } = conn;
    // Unrouted before the close handshake: nothing more is queued for us.
    drop(feed);
    if let End::Close(code, reason) = end {
        if code == CLOSE_SLOW {
            metrics.ws_slow_consumers.inc();
        }
        tracing::debug!(code, %reason, "closing WebSocket");
        let frame = Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        }));
        // A client that does not read: tungstenite keeps whole frames in its
        // buffer, so the close frame goes out after what was already taken,
        // once the client reads (or not at all within the grace period).
        let sent = tokio::time::timeout(CLOSE_GRACE, out.close_with(frame)).await;
        if matches!(sent, Ok(Ok(()))) {
            // Finish the close handshake: read (and drop) what the client
            // still sends until its close frame. Dropping the socket with
            // unread input makes the kernel send a reset, which can destroy
            // the close frame (and the last notifications) before the
            // client has read them.
            let _ = tokio::time::timeout(CLOSE_DRAIN, async {
                while let Some(Ok(m)) = stream.next().await {
                    if matches!(m, Message::Close(_)) {
                        break;
                    }
                }
            })
            .await;
        }
    }
    metrics.ws_connections.dec();
}

fn read_error(e: axum::Error) -> End {
    // tungstenite reports an oversized frame as a capacity error.
    let text = nexus_core::error_chain(&e);
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
    /// Queue `msg`; a queue that stays full for `send_timeout` (the socket
    /// takes nothing) ends the connection.
    async fn send(&mut self, msg: Message) -> Result<(), End> {
        if self.out.full() {
            match tokio::time::timeout(self.server.config.send_timeout, self.out.write()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) => return Err(End::Gone),
                Err(_) => return Err(End::slow()),
            }
        }
        self.out.push(msg);
        Ok(())
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
                    tracing::warn!(error = %nexus_core::error_chain(&e), "WebSocket replay: event log unavailable");
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
        Filter::Asset(a) => json!({"event": "asset", "asset": a}),
        Filter::All => json!({"event": "all"}),
    };
    if let Some(s) = since_seq {
        v["since_seq"] = json!(s);
    }
    v
}
