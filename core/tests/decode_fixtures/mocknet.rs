//! Payloads a real mocknet stacks-node POSTed.

use super::*;

#[test]
fn mocknet_escrow_block_is_not_ours() {
    nexus_testkit::needs_captured!();
    let raw = mocknet("new_block_escrow_create_print_event.json");
    let b = new_block(raw.clone());
    assert_eq!(b.block_time, None, "recorded with block_time null");
    let d = decode_block(&b, &ours());
    assert!(d.txs.is_empty());
    assert!(d.problems.is_empty());
    assert_eq!(d.stats.transactions, b.transactions.len() as u64);
    assert_eq!(d.stats.escrow_prints, 0);
    assert_eq!(
        d.stats.spoofed_prints, 0,
        "`escrow-created` does not imitate our prints"
    );
    assert_eq!(d.stats.undecodable_txs, 0);
    // block_time null -> burn_block_time.
    assert_eq!(d.block.time, raw["burn_block_time"].as_u64().unwrap());
    assert_eq!(d.block.height, raw["block_height"].as_u64().unwrap());
    assert_eq!(
        d.block.burn_height,
        raw["burn_block_height"].as_u64().unwrap()
    );
    assert_eq!(d.block.burn_hash, s(&raw, "burn_block_hash"));
    assert_eq!(d.block.index_block_hash, s(&raw, "index_block_hash"));
    assert_eq!(
        d.block.parent_index_block_hash,
        s(&raw, "parent_index_block_hash")
    );
    assert_eq!(d.block.block_hash, s(&raw, "block_hash"));

    // A present block_time wins over burn_block_time.
    let mut with_time = raw;
    with_time["block_time"] = json!(1_800_000_000u64);
    let d = decode_block(&new_block(with_time), &ours());
    assert_eq!(d.block.time, 1_800_000_000);
}

#[test]
fn mocknet_escrow_print_of_the_wrong_shape_is_a_problem_not_a_crash() {
    nexus_testkit::needs_captured!();
    let b = new_block(mocknet("new_block_escrow_create_print_event.json"));
    let print_ev = b
        .events
        .iter()
        .find(|e| e.contract_event.is_some())
        .expect("the fixture has a print");
    let contract: ContractId = MOCKNET_ESCROW.parse().unwrap();
    let d = decode_block(&b, &contract);
    assert_eq!(d.stats.escrow_prints, 1);
    assert_eq!(d.problems.len(), 1, "{:?}", d.problems);
    let p = &d.problems[0];
    assert_eq!(p.txid, print_ev.txid);
    assert_eq!(p.event_index, Some(print_ev.event_index));
    assert!(p.reason.starts_with("escrow print"), "{}", p.reason);
    assert!(p.reason.contains("escrow-created"), "{}", p.reason);
    // Its `create` is not one of our payment functions: no escrow tx.
    assert!(d.txs.is_empty(), "{:?}", d.txs);
    assert_eq!(d.stats.undecodable_txs, 0);
}

#[test]
fn every_mocknet_block_decodes_without_panicking() {
    nexus_testkit::needs_captured!();
    for name in [
        "new_block_contract_deploy.json",
        "new_block_empty_coinbase_only.json",
        "new_block_escrow_create_print_event.json",
    ] {
        let b = new_block(mocknet(name));
        for contract in [OURS, MOCKNET_ESCROW] {
            let d = decode_block(&b, &contract.parse().unwrap());
            assert!(d.txs.is_empty(), "{name} / {contract}");
            assert_eq!(d.stats.undecodable_txs, 0, "{name} / {contract}");
            assert_eq!(d.stats.spoofed_prints, 0, "{name} / {contract}");
            assert_eq!(d.stats.transactions, b.transactions.len() as u64);
        }
    }
}

#[test]
fn mocknet_mempool_contract_call_is_a_tx_but_not_ours() {
    nexus_testkit::needs_captured!();
    let raw = mocknet("new_mempool_tx_contract_call.json");
    let txs = raw
        .as_array()
        .expect("/new_mempool_tx body is an array of hex");
    assert!(!txs.is_empty());
    for hex_tx in txs {
        let tx = decode_tx_hex(hex_tx.as_str().unwrap()).unwrap();
        assert!(txid_of(&tx).starts_with("0x"));
        assert_eq!(decode_escrow_call(&tx, &ours()).unwrap(), None);
        // Even for its own contract: `create` is not one of our functions.
        let theirs: ContractId = MOCKNET_ESCROW.parse().unwrap();
        assert_eq!(decode_escrow_call(&tx, &theirs).unwrap(), None);
    }
}
