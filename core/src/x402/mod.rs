//! The x402 facilitator's decisions, pure: is this signed transaction a
//! payment of these requirements, can its sender pay, and what does
//! `/supported` say. The node's `/x402` routes do the I/O (an account read,
//! a token `get-balance`, the relay's broadcast) and call in.
//!
//! * [`wire`]: the request and answer bodies (x402 v2).
//! * [`reason`]: the x402 error codes, with a sentence each.
//! * [`rules`]: the `exact` (STX, SIP-010) and `escrow` checks.
//! * [`funds`]: the checks that need chain state, given that state.
//! * [`settle`]: what `/settle` answers for a payment as we hold it.
//!
//! Schemes:
//! * `exact`: the payer signs a transfer straight to `payTo`: an STX
//!   `token-transfer`, or a SIP-010 `transfer(amount, sender, recipient,
//!   memo)` on an allowed token ("Exact Payment Scheme for Stacks").
//! * `escrow` (ours): the payer signs `create-payment` on our escrow
//!   contract; the merchant claims it later, and the contract refunds the
//!   payer after `timeoutBlocks` if the merchant never does.

pub mod funds;
pub mod reason;
pub mod rules;
pub mod settle;
pub mod wire;

#[cfg(test)]
mod tests;

use crate::decode::ContractId;
use crate::validate::{MAINNET_CHAIN_ID, TESTNET_CHAIN_ID};

pub use reason::{Reason, Refusal};
pub use rules::{verify, Paid, Verified};
pub use wire::{parse_request, Request, Requirements, SettleResponse, Supported, VerifyResponse};

/// A SIP-010 token the facilitator accepts in `exact` payments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Token {
    pub contract: ContractId,
    /// The `define-fungible-token` name, as `ft_transfer_event`s carry it
    /// after `::` (the sBTC contract also defines `sbtc-token-locked`).
    pub name: String,
}

impl Token {
    /// `ADDR.contract::token`, as events and x402 assets name it.
    pub fn asset_id(&self) -> String {
        format!("{}::{}", self.contract, self.name)
    }

    /// Parses `ADDR.contract::token`.
    pub fn parse(s: &str) -> Option<Token> {
        let (contract, name) = s.split_once("::")?;
        Some(Token {
            contract: contract.parse().ok()?,
            name: name.to_string(),
        })
        .filter(|t| !t.name.is_empty())
    }

    /// sBTC and USDCx, by their real contract ids, for a network.
    pub fn defaults(mainnet: bool) -> Vec<Token> {
        let ids: [&str; 2] = if mainnet {
            [
                "SM3VDXK3WZZSA84XXFKAFAF15NNZX32CTSG82JFQ4.sbtc-token::sbtc-token",
                "SP120SBRBQJ00MCWS7TM5R8WJNTTKD5K0HFRC2CNE.usdcx::usdcx-token",
            ]
        } else {
            [
                "ST1F7QA2MDF17S807EPA36TSS8AMEFY4KA9TVGWXT.sbtc-token::sbtc-token",
                "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM.usdcx::usdcx-token",
            ]
        };
        ids.iter()
            .map(|s| Token::parse(s).expect("the default tokens parse"))
            .collect()
    }
}

/// What this facilitator settles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    /// The chain id every transaction must carry.
    pub chain_id: u32,
    /// Mainnet-versioned transactions (else testnet).
    pub mainnet: bool,
    /// Our escrow contract (the `escrow` scheme).
    pub escrow: ContractId,
    /// Blocks from create to refund, as `/supported` advertises them.
    pub escrow_timeout_blocks: u64,
    /// SIP-010 tokens accepted in `exact` payments.
    pub tokens: Vec<Token>,
}

impl Policy {
    /// CAIP-2 of the chain: `stacks:1` on mainnet, `stacks:2147483648` on
    /// testnet and devnet (any other chain id is named as it is).
    pub fn network(&self) -> String {
        format!("stacks:{}", self.chain_id)
    }

    /// `GET /supported`.
    pub fn supported(&self) -> Supported {
        let network = self.network();
        Supported {
            kinds: vec![
                wire::Kind {
                    x402_version: wire::X402_VERSION,
                    scheme: "exact",
                    network: network.clone(),
                    extra: None,
                },
                wire::Kind {
                    x402_version: wire::X402_VERSION,
                    scheme: "escrow",
                    network,
                    extra: Some(serde_json::json!({
                        "contract": self.escrow.as_str(),
                        "timeoutBlocks": self.escrow_timeout_blocks,
                    })),
                },
            ],
            extensions: Vec::new(),
            signers: serde_json::Map::new(),
        }
    }
}

/// Blocks from an escrow create to its refund: the contract's
/// `PAYMENT-TIMEOUT` (contracts/x402-nexus-escrow.clar).
pub const ESCROW_TIMEOUT_BLOCKS: u64 = 100;

/// The chain ids whose CAIP-2 names x402 clients know.
pub const KNOWN_CHAIN_IDS: [u32; 2] = [MAINNET_CHAIN_ID, TESTNET_CHAIN_ID];
