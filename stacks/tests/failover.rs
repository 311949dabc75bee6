//! The real HTTP client against the RPC test double (real HTTP, real Clarity
//! serialization): typed answers, failover, circuit breakers, Retry-After.
//! Time is driven with `tokio::time::pause()` / `advance` only while no
//! request is in flight, so the paused clock never fires a request timeout.

use std::sync::Arc;
use std::time::Duration;

use nexus_core::domain::PaymentId;
use nexus_core::escrow::{decode_get_payment, payment_id_arg, ChainPayment, ChainStatus};
use nexus_stacks::scripted::{self, Mode};
use nexus_stacks::{
    BreakerState, ContractRef, NoObserver, Providers, RpcError, RpcObserver, StacksRpc,
};

fn contract() -> ContractRef {
    ContractRef {
        address: "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM".into(),
        name: "x402-nexus-escrow".into(),
    }
}

fn providers(urls: &[String], observer: Arc<dyn RpcObserver>) -> Providers {
    Providers::new(
        urls,
        None,
        Duration::from_secs(5),
        3,
        Duration::from_secs(60),
        observer,
    )
    .unwrap()
}

fn sample(status: ChainStatus) -> ChainPayment {
    ChainPayment {
        sender: "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM".into(),
        recipient: "ST2CY5V39NHDPWSXMW9QDT3HC3GD6Q6XX4CFRK9AG".into(),
        amount: 340_282_366_920_938_463_463_374_607_431_768_211_455,
        memo: b"invoice 42".to_vec(),
        created_at: 7,
        expires_at: 107,
        status,
        token: None,
    }
}

/// Jump the clock with nothing in flight, then let it run again.
async fn advance(d: Duration) {
    tokio::time::pause();
    tokio::time::advance(d).await;
    tokio::time::resume();
}

#[tokio::test]
async fn typed_reads_at_one_tip_decode_the_real_serialization() {
    let node = scripted::start().await;
    node.script.set_tip(42, 1);
    let id = PaymentId([7; 32]);
    node.script.put(id, sample(ChainStatus::Claimed));
    let rpc = providers(&[node.url()], Arc::new(NoObserver));

    let info = rpc.info().await.unwrap();
    let tip = info.tip().unwrap();
    assert_eq!(tip.height, 42);
    assert_eq!(tip.index_block_hash, node.script.tip_index_hash());

    let v = rpc
        .call_read(
            &contract(),
            "get-payment",
            &[payment_id_arg(&id)],
            "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM",
            &tip,
        )
        .await
        .unwrap();
    assert_eq!(
        decode_get_payment(&v).unwrap(),
        Some(sample(ChainStatus::Claimed))
    );
    let missing = rpc
        .call_read(
            &contract(),
            "get-payment",
            &[payment_id_arg(&PaymentId([8; 32]))],
            "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM",
            &tip,
        )
        .await
        .unwrap();
    assert_eq!(decode_get_payment(&missing).unwrap(), None);
    let entry = rpc
        .map_entry(&contract(), "payments", &payment_id_arg(&id), &tip)
        .await
        .unwrap()
        .expect("an entry");
    assert_eq!(
        decode_get_payment(&clarity::vm::types::Value::some(entry).unwrap()).unwrap(),
        Some(sample(ChainStatus::Claimed))
    );
    let acct = rpc
        .account("ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM", &tip)
        .await
        .unwrap();
    assert_eq!(acct.balance, 1_000_000_000);
    // Every read named the same tip.
    assert_eq!(node.script.tips_seen(), vec![tip.query().to_string()]);

    // A refused read-only call is permanent and not the provider's fault.
    let err = rpc
        .call_read(
            &contract(),
            "no-such-fn",
            &[],
            "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM",
            &tip,
        )
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::CallRefused { .. }), "{err:?}");
    assert!(!err.is_temporary());
}

#[derive(Default)]
struct Seen(std::sync::Mutex<Vec<(String, BreakerState)>>);

impl RpcObserver for Seen {
    fn call(&self, _: &str, _: &'static str, _: bool, _: Duration) {}
    fn breaker(&self, provider: &str, state: BreakerState) {
        self.0.lock().unwrap().push((provider.to_string(), state));
    }
}

#[tokio::test]
async fn fails_over_opens_the_breaker_after_three_failures_and_half_opens_after_60_s() {
    let a = scripted::start().await;
    let b = scripted::start().await;
    a.script.set_mode(Mode::Status(503));
    let seen = Arc::new(Seen::default());
    let rpc = providers(&[a.url(), b.url()], seen.clone());

    for _ in 0..5 {
        assert_eq!(
            rpc.info().await.unwrap().stacks_tip_height,
            1,
            "answered by b"
        );
    }
    assert_eq!(
        a.script.calls("info"),
        3,
        "a is skipped once its breaker opened"
    );
    assert_eq!(b.script.calls("info"), 5);
    let st = rpc.status();
    assert_eq!((st[0].breaker, st[0].failures), ("open", 3));
    assert_eq!((st[1].breaker, st[1].successes), ("closed", 5));
    assert!(seen
        .0
        .lock()
        .unwrap()
        .contains(&(a.url(), BreakerState::Open)));

    // 59 s later a is still skipped; at 60 s one probe goes to it.
    advance(Duration::from_secs(59)).await;
    rpc.info().await.unwrap();
    assert_eq!(a.script.calls("info"), 3);
    a.script.set_mode(Mode::Up);
    advance(Duration::from_secs(1)).await;
    assert_eq!(rpc.status()[0].breaker, "half_open");
    rpc.info().await.unwrap();
    assert_eq!(a.script.calls("info"), 4, "the probe");
    assert_eq!(
        rpc.status()[0].breaker,
        "closed",
        "a successful probe closes it"
    );
    rpc.info().await.unwrap();
    assert_eq!(a.script.calls("info"), 5, "a is the first choice again");
    assert_eq!(b.script.calls("info"), 6);
}

#[tokio::test]
async fn everything_down_is_temporary_and_then_all_open() {
    let a = scripted::start().await;
    a.script.set_mode(Mode::Status(500));
    let rpc = providers(&[a.url()], Arc::new(NoObserver));
    for _ in 0..3 {
        let err = rpc.info().await.unwrap_err();
        assert!(matches!(err, RpcError::Exhausted { .. }), "{err:?}");
        assert!(err.is_temporary());
    }
    let err = rpc.info().await.unwrap_err();
    assert!(matches!(err, RpcError::AllOpen { .. }), "{err:?}");
    assert!(err.is_temporary());
    assert!(err.retry_after().unwrap() > Duration::from_secs(59));
    assert_eq!(a.script.calls("info"), 3);
}

#[tokio::test]
async fn retry_after_is_honoured() {
    let a = scripted::start().await;
    let b = scripted::start().await;
    a.script.set_mode(Mode::RateLimited(30));
    let rpc = providers(&[a.url(), b.url()], Arc::new(NoObserver));
    rpc.info().await.unwrap();
    assert_eq!(
        rpc.status()[0].breaker,
        "open",
        "429 + Retry-After opens at once"
    );
    rpc.info().await.unwrap();
    assert_eq!(a.script.calls("info"), 1);
    a.script.set_mode(Mode::Up);
    advance(Duration::from_secs(30)).await;
    rpc.info().await.unwrap();
    assert_eq!(
        a.script.calls("info"),
        2,
        "asked again once Retry-After passed"
    );
    // With only a rate-limited provider, the error carries its Retry-After.
    let c = scripted::start().await;
    c.script.set_mode(Mode::RateLimited(7));
    let only = providers(&[c.url()], Arc::new(NoObserver));
    let err = only.info().await.unwrap_err();
    assert_eq!(err.retry_after(), Some(Duration::from_secs(7)));
    assert!(err.is_temporary());
}
