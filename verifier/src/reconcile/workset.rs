//! The open payments the reconciler watches, kept current from the event log
//! (`events_since` a cursor) so a cycle reads what changed, not every payment.

use std::collections::HashMap;

use nexus_core::domain::{Payment, PaymentId, PaymentStatus};
use nexus_indexer::ingest::Ingestor;
use nexus_store::{PaymentFilter, StoreError};

use nexus_core::escrow::{ChainPayment, OnChain};

/// Events read per page while catching up with the log.
const EVENT_PAGE: u32 = 5_000;
/// Payments read per page at the initial load.
const LOAD_PAGE: u32 = 500;

/// What the chain said of one payment at a tip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    /// The escrow's `get-payment` (`None`: no such entry).
    Escrow(OnChain),
    /// The payer's next account nonce, for an x402 `exact` transfer (which
    /// leaves nothing in the escrow).
    Nonce(u64),
}

impl Answer {
    /// The escrow's entry, when the answer is one.
    pub fn entry(&self) -> Option<&ChainPayment> {
        match self {
            Answer::Escrow(chain) => chain.as_ref(),
            Answer::Nonce(_) => None,
        }
    }

    /// Whether the chain shows the payment's transaction at all: an escrow
    /// entry, or the transfer's nonce spent (`nonce`: the one it spends).
    pub fn shows(&self, nonce: Option<u64>) -> bool {
        match self {
            Answer::Escrow(chain) => chain.is_some(),
            Answer::Nonce(next) => nonce.is_some_and(|n| *next > n),
        }
    }
}

/// What the last check of a payment found.
#[derive(Debug, Clone)]
pub struct Verified {
    /// The tip it was read at (index block hash).
    pub tip: String,
    pub tip_height: u64,
    pub chain: Answer,
    /// The stored record's `updated_seq` when it was checked: a newer record
    /// is checked again even at the same tip.
    pub seq: u64,
}

/// One watched payment.
#[derive(Debug, Clone)]
pub struct Tracked {
    pub payment: Payment,
    pub last: Option<Verified>,
    /// Consecutive checks that found no escrow entry (for an `exact`
    /// transfer: its nonce unspent).
    pub absent_streak: u32,
    /// Cycle number of the last RPC check (carry-over order: oldest first).
    pub checked_in: Option<u64>,
}

/// Should the reconciler watch this record?
///
/// Open: `pending`, `submitted`, every `confirmed` (funds are locked: a
/// claim or refund can come at any block, final or not, expired or not), and
/// `claimed`/`refunded` until the loop has written their final proof: a
/// payment can settle and turn final between two cycles (2 s blocks, a 10 s
/// cycle), and its proof must still be brought up to the settlement.
///
/// x402 `exact` transfers are watched from `pending` to `confirmed`, by
/// their payer's nonce (the escrow's `get-payment` knows nothing of them):
/// only those whose record carries the nonce, as every one the facilitator
/// settles does.
pub fn is_open(p: &Payment) -> bool {
    if p.is_exact() {
        return p.nonce.is_some()
            && p.sender.is_some()
            && matches!(
                p.status,
                PaymentStatus::Pending | PaymentStatus::Submitted | PaymentStatus::Confirmed
            );
    }
    !matches!(p.status, PaymentStatus::Failed | PaymentStatus::Dropped)
}

/// A payment that can no longer move once its latest transition is final:
/// a settled escrow payment, or a confirmed transfer (an escrow payment
/// that is only confirmed can still be claimed or refunded).
pub fn done_once_final(p: &Payment) -> bool {
    p.status.is_settled() || p.is_exact()
}

/// Loaded at the start of a leadership term: the open ones, less those
/// already done and final (history holds every one of those; their last
/// proof stands, and the API brings it up to the record when it is read).
fn is_open_at_load(p: &Payment) -> bool {
    is_open(p) && !(done_once_final(p) && p.is_final)
}

/// The watched set and where in the event log it is up to.
#[derive(Debug, Default)]
pub struct WorkSet {
    pub loaded: bool,
    /// Last event `seq` folded into the set.
    pub cursor: u64,
    pub open: HashMap<PaymentId, Tracked>,
}

impl WorkSet {
    /// Load (first call) or catch up with the event log. Returns how many
    /// payment records were read.
    pub async fn refresh(&mut self, ingestor: &Ingestor) -> Result<usize, StoreError> {
        let history = ingestor.history();
        if !self.loaded {
            // Cursor first: anything committed while we list is replayed next time.
            self.cursor = history.last_seq().await?;
            let mut n = 0;
            for status in [
                PaymentStatus::Pending,
                PaymentStatus::Submitted,
                PaymentStatus::Confirmed,
                PaymentStatus::Claimed,
                PaymentStatus::Refunded,
            ] {
                let mut after = None;
                loop {
                    let page = history
                        .list_payments(&PaymentFilter {
                            status: Some(status),
                            after: after.clone(),
                            limit: LOAD_PAGE,
                            ..Default::default()
                        })
                        .await?;
                    n += page.len();
                    let full = page.len() as u32 == LOAD_PAGE;
                    after = page.last().map(|p| p.payment_id.to_string());
                    for p in page.into_iter().filter(is_open_at_load) {
                        self.upsert(p);
                    }
                    if !full {
                        break;
                    }
                }
            }
            self.loaded = true;
            return Ok(n);
        }
        let mut n = 0;
        loop {
            let events = history.events_since(self.cursor, EVENT_PAGE).await?;
            let Some(last) = events.last().map(|e| e.seq) else {
                break;
            };
            let mut ids: Vec<PaymentId> = events.iter().map(|e| e.payment_id).collect();
            ids.sort_unstable();
            ids.dedup();
            let records = ingestor.state().get_many(&ids).await?;
            for (id, rec) in ids.iter().zip(records) {
                let rec = match rec {
                    Some(p) => Some(p),
                    // Settled records expire from the state store; history keeps them.
                    None => history.get_payment(id).await?,
                };
                match rec {
                    Some(p) => self.upsert(p),
                    None => {
                        self.open.remove(id);
                    }
                }
            }
            n += ids.len();
            self.cursor = last;
            if (events.len() as u32) < EVENT_PAGE {
                break;
            }
        }
        Ok(n)
    }

    /// Take a newer record of a payment (or drop it when no longer open).
    pub fn upsert(&mut self, p: Payment) {
        if !is_open(&p) {
            self.open.remove(&p.payment_id);
            return;
        }
        match self.open.get_mut(&p.payment_id) {
            Some(t) if t.payment.updated_seq <= p.updated_seq => t.payment = p,
            Some(_) => {}
            None => {
                self.open.insert(
                    p.payment_id,
                    Tracked {
                        payment: p,
                        last: None,
                        absent_streak: 0,
                        checked_in: None,
                    },
                );
            }
        }
    }

    /// Forget everything (after losing the lease: the next leader term starts fresh).
    pub fn reset(&mut self) {
        *self = WorkSet::default();
    }
}
