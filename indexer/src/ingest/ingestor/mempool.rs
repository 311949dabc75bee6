//! The deliveries that carry no block: a new burn block, mempool
//! transactions seen and dropped. Each is one commit, like a block.

use super::*;

/// Dropped txids looked up as x402 `exact` payments, per delivery: a node
/// drops a handful at a time; a hostile body of millions must not become
/// millions of state reads.
const MAX_EXACT_DROPS: usize = 10_000;

impl Ingestor {
    pub(super) async fn new_burn_block(
        &self,
        cur: &mut Cursor,
        body: &[u8],
    ) -> Result<Outcome, IngestError> {
        let bb: NewBurnBlock = match serde_json::from_slice(body) {
            Ok(b) => b,
            Err(e) => {
                return self
                    .poison(cur, Route::NewBurnBlock, body, error_chain(&e))
                    .await
            }
        };
        let batch = CommitBatch {
            burn_block: Some((bb.burn_block_height, bb.burn_block_hash)),
            ..Default::default()
        };
        self.commit(cur, batch, &[]).await?;
        Ok(Outcome::default())
    }

    pub(super) async fn mempool(
        &self,
        cur: &mut Cursor,
        body: &[u8],
    ) -> Result<Outcome, IngestError> {
        let txs: Vec<String> = match serde_json::from_slice(body) {
            Ok(t) => t,
            Err(e) => {
                return self
                    .poison(cur, Route::NewMempoolTx, body, error_chain(&e))
                    .await
            }
        };
        let mut out = Outcome::default();
        let mut calls = Vec::new();
        for hex_tx in &txs {
            if !hex_tx.contains(self.contract.name_hex()) {
                continue;
            }
            let tx = match decode_tx_hex(hex_tx) {
                Ok(tx) => tx,
                Err(_) => {
                    out.stats.undecodable_txs += 1;
                    continue;
                }
            };
            match decode_escrow_call(&tx, &self.contract) {
                Ok(Some(call)) => calls.push(call),
                Ok(None) => {}
                Err(e) => {
                    let dl = self
                        .poison(cur, Route::NewMempoolTx, hex_tx.as_bytes(), error_chain(&e))
                        .await?;
                    out.dead_letters += dl.dead_letters;
                }
            }
        }
        if self.source == EventSource::Import && !calls.is_empty() {
            // An import replays recorded POSTs: a mempool tx we already
            // recorded is that same POST again, not a re-broadcast after a
            // drop (which the live observer does treat as resubmission).
            let txids: Vec<String> = calls.iter().map(|c| c.txid.clone()).collect();
            let known: std::collections::HashSet<String> = self
                .hist(cur)
                .payments_for_txids(&txids)
                .await?
                .into_iter()
                .map(|(txid, _)| txid)
                .collect();
            calls.retain(|c| !known.contains(&c.txid));
        }
        if calls.is_empty() {
            return Ok(out);
        }
        let ids: Vec<PaymentId> = calls.iter().map(|c| c.payment_id).collect();
        let mut current = self.load(cur, &ids).await?;
        let ctx = self.ctx(0);
        let mut events = Vec::new();
        for call in &calls {
            if let Some((p, ev)) = step(
                current.get(&call.payment_id),
                call.payment_id,
                Input::Mempool { call },
                &ctx,
            ) {
                current.insert(call.payment_id, p);
                events.push(ev);
            }
        }
        let batch = CommitBatch {
            mempool: calls
                .iter()
                .map(|c| MempoolRecord {
                    txid: c.txid.clone(),
                    payment_id: c.payment_id,
                    function: c.function.as_str().to_string(),
                })
                .collect(),
            payments: changed(&current, &events),
            events,
            ..Default::default()
        };
        let counters = counters_for(&batch.events, 0, 0, out.dead_letters);
        out.events = self.commit(cur, batch, &counters.as_refs()).await?;
        Ok(out)
    }

    pub(super) async fn drop_txs(
        &self,
        cur: &mut Cursor,
        body: &[u8],
    ) -> Result<Outcome, IngestError> {
        let drop: DropMempoolTx = match serde_json::from_slice(body) {
            Ok(d) => d,
            Err(e) => {
                return self
                    .poison(cur, Route::DropMempoolTx, body, error_chain(&e))
                    .await
            }
        };
        let mut known = self
            .hist(cur)
            .payments_for_txids(&drop.dropped_txids)
            .await?;
        // x402 `exact` payments are keyed by their txid (the machine moves
        // only those whose record tracks that very transaction).
        known.extend(
            drop.dropped_txids
                .iter()
                .take(MAX_EXACT_DROPS)
                .map(|t| (t.clone(), PaymentId::exact(t))),
        );
        let ids: Vec<PaymentId> = known.iter().map(|(_, id)| *id).collect();
        let mut current = self.load(cur, &ids).await?;
        let ctx = self.ctx(0);
        let mut events = Vec::new();
        for (txid, id) in &known {
            let input = Input::Dropped {
                txid,
                reason: &drop.reason,
                new_txid: drop.new_txid.as_deref(),
            };
            if let Some((p, ev)) = step(current.get(id), *id, input, &ctx) {
                current.insert(*id, p);
                events.push(ev);
            }
        }
        if events.is_empty() {
            return Ok(Outcome::default());
        }
        let counters = counters_for(&events, 0, 0, 0);
        let batch = CommitBatch {
            payments: changed(&current, &events),
            events,
            ..Default::default()
        };
        let events = self.commit(cur, batch, &counters.as_refs()).await?;
        Ok(Outcome {
            events,
            ..Default::default()
        })
    }
}
