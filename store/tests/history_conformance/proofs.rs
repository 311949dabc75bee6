//! [`Proofs`]: stored proofs and fenced writes.

use crate::fixtures::*;

/// Proofs of settlement: stored, replaced by newer checks, one per payment.
pub async fn proofs_round_trip_and_replace(h: Arc<dyn History>) {
    assert_eq!(h.get_proof(&pid(1)).await.unwrap(), None);
    h.put_proofs(&[], None).await.unwrap();
    h.put_proofs(
        &[
            proof(pid(1), PaymentStatus::Confirmed, 8),
            proof(pid(2), PaymentStatus::Claimed, 9),
        ],
        None,
    )
    .await
    .unwrap();
    assert_eq!(
        h.get_proof(&pid(1)).await.unwrap(),
        Some(proof(pid(1), PaymentStatus::Confirmed, 8))
    );
    // A later check replaces it; the same id twice in one call: the last wins.
    h.put_proofs(
        &[
            proof(pid(1), PaymentStatus::Confirmed, 10),
            proof(pid(1), PaymentStatus::Confirmed, 12),
        ],
        None,
    )
    .await
    .unwrap();
    let p = h.get_proof(&pid(1)).await.unwrap().unwrap();
    assert_eq!(
        (p.verified_tip_height, p.confirmations, p.is_final),
        (12, 6, true)
    );
    assert_eq!(
        h.get_proof(&pid(2)).await.unwrap().unwrap().status,
        PaymentStatus::Claimed
    );
    // Position fields may be unknown (a transition learned from contract state).
    let mut bare = proof(pid(3), PaymentStatus::Refunded, 9);
    bare.txid = None;
    bare.block_height = None;
    h.put_proofs(&[bare.clone()], None).await.unwrap();
    assert_eq!(h.get_proof(&pid(3)).await.unwrap(), Some(bare));
}

/// Fenced writes: a token below the highest one seen is refused, and the
/// refused write changes nothing (neither the commit nor the proofs).
pub async fn fenced_writes_refuse_stale_tokens(h: Arc<dyn History>) {
    let fence = |token| Fence {
        name: "reconciler".to_string(),
        token,
    };
    let fenced = |ids: &[PaymentId], token| CommitBatch {
        fence: Some(fence(token)),
        ..events_batch(ids)
    };
    h.commit(fenced(&[pid(1)], 5)).await.unwrap();
    h.commit(fenced(&[pid(2)], 5)).await.unwrap();
    h.commit(fenced(&[pid(3)], 9)).await.unwrap();
    let err = h.commit(fenced(&[pid(4)], 8)).await.unwrap_err();
    assert!(matches!(err, StoreError::Rejected { .. }), "{err:?}");
    assert!(!err.is_temporary());
    assert_eq!(h.last_seq().await.unwrap(), 3);
    assert_eq!(h.get_payment(&pid(4)).await.unwrap(), None);
    let err = h
        .put_proofs(
            &[proof(pid(1), PaymentStatus::Confirmed, 8)],
            Some(&fence(8)),
        )
        .await
        .unwrap_err();
    assert!(matches!(err, StoreError::Rejected { .. }), "{err:?}");
    assert_eq!(h.get_proof(&pid(1)).await.unwrap(), None);
    h.put_proofs(
        &[proof(pid(1), PaymentStatus::Confirmed, 8)],
        Some(&fence(9)),
    )
    .await
    .unwrap();
    assert!(h.get_proof(&pid(1)).await.unwrap().is_some());
    // Unfenced writers (the observer) are never refused; other names are separate.
    h.commit(events_batch(&[pid(5)])).await.unwrap();
    h.commit(CommitBatch {
        fence: Some(Fence {
            name: "other".to_string(),
            token: 1,
        }),
        ..events_batch(&[pid(6)])
    })
    .await
    .unwrap();
    assert_eq!(h.last_seq().await.unwrap(), 5);
}
