//! Blocks built around the recorded transactions: chain order, uncommitted
//! and look-alike prints, malformed values.

use super::*;

/// A fixture transaction by its step, as `(txid, tx_hex, result_hex, print raw_values)`.
pub(crate) struct FxTx {
    pub(crate) txid: String,
    pub(crate) tx_hex: String,
    pub(crate) result_hex: String,
    pub(crate) success: bool,
    pub(crate) prints: Vec<String>,
}

pub(crate) fn fx_txs() -> Vec<FxTx> {
    simnet()["transactions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| FxTx {
            txid: s(t, "txid").to_string(),
            tx_hex: s(t, "tx_hex").to_string(),
            result_hex: s(t, "result_hex").to_string(),
            success: t["success"].as_bool().unwrap(),
            prints: print_raw_values(t)
                .into_iter()
                .map(str::to_string)
                .collect(),
        })
        .collect()
}

pub(crate) fn block_tx(t: &FxTx, tx_index: u32) -> Json {
    json!({
        "txid": t.txid,
        "tx_index": tx_index,
        "status": if t.success { "success" } else { "abort_by_response" },
        "raw_result": t.result_hex,
        "raw_tx": t.tx_hex,
        "contract_interface": null,
        "burnchain_op": null,
        "execution_cost": {"read_count": 0, "read_length": 0, "runtime": 0, "write_count": 0, "write_length": 0},
        "microblock_sequence": null,
        "microblock_hash": null,
        "microblock_parent_hash": null,
        "vm_error": null
    })
}

pub(crate) fn print_event(txid: &str, event_index: u32, contract: &str, raw_value: &str) -> Json {
    json!({
        "txid": txid,
        "event_index": event_index,
        "committed": true,
        "type": "contract_event",
        "contract_event": {
            "contract_identifier": contract,
            "topic": "print",
            "raw_value": raw_value
        }
    })
}

pub(crate) fn transfer_event(txid: &str, event_index: u32) -> Json {
    json!({
        "txid": txid,
        "event_index": event_index,
        "committed": true,
        "type": "stx_transfer_event",
        "stx_transfer_event": {"sender": DEPLOYER, "recipient": OURS, "amount": "1", "memo": ""}
    })
}

pub(crate) fn block_json(height: u64, transactions: Vec<Json>, events: Vec<Json>) -> Json {
    json!({
        "block_hash": format!("0x{:064x}", height + 0x100),
        "block_height": height,
        "block_time": 1_760_000_000u64 + height,
        "index_block_hash": format!("0x{:064x}", height),
        "parent_index_block_hash": format!("0x{:064x}", height - 1),
        "parent_block_hash": format!("0x{:064x}", height + 0xff),
        "burn_block_hash": format!("0x{:064x}", height + 0x200),
        "burn_block_height": height + 1,
        "burn_block_time": 1_700_000_000u64,
        "transactions": transactions,
        "events": events,
        "matured_miner_rewards": [],
    })
}

#[test]
fn decode_block_puts_shuffled_events_in_chain_order() {
    let fx = fx_txs();
    // 0: create p1, 1: create p2, 4: claim p1, 7: zero-amount create (err u102),
    // 8: refund p3, 9: pause.
    let (c1, c2, claim1, zero, refund3, pause) = (&fx[0], &fx[1], &fx[4], &fx[7], &fx[8], &fx[9]);
    assert!(!zero.success);
    // tx_index: c1 0, c2 1, claim1 2 (carrying a second print: refund p3), zero 3, pause 4.
    let transactions = vec![
        block_tx(zero, 3),
        block_tx(claim1, 2),
        block_tx(pause, 4),
        block_tx(c1, 0),
        block_tx(c2, 1),
    ];
    let events = vec![
        print_event(&pause.txid, 7, OURS, &pause.prints[0]),
        print_event(&claim1.txid, 6, OURS, &refund3.prints[0]),
        print_event(&c2.txid, 3, OURS, &c2.prints[0]),
        transfer_event(&claim1.txid, 4),
        print_event(&claim1.txid, 5, OURS, &claim1.prints[0]),
        print_event(&c1.txid, 1, OURS, &c1.prints[0]),
        transfer_event(&c2.txid, 2),
        transfer_event(&c1.txid, 0),
    ];
    let d = decode_block(&new_block(block_json(20, transactions, events)), &ours());
    assert!(d.problems.is_empty(), "{:?}", d.problems);
    assert_eq!(d.stats.escrow_prints, 5);
    assert_eq!(d.stats.transactions, 5);
    assert_eq!(d.block.time, 1_760_000_020, "block_time when present");

    let order: Vec<(&str, u32)> = d
        .txs
        .iter()
        .map(|t| (t.txid.as_str(), t.tx_index))
        .collect();
    assert_eq!(
        order,
        [
            (c1.txid.as_str(), 0),
            (c2.txid.as_str(), 1),
            (claim1.txid.as_str(), 2),
            (zero.txid.as_str(), 3),
            (pause.txid.as_str(), 4),
        ]
    );
    let kinds = |t: &EscrowTx| t.prints.iter().map(|p| p.kind).collect::<Vec<_>>();
    assert_eq!(kinds(&d.txs[0]), [PrintKind::Created]);
    assert_eq!(kinds(&d.txs[1]), [PrintKind::Created]);
    assert_eq!(
        kinds(&d.txs[2]),
        [PrintKind::Claimed, PrintKind::Refunded],
        "event_index order within a tx"
    );
    assert!(d.txs[3].prints.is_empty());
    assert_eq!(
        d.txs[3].outcome,
        TxOutcome::Aborted(Abort::by_response("(err u102)"))
    );
    let zero_call = d.txs[3].call.as_ref().unwrap();
    assert_eq!(zero_call.function, EscrowFunction::CreatePayment);
    assert_eq!(zero_call.amount, Some(0));
    assert!(d.txs[4].prints.is_empty());
    assert_eq!(d.txs[4].admin.len(), 1);
    assert_eq!(d.txs[4].admin[0].event, "paused");
    assert_eq!(d.txs[4].call, None, "pause is not a payment call");
    for t in &d.txs[..3] {
        assert_eq!(t.outcome, TxOutcome::Success);
        assert_eq!(t.call.as_ref().unwrap().txid, t.txid);
    }
}

#[test]
fn uncommitted_prints_are_ignored() {
    let fx = fx_txs();
    let mut ev = print_event(&fx[0].txid, 1, OURS, &fx[0].prints[0]);
    ev["committed"] = json!(false);
    let d = decode_block(
        &new_block(block_json(20, vec![block_tx(&fx[0], 0)], vec![ev])),
        &ours(),
    );
    assert_eq!(d.stats.escrow_prints, 0);
    // The call is still ours and is still reported, without a print.
    assert_eq!(d.txs.len(), 1);
    assert!(d.txs[0].prints.is_empty());
}

#[test]
fn look_alike_print_from_another_contract_is_ignored() {
    let fx = fx_txs();
    let create = &fx[0];
    // Exactly our bytes, printed by someone else's contract, in a tx that is
    // not a call to ours.
    let mut spoof_tx = block_tx(create, 0);
    spoof_tx["txid"] = json!(format!("0x{}", "ab".repeat(32)));
    spoof_tx["raw_tx"] = json!("0x00");
    let events = vec![print_event(
        s(&spoof_tx, "txid"),
        0,
        MOCKNET_ESCROW,
        &create.prints[0],
    )];
    let d = decode_block(&new_block(block_json(30, vec![spoof_tx], events)), &ours());
    assert!(d.txs.is_empty(), "{:?}", d.txs);
    assert!(d.problems.is_empty());
    assert_eq!(d.stats.spoofed_prints, 1);
    assert_eq!(d.stats.escrow_prints, 0);

    // Same, from a contract with our name under another deployer.
    let impostor = "ST2CY5V39NHDPWSXMW9QDT3HC3GD6Q6XX4CFRK9AG.x402-nexus-escrow";
    let events = vec![print_event(&create.txid, 1, impostor, &create.prints[0])];
    let d = decode_block(
        &new_block(block_json(31, vec![block_tx(create, 0)], events)),
        &ours(),
    );
    assert_eq!(d.stats.spoofed_prints, 1);
    assert_eq!(d.stats.escrow_prints, 0);
    // The transaction itself still calls us and is read from its bytes.
    assert_eq!(d.txs.len(), 1);
    assert!(d.txs[0].prints.is_empty());
}

#[test]
fn malformed_print_and_raw_tx_are_counted_and_the_rest_decodes() {
    let fx = fx_txs();
    let (good, bad_print, bad_tx) = (&fx[0], &fx[1], &fx[2]);
    let truncated_print = &bad_print.prints[0][..bad_print.prints[0].len() - 20];
    // Cut the signed tx short but keep the contract name's bytes in it.
    let mut broken = block_tx(bad_tx, 2);
    let tx_hex = &bad_tx.tx_hex;
    broken["raw_tx"] = json!(&tx_hex[..tx_hex.len() - 10]);
    let transactions = vec![block_tx(good, 0), block_tx(bad_print, 1), broken];
    let events = vec![
        print_event(&good.txid, 1, OURS, &good.prints[0]),
        print_event(&bad_print.txid, 3, OURS, truncated_print),
        print_event(&bad_tx.txid, 5, OURS, &bad_tx.prints[0]),
    ];
    let d = decode_block(&new_block(block_json(40, transactions, events)), &ours());

    assert_eq!(d.problems.len(), 1, "{:?}", d.problems);
    assert_eq!(d.problems[0].txid, bad_print.txid);
    assert_eq!(d.problems[0].event_index, Some(3));
    assert!(
        d.problems[0].reason.contains("not a SIP-005 Clarity value"),
        "{}",
        d.problems[0].reason
    );
    assert_eq!(d.stats.undecodable_txs, 1);
    assert_eq!(d.stats.escrow_prints, 3);

    assert_eq!(d.txs.len(), 3);
    // The good one is whole.
    assert_eq!(d.txs[0].txid, good.txid);
    assert_eq!(d.txs[0].prints.len(), 1);
    assert!(d.txs[0].call.is_some());
    // The bad print is gone, its (readable) call remains.
    assert_eq!(d.txs[1].txid, bad_print.txid);
    assert!(d.txs[1].prints.is_empty());
    assert!(d.txs[1].call.is_some());
    // The unreadable tx keeps its print: the contract's word is enough.
    assert_eq!(d.txs[2].txid, bad_tx.txid);
    assert_eq!(d.txs[2].call, None);
    assert_eq!(d.txs[2].prints.len(), 1);
    assert_eq!(d.txs[2].prints[0].kind, PrintKind::Created);
}

#[test]
fn truncated_raw_tx_alone_is_skipped() {
    let fx = fx_txs();
    for cut in [1, 2, 10, 100] {
        let mut t = block_tx(&fx[0], 0);
        let hex_tx = &fx[0].tx_hex;
        t["raw_tx"] = json!(&hex_tx[..hex_tx.len() - cut]);
        let d = decode_block(&new_block(block_json(41, vec![t], Vec::new())), &ours());
        assert!(d.txs.is_empty(), "cut {cut}");
        assert!(d.problems.is_empty(), "cut {cut}");
        assert_eq!(d.stats.undecodable_txs, 1, "cut {cut}");
        assert!(decode_tx_hex(&hex_tx[..hex_tx.len() - cut]).is_err());
    }
    assert!(decode_tx_hex("0x").is_err());
    assert!(decode_tx_hex("zz").is_err());
}

#[test]
fn malformed_print_values_are_errors_not_panics() {
    let fx = fx_txs();
    let raw = &fx[0].prints[0];
    for bad in [
        "",
        "0x",
        "0x0c",
        "not hex",
        &raw[..raw.len() / 2],
        "0x0703",                                   // (ok true): not a tuple
        "0x0d0000000568656c6c6f",                   // "hello"
        "0x0c00000001056576656e740d00000003666f6f", // {event: "foo"}
    ] {
        assert!(decode_print(bad).is_err(), "{bad:?}");
    }
}
