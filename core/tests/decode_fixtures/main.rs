//! The decoders against real bytes: prints and signed transactions recorded
//! from the real escrow contract in the Clarinet simnet
//! (`tests/fixtures/escrow-simnet.json`, and `escrow-ft-simnet.json` for
//! token payments), and payloads POSTed by a real
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

// Payloads a real mocknet stacks-node POSTed (captured, not in the repository).
mod mocknet;
// Blocks built here around the recorded transactions: order, look-alikes, bad input.
mod synthetic;
// Token payments recorded from the contract in the simnet.
mod tokens;

use synthetic::*;

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

fn new_block(v: Json) -> NewBlock {
    serde_json::from_value(v).expect("a NewBlock")
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
