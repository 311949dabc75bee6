//! Blocks that arrive before their parent: held as orphans, connected when
//! the parent lands, and the gap between filled from a stacks-node
//! (`GET /v3/blocks/replay`) when one is configured.

use super::*;

impl Ingestor {
    /// Held blocks stored on top of `hash` (which just arrived) may complete
    /// a branch: fork choice runs on the highest of them, as if it had been
    /// delivered now, and the whole branch is applied in one commit.
    pub(super) async fn connect_held(
        &self,
        cur: &mut Cursor,
        hash: &str,
        out: &mut Outcome,
    ) -> Result<(), IngestError> {
        if cur.group.as_ref().is_some_and(|g| g.childless(hash)) {
            // What `children` would answer: nothing is stored on top of it.
            return Ok(());
        }
        // Breadth first in arrival order, so the first-seen block wins a tie.
        let mut best: Option<Header> = None;
        let mut queue = std::collections::VecDeque::from([hash.to_string()]);
        let mut seen = 0;
        'walk: while let Some(parent) = queue.pop_front() {
            for child in self.hist(cur).children(&parent).await? {
                seen += 1;
                if seen > MAX_CONNECT {
                    break 'walk;
                }
                let h = Cursor::header_of(&child);
                cur.remember(h.clone());
                if best.as_ref().is_none_or(|b| h.height > b.height) {
                    best = Some(h.clone());
                }
                queue.push_back(h.index_block_hash);
            }
        }
        let Some(best) = best else { return Ok(()) };
        if best.canonical {
            return Ok(());
        }
        // It is stored already: hide it from the duplicate check.
        let lookup = |h: &str| {
            (h != best.index_block_hash)
                .then(|| cur.headers.get(h).cloned())
                .flatten()
        };
        let (rollback, apply) = match plan(cur.tip.as_ref(), &best, lookup) {
            Plan::Extend => (Vec::new(), vec![best.index_block_hash.clone()]),
            Plan::Reorg { rollback, apply } => (rollback, apply),
            _ => return Ok(()),
        };
        tracing::info!(tip = %best.index_block_hash, height = best.height, blocks = apply.len(), rolled_back = rollback.len(), "connecting held blocks whose ancestry arrived");
        if !rollback.is_empty() {
            out.reorg_depth = Some(rollback.len() as u64);
        }
        out.events
            .extend(self.switch(cur, rollback, apply, None, &[]).await?);
        Ok(())
    }

    /// Fill the gap below a held block from the RPC, when one is configured:
    /// read the missing parent, its parent, ... until a block we know (or
    /// [`MAX_FILL`] blocks, or half the delivery's time limit), then ingest
    /// them oldest first like observer blocks, so the held block connects
    /// through the usual held-children path. The RPC failing never fails the
    /// delivery: the block stays held, the gap stays open (on `/health`), and
    /// a `metric:gap_fill_stopped:{reason}` counter and a warning say why.
    /// Blocks read before a failure are kept (held), so the next attempt
    /// starts deeper.
    pub(super) async fn fill_gap(
        &self,
        cur: &mut Cursor,
        missing: String,
        nakamoto: bool,
        out: &mut Outcome,
    ) -> Result<(), IngestError> {
        let Some(source) = self.block_source.clone() else {
            return Ok(());
        };
        if self.hist(cur).block_known(&missing).await? {
            // Not a missing block: fork choice refused a chain whose canonical
            // flags disagree with its links. The RPC cannot help with that.
            return Ok(());
        }
        // The other half is for the commits: whatever the RPC does, the
        // delivery must finish in time to be acknowledged.
        let deadline = tokio::time::Instant::now() + self.delivery_timeout / 2;
        let origin = Origin::Rpc { nakamoto };
        let mut want = missing;
        let mut read = 0;
        tracing::info!(missing = %want, "gap: reading the missing blocks from the RPC");
        loop {
            let (chain, stop) = self
                .fetch_ancestors(cur, source.as_ref(), &want, deadline, MAX_FILL - read)
                .await?;
            read += chain.len();
            // Oldest first: each block's parent is stored before it arrives.
            let mut deeper = None;
            for (i, nb) in chain.into_iter().rev().enumerate() {
                let o = self.ingest_block(cur, nb, origin).await?;
                if i == 0 {
                    deeper = o.gap.clone();
                }
                absorb(out, o);
            }
            let stop = match (stop, deeper) {
                (Some(stop), _) => stop,
                // The block we stopped at is held itself: go on below it.
                (None, Some(next)) if read < MAX_FILL => {
                    want = next;
                    continue;
                }
                (None, Some(_)) => Stop::Limit,
                (None, None) => {
                    tracing::info!(blocks = read, "gap filled from the RPC");
                    return Ok(());
                }
            };
            tracing::warn!(
                blocks_read = read,
                missing = %want,
                reason = stop.counter(),
                error = %stop_detail(&stop),
                "gap not filled from the RPC: the block stays held and the gap open"
            );
            self.bump(cur, &[(stop.counter(), 1)]).await?;
            return Ok(());
        }
    }

    /// Read `from` and its ancestors, newest first, until one's parent is a
    /// block we have stored (`None`) or something stops us (`Some`).
    pub(super) async fn fetch_ancestors(
        &self,
        cur: &Cursor,
        source: &dyn BlockSource,
        from: &str,
        deadline: tokio::time::Instant,
        budget: usize,
    ) -> Result<(Vec<NewBlock>, Option<Stop>), IngestError> {
        let mut chain: Vec<NewBlock> = Vec::new();
        let mut want = from.to_string();
        loop {
            if chain.len() >= budget {
                return Ok((chain, Some(Stop::Limit)));
            }
            let mut nb = match tokio::time::timeout_at(deadline, source.block(&want)).await {
                Err(_) => return Ok((chain, Some(Stop::Deadline))),
                Ok(Err(e)) => return Ok((chain, Some(Stop::Rpc(e)))),
                Ok(Ok(None)) => return Ok((chain, Some(Stop::NotFound(want)))),
                Ok(Ok(Some(nb))) => nb,
            };
            if !same_hash(&nb.index_block_hash, &want) {
                let e = BlockReadError::WrongBlock {
                    asked: want,
                    got: nb.index_block_hash,
                };
                return Ok((chain, Some(Stop::Rpc(e))));
            }
            // Stored under the spelling its child refers to it by.
            nb.index_block_hash = want;
            tracing::info!(block = %nb.index_block_hash, height = nb.block_height, "gap: read a missing block from the RPC");
            let parent = nb.parent_index_block_hash.clone();
            chain.push(nb);
            if cur.headers.contains_key(&parent) || self.hist(cur).block_known(&parent).await? {
                return Ok((chain, None));
            }
            want = parent;
        }
    }
}
