//! One `StateStore` suite, run against every implementation: the same
//! assertions against [`MemoryState`] and against [`RedisState`] on the real
//! Redis at `redis://127.0.0.1:6379` (override with `NEXUS_TEST_REDIS_URL`).
//!
//! Each Redis test writes under its own random prefix (`nexus-test:<hex>:`)
//! and deletes it afterwards, also when the test fails, so tests run in parallel.

use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nexus_core::domain::{ChainPos, Payment, PaymentId, PaymentStatus};
use nexus_store::memory::MemoryState;
use nexus_store::redis::{RedisState, SETTLED_TTL_SECS};
use nexus_store::{StateStore, StoreError};

const DEFAULT_REDIS_URL: &str = "redis://127.0.0.1:6379";

fn redis_url() -> String {
    std::env::var("NEXUS_TEST_REDIS_URL").unwrap_or_else(|_| DEFAULT_REDIS_URL.to_string())
}

/// The store under test, through the trait, plus the helpers each
/// implementation exposes outside it.
#[derive(Clone)]
enum Fixture {
    Memory(Arc<MemoryState>),
    Redis(Arc<RedisState>),
}

impl Fixture {
    fn memory() -> Self {
        Fixture::Memory(Arc::new(MemoryState::new()))
    }

    async fn redis() -> Self {
        let prefix = format!("nexus-test:{:016x}:", rand::random::<u64>());
        let store = RedisState::connect(&redis_url(), &prefix)
            .await
            .expect("Redis for the conformance suite (set NEXUS_TEST_REDIS_URL)");
        Fixture::Redis(Arc::new(store))
    }

    fn store(&self) -> Arc<dyn StateStore> {
        match self {
            Fixture::Memory(s) => s.clone(),
            Fixture::Redis(s) => s.clone(),
        }
    }

    async fn ttl(&self, id: &PaymentId) -> Option<Duration> {
        match self {
            Fixture::Memory(s) => s.ttl(id).await,
            Fixture::Redis(s) => s.ttl(id).await,
        }
        .expect("ttl")
    }

    async fn cleanup(&self) {
        if let Fixture::Redis(s) = self {
            s.flush_prefix().await.expect("flush test prefix");
        }
    }
}

/// Run `body` against `fx`, then clean up, even if `body` panicked.
async fn run<F, Fut>(fx: Fixture, body: F)
where
    F: FnOnce(Fixture) -> Fut,
    Fut: Future<Output = ()> + Send + 'static,
{
    let outcome = tokio::spawn(body(fx.clone())).await;
    fx.cleanup().await;
    if let Err(e) = outcome {
        std::panic::resume_unwind(e.into_panic());
    }
}

/// `#[tokio::test]`s `memory::<name>` and `redis::<name>` for each shared test.
macro_rules! conformance {
    ($($name:ident),* $(,)?) => {
        mod memory {
            $(
                #[tokio::test]
                async fn $name() {
                    super::run(super::Fixture::memory(), super::$name).await;
                }
            )*
        }
        mod redis {
            $(
                #[tokio::test]
                async fn $name() {
                    super::run(super::Fixture::redis().await, super::$name).await;
                }
            )*
        }
    };
}

conformance!(
    empty_store_has_nothing,
    get_many_keeps_order_and_reports_unknown_ids,
    last_seq_follows_apply,
    records_follow_the_status,
    last_record_of_an_id_wins_within_one_apply,
    only_settled_payments_expire,
    counters_accumulate,
    thousand_payments_in_one_apply,
    ping_answers,
);

fn id(n: u32) -> PaymentId {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(&n.to_be_bytes());
    b[31] = 0xab;
    PaymentId(b)
}

fn pos(height: u64) -> ChainPos {
    ChainPos {
        txid: format!("0x{:064x}", height),
        tx_index: 3,
        block_height: height,
        index_block_hash: format!("0x{:064x}", height + 1),
        block_hash: format!("0x{:064x}", height + 2),
        burn_block_height: 800_000 + height,
        burn_block_hash: format!("0x{:064x}", height + 3),
    }
}

/// A fully populated record, so a round trip checks every field.
fn payment(n: u32, status: PaymentStatus) -> Payment {
    Payment {
        payment_id: id(n),
        status,
        sender: Some("ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM".into()),
        recipient: Some("ST2CY5V39NHDPWSXMW9QDT3HC3GD6Q6XX4CFRK9AG".into()),
        amount: Some("340282366920938463463374607431768211455".into()),
        memo: Some("0x6f72646572".into()),
        expires_at: Some(1_000 + u64::from(n)),
        create_txid: Some(format!("0x{:064x}", n)),
        created_in: Some(pos(100)),
        settled_in: status.is_settled().then(|| pos(120)),
        reason: matches!(status, PaymentStatus::Dropped).then(|| "ReplaceByFee".into()),
        replaced_by: None,
        is_final: n.is_multiple_of(2),
        // Odd records are x402 transfers, so both shapes round-trip.
        scheme: (n % 2 == 1).then_some(nexus_core::domain::Scheme::Exact),
        asset: (n % 2 == 1).then(|| "SP3K8BC0PPEVCV7NZ6QSRWPQ2JE9E5B6N3PA0KBR9.token::tok".into()),
        nonce: (n % 2 == 1).then_some(u64::from(n) + 40),
        updated_seq: u64::from(n),
        updated_at: "2025-06-01T12:00:00Z".into(),
    }
}

async fn empty_store_has_nothing(fx: Fixture) {
    let s = fx.store();
    assert_eq!(s.get(&id(1)).await.unwrap(), None);
    assert_eq!(s.get_many(&[id(1), id(2)]).await.unwrap(), vec![None, None]);
    assert_eq!(s.get_many(&[]).await.unwrap(), vec![]);
    assert_eq!(s.last_seq().await.unwrap(), 0);
    assert_eq!(s.counter("deliveries").await.unwrap(), 0);
}

async fn get_many_keeps_order_and_reports_unknown_ids(fx: Fixture) {
    let s = fx.store();
    let a = payment(1, PaymentStatus::Confirmed);
    let b = payment(2, PaymentStatus::Claimed);
    s.apply(&[a.clone(), b.clone()], 2, &[]).await.unwrap();

    let got = s
        .get_many(&[b.payment_id, id(99), a.payment_id])
        .await
        .unwrap();
    assert_eq!(got, vec![Some(b.clone()), None, Some(a.clone())]);
    assert_eq!(s.get(&a.payment_id).await.unwrap(), Some(a));
    assert_eq!(s.get(&id(99)).await.unwrap(), None);
}

async fn last_seq_follows_apply(fx: Fixture) {
    let s = fx.store();
    s.apply(&[payment(1, PaymentStatus::Pending)], 5, &[])
        .await
        .unwrap();
    assert_eq!(s.last_seq().await.unwrap(), 5);
    s.apply(&[payment(1, PaymentStatus::Submitted)], 9, &[])
        .await
        .unwrap();
    assert_eq!(s.last_seq().await.unwrap(), 9);
    // An apply with no records still moves the cursor (catch-up of a no-op delivery).
    s.apply(&[], 12, &[]).await.unwrap();
    assert_eq!(s.last_seq().await.unwrap(), 12);
}

async fn records_follow_the_status(fx: Fixture) {
    use PaymentStatus::*;
    let s = fx.store();
    let p = id(7);
    // Settled records carry the cache TTL; open ones none, also after a
    // correction moves a settled payment back.
    let steps = [
        Pending, Submitted, Confirmed, Claimed,
        // A correction from the verifier can move a payment back.
        Confirmed, Refunded, Dropped, Failed,
    ];
    for (seq, status) in (1u64..).zip(steps) {
        s.apply(&[payment(7, status)], seq, &[]).await.unwrap();
        assert_eq!(s.get(&p).await.unwrap().map(|r| r.status), Some(status));
        assert_eq!(
            fx.ttl(&p).await.is_some(),
            status.is_settled(),
            "TTL after {status}"
        );
    }
}

async fn last_record_of_an_id_wins_within_one_apply(fx: Fixture) {
    let s = fx.store();
    let first = payment(3, PaymentStatus::Submitted);
    let last = payment(3, PaymentStatus::Confirmed);
    s.apply(&[first, last.clone()], 2, &[]).await.unwrap();
    assert_eq!(s.get(&id(3)).await.unwrap(), Some(last));
}

async fn only_settled_payments_expire(fx: Fixture) {
    let s = fx.store();
    let full = Duration::from_secs(SETTLED_TTL_SECS);
    let near_full = |ttl: Option<Duration>| {
        ttl.is_some_and(|t| t <= full && t > full - Duration::from_secs(60))
    };

    s.apply(&[payment(1, PaymentStatus::Confirmed)], 1, &[])
        .await
        .unwrap();
    assert_eq!(fx.ttl(&id(1)).await, None, "open payments never expire");

    s.apply(&[payment(1, PaymentStatus::Claimed)], 2, &[])
        .await
        .unwrap();
    let ttl = fx.ttl(&id(1)).await;
    assert!(near_full(ttl), "settled: {ttl:?}");

    // A correction back to an open status must clear the TTL.
    s.apply(&[payment(1, PaymentStatus::Confirmed)], 3, &[])
        .await
        .unwrap();
    assert_eq!(
        fx.ttl(&id(1)).await,
        None,
        "reopened payments lose their TTL"
    );

    for st in [
        PaymentStatus::Failed,
        PaymentStatus::Dropped,
        PaymentStatus::Refunded,
    ] {
        s.apply(&[payment(2, st)], 4, &[]).await.unwrap();
        assert!(near_full(fx.ttl(&id(2)).await), "{st}");
    }
    s.apply(&[payment(3, PaymentStatus::Pending)], 5, &[])
        .await
        .unwrap();
    assert_eq!(fx.ttl(&id(3)).await, None);
}

async fn counters_accumulate(fx: Fixture) {
    let s = fx.store();
    s.apply(&[], 1, &[("blocks", 1), ("payments_confirmed", 3)])
        .await
        .unwrap();
    s.apply(&[], 2, &[("blocks", 1), ("blocks", 2)])
        .await
        .unwrap();
    assert_eq!(s.counter("blocks").await.unwrap(), 4);
    assert_eq!(s.counter("payments_confirmed").await.unwrap(), 3);
    assert_eq!(s.counter("never_written").await.unwrap(), 0);
}

async fn thousand_payments_in_one_apply(fx: Fixture) {
    let s = fx.store();
    let statuses = PaymentStatus::ALL;
    let batch: Vec<Payment> = (0..1000u32)
        .map(|n| payment(n, statuses[n as usize % statuses.len()]))
        .collect();

    let started = Instant::now();
    s.apply(&batch, 1000, &[("payments", 1000)]).await.unwrap();
    let took = started.elapsed();
    eprintln!("{}: apply of 1,000 payments took {took:?}", kind(&fx));

    let ids: Vec<PaymentId> = batch.iter().map(|p| p.payment_id).collect();
    let started = Instant::now();
    let got = s.get_many(&ids).await.unwrap();
    eprintln!(
        "{}: get_many of 1,000 payments took {:?}",
        kind(&fx),
        started.elapsed()
    );
    assert_eq!(got, batch.iter().cloned().map(Some).collect::<Vec<_>>());
    assert_eq!(s.last_seq().await.unwrap(), 1000);
    assert_eq!(s.counter("payments").await.unwrap(), 1000);

    // One pipelined round trip: far below one round trip per payment. Generous
    // so a loaded machine does not flake; the measured time is printed above.
    assert!(took < Duration::from_secs(1), "apply took {took:?}");
}

async fn ping_answers(fx: Fixture) {
    fx.store().ping().await.unwrap();
}

fn kind(fx: &Fixture) -> &'static str {
    match fx {
        Fixture::Memory(_) => "memory",
        Fixture::Redis(_) => "redis",
    }
}

// ---- Redis only ----

/// An unreachable server is a temporary failure reported quickly, not a hang.
#[tokio::test]
async fn redis_unreachable_is_unavailable_fast() {
    let started = Instant::now();
    let err = RedisState::connect("redis://127.0.0.1:1", "nexus-test:unreachable:")
        .await
        .expect_err("nothing listens on port 1");
    let took = started.elapsed();
    assert!(matches!(err, StoreError::Unavailable { .. }), "{err:?}");
    assert!(err.is_temporary());
    assert!(took < Duration::from_secs(5), "took {took:?}");
}

/// A record that is not a `Payment` is `Corrupt` (permanent), not `Unavailable`.
#[tokio::test]
async fn redis_undecodable_record_is_corrupt() {
    let fx = Fixture::redis().await;
    run(fx, |fx| async move {
        let Fixture::Redis(store) = &fx else {
            unreachable!()
        };
        let client = ::redis::Client::open(redis_url()).unwrap();
        let mut con = client.get_multiplexed_async_connection().await.unwrap();
        let key = format!("{}payment:{}", store.prefix(), id(1));
        ::redis::cmd("SET")
            .arg(&key)
            .arg("{not json")
            .query_async::<()>(&mut con)
            .await
            .unwrap();
        let err = fx.store().get(&id(1)).await.unwrap_err();
        assert!(matches!(err, StoreError::Corrupt { .. }), "{err:?}");
        assert!(!err.is_temporary());
    })
    .await;
}

/// Two stores on different prefixes do not see each other's data.
#[tokio::test]
async fn redis_prefixes_are_isolated() {
    let (a, b) = (Fixture::redis().await, Fixture::redis().await);
    let b2 = b.clone();
    run(a, |a| async move {
        a.store()
            .apply(&[payment(1, PaymentStatus::Pending)], 3, &[("x", 1)])
            .await
            .unwrap();
        let b = b2.store();
        assert_eq!(b.get(&id(1)).await.unwrap(), None);
        assert_eq!(b.last_seq().await.unwrap(), 0);
        assert_eq!(b.counter("x").await.unwrap(), 0);
    })
    .await;
    b.cleanup().await;
}

/// `flush_prefix` deletes every key under its prefix and nothing else, even
/// when the prefix contains glob characters.
#[tokio::test]
async fn redis_flush_prefix_deletes_only_its_keys() {
    let url = redis_url();
    let tag = format!("{:016x}", rand::random::<u64>());
    let inner = format!("nexus-test:{tag}:a*:");
    // Matches `inner*` as a glob, but must survive: the `*` is literal.
    let sibling = format!("nexus-test:{tag}:ab:");
    let a = RedisState::connect(&url, &inner).await.unwrap();
    let b = RedisState::connect(&url, &sibling).await.unwrap();
    for s in [&a, &b] {
        s.apply(&[payment(1, PaymentStatus::Pending)], 1, &[("x", 1)])
            .await
            .unwrap();
    }
    a.flush_prefix().await.unwrap();

    let client = ::redis::Client::open(url).unwrap();
    let mut con = client.get_multiplexed_async_connection().await.unwrap();
    let left: Vec<String> = ::redis::cmd("KEYS")
        .arg(format!("nexus-test:{tag}:*"))
        .query_async(&mut con)
        .await
        .unwrap();
    b.flush_prefix().await.unwrap();
    assert!(!left.is_empty());
    assert!(left.iter().all(|k| k.starts_with(&sibling)), "{left:?}");
    assert_eq!(b.last_seq().await.unwrap(), 0);
}

/// A server that accepts connections but never answers (a hung Redis, a
/// black-holed proxy) surfaces as `Unavailable` within the timeouts, not a hang.
#[tokio::test]
async fn redis_silent_server_is_unavailable_fast() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    // Accept and read everything, answer nothing. Aborted at the end of the test.
    let silent = tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((sock, _)) = listener.accept().await {
            held.push(tokio::spawn(async move {
                let mut sock = sock;
                let _ = tokio::io::copy(&mut sock, &mut tokio::io::sink()).await;
            }));
        }
    });

    let started = Instant::now();
    let err = match RedisState::connect(&format!("redis://{addr}"), "nexus-test:silent:").await {
        Err(e) => e,
        Ok(store) => store
            .ping()
            .await
            .expect_err("a silent server cannot answer PING"),
    };
    let took = started.elapsed();
    silent.abort();
    assert!(err.is_temporary(), "{err:?}");
    assert!(took < Duration::from_secs(5), "took {took:?}");
}
