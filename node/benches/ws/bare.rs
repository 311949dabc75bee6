//! The floor of `make bench-ws` (a) on this machine: a bare WebSocket
//! fan-out server with none of the node's work (no ingest, no filters, no
//! routing table, no JSON), run as a separate process like the node.
//!
//! It is this bench binary started again with `BENCH_WS_BARE=<ws addr>
//! <control addr>`. Each WebSocket client's first text frame is answered
//! with a JSON-RPC result (so the bench's `subscriber` works unchanged);
//! each line then written to the control socket goes out to every client
//! as one text frame, through one task per connection, as the node does.
//! The frame is encoded once and its bytes written straight to each socket
//! (one `write` per client, no per-client copy or WebSocket library on the
//! send path): about the least a server can do per subscriber.
//! The gap between this and the node's (a), minus the node's one-subscriber
//! time, is what the node's delivery path costs beyond the kernel's own
//! per-socket work.

use std::net::SocketAddr;
use std::sync::Arc;

use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::broadcast;
use tokio_tungstenite::tungstenite::Message;

/// Env var that turns this process into the bare server.
pub const ENV: &str = "BENCH_WS_BARE";

/// Serve until the control connection closes.
pub fn serve(spec: &str) {
    let mut parts = spec.split_whitespace();
    let (ws, control): (SocketAddr, SocketAddr) = match (parts.next(), parts.next()) {
        (Some(w), Some(c)) => (
            w.parse().expect("ws addr"),
            c.parse().expect("control addr"),
        ),
        _ => panic!("{ENV}={spec:?}: want \"<ws addr> <control addr>\""),
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let (tx, _) = broadcast::channel::<Arc<Vec<u8>>>(1024);
        let listener = TcpListener::bind(ws).await.expect("bind ws");
        let control = TcpListener::bind(control).await.expect("bind control");
        let frames = tx.clone();
        tokio::spawn(async move {
            while let Ok((tcp, _)) = listener.accept().await {
                let rx = frames.subscribe();
                tokio::spawn(connection(tcp, rx));
            }
        });
        let (tcp, _) = control.accept().await.expect("control connection");
        let mut lines = BufReader::new(tcp).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            let _ = tx.send(Arc::new(text_frame(line.as_bytes())));
        }
    });
}

/// An unmasked, final text frame (RFC 6455 5.2), as a server sends it.
fn text_frame(payload: &[u8]) -> Vec<u8> {
    let mut f = Vec::with_capacity(payload.len() + 10);
    f.push(0x81);
    match payload.len() {
        n if n < 126 => f.push(n as u8),
        n if n <= u16::MAX as usize => {
            f.push(126);
            f.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            f.push(127);
            f.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    f.extend_from_slice(payload);
    f
}

async fn connection(tcp: tokio::net::TcpStream, mut rx: broadcast::Receiver<Arc<Vec<u8>>>) {
    let _ = tcp.set_nodelay(true);
    let Ok(mut ws) = tokio_tungstenite::accept_async(tcp).await else {
        return;
    };
    // The subscribe request: answered, not read.
    match ws.next().await {
        Some(Ok(Message::Text(_))) => {}
        _ => return,
    }
    let ok = r#"{"jsonrpc":"2.0","id":1,"result":{"subscribed":{"event":"all"}}}"#;
    if ws.send(Message::Text(ok.into())).await.is_err() {
        return;
    }
    // From here on only raw frames go out (tungstenite's buffer is flushed,
    // and the clients send nothing more: no pings from this server).
    let tcp = ws.get_mut();
    loop {
        match rx.recv().await {
            Ok(f) => {
                if tcp.write_all(&f).await.is_err() {
                    return;
                }
            }
            Err(broadcast::error::RecvError::Lagged(_)) => continue,
            Err(broadcast::error::RecvError::Closed) => return,
        }
    }
}
