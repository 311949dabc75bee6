//! Generators shared by the benches: the escrow's payment print as a real
//! Clarity value, and deterministic test accounts.

use clarity::vm::types::{PrincipalData, StandardPrincipalData, TupleData, Value};
use clarity::vm::ClarityName;

use nexus_core::domain::PaymentId;

/// `0x` + SIP-005 serialization of the contract's payment print tuple.
#[allow(clippy::too_many_arguments)]
pub fn payment_print(
    event: &str,
    id: &PaymentId,
    payer: u64,
    payee: u64,
    amount: u128,
    memo: Vec<u8>,
    expires_at: u64,
    height: u64,
) -> String {
    let name = |s: &str| ClarityName::try_from(s.to_string()).expect("clarity name");
    let tuple = TupleData::from_data(vec![
        (
            name("event"),
            Value::string_ascii_from_bytes(event.as_bytes().to_vec()).expect("ascii"),
        ),
        (
            name("payment-id"),
            Value::buff_from(id.0.to_vec()).expect("buff"),
        ),
        (name("sender"), Value::Principal(principal(payer))),
        (name("recipient"), Value::Principal(principal(payee))),
        (name("amount"), Value::UInt(amount)),
        (name("memo"), Value::buff_from(memo).expect("buff")),
        (name("expires-at"), Value::UInt(u128::from(expires_at))),
        (name("block-height"), Value::UInt(u128::from(height))),
    ])
    .expect("tuple");
    let bytes = Value::Tuple(tuple)
        .serialize_to_vec()
        .expect("serialize print");
    format!("0x{}", hex::encode(bytes))
}

/// Testnet single-sig principal of account `n`.
pub fn principal(n: u64) -> PrincipalData {
    PrincipalData::Standard(StandardPrincipalData(
        clarity::C32_ADDRESS_VERSION_TESTNET_SINGLESIG,
        account(n),
    ))
}

/// 20-byte hash160 of account `n` (deterministic, distinct).
pub fn account(n: u64) -> [u8; 20] {
    let mut h = [0u8; 20];
    h[..8].copy_from_slice(&splitmix64(n ^ 0xacc0).to_be_bytes());
    h[8..16].copy_from_slice(&splitmix64(n ^ 0xacc1).to_be_bytes());
    h[16..].copy_from_slice(&(n as u32).to_be_bytes());
    h
}

pub fn splitmix64(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}
