//! `POST /v2/transactions` through the real HTTP client and the provider set,
//! against the RPC test double: an accepted or rejected transaction is an
//! answer (never a provider failure), a 5xx or a hang falls over, a 429's
//! Retry-After reaches the caller, and a preferred order is followed.

use std::sync::Arc;
use std::time::Duration;

use nexus_stacks::scripted::{self, txid_hex, BroadcastOutcome};
use nexus_stacks::{BroadcastAnswer, NoObserver, Providers, RpcError};
use serde_json::json;

/// Not a real transaction: the double hashes whatever it is given, as the
/// node hashes the consensus bytes it decoded.
const TX: &[u8] = b"\x80\x80\x00\x00\x00\x00\x04 a signed escrow call";

fn providers(urls: &[String], timeout: Duration) -> Providers {
    Providers::new(
        urls,
        None,
        timeout,
        3,
        Duration::from_secs(60),
        Arc::new(NoObserver),
    )
    .unwrap()
}

#[tokio::test]
async fn accepted_returns_the_txid_and_who_answered() {
    let a = scripted::start().await;
    let rpc = providers(&[a.url()], Duration::from_secs(5));
    assert_eq!(rpc.names(), vec![a.url()]);

    let (who, answer) = rpc.broadcast(&[], TX).await.unwrap();
    assert_eq!(who, a.url());
    assert_eq!(
        answer,
        BroadcastAnswer::Accepted {
            txid: format!("0x{}", txid_hex(TX))
        }
    );
    assert_eq!(a.script.broadcasts(), vec![TX.to_vec()], "the raw bytes");
    assert_eq!(rpc.status()[0].successes, 1);
}

#[tokio::test]
async fn a_rejection_is_an_answer_not_a_provider_failure() {
    let a = scripted::start().await;
    let b = scripted::start().await;
    let data = json!({"expected": 5, "actual": 3, "principal": "ST2ZRX0K27GW0SP3GJCEMHD95TQGJMKB7G9Y0X1MH", "is_origin": true});
    a.script
        .push_broadcasts((0..5).map(|_| BroadcastOutcome::reject("BadNonce", Some(data.clone()))));
    let rpc = providers(&[a.url(), b.url()], Duration::from_secs(5));

    // More rejections than the breaker threshold (3): it stays closed, and
    // the next provider is never asked.
    for _ in 0..5 {
        let (who, answer) = rpc.broadcast(&[], TX).await.unwrap();
        assert_eq!(who, a.url());
        assert_eq!(
            answer,
            BroadcastAnswer::Rejected {
                reason: "BadNonce".into(),
                reason_data: Some(data.clone()),
                txid: Some(format!("0x{}", txid_hex(TX))),
                message: "transaction rejected: BadNonce".into(),
            }
        );
    }
    let st = rpc.status();
    assert_eq!(
        (st[0].breaker, st[0].successes, st[0].failures),
        ("closed", 5, 0)
    );
    assert_eq!(b.script.calls("broadcast"), 0);

    // Queue drained: accepted again.
    let (_, answer) = rpc.broadcast(&[], TX).await.unwrap();
    assert!(
        matches!(answer, BroadcastAnswer::Accepted { .. }),
        "{answer:?}"
    );
}

#[tokio::test]
async fn a_400_that_is_not_a_rejection_is_permanent_and_not_the_providers_fault() {
    let a = scripted::start().await;
    let rpc = providers(&[a.url()], Duration::from_secs(5));
    // An empty body is refused by the HTTP layer, in plain text.
    let err = rpc.broadcast(&[], &[]).await.unwrap_err();
    assert!(
        matches!(err, RpcError::Status { status: 400, .. }),
        "{err:?}"
    );
    assert!(!err.is_temporary() && !err.is_provider_failure());
    assert_eq!(rpc.status()[0].failures, 0);
}

#[tokio::test]
async fn a_503_falls_over_to_the_next_provider() {
    let a = scripted::start().await;
    let b = scripted::start().await;
    a.script.push_broadcasts([BroadcastOutcome::Status(503)]);
    let rpc = providers(&[a.url(), b.url()], Duration::from_secs(5));

    let (who, answer) = rpc.broadcast(&[], TX).await.unwrap();
    assert_eq!(who, b.url());
    assert!(matches!(answer, BroadcastAnswer::Accepted { .. }));
    assert_eq!(a.script.broadcasts().len(), 1);
    assert_eq!(b.script.broadcasts().len(), 1);
    assert_eq!(rpc.status()[0].failures, 1);

    // With nobody else to ask, the 503 is the (temporary) error.
    let only = providers(&[a.url()], Duration::from_secs(5));
    a.script.push_broadcasts([BroadcastOutcome::Status(503)]);
    let err = only.broadcast(&[], TX).await.unwrap_err();
    assert!(matches!(err, RpcError::Exhausted { .. }), "{err:?}");
    assert!(err.is_temporary());
}

#[tokio::test]
async fn a_429_surfaces_its_retry_after_and_opens_the_breaker() {
    let a = scripted::start().await;
    a.script
        .push_broadcasts([BroadcastOutcome::RateLimited(7), BroadcastOutcome::Accept]);
    let rpc = providers(&[a.url()], Duration::from_secs(5));
    let err = rpc.broadcast(&[], TX).await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert!(err.is_temporary());
    // The breaker honours it: nobody is asked until it passes.
    let err = rpc.broadcast(&[], TX).await.unwrap_err();
    assert!(matches!(err, RpcError::AllOpen { .. }), "{err:?}");
    assert!(err.retry_after().unwrap() > Duration::from_secs(6));
    assert_eq!(a.script.calls("broadcast"), 1);
}

#[tokio::test]
async fn a_hung_node_times_out_and_falls_over() {
    let a = scripted::start().await;
    let b = scripted::start().await;
    a.script.push_broadcasts([BroadcastOutcome::Hang]);
    let rpc = providers(&[a.url(), b.url()], Duration::from_millis(300));
    let (who, _) = rpc.broadcast(&[], TX).await.unwrap();
    assert_eq!(who, b.url());
    assert_eq!(rpc.status()[0].failures, 1);

    a.script.push_broadcasts([BroadcastOutcome::Hang]);
    let only = providers(&[a.url()], Duration::from_millis(300));
    let err = only.broadcast(&[], TX).await.unwrap_err();
    let RpcError::Exhausted { last, .. } = &err else {
        panic!("{err:?}")
    };
    match last.as_ref() {
        RpcError::Transport { source, .. } => assert!(source.is_timeout(), "{source:?}"),
        other => panic!("{other:?}"),
    }
    assert!(err.is_temporary());
}

#[tokio::test]
async fn a_preferred_order_is_followed_and_still_falls_over() {
    let a = scripted::start().await;
    let b = scripted::start().await;
    let c = scripted::start().await;
    let rpc = providers(&[a.url(), b.url(), c.url()], Duration::from_secs(5));

    let (who, _) = rpc.broadcast(&[2, 0, 1], TX).await.unwrap();
    assert_eq!(who, c.url());
    c.script.push_broadcasts([BroadcastOutcome::Status(500)]);
    let (who, _) = rpc.broadcast(&[2, 0, 1], TX).await.unwrap();
    assert_eq!(who, a.url(), "c failed; a is next in the order");
    // A partial order: the rest follow in configuration order.
    let (who, _) = rpc.broadcast(&[1], TX).await.unwrap();
    assert_eq!(who, b.url());
    assert_eq!(
        (
            a.script.calls("broadcast"),
            b.script.calls("broadcast"),
            c.script.calls("broadcast")
        ),
        (1, 1, 2)
    );
}
