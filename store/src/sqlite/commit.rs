//! Writing one [`CommitBatch`] on sqlite, inside a transaction the caller owns.

use super::*;

/// Everything in `batch`, on `tx` (a transaction the caller owns).
pub(super) fn write_batch(
    tx: &Connection,
    mut batch: CommitBatch,
) -> Result<Committed, StoreError> {
    if let Some(f) = &batch.fence {
        check_fence(tx, f)?;
    }
    let last: i64 = tx
        .query_row("SELECT last_seq FROM meta WHERE id = 1", [], |r| r.get(0))
        .map_err(sq_err)?;
    let last_seq = batch.assign_seqs(C.read_int(last)?);

    {
        let mut s = tx
            .prepare_cached("UPDATE blocks SET canonical = ?2 WHERE index_block_hash = ?1")
            .map_err(sq_err)?;
        for (hash, canonical) in &batch.canonical {
            s.execute(params![sanitize_text(hash), canonical])
                .map_err(sq_err)?;
        }
        let mut s = tx
            .prepare_cached("DELETE FROM block_undo WHERE index_block_hash = ?1")
            .map_err(sq_err)?;
        for hash in &batch.undo_clear {
            s.execute(params![sanitize_text(hash)]).map_err(sq_err)?;
        }
        // A block's undo set is replaced whole, the last one written wins.
        let mut s = tx
            .prepare_cached(
                "INSERT INTO block_undo (index_block_hash, body) VALUES (?1, ?2) \
                 ON CONFLICT (index_block_hash) DO UPDATE SET body = excluded.body",
            )
            .map_err(sq_err)?;
        for (block, body) in C.write_undo(&batch.undo)? {
            s.execute(params![block, body]).map_err(sq_err)?;
        }
    }

    if let Some(b) = &batch.block {
        let blk = &b.block;
        let (height, burn_height, time) = (
            C.write_int(blk.height)?,
            C.write_int(blk.burn_height)?,
            C.write_int(blk.time)?,
        );
        // A re-delivered block is not an error: the first copy stays.
        tx.prepare_cached(
            "INSERT INTO blocks (index_block_hash, parent_index_block_hash, block_hash, \
             height, burn_height, burn_hash, time, canonical) \
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8) \
             ON CONFLICT (index_block_hash) DO NOTHING",
        )
        .and_then(|mut s| {
            s.execute(params![
                sanitize_text(&blk.index_block_hash),
                sanitize_text(&blk.parent_index_block_hash),
                sanitize_text(&blk.block_hash),
                height,
                burn_height,
                sanitize_text(&blk.burn_hash),
                time,
                b.canonical,
            ])
        })
        .map_err(sq_err)?;
    }
    if !batch.block_txs.is_empty() {
        let Some(b) = &batch.block else {
            return Err(StoreError::rejected(BACKEND, "block_txs without a block"));
        };
        // The first set stored for a block stays (a re-delivered block is no error).
        let body = C.write_txs(&batch.block_txs)?;
        tx.prepare_cached(
            "INSERT INTO block_txs (index_block_hash, body) VALUES (?1, ?2) \
             ON CONFLICT (index_block_hash) DO NOTHING",
        )
        .and_then(|mut s| s.execute(params![sanitize_text(&b.block.index_block_hash), body]))
        .map_err(sq_err)?;
    }
    if !batch.mempool.is_empty() {
        let mut s = tx
            .prepare_cached(
                "INSERT INTO mempool_txs (txid, payment_id, function) VALUES (?1, ?2, ?3) \
                 ON CONFLICT (txid) DO NOTHING",
            )
            .map_err(sq_err)?;
        for m in &batch.mempool {
            s.execute(params![
                sanitize_text(&m.txid),
                m.payment_id.to_string(),
                sanitize_text(&m.function)
            ])
            .map_err(sq_err)?;
        }
    }
    if let Some((height, hash)) = &batch.burn_block {
        let height = C.write_int(*height)?;
        tx.prepare_cached(
            "INSERT INTO burn_blocks (height, hash) VALUES (?1, ?2) \
             ON CONFLICT (height) DO UPDATE SET hash = excluded.hash",
        )
        .and_then(|mut s| s.execute(params![height, sanitize_text(hash)]))
        .map_err(sq_err)?;
    }
    if !batch.payments.is_empty() {
        let mut s = tx
            .prepare_cached(
                "INSERT INTO payments (payment_id, status, sender, recipient, updated_seq, body, asset) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) \
                 ON CONFLICT (payment_id) DO UPDATE SET status = excluded.status, \
                 sender = excluded.sender, recipient = excluded.recipient, \
                 updated_seq = excluded.updated_seq, body = excluded.body, asset = excluded.asset",
            )
            .map_err(sq_err)?;
        for p in last_per_id(&batch.payments) {
            s.execute(params![
                p.payment_id.to_string(),
                p.status.as_str(),
                p.sender.as_deref().map(sanitize_text),
                p.recipient.as_deref().map(sanitize_text),
                C.write_int(p.updated_seq)?,
                C.write_json(p)?,
                p.token_contract().map(sanitize_text),
            ])
            .map_err(sq_err)?;
        }
    }
    if !batch.events.is_empty() {
        let mut s = tx
            .prepare_cached(
                "INSERT INTO payment_events (seq, payment_id, type, body) VALUES (?1, ?2, ?3, ?4)",
            )
            .map_err(sq_err)?;
        for e in &batch.events {
            s.execute(params![
                C.write_int(e.seq)?,
                e.payment_id.to_string(),
                e.event_type.as_str(),
                C.write_json(e)?
            ])
            .map_err(sq_err)?;
        }
        drop(s);
        let last = C.write_int(last_seq)?;
        tx.prepare_cached("UPDATE meta SET last_seq = ?1 WHERE id = 1")
            .and_then(|mut s| s.execute([last]))
            .map_err(sq_err)?;
    }
    for a in batch.attached.iter().filter(|a| !a.is_empty()) {
        insert_attached(tx, a)?;
    }
    Ok(Committed {
        events: batch.events,
        payments: batch.payments,
        last_seq,
    })
}

/// Insert attached rows (if absent), row by row on one cached statement.
pub(super) fn insert_attached(tx: &Connection, a: &AttachedRows) -> Result<(), StoreError> {
    a.check(BACKEND)?;
    let marks = (1..=a.columns.len())
        .map(|i| format!("?{i}"))
        .collect::<Vec<_>>()
        .join(", ");
    // Names are checked identifiers (constants of the owning component);
    // every value is bound.
    let sql = format!(
        "INSERT INTO {} ({}) VALUES ({marks}) ON CONFLICT DO NOTHING",
        a.table,
        a.column_list()
    );
    let mut s = tx.prepare_cached(&sql).map_err(sq_err)?;
    for row in 0..a.len() {
        let values = a.columns.iter().map(|(_, v)| match v {
            AttachedValues::Text(v) => v[row]
                .as_ref()
                .map_or(Value::Null, |t| Value::Text(t.clone())),
            AttachedValues::BigInt(v) => Value::Integer(v[row]),
            AttachedValues::Bytes(v) => Value::Blob(v[row].clone()),
        });
        s.execute(params_from_iter(values)).map_err(sq_err)?;
    }
    Ok(())
}

/// Raise the fence to `f.token` inside the write transaction, or refuse: a
/// higher token was already used, so whoever holds `f` lost the lease.
pub(super) fn check_fence(tx: &Connection, f: &Fence) -> Result<(), StoreError> {
    let changed = tx
        .prepare_cached(
            "INSERT INTO fences (name, token) VALUES (?1, ?2) ON CONFLICT (name) DO UPDATE \
             SET token = excluded.token WHERE fences.token <= excluded.token",
        )
        .and_then(|mut s| {
            s.execute(params![
                sanitize_text(&f.name),
                C.write_int(f.token).unwrap_or(i64::MAX)
            ])
        })
        .map_err(sq_err)?;
    if changed == 0 {
        return Err(StoreError::rejected(
            BACKEND,
            format!("fencing token {} of {:?} is stale", f.token, f.name),
        ));
    }
    Ok(())
}

/// The last record of each payment id, in first-seen order (as PostgreSQL,
/// whose single upsert statement may not touch a row twice).
fn last_per_id(payments: &[Payment]) -> Vec<&Payment> {
    let mut at: HashMap<PaymentId, usize> = HashMap::with_capacity(payments.len());
    let mut out: Vec<&Payment> = Vec::with_capacity(payments.len());
    for p in payments {
        match at.get(&p.payment_id) {
            Some(&i) => out[i] = p,
            None => {
                at.insert(p.payment_id, out.len());
                out.push(p);
            }
        }
    }
    out
}
