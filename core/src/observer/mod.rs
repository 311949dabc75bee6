//! What stacks-node POSTs to an `[[events_observer]]`, as plain serde types.
//!
//! Shapes follow stacks-core `docs/event-dispatcher.md` and
//! `stackslib/src/net/event_dispatcher` (snapshot 1efa4a9b). Every field we do
//! not need is left out and every field that older or newer nodes omit is
//! optional, so one type parses 2.x dumps, Nakamoto payloads and the 4.x
//! payloads captured from a real node (`shared/fixtures/.../stacks-node-mocknet`).

mod payload;
mod route;

pub use payload::{
    BlockEvent, BlockTx, ContractEvent, DropMempoolTx, FtTransferEvent, NewBlock, NewBurnBlock,
    StxTransferEvent,
};
pub use route::Route;
