//! Pure decoding: observer JSON and hex -> typed escrow facts. No I/O.
//!
//! * [`print`]: a `print` event's `raw_value` (SIP-005 Clarity value) -> [`EscrowPrint`].
//! * [`tx`]: a raw transaction -> [`EscrowCall`] when it calls our contract.
//! * [`transfer`]: x402 `exact` transfers and what their events moved.
//! * [`block`]: a whole `/new_block` payload -> the escrow transactions in it.

pub mod block;
pub mod contract;
pub mod print;
pub mod transfer;
pub mod tx;

pub use block::{
    decode_block, Abort, AbortKind, BlockRef, DecodeStats, DecodedBlock, EscrowTx, Problem,
    TxOutcome,
};
pub use contract::{ContractId, ContractIdError};
pub use print::{decode_print, AdminPrint, EscrowPrint, PaymentPrint, PrintError, PrintKind};
pub use transfer::Transfer;
pub use tx::{decode_escrow_call, decode_tx_hex, EscrowCall, EscrowFunction, TxDecodeError};
