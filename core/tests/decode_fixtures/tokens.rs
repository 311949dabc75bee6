//! Token payments recorded from the real contract in the simnet
//! (`tests/fixtures/escrow-ft-simnet.json`): the `-ft` calls decode with
//! their token, prints carry it, the allowlist prints are admin events, and
//! the machine records each payment's asset as the transfer event names it.

use super::*;

const TOKEN: &str = "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM.test-sbtc";
const ASSET: &str = "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM.test-sbtc::test-sbtc";

fn ft_simnet() -> Json {
    read_json(repo_root().join("tests/fixtures/escrow-ft-simnet.json"))
}

/// The recorded events of `tx` in observer form (prints and FT transfers).
fn observer_events(tx: &Json) -> Vec<Json> {
    let txid = s(tx, "txid");
    tx["events"]
        .as_array()
        .unwrap()
        .iter()
        .enumerate()
        .map(|(i, e)| match s(e, "type") {
            "print_event" => print_event(txid, i as u32, OURS, s(e, "raw_value")),
            "ft_transfer_event" => json!({
                "txid": txid, "event_index": i, "committed": true, "type": "ft_transfer_event",
                "ft_transfer_event": {"asset_identifier": e["asset_identifier"], "sender": e["sender"],
                                      "recipient": e["recipient"], "amount": e["amount"]}
            }),
            other => panic!("unexpected recorded event {other}"),
        })
        .collect()
}

#[test]
fn token_calls_and_prints_decode_with_their_token() {
    let fx = ft_simnet();
    assert_eq!(s(&fx, "token"), ASSET);
    let mut admin = Vec::new();
    for tx in fx["transactions"].as_array().unwrap() {
        let call = decode_escrow_call(&decode_tx_hex(s(tx, "tx_hex")).unwrap(), &ours()).unwrap();
        match s(tx, "function") {
            "create-payment-ft" | "claim-payment-ft" | "refund-expired-ft" => {
                let call = call.expect("a payment call");
                assert!(call.function.is_ft());
                assert_eq!(call.function.as_str(), s(tx, "function"));
                assert_eq!(call.token.as_deref(), Some(TOKEN));
            }
            "claim-payment" => assert_eq!(call.unwrap().token, None),
            _ => assert!(call.is_none(), "admin calls are not payment calls"),
        }
        for raw in print_raw_values(tx) {
            match decode_print(raw).unwrap() {
                EscrowPrint::Payment(p) => assert_eq!(p.token.as_deref(), Some(TOKEN)),
                EscrowPrint::Admin(a) => {
                    assert_eq!(a.token.as_deref(), Some(TOKEN));
                    assert_eq!(a.sender.as_deref(), Some(DEPLOYER));
                    admin.push(a.event);
                }
            }
        }
    }
    assert_eq!(admin, ["token-allowed", "token-disallowed"]);
}

#[test]
fn token_scenario_through_decode_and_machine() {
    let fx = ft_simnet();
    let contract = ours();
    let mut current = HashMap::new();
    let mut all = Vec::new();
    for tx in fx["transactions"].as_array().unwrap() {
        let height = tx["block_height"].as_u64().unwrap();
        let t = FxTx {
            txid: s(tx, "txid").to_string(),
            tx_hex: s(tx, "tx_hex").to_string(),
            result_hex: s(tx, "result_hex").to_string(),
            success: tx["success"].as_bool().unwrap(),
            prints: Vec::new(),
        };
        let b = new_block(block_json(
            height,
            vec![block_tx(&t, 0)],
            observer_events(tx),
        ));
        let d = decode_block(&b, &contract);
        assert!(d.problems.is_empty(), "{:?}", d.problems);
        let ctx = Ctx {
            tip_height: height,
            now: "2025-01-01T00:00:00Z".into(),
            source: EventSource::Observer,
        };
        all.extend(apply_block(&mut current, &d, &ctx));
    }
    use EventType::*;
    let types: Vec<EventType> = all.iter().map(|e| e.event_type).collect();
    // Not allowed (u114), t1, t2, t1 claimed (the STX claim's u115 changes
    // nothing), t2 refunded, disallowed (u114).
    assert_eq!(
        types,
        [Failed, Confirmed, Confirmed, Claimed, Refunded, Failed]
    );
    let record = |step: usize| {
        let id = buf_arg(&fx["transactions"][step]["args"][0]);
        current[&PaymentId::from_slice(&id).unwrap()].clone()
    };
    let t1 = record(2);
    assert_eq!(t1.status, PaymentStatus::Claimed);
    assert_eq!(t1.asset.as_deref(), Some(ASSET));
    assert_eq!(t1.amount.as_deref(), Some("250000"));
    let t2 = record(3);
    assert_eq!(t2.status, PaymentStatus::Refunded);
    assert_eq!(t2.asset.as_deref(), Some(ASSET));
    // A create that failed moved nothing: its asset is the contract it named.
    let refused = record(0);
    assert_eq!(refused.status, PaymentStatus::Failed);
    assert_eq!(refused.asset.as_deref(), Some(TOKEN));
    assert!(all
        .iter()
        .filter(|e| e.event_type != Failed)
        .all(|e| e.asset.as_deref() == Some(ASSET)));
}
