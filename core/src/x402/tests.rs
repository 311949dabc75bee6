//! Every rule's failing case, with its exact reason, against real signed
//! transactions (tests/fixtures/x402-txs.json, `npm run x402-fixtures`).

use serde::Deserialize;
use serde_json::{json, Value};

use super::funds::{check, Funds};
use super::*;

const FIXTURE: &str = include_str!("../../../tests/fixtures/x402-txs.json");
const NOW_MS: i64 = 1_780_000_000_000;

#[derive(Deserialize)]
struct Fixture {
    chain_id: u32,
    escrow: String,
    token: String,
    payer: String,
    pay_to: String,
    other: String,
    fee: u64,
    nonce: u64,
    txs: Vec<Tx>,
}

#[derive(Deserialize)]
struct Tx {
    label: String,
    tx_hex: String,
    txid: String,
}

fn fixture() -> Fixture {
    serde_json::from_str(FIXTURE).expect("x402-txs.json parses")
}

impl Fixture {
    fn tx(&self, label: &str) -> &Tx {
        self.txs
            .iter()
            .find(|t| t.label == label)
            .unwrap_or_else(|| panic!("no fixture tx {label:?}"))
    }

    fn policy(&self) -> Policy {
        Policy {
            chain_id: self.chain_id,
            mainnet: false,
            escrow: self.escrow.parse().unwrap(),
            escrow_timeout_blocks: 144,
            tokens: vec![Token::parse(&self.token).unwrap()],
        }
    }

    /// A request as x402-stacks sends it: the requirements, `accepted` a
    /// copy of them, the transaction under `payload.transaction`.
    fn body(&self, label: &str, scheme: &str, asset: &str, amount: &str) -> Value {
        let req = json!({
            "scheme": scheme,
            "network": "stacks:2147483648",
            "amount": amount,
            "asset": asset,
            "payTo": self.pay_to,
            "maxTimeoutSeconds": 60,
        });
        json!({
            "x402Version": 2,
            "paymentPayload": {
                "x402Version": 2,
                "accepted": req,
                "payload": {"transaction": self.tx(label).tx_hex.trim_start_matches("0x")},
            },
            "paymentRequirements": req,
        })
    }

    fn stx(&self) -> Value {
        self.body("stx", "exact", "STX", "1000")
    }
}

fn run(body: &Value, policy: &Policy) -> Result<Verified, Refusal> {
    let req = parse_request(body)?;
    verify(&req, policy, NOW_MS)
}

fn reason(body: &Value, policy: &Policy) -> Reason {
    match run(body, policy) {
        Ok(v) => panic!("expected a refusal, got a valid payment from {}", v.payer),
        Err(r) => r.reason,
    }
}

#[test]
fn an_stx_transfer_that_pays_the_requirements_is_valid() {
    let f = fixture();
    let v = run(&f.stx(), &f.policy()).unwrap();
    assert_eq!(v.scheme, crate::domain::Scheme::Exact);
    assert_eq!(v.paid, Paid::Stx);
    assert_eq!(v.asset, "STX");
    assert_eq!(v.payer, f.payer);
    assert_eq!(v.pay_to, f.pay_to);
    assert_eq!(v.amount, 1000);
    assert_eq!((v.fee, v.nonce), (f.fee, f.nonce));
    assert_eq!(v.txid, f.tx("stx").txid);
    assert_eq!(v.payment_id, crate::domain::PaymentId::exact(&v.txid));
    assert_eq!(v.function, "token-transfer");
    assert_eq!(v.max_timeout_seconds, 60);
}

#[test]
fn the_scheme_write_ups_field_name_and_0x_are_accepted() {
    let f = fixture();
    let mut body = f.stx();
    let hex = f.tx("stx").tx_hex.clone();
    body["paymentPayload"]["payload"] = json!({ "signedTransaction": hex });
    // The v2 spec has no top-level version.
    body.as_object_mut().unwrap().remove("x402Version");
    assert!(run(&body, &f.policy()).is_ok());
}

#[test]
fn a_token_transfer_of_an_allowed_token_is_valid_by_any_asset_name() {
    let f = fixture();
    let contract = f.token.split("::").next().unwrap().to_string();
    for asset in [f.token.clone(), contract.clone()] {
        let v = run(&f.body("token", "exact", &asset, "500"), &f.policy()).unwrap();
        assert_eq!(v.asset, f.token, "{asset}");
        assert_eq!(v.amount, 500);
        assert_eq!(v.function, "transfer");
        assert!(matches!(v.paid, Paid::Token(_)));
    }
    // extra.tokenContract names the contract when the asset is a symbol.
    let mut body = f.body("token no memo", "exact", "TEST", "500");
    let (address, name) = contract.split_once('.').unwrap();
    body["paymentRequirements"]["extra"] =
        json!({"tokenContract": {"address": address, "name": name}});
    body["paymentPayload"]["accepted"] = body["paymentRequirements"].clone();
    assert!(run(&body, &f.policy()).is_ok());
}

#[test]
fn an_escrow_create_to_pay_to_is_valid_and_keeps_its_payment_id() {
    let f = fixture();
    let v = run(
        &f.body("escrow create", "escrow", "STX", "1000"),
        &f.policy(),
    )
    .unwrap();
    assert_eq!(v.scheme, crate::domain::Scheme::Escrow);
    let Paid::Escrow(call, None) = &v.paid else {
        panic!("not an escrow payment")
    };
    assert_eq!(v.payment_id, call.payment_id);
    assert_eq!(v.function, "create-payment");
}

#[test]
fn a_token_escrow_create_locks_the_allowed_token() {
    let f = fixture();
    let v = run(
        &f.body("escrow token create", "escrow", &f.token, "1000"),
        &f.policy(),
    )
    .unwrap();
    let Paid::Escrow(call, Some(token)) = &v.paid else {
        panic!("not a token escrow payment: {:?}", v.paid)
    };
    assert_eq!(token.asset_id(), f.token);
    assert_eq!(v.asset, f.token);
    assert_eq!(v.payment_id, call.payment_id);
    assert_eq!(v.function, "create-payment-ft");
    // The token pays, STX only the fee: a payer without the token is refused.
    let broke = Funds {
        stx: u128::from(f.fee),
        nonce: f.nonce,
        token: Some(999),
    };
    assert_eq!(
        check(&v, &broke).unwrap_err().reason,
        Reason::InsufficientFunds
    );
    let enough = Funds {
        token: Some(1000),
        ..broke
    };
    check(&v, &enough).unwrap();
}

#[test]
fn a_token_escrow_must_lock_the_asked_token_with_create_payment_ft() {
    let f = fixture();
    // STX requirements, token create: and the other way round.
    let stx_asked = run(
        &f.body("escrow token create", "escrow", "STX", "1000"),
        &f.policy(),
    )
    .unwrap_err();
    assert_eq!(stx_asked.reason, Reason::InvalidPayload, "{stx_asked:?}");
    assert!(
        stx_asked.message.contains("create-payment"),
        "{stx_asked:?}"
    );
    let token_asked = run(
        &f.body("escrow create", "escrow", &f.token, "1000"),
        &f.policy(),
    )
    .unwrap_err();
    assert_eq!(
        token_asked.reason,
        Reason::InvalidPayload,
        "{token_asked:?}"
    );
    assert!(
        token_asked.message.contains("create-payment-ft"),
        "{token_asked:?}"
    );
    // A token this facilitator does not accept.
    let mut policy = f.policy();
    policy.tokens.clear();
    let refused = run(
        &f.body("escrow token create", "escrow", &f.token, "1000"),
        &policy,
    )
    .unwrap_err();
    assert_eq!(refused.reason, Reason::InvalidPaymentRequirements);
}

#[test]
fn version_network_and_scheme() {
    let f = fixture();
    let p = f.policy();
    let mut b = f.stx();
    b["paymentPayload"]["x402Version"] = json!(1);
    assert_eq!(reason(&b, &p), Reason::InvalidX402Version);
    let mut b = f.stx();
    b["x402Version"] = json!("2");
    assert_eq!(reason(&b, &p), Reason::InvalidX402Version);

    let mut b = f.stx();
    b["paymentRequirements"]["network"] = json!("stacks:1");
    assert_eq!(reason(&b, &p), Reason::InvalidNetwork);
    // A mainnet transaction against testnet requirements.
    assert_eq!(
        reason(&f.body("stx mainnet", "exact", "STX", "1000"), &p),
        Reason::InvalidNetwork
    );
    let mut b = f.stx();
    b["paymentPayload"]["accepted"]["network"] = json!("stacks:1");
    assert_eq!(reason(&b, &p), Reason::InvalidNetwork);

    for scheme in ["upto", "", "EXACT"] {
        let mut b = f.stx();
        b["paymentRequirements"]["scheme"] = json!(scheme);
        let expected = if scheme.is_empty() {
            Reason::InvalidPaymentRequirements
        } else {
            Reason::UnsupportedScheme
        };
        assert_eq!(reason(&b, &p), expected, "{scheme:?}");
    }
}

#[test]
fn malformed_requirements() {
    let f = fixture();
    let p = f.policy();
    let cases: Vec<(&str, Value)> = vec![
        ("amount", json!("abc")),
        ("amount", json!("0")),
        ("amount", json!("-5")),
        ("amount", json!("1e3")),
        ("amount", json!("340282366920938463463374607431768211456")),
        ("amount", json!(null)),
        ("payTo", json!("not-a-principal")),
        // A mainnet address on a testnet facilitator.
        ("payTo", json!("SP2J6ZY48GV1EZ5V2V5RB9MP66SW86PYKKNRV9EJ7")),
        (
            "asset",
            json!("ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM.unknown-token"),
        ),
        // The allowed contract, another token name.
        (
            "asset",
            json!(format!("{}::other", f.token.split("::").next().unwrap())),
        ),
        ("maxTimeoutSeconds", json!("soon")),
        ("extra", json!([1, 2])),
    ];
    for (field, value) in cases {
        let mut b = f.stx();
        b["paymentRequirements"][field] = value.clone();
        assert_eq!(
            reason(&b, &p),
            Reason::InvalidPaymentRequirements,
            "{field} = {value}"
        );
    }
    // Escrow locks STX or an accepted token, in our contract only.
    let mut b = f.body("escrow create", "escrow", "STX", "1000");
    b["paymentRequirements"]["asset"] =
        json!("ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM.other::other");
    assert_eq!(reason(&b, &p), Reason::InvalidPaymentRequirements);
    let mut b = f.body("escrow create", "escrow", "STX", "1000");
    b["paymentRequirements"]["extra"] =
        json!({"contract": "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM.other"});
    assert_eq!(reason(&b, &p), Reason::InvalidPaymentRequirements);
}

#[test]
fn expired_requirements_are_refused_in_every_time_form() {
    let f = fixture();
    let p = f.policy();
    let past = [
        json!("2026-01-01T00:00:00Z"),
        json!(NOW_MS - 1),
        json!(NOW_MS / 1000 - 1),
    ];
    for at in past {
        let mut b = f.stx();
        b["paymentRequirements"]["extra"] = json!({ "expiresAt": at });
        let e = run(&b, &p).unwrap_err();
        assert_eq!(e.reason, Reason::InvalidPaymentRequirements, "{at}");
        assert!(e.message.contains("expired"), "{}", e.message);
    }
    let mut b = f.stx();
    b["paymentRequirements"]["extra"] = json!({ "expiresAt": NOW_MS + 60_000 });
    assert!(run(&b, &p).is_ok());
    let mut b = f.stx();
    b["paymentRequirements"]["extra"] = json!({ "expiresAt": "tomorrow" });
    assert_eq!(reason(&b, &p), Reason::InvalidPaymentRequirements);
}

#[test]
fn garbage_payloads_are_invalid_payloads() {
    let f = fixture();
    let p = f.policy();
    let stx_hex = f.tx("stx").tx_hex.clone();
    let truncated = stx_hex[..stx_hex.len() - 10].to_string();
    let mut flipped = hex::decode(stx_hex.trim_start_matches("0x")).unwrap();
    let last = flipped.len() - 40;
    flipped[last] ^= 1;
    for tx in [
        json!(""),
        json!("zz"),
        json!("0x00"),
        json!(truncated),
        json!(format!("{stx_hex}00")),
        json!(hex::encode(flipped)),
        json!(42),
        json!(null),
    ] {
        let mut b = f.stx();
        b["paymentPayload"]["payload"]["transaction"] = tx.clone();
        assert_eq!(reason(&b, &p), Reason::InvalidPayload, "{tx}");
    }
    for body in [json!(null), json!([]), json!({"paymentPayload": 5})] {
        assert_eq!(reason(&body, &p), Reason::InvalidPayload, "{body}");
    }
    let mut b = f.stx();
    b.as_object_mut().unwrap().remove("paymentRequirements");
    assert_eq!(reason(&b, &p), Reason::InvalidPaymentRequirements);
}

#[test]
fn the_wrong_kind_of_transaction_is_an_invalid_payload() {
    let f = fixture();
    let p = f.policy();
    // A token transfer against STX requirements, an STX transfer against a
    // token's (x402-stacks pays unknown tokens as STX), another contract's
    // transfer, and an escrow claim for the escrow scheme.
    let cases = [
        ("token", "exact", "STX".to_string()),
        ("stx", "exact", f.token.clone()),
        ("token other contract", "exact", f.token.clone()),
        ("escrow claim", "escrow", "STX".to_string()),
        ("stx", "escrow", "STX".to_string()),
    ];
    for (label, scheme, asset) in cases {
        let b = f.body(label, scheme, &asset, "500");
        assert_eq!(
            reason(&b, &p),
            Reason::InvalidPayload,
            "{label} as {scheme} {asset}"
        );
    }
}

#[test]
fn accepted_terms_must_be_the_requirements() {
    let f = fixture();
    let mut b = f.stx();
    b["paymentPayload"]["accepted"]["amount"] = json!("1");
    let e = run(&b, &f.policy()).unwrap_err();
    assert_eq!(e.reason, Reason::InvalidPayload);
    assert!(e.message.contains("amount"), "{}", e.message);
}

#[test]
fn recipient_amount_and_sender() {
    let f = fixture();
    let p = f.policy();
    let mut b = f.stx();
    b["paymentRequirements"]["payTo"] = json!(f.other);
    b["paymentPayload"]["accepted"]["payTo"] = json!(f.other);
    let e = run(&b, &p).unwrap_err();
    assert_eq!(e.reason, Reason::RecipientMismatch);
    // Once the transaction decoded, the answer names the payer.
    assert_eq!(e.payer.as_deref(), Some(f.payer.as_str()));

    assert_eq!(
        reason(&f.body("stx", "exact", "STX", "1001"), &p),
        Reason::AmountInsufficient
    );
    assert_eq!(
        reason(&f.body("token", "exact", &f.token, "501"), &p),
        Reason::AmountInsufficient
    );
    assert_eq!(
        reason(&f.body("escrow create", "escrow", "STX", "1001"), &p),
        Reason::AmountInsufficient
    );
    assert_eq!(
        reason(
            &f.body("token sender is another", "exact", &f.token, "500"),
            &p
        ),
        Reason::SenderMismatch
    );
}

#[test]
fn a_requirements_nonce_must_be_in_the_memo() {
    let f = fixture();
    let p = f.policy();
    let with_nonce = |label: &str, asset: &str, amount: &str, nonce: &str| {
        let mut b = f.body(label, "exact", asset, amount);
        b["paymentRequirements"]["extra"] = json!({ "nonce": nonce });
        b
    };
    assert!(run(&with_nonce("stx", "STX", "1000", "order-7"), &p).is_ok());
    assert!(run(&with_nonce("token", &f.token, "500", "order-7"), &p).is_ok());
    for (label, asset, amount) in [
        ("stx", "STX", "1000"),
        ("token no memo", f.token.as_str(), "500"),
    ] {
        assert_eq!(
            reason(&with_nonce(label, asset, amount, "order-8"), &p),
            Reason::InvalidPayload,
            "{label}"
        );
    }
}

fn funds(stx: u128, nonce: u64, token: Option<u128>) -> Funds {
    Funds { stx, nonce, token }
}

#[test]
fn funds_cover_amount_and_fee_and_the_nonce_is_unused() {
    let f = fixture();
    let p = f.policy();
    let stx = run(&f.stx(), &p).unwrap();
    assert!(check(&stx, &funds(1000 + 2000, f.nonce, None)).is_ok());
    // A later nonce waits in the mempool behind the payer's others: allowed.
    assert!(check(&stx, &funds(3000, f.nonce - 1, None)).is_ok());
    let short = check(&stx, &funds(2999, f.nonce, None)).unwrap_err();
    assert_eq!(short.reason, Reason::InsufficientFunds);
    let used = check(&stx, &funds(10_000, f.nonce + 1, None)).unwrap_err();
    assert_eq!(used.reason, Reason::InvalidTransactionState);

    let token = run(&f.body("token", "exact", &f.token, "500"), &p).unwrap();
    assert!(check(&token, &funds(2000, f.nonce, Some(500))).is_ok());
    for (stx, tok) in [(1999, Some(500)), (2000, Some(499)), (2000, None)] {
        let e = check(&token, &funds(stx, f.nonce, tok)).unwrap_err();
        assert_eq!(e.reason, Reason::InsufficientFunds, "{stx} {tok:?}");
    }

    let escrow = run(&f.body("escrow create", "escrow", "STX", "1000"), &p).unwrap();
    assert_eq!(
        check(&escrow, &funds(2999, f.nonce, None))
            .unwrap_err()
            .reason,
        Reason::InsufficientFunds
    );
}

#[test]
fn supported_names_both_schemes_on_the_chains_caip2() {
    let f = fixture();
    let s = serde_json::to_value(f.policy().supported()).unwrap();
    assert_eq!(
        s,
        json!({
            "kinds": [
                {"x402Version": 2, "scheme": "exact", "network": "stacks:2147483648"},
                {"x402Version": 2, "scheme": "escrow", "network": "stacks:2147483648",
                 "extra": {"contract": f.escrow, "timeoutBlocks": 144}},
            ],
            "extensions": [],
            "signers": {},
        })
    );
    let mainnet = Policy {
        chain_id: crate::validate::MAINNET_CHAIN_ID,
        mainnet: true,
        ..f.policy()
    };
    assert_eq!(mainnet.network(), "stacks:1");
}

#[test]
fn exact_ids_never_equal_the_txid_and_ignore_its_spelling() {
    let f = fixture();
    let txid = &f.tx("stx").txid;
    let id = crate::domain::PaymentId::exact(txid);
    assert_ne!(id.to_string(), *txid);
    assert_eq!(
        id,
        crate::domain::PaymentId::exact(&txid[2..].to_uppercase())
    );
}

proptest::proptest! {
    /// Hostile bodies get a reason, never a panic.
    #[test]
    fn arbitrary_json_never_panics(s in ".{0,300}") {
        let f = fixture();
        if let Ok(v) = serde_json::from_str::<Value>(&s) {
            let _ = run(&v, &f.policy());
        }
        let mut b = f.stx();
        b["paymentPayload"]["payload"]["transaction"] = json!(s);
        let _ = run(&b, &f.policy());
    }
}
