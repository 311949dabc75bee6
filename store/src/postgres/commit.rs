//! Writing one [`CommitBatch`] on postgres, inside a transaction the caller owns.

use super::*;

/// Everything in `batch`, on `c` (inside a transaction the caller owns).
pub(super) async fn write_batch(
    c: &mut PgConnection,
    mut batch: CommitBatch,
    locked_last: Option<u64>,
) -> Result<Committed, StoreError> {
    if let Some(f) = &batch.fence {
        check_fence(&mut *c, f).await?;
    }
    let (last, meta_written) = match locked_last {
        // This transaction holds the row lock already (a group's later commits).
        Some(last) => (last, false),
        // The row lock serialises concurrent committers: seqs stay gap-free.
        // Taken by moving `last_seq` past this batch's events at once: one
        // round trip instead of a locking read and a write at the end.
        None => {
            let n =
                i64::try_from(batch.events.len()).map_err(|e| StoreError::rejected(BACKEND, e))?;
            let after: i64 =
                sqlx::query_scalar("UPDATE meta SET last_seq = last_seq + $1 RETURNING last_seq")
                    .bind(n)
                    .fetch_one(&mut *c)
                    .await
                    .map_err(pg_err)?;
            (C.read_int(after - n)?, true)
        }
    };
    let last_seq = batch.assign_seqs(last);

    if !batch.canonical.is_empty() {
        let (hashes, flags): (Vec<String>, Vec<bool>) = batch
            .canonical
            .iter()
            .map(|(h, c)| (sanitize_text(h), *c))
            .unzip();
        sqlx::query(
            "UPDATE blocks SET canonical = u.c FROM UNNEST($1::text[], $2::bool[]) AS u(h, c) \
             WHERE blocks.index_block_hash = u.h",
        )
        .bind(hashes)
        .bind(flags)
        .execute(&mut *c)
        .await
        .map_err(pg_err)?;
    }
    if !batch.undo_clear.is_empty() {
        let hashes: Vec<String> = batch.undo_clear.iter().map(|h| sanitize_text(h)).collect();
        sqlx::query("DELETE FROM block_undo WHERE index_block_hash = ANY($1::text[])")
            .bind(hashes)
            .execute(&mut *c)
            .await
            .map_err(pg_err)?;
    }
    let mut rows = Rows::default();
    rows.add(&batch, last_seq)?;
    if meta_written {
        rows.meta_written();
    }
    rows.write(&mut *c).await?;
    insert_attached(c, &batch.attached).await?;
    Ok(Committed {
        events: batch.events,
        payments: batch.payments,
        last_seq,
    })
}

/// Raise the fence to `f.token` inside `tx`, or refuse: a higher token was
/// already used, so whoever holds `f` lost the lease. The row lock taken
/// here also orders concurrent fenced writers.
pub(super) async fn check_fence(tx: &mut sqlx::PgConnection, f: &Fence) -> Result<(), StoreError> {
    let raised: Option<i64> = sqlx::query_scalar(
        "INSERT INTO fences (name, token) VALUES ($1, $2) ON CONFLICT (name) DO UPDATE \
         SET token = EXCLUDED.token WHERE fences.token <= EXCLUDED.token RETURNING token",
    )
    .bind(sanitize_text(&f.name))
    .bind(C.write_int(f.token)?)
    .fetch_optional(tx)
    .await
    .map_err(pg_err)?;
    match raised {
        Some(_) => Ok(()),
        None => Err(StoreError::rejected(
            BACKEND,
            format!("fencing token {} of {:?} is stale", f.token, f.name),
        )),
    }
}

/// Many blocks in one statement, in order (`inserted` breaks height ties).
pub(super) async fn insert_blocks(
    c: &mut PgConnection,
    blocks: &[BlockRecord],
) -> Result<(), StoreError> {
    let n = blocks.len();
    let mut cols = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for b in blocks {
        let blk = &b.block;
        cols.0.push(sanitize_text(&blk.index_block_hash));
        cols.1.push(sanitize_text(&blk.parent_index_block_hash));
        cols.2.push(sanitize_text(&blk.block_hash));
        cols.3.push(C.write_int(blk.height)?);
        cols.4.push(C.write_int(blk.burn_height)?);
        cols.5.push(sanitize_text(&blk.burn_hash));
        cols.6.push(C.write_int(blk.time)?);
        cols.7.push(b.canonical);
    }
    sqlx::query(
        "INSERT INTO blocks (index_block_hash, parent_index_block_hash, block_hash, height, \
         burn_height, burn_hash, time, canonical) \
         SELECT h, p, bh, ht, bht, bhs, t, c FROM UNNEST($1::text[], $2::text[], $3::text[], \
         $4::bigint[], $5::bigint[], $6::text[], $7::bigint[], $8::bool[]) \
         WITH ORDINALITY AS u(h, p, bh, ht, bht, bhs, t, c, ord) ORDER BY ord \
         ON CONFLICT (index_block_hash) DO NOTHING",
    )
    .bind(cols.0)
    .bind(cols.1)
    .bind(cols.2)
    .bind(cols.3)
    .bind(cols.4)
    .bind(cols.5)
    .bind(cols.6)
    .bind(cols.7)
    .execute(c)
    .await
    .map_err(pg_err)?;
    Ok(())
}

/// A batch that only adds rows (no fence, no canonical flags, no undo
/// deletions): a commit group may write it later, together with others.
pub(super) fn only_adds_rows(b: &CommitBatch) -> bool {
    b.fence.is_none() && b.canonical.is_empty() && b.undo_clear.is_empty() && b.attached.is_empty()
}

/// Insert attached rows (if absent), one statement per table.
pub(super) async fn insert_attached(
    c: &mut PgConnection,
    attached: &[AttachedRows],
) -> Result<(), StoreError> {
    for a in attached.iter().filter(|a| !a.is_empty()) {
        let sql = attached_insert(a, 1, None)?;
        bind_attached(sqlx::query(&sql), a)
            .execute(&mut *c)
            .await
            .map_err(pg_err)?;
    }
    Ok(())
}

/// `INSERT … SELECT * FROM UNNEST(…) ON CONFLICT DO NOTHING` for `a`, its
/// arrays bound from `$first` on; `only_if`: an extra `WHERE` condition.
/// Names are checked identifiers (constants of the owning component);
/// every value is bound (see [`bind_attached`]).
pub(super) fn attached_insert(
    a: &AttachedRows,
    first: usize,
    only_if: Option<&str>,
) -> Result<String, StoreError> {
    a.check(BACKEND)?;
    let types = a
        .columns
        .iter()
        .enumerate()
        .map(|(i, (_, v))| {
            let ty = match v {
                AttachedValues::Text(_) => "text",
                AttachedValues::BigInt(_) => "bigint",
                AttachedValues::Bytes(_) => "bytea",
            };
            format!("${}::{ty}[]", first + i)
        })
        .collect::<Vec<_>>()
        .join(", ");
    let cond = only_if.map(|c| format!(" WHERE {c}")).unwrap_or_default();
    Ok(format!(
        "INSERT INTO {} ({}) SELECT * FROM UNNEST({types}){cond} ON CONFLICT DO NOTHING",
        a.table,
        a.column_list()
    ))
}

/// Bind `a`'s arrays, in column order, to the query [`attached_insert`] made.
pub(super) fn bind_attached<'q>(
    mut q: sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments>,
    a: &'q AttachedRows,
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    for (_, v) in &a.columns {
        q = match v {
            AttachedValues::Text(v) => q.bind(v),
            AttachedValues::BigInt(v) => q.bind(v),
            AttachedValues::Bytes(v) => q.bind(v),
        };
    }
    q
}

/// Can `batch` be written as one statement ([`write_single`])? Only
/// payments, events and attached rows, with no fence.
pub(super) fn single_statement(b: &CommitBatch) -> bool {
    b.block.is_none()
        && b.block_txs.is_empty()
        && b.mempool.is_empty()
        && b.burn_block.is_none()
        && b.canonical.is_empty()
        && b.undo.is_empty()
        && b.undo_clear.is_empty()
        && b.fence.is_none()
}

/// `batch` in one statement, numbered from `expected` (the caller's view of
/// the log's end): `meta` moves from `expected` and every row is written
/// only if it was still there, all in the statement's own transaction. The
/// relay commits a batch per cycle under the ingest lock, and this is one
/// round trip where the general path takes six (begin, `meta`, a statement
/// per table, commit): on a loaded machine each of those waits to be
/// scheduled on both sides. `Err(batch)`: the log had moved and nothing
/// was written.
pub(super) async fn write_single(
    pool: &PgPool,
    mut batch: CommitBatch,
    expected: u64,
) -> Result<Result<Committed, CommitBatch>, StoreError> {
    let last_seq = batch.assign_seqs(expected);
    let mut rows = Rows::default();
    rows.add(&batch, last_seq)?;
    // Every sub-statement runs only if `meta` was where we expected it.
    let still = "EXISTS (SELECT 1 FROM m)";
    let mut sql =
        "WITH m AS (UPDATE meta SET last_seq = $1 WHERE last_seq = $2 RETURNING last_seq)"
            .to_string();
    let single = rows.single(3, still)?;
    let mut params = 3 + single.params;
    for (i, s) in single.statements.iter().enumerate() {
        sql.push_str(&format!(", r{i} AS ({s})"));
    }
    let attached: Vec<&AttachedRows> = batch.attached.iter().filter(|a| !a.is_empty()).collect();
    for (i, a) in attached.iter().enumerate() {
        let insert = attached_insert(a, params, Some(still))?;
        sql.push_str(&format!(", a{i} AS ({insert})"));
        params += a.columns.len();
    }
    sql.push_str(" SELECT count(*) FROM m");
    let q = sqlx::query(&sql)
        .bind(C.write_int(last_seq)?)
        .bind(C.write_int(expected)?);
    let mut q = single.bind(q);
    for a in &attached {
        q = bind_attached(q, a);
    }
    let applied: i64 = q
        .fetch_one(pool)
        .await
        .map_err(pg_err)?
        .try_get(0)
        .map_err(pg_err)?;
    if applied != 1 {
        return Ok(Err(batch));
    }
    Ok(Ok(Committed {
        events: batch.events,
        payments: batch.payments,
        last_seq,
    }))
}
