//! `GET /ws` with a real tokio-tungstenite client against a real node, on
//! both store kinds: each filter, unsubscribe, bad requests, resume across a
//! disconnect while blocks keep arriving (no gap, no duplicate), a slow
//! consumer closed with 4008 while a fast one keeps receiving, ping timeout,
//! the connection cap.

mod common;

use std::time::Duration;

use common::blocks::{payment_id, principal_of, Chain, NewPayment};
use common::{eventually, start_node, Stores, TestNode};
use futures::{SinkExt, StreamExt};
use nexus_core::domain::PaymentId;
use serde_json::{json, Value};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

/// How long any single expected frame may take.
const WAIT: Duration = Duration::from_secs(15);

struct Client {
    ws: Ws,
    /// Notifications read while waiting for a response.
    pending: std::collections::VecDeque<Value>,
}

async fn connect(node: &TestNode) -> Client {
    let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", node.api))
        .await
        .expect("WebSocket connects");
    Client {
        ws,
        pending: Default::default(),
    }
}

impl Client {
    async fn send(&mut self, v: Value) {
        self.ws
            .send(Message::Text(v.to_string()))
            .await
            .expect("send");
    }

    /// The next text frame, as JSON.
    async fn next_json(&mut self) -> Value {
        loop {
            let msg = tokio::time::timeout(WAIT, self.ws.next())
                .await
                .expect("a frame in time")
                .expect("connection open")
                .expect("frame");
            match msg {
                Message::Text(t) => return serde_json::from_str(&t).expect("JSON frame"),
                Message::Ping(_) | Message::Pong(_) => continue,
                other => panic!("unexpected frame {other:?}"),
            }
        }
    }

    /// Send a request and return its response (notifications before it are kept).
    async fn call(&mut self, id: u64, method: &str, params: Value) -> Value {
        self.send(json!({"jsonrpc": "2.0", "id": id, "method": method, "params": params}))
            .await;
        loop {
            let v = self.next_json().await;
            if v.get("id") == Some(&json!(id)) {
                return v;
            }
            self.pending.push_back(v);
        }
    }

    async fn subscribe(&mut self, id: u64, params: Value) {
        let r = self.call(id, "subscribe", params).await;
        assert!(r.get("result").is_some(), "subscribed: {r}");
    }

    /// The next notification.
    async fn note(&mut self) -> Value {
        if let Some(v) = self.pending.pop_front() {
            return v;
        }
        let v = self.next_json().await;
        assert!(v.get("method").is_some(), "a notification: {v}");
        v
    }

    /// The next notification, or `None` if none arrives within `d`.
    async fn try_note(&mut self, d: Duration) -> Option<Value> {
        if let Some(v) = self.pending.pop_front() {
            return Some(v);
        }
        loop {
            match tokio::time::timeout(d, self.ws.next()).await {
                Err(_) => return None,
                Ok(Some(Ok(Message::Text(t)))) => return Some(serde_json::from_str(&t).unwrap()),
                Ok(Some(Ok(Message::Ping(_) | Message::Pong(_)))) => continue,
                Ok(other) => panic!("unexpected {other:?}"),
            }
        }
    }

    /// The next `n` notifications' `(seq, payment_id)`.
    async fn notes(&mut self, n: usize) -> Vec<(u64, String)> {
        let mut out = Vec::new();
        for _ in 0..n {
            let v = self.note().await;
            assert_eq!(v["jsonrpc"], "2.0");
            assert_eq!(v["method"], v["params"]["type"]);
            out.push((
                v["params"]["seq"].as_u64().expect("seq"),
                v["params"]["payment_id"].as_str().expect("id").to_string(),
            ));
        }
        out
    }

    /// Nothing arrives within `d` (besides pings).
    async fn quiet(&mut self, d: Duration) {
        assert!(self.pending.is_empty(), "pending: {:?}", self.pending);
        let deadline = tokio::time::Instant::now() + d;
        loop {
            match tokio::time::timeout_at(deadline, self.ws.next()).await {
                Err(_) => return,
                Ok(Some(Ok(Message::Ping(_)))) => continue,
                Ok(other) => panic!("expected silence, got {other:?}"),
            }
        }
    }
}

fn pay(n: u64, payer: u64, payee: u64) -> NewPayment {
    NewPayment {
        id: payment_id(n),
        payer,
        payee,
        amount: 1_000 + u128::from(n),
    }
}

fn id_str(id: PaymentId) -> String {
    id.to_string()
}

async fn each_filter_and_unsubscribe(stores: Stores) {
    let node = start_node(stores, |_| {}).await;
    let mut chain = Chain::new();
    let (mut all, mut by_principal, mut by_payment) = (
        connect(&node).await,
        connect(&node).await,
        connect(&node).await,
    );
    all.subscribe(1, json!({"event": "all"})).await;
    // Account 2 is the recipient of payment 1 only.
    by_principal
        .subscribe(
            1,
            json!({"event": "principal", "principal": principal_of(2)}),
        )
        .await;
    by_payment
        .subscribe(
            1,
            json!({"event": "payment", "payment_id": id_str(payment_id(11))}),
        )
        .await;

    node.post_ok("/new_block", chain.block(&[pay(10, 1, 2), pay(11, 3, 4)]))
        .await;
    let got = all.notes(2).await;
    assert_eq!(
        got.iter().map(|g| g.1.clone()).collect::<Vec<_>>(),
        vec![id_str(payment_id(10)), id_str(payment_id(11))]
    );
    assert!(got[0].0 < got[1].0, "in seq order");
    assert_eq!(by_principal.notes(1).await[0].1, id_str(payment_id(10)));
    assert_eq!(by_payment.notes(1).await[0].1, id_str(payment_id(11)));
    by_principal.quiet(Duration::from_millis(200)).await;
    by_payment.quiet(Duration::from_millis(200)).await;

    // Account 1 as sender matches too; after unsubscribing, nothing.
    let r = by_principal
        .call(
            2,
            "unsubscribe",
            json!({"event": "principal", "principal": principal_of(2)}),
        )
        .await;
    assert!(r.get("result").is_some(), "{r}");
    by_principal
        .subscribe(
            3,
            json!({"event": "principal", "principal": principal_of(1)}),
        )
        .await;
    node.post_ok("/new_block", chain.block(&[pay(12, 1, 5), pay(13, 6, 2)]))
        .await;
    assert_eq!(by_principal.notes(1).await[0].1, id_str(payment_id(12)));
    by_principal.quiet(Duration::from_millis(200)).await;
    assert_eq!(all.notes(2).await.len(), 2);
    // Unsubscribing what is not subscribed is an error, not a crash.
    let r = by_payment
        .call(4, "unsubscribe", json!({"event": "all"}))
        .await;
    assert_eq!(r["error"]["code"], -32002, "{r}");
    node.stop().await;
}

#[tokio::test]
async fn each_filter_and_unsubscribe_embedded() {
    each_filter_and_unsubscribe(Stores::Embedded).await;
}

#[tokio::test]
async fn each_filter_and_unsubscribe_production() {
    each_filter_and_unsubscribe(Stores::Production).await;
}

#[tokio::test]
async fn bad_requests_get_json_rpc_errors() {
    let node = start_node(Stores::Embedded, |c| {
        c.ws_max_subscriptions = 2;
        c.ws_max_message_bytes = 1024;
    })
    .await;
    let mut c = connect(&node).await;
    c.ws.send(Message::Text("{oops".into())).await.unwrap();
    let r = c.next_json().await;
    assert_eq!(
        (r["error"]["code"].clone(), r["id"].clone()),
        (json!(-32700), Value::Null)
    );
    let cases = [
        ("frobnicate", json!({"event": "all"}), -32601),
        ("subscribe", json!({"event": "blocks"}), -32602),
        (
            "subscribe",
            json!({"event": "payment", "payment_id": "0x1234"}),
            -32602,
        ),
        // Right shape, wrong checksum.
        (
            "subscribe",
            json!({"event": "principal", "principal": "SP2J6ZY48GV1EZ5V2V5RB9MP66SW86PYKKNRV9EJ8"}),
            -32602,
        ),
        (
            "subscribe",
            json!({"event": "all", "since_seq": "yesterday"}),
            -32602,
        ),
    ];
    for (i, (method, params, code)) in cases.into_iter().enumerate() {
        let r = c.call(i as u64 + 1, method, params.clone()).await;
        assert_eq!(r["error"]["code"], json!(code), "{method} {params}: {r}");
        assert!(r["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let r = c.call(20, "subscribe", json!({"event": "all"})).await;
    assert!(r.get("result").is_some());
    let r = c
        .call(
            21,
            "subscribe",
            json!({"event": "principal", "principal": principal_of(1)}),
        )
        .await;
    assert!(r.get("result").is_some());
    let r = c
        .call(
            22,
            "subscribe",
            json!({"event": "principal", "principal": principal_of(2)}),
        )
        .await;
    assert_eq!(r["error"]["code"], -32001, "cap of 2: {r}");
    // The connection still works after all that.
    let mut chain = Chain::new();
    node.post_ok("/new_block", chain.block(&[pay(1, 1, 2)]))
        .await;
    assert_eq!(c.notes(1).await[0].0, 1);
    // Binary frames get an error answer.
    c.ws.send(Message::Binary(vec![1, 2, 3])).await.unwrap();
    assert_eq!(c.next_json().await["error"]["code"], -32600);
    // A message over the cap closes the connection with 1009.
    c.ws.send(Message::Text("x".repeat(4096))).await.unwrap();
    let close = loop {
        match tokio::time::timeout(WAIT, c.ws.next())
            .await
            .expect("in time")
        {
            Some(Ok(Message::Close(f))) => break f,
            Some(Ok(_)) => continue,
            other => panic!("expected a close frame, got {other:?}"),
        }
    };
    assert_eq!(close.expect("close frame").code, CloseCode::Size);
    node.stop().await;
}

/// Resume across a disconnect while a writer keeps posting blocks: the
/// concatenation of what the client saw is exactly seq 1..=N, N the last
/// seq in the log (payments also turn final as blocks pile up).
async fn resume_without_gap_or_duplicate(stores: Stores) {
    const BLOCKS: u64 = 40;
    const PER_BLOCK: u64 = 5;
    let node = std::sync::Arc::new(start_node(stores, |_| {}).await);
    let mut writer = {
        let node = node.clone();
        tokio::spawn(async move {
            let mut chain = Chain::new();
            for b in 0..BLOCKS {
                let ps: Vec<_> = (0..PER_BLOCK)
                    .map(|i| pay(b * PER_BLOCK + i, i, i + 1))
                    .collect();
                node.post_ok("/new_block", chain.block(&ps)).await;
                tokio::time::sleep(Duration::from_millis(5)).await;
            }
        })
    };
    let mut seen: Vec<u64> = Vec::new();
    let mut round = 0u64;
    let mut last_seq = None;
    'rounds: loop {
        round += 1;
        let mut c = connect(&node).await;
        let mut params = json!({"event": "all"});
        if round > 1 {
            params["since_seq"] = json!(seen.last().copied().unwrap_or(0));
        } else {
            params["since_seq"] = json!(0);
        }
        c.subscribe(round, params).await;
        // Read a few, then drop the connection mid-stream (the first rounds).
        let take = if round < 6 { 23 } else { usize::MAX };
        let mut n = 0;
        while n < take {
            match c.try_note(Duration::from_millis(300)).await {
                Some(v) => {
                    seen.push(v["params"]["seq"].as_u64().unwrap());
                    n += 1;
                }
                None => {
                    if last_seq.is_none() && writer.is_finished() {
                        (&mut writer).await.expect("writer");
                        last_seq = Some(node.app().ingestor.history().last_seq().await.unwrap());
                    }
                    if last_seq.is_some() && seen.last().copied() == last_seq {
                        break 'rounds;
                    }
                }
            }
        }
        drop(c);
    }
    assert!(round >= 6, "reconnected mid-stream ({round} rounds)");
    let total = last_seq.unwrap();
    assert!(total > BLOCKS * PER_BLOCK, "finals too");
    let expected: Vec<u64> = (1..=total).collect();
    assert_eq!(
        seen, expected,
        "every event once, in order, across {round} connections"
    );
    std::sync::Arc::into_inner(node)
        .expect("last handle")
        .stop()
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_across_disconnects_embedded() {
    resume_without_gap_or_duplicate(Stores::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_across_disconnects_production() {
    resume_without_gap_or_duplicate(Stores::Production).await;
}

/// A client with a tiny receive buffer that does not read.
async fn connect_unread(node: &TestNode) -> Ws {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(node.api).await.unwrap();
    let (ws, _) = tokio_tungstenite::client_async(
        format!("ws://{}/ws", node.api),
        MaybeTlsStream::Plain(stream),
    )
    .await
    .expect("WebSocket connects");
    ws
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_consumer_is_closed_while_a_fast_one_keeps_receiving() {
    let node = std::sync::Arc::new(
        start_node(Stores::Embedded, |c| {
            c.ws_send_queue = 8;
            c.ws_send_timeout_ms = 200;
        })
        .await,
    );
    let mut slow = connect_unread(&node).await;
    slow.send(Message::Text(
        json!({"jsonrpc":"2.0","id":1,"method":"subscribe","params":{"event":"all"}}).to_string(),
    ))
    .await
    .unwrap();
    let mut fast = connect(&node).await;
    fast.subscribe(1, json!({"event": "all"})).await;
    let reader = tokio::spawn(async move {
        let mut seqs = Vec::new();
        loop {
            let v = fast.note().await;
            let seq = v["params"]["seq"].as_u64().unwrap();
            seqs.push(seq);
            if v["params"]["payment_id"] == json!(id_str(payment_id(u64::MAX))) {
                return seqs;
            }
        }
    });
    // Post blocks until the slow client has been closed (the kernel buffers
    // take some filling first), then one last marker block.
    let mut chain = Chain::new();
    let mut n = 0u64;
    let mut blocks = 0;
    while node.metric("nexus_ws_slow_consumers_total").await < 1.0 {
        blocks += 1;
        assert!(blocks < 400, "slow consumer never detected");
        let ps: Vec<_> = (0..50)
            .map(|i| {
                n += 1;
                pay(n, i, i + 1)
            })
            .collect();
        node.post_ok("/new_block", chain.block(&ps)).await;
    }
    // The slow client now reads (promptly: the server gives the close frame
    // a few seconds to get out): its frames, then the close frame saying why.
    let slow_reader = tokio::spawn(async move {
        loop {
            match tokio::time::timeout(WAIT, slow.next())
                .await
                .expect("in time")
            {
                Some(Ok(Message::Close(f))) => break f,
                Some(Ok(_)) => continue,
                other => panic!("expected a close frame, got {other:?}"),
            }
        }
    });
    node.post_ok("/new_block", chain.block(&[pay(u64::MAX, 1, 2)]))
        .await;
    let seqs = tokio::time::timeout(Duration::from_secs(60), reader)
        .await
        .expect("fast reader finishes")
        .unwrap();
    let expected: Vec<u64> = (1..=seqs.len() as u64).collect();
    assert_eq!(seqs, expected, "the fast client got everything, in order");
    assert!(
        seqs.len() as u64 > n,
        "{} events for {n} payments",
        seqs.len()
    );
    let close = slow_reader.await.unwrap().expect("close frame");
    assert_eq!(u16::from(close.code), 4008);
    assert!(close.reason.contains("since_seq"), "{}", close.reason);
    std::sync::Arc::into_inner(node)
        .expect("last handle")
        .stop()
        .await;
}

#[tokio::test]
async fn a_client_that_stops_answering_pings_is_dropped() {
    let node = start_node(Stores::Embedded, |c| {
        c.ws_ping_interval_ms = 50;
        c.ws_ping_timeout_ms = 200;
    })
    .await;
    // A live client answers pings (tungstenite does, while reading) and stays.
    let mut live = connect(&node).await;
    live.subscribe(1, json!({"event": "all"})).await;
    let mut mute = connect(&node).await;
    let started = std::time::Instant::now();
    tokio::join!(live.quiet(Duration::from_millis(1_500)), async {
        eventually("the mute client is dropped", WAIT, || async {
            node.metric("nexus_ws_ping_timeouts_total").await >= 1.0
        })
        .await
    });
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "not before the timeout"
    );
    // The server sent close 4000 and dropped the socket. Reading, the mute
    // client first answers the queued pings, which may hit the closed socket
    // before it gets to the close frame: either way the connection is gone.
    loop {
        match tokio::time::timeout(WAIT, mute.ws.next())
            .await
            .expect("in time")
        {
            Some(Ok(Message::Close(f))) => {
                assert_eq!(u16::from(f.expect("frame").code), 4000);
                break;
            }
            Some(Ok(_)) => continue,
            None | Some(Err(_)) => break,
        }
    }
    assert_eq!(
        node.metric("nexus_ws_ping_timeouts_total").await,
        1.0,
        "only the mute one"
    );
    let mut chain = Chain::new();
    node.post_ok("/new_block", chain.block(&[pay(1, 1, 2)]))
        .await;
    assert_eq!(live.notes(1).await[0].0, 1);
    node.stop().await;
}

#[tokio::test]
async fn connections_beyond_the_cap_are_refused() {
    let node = start_node(Stores::Embedded, |c| c.ws_max_connections = 1).await;
    let first = connect(&node).await;
    let err = tokio_tungstenite::connect_async(format!("ws://{}/ws", node.api))
        .await
        .expect_err("second connection refused");
    match err {
        tokio_tungstenite::tungstenite::Error::Http(resp) => assert_eq!(resp.status(), 503),
        other => panic!("expected HTTP 503, got {other:?}"),
    }
    drop(first);
    eventually("the permit comes back", WAIT, || async {
        tokio_tungstenite::connect_async(format!("ws://{}/ws", node.api))
            .await
            .is_ok()
    })
    .await;
    node.stop().await;
}
