//! [`ChainLog`] on postgres: blocks, their escrow transactions and undo
//! images, commits and commit groups.

use super::*;
use crate::row::{self, BLOCK_COLS};

#[async_trait]
impl ChainLog for PgHistory {
    async fn block_known(&self, index_block_hash: &str) -> Result<bool, StoreError> {
        sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM blocks WHERE index_block_hash = $1)")
            .bind(sanitize_text(index_block_hash))
            .fetch_one(&mut *self.conn().await?)
            .await
            .map_err(pg_err)
    }

    async fn commit(&self, batch: CommitBatch) -> Result<Committed, StoreError> {
        if batch.is_empty() {
            // Nothing to write: skip the transaction and its row lock.
            return Ok(Committed {
                last_seq: self.last_seq().await?,
                ..Default::default()
            });
        }
        match &self.group {
            None => {
                let batch = match batch.expect_last_seq {
                    Some(expected) if single_statement(&batch) => {
                        match write_single(&self.pool, batch, expected).await? {
                            Ok(committed) => return Ok(committed),
                            // Another writer moved the log: number it from `meta`.
                            Err(batch) => batch,
                        }
                    }
                    _ => batch,
                };
                let mut tx = self.pool.begin().await.map_err(pg_err)?;
                let committed = write_batch(&mut tx, batch, None).await?;
                tx.commit().await.map_err(pg_err)?;
                Ok(committed)
            }
            // Durable when the group finishes.
            Some(g) => {
                {
                    let mut inner = g.lock().await;
                    if inner.tx.is_none() {
                        return Err(StoreError::rejected(
                            BACKEND,
                            "commit group already finished",
                        ));
                    }
                    if let (Some(last), true) = (inner.last_seq, only_adds_rows(&batch)) {
                        // The group holds the row lock (its first commit took
                        // it): number the events now, write the rows later.
                        let mut batch = batch;
                        let last_seq = batch.assign_seqs(last);
                        inner.pending.add(&batch, last_seq)?;
                        inner.last_seq = Some(last_seq);
                        return Ok(Committed {
                            events: batch.events,
                            payments: batch.payments,
                            last_seq,
                        });
                    }
                }
                let mut c = self.conn().await?;
                let locked = match &c {
                    Conn::Group(inner) => inner.last_seq,
                    Conn::Pooled(_) => None,
                };
                let committed = write_batch(&mut c, batch, locked).await?;
                if let Conn::Group(inner) = &mut c {
                    inner.last_seq = Some(committed.last_seq);
                }
                Ok(committed)
            }
        }
    }

    async fn dead_letter(&self, dl: DeadLetter) -> Result<i64, StoreError> {
        sqlx::query_scalar(
            "INSERT INTO dead_letters (source, reason, payload, at) VALUES ($1, $2, $3, $4) RETURNING id",
        )
        .bind(sanitize_text(&dl.source))
        .bind(sanitize_text(&dl.reason))
        .bind(sanitize_text(&dl.payload))
        .bind(sanitize_text(&dl.at))
        .fetch_one(&mut *self.conn().await?)
        .await
        .map_err(pg_err)
    }

    async fn payments_for_txids(
        &self,
        txids: &[String],
    ) -> Result<Vec<(String, PaymentId)>, StoreError> {
        if txids.is_empty() {
            return Ok(Vec::new());
        }
        let txids: Vec<String> = unique(txids.iter().map(|t| sanitize_text(t)));
        // In the order asked, one row per known txid.
        let rows: Vec<(String, String)> = sqlx::query_as(
            "SELECT m.txid, m.payment_id FROM UNNEST($1::text[]) WITH ORDINALITY AS q(txid, ord) \
             JOIN mempool_txs m ON m.txid = q.txid ORDER BY q.ord",
        )
        .bind(txids)
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(pg_err)?;
        rows.into_iter()
            .map(|(txid, pid)| {
                Ok((
                    txid,
                    pid.parse().map_err(|e| StoreError::corrupt(BACKEND, e))?,
                ))
            })
            .collect()
    }

    async fn tip(&self) -> Result<Option<BlockRecord>, StoreError> {
        // Canonical blocks first; among them the highest, then the newest.
        let row = sqlx::query(
            "SELECT index_block_hash, parent_index_block_hash, block_hash, height, burn_height, \
             burn_hash, time, canonical FROM blocks \
             ORDER BY canonical DESC, height DESC, inserted DESC LIMIT 1",
        )
        .fetch_optional(&mut *self.conn().await?)
        .await
        .map_err(pg_err)?;
        let Some(r) = row else { return Ok(None) };
        let i64_col = |name: &str| {
            r.try_get::<i64, _>(name)
                .map_err(pg_err)
                .and_then(|v| C.read_int(v))
        };
        Ok(Some(BlockRecord {
            block: BlockRef {
                index_block_hash: r.try_get("index_block_hash").map_err(pg_err)?,
                parent_index_block_hash: r.try_get("parent_index_block_hash").map_err(pg_err)?,
                block_hash: r.try_get("block_hash").map_err(pg_err)?,
                height: i64_col("height")?,
                burn_height: i64_col("burn_height")?,
                burn_hash: r.try_get("burn_hash").map_err(pg_err)?,
                time: i64_col("time")?,
            },
            canonical: r.try_get("canonical").map_err(pg_err)?,
        }))
    }

    async fn get_block(&self, index_block_hash: &str) -> Result<Option<BlockRecord>, StoreError> {
        let row = sqlx::query(&format!(
            "SELECT {BLOCK_COLS} FROM blocks WHERE index_block_hash = $1"
        ))
        .bind(sanitize_text(index_block_hash))
        .fetch_optional(&mut *self.conn().await?)
        .await
        .map_err(pg_err)?;
        row.as_ref().map(row::block).transpose()
    }

    async fn block_txs(&self, index_block_hash: &str) -> Result<Vec<EscrowTx>, StoreError> {
        let body: Option<String> =
            sqlx::query_scalar("SELECT body FROM block_txs WHERE index_block_hash = $1")
                .bind(sanitize_text(index_block_hash))
                .fetch_optional(&mut *self.conn().await?)
                .await
                .map_err(pg_err)?;
        body.map_or(Ok(Vec::new()), |b| C.read_json(&b))
    }

    async fn undo(&self, index_block_hash: &str) -> Result<Vec<UndoRecord>, StoreError> {
        let body: Option<String> =
            sqlx::query_scalar("SELECT body FROM block_undo WHERE index_block_hash = $1")
                .bind(sanitize_text(index_block_hash))
                .fetch_optional(&mut *self.conn().await?)
                .await
                .map_err(pg_err)?;
        body.map_or(Ok(Vec::new()), |b| C.read_undo(index_block_hash, &b))
    }

    async fn recent_blocks(&self, limit: u32) -> Result<Vec<BlockRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {BLOCK_COLS} FROM blocks ORDER BY height DESC, inserted DESC LIMIT $1"
        ))
        .bind(i64::from(limit))
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(pg_err)?;
        rows.iter().map(row::block).collect()
    }

    async fn children(&self, index_block_hash: &str) -> Result<Vec<BlockRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {BLOCK_COLS} FROM blocks WHERE parent_index_block_hash = $1 ORDER BY inserted"
        ))
        .bind(sanitize_text(index_block_hash))
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(pg_err)?;
        rows.iter().map(row::block).collect()
    }

    async fn gaps(&self) -> Result<Vec<BlockRecord>, StoreError> {
        let rows = sqlx::query(&format!(
            "SELECT {BLOCK_COLS} FROM blocks b WHERE NOT b.canonical AND NOT EXISTS \
             (SELECT 1 FROM blocks p WHERE p.index_block_hash = b.parent_index_block_hash) \
             ORDER BY b.height"
        ))
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(pg_err)?;
        rows.iter().map(row::block).collect()
    }

    async fn settle(&self) -> Result<(), StoreError> {
        if self.group.is_some() {
            // The group's first commit takes the lock itself (and then holds it).
            return Ok(());
        }
        // Every commit holds the meta row lock until it ends: taking it waits them out.
        let mut tx = self.pool.begin().await.map_err(pg_err)?;
        sqlx::query("SELECT last_seq FROM meta FOR UPDATE")
            .fetch_one(&mut *tx)
            .await
            .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)
    }

    async fn get_blocks(&self, hashes: &[String]) -> Result<Vec<BlockRecord>, StoreError> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let hashes: Vec<String> = hashes.iter().map(|h| sanitize_text(h)).collect();
        let rows = sqlx::query(&format!(
            "SELECT {BLOCK_COLS} FROM blocks WHERE index_block_hash = ANY($1::text[])"
        ))
        .bind(hashes)
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(pg_err)?;
        rows.iter().map(row::block).collect()
    }

    async fn with_children(&self, hashes: &[String]) -> Result<Vec<String>, StoreError> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let clean: Vec<String> = hashes.iter().map(|h| sanitize_text(h)).collect();
        let found: std::collections::HashSet<String> = sqlx::query_scalar(
            "SELECT DISTINCT parent_index_block_hash FROM blocks \
             WHERE parent_index_block_hash = ANY($1::text[])",
        )
        .bind(&clean)
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(pg_err)?
        .into_iter()
        .collect();
        // Answer in the caller's spelling (`children` matches the sanitized one too).
        Ok(hashes
            .iter()
            .zip(&clean)
            .filter(|(_, c)| found.contains(*c))
            .map(|(h, _)| h.clone())
            .collect())
    }

    async fn block_txs_many(
        &self,
        hashes: &[String],
    ) -> Result<HashMap<String, Vec<EscrowTx>>, StoreError> {
        self.block_sets("block_txs", hashes)
            .await?
            .into_iter()
            .map(|(hash, body)| Ok((hash, C.read_json(&body)?)))
            .collect()
    }

    async fn undo_many(
        &self,
        hashes: &[String],
    ) -> Result<HashMap<String, Vec<UndoRecord>>, StoreError> {
        self.block_sets("block_undo", hashes)
            .await?
            .into_iter()
            .map(|(hash, body)| Ok((hash.clone(), C.read_undo(&hash, &body)?)))
            .collect()
    }

    async fn group(&self) -> Result<Arc<dyn HistoryGroup>, StoreError> {
        if self.group.is_some() {
            return Err(StoreError::rejected(BACKEND, "commit groups do not nest"));
        }
        let tx = self.pool.begin().await.map_err(pg_err)?;
        Ok(Arc::new(PgHistory {
            pool: self.pool.clone(),
            group: Some(Arc::new(Mutex::new(GroupInner {
                tx: Some(tx),
                last_seq: None,
                pending: Rows::default(),
            }))),
        }))
    }
}

/// Drop repeats, keeping first occurrences in order.
pub(super) fn unique(items: impl Iterator<Item = String>) -> Vec<String> {
    let mut seen = std::collections::HashSet::new();
    items.filter(|s| seen.insert(s.clone())).collect()
}

impl PgHistory {
    /// `(block, body)` of each of `hashes` that has a row in `table`
    /// (`block_txs` or `block_undo`, one row per block): one query.
    async fn block_sets(
        &self,
        table: &'static str,
        hashes: &[String],
    ) -> Result<Vec<(String, String)>, StoreError> {
        if hashes.is_empty() {
            return Ok(Vec::new());
        }
        let hashes: Vec<String> = hashes.iter().map(|h| sanitize_text(h)).collect();
        sqlx::query_as(&format!(
            "SELECT index_block_hash, body FROM {table} WHERE index_block_hash = ANY($1::text[])"
        ))
        .bind(hashes)
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(pg_err)
    }
}
