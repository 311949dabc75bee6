//! Would the transaction's post-conditions let the call succeed, and do they
//! protect the client?
//!
//! A post-condition limits what a principal may send; the node aborts the
//! transaction (fee still paid) when one fails, and in Deny mode also when an
//! asset moves that no post-condition covers ([`check_transaction_postconditions`]
//! in stacks-core). What a successful escrow call moves is known without chain
//! state:
//!
//! * create-payment: the sender (origin) sends exactly `amount` uSTX to the
//!   contract; nothing else moves. So an STX condition on the sender must
//!   admit `amount`: `willSendEq(amount)`, `willSendLte(x >= amount)`,
//!   `willSendGte(x <= amount)`, `willSendGt(x < amount)`,
//!   `willSendLt(x > amount)` all do. Every other condition must admit
//!   "sends nothing".
//! * claim-payment, refund-expired: the escrow contract sends the payment's
//!   amount (unknown here, but above 0) to the recipient or the sender. So an
//!   STX condition on the contract must admit some positive amount, and every
//!   other condition must admit "sends nothing".
//!
//! The `-ft` functions are the same with the token in place of STX: the
//! asset that moves is the SIP-010 token the call names (any asset defined in
//! that contract), conditions on it play the part STX conditions play above,
//! and an STX condition must admit "sends nothing".
//!
//! The relay's rule on top: a create must be in Deny mode with a condition
//! on the sender for the asset it locks, so the wallet, not the contract,
//! bounds what leaves the account. A claim or refund pays the caller or the
//! payment's sender, so Allow mode is fine; in Deny mode the payout must be
//! covered.
//!
//! [`check_transaction_postconditions`]: https://github.com/stacks-network/stacks-core/blob/master/stackslib/src/chainstate/stacks/db/transactions.rs

use crate::decode::{ContractId, EscrowCall};
use clarity::types::chainstate::StacksAddress;
use stacks_codec::codec::{
    FungibleConditionCode, NonfungibleConditionCode, PostConditionPrincipal, StacksTransaction,
    TransactionPostCondition, TransactionPostConditionMode,
};

use super::ValidationError;

/// Whom a post-condition is about, relative to the call.
#[derive(Debug, PartialEq, Eq)]
enum Who {
    /// The origin: `tx-sender`, who pays in a create.
    Sender,
    /// The escrow contract, which pays out in a claim or refund.
    Escrow,
    /// Anyone else: sends nothing in an escrow call.
    Other(String),
}

/// What a successful call makes a principal send, in the moved asset's unit.
enum Sent {
    Exactly(u128),
    /// An amount unknown without chain state, but above 0.
    SomePositive,
}

/// The asset a payment call moves.
#[derive(Debug, PartialEq, Eq)]
enum Moved<'a> {
    Stx,
    /// A SIP-010 token contract, `ADDR.contract`.
    Token(&'a str),
}

impl Moved<'_> {
    /// How a post-condition on this asset is written with the `Pc` builder.
    fn pc_suffix(&self) -> String {
        match self {
            Moved::Stx => ".ustx()".into(),
            Moved::Token(t) => format!(".ft(\"{t}\", \"<asset name>\")"),
        }
    }

    fn unit(&self) -> String {
        match self {
            Moved::Stx => "uSTX".into(),
            Moved::Token(t) => format!("of the token {t}"),
        }
    }
}

pub(super) fn check(
    tx: &StacksTransaction,
    call: &EscrowCall,
    contract: &ContractId,
) -> Result<(), ValidationError> {
    let create_amount = if call.function.creates() {
        call.amount
    } else {
        None
    };
    let moved = match (call.function.is_ft(), call.token.as_deref()) {
        (true, Some(t)) => Moved::Token(t),
        _ => Moved::Stx,
    };
    let deny = tx.post_condition_mode == TransactionPostConditionMode::Deny;
    let fn_name = call.function.as_str();
    if let Some(amount) = create_amount {
        if !deny {
            return Err(ValidationError::new(
                "post_condition_mode",
                format!(
                    "a {fn_name} must be signed in Deny mode, so that nothing beyond your \
                     post-conditions can leave your account: set postConditionMode \"deny\" and \
                     add {}",
                    sender_eq(&call.sender, amount, &moved)
                ),
            ));
        }
    }
    let origin = tx.origin_address();
    let mut covered = false;
    for (i, pc) in tx.post_conditions.iter().enumerate() {
        let n = i + 1;
        // `on_moved`: the condition is on the asset the call moves.
        let (principal, code, limit, on_moved) = match pc {
            TransactionPostCondition::STX(principal, code, limit) => {
                (principal, code, u128::from(*limit), moved == Moved::Stx)
            }
            TransactionPostCondition::Fungible(principal, asset, code, limit) => {
                let token = format!(
                    "{}.{}",
                    asset.contract_address,
                    asset.contract_name.as_str()
                );
                let on_moved = matches!(moved, Moved::Token(t) if t == token);
                if !on_moved {
                    // Another token: nothing of it moves in an escrow call.
                    if !code.check(u128::from(*limit), 0) {
                        return Err(ValidationError::new(
                            "post_conditions",
                            format!(
                                "post-condition {n} requires {} to send {limit} of the token \
                                 {token}::{}, but a {fn_name} does not move that token: remove it",
                                display(
                                    &whom(principal, &origin, contract),
                                    &call.sender,
                                    contract
                                ),
                                asset.asset_name.as_str()
                            ),
                        ));
                    }
                    continue;
                }
                (principal, code, u128::from(*limit), true)
            }
            TransactionPostCondition::Nonfungible(principal, asset, _, code) => {
                if *code == NonfungibleConditionCode::Sent {
                    return Err(ValidationError::new(
                        "post_conditions",
                        format!(
                            "post-condition {n} requires {} to send an NFT of {}.{}::{}, but a \
                             {fn_name} moves no NFT: remove it",
                            display(&whom(principal, &origin, contract), &call.sender, contract),
                            asset.contract_address,
                            asset.contract_name.as_str(),
                            asset.asset_name.as_str()
                        ),
                    ));
                }
                continue;
            }
        };
        let who = whom(principal, &origin, contract);
        let sent = match (&who, create_amount, on_moved) {
            (_, _, false) => Sent::Exactly(0),
            (Who::Sender, Some(amount), true) => Sent::Exactly(amount),
            (Who::Escrow, None, true) => Sent::SomePositive,
            _ => Sent::Exactly(0),
        };
        let describe = || format!("{}({limit})", comparator(code));
        if !admits(*code, limit, &sent) {
            let message = match sent {
                Sent::Exactly(0) => format!(
                    "post-condition {n} ({} {}) fails: {} sends nothing in a {fn_name}; \
                     remove it",
                    display(&who, &call.sender, contract),
                    describe(),
                    display(&who, &call.sender, contract),
                ),
                Sent::Exactly(amount) => format!(
                    "post-condition {n} (sender {}) does not admit the {amount} {} this \
                     {fn_name} sends: use {}",
                    describe(),
                    moved.unit(),
                    sender_eq(&call.sender, amount, &moved)
                ),
                Sent::SomePositive => format!(
                    "post-condition {n} ({contract} {}) does not admit any payout, but \
                     the contract sends the payment's amount (above 0): use {}",
                    describe(),
                    escrow_eq(contract, &moved)
                ),
            };
            return Err(ValidationError::new("post_conditions", message));
        }
        if on_moved {
            covered |= match create_amount {
                Some(_) => who == Who::Sender,
                None => who == Who::Escrow,
            };
        }
    }
    if deny && !covered {
        let what = match moved {
            Moved::Stx => "STX post-condition".to_string(),
            Moved::Token(t) => format!("post-condition for the token {t}"),
        };
        let message = match create_amount {
            Some(amount) => format!(
                "no {what} on the sender: in Deny mode the transfer of {amount} {} \
                 into escrow would abort the transaction; add {}",
                moved.unit(),
                sender_eq(&call.sender, amount, &moved)
            ),
            None => format!(
                "no {what} on {contract}: in Deny mode the payout from escrow would \
                 abort the transaction; add {} or sign in Allow mode",
                escrow_eq(contract, &moved)
            ),
        };
        return Err(ValidationError::new("post_conditions", message));
    }
    Ok(())
}

fn whom(principal: &PostConditionPrincipal, origin: &StacksAddress, contract: &ContractId) -> Who {
    match principal {
        PostConditionPrincipal::Origin => Who::Sender,
        PostConditionPrincipal::Standard(addr) if addr == origin => Who::Sender,
        PostConditionPrincipal::Standard(addr) => Who::Other(addr.to_string()),
        PostConditionPrincipal::Contract(addr, name) => {
            let id = format!("{addr}.{}", name.as_str());
            if id == contract.as_str() {
                Who::Escrow
            } else {
                Who::Other(id)
            }
        }
    }
}

fn display(who: &Who, sender: &str, contract: &ContractId) -> String {
    match who {
        Who::Sender => format!("the sender {sender}"),
        Who::Escrow => contract.to_string(),
        Who::Other(p) => p.clone(),
    }
}

/// Whether `code limit` admits what the call sends.
fn admits(code: FungibleConditionCode, limit: u128, sent: &Sent) -> bool {
    match sent {
        Sent::Exactly(amount) => code.check(limit, *amount),
        // Some x >= 1 passes: Eq and Le need limit >= 1, Lt needs limit >= 2.
        Sent::SomePositive => match code {
            FungibleConditionCode::SentGt | FungibleConditionCode::SentGe => true,
            FungibleConditionCode::SentEq | FungibleConditionCode::SentLe => limit >= 1,
            FungibleConditionCode::SentLt => limit >= 2,
        },
    }
}

/// The @stacks/transactions `Pc` builder name of a condition code.
fn comparator(code: &FungibleConditionCode) -> &'static str {
    match code {
        FungibleConditionCode::SentEq => "willSendEq",
        FungibleConditionCode::SentGt => "willSendGt",
        FungibleConditionCode::SentGe => "willSendGte",
        FungibleConditionCode::SentLt => "willSendLt",
        FungibleConditionCode::SentLe => "willSendLte",
    }
}

fn sender_eq(sender: &str, amount: u128, moved: &Moved) -> String {
    format!(
        "Pc.principal(\"{sender}\").willSendEq({amount}){}",
        moved.pc_suffix()
    )
}

fn escrow_eq(contract: &ContractId, moved: &Moved) -> String {
    format!(
        "Pc.principal(\"{contract}\").willSendEq(<the payment's amount>){}",
        moved.pc_suffix()
    )
}
