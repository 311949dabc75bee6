//! `GET /ws`: JSON-RPC 2.0 subscriptions to payment events (see
//! [`crate::jsonrpc`] for the protocol).
//!
//! Each connection is one task ([`conn`]): it reads the client's frames,
//! the node's event stream ([`Hub`]) and the ping timer, and writes to the
//! socket from a bounded queue of its own. A client that does not read lets
//! its queue fill; once a frame has waited `send_timeout` for room, the
//! connection is closed with [`CLOSE_SLOW`] and the client resumes with
//! `since_seq`. Nothing here ever waits on another connection or on
//! ingestion: the hub queues each event only for the connections whose
//! filters match it, without waiting, and a connection whose hub queue
//! overflows reads the event log instead.

mod conn;
mod outgoing;
mod subs;

pub use subs::{Subscriptions, TooMany};

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::WebSocket;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_util::sync::CancellationToken;

use super::hub::Hub;

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
/// How long the close frame may take to get out before the socket is dropped.
const CLOSE_GRACE: Duration = Duration::from_secs(5);
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
    /// A place for one more connection, or `None` at `max_connections`
    /// (counted as rejected).
    pub fn admit(&self) -> Option<OwnedSemaphorePermit> {
        let permit = self.permits.clone().try_acquire_owned().ok();
        if permit.is_none() {
            self.hub.metrics().ws_rejected.inc();
        }
        permit
    }

    /// Serve an upgraded socket until it closes; tracked, so shutdown waits
    /// for its close frame to go out.
    pub fn serve(
        self: Arc<Self>,
        socket: WebSocket,
        permit: OwnedSemaphorePermit,
    ) -> impl std::future::Future<Output = ()> {
        let tracker = self.tracker.clone();
        tracker.track_future(conn::serve(socket, self, permit))
    }

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
