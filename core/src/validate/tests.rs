//! Against real signed transactions: tests/fixtures/relay-txs.json (every
//! rule, `npm run relay-fixtures`) and the recorded escrow scenario
//! tests/fixtures/escrow-simnet.json (`npm run fixtures`).

use proptest::prelude::*;
use serde::Deserialize;

use super::*;

const RELAY_FIXTURE: &str = include_str!("../../../tests/fixtures/relay-txs.json");
const SIMNET_FIXTURE: &str = include_str!("../../../tests/fixtures/escrow-simnet.json");

#[derive(Deserialize)]
struct RelayFixture {
    contract_id: String,
    chain_id: u32,
    cases: Vec<Case>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Expect {
    /// Always "valid".
    Valid(String),
    Invalid {
        field: String,
        contains: String,
    },
}

#[derive(Deserialize)]
struct Case {
    label: String,
    tx_hex: String,
    txid: Option<String>,
    expect: Expect,
    function: Option<String>,
    payment_id: Option<String>,
    sender: Option<String>,
    recipient: Option<String>,
    amount: Option<String>,
    memo: Option<String>,
    token: Option<String>,
    nonce: Option<u64>,
    fee: Option<u64>,
}

fn relay_fixture() -> (RelayFixture, RelayPolicy) {
    let f: RelayFixture = serde_json::from_str(RELAY_FIXTURE).expect("relay-txs.json parses");
    let policy = RelayPolicy::new(f.contract_id.parse().expect("contract id"), f.chain_id);
    (f, policy)
}

fn check_valid_case(case: &Case, policy: &RelayPolicy) {
    let bytes = parse_hex(&case.tx_hex).expect("fixture hex");
    let valid = validate(&bytes, policy)
        .unwrap_or_else(|e| panic!("{}: expected valid, got {e}", case.label));
    let call = &valid.call;
    assert_eq!(valid.bytes, bytes, "{}", case.label);
    assert_eq!(Some(&call.txid), case.txid.as_ref(), "{}", case.label);
    assert_eq!(
        Some(call.function.as_str()),
        case.function.as_deref(),
        "{}",
        case.label
    );
    assert_eq!(
        Some(call.payment_id.to_string()),
        case.payment_id,
        "{}",
        case.label
    );
    assert_eq!(Some(&call.sender), case.sender.as_ref(), "{}", case.label);
    assert_eq!(call.recipient, case.recipient, "{}", case.label);
    assert_eq!(
        call.amount.map(|a| a.to_string()),
        case.amount,
        "{}",
        case.label
    );
    assert_eq!(
        call.memo.as_ref().map(|m| format!("0x{}", hex::encode(m))),
        case.memo,
        "{}",
        case.label
    );
    assert_eq!(call.token, case.token, "{}", case.label);
    assert_eq!(Some(call.nonce), case.nonce, "{}", case.label);
    assert_eq!(Some(call.fee), case.fee, "{}", case.label);
    assert_eq!(call.chain_id, policy.chain_id, "{}", case.label);
}

#[test]
fn relay_fixture_cases_meet_their_expectations() {
    let (f, policy) = relay_fixture();
    assert!(f.cases.len() >= 30, "fixture lost cases");
    let mut valid = 0;
    for case in &f.cases {
        match &case.expect {
            Expect::Valid(v) => {
                assert_eq!(v, "valid", "{}: unknown expectation", case.label);
                check_valid_case(case, &policy);
                valid += 1;
            }
            Expect::Invalid { field, contains } => {
                let err = parse_hex(&case.tx_hex)
                    .and_then(|b| validate(&b, &policy))
                    .map(|v| v.call)
                    .expect_err(&case.label);
                assert_eq!(err.field, field, "{}: {err}", case.label);
                assert!(
                    err.message.contains(contains.as_str()),
                    "{}: message {:?} lacks {contains:?}",
                    case.label,
                    err.message
                );
            }
        }
    }
    assert!(valid >= 11, "fixture lost valid cases");
}

/// Every message names the field and says what to do; print them for review
/// with `cargo test -p nexus-relay messages -- --nocapture`.
#[test]
fn messages_are_specific() {
    let (f, policy) = relay_fixture();
    for case in &f.cases {
        if let Ok(Err(e)) = parse_hex(&case.tx_hex).map(|b| validate(&b, &policy)) {
            println!("{:<55} {e}", case.label);
            assert!(e.message.len() > 30, "{}: terse message {e}", case.label);
        }
    }
}

#[derive(Deserialize)]
struct SimnetFixture {
    contract_id: String,
    transactions: Vec<SimnetTx>,
}

#[derive(Deserialize)]
struct SimnetTx {
    step: String,
    function: String,
    sender: String,
    args: Vec<SimnetArg>,
    tx_hex: String,
    txid: String,
}

#[derive(Deserialize)]
struct SimnetArg {
    repr: String,
}

/// The recorded scenario's own signed calls: every payment call passes
/// except the zero-amount create (ERR-ZERO-AMOUNT is caught up front); the
/// admin calls are not relayed. Failures that need chain state (not the
/// recipient, paused) pass: only the contract can know.
#[test]
fn simnet_scenario_transactions() {
    let f: SimnetFixture = serde_json::from_str(SIMNET_FIXTURE).expect("escrow-simnet.json");
    let policy = RelayPolicy::new(f.contract_id.parse().unwrap(), TESTNET_CHAIN_ID);
    let mut relayed = 0;
    for tx in &f.transactions {
        let result = validate(&parse_hex(&tx.tx_hex).unwrap(), &policy);
        let zero = tx.function == "create-payment" && tx.args[2].repr == "u0";
        match tx.function.as_str() {
            "pause" | "unpause" => assert_eq!(result.unwrap_err().field, "function", "{}", tx.step),
            _ if zero => assert_eq!(result.unwrap_err().field, "amount", "{}", tx.step),
            _ => {
                let call = result.unwrap_or_else(|e| panic!("{}: {e}", tx.step)).call;
                assert_eq!(call.txid, tx.txid, "{}", tx.step);
                assert_eq!(call.sender, tx.sender, "{}", tx.step);
                assert_eq!(call.function.as_str(), tx.function, "{}", tx.step);
                assert_eq!(call.payment_id.to_string(), tx.args[0].repr, "{}", tx.step);
                relayed += 1;
            }
        }
    }
    assert_eq!(relayed, 12);
}

fn first_valid_create() -> (Vec<u8>, RelayPolicy) {
    let (f, policy) = relay_fixture();
    let case = f
        .cases
        .iter()
        .find(|c| {
            matches!(c.expect, Expect::Valid(_)) && c.function.as_deref() == Some("create-payment")
        })
        .expect("a valid create");
    (parse_hex(&case.tx_hex).unwrap(), policy)
}

#[test]
fn non_canonical_version_byte_is_refused() {
    let (mut bytes, policy) = first_valid_create();
    assert_eq!(bytes[0], 0x80);
    // Decodes as testnet, but re-encodes as 0x80: another txid.
    bytes[0] = 0x81;
    let err = validate(&bytes, &policy).unwrap_err();
    assert_eq!(err.field, "tx");
    assert!(err.message.contains("canonical"), "{err}");
}

#[test]
fn policy_network_follows_the_contract_address() {
    let testnet = RelayPolicy::new(
        "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM.x402-nexus-escrow"
            .parse()
            .unwrap(),
        TESTNET_CHAIN_ID,
    );
    assert!(!testnet.mainnet);
    let mainnet = RelayPolicy::new(
        "SP2J6ZY48GV1EZ5V2V5RB9MP66SW86PYKKNRV9EJ7.x402-nexus-escrow"
            .parse()
            .unwrap(),
        MAINNET_CHAIN_ID,
    );
    assert!(mainnet.mainnet);
    // The testnet fixture under a mainnet policy: wrong version first.
    let (bytes, _) = first_valid_create();
    assert_eq!(validate(&bytes, &mainnet).unwrap_err().field, "version");
}

#[test]
fn parse_hex_forms() {
    assert_eq!(parse_hex("0x0aff").unwrap(), vec![0x0a, 0xff]);
    assert_eq!(parse_hex("0AFF").unwrap(), vec![0x0a, 0xff]);
    assert_eq!(parse_hex(" 0x0a\n").unwrap(), vec![0x0a]);
    for bad in ["", "0x", "0xabc", "zz", "0x 0a"] {
        assert_eq!(parse_hex(bad).unwrap_err().field, "tx", "{bad:?}");
    }
}

#[test]
fn empty_input_is_not_a_transaction() {
    let (_, policy) = first_valid_create();
    assert_eq!(validate(&[], &policy).unwrap_err().field, "tx");
}

proptest! {
    #[test]
    fn random_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let (_, policy) = first_valid_create();
        let _ = validate(&bytes, &policy);
    }

    /// Every byte of a valid transaction is signed or structural: changing
    /// any one of them gets it refused, never relayed as something else.
    #[test]
    fn one_byte_changed_is_refused(index in any::<prop::sample::Index>(), flip in 1u8..=255) {
        let (mut bytes, policy) = first_valid_create();
        let i = index.index(bytes.len());
        bytes[i] ^= flip;
        prop_assert!(validate(&bytes, &policy).is_err(), "byte {} ^ {:#04x} accepted", i, flip);
    }

    /// Random bytes after a valid prefix (lengths and type tags in random
    /// places) never panic either.
    #[test]
    fn valid_prefix_with_random_tail_never_panics(cut in any::<prop::sample::Index>(), tail in proptest::collection::vec(any::<u8>(), 0..200)) {
        let (bytes, policy) = first_valid_create();
        let mut mixed = bytes[..cut.index(bytes.len())].to_vec();
        mixed.extend_from_slice(&tail);
        let _ = validate(&mixed, &policy);
    }
}
