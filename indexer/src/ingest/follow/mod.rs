//! `/new_block`: fork choice, rollback and apply, finality, held orphans and
//! filling their gaps from the node's RPC. One history commit per block
//! (including every block a reorg rolls back or re-applies), then the state
//! store, then the bus.

use std::collections::HashMap;

use super::cursor::Cursor;
use super::ingestor::Outcome;
use super::{IngestError, Ingestor, Route};
use crate::rpc::{BlockReadError, BlockSource};
use nexus_core::chain::{plan, Header, Plan};
use nexus_core::decode::{decode_block, DecodedBlock};
use nexus_core::domain::{Payment, PaymentEvent, PaymentId};
use nexus_core::machine::{apply_block, block_payment_ids, finalize, revert};
use nexus_core::observer::NewBlock;
use nexus_store::types::sanitize_text;
use nexus_store::{BlockRecord, CommitBatch, DeadLetter, UndoRecord};

mod gap;

/// How many held descendants one delivery may connect (the rest wait for the next one).
const MAX_CONNECT: usize = 1_000;

/// Most blocks one delivery reads from the RPC to fill a gap. A longer gap is
/// filled over several deliveries: the next block on top of the held ones
/// reports the deepest missing ancestor, and the fill goes on from there.
const MAX_FILL: usize = 100;

/// Where a block came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Origin {
    /// POSTed by stacks-node.
    Observer,
    /// Read from the RPC to fill a gap below a block the observer delivered;
    /// `nakamoto` is that block's: its ancestors are judged by the same rules.
    Rpc { nakamoto: bool },
}

impl Origin {
    /// `source` of the dead letters a block's bad events become.
    fn source(self) -> &'static str {
        match self {
            Origin::Observer => Route::NewBlock.path(),
            Origin::Rpc { .. } => "rpc:/v3/blocks/replay",
        }
    }
}

/// Why a gap fill stopped before it reached a block we know.
#[derive(Debug)]
enum Stop {
    /// The RPC does not have the block (404).
    NotFound(String),
    /// The RPC failed (down, timed out, refused us, answered garbage).
    Rpc(BlockReadError),
    /// The delivery's time for the fill ran out.
    Deadline,
    /// [`MAX_FILL`] blocks read; the next delivery goes on.
    Limit,
}

impl Stop {
    /// The `metric:gap_fill_stopped:{reason}` counter it increments.
    fn counter(&self) -> &'static str {
        match self {
            Stop::NotFound(_) => "gap_fill_stopped:not_found",
            Stop::Rpc(e) if e.is_temporary() => "gap_fill_stopped:rpc_unavailable",
            Stop::Rpc(_) => "gap_fill_stopped:rpc_rejected",
            Stop::Deadline => "gap_fill_stopped:deadline",
            Stop::Limit => "gap_fill_stopped:limit",
        }
    }
}

/// The working set of one commit.
#[derive(Default)]
struct Work {
    current: HashMap<PaymentId, Payment>,
    /// Changed payments in first-touch order, and the same as a set (a block
    /// touches thousands: a linear `contains` made each commit quadratic).
    touched: Vec<PaymentId>,
    touched_set: std::collections::HashSet<PaymentId>,
    events: Vec<PaymentEvent>,
    undo: Vec<UndoRecord>,
    canonical: Vec<(String, bool)>,
    undo_clear: Vec<String>,
}

impl Work {
    fn touch(&mut self, id: PaymentId) {
        if self.touched_set.insert(id) {
            self.touched.push(id);
        }
    }
}

impl Ingestor {
    pub(super) async fn new_block(
        &self,
        cur: &mut Cursor,
        body: &[u8],
    ) -> Result<Outcome, IngestError> {
        let nb: NewBlock = match serde_json::from_slice(body) {
            Ok(b) => b,
            Err(e) => {
                return self
                    .poison(cur, Route::NewBlock, body, nexus_core::error_chain(&e))
                    .await
            }
        };
        let nakamoto = nb.is_nakamoto();
        let mut out = self.ingest_block(cur, nb, Origin::Observer).await?;
        if let Some(missing) = out.gap.clone() {
            self.fill_gap(cur, missing, nakamoto, &mut out).await?;
        }
        out.tip_height = cur.tip.as_ref().map(|t| t.height);
        Ok(out)
    }

    /// One parsed block, from the observer or the RPC: decode, fork choice,
    /// then hold it, store it on a side branch, or apply it (and connect any
    /// held descendants).
    async fn ingest_block(
        &self,
        cur: &mut Cursor,
        nb: NewBlock,
        origin: Origin,
    ) -> Result<Outcome, IngestError> {
        let known = match &cur.group {
            // Every block history has is in `known` or was remembered when read.
            Some(g) => {
                g.known.contains(&nb.index_block_hash)
                    || cur.headers.contains_key(&nb.index_block_hash)
            }
            None => self.hist(cur).block_known(&nb.index_block_hash).await?,
        };
        if known {
            return Ok(Outcome {
                duplicate: true,
                ..Default::default()
            });
        }
        let mut decoded = decode_block(&nb, &self.contract);
        self.add_settled_transfers(cur, &nb, &mut decoded).await?;
        let mut out = Outcome {
            stats: decoded.stats.clone(),
            block_height: Some(nb.block_height),
            ..Default::default()
        };
        for p in &decoded.problems {
            let payload = serde_json::json!({
                "index_block_hash": nb.index_block_hash,
                "block_height": nb.block_height,
                "txid": p.txid,
                "event_index": p.event_index,
            });
            self.hist(cur)
                .dead_letter(DeadLetter {
                    id: 0,
                    source: origin.source().to_string(),
                    reason: sanitize_text(&p.reason),
                    payload: payload.to_string(),
                    at: self.clock.now_rfc3339(),
                })
                .await?;
            out.dead_letters += 1;
        }
        let header = Header {
            index_block_hash: nb.index_block_hash.clone(),
            parent_index_block_hash: nb.parent_index_block_hash.clone(),
            height: nb.block_height,
            nakamoto: match origin {
                Origin::Observer => nb.is_nakamoto(),
                Origin::Rpc { nakamoto } => nakamoto,
            },
            canonical: false,
        };
        let decision = self.plan(cur, &header).await?;
        let (rollback, apply) = match decision {
            Plan::Duplicate => {
                out.duplicate = true;
                return Ok(out);
            }
            Plan::Extend => (Vec::new(), vec![header.index_block_hash.clone()]),
            Plan::Reorg { rollback, apply } => {
                tracing::warn!(
                    depth = rollback.len(),
                    new_branch = apply.len(),
                    tip = %header.index_block_hash,
                    "reorg: rolling back the orphaned branch and applying the new one"
                );
                out.reorg_depth = Some(rollback.len() as u64);
                (rollback, apply)
            }
            Plan::SideBranch | Plan::Orphan { .. } => {
                if let Plan::Orphan { missing } = &decision {
                    tracing::warn!(block = %header.index_block_hash, height = header.height, %missing, "block with an unknown ancestor: held, gap recorded");
                    out.gap = Some(missing.clone());
                }
                let batch = CommitBatch {
                    block: Some(BlockRecord {
                        block: decoded.block,
                        canonical: false,
                    }),
                    block_txs: decoded.txs,
                    ..Default::default()
                };
                let committed = self.commit_history(cur, batch).await?;
                cur.remember(header.clone());
                let read: &[(&str, u64)] = match origin {
                    Origin::Rpc { .. } => &[("gap_fill_blocks", 1)],
                    Origin::Observer => &[],
                };
                self.apply_state(cur, &committed, read).await?;
                out.block_committed = true;
                if decision == Plan::SideBranch {
                    // Held blocks on top of it may now form the longest branch.
                    self.connect_held(cur, &header.index_block_hash, &mut out)
                        .await?;
                }
                return Ok(out);
            }
        };
        let mut counters = vec![
            ("blocks_ingested".to_string(), 1u64),
            ("spoofed_prints".to_string(), decoded.stats.spoofed_prints),
        ];
        if let Origin::Rpc { .. } = origin {
            counters.push(("gap_fill_blocks".to_string(), 1));
        }
        let events = self
            .switch(cur, rollback, apply, Some(decoded), &counters)
            .await?;
        out.events = events;
        out.block_committed = true;
        // Blocks that arrived before this one (held orphans) may now connect.
        self.connect_held(cur, &header.index_block_hash, &mut out)
            .await?;
        Ok(out)
    }

    /// Adds to `decoded` the transfers the x402 facilitator settled: of
    /// the block's candidates, only those an `exact` record tracks are
    /// decoded. The record is written before the broadcast, so it exists
    /// before any block can carry the transaction.
    async fn add_settled_transfers(
        &self,
        cur: &Cursor,
        nb: &NewBlock,
        decoded: &mut DecodedBlock,
    ) -> Result<(), IngestError> {
        if decoded.transfer_candidates.is_empty() {
            return Ok(());
        }
        let ids: Vec<PaymentId> = decoded
            .transfer_candidates
            .iter()
            .map(|t| PaymentId::exact(t))
            .collect();
        let tracked = self.load(cur, &ids).await?;
        let ours: Vec<&str> = decoded
            .transfer_candidates
            .iter()
            .filter(|t| {
                tracked
                    .get(&PaymentId::exact(t))
                    .is_some_and(|p| p.is_exact() && p.create_txid.as_deref() == Some(t.as_str()))
            })
            .map(String::as_str)
            .collect();
        if ours.is_empty() {
            return Ok(());
        }
        decoded
            .txs
            .extend(nexus_core::decode::transfer::decode_transfers(nb, &ours));
        decoded.txs.sort_by_key(|t| t.tx_index);
        Ok(())
    }

    /// Fork choice, reading headers missing from the cache from history.
    async fn plan(&self, cur: &mut Cursor, header: &Header) -> Result<Plan, IngestError> {
        let mut refreshed = false;
        loop {
            let p = plan(cur.tip.as_ref(), header, |h| cur.headers.get(h).cloned());
            let Plan::Orphan { missing } = &p else {
                return Ok(p);
            };
            if cur.headers.contains_key(missing) {
                // Known yet reported missing: our canonical flags disagree with
                // parent links. Re-read the view from history once, then give up
                // (the block is held, the gap recorded) rather than loop.
                if refreshed {
                    return Ok(p);
                }
                refreshed = true;
                self.resync(cur).await?;
                continue;
            }
            match self.hist(cur).get_block(missing).await? {
                Some(rec) => cur.remember(Cursor::header_of(&rec)),
                None => return Ok(p),
            }
        }
    }

    /// Load records of `ids` not yet in the working set.
    async fn load_into(
        &self,
        cur: &Cursor,
        work: &mut Work,
        ids: &[PaymentId],
    ) -> Result<(), IngestError> {
        let missing: Vec<PaymentId> = ids
            .iter()
            .filter(|id| !work.current.contains_key(id))
            .copied()
            .collect();
        if missing.is_empty() {
            return Ok(());
        }
        work.current.extend(self.load(cur, &missing).await?);
        Ok(())
    }

    /// Roll back `rollback` (tip first), apply `apply` (oldest first; the last
    /// one is `new` when given), mark what became final, and commit it all at once.
    async fn switch(
        &self,
        cur: &mut Cursor,
        rollback: Vec<String>,
        apply: Vec<String>,
        new: Option<DecodedBlock>,
        counters: &[(String, u64)],
    ) -> Result<Vec<PaymentEvent>, IngestError> {
        let mut work = Work::default();
        let history = self.hist(cur);
        let new_hash = new.as_ref().map(|d| d.block.index_block_hash.clone());
        // Every stored block the switch touches, read in three round trips
        // (not three per block: a 100-deep reorg is 200 blocks).
        let stored: Vec<String> = rollback
            .iter()
            .chain(apply.iter().filter(|h| Some(*h) != new_hash.as_ref()))
            .cloned()
            .collect();
        let mut records: HashMap<String, BlockRecord> = history
            .get_blocks(&stored)
            .await?
            .into_iter()
            .map(|r| (r.block.index_block_hash.clone(), r))
            .collect();
        let reapply: Vec<String> = apply
            .iter()
            .filter(|h| Some(*h) != new_hash.as_ref())
            .cloned()
            .collect();
        let mut stored_txs = history.block_txs_many(&reapply).await?;
        let mut undo_of = history.undo_many(&rollback).await?;

        let mut blocks: Vec<DecodedBlock> = Vec::with_capacity(apply.len());
        let mut new = new;
        for hash in &apply {
            if Some(hash) == new_hash.as_ref() {
                blocks.push(new.take().expect("the new block is applied once"));
            } else {
                let rec = records.remove(hash).ok_or_else(|| missing_block(hash))?;
                blocks.push(DecodedBlock {
                    block: rec.block,
                    txs: stored_txs.remove(hash).unwrap_or_default(),
                    problems: Vec::new(),
                    stats: Default::default(),
                    transfer_candidates: Vec::new(),
                });
            }
        }
        let tip_height = blocks.last().map(|d| d.block.height).unwrap_or(0);
        let ctx = self.ctx(tip_height);

        // Everything the rollback touches, in one state-store read.
        let undo_ids: Vec<PaymentId> = undo_of.values().flatten().map(|u| u.payment_id).collect();
        self.load_into(cur, &mut work, &undo_ids).await?;
        for hash in &rollback {
            let rec = records.get(hash).ok_or_else(|| missing_block(hash))?;
            let undo = undo_of.remove(hash).unwrap_or_default();
            for u in &undo {
                let Some(now) = work.current.get(&u.payment_id) else {
                    continue;
                };
                let (p, ev) = revert(now, u.before.as_ref(), &rec.block, &ctx);
                work.current.insert(u.payment_id, p);
                work.events.push(ev);
                work.touch(u.payment_id);
            }
            work.canonical.push((hash.clone(), false));
            work.undo_clear.push(hash.clone());
        }

        // Everything the new branch touches, in one state-store read.
        let branch_ids: Vec<PaymentId> = blocks.iter().flat_map(block_payment_ids).collect();
        self.load_into(cur, &mut work, &branch_ids).await?;
        for decoded in &blocks {
            let block = &decoded.block;
            let ids = block_payment_ids(decoded);
            let before: Vec<(PaymentId, Option<Payment>)> = ids
                .iter()
                .map(|id| (*id, work.current.get(id).cloned()))
                .collect();
            let evs = apply_block(&mut work.current, decoded, &ctx);
            let changed: std::collections::HashSet<PaymentId> =
                evs.iter().map(|e| e.payment_id).collect();
            for (id, prior) in before {
                if changed.contains(&id) {
                    work.undo.push(UndoRecord {
                        index_block_hash: block.index_block_hash.clone(),
                        payment_id: id,
                        before: prior,
                    });
                    work.touch(id);
                }
            }
            work.events.extend(evs);
            if Some(&block.index_block_hash) != new_hash.as_ref() {
                work.canonical.push((block.index_block_hash.clone(), true));
            }
        }

        // Finality at the new tip.
        let limit = (tip_height + 1).saturating_sub(self.confirmation_depth);
        let mut candidates = cur.unfinal_up_to(limit);
        candidates.extend(work.touched.iter().copied());
        candidates.sort_unstable();
        candidates.dedup();
        self.load_into(cur, &mut work, &candidates).await?;
        for id in candidates {
            let Some(p) = work.current.get(&id) else {
                continue;
            };
            if let Some((p, ev)) = finalize(p, tip_height, self.confirmation_depth, &ctx) {
                work.current.insert(id, p);
                work.events.push(ev);
                work.touch(id);
            }
        }

        let payments: Vec<Payment> = work
            .touched
            .iter()
            .filter_map(|id| work.current.get(id).cloned())
            .collect();
        let mut counts = super::ingestor::count_events(&work.events);
        counts.extend(counters.iter().filter(|(_, v)| *v > 0).cloned());
        let (new_block, new_txs) = match &new_hash {
            Some(h) => {
                let i = blocks
                    .iter()
                    .position(|d| &d.block.index_block_hash == h)
                    .expect("new block applied");
                let d = blocks.swap_remove(i);
                (
                    Some(BlockRecord {
                        block: d.block,
                        canonical: true,
                    }),
                    d.txs,
                )
            }
            None => (None, Vec::new()),
        };
        let new_tip = apply.last().cloned();
        let batch = CommitBatch {
            block: new_block.clone(),
            block_txs: new_txs,
            payments,
            events: work.events,
            canonical: work.canonical.clone(),
            undo: work.undo,
            undo_clear: work.undo_clear,
            ..Default::default()
        };
        let counter_refs: Vec<(&str, u64)> = counts.iter().map(|(k, v)| (k.as_str(), *v)).collect();
        let committed = self.commit_history(cur, batch).await?;

        // Durable: move the in-memory view now, before the state store, so a
        // state-store failure (caught up from history later) cannot leave it stale.
        for (hash, canonical) in &work.canonical {
            cur.set_canonical(hash, *canonical);
        }
        if let Some(rec) = &new_block {
            cur.remember(Cursor::header_of(rec));
        }
        if let Some(tip) = new_tip.and_then(|h| cur.headers.get(&h).cloned()) {
            cur.tip = Some(tip);
        }
        for p in &committed.payments {
            cur.track(p);
        }
        self.apply_state(cur, &committed, &counter_refs).await?;
        Ok(committed.events)
    }
}

/// Add what ingesting a block read from the RPC did to the delivery's outcome.
fn absorb(out: &mut Outcome, o: Outcome) {
    out.events.extend(o.events);
    out.dead_letters += o.dead_letters;
    out.stats.transactions += o.stats.transactions;
    out.stats.undecodable_txs += o.stats.undecodable_txs;
    out.stats.spoofed_prints += o.stats.spoofed_prints;
    out.stats.escrow_prints += o.stats.escrow_prints;
    if let Some(d) = o.reorg_depth {
        out.reorg_depth = Some(out.reorg_depth.unwrap_or(0).max(d));
    }
}

/// The same block id, whatever the `0x` prefix and hex case.
fn same_hash(a: &str, b: &str) -> bool {
    let bare = |s: &str| s.strip_prefix("0x").unwrap_or(s).to_ascii_lowercase();
    bare(a) == bare(b)
}

/// A stop reason with its whole error chain, for the log.
fn stop_detail(stop: &Stop) -> String {
    match stop {
        Stop::NotFound(b) => format!("the RPC does not have block {b}"),
        Stop::Rpc(e) => nexus_core::error_chain(e),
        Stop::Deadline => "out of time for this delivery".to_string(),
        Stop::Limit => format!("read {MAX_FILL} blocks; the next delivery goes on"),
    }
}

fn missing_block(hash: &str) -> IngestError {
    IngestError::Store(nexus_store::StoreError::Corrupt {
        backend: "history",
        source: format!("block {hash} is referenced by the chain but not stored").into(),
    })
}
