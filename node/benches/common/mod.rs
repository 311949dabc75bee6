//! Generators shared by the benches: the escrow's payment print as a real
//! Clarity value, deterministic test accounts, and escrow calls as real
//! (unsigned) transactions.

use clarity::types::chainstate::StacksAddress;
use clarity::util::hash::Hash160;
use clarity::util::secp256k1::MessageSignature;
use clarity::vm::types::{PrincipalData, StandardPrincipalData, TupleData, Value};
use clarity::vm::{ClarityName, ContractName};
use stacks_codec::codec::{
    SinglesigHashMode, SinglesigSpendingCondition, StacksTransaction, TransactionAnchorMode,
    TransactionAuth, TransactionContractCall, TransactionPayload, TransactionPostConditionMode,
    TransactionPublicKeyEncoding, TransactionSpendingCondition, TransactionVersion,
};

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

/// A singlesig testnet contract-call of `function` on `deployer`'s
/// `x402-nexus-escrow` from account `origin`; the signature is left empty
/// (the node only decodes transactions, it never verifies them).
#[allow(dead_code)] // bench-ws builds no transactions
pub fn escrow_call(
    deployer: StacksAddress,
    origin: u64,
    nonce: u64,
    function: &str,
    args: Vec<Value>,
) -> StacksTransaction {
    let auth = TransactionAuth::Standard(TransactionSpendingCondition::Singlesig(
        SinglesigSpendingCondition {
            hash_mode: SinglesigHashMode::P2PKH,
            signer: Hash160(account(origin)),
            nonce,
            tx_fee: 3_000,
            key_encoding: TransactionPublicKeyEncoding::Compressed,
            signature: MessageSignature::empty(),
        },
    ));
    let payload = TransactionPayload::ContractCall(TransactionContractCall {
        address: deployer,
        contract_name: ContractName::try_from("x402-nexus-escrow".to_string()).expect("name"),
        function_name: ClarityName::try_from(function.to_string()).expect("name"),
        function_args: args,
    });
    let mut tx = StacksTransaction::new(TransactionVersion::Testnet, auth, payload);
    tx.chain_id = 0x8000_0000;
    tx.anchor_mode = TransactionAnchorMode::Any;
    tx.post_condition_mode = TransactionPostConditionMode::Allow;
    tx
}
