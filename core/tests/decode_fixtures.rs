//! The decoders against real bytes: prints and signed transactions recorded
//! from the real escrow contract in the Clarinet simnet
//! (`tests/fixtures/escrow-simnet.json`), and payloads POSTed by a real
//! stacks-node 4.x (`shared/fixtures/stacks-node-events/stacks-node-mocknet/`),
//! whose own test escrow prints a different shape than ours.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::{json, Value as Json};

use nexus_core::decode::tx::txid_of;
use nexus_core::decode::{
    decode_block, decode_escrow_call, decode_print, decode_tx_hex, Abort, ContractId,
    EscrowFunction, EscrowPrint, EscrowTx, PaymentPrint, PrintKind, TxOutcome,
};
use nexus_core::domain::{EventSource, EventType, PaymentId, PaymentStatus};
use nexus_core::machine::{apply_block, Ctx};
use nexus_core::observer::NewBlock;

const OURS: &str = "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM.x402-nexus-escrow";
const MOCKNET_ESCROW: &str = "ST3EQ88S02BXXD0T5ZVT3KW947CRMQ1C6DMQY8H19.escrow";
const DEPLOYER: &str = "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn read_json(path: PathBuf) -> Json {
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("parsing {}: {e}", path.display()))
}

fn simnet() -> Json {
    read_json(repo_root().join("tests/fixtures/escrow-simnet.json"))
}

/// A captured mocknet payload (not in the repository: `nexus_testkit`).
fn mocknet(name: &str) -> Json {
    read_json(nexus_testkit::captured(&format!(
        "stacks-node-mocknet/{name}"
    )))
}

fn ours() -> ContractId {
    OURS.parse().unwrap()
}

fn s<'a>(v: &'a Json, key: &str) -> &'a str {
    v[key]
        .as_str()
        .unwrap_or_else(|| panic!("field {key} of {v}"))
}

/// `0x…` repr of a buffer argument -> bytes.
fn buf_arg(arg: &Json) -> Vec<u8> {
    let repr = s(arg, "repr");
    hex::decode(repr.strip_prefix("0x").expect("buffer repr")).unwrap()
}

/// `'ST…` repr of a principal argument -> `ST…`.
fn principal_arg(arg: &Json) -> String {
    s(arg, "repr").trim_start_matches('\'').to_string()
}

/// `u123` repr of a uint argument.
fn uint_arg(arg: &Json) -> u128 {
    s(arg, "repr").strip_prefix('u').unwrap().parse().unwrap()
}

fn print_raw_values(tx: &Json) -> Vec<&str> {
    tx["events"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "print_event")
        .map(|e| {
            assert_eq!(s(e, "contract_identifier"), OURS);
            s(e, "raw_value")
        })
        .collect()
}

fn payment_print(raw: &str) -> PaymentPrint {
    match decode_print(raw).unwrap() {
        EscrowPrint::Payment(p) => p,
        other => panic!("expected a payment print, got {other:?}"),
    }
}

/// What the fixture's create-payment calls say about each payment.
struct Created {
    sender: String,
    recipient: String,
    amount: u128,
    memo: Vec<u8>,
    height: u64,
}

#[test]
fn simnet_prints_decode_to_what_the_calls_did() {
    let fx = simnet();
    assert_eq!(s(&fx, "contract_id"), OURS);
    let timeout = fx["timeout"].as_u64().unwrap();
    let mut created: HashMap<PaymentId, Created> = HashMap::new();
    let (mut payment_prints, mut admin_prints) = (0, 0);
    for tx in fx["transactions"].as_array().unwrap() {
        let step = s(tx, "step");
        let function = s(tx, "function");
        let args = tx["args"].as_array().unwrap();
        let height = tx["block_height"].as_u64().unwrap();
        let prints = print_raw_values(tx);
        if !tx["success"].as_bool().unwrap() {
            assert!(prints.is_empty(), "{step}: failed calls print nothing");
            continue;
        }
        assert_eq!(
            prints.len(),
            1,
            "{step}: exactly one print per state change"
        );
        let raw = prints[0];
        match function {
            "create-payment" | "claim-payment" | "refund-expired" => {
                payment_prints += 1;
                let p = payment_print(raw);
                let id = PaymentId::from_slice(&buf_arg(&args[0])).unwrap();
                assert_eq!(p.payment_id, id, "{step}");
                assert_eq!(p.block_height, height, "{step}");
                if function == "create-payment" {
                    assert_eq!(p.kind, PrintKind::Created, "{step}");
                    assert_eq!(p.sender, s(tx, "sender"), "{step}: the payer is tx-sender");
                    assert_eq!(p.recipient, principal_arg(&args[1]), "{step}");
                    assert_eq!(p.amount, uint_arg(&args[2]), "{step}");
                    assert_eq!(p.memo, buf_arg(&args[3]), "{step}");
                    assert_eq!(p.expires_at, height + timeout, "{step}");
                    created.insert(
                        id,
                        Created {
                            sender: p.sender,
                            recipient: p.recipient,
                            amount: p.amount,
                            memo: p.memo,
                            height,
                        },
                    );
                } else {
                    let want = if function == "claim-payment" {
                        PrintKind::Claimed
                    } else {
                        PrintKind::Refunded
                    };
                    assert_eq!(p.kind, want, "{step}");
                    // Settlement prints repeat the payment, not the caller.
                    let c = created.get(&id).expect("settles a payment created earlier");
                    assert_eq!(p.sender, c.sender, "{step}: sender is the payer");
                    assert_eq!(p.recipient, c.recipient, "{step}");
                    assert_eq!(p.amount, c.amount, "{step}");
                    assert_eq!(p.memo, c.memo, "{step}");
                    assert_eq!(p.expires_at, c.height + timeout, "{step}");
                    if function == "claim-payment" {
                        assert_eq!(s(tx, "sender"), c.recipient, "{step}");
                        assert!(height < p.expires_at, "{step}");
                    } else {
                        assert!(height >= p.expires_at, "{step}");
                    }
                }
                // The STX transfer printed before it moves the same amount.
                let transfer = &tx["events"][0];
                assert_eq!(transfer["type"], "stx_transfer_event", "{step}");
                assert_eq!(s(transfer, "amount"), p.amount.to_string(), "{step}");
            }
            "pause" | "unpause" => {
                admin_prints += 1;
                let EscrowPrint::Admin(a) = decode_print(raw).unwrap() else {
                    panic!("{step}: expected an admin print");
                };
                let want = if function == "pause" {
                    "paused"
                } else {
                    "unpaused"
                };
                assert_eq!(a.event, want);
                assert_eq!(a.sender.as_deref(), Some(DEPLOYER));
                assert_eq!(a.recipient, None);
                assert_eq!(a.block_height, Some(height));
            }
            other => panic!("{step}: fixture has an unexpected function {other}"),
        }
    }
    assert_eq!((payment_prints, admin_prints), (10, 2));
}

#[test]
fn simnet_signed_transactions_decode_to_their_calls() {
    let fx = simnet();
    let contract = ours();
    let mut calls = 0;
    for tx in fx["transactions"].as_array().unwrap() {
        let step = s(tx, "step");
        let function = s(tx, "function");
        let args = tx["args"].as_array().unwrap();
        let decoded = decode_tx_hex(s(tx, "tx_hex")).unwrap_or_else(|e| panic!("{step}: {e}"));
        assert_eq!(txid_of(&decoded), s(tx, "txid"), "{step}");
        // The `0x` prefix is optional.
        let bare = s(tx, "tx_hex").trim_start_matches("0x");
        assert_eq!(txid_of(&decode_tx_hex(bare).unwrap()), s(tx, "txid"));

        let call =
            decode_escrow_call(&decoded, &contract).unwrap_or_else(|e| panic!("{step}: {e}"));
        let want_fn = match function {
            "create-payment" => EscrowFunction::CreatePayment,
            "claim-payment" => EscrowFunction::ClaimPayment,
            "refund-expired" => EscrowFunction::RefundExpired,
            _ => {
                assert_eq!(call, None, "{step}: {function} is not a payment call");
                continue;
            }
        };
        calls += 1;
        let call = call.unwrap_or_else(|| panic!("{step}: not read as an escrow call"));
        assert_eq!(call.function, want_fn, "{step}");
        assert_eq!(call.txid, s(tx, "txid"), "{step}");
        assert_eq!(call.sender, s(tx, "sender"), "{step}");
        assert_eq!(call.nonce, tx["nonce"].as_u64().unwrap(), "{step}");
        assert_eq!(call.chain_id, 0x8000_0000, "{step}: testnet chain id");
        assert!(call.fee > 0, "{step}");
        assert_eq!(call.payment_id.0.to_vec(), buf_arg(&args[0]), "{step}");
        if want_fn == EscrowFunction::CreatePayment {
            assert_eq!(args.len(), 4);
            assert_eq!(call.recipient, Some(principal_arg(&args[1])), "{step}");
            assert_eq!(call.amount, Some(uint_arg(&args[2])), "{step}");
            assert_eq!(call.memo, Some(buf_arg(&args[3])), "{step}");
        } else {
            assert_eq!(args.len(), 1);
            assert_eq!((call.recipient, call.amount, call.memo), (None, None, None));
        }

        // The same bytes are not a call to any other contract.
        let other: ContractId = MOCKNET_ESCROW.parse().unwrap();
        assert_eq!(decode_escrow_call(&decoded, &other).unwrap(), None);
        let same_name_other_deployer: ContractId =
            "ST2CY5V39NHDPWSXMW9QDT3HC3GD6Q6XX4CFRK9AG.x402-nexus-escrow"
                .parse()
                .unwrap();
        assert_eq!(
            decode_escrow_call(&decoded, &same_name_other_deployer).unwrap(),
            None,
            "{step}: the deployer address is part of the identity"
        );
    }
    assert_eq!(calls, 13);
}

fn new_block(v: Json) -> NewBlock {
    serde_json::from_value(v).expect("a NewBlock")
}

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

/// A fixture transaction by its step, as `(txid, tx_hex, result_hex, print raw_values)`.
struct FxTx {
    txid: String,
    tx_hex: String,
    result_hex: String,
    success: bool,
    prints: Vec<String>,
}

fn fx_txs() -> Vec<FxTx> {
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

fn block_tx(t: &FxTx, tx_index: u32) -> Json {
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

fn print_event(txid: &str, event_index: u32, contract: &str, raw_value: &str) -> Json {
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

fn transfer_event(txid: &str, event_index: u32) -> Json {
    json!({
        "txid": txid,
        "event_index": event_index,
        "committed": true,
        "type": "stx_transfer_event",
        "stx_transfer_event": {"sender": DEPLOYER, "recipient": OURS, "amount": "1", "memo": ""}
    })
}

fn block_json(height: u64, transactions: Vec<Json>, events: Vec<Json>) -> Json {
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

/// The recorded scenario, one block per transaction, through decode and the machine.
#[test]
fn simnet_scenario_through_decode_and_machine() {
    let fx = simnet();
    let contract = ours();
    let mut current = HashMap::new();
    let mut all = Vec::new();
    let txs = fx_txs();
    for (tx, t) in fx["transactions"].as_array().unwrap().iter().zip(&txs) {
        let height = tx["block_height"].as_u64().unwrap();
        let events: Vec<Json> = t
            .prints
            .iter()
            .map(|raw| print_event(&t.txid, 1, OURS, raw))
            .collect();
        let b = new_block(block_json(height, vec![block_tx(t, 0)], events));
        let d = decode_block(&b, &contract);
        assert!(d.problems.is_empty());
        let ctx = Ctx {
            tip_height: height,
            now: "2025-01-01T00:00:00Z".into(),
            source: EventSource::Observer,
        };
        all.extend(apply_block(&mut current, &d, &ctx));
    }
    let types: Vec<EventType> = all.iter().map(|e| e.event_type).collect();
    use EventType::*;
    assert_eq!(
        types,
        [
            Confirmed, Confirmed, Confirmed, Confirmed, Claimed, Claimed, Failed, Refunded, Failed,
            Refunded, Confirmed, Claimed
        ]
    );
    let by_step = |step: usize| {
        let tx = &fx["transactions"][step];
        let id = buf_arg(&tx["args"][0]);
        current[&PaymentId::from_slice(&id).unwrap()].status
    };
    assert_eq!(by_step(0), PaymentStatus::Claimed); // p1
    assert_eq!(by_step(1), PaymentStatus::Claimed); // p2
    assert_eq!(by_step(2), PaymentStatus::Refunded); // p3
    assert_eq!(by_step(3), PaymentStatus::Refunded); // p4
    assert_eq!(by_step(7), PaymentStatus::Failed); // zero amount
    assert_eq!(by_step(10), PaymentStatus::Failed); // while paused
    assert_eq!(by_step(13), PaymentStatus::Claimed); // p7
    let paused =
        &current[&PaymentId::from_slice(&buf_arg(&fx["transactions"][10]["args"][0])).unwrap()];
    assert_eq!(paused.reason.as_deref(), Some("AbortByResponse"));
    assert!(all.iter().all(|e| e.confirmations == 1));
}
