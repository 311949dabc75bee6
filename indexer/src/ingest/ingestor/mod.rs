use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::Mutex;

use super::cursor::{Cursor, Group};

use nexus_core::clock::Clock;

use super::{EventBus, IngestError, Route};
use nexus_core::decode::{decode_escrow_call, decode_tx_hex, ContractId, DecodeStats};
use nexus_core::domain::{EventSource, Payment, PaymentEvent, PaymentId};
use nexus_core::error_chain;
use nexus_core::machine::{step, Ctx, Input};
use nexus_core::observer::{DropMempoolTx, NewBurnBlock};
use nexus_store::types::sanitize_text;
use nexus_store::{CommitBatch, DeadLetter, History, MempoolRecord, StateStore, StoreError};

mod mempool;

/// What one delivery did (for the HTTP answer, logs and metrics).
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Committed events, with their `seq`.
    pub events: Vec<PaymentEvent>,
    /// Dead letters written (a poison payload, or events inside a good one).
    pub dead_letters: u32,
    /// Decoder counters (spoofed prints, undecodable transactions, ...).
    pub stats: DecodeStats,
    /// The block was already committed: nothing changed.
    pub duplicate: bool,
    /// A block was committed by this delivery.
    pub block_committed: bool,
    /// Height of the delivered block (`/new_block` only).
    pub block_height: Option<u64>,
    /// The block's ancestry is unknown: it is held and this parent is missing.
    pub gap: Option<String>,
    /// The block caused a reorg rolling back this many blocks.
    pub reorg_depth: Option<u64>,
    /// Height of our canonical tip after a `/new_block` (not the delivered
    /// block's: a held or side-branch block does not move it).
    pub tip_height: Option<u64>,
}

/// The ingest pipeline. Cheap to share (`Arc`); deliveries are serialized.
pub struct Ingestor {
    pub(super) state: Arc<dyn StateStore>,
    pub(super) history: Arc<dyn History>,
    bus: Arc<dyn EventBus>,
    pub(super) clock: Arc<dyn Clock>,
    pub(super) contract: ContractId,
    source: EventSource,
    /// Blocks on top of a transition (itself included) before it is final.
    pub(super) confirmation_depth: u64,
    /// Longest a delivery may take before it is abandoned (answered 5xx).
    pub(super) delivery_timeout: std::time::Duration,
    /// Where a gap's missing blocks are read from (the node's RPC); `None`:
    /// gaps stay open until the blocks are delivered.
    pub(super) block_source: Option<Arc<dyn crate::rpc::BlockSource>>,
    pub(super) cursor: Mutex<Cursor>,
    /// Times the state store was found behind history and rebuilt (an
    /// emptied Redis): the node reconciles with the chain after one.
    rebuilds: std::sync::atomic::AtomicU64,
}

/// Default confirmation depth (blocks, the transition's own block included).
pub const DEFAULT_CONFIRMATION_DEPTH: u64 = 6;

/// Default limit on one delivery (a genesis block is large; a stalled store is not).
pub const DEFAULT_DELIVERY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

impl Ingestor {
    /// Build the pipeline and bring the state store up to date with history
    /// (after a crash between the two writes, or an emptied Redis).
    pub async fn start(
        state: Arc<dyn StateStore>,
        history: Arc<dyn History>,
        bus: Arc<dyn EventBus>,
        clock: Arc<dyn Clock>,
        contract: ContractId,
        source: EventSource,
    ) -> Result<Self, IngestError> {
        history.settle().await?;
        let history_seq = history.last_seq().await?;
        let ing = Ingestor {
            state,
            history,
            bus,
            clock,
            contract,
            source,
            confirmation_depth: DEFAULT_CONFIRMATION_DEPTH,
            delivery_timeout: DEFAULT_DELIVERY_TIMEOUT,
            block_source: None,
            rebuilds: std::sync::atomic::AtomicU64::new(0),
            // Events already in history were published by a previous run.
            cursor: Mutex::new(Cursor {
                history_seq,
                published_seq: history_seq,
                ..Default::default()
            }),
        };
        {
            let mut cur = ing.cursor.lock().await;
            ing.catch_up(&mut cur).await?;
            ing.warm(&mut cur).await?;
        }
        Ok(ing)
    }

    /// Blocks on top of a transition (itself included) before it is final; at least 1.
    pub fn with_confirmation_depth(mut self, depth: u64) -> Self {
        self.confirmation_depth = depth.max(1);
        self
    }

    /// Longest a delivery may take before it is abandoned and answered 5xx.
    pub fn with_delivery_timeout(mut self, timeout: std::time::Duration) -> Self {
        self.delivery_timeout = timeout;
        self
    }

    /// Fill gaps (a block whose parent never arrived) by reading the missing
    /// ancestors from `source`, within the delivery's time limit.
    pub fn with_block_source(mut self, source: Arc<dyn crate::rpc::BlockSource>) -> Self {
        self.block_source = Some(source);
        self
    }

    /// Load the tip, recent headers and the not-yet-final payments.
    async fn warm(&self, cur: &mut Cursor) -> Result<(), IngestError> {
        let history = self.hist(cur);
        for rec in history.recent_blocks(10_000).await? {
            cur.remember(Cursor::header_of(&rec));
        }
        cur.tip = history
            .tip()
            .await?
            .filter(|rec| rec.canonical)
            .map(|rec| Cursor::header_of(&rec));
        if let Some(t) = &cur.tip {
            cur.remember(t.clone());
        }
        for p in history.payments_changed_since(0).await? {
            cur.track(&p);
        }
        Ok(())
    }

    /// Open gaps: held blocks whose parent we never saw.
    pub async fn gaps(&self) -> Result<Vec<nexus_store::BlockRecord>, IngestError> {
        Ok(self.history.gaps().await?)
    }

    /// The escrow contract this pipeline follows.
    pub fn contract(&self) -> &ContractId {
        &self.contract
    }

    /// The state store (read side of the API).
    pub fn state(&self) -> &Arc<dyn StateStore> {
        &self.state
    }

    /// The history store (read side of the API).
    pub fn history(&self) -> &Arc<dyn History> {
        &self.history
    }

    /// Process one observer POST. `Ok` means every effect is committed and
    /// the node may be answered 200 (poison payloads included: they are in
    /// the dead-letter table). `Err` is a storage failure: answer 5xx.
    pub async fn deliver(&self, route: Route, body: &[u8]) -> Result<Outcome, IngestError> {
        // A store that stops answering (a paused connection) must not hold the
        // ingest lock forever: give up, answer 5xx, and let stacks-node retry.
        match tokio::time::timeout(self.delivery_timeout, self.deliver_locked(route, body)).await {
            Ok(result) => result,
            Err(_) => Err(IngestError::Timeout(self.delivery_timeout)),
        }
    }

    async fn deliver_locked(&self, route: Route, body: &[u8]) -> Result<Outcome, IngestError> {
        let mut cur = self.cursor.lock().await;
        if cur.dirty {
            // The previous delivery failed or was cancelled part-way: history
            // may hold a commit the in-memory view never saw. Re-read it.
            self.resync(&mut cur).await?;
        }
        cur.dirty = true;
        self.catch_up(&mut cur).await?;
        let outcome = self.route(&mut cur, route, body).await?;
        // Another writer interleaved (see `commit_history`): re-read before the next delivery.
        cur.dirty = std::mem::take(&mut cur.stale);
        Ok(outcome)
    }

    /// Process several observer POSTs (in order) as one commit group: one
    /// history transaction, then one state-store write and the events. Each
    /// item is handled exactly as [`Ingestor::deliver`] handles it, so the
    /// end state and the event log are the same; only durability is
    /// coarser: nothing is committed until the whole group is. `Ok` means
    /// every item's effects are committed; `Err` means none are.
    pub async fn deliver_group(
        &self,
        items: &[(Route, &[u8])],
    ) -> Result<Vec<Outcome>, IngestError> {
        match tokio::time::timeout(self.delivery_timeout, self.deliver_group_locked(items)).await {
            Ok(result) => result,
            Err(_) => Err(IngestError::Timeout(self.delivery_timeout)),
        }
    }

    async fn deliver_group_locked(
        &self,
        items: &[(Route, &[u8])],
    ) -> Result<Vec<Outcome>, IngestError> {
        let mut cur = self.cursor.lock().await;
        if cur.dirty {
            self.resync(&mut cur).await?;
        }
        cur.dirty = true;
        self.catch_up(&mut cur).await?;
        let handle = self.history.group().await?;
        // Which of the group's blocks history has, in one query instead of one per block.
        let hashes: Vec<String> = items
            .iter()
            .filter(|(route, _)| *route == Route::NewBlock)
            .filter_map(|(_, body)| serde_json::from_slice::<BlockId>(body).ok())
            .map(|b| b.index_block_hash)
            .collect();
        let known = handle
            .get_blocks(&hashes)
            .await?
            .into_iter()
            .map(|r| r.block.index_block_hash)
            .collect();
        // And which of them have stored children (held orphans): most have none,
        // and then storing them needs no query for descendants to connect.
        let parents = handle.with_children(&hashes).await?.into_iter().collect();
        let checked = hashes.into_iter().collect();
        cur.group = Some(Group::new(handle, cur.history_seq, known, checked, parents));
        let mut outcomes = Vec::with_capacity(items.len());
        let mut result = Ok(());
        for (route, body) in items {
            match self.route(&mut cur, *route, body).await {
                Ok(out) => outcomes.push(out),
                Err(e) => {
                    result = Err(e);
                    break;
                }
            }
        }
        let group = cur.group.take().expect("the group stays open until here");
        // On failure the handle is dropped unfinished: everything rolls back,
        // and `dirty` (still set) makes the next delivery re-read history.
        result?;
        group.history.finish().await?;
        let counters: Vec<(&str, u64)> = group
            .counters
            .iter()
            .map(|(k, v)| (k.as_str(), *v))
            .collect();
        self.state
            .apply(&group.payments(), group.last_seq, &counters)
            .await?;
        for ev in &group.events {
            self.bus.publish(ev);
        }
        cur.published_seq = group.last_seq;
        cur.dirty = std::mem::take(&mut cur.stale);
        Ok(outcomes)
    }

    /// The history to read and write through: the open group's transaction
    /// (which sees the group's own writes), else the store itself.
    pub(super) fn hist(&self, cur: &Cursor) -> Arc<dyn History> {
        match &cur.group {
            Some(g) => g.history.clone(),
            None => Arc::clone(&self.history),
        }
    }

    /// Rebuild the in-memory view (seq, tip, headers, finality index) from history.
    pub(super) async fn resync(&self, cur: &mut Cursor) -> Result<(), IngestError> {
        let history = self.hist(cur);
        history.settle().await?;
        let history_seq = history.last_seq().await?;
        *cur = Cursor {
            history_seq,
            published_seq: cur.published_seq.min(history_seq),
            dirty: true,
            group: cur.group.take(),
            ..Default::default()
        };
        self.warm(cur).await
    }

    async fn route(
        &self,
        cur: &mut Cursor,
        route: Route,
        body: &[u8],
    ) -> Result<Outcome, IngestError> {
        let cur = &mut *cur;
        match route {
            Route::NewBlock => self.new_block(cur, body).await,
            Route::NewBurnBlock => self.new_burn_block(cur, body).await,
            Route::NewMempoolTx => self.mempool(cur, body).await,
            Route::DropMempoolTx => self.drop_txs(cur, body).await,
            Route::NewMicroblocks | Route::Attachments | Route::Other => {
                // Microblock transactions reach us again inside the anchoring
                // block's `transactions`; attachments are BNS zonefiles. We only
                // check the payload is JSON so garbage is not silently accepted.
                match serde_json::from_slice::<serde::de::IgnoredAny>(body) {
                    Ok(_) => Ok(Outcome::default()),
                    Err(e) => self.poison(cur, route, body, error_chain(&e)).await,
                }
            }
        }
    }

    /// If the state store is behind history (failed apply, flushed Redis),
    /// re-apply the changed payments from history and publish what was
    /// committed but never published.
    pub(super) async fn catch_up(&self, cur: &mut Cursor) -> Result<(), IngestError> {
        let state_seq = self.state.last_seq().await?;
        if state_seq == cur.history_seq {
            return Ok(());
        }
        // Ahead of history means the cache belongs to another history: rebuild all.
        let from = if state_seq > cur.history_seq {
            0
        } else {
            state_seq
        };
        let payments = self.history.payments_changed_since(from).await?;
        if state_seq == 0 && !self.state.keeps_data() {
            // The embedded default's memory state at start: nothing was lost.
            tracing::info!(
                history_seq = cur.history_seq,
                payments = payments.len(),
                "loading the in-memory state from history"
            );
        } else {
            tracing::warn!(
                state_seq,
                history_seq = cur.history_seq,
                payments = payments.len(),
                "state store behind history; rebuilding from history"
            );
        }
        self.state.apply(&payments, cur.history_seq, &[]).await?;
        self.rebuilds
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        self.publish_pending(cur).await?;
        Ok(())
    }

    /// The clock its events are stamped with (the node's one clock).
    pub fn clock(&self) -> &Arc<dyn Clock> {
        &self.clock
    }

    /// How many times the state store has been rebuilt from history.
    pub fn rebuilds(&self) -> u64 {
        self.rebuilds.load(std::sync::atomic::Ordering::Relaxed)
    }

    async fn publish_pending(&self, cur: &mut Cursor) -> Result<(), IngestError> {
        while cur.published_seq < cur.history_seq {
            let events = self.history.events_since(cur.published_seq, 1000).await?;
            let Some(last) = events.last() else { break };
            let last = last.seq;
            for ev in &events {
                self.bus.publish(ev);
            }
            cur.published_seq = last;
        }
        Ok(())
    }

    /// Record a payload that can never be processed and acknowledge it.
    pub(super) async fn poison(
        &self,
        cur: &Cursor,
        route: Route,
        body: &[u8],
        reason: String,
    ) -> Result<Outcome, IngestError> {
        tracing::warn!(path = route.path(), %reason, bytes = body.len(), "dead-lettered payload");
        self.hist(cur)
            .dead_letter(DeadLetter {
                id: 0,
                source: route.path().to_string(),
                reason: sanitize_text(&reason),
                payload: sanitize_text(&String::from_utf8_lossy(body)),
                at: self.clock.now_rfc3339(),
            })
            .await?;
        Ok(Outcome {
            dead_letters: 1,
            ..Default::default()
        })
    }

    /// Current records of `ids` (those that exist): from the open group
    /// first (the state store has not seen its commits yet), then the state store.
    pub(super) async fn load(
        &self,
        cur: &Cursor,
        ids: &[PaymentId],
    ) -> Result<HashMap<PaymentId, Payment>, StoreError> {
        let mut out = HashMap::with_capacity(ids.len());
        let mut rest = Vec::with_capacity(ids.len());
        for id in ids {
            match cur.group.as_ref().and_then(|g| g.payments.get(id)) {
                Some(p) => {
                    out.insert(*id, p.clone());
                }
                None => rest.push(*id),
            }
        }
        if !rest.is_empty() {
            let found = self.state.get_many(&rest).await?;
            out.extend(
                rest.iter()
                    .zip(found)
                    .filter_map(|(id, p)| p.map(|p| (*id, p))),
            );
        }
        Ok(out)
    }

    /// Add to `metric:{name}` counters (held back while a group is open).
    pub(super) async fn bump(
        &self,
        cur: &mut Cursor,
        counters: &[(&str, u64)],
    ) -> Result<(), IngestError> {
        match cur.group.as_mut() {
            Some(g) => g.bump(counters),
            None => self.state.apply(&[], cur.history_seq, counters).await?,
        }
        Ok(())
    }

    /// Commit `batch`, then the state store, then publish.
    pub(super) async fn commit(
        &self,
        cur: &mut Cursor,
        batch: CommitBatch,
        counters: &[(&str, u64)],
    ) -> Result<Vec<PaymentEvent>, IngestError> {
        Ok(self.commit_raw(cur, batch, counters).await?.events)
    }

    /// [`Self::commit`], returning the committed payments too.
    pub(super) async fn commit_raw(
        &self,
        cur: &mut Cursor,
        batch: CommitBatch,
        counters: &[(&str, u64)],
    ) -> Result<nexus_store::Committed, IngestError> {
        let committed = self.commit_history(cur, batch).await?;
        self.apply_state(cur, &committed, counters).await?;
        Ok(committed)
    }

    /// Step 1: the durable commit. Advances `history_seq` at once, so a
    /// failure in step 2 is caught up from history on the next delivery.
    pub(super) async fn commit_history(
        &self,
        cur: &mut Cursor,
        batch: CommitBatch,
    ) -> Result<nexus_store::Committed, IngestError> {
        if let (Some(g), Some(b)) = (cur.group.as_mut(), &batch.block) {
            g.known.insert(b.block.index_block_hash.clone());
            g.parents.insert(b.block.parent_index_block_hash.clone());
        }
        let committed = self.hist(cur).commit(batch).await?;
        let first = committed.last_seq - committed.events.len() as u64;
        if first != cur.history_seq {
            // Someone else committed since we last looked (a second writer, or a
            // dead process's last commit landing late): our view is stale.
            tracing::warn!(
                expected = cur.history_seq,
                found = first,
                "history moved under us; resyncing"
            );
            cur.stale = true;
        }
        cur.history_seq = committed.last_seq;
        Ok(committed)
    }

    /// Step 2: the state store and the bus.
    pub(super) async fn apply_state(
        &self,
        cur: &mut Cursor,
        committed: &nexus_store::Committed,
        counters: &[(&str, u64)],
    ) -> Result<(), IngestError> {
        if let Some(g) = cur.group.as_mut() {
            g.absorb(committed, counters);
            return Ok(());
        }
        self.state
            .apply(&committed.payments, committed.last_seq, counters)
            .await?;
        for ev in &committed.events {
            self.bus.publish(ev);
        }
        cur.published_seq = committed.last_seq;
        Ok(())
    }

    pub(super) fn ctx(&self, tip_height: u64) -> Ctx {
        Ctx {
            tip_height,
            now: self.clock.now_rfc3339(),
            source: self.source,
        }
    }
}

/// Just the id of a `/new_block` payload (the rest is skipped, not built).
#[derive(serde::Deserialize)]
struct BlockId {
    index_block_hash: String,
}

/// The final record of every payment an event mentions, once each.
fn changed(current: &HashMap<PaymentId, Payment>, events: &[PaymentEvent]) -> Vec<Payment> {
    let mut ids: Vec<PaymentId> = events.iter().map(|e| e.payment_id).collect();
    ids.sort_unstable();
    ids.dedup();
    ids.iter()
        .filter_map(|id| current.get(id).cloned())
        .collect()
}

/// `metric:{name}` counters kept next to the state (the architecture's keys).
struct Counters(Vec<(String, u64)>);

impl Counters {
    fn as_refs(&self) -> Vec<(&str, u64)> {
        self.0.iter().map(|(k, v)| (k.as_str(), *v)).collect()
    }
}

/// `events:{type}` counts of a batch of events.
pub(in crate::ingest) fn count_events(events: &[PaymentEvent]) -> Vec<(String, u64)> {
    let mut by_type: HashMap<&'static str, u64> = HashMap::new();
    for e in events {
        *by_type.entry(e.event_type.as_str()).or_default() += 1;
    }
    by_type
        .into_iter()
        .map(|(k, v)| (format!("events:{k}"), v))
        .collect()
}

fn counters_for(events: &[PaymentEvent], blocks: u64, spoofed: u64, dead: u32) -> Counters {
    let mut out = count_events(events);
    for (name, v) in [
        ("blocks_ingested", blocks),
        ("spoofed_prints", spoofed),
        ("dead_letters", u64::from(dead)),
    ] {
        if v > 0 {
            out.push((name.to_string(), v));
        }
    }
    out.sort();
    Counters(out)
}
