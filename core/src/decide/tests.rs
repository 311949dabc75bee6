//! The whole decision table: every stored status × every escrow answer, then
//! the guards (provider behind, too young, said once) over every row.

use std::time::Duration;

use crate::domain::{ChainPos, EventSource, EventType, Payment, PaymentId, PaymentStatus};

use super::*;
use crate::domain::Tip;
use crate::escrow::{ChainPayment, ChainStatus};

const NOW: &str = "2026-01-01T00:00:00.000Z";

fn pos(height: u64) -> ChainPos {
    ChainPos {
        txid: format!("0x{:064x}", height),
        tx_index: 1,
        block_height: height,
        index_block_hash: format!("0x{:064x}", 0xb000 + height),
        block_hash: format!("0x{:064x}", 0xc000 + height),
        burn_block_height: 100 + height,
        burn_block_hash: format!("0x{:064x}", 0xd000 + height),
    }
}

/// A stored record in `status`, with chain positions where that status has them.
fn stored(status: PaymentStatus) -> Payment {
    let mut p = Payment::new(PaymentId([9; 32]), status, "2025-12-31T00:00:00.000Z");
    p.create_txid = Some("0xabc".into());
    if matches!(
        status,
        PaymentStatus::Confirmed | PaymentStatus::Claimed | PaymentStatus::Refunded
    ) {
        p.created_in = Some(pos(10));
    }
    if matches!(status, PaymentStatus::Claimed | PaymentStatus::Refunded) {
        p.settled_in = Some(pos(20));
    }
    p
}

fn chain(status: ChainStatus) -> ChainPayment {
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

fn tip(height: u64) -> Tip {
    Tip {
        height,
        index_block_hash: format!("0x{:064x}", height),
        burn_height: 0,
    }
}

/// What a row expects, in short.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum E {
    Agree,
    To(PaymentStatus, EventType),
    /// Waits: a pending/submitted payment the chain does not know yet is not old enough.
    Young,
}

fn run(
    status: PaymentStatus,
    on_chain: Option<ChainStatus>,
    t: u64,
    age: u64,
    streak: u32,
) -> Decision {
    let p = stored(status);
    let c = on_chain.map(chain);
    let tip = tip(t);
    decide(
        &Check {
            stored: &p,
            chain: c.as_ref(),
            tip: &tip,
            age: Duration::from_secs(age),
            absent_streak: streak,
        },
        &Rules::default(),
    )
}

#[test]
fn whole_table_with_a_current_provider_and_consistent_answers() {
    use ChainStatus as C;
    use EventType as Ev;
    use PaymentStatus::*;
    #[rustfmt::skip]
    let table: &[(PaymentStatus, Option<ChainStatus>, E, E)] = &[
        // stored,  chain,            young (60 s),                 old (1 h)
        (Pending,   None,             E::Young,                     E::To(Dropped, Ev::Dropped)),
        (Pending,   Some(C::Pending), E::To(Confirmed, Ev::Confirmed), E::To(Confirmed, Ev::Confirmed)),
        (Pending,   Some(C::Claimed), E::To(Claimed, Ev::Claimed),  E::To(Claimed, Ev::Claimed)),
        (Pending,   Some(C::Refunded),E::To(Refunded, Ev::Refunded),E::To(Refunded, Ev::Refunded)),
        (Submitted, None,             E::Young,                     E::To(Dropped, Ev::Dropped)),
        (Submitted, Some(C::Pending), E::To(Confirmed, Ev::Confirmed), E::To(Confirmed, Ev::Confirmed)),
        (Submitted, Some(C::Claimed), E::To(Claimed, Ev::Claimed),  E::To(Claimed, Ev::Claimed)),
        (Submitted, Some(C::Refunded),E::To(Refunded, Ev::Refunded),E::To(Refunded, Ev::Refunded)),
        (Confirmed, None,             E::To(Pending, Ev::Reverted), E::To(Pending, Ev::Reverted)),
        (Confirmed, Some(C::Pending), E::Agree,                     E::Agree),
        (Confirmed, Some(C::Claimed), E::To(Claimed, Ev::Claimed),  E::To(Claimed, Ev::Claimed)),
        (Confirmed, Some(C::Refunded),E::To(Refunded, Ev::Refunded),E::To(Refunded, Ev::Refunded)),
        (Claimed,   None,             E::To(Pending, Ev::Reverted), E::To(Pending, Ev::Reverted)),
        (Claimed,   Some(C::Pending), E::To(Confirmed, Ev::Reverted), E::To(Confirmed, Ev::Reverted)),
        (Claimed,   Some(C::Claimed), E::Agree,                     E::Agree),
        (Claimed,   Some(C::Refunded),E::To(Refunded, Ev::Refunded),E::To(Refunded, Ev::Refunded)),
        (Refunded,  None,             E::To(Pending, Ev::Reverted), E::To(Pending, Ev::Reverted)),
        (Refunded,  Some(C::Pending), E::To(Confirmed, Ev::Reverted), E::To(Confirmed, Ev::Reverted)),
        (Refunded,  Some(C::Claimed), E::To(Claimed, Ev::Claimed),  E::To(Claimed, Ev::Claimed)),
        (Refunded,  Some(C::Refunded),E::Agree,                     E::Agree),
        (Failed,    None,             E::Agree,                     E::Agree),
        (Failed,    Some(C::Pending), E::To(Confirmed, Ev::Confirmed), E::To(Confirmed, Ev::Confirmed)),
        (Failed,    Some(C::Claimed), E::To(Claimed, Ev::Claimed),  E::To(Claimed, Ev::Claimed)),
        (Failed,    Some(C::Refunded),E::To(Refunded, Ev::Refunded),E::To(Refunded, Ev::Refunded)),
        (Dropped,   None,             E::Agree,                     E::Agree),
        (Dropped,   Some(C::Pending), E::To(Confirmed, Ev::Confirmed), E::To(Confirmed, Ev::Confirmed)),
        (Dropped,   Some(C::Claimed), E::To(Claimed, Ev::Claimed),  E::To(Claimed, Ev::Claimed)),
        (Dropped,   Some(C::Refunded),E::To(Refunded, Ev::Refunded),E::To(Refunded, Ev::Refunded)),
    ];
    assert_eq!(
        table.len(),
        PaymentStatus::ALL.len() * 4,
        "every combination"
    );
    for &(status, on_chain, young, old) in table {
        for (age, want) in [(60, young), (3600, old)] {
            let got = run(status, on_chain, 50, age, 2);
            let ok = match (want, &got) {
                (E::Agree, Decision::Agree) => true,
                (E::Young, Decision::Wait(Wait::NotYetOnChain)) => true,
                (E::To(s, ev), Decision::Correct { to, event, .. }) => s == *to && ev == *event,
                _ => false,
            };
            assert!(
                ok,
                "{status} / {on_chain:?} / age {age}s: want {want:?}, got {got:?}"
            );
        }
    }
}

#[test]
fn a_provider_behind_our_block_never_moves_a_payment_backwards() {
    // Tip 5: below every stored block (create at 10, settlement at 20).
    for status in [
        PaymentStatus::Confirmed,
        PaymentStatus::Claimed,
        PaymentStatus::Refunded,
    ] {
        for on_chain in [None, Some(ChainStatus::Pending)] {
            let got = run(status, on_chain, 5, 3600, 5);
            if let Decision::Correct { event, .. } = &got {
                assert_ne!(
                    *event,
                    EventType::Reverted,
                    "{status} / {on_chain:?} at tip 5"
                );
                assert_ne!(
                    *event,
                    EventType::Dropped,
                    "{status} / {on_chain:?} at tip 5"
                );
            }
        }
    }
    // Tip 15: above the create, below the settlement.
    assert_eq!(
        run(PaymentStatus::Claimed, Some(ChainStatus::Pending), 15, 0, 0),
        Decision::Wait(Wait::RpcBehind)
    );
    assert_eq!(
        run(PaymentStatus::Confirmed, None, 9, 0, 9),
        Decision::Wait(Wait::RpcBehind)
    );
}

#[test]
fn one_absent_answer_is_not_enough() {
    for status in [
        PaymentStatus::Pending,
        PaymentStatus::Submitted,
        PaymentStatus::Confirmed,
        PaymentStatus::Claimed,
    ] {
        assert_eq!(
            run(status, None, 50, 3600, 1),
            Decision::Wait(Wait::NotYetOnChain),
            "{status}"
        );
    }
}

#[test]
fn corrections_carry_the_chain_record_and_the_reconciler_source() {
    let p = stored(PaymentStatus::Submitted);
    let c = chain(ChainStatus::Claimed);
    let (next, ev) = correction(
        &p,
        Some(&c),
        PaymentStatus::Claimed,
        EventType::Claimed,
        "x",
        NOW,
    );
    assert_eq!(next.status, PaymentStatus::Claimed);
    assert_eq!(next.amount.as_deref(), Some("5"));
    assert_eq!(next.expires_at, Some(110));
    assert_eq!(ev.source, EventSource::Reconciler);
    assert_eq!(ev.status, PaymentStatus::Claimed);
    assert_eq!(ev.at, NOW);
    assert!(ev.reason.is_none());

    let p = stored(PaymentStatus::Claimed);
    let (next, ev) = correction(
        &p,
        None,
        PaymentStatus::Pending,
        EventType::Reverted,
        "gone",
        NOW,
    );
    assert!(next.created_in.is_none() && next.settled_in.is_none());
    let r = ev.reverted.expect("reverted details");
    assert_eq!((r.block_height, r.status), (20, PaymentStatus::Pending));

    let p = stored(PaymentStatus::Submitted);
    let (next, ev) = correction(
        &p,
        None,
        PaymentStatus::Dropped,
        EventType::Dropped,
        "not on chain after 700s",
        NOW,
    );
    assert_eq!(next.reason.as_deref(), Some("not on chain after 700s"));
    assert_eq!(ev.txid.as_deref(), Some("0xabc"));
    assert_eq!(ev.reason.as_deref(), Some("not on chain after 700s"));
}
