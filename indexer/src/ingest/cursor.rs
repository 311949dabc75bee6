use std::collections::{BTreeMap, BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use nexus_core::chain::Header;
use nexus_core::domain::{Payment, PaymentEvent, PaymentId};
use nexus_store::{BlockRecord, Committed, HistoryGroup};

/// Headers kept in memory for fork choice; older ones are read from history on demand.
const HEADER_CACHE: usize = 20_000;

/// Everything the serialized ingest path remembers between deliveries.
/// Only ever changed after a successful commit, so a failed delivery leaves it as it was.
#[derive(Debug, Default)]
pub(super) struct Cursor {
    /// Last `seq` committed to history.
    pub history_seq: u64,
    /// Last `seq` handed to the bus: never publish an event twice.
    pub published_seq: u64,
    /// A delivery is (or was, when it failed or was cancelled) part-way through.
    pub dirty: bool,
    /// A commit found history moved by someone else: resync after this delivery.
    pub stale: bool,
    /// Our canonical tip.
    pub tip: Option<Header>,
    /// Recent block headers by index hash (canonical or not).
    pub headers: HashMap<String, Header>,
    /// Payments whose latest on-chain transition is not final yet, by its height.
    pub unfinal: BTreeSet<(u64, PaymentId)>,
    pub unfinal_at: HashMap<PaymentId, u64>,
    /// An open commit group ([`crate::ingest::Ingestor::deliver_group`]).
    pub group: Option<Group>,
}

/// A commit group in progress: history writes go into its transaction, and
/// what the state store and the bus would have received waits here until
/// the transaction commits.
pub(super) struct Group {
    pub history: Arc<dyn HistoryGroup>,
    /// Latest record of each payment committed in the group.
    pub payments: HashMap<PaymentId, Payment>,
    /// First-commit order of `payments`' ids (the state store gets them in order).
    pub order: Vec<PaymentId>,
    pub events: Vec<PaymentEvent>,
    pub counters: BTreeMap<String, u64>,
    pub last_seq: u64,
    /// Blocks of the group's items already in history when it opened, and
    /// blocks it stored since: the duplicate check without a query per block.
    pub known: HashSet<String>,
    /// The group's items' blocks, whose stored children were asked about when it opened...
    pub checked: HashSet<String>,
    /// ...and which of them had any, plus the parent of every block the
    /// group stored since: [`Group::childless`] without a query per block.
    pub parents: HashSet<String>,
}

impl std::fmt::Debug for Group {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Group")
            .field("payments", &self.payments.len())
            .field("events", &self.events.len())
            .field("last_seq", &self.last_seq)
            .finish_non_exhaustive()
    }
}

impl Group {
    pub fn new(
        history: Arc<dyn HistoryGroup>,
        last_seq: u64,
        known: HashSet<String>,
        checked: HashSet<String>,
        parents: HashSet<String>,
    ) -> Self {
        Group {
            known,
            checked,
            parents,
            history,
            payments: HashMap::new(),
            order: Vec::new(),
            events: Vec::new(),
            counters: BTreeMap::new(),
            last_seq,
        }
    }

    /// Hold back one commit's state-store write and events.
    pub fn absorb(&mut self, committed: &Committed, counters: &[(&str, u64)]) {
        for p in &committed.payments {
            if self.payments.insert(p.payment_id, p.clone()).is_none() {
                self.order.push(p.payment_id);
            }
        }
        self.events.extend(committed.events.iter().cloned());
        self.bump(counters);
        self.last_seq = self.last_seq.max(committed.last_seq);
    }

    /// Certainly no stored block has `hash` as its parent (`false`: maybe one has: ask history).
    pub fn childless(&self, hash: &str) -> bool {
        self.checked.contains(hash) && !self.parents.contains(hash)
    }

    pub fn bump(&mut self, counters: &[(&str, u64)]) {
        for (name, v) in counters {
            *self.counters.entry((*name).to_string()).or_default() += v;
        }
    }

    /// The payments for the state store, each once, latest record.
    pub fn payments(&self) -> Vec<Payment> {
        self.order
            .iter()
            .filter_map(|id| self.payments.get(id).cloned())
            .collect()
    }
}

impl Cursor {
    pub fn header_of(rec: &BlockRecord) -> Header {
        Header {
            index_block_hash: rec.block.index_block_hash.clone(),
            parent_index_block_hash: rec.block.parent_index_block_hash.clone(),
            height: rec.block.height,
            nakamoto: false,
            canonical: rec.canonical,
        }
    }

    pub fn remember(&mut self, h: Header) {
        if self.headers.len() >= HEADER_CACHE {
            // Drop the lower half by height: forks happen near the tip.
            let mut heights: Vec<u64> = self.headers.values().map(|h| h.height).collect();
            heights.sort_unstable();
            let cut = heights[heights.len() / 2];
            self.headers.retain(|_, h| h.height > cut);
        }
        self.headers.insert(h.index_block_hash.clone(), h);
    }

    pub fn set_canonical(&mut self, hash: &str, canonical: bool) {
        if let Some(h) = self.headers.get_mut(hash) {
            h.canonical = canonical;
        }
    }

    /// Track a committed payment record in the finality index.
    pub fn track(&mut self, p: &Payment) {
        if let Some(old) = self.unfinal_at.remove(&p.payment_id) {
            self.unfinal.remove(&(old, p.payment_id));
        }
        if let (false, Some(pos)) = (p.is_final, p.latest_pos()) {
            self.unfinal.insert((pos.block_height, p.payment_id));
            self.unfinal_at.insert(p.payment_id, pos.block_height);
        }
    }

    /// Payments whose latest transition is at or below `height`.
    pub fn unfinal_up_to(&self, height: u64) -> Vec<PaymentId> {
        self.unfinal
            .range(..=(height, PaymentId([0xff; 32])))
            .map(|(_, id)| *id)
            .collect()
    }
}
