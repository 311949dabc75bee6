//! The figures from event sequences: what each payment's life adds.

use super::*;
use nexus_core::domain::{Payment, PaymentStatus, Scheme};

fn event(id: u8, ty: EventType, source: EventSource, at: &str) -> PaymentEvent {
    let mut p = Payment::new(PaymentId([id; 32]), PaymentStatus::Submitted, at);
    p.amount = Some("2500".into());
    PaymentEvent::about(&p, ty, source, at)
}

fn outcome(c: &[Count]) -> Option<(&'static str, &'static str, Option<Duration>)> {
    c.iter().find_map(|c| match c {
        Count::Outcome {
            origin,
            outcome,
            processing,
            ..
        } => Some((*origin, *outcome, *processing)),
        _ => None,
    })
}

#[test]
fn a_relayed_payment_is_seen_then_confirmed_with_its_processing_time() {
    let mut t = Tracker::default();
    let seen = t.observe(&event(
        1,
        EventType::Created,
        EventSource::Relay,
        "2026-01-01T00:00:00Z",
    ));
    assert_eq!(seen, [Count::Seen { origin: "relay" }]);
    assert!(t
        .observe(&event(
            1,
            EventType::Submitted,
            EventSource::Relay,
            "2026-01-01T00:00:01Z"
        ))
        .is_empty());
    let c = t.observe(&event(
        1,
        EventType::Confirmed,
        EventSource::Observer,
        "2026-01-01T00:00:07.500Z",
    ));
    assert_eq!(
        outcome(&c),
        Some(("relay", "confirmed", Some(Duration::from_millis(7_500))))
    );
    // Reverted and confirmed again: one outcome per payment.
    assert!(t
        .observe(&event(
            1,
            EventType::Reverted,
            EventSource::Observer,
            "2026-01-01T00:01:00Z"
        ))
        .is_empty());
    let again = t.observe(&event(
        1,
        EventType::Confirmed,
        EventSource::Observer,
        "2026-01-01T00:02:00Z",
    ));
    assert!(outcome(&again).is_none(), "{again:?}");
}

#[test]
fn a_confirmation_after_a_retry_is_revenue_recovered_in_its_asset() {
    let mut t = Tracker::default();
    let mut created = event(
        2,
        EventType::Created,
        EventSource::X402,
        "2026-01-01T00:00:00Z",
    );
    created.scheme = Some(Scheme::Exact);
    t.observe(&created);
    assert_eq!(
        t.observe(&event(
            2,
            EventType::Retrying,
            EventSource::Relay,
            "2026-01-01T00:00:02Z"
        )),
        [Count::Retry { origin: "x402" }]
    );
    let mut confirmed = event(
        2,
        EventType::Confirmed,
        EventSource::Observer,
        "2026-01-01T00:00:09Z",
    );
    confirmed.scheme = Some(Scheme::Exact);
    confirmed.asset = Some("SM3.sbtc-token::sbtc-token".into());
    let c = t.observe(&confirmed);
    let Some(Count::Outcome {
        scheme, recovered, ..
    }) = c.iter().find(|c| matches!(c, Count::Outcome { .. }))
    else {
        panic!("{c:?}")
    };
    assert_eq!(*scheme, "exact");
    assert_eq!(
        recovered,
        &Some(("SM3.sbtc-token::sbtc-token".to_string(), 2500.0))
    );
}

#[test]
fn failures_count_their_reason_and_the_contracts_error_code() {
    let mut t = Tracker::default();
    t.observe(&event(
        3,
        EventType::Submitted,
        EventSource::Observer,
        "2026-01-01T00:00:00Z",
    ));
    let mut failed = event(
        3,
        EventType::Failed,
        EventSource::Observer,
        "2026-01-01T00:00:05Z",
    );
    failed.reason = Some("AbortByResponse".into());
    failed.reason_data = Some(serde_json::json!({"result": "(err u104)"}));
    let c = t.observe(&failed);
    assert_eq!(outcome(&c), Some(("observer", "failed", None)));
    assert!(c.contains(&Count::Error {
        reason: "AbortByResponse".into()
    }));
    assert!(c.contains(&Count::ContractError {
        error: "(err u104)".into()
    }));
    // The reconciler's free-text reasons are one label, not one per text.
    t.observe(&event(
        4,
        EventType::Submitted,
        EventSource::Relay,
        "2026-01-01T00:00:00Z",
    ));
    let mut dropped = event(
        4,
        EventType::Dropped,
        EventSource::Reconciler,
        "2026-01-01T00:10:00Z",
    );
    dropped.reason = Some("not on chain after 600s".into());
    let c = t.observe(&dropped);
    assert_eq!(outcome(&c), Some(("relay", "dropped", None)));
    assert!(c.contains(&Count::Error {
        reason: "reconciler".into()
    }));
}

#[test]
fn a_payment_first_seen_mid_life_is_unknown_and_not_timed() {
    let mut t = Tracker::default();
    // Confirmed in a block with no mempool sighting: seen, but no timing.
    let c = t.observe(&event(
        5,
        EventType::Confirmed,
        EventSource::Observer,
        "2026-01-01T00:00:00Z",
    ));
    assert!(c.contains(&Count::Seen { origin: "observer" }));
    assert_eq!(outcome(&c), Some(("observer", "confirmed", None)));
    // A claim of a payment from before a restart: nothing to count.
    assert!(t
        .observe(&event(
            6,
            EventType::Claimed,
            EventSource::Observer,
            "2026-01-01T00:00:00Z"
        ))
        .is_empty());
    let c = t.observe(&event(
        6,
        EventType::Dropped,
        EventSource::Observer,
        "2026-01-01T00:00:00Z",
    ));
    assert_eq!(outcome(&c), Some(("unknown", "dropped", None)));
}

#[test]
fn the_figures_reach_the_metrics() {
    let m = AnalyticsMetrics::default();
    let mut t = Tracker::default();
    m.apply(&t.observe(&event(
        7,
        EventType::Created,
        EventSource::Relay,
        "2026-01-01T00:00:00Z",
    )));
    m.apply(&t.observe(&event(
        7,
        EventType::Confirmed,
        EventSource::Observer,
        "2026-01-01T00:00:03Z",
    )));
    let mut r = Registry::with_prefix("nexus");
    m.register(&mut r);
    let mut text = String::new();
    prometheus_client::encoding::text::encode(&mut text, &r).unwrap();
    assert!(
        text.contains(r#"nexus_payments_seen_total{origin="relay"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"nexus_payment_outcomes_total{origin="relay",outcome="confirmed"} 1"#),
        "{text}"
    );
    assert!(
        text.contains(r#"nexus_payment_processing_seconds_sum{scheme="escrow"} 3.0"#),
        "{text}"
    );
}
