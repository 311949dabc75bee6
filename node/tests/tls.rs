//! Outbound https through a real node: an RPC provider and a webhook
//! receiver, each behind a local TLS server whose certificate a per-run test
//! CA signed (`nexus_testkit::tls`), trusted through `ca_cert_path` alone.
//! Without the CA the RPC call fails saying so; a `ca_cert_path` that is
//! missing or not PEM stops the node at start, naming the file.

mod common;

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use common::blocks::{payment_id, Chain, NewPayment};
use common::{start_node, Stores};
use nexus_core::domain::PaymentEvent;
use nexus_core::error_chain;
use nexus_delivery::webhook::{verify_webhook_signature, EndpointConfig, DEFAULT_TOLERANCE};
use nexus_node::config::Config;
use nexus_stacks::{scripted, StacksRpc};
use nexus_testkit::tls::TlsFront;
use tokio::sync::mpsc;

const SECRET: &str = "whsec_tls_0123456789abcdef";
const WAIT: Duration = Duration::from_secs(30);

#[tokio::test]
async fn the_rpc_client_reads_an_https_provider_through_ca_cert_path() {
    let rpc = scripted::start().await;
    rpc.script.set_tip(42, 0);
    let front = TlsFront::start(rpc.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = front.write_ca(dir.path(), "ca.pem");
    let node = start_node(Stores::Embedded, |c: &mut Config| {
        c.rpc_url = Some(front.url());
        c.ca_cert_path = Some(ca);
    })
    .await;
    let providers = node.app().rpc.clone().expect("an RPC is configured");
    let info = providers.info().await.expect("/v2/info over https");
    assert_eq!(info.stacks_tip_height, 42);
    assert!(rpc.script.calls("info") >= 1);
    node.stop().await;
}

#[tokio::test]
async fn an_untrusted_rpc_certificate_is_a_clear_error() {
    let rpc = scripted::start().await;
    let front = TlsFront::start(rpc.addr).await;
    let node = start_node(Stores::Embedded, |c: &mut Config| {
        c.rpc_url = Some(front.url());
    })
    .await;
    let providers = node.app().rpc.clone().expect("an RPC is configured");
    let err = providers.info().await.unwrap_err();
    let text = error_chain(&err);
    assert!(
        text.contains(&front.url()) && text.contains("invalid peer certificate"),
        "{text}"
    );
    assert_eq!(rpc.script.total_calls(), 0, "nothing reached the node");
    node.stop().await;
}

/// What the receiver got: headers and the raw body.
type Got = (HeaderMap, Bytes);

async fn receive(
    State(tx): State<mpsc::UnboundedSender<Got>>,
    h: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let _ = tx.send((h, body));
    StatusCode::OK
}

#[tokio::test]
async fn a_webhook_receiver_over_https_gets_a_signed_delivery() {
    let (tx, mut got) = mpsc::unbounded_channel::<Got>();
    let app = Router::new().route("/hook", post(receive)).with_state(tx);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain = listener.local_addr().unwrap();
    let server = tokio::spawn(async move { axum::serve(listener, app).await });
    let front = TlsFront::start(plain).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = front.write_ca(dir.path(), "ca.pem");
    let node = start_node(Stores::Embedded, |c: &mut Config| {
        c.ca_cert_path = Some(ca);
        c.webhooks = vec![EndpointConfig {
            name: "merchant".into(),
            url: format!("{}/hook", front.url()),
            secret: SECRET.into(),
            events: vec![],
            principal: None,
            payment_id: None,
        }];
    })
    .await;
    let mut chain = Chain::new();
    let block = chain.block(&[NewPayment {
        id: payment_id(1),
        payer: 1,
        payee: 2,
        amount: 7_000,
    }]);
    node.post_ok("/new_block", block).await;

    let (headers, body) = tokio::time::timeout(WAIT, got.recv())
        .await
        .expect("a delivery within 30 s")
        .expect("the receiver runs");
    let h = |n: &str| headers.get(n).and_then(|v| v.to_str().ok()).unwrap_or("");
    verify_webhook_signature(
        &body,
        h("x402-nexus-signature"),
        h("x402-nexus-timestamp"),
        SECRET,
        DEFAULT_TOLERANCE,
    )
    .expect("the signature verifies");
    assert_eq!(h("x402-nexus-event-id"), "evt_1");
    let event: PaymentEvent = serde_json::from_slice(&body).expect("an event record");
    assert_eq!((event.seq, event.payment_id), (1, payment_id(1)));
    node.stop().await;
    server.abort();
}

#[tokio::test]
async fn a_bad_ca_cert_path_stops_the_start_naming_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let not_pem = dir.path().join("not-a-cert.pem");
    std::fs::write(&not_pem, "not a certificate\n").unwrap();
    for path in [dir.path().join("missing.pem"), not_pem] {
        let cfg = Config {
            observer_addr: "127.0.0.1:0".parse().unwrap(),
            api_addr: "127.0.0.1:0".parse().unwrap(),
            sqlite_path: dir.path().join("h.sqlite"),
            ca_cert_path: Some(path.clone()),
            ..Config::default()
        };
        let err = nexus_node::server::start(cfg).await.err().expect("refused");
        let text = error_chain(&err);
        assert!(text.contains(&path.display().to_string()), "{text}");
    }
}
