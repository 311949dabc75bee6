//! The loop's mechanics against an in-process RPC fake (unit tests: no I/O
//! but the embedded stores). The real HTTP client, Redis and PostgreSQL are
//! exercised by the node's `tests/reconcile.rs`.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;

use async_trait::async_trait;
use clarity::vm::types::Value;

use nexus_core::clock::FixedClock;
use nexus_core::domain::{
    ChainPos, EventSource, EventType, Payment, PaymentEvent, PaymentId, PaymentStatus,
};
use nexus_indexer::ingest::BroadcastBus;
use nexus_store::memory::MemoryState;
use nexus_store::sqlite::SqliteHistory;
use nexus_store::ChainLog;
use nexus_store::CommitBatch;

use super::*;
use nexus_core::escrow::{encode_get_payment, ChainPayment, ChainStatus};
use nexus_stacks::{Account, NodeInfo, RpcError};

const NOW: &str = "2026-01-01T00:00:00.000Z";
const CONTRACT: &str = "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM.x402-nexus-escrow";

#[derive(Default)]
struct Fake {
    height: AtomicU64,
    payments: Mutex<HashMap<PaymentId, ChainPayment>>,
    down: AtomicBool,
    info_delay: Mutex<Duration>,
    read_delay: Mutex<Duration>,
    infos: AtomicU64,
    reads: AtomicU64,
    in_flight: AtomicU64,
    max_in_flight: AtomicU64,
    infos_in_flight: AtomicU64,
    max_infos_in_flight: AtomicU64,
    /// Each payer's next nonce at every tip.
    nonces: Mutex<HashMap<String, u64>>,
    account_reads: AtomicU64,
}

fn bump_max(cur: &AtomicU64, max: &AtomicU64) {
    let now = cur.fetch_add(1, Ordering::SeqCst) + 1;
    max.fetch_max(now, Ordering::SeqCst);
}

#[async_trait]
impl StacksRpc for Fake {
    async fn info(&self) -> Result<NodeInfo, RpcError> {
        self.infos.fetch_add(1, Ordering::SeqCst);
        bump_max(&self.infos_in_flight, &self.max_infos_in_flight);
        let delay = *self.info_delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        self.infos_in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(RpcError::AllOpen {
                retry_after: Duration::from_secs(60),
            });
        }
        let h = self.height.load(Ordering::SeqCst);
        Ok(NodeInfo {
            stacks_tip_height: h,
            stacks_tip: format!("{h:064x}"),
            stacks_tip_consensus_hash: format!("{h:040x}"),
            burn_block_height: 100 + h,
            is_fully_synced: true,
        })
    }

    async fn call_read(
        &self,
        _: &ContractRef,
        function: &str,
        args: &[Value],
        _: &str,
        _: &Tip,
    ) -> Result<Value, RpcError> {
        assert_eq!(function, "get-payment");
        self.reads.fetch_add(1, Ordering::SeqCst);
        bump_max(&self.in_flight, &self.max_in_flight);
        let delay = *self.read_delay.lock().unwrap();
        tokio::time::sleep(delay).await;
        self.in_flight.fetch_sub(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(RpcError::AllOpen {
                retry_after: Duration::from_secs(60),
            });
        }
        let Value::Sequence(clarity::vm::types::SequenceData::Buffer(b)) = &args[0] else {
            panic!("argument is a buffer");
        };
        let id = PaymentId::from_slice(&b.data).unwrap();
        Ok(encode_get_payment(self.payments.lock().unwrap().get(&id)))
    }

    async fn map_entry(
        &self,
        _: &ContractRef,
        _: &str,
        _: &Value,
        _: &Tip,
    ) -> Result<Option<Value>, RpcError> {
        unreachable!("the reconciler reads get-payment")
    }

    async fn account(&self, principal: &str, _: &Tip) -> Result<Account, RpcError> {
        self.account_reads.fetch_add(1, Ordering::SeqCst);
        if self.down.load(Ordering::SeqCst) {
            return Err(RpcError::AllOpen {
                retry_after: Duration::from_secs(60),
            });
        }
        Ok(Account {
            balance: 1_000_000,
            locked: 0,
            unlock_height: 0,
            nonce: self
                .nonces
                .lock()
                .unwrap()
                .get(principal)
                .copied()
                .unwrap_or(0),
        })
    }
}

fn pid(n: u32) -> PaymentId {
    let mut b = [0u8; 32];
    b[..4].copy_from_slice(&n.to_be_bytes());
    PaymentId(b)
}

fn confirmed(n: u32) -> Payment {
    let mut p = Payment::new(pid(n), PaymentStatus::Confirmed, NOW);
    p.sender = Some("ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM".into());
    p.recipient = Some("ST2CY5V39NHDPWSXMW9QDT3HC3GD6Q6XX4CFRK9AG".into());
    p.amount = Some("5".into());
    p.expires_at = Some(110);
    p.created_in = Some(ChainPos {
        txid: format!("0x{n:064x}"),
        tx_index: 0,
        block_height: 10,
        index_block_hash: format!("0x{:064x}", 10),
        block_hash: format!("0x{:064x}", 0xb10),
        burn_block_height: 110,
        burn_block_hash: format!("0x{:064x}", 0xc10),
    });
    p
}

fn on_chain(status: ChainStatus) -> ChainPayment {
    ChainPayment {
        sender: "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM".into(),
        recipient: "ST2CY5V39NHDPWSXMW9QDT3HC3GD6Q6XX4CFRK9AG".into(),
        amount: 5,
        memo: vec![],
        created_at: 10,
        expires_at: 110,
        status,
        token: None,
    }
}

struct Setup {
    rpc: Arc<Fake>,
    rec: Arc<Reconciler>,
    ingestor: Arc<Ingestor>,
    bus: BroadcastBus,
}

/// The observer's event of type `ty` for `p` (numbered at commit).
fn event(p: &Payment, ty: EventType) -> PaymentEvent {
    PaymentEvent {
        sender: None,
        recipient: None,
        amount: None,
        confirmations: 1,
        is_final: ty == EventType::Final,
        ..PaymentEvent::about(p, ty, EventSource::Observer, NOW)
    }
}

async fn setup(payments: Vec<Payment>, cfg: ReconcileConfig) -> Setup {
    let state = Arc::new(MemoryState::new());
    let history = Arc::new(SqliteHistory::open_in_memory().unwrap());
    let events = payments
        .iter()
        .map(|p| event(p, EventType::Confirmed))
        .collect();
    history
        .commit(CommitBatch {
            payments,
            events,
            ..Default::default()
        })
        .await
        .unwrap();
    let bus = BroadcastBus::new(1024);
    let ingestor = Arc::new(
        Ingestor::start(
            state,
            history,
            Arc::new(bus.clone()),
            Arc::new(FixedClock(NOW.into())),
            CONTRACT.parse().unwrap(),
            EventSource::Observer,
        )
        .await
        .unwrap(),
    );
    let rpc = Arc::new(Fake::default());
    rpc.height.store(20, Ordering::SeqCst);
    let rec = Arc::new(Reconciler::new(
        ingestor.clone(),
        rpc.clone(),
        cfg,
        Arc::new(FixedClock(NOW.into())),
        Arc::new(NoReconcileObserver),
    ));
    Setup {
        rpc,
        rec,
        ingestor,
        bus,
    }
}

#[tokio::test(start_paused = true)]
async fn cycles_never_overlap_and_a_slow_one_delays_the_next() {
    let s = setup(
        vec![confirmed(1)],
        ReconcileConfig {
            interval: Duration::from_secs(10),
            ..Default::default()
        },
    )
    .await;
    s.rpc
        .payments
        .lock()
        .unwrap()
        .insert(pid(1), on_chain(ChainStatus::Pending));
    *s.rpc.info_delay.lock().unwrap() = Duration::from_secs(15);
    let stop = CancellationToken::new();
    let task = tokio::spawn(
        s.rec
            .clone()
            .run(crate::lease::fixed(Role::Leader(None)), stop.clone()),
    );
    // Cycles start at 0, 15, 30, 45 and 60 s: each takes 15 s > the 10 s interval.
    tokio::time::sleep(Duration::from_millis(61_000)).await;
    stop.cancel();
    task.await.unwrap();
    assert_eq!(
        s.rpc.max_infos_in_flight.load(Ordering::SeqCst),
        1,
        "never two cycles at once"
    );
    let starts = s.rpc.infos.load(Ordering::SeqCst);
    assert!((4..=5).contains(&starts), "{starts} cycles started in 61 s");
    assert!(s.rec.status().cycles >= 4);
}

#[tokio::test(start_paused = true)]
async fn the_interval_paces_fast_cycles() {
    let s = setup(vec![], ReconcileConfig::default()).await;
    let stop = CancellationToken::new();
    let task = tokio::spawn(
        s.rec
            .clone()
            .run(crate::lease::fixed(Role::Leader(None)), stop.clone()),
    );
    tokio::time::sleep(Duration::from_millis(35_000)).await;
    stop.cancel();
    task.await.unwrap();
    // At 0, 10, 20 and 30 s: the role channel closing at start adds none.
    let n = s.rpc.infos.load(Ordering::SeqCst);
    assert_eq!(n, 4, "{n} cycles in 35 s at a 10 s interval");
}

#[tokio::test]
async fn budget_carries_over_oldest_first_and_an_unchanged_tip_costs_no_reads() {
    let s = setup(
        (1..=5).map(confirmed).collect(),
        ReconcileConfig {
            budget: 2,
            ..Default::default()
        },
    )
    .await;
    for n in 1..=5 {
        s.rpc
            .payments
            .lock()
            .unwrap()
            .insert(pid(n), on_chain(ChainStatus::Pending));
    }
    let mut reads = Vec::new();
    let mut carried = Vec::new();
    for _ in 0..4 {
        let before = s.rpc.reads.load(Ordering::SeqCst);
        let r = s.rec.cycle(None).await.unwrap();
        reads.push(s.rpc.reads.load(Ordering::SeqCst) - before);
        carried.push(r.carried_over);
        assert!(r.degraded.is_none());
        assert_eq!(r.corrections, 0);
    }
    assert_eq!(
        reads,
        vec![2, 2, 1, 0],
        "budget 2, then nothing at the same tip"
    );
    assert_eq!(carried, vec![3, 1, 0, 0]);
    assert_eq!(s.rec.status().last_cycle.unwrap().cached, 5);
    // A new tip: everything is due again, within the budget.
    s.rpc.height.store(21, Ordering::SeqCst);
    let before = s.rpc.reads.load(Ordering::SeqCst);
    s.rec.cycle(None).await.unwrap();
    assert_eq!(s.rpc.reads.load(Ordering::SeqCst) - before, 2);
    // Proofs were written at the tip each payment was verified at.
    let proof = s
        .ingestor
        .history()
        .get_proof(&pid(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(proof.status, PaymentStatus::Confirmed);
    assert_eq!(proof.confirmations, 21 - 10 + 1);
    assert_eq!(proof.verified_tip_height, 21);
    assert_eq!(proof.block_height, Some(10));
}

/// 2 s blocks and a 10 s cycle: a payment can be claimed and turn final
/// between two cycles. Its proof must still follow it to the claim and to
/// finality, and only then may it leave the watched set.
#[tokio::test]
async fn a_payment_settled_and_final_between_cycles_gets_its_final_proof() {
    let s = setup(vec![confirmed(1)], ReconcileConfig::default()).await;
    s.rpc
        .payments
        .lock()
        .unwrap()
        .insert(pid(1), on_chain(ChainStatus::Pending));
    s.rec.cycle(None).await.unwrap();
    let history = s.ingestor.history();
    assert_eq!(
        history.get_proof(&pid(1)).await.unwrap().unwrap().status,
        PaymentStatus::Confirmed
    );

    // Claimed at 21, final by 26: both land before the next cycle.
    let mut claimed = confirmed(1);
    claimed.status = PaymentStatus::Claimed;
    claimed.is_final = true;
    claimed.settled_in = Some(ChainPos {
        txid: format!("0x{:064x}", 0xc1a1),
        tx_index: 0,
        block_height: 21,
        index_block_hash: format!("0x{:064x}", 21),
        block_hash: format!("0x{:064x}", 0xb21),
        burn_block_height: 121,
        burn_block_hash: format!("0x{:064x}", 0xc21),
    });
    claimed.updated_seq = 3;
    history
        .commit(CommitBatch {
            payments: vec![claimed.clone()],
            events: vec![
                event(&claimed, EventType::Claimed),
                event(&claimed, EventType::Final),
            ],
            ..Default::default()
        })
        .await
        .unwrap();
    // Then the state store, as the observer's commit does.
    s.ingestor
        .state()
        .apply(std::slice::from_ref(&claimed), 3, &[])
        .await
        .unwrap();
    s.rpc
        .payments
        .lock()
        .unwrap()
        .insert(pid(1), on_chain(ChainStatus::Claimed));
    s.rpc.height.store(27, Ordering::SeqCst);

    let r = s.rec.cycle(None).await.unwrap();
    assert_eq!(r.proofs, 1, "{r:?}");
    let proof = history.get_proof(&pid(1)).await.unwrap().unwrap();
    assert_eq!(proof.status, PaymentStatus::Claimed);
    assert_eq!(proof.txid, Some(format!("0x{:064x}", 0xc1a1)));
    assert_eq!(proof.confirmations, 27 - 21 + 1);
    assert!(proof.is_final);
    assert_eq!(proof.verified_tip_height, 27);
    // Final proof written: nothing left to watch.
    let r = s.rec.cycle(None).await.unwrap();
    assert_eq!(r.open, 0, "{r:?}");
}

#[tokio::test]
async fn reads_are_bounded_by_the_concurrency() {
    let s = setup(
        (1..=40).map(confirmed).collect(),
        ReconcileConfig {
            concurrency: 4,
            ..Default::default()
        },
    )
    .await;
    *s.rpc.read_delay.lock().unwrap() = Duration::from_millis(5);
    s.rec.cycle(None).await.unwrap();
    assert_eq!(s.rpc.reads.load(Ordering::SeqCst), 40);
    let max = s.rpc.max_in_flight.load(Ordering::SeqCst);
    assert!((2..=4).contains(&max), "max in flight {max}");
}

#[tokio::test]
async fn rpc_down_changes_nothing_and_reports_degraded() {
    let s = setup(vec![confirmed(1)], ReconcileConfig::default()).await;
    // The chain would say claimed, but the RPC is down.
    s.rpc
        .payments
        .lock()
        .unwrap()
        .insert(pid(1), on_chain(ChainStatus::Claimed));
    s.rpc.down.store(true, Ordering::SeqCst);
    let seq = s.ingestor.history().last_seq().await.unwrap();
    let r = s.rec.cycle(None).await.unwrap();
    assert!(r.degraded.is_some());
    assert!(s.rec.status().degraded);
    assert_eq!(s.ingestor.history().last_seq().await.unwrap(), seq);
    assert_eq!(
        s.ingestor
            .state()
            .get(&pid(1))
            .await
            .unwrap()
            .unwrap()
            .status,
        PaymentStatus::Confirmed
    );
    // Back up: the claim is applied, with the reconciler as its source.
    let mut rx = s.bus.subscribe();
    s.rpc.down.store(false, Ordering::SeqCst);
    let r = s.rec.cycle(None).await.unwrap();
    assert!(r.degraded.is_none());
    assert_eq!(r.corrections, 1);
    let ev = rx.recv().await.unwrap();
    assert_eq!(
        (ev.seq, ev.event_type, ev.source),
        (seq + 1, EventType::Claimed, EventSource::Reconciler)
    );
    assert_eq!(
        s.ingestor
            .state()
            .get(&pid(1))
            .await
            .unwrap()
            .unwrap()
            .status,
        PaymentStatus::Claimed
    );
    assert_eq!(s.ingestor.state().last_seq().await.unwrap(), seq + 1);
}

#[tokio::test]
async fn a_stale_leaders_writes_are_refused_by_its_fencing_token() {
    let s = setup(vec![confirmed(1)], ReconcileConfig::default()).await;
    s.rpc
        .payments
        .lock()
        .unwrap()
        .insert(pid(1), on_chain(ChainStatus::Refunded));
    let fence = |token| Fence {
        name: "reconciler".into(),
        token,
    };
    // The current leader (token 7) corrects.
    let r = s.rec.cycle(Some(fence(7))).await.unwrap();
    assert_eq!(r.corrections, 1);
    // A stale leader (token 5) is refused by history, and nothing changes.
    s.rpc
        .payments
        .lock()
        .unwrap()
        .insert(pid(1), on_chain(ChainStatus::Claimed));
    s.rpc.height.store(30, Ordering::SeqCst);
    let seq = s.ingestor.history().last_seq().await.unwrap();
    let err = s.rec.cycle(Some(fence(5))).await.unwrap_err();
    assert!(
        nexus_core::error_chain(&err).contains("stale"),
        "{}",
        nexus_core::error_chain(&err)
    );
    assert_eq!(s.ingestor.history().last_seq().await.unwrap(), seq);
    assert_eq!(
        s.ingestor
            .state()
            .get(&pid(1))
            .await
            .unwrap()
            .unwrap()
            .status,
        PaymentStatus::Refunded
    );
    // Its successor's token still works.
    let r = s.rec.cycle(Some(fence(8))).await.unwrap();
    assert_eq!(r.corrections, 1);
}

// x402 `exact` transfers, checked by their payers' nonces.
mod exact;
