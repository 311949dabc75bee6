//! RPC providers over https: the RPC test double behind a local TLS server
//! whose certificate a per-run test CA signed (`nexus_testkit::tls`). With
//! that CA among the extra roots (`ca_cert_path`, loaded by
//! `nexus_outbound`) the real client reads `/v2/info`; without it the call
//! fails with an error that says the certificate is not trusted, and the
//! request never reaches the node.

use std::time::Duration;

use nexus_core::error_chain;
use nexus_outbound::Outbound;
use nexus_stacks::http::DEFAULT_TIMEOUT;
use nexus_stacks::{scripted, HttpProvider, NoObserver, Providers, RpcError, StacksRpc};
use nexus_testkit::tls::TlsFront;

#[tokio::test]
async fn an_https_provider_is_read_through_the_trusted_ca() {
    let rpc = scripted::start().await;
    rpc.script.set_tip(7, 0);
    let front = TlsFront::start(rpc.addr).await;
    let dir = tempfile::tempdir().unwrap();
    let outbound = Outbound::new(Some(&front.write_ca(dir.path(), "ca.pem"))).unwrap();

    let provider =
        HttpProvider::with_outbound(&front.url(), None, DEFAULT_TIMEOUT, &outbound).unwrap();
    let info = provider.info().await.expect("https read");
    assert_eq!(info.stacks_tip_height, 7);

    // The same through the providers the node builds (breakers, failover).
    let providers = Providers::with_outbound(
        &[front.url()],
        None,
        DEFAULT_TIMEOUT,
        3,
        Duration::from_secs(60),
        std::sync::Arc::new(NoObserver),
        &outbound,
    )
    .unwrap();
    assert_eq!(providers.info().await.unwrap().stacks_tip_height, 7);
    assert_eq!(rpc.script.calls("info"), 2);
}

#[tokio::test]
async fn an_untrusted_certificate_fails_with_a_clear_error() {
    let rpc = scripted::start().await;
    let front = TlsFront::start(rpc.addr).await;
    // The platform's roots only: the test CA is not among them.
    let provider = HttpProvider::new(&front.url(), None, DEFAULT_TIMEOUT).unwrap();
    let err = provider.info().await.unwrap_err();
    assert!(matches!(err, RpcError::Transport { .. }), "{err:?}");
    let text = error_chain(&err);
    assert!(
        text.contains(&front.url()) && text.contains("certificate"),
        "the error names the provider and the certificate: {text}"
    );
    // A provider failure (the breaker counts it, the next provider is
    // asked), like any other connection that cannot be made.
    assert!(err.is_provider_failure());
    assert_eq!(rpc.script.total_calls(), 0, "nothing reached the node");
}
