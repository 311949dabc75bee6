//! 2. An escrow reorg, and back.

use super::*;

/// p1 is created at main h3 and claimed at main h5; `alt` forks at h2 and
/// mines the create at h4' without the claim. alt wins at h6', becomes final
/// at h9', then main wins again at h10.
///
/// ```text
///            ┌─ main3 (create) ─ main4 ─ main5 (claim) ─ main6 ─ … ─ main10 ◄ tip at the end
/// main1 ─ main2
///            └─ alt3 ─ alt4 (create) ─ alt5 ─ alt6 ◄ reorg ─ … ─ alt9 (create final)
/// ```
///
/// With `announce`, the create was in the mempool first, so an orphaned
/// create goes back to `submitted`; without, to `pending`.
pub(crate) async fn escrow_reorg_and_back(stores: Stores, announce: bool) {
    let p1 = P1::load();
    let node = start_node(stores, |c| c.contract_id = p1.contract_id.clone()).await;
    let mut bus = node.app().bus.subscribe();
    let (create, claim) = (p1.create.txid.as_str(), p1.claim.txid.as_str());
    let back_to = if announce { "submitted" } else { "pending" };
    let mut log = Vec::new();

    // main: h1..h5.
    quiet_block(&node, p1.empty("main", 1, "main")).await;
    quiet_block(&node, p1.empty("main", 2, "main")).await;
    if announce {
        let (_, e) = deliver(&node, "/new_mempool_tx", p1.announce()).await;
        assert_eq!(evs(&e), [Ev::submitted(1, create)]);
        log.extend(evs(&e));
    }
    let s = log.len() as u64;
    let (_, e) = deliver(
        &node,
        "/new_block",
        p1.block("main", 3, "main", &[&p1.create]),
    )
    .await;
    assert_eq!(
        evs(&e),
        [Ev::mined(s + 1, "confirmed", create, "main", 3, 1)]
    );
    log.extend(evs(&e));
    quiet_block(&node, p1.empty("main", 4, "main")).await;
    let (_, e) = deliver(
        &node,
        "/new_block",
        p1.block("main", 5, "main", &[&p1.claim]),
    )
    .await;
    assert_eq!(evs(&e), [Ev::mined(s + 2, "claimed", claim, "main", 5, 1)]);
    log.extend(evs(&e));

    // alt: h3'..h5' lose (not longer than main), h6' wins.
    quiet_block(&node, p1.empty("alt", 3, "main")).await;
    quiet_block(&node, p1.block("alt", 4, "alt", &[&p1.create])).await;
    quiet_block(&node, p1.empty("alt", 5, "alt")).await;
    assert_eq!(
        assert_canonical_chain(&node).await[0]
            .block
            .index_block_hash,
        index_hash("main", 5)
    );
    let (answer, e) = deliver(&node, "/new_block", p1.empty("alt", 6, "alt")).await;
    assert_eq!(answer["duplicate"], false);
    assert_eq!(
        evs(&e),
        [
            Ev::reverted(s + 3, "confirmed", claim, "main", 5),
            Ev::reverted(s + 4, back_to, create, "main", 3),
            Ev::mined(s + 5, "confirmed", create, "alt", 4, 3),
        ],
        "rollback of main5..main3 (tip first), then alt3..alt6"
    );
    log.extend(evs(&e));
    let path = assert_canonical_chain(&node).await;
    let expected_path: Vec<String> = [
        ("alt", 6),
        ("alt", 5),
        ("alt", 4),
        ("alt", 3),
        ("main", 2),
        ("main", 1),
    ]
    .iter()
    .map(|(f, h)| index_hash(f, *h))
    .collect();
    let got: Vec<String> = path
        .iter()
        .map(|b| b.block.index_block_hash.clone())
        .collect();
    assert_eq!(got, expected_path);
    let p = node
        .app()
        .ingestor
        .state()
        .get(&p1.id.parse().unwrap())
        .await
        .unwrap()
        .expect("p1");
    assert_eq!(p.status.as_str(), "confirmed");
    assert_eq!(
        p.created_in.as_ref().map(|c| c.index_block_hash.clone()),
        Some(index_hash("alt", 4))
    );
    assert!(p.settled_in.is_none() && !p.is_final, "{p:?}");
    assert_log(&node, &p1, &log).await;

    // alt h7', h8': nothing; h9': the create at h4' is 6 deep.
    quiet_block(&node, p1.empty("alt", 7, "alt")).await;
    quiet_block(&node, p1.empty("alt", 8, "alt")).await;
    let (_, e) = deliver(&node, "/new_block", p1.empty("alt", 9, "alt")).await;
    assert_eq!(evs(&e), [Ev::final_(s + 6, "confirmed", create, "alt", 4)]);
    log.extend(evs(&e));

    // main h6..h9 lose (not longer than alt), h10 wins: the corrections again.
    for h in 6..=9 {
        quiet_block(&node, p1.empty("main", h, "main")).await;
    }
    let (_, e) = deliver(&node, "/new_block", p1.empty("main", 10, "main")).await;
    assert_eq!(
        evs(&e),
        [
            Ev::reverted(s + 7, back_to, create, "alt", 4),
            Ev::mined(s + 8, "confirmed", create, "main", 3, 8),
            Ev::mined(s + 9, "claimed", claim, "main", 5, 6),
            Ev::final_(s + 10, "claimed", claim, "main", 5),
        ],
        "rollback of alt9..alt3, then main3..main10; the claim is 6 deep at once"
    );
    log.extend(evs(&e));
    let path = assert_canonical_chain(&node).await;
    let got: Vec<String> = path
        .iter()
        .map(|b| b.block.index_block_hash.clone())
        .collect();
    let expected_path: Vec<String> = (1..=10).rev().map(|h| index_hash("main", h)).collect();
    assert_eq!(got, expected_path);
    assert_eq!(node.metric("nexus_reorgs_total").await, 2.0);

    // The API: the final state and the whole history.
    let (code, body) = node.get(&format!("/api/payments/{}", p1.id)).await;
    assert_eq!(code, 200, "{body}");
    let view = &body["payment"];
    assert_eq!(view["status"], "claimed", "{view}");
    assert_eq!(view["final"], true, "{view}");
    assert_eq!(view["confirmations"], 8, "{view}");
    assert_eq!(
        view["created_in"]["index_block_hash"],
        index_hash("main", 3)
    );
    assert_eq!(
        view["settled_in"]["index_block_hash"],
        index_hash("main", 5)
    );
    let api_events: Vec<PaymentEvent> =
        serde_json::from_value(body["events"].clone()).expect("events");
    assert_eq!(evs(&api_events), log, "GET /api/payments/{{id}} events");

    let snap = assert_log(&node, &p1, &log).await;
    // Subscribers saw every correction, in order.
    let mut published = Vec::new();
    while let Ok(e) = bus.try_recv() {
        published.push(e);
    }
    assert_eq!(published, snap.events, "bus == event log");
    node.stop().await;
}
