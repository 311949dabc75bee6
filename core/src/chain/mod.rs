//! Following the canonical chain: fork choice and the rollback/apply plan.
//! Pure: the caller supplies the known block headers.
//!
//! Fork-choice rule:
//! * **Stacks 2.x (pre-Nakamoto)**: the longest chain wins; a sibling at the
//!   same height as the tip does *not* replace it (first seen wins the tie;
//!   chainhook's `blocks_pool` breaks ties the other way, which would end
//!   scenario 1 on the wrong h47). A 2.x stacks-node announces every
//!   block it processes, including ones that lose their sortition, so the
//!   arrival order alone is not the canonical order — the captured mainnet
//!   reorgs in `stacks-blockchain-api/mainnet-reorg-scenario{1,2}.tsv` show
//!   exactly that, and the stacks-blockchain-api tests expect this outcome.
//! * **Nakamoto (epoch 3.x)**: the node only announces blocks it has accepted
//!   into its canonical chain state (signers have approved them), so a block
//!   at or below our tip that does not extend it replaces what it conflicts
//!   with (stacks-blockchain-api PR #2643 / issue #2299). A payload is
//!   Nakamoto when it carries `signer_bitvec` / `signer_signature_hash`.

mod fork;

pub use fork::{plan, Header, Plan};
