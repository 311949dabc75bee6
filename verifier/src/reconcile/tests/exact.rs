//! x402 `exact` transfers: the reconciler reads each payer's account once
//! per cycle, agrees while the transfer's nonce is spent (and writes the
//! proof), reverts a transfer whose nonce the chain no longer shows spent,
//! and lets a final one go.

use super::*;
use nexus_core::domain::Scheme;

const PAYER_A: &str = "ST1SJ3DTE5DN7X54YDH5D64R3BCB6A2AG2ZQ8YPD5";
const PAYER_B: &str = "ST2NEB84ASENDXKYGJPQW86YXQCEFEX2ZQPG87ND";

/// A transfer of `payer`'s nonce `nonce`, confirmed at height 10.
fn transfer(n: u32, payer: &str, nonce: u64) -> Payment {
    let mut p = confirmed(n);
    p.scheme = Some(Scheme::Exact);
    p.asset = Some("STX".into());
    p.sender = Some(payer.into());
    p.nonce = Some(nonce);
    p.expires_at = None;
    p
}

fn set_nonce(s: &Setup, payer: &str, next: u64) {
    s.rpc.nonces.lock().unwrap().insert(payer.into(), next);
}

#[tokio::test]
async fn transfers_are_checked_by_their_payers_nonce_one_read_per_payer() {
    let s = setup(
        vec![
            transfer(1, PAYER_A, 0),
            transfer(2, PAYER_A, 1),
            transfer(3, PAYER_B, 7),
            confirmed(4),
        ],
        ReconcileConfig::default(),
    )
    .await;
    s.rpc
        .payments
        .lock()
        .unwrap()
        .insert(pid(4), on_chain(ChainStatus::Pending));
    set_nonce(&s, PAYER_A, 2);
    set_nonce(&s, PAYER_B, 8);
    // Tip 12: the transfers at 10 are three blocks deep, not final.
    s.rpc.height.store(12, Ordering::SeqCst);

    let r = s.rec.cycle(None).await.unwrap();
    assert_eq!(r.open, 4);
    assert_eq!(r.corrections, 0, "{r:?}");
    // /v2/info, one get-payment, and one account per payer (not per transfer).
    assert_eq!(r.rpc_calls, 4, "{r:?}");
    assert_eq!(s.rpc.account_reads.load(Ordering::SeqCst), 2);
    assert_eq!(s.rpc.reads.load(Ordering::SeqCst), 1);
    assert_eq!(r.proofs, 4);
    let proof = s
        .ingestor
        .history()
        .get_proof(&pid(3))
        .await
        .unwrap()
        .expect("a transfer's proof");
    assert_eq!(proof.status, PaymentStatus::Confirmed);
    assert_eq!(proof.block_height, Some(10));
    assert_eq!(proof.txid, Some(format!("0x{:064x}", 3)));
    assert_eq!(proof.confirmations, 3);
    assert_eq!(proof.verified_tip_height, 12);
    assert!(!proof.is_final);
}

#[tokio::test]
async fn a_transfer_whose_nonce_is_unspent_at_the_tip_is_reverted_after_two_answers() {
    let s = setup(
        vec![transfer(1, PAYER_A, 0), transfer(2, PAYER_B, 5)],
        ReconcileConfig::default(),
    )
    .await;
    // A reorg the observer never delivered: payer A's transfer is gone.
    set_nonce(&s, PAYER_A, 0);
    set_nonce(&s, PAYER_B, 6);
    let mut events = s.bus.subscribe();
    s.rpc.height.store(12, Ordering::SeqCst);
    let r = s.rec.cycle(None).await.unwrap();
    assert_eq!(r.corrections, 0, "said once is not believed: {r:?}");
    s.rpc.height.store(13, Ordering::SeqCst);
    let r = s.rec.cycle(None).await.unwrap();
    assert_eq!(r.corrections, 1, "{r:?}");

    let history = s.ingestor.history();
    let p = history.get_payment(&pid(1)).await.unwrap().unwrap();
    assert_eq!(p.status, PaymentStatus::Pending);
    assert_eq!(p.created_in, None);
    assert_eq!(p.nonce, Some(0), "the nonce stays for the next check");
    let ev = events.recv().await.unwrap();
    assert_eq!(ev.event_type, EventType::Reverted);
    assert_eq!(ev.payment_id, pid(1));
    assert_eq!(ev.source, EventSource::Reconciler);
    assert_eq!(ev.scheme, Some(Scheme::Exact));
    let reverted = ev.reverted.expect("the orphaned block");
    assert_eq!(reverted.block_height, 10);
    assert_eq!(reverted.status, PaymentStatus::Pending);
    // Payer B's transfer stands.
    let other = history.get_payment(&pid(2)).await.unwrap().unwrap();
    assert_eq!(other.status, PaymentStatus::Confirmed);
}

#[tokio::test]
async fn a_provider_behind_the_transfers_block_changes_nothing() {
    let s = setup(vec![transfer(1, PAYER_A, 0)], ReconcileConfig::default()).await;
    set_nonce(&s, PAYER_A, 0);
    for h in [8, 9] {
        s.rpc.height.store(h, Ordering::SeqCst);
        let r = s.rec.cycle(None).await.unwrap();
        assert_eq!(r.corrections, 0, "{r:?}");
    }
    let p = s.ingestor.history().get_payment(&pid(1)).await.unwrap();
    assert_eq!(p.unwrap().status, PaymentStatus::Confirmed);
}

#[tokio::test]
async fn a_final_transfer_leaves_the_watched_set() {
    let s = setup(vec![transfer(1, PAYER_A, 0)], ReconcileConfig::default()).await;
    set_nonce(&s, PAYER_A, 1);
    // Tip 20: eleven blocks deep, past the default depth of six.
    let r = s.rec.cycle(None).await.unwrap();
    assert_eq!(r.proofs, 1, "{r:?}");
    let proof = s.ingestor.history().get_proof(&pid(1)).await.unwrap();
    assert!(proof.unwrap().is_final);
    s.rpc.height.store(21, Ordering::SeqCst);
    let r = s.rec.cycle(None).await.unwrap();
    assert_eq!(r.open, 0, "{r:?}");
    assert_eq!(s.rpc.account_reads.load(Ordering::SeqCst), 1);
}

#[tokio::test]
async fn a_transfer_without_its_nonce_is_not_watched() {
    let mut p = transfer(1, PAYER_A, 0);
    p.nonce = None;
    let s = setup(vec![p], ReconcileConfig::default()).await;
    let r = s.rec.cycle(None).await.unwrap();
    assert_eq!(r.open, 0, "{r:?}");
    assert_eq!(s.rpc.account_reads.load(Ordering::SeqCst), 0);
}
