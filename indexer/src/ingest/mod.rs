//! One delivery from stacks-node, end to end: parse → decode → state machine
//! → one history commit → state store → publish. Deliveries are serialized
//! (stacks-node sends them one at a time anyway), which keeps `seq` gap-free
//! and lets the state machine read the record it is about to replace.

mod bus;
mod cursor;
mod decided;
mod error;
mod external;
mod follow;
mod ingestor;

pub use bus::{BroadcastBus, EventBus};
pub use decided::Decision;
pub use error::IngestError;
pub use external::{Correction, CorrectionOutcome};
pub use ingestor::{Ingestor, Outcome, DEFAULT_CONFIRMATION_DEPTH, DEFAULT_DELIVERY_TIMEOUT};
pub use nexus_core::observer::Route;
