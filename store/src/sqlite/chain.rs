//! [`ChainLog`] on sqlite: blocks, their escrow transactions and undo
//! images, commits and commit groups.

use super::*;
use crate::row::{self, BLOCK_COLS};

#[async_trait]
impl ChainLog for SqliteHistory {
    async fn block_known(&self, index_block_hash: &str) -> Result<bool, StoreError> {
        let hash = sanitize_text(index_block_hash);
        self.run(move |c| {
            c.prepare_cached("SELECT EXISTS (SELECT 1 FROM blocks WHERE index_block_hash = ?1)")
                .and_then(|mut s| s.query_row([hash], |r| r.get(0)))
                .map_err(sq_err)
        })
        .await
    }

    async fn commit(&self, batch: CommitBatch) -> Result<Committed, StoreError> {
        if batch.is_empty() {
            return Ok(Committed {
                last_seq: self.last_seq().await?,
                ..Default::default()
            });
        }
        let in_group = self.group.is_some();
        self.run(move |c| {
            if in_group {
                // Durable when the group finishes.
                return write_batch(c, batch);
            }
            // IMMEDIATE: take the write lock before reading last_seq.
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sq_err)?;
            let committed = write_batch(&tx, batch)?;
            tx.commit().map_err(sq_err)?;
            Ok(committed)
        })
        .await
    }

    async fn dead_letter(&self, dl: DeadLetter) -> Result<i64, StoreError> {
        self.run(move |c| {
            c.prepare_cached(
                "INSERT INTO dead_letters (source, reason, payload, at) VALUES (?1, ?2, ?3, ?4) RETURNING id",
            )
            .and_then(|mut s| {
                s.query_row(
                    params![
                        sanitize_text(&dl.source),
                        sanitize_text(&dl.reason),
                        sanitize_text(&dl.payload),
                        sanitize_text(&dl.at)
                    ],
                    |r| r.get(0),
                )
            })
            .map_err(sq_err)
        })
        .await
    }

    async fn payments_for_txids(
        &self,
        txids: &[String],
    ) -> Result<Vec<(String, PaymentId)>, StoreError> {
        let mut seen = HashSet::new();
        let txids: Vec<String> = txids
            .iter()
            .map(|t| sanitize_text(t))
            .filter(|t| seen.insert(t.clone()))
            .collect();
        if txids.is_empty() {
            return Ok(Vec::new());
        }
        self.run(move |c| {
            let mut s = c
                .prepare_cached("SELECT payment_id FROM mempool_txs WHERE txid = ?1")
                .map_err(sq_err)?;
            let mut out = Vec::new();
            // In the order asked, one row per known txid.
            for txid in txids {
                let pid: Option<String> = s
                    .query_row([&txid], |r| r.get(0))
                    .optional()
                    .map_err(sq_err)?;
                if let Some(pid) = pid {
                    let pid = pid.parse().map_err(|e| StoreError::corrupt(BACKEND, e))?;
                    out.push((txid, pid));
                }
            }
            Ok(out)
        })
        .await
    }

    async fn tip(&self) -> Result<Option<BlockRecord>, StoreError> {
        self.run(|c| {
            // Canonical blocks first; among them the highest, then the newest.
            let row = c
                .prepare_cached(
                    "SELECT index_block_hash, parent_index_block_hash, block_hash, height, \
                     burn_height, burn_hash, time, canonical FROM blocks \
                     ORDER BY canonical DESC, height DESC, rowid DESC LIMIT 1",
                )
                .and_then(|mut s| {
                    s.query_row([], |r| {
                        Ok((
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                            r.get::<_, i64>(3)?,
                            r.get::<_, i64>(4)?,
                            r.get::<_, String>(5)?,
                            r.get::<_, i64>(6)?,
                            r.get::<_, bool>(7)?,
                        ))
                    })
                    .optional()
                })
                .map_err(sq_err)?;
            let Some((ibh, parent, hash, height, burn_height, burn_hash, time, canonical)) = row
            else {
                return Ok(None);
            };
            Ok(Some(BlockRecord {
                block: BlockRef {
                    index_block_hash: ibh,
                    parent_index_block_hash: parent,
                    block_hash: hash,
                    height: C.read_int(height)?,
                    burn_height: C.read_int(burn_height)?,
                    burn_hash,
                    time: C.read_int(time)?,
                },
                canonical,
            }))
        })
        .await
    }

    async fn get_block(&self, index_block_hash: &str) -> Result<Option<BlockRecord>, StoreError> {
        let hash = sanitize_text(index_block_hash);
        self.run(move |c| {
            let sql = format!("SELECT {BLOCK_COLS} FROM blocks WHERE index_block_hash = ?1");
            Ok(blocks(c, &sql, params![hash])?.pop())
        })
        .await
    }

    async fn block_txs(&self, index_block_hash: &str) -> Result<Vec<EscrowTx>, StoreError> {
        let hash = sanitize_text(index_block_hash);
        self.run(move |c| Ok(tx_set(c, &hash)?.unwrap_or_default()))
            .await
    }

    async fn undo(&self, index_block_hash: &str) -> Result<Vec<UndoRecord>, StoreError> {
        let hash = sanitize_text(index_block_hash);
        self.run(move |c| Ok(undo_set(c, &hash)?.unwrap_or_default()))
            .await
    }

    async fn recent_blocks(&self, limit: u32) -> Result<Vec<BlockRecord>, StoreError> {
        self.run(move |c| {
            let sql = format!(
                "SELECT {BLOCK_COLS} FROM blocks ORDER BY height DESC, rowid DESC LIMIT ?1"
            );
            blocks(c, &sql, params![i64::from(limit)])
        })
        .await
    }

    async fn children(&self, index_block_hash: &str) -> Result<Vec<BlockRecord>, StoreError> {
        let hash = sanitize_text(index_block_hash);
        self.run(move |c| {
            let sql = format!(
                "SELECT {BLOCK_COLS} FROM blocks WHERE parent_index_block_hash = ?1 ORDER BY rowid"
            );
            blocks(c, &sql, params![hash])
        })
        .await
    }

    async fn gaps(&self) -> Result<Vec<BlockRecord>, StoreError> {
        self.run(move |c| {
            let sql = format!(
                "SELECT {BLOCK_COLS} FROM blocks b WHERE NOT b.canonical AND NOT EXISTS \
                 (SELECT 1 FROM blocks p WHERE p.index_block_hash = b.parent_index_block_hash) \
                 ORDER BY b.height"
            );
            blocks(c, &sql, params![])
        })
        .await
    }

    async fn settle(&self) -> Result<(), StoreError> {
        if self.group.is_some() {
            // The group holds the write lock itself.
            return Ok(());
        }
        // IMMEDIATE takes the write lock, so it waits for any other writer.
        self.run(|c| {
            c.transaction_with_behavior(TransactionBehavior::Immediate)
                .and_then(|tx| tx.commit())
                .map_err(sq_err)
        })
        .await
    }

    async fn get_blocks(&self, hashes: &[String]) -> Result<Vec<BlockRecord>, StoreError> {
        if hashes.is_empty() {
            // The common case (a block extending the tip): no blocking-pool hop.
            return Ok(Vec::new());
        }
        let hashes: Vec<String> = hashes.iter().map(|h| sanitize_text(h)).collect();
        // In-process: one blocking call, a cached statement per block.
        self.run(move |c| {
            let sql = format!("SELECT {BLOCK_COLS} FROM blocks WHERE index_block_hash = ?1");
            let mut out = Vec::with_capacity(hashes.len());
            for h in &hashes {
                out.extend(blocks(c, &sql, params![h])?);
            }
            Ok(out)
        })
        .await
    }

    async fn block_txs_many(
        &self,
        hashes: &[String],
    ) -> Result<HashMap<String, Vec<EscrowTx>>, StoreError> {
        self.block_sets(hashes, tx_set).await
    }

    async fn undo_many(
        &self,
        hashes: &[String],
    ) -> Result<HashMap<String, Vec<UndoRecord>>, StoreError> {
        self.block_sets(hashes, undo_set).await
    }

    async fn group(&self) -> Result<Arc<dyn HistoryGroup>, StoreError> {
        if self.group.is_some() {
            return Err(StoreError::rejected(BACKEND, "commit groups do not nest"));
        }
        let path = self.path.clone();
        let shared = Arc::clone(&self.conn);
        let conn = tokio::task::spawn_blocking(move || {
            // A file gets a connection of its own, so readers of `self` keep
            // seeing committed data only; an in-memory database has one.
            let conn = match &path {
                Some(p) => {
                    let c = Connection::open(p).map_err(sq_err)?;
                    configure(&c)?;
                    Arc::new(Mutex::new(c))
                }
                None => shared,
            };
            conn.lock()
                .unwrap_or_else(PoisonError::into_inner)
                .execute_batch("BEGIN IMMEDIATE")
                .map_err(sq_err)?;
            Ok::<_, StoreError>(conn)
        })
        .await
        .map_err(|e| StoreError::unavailable(BACKEND, e))??;
        Ok(Arc::new(SqliteHistory {
            conn: Arc::clone(&conn),
            path: self.path.clone(),
            group: Some(Arc::new(GroupState {
                conn,
                finished: AtomicBool::new(false),
            })),
        }))
    }
}

/// The `body` stored in `table` (`block_txs` or `block_undo`, one row per
/// block) for block `hash`.
fn set_body(c: &Connection, table: &str, hash: &str) -> Result<Option<String>, StoreError> {
    c.prepare_cached(&format!(
        "SELECT body FROM {table} WHERE index_block_hash = ?1"
    ))
    .and_then(|mut s| s.query_row(params![hash], |r| r.get(0)).optional())
    .map_err(sq_err)
}

/// The escrow transactions stored for one block (`None`: no set stored).
fn tx_set(c: &Connection, hash: &str) -> Result<Option<Vec<EscrowTx>>, StoreError> {
    set_body(c, "block_txs", hash)?
        .map(|b| C.read_json(&b))
        .transpose()
}

/// The before-images stored for one block (`None`: no set stored).
fn undo_set(c: &Connection, hash: &str) -> Result<Option<Vec<UndoRecord>>, StoreError> {
    set_body(c, "block_undo", hash)?
        .map(|b| C.read_undo(hash, &b))
        .transpose()
}

impl SqliteHistory {
    /// `read` for each of `hashes`, keeping the blocks that have a set.
    async fn block_sets<T: Send + 'static>(
        &self,
        hashes: &[String],
        read: fn(&Connection, &str) -> Result<Option<T>, StoreError>,
    ) -> Result<HashMap<String, T>, StoreError> {
        if hashes.is_empty() {
            // The common case (a block extending the tip): no blocking-pool hop.
            return Ok(HashMap::new());
        }
        let hashes: Vec<String> = hashes.iter().map(|h| sanitize_text(h)).collect();
        self.run(move |c| {
            let mut out = HashMap::with_capacity(hashes.len());
            for h in hashes {
                if let Some(set) = read(c, &h)? {
                    out.insert(h, set);
                }
            }
            Ok(out)
        })
        .await
    }
}

/// Run a `SELECT {BLOCK_COLS} ...` and build the records.
pub(super) fn blocks(
    c: &Connection,
    sql: &str,
    params: impl rusqlite::Params,
) -> Result<Vec<BlockRecord>, StoreError> {
    let mut s = c.prepare_cached(sql).map_err(sq_err)?;
    let mut rows = s.query(params).map_err(sq_err)?;
    let mut out = Vec::new();
    while let Some(r) = rows.next().map_err(sq_err)? {
        out.push(row::block(r)?);
    }
    Ok(out)
}
