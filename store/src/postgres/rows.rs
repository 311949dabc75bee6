//! The rows a commit inserts or upserts, as the column arrays its `UNNEST`
//! statements bind. A plain commit writes its own; a commit group's commits
//! append theirs to one set, written with one statement per table when
//! anything else runs on the group's transaction or it finishes.
//!
//! Appending commits and writing them at once leaves the tables exactly as
//! writing each commit in turn would: the tables have no triggers or foreign
//! keys, each statement's conflict rule is kept (`DO NOTHING`: the first row
//! of a key stays; `DO UPDATE`: the last one wins, so repeats collapse onto
//! the last) and rows of one table keep their order (`blocks.inserted`).

use std::collections::HashMap;

use sqlx::PgConnection;

use super::{insert_blocks, pg_err, BACKEND, C};
use crate::types::sanitize_text;
use crate::{BlockRecord, CommitBatch, StoreError};
use nexus_core::domain::PaymentId;

/// Rows waiting to be written; see the module doc.
#[derive(Debug, Default)]
pub(super) struct Rows {
    /// In commit order (`inserted` breaks height ties).
    blocks: Vec<BlockRecord>,
    /// One row per block: its escrow transactions (inserted if absent).
    block_txs: Vec<SetRow>,
    /// Upserted: one row per block, its undo records, the last set added.
    undo: Keyed<String, SetRow>,
    mempool: Vec<MempoolRow>,
    /// Upserted: one row per height, the last one added.
    burn_blocks: Keyed<i64, (i64, String)>,
    /// Upserted: one row per payment, the last record added.
    payments: Keyed<PaymentId, PaymentRow>,
    events: Vec<EventRow>,
    /// `meta.last_seq` after the last commit added that had events.
    last_seq: Option<i64>,
}

/// A block's whole set of something, as one JSON array (see migration
/// `0007_block_sets.sql` for the shapes).
#[derive(Debug)]
struct SetRow {
    block: String,
    body: String,
}

#[derive(Debug)]
struct MempoolRow {
    txid: String,
    payment: String,
    function: String,
}

#[derive(Debug)]
struct PaymentRow {
    id: String,
    status: &'static str,
    sender: Option<String>,
    recipient: Option<String>,
    /// The token contract (`Payment::token_contract`), `None` for STX.
    asset: Option<String>,
    updated_seq: i64,
    body: String,
}

#[derive(Debug)]
struct EventRow {
    seq: i64,
    payment: String,
    kind: &'static str,
    body: String,
}

/// Values by key, in first-insertion order, a later value replacing an
/// earlier one in place (what one upsert statement may hold: each key once).
#[derive(Debug)]
struct Keyed<K, V> {
    at: HashMap<K, usize>,
    values: Vec<V>,
}

impl<K, V> Default for Keyed<K, V> {
    fn default() -> Self {
        Keyed {
            at: HashMap::new(),
            values: Vec::new(),
        }
    }
}

impl<K: std::hash::Hash + Eq, V> Keyed<K, V> {
    fn put(&mut self, key: K, value: V) {
        match self.at.get(&key) {
            Some(&i) => self.values[i] = value,
            None => {
                self.at.insert(key, self.values.len());
                self.values.push(value);
            }
        }
    }

    fn take(&mut self) -> Vec<V> {
        self.at.clear();
        std::mem::take(&mut self.values)
    }
}

impl Rows {
    /// Add the rows of `batch`, whose events are numbered up to `last_seq`.
    /// Its canonical flags, undo deletions and fence are not rows: the caller
    /// writes those itself. All or nothing: on an error nothing is added.
    pub fn add(&mut self, batch: &CommitBatch, last_seq: u64) -> Result<(), StoreError> {
        let block_txs = match (&batch.block, batch.block_txs.is_empty()) {
            (_, true) => None,
            (None, false) => {
                return Err(StoreError::rejected(BACKEND, "block_txs without a block"))
            }
            (Some(b), false) => Some(SetRow {
                block: sanitize_text(&b.block.index_block_hash),
                body: C.write_txs(&batch.block_txs)?,
            }),
        };
        let undo = C.write_undo(&batch.undo)?;
        let burn = match &batch.burn_block {
            Some((height, hash)) => Some((C.write_int(*height)?, sanitize_text(hash))),
            None => None,
        };
        let payments = batch
            .payments
            .iter()
            .map(|p| {
                let row = PaymentRow {
                    id: p.payment_id.to_string(),
                    status: p.status.as_str(),
                    sender: p.sender.as_deref().map(sanitize_text),
                    recipient: p.recipient.as_deref().map(sanitize_text),
                    asset: p.token_contract().map(sanitize_text),
                    updated_seq: C.write_int(p.updated_seq)?,
                    body: C.write_json(p)?,
                };
                Ok((p.payment_id, row))
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let events = batch
            .events
            .iter()
            .map(|e| {
                Ok(EventRow {
                    seq: C.write_int(e.seq)?,
                    payment: e.payment_id.to_string(),
                    kind: e.event_type.as_str(),
                    body: C.write_json(e)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        let last_seq = C.write_int(last_seq)?;

        self.blocks.extend(batch.block.iter().cloned());
        self.block_txs.extend(block_txs);
        for (block, body) in undo {
            self.undo.put(block.clone(), SetRow { block, body });
        }
        self.mempool
            .extend(batch.mempool.iter().map(|m| MempoolRow {
                txid: sanitize_text(&m.txid),
                payment: m.payment_id.to_string(),
                function: sanitize_text(&m.function),
            }));
        if let Some((height, hash)) = burn {
            self.burn_blocks.put(height, (height, hash));
        }
        for (id, row) in payments {
            self.payments.put(id, row);
        }
        if !events.is_empty() {
            self.events.extend(events);
            self.last_seq = Some(last_seq);
        }
        Ok(())
    }

    /// `meta.last_seq` already holds the last added seq (the commit moved it
    /// when it took the row lock): do not write it again.
    pub fn meta_written(&mut self) {
        self.last_seq = None;
    }

    pub fn is_empty(&self) -> bool {
        self.blocks.is_empty()
            && self.block_txs.is_empty()
            && self.undo.values.is_empty()
            && self.mempool.is_empty()
            && self.burn_blocks.values.is_empty()
            && self.payments.values.is_empty()
            && self.events.is_empty()
            && self.last_seq.is_none()
    }

    /// Write everything on `c` (inside the caller's transaction), one
    /// statement per table that has rows, and empty the set.
    pub async fn write(&mut self, c: &mut PgConnection) -> Result<(), StoreError> {
        if !self.blocks.is_empty() {
            insert_blocks(&mut *c, &self.blocks).await?;
            self.blocks.clear();
        }
        let txs = std::mem::take(&mut self.block_txs);
        if !txs.is_empty() {
            let (block, body): (Vec<String>, Vec<String>) =
                txs.into_iter().map(|t| (t.block, t.body)).unzip();
            sqlx::query(
                "INSERT INTO block_txs (index_block_hash, body) \
                 SELECT * FROM UNNEST($1::text[], $2::text[]) \
                 ON CONFLICT (index_block_hash) DO NOTHING",
            )
            .bind(block)
            .bind(body)
            .execute(&mut *c)
            .await
            .map_err(pg_err)?;
        }
        let undo = self.undo.take();
        if !undo.is_empty() {
            let (block, body): (Vec<String>, Vec<String>) =
                undo.into_iter().map(|u| (u.block, u.body)).unzip();
            sqlx::query(
                "INSERT INTO block_undo (index_block_hash, body) \
                 SELECT * FROM UNNEST($1::text[], $2::text[]) \
                 ON CONFLICT (index_block_hash) DO UPDATE SET body = EXCLUDED.body",
            )
            .bind(block)
            .bind(body)
            .execute(&mut *c)
            .await
            .map_err(pg_err)?;
        }
        let mempool = std::mem::take(&mut self.mempool);
        if !mempool.is_empty() {
            let n = mempool.len();
            let (mut txid, mut payment, mut function) = (
                Vec::with_capacity(n),
                Vec::with_capacity(n),
                Vec::with_capacity(n),
            );
            for m in mempool {
                txid.push(m.txid);
                payment.push(m.payment);
                function.push(m.function);
            }
            sqlx::query(
                "INSERT INTO mempool_txs (txid, payment_id, function) \
                 SELECT * FROM UNNEST($1::text[], $2::text[], $3::text[]) \
                 ON CONFLICT (txid) DO NOTHING",
            )
            .bind(txid)
            .bind(payment)
            .bind(function)
            .execute(&mut *c)
            .await
            .map_err(pg_err)?;
        }
        let burn = self.burn_blocks.take();
        if !burn.is_empty() {
            let (height, hash): (Vec<i64>, Vec<String>) = burn.into_iter().unzip();
            sqlx::query(
                "INSERT INTO burn_blocks (height, hash) \
                 SELECT * FROM UNNEST($1::bigint[], $2::text[]) \
                 ON CONFLICT (height) DO UPDATE SET hash = EXCLUDED.hash",
            )
            .bind(height)
            .bind(hash)
            .execute(&mut *c)
            .await
            .map_err(pg_err)?;
        }
        let payments = self.payments.take();
        if !payments.is_empty() {
            bind_payments(
                sqlx::query(&payments_upsert(1, "TRUE")),
                payment_columns(payments),
            )
            .execute(&mut *c)
            .await
            .map_err(pg_err)?;
        }
        let events = std::mem::take(&mut self.events);
        if !events.is_empty() {
            bind_events(
                sqlx::query(&events_insert(1, "TRUE")),
                event_columns(events),
            )
            .execute(&mut *c)
            .await
            .map_err(pg_err)?;
        }
        if let Some(last_seq) = self.last_seq.take() {
            sqlx::query("UPDATE meta SET last_seq = $1")
                .bind(last_seq)
                .execute(&mut *c)
                .await
                .map_err(pg_err)?;
        }
        Ok(())
    }
}

/// The payments and events of a single-statement commit
/// ([`Rows::single`]), as the arrays its sub-statements bind, in order.
pub(super) struct Single {
    /// The sub-statements (each an `INSERT` for a `WITH` clause).
    pub statements: Vec<String>,
    /// The parameters they use after `first`.
    pub params: usize,
    payments: Option<PaymentColumns>,
    events: Option<EventColumns>,
}

type PaymentColumns = (
    Vec<String>,
    Vec<&'static str>,
    Vec<Option<String>>,
    Vec<Option<String>>,
    Vec<i64>,
    Vec<String>,
    Vec<Option<String>>,
);
type EventColumns = (Vec<i64>, Vec<String>, Vec<&'static str>, Vec<String>);

/// The upsert of `payments` (the same as [`Rows::write`]'s), its arrays from `$first`.
fn payments_upsert(first: usize, cond: &str) -> String {
    let p: Vec<String> = (first..first + PAYMENT_COLUMNS)
        .map(|i| format!("${i}"))
        .collect();
    format!(
        "INSERT INTO payments (payment_id, status, sender, recipient, updated_seq, body, asset) \
         SELECT * FROM UNNEST({}::text[], {}::text[], {}::text[], {}::text[], {}::bigint[], {}::text[], {}::text[]) \
         WHERE {cond} \
         ON CONFLICT (payment_id) DO UPDATE SET status = EXCLUDED.status, \
         sender = EXCLUDED.sender, recipient = EXCLUDED.recipient, \
         updated_seq = EXCLUDED.updated_seq, body = EXCLUDED.body, asset = EXCLUDED.asset",
        p[0], p[1], p[2], p[3], p[4], p[5], p[6]
    )
}

/// The insert of `payment_events` (the same as [`Rows::write`]'s), its arrays from `$first`.
fn events_insert(first: usize, cond: &str) -> String {
    format!(
        "INSERT INTO payment_events (seq, payment_id, type, body) \
         SELECT * FROM UNNEST(${}::bigint[], ${}::text[], ${}::text[], ${}::text[]) WHERE {cond}",
        first,
        first + 1,
        first + 2,
        first + 3
    )
}

impl Rows {
    /// Take the payments and events (all a single-statement commit holds)
    /// as sub-statements binding from `$first`, each run only if `cond`.
    pub fn single(&mut self, first: usize, cond: &str) -> Result<Single, StoreError> {
        if !(self.blocks.is_empty()
            && self.block_txs.is_empty()
            && self.undo.values.is_empty()
            && self.mempool.is_empty()
            && self.burn_blocks.values.is_empty())
        {
            return Err(StoreError::rejected(
                BACKEND,
                "a single-statement commit holds payments, events and attached rows only",
            ));
        }
        let mut out = Single {
            statements: Vec::new(),
            params: 0,
            payments: None,
            events: None,
        };
        let payments = self.payments.take();
        if !payments.is_empty() {
            out.statements
                .push(payments_upsert(first + out.params, cond));
            out.params += PAYMENT_COLUMNS;
            out.payments = Some(payment_columns(payments));
        }
        let events = std::mem::take(&mut self.events);
        if !events.is_empty() {
            out.statements.push(events_insert(first + out.params, cond));
            out.params += 4;
            out.events = Some(event_columns(events));
        }
        self.last_seq = None;
        Ok(out)
    }
}

type PgQuery<'q> = sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>;

impl Single {
    /// Bind the arrays, in the order of [`Single::statements`].
    pub fn bind(self, mut q: PgQuery<'_>) -> PgQuery<'_> {
        if let Some(c) = self.payments {
            q = bind_payments(q, c);
        }
        if let Some(c) = self.events {
            q = bind_events(q, c);
        }
        q
    }
}

fn payment_columns(payments: Vec<PaymentRow>) -> PaymentColumns {
    let n = payments.len();
    let mut cols: PaymentColumns = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for p in payments {
        cols.0.push(p.id);
        cols.1.push(p.status);
        cols.2.push(p.sender);
        cols.3.push(p.recipient);
        cols.4.push(p.updated_seq);
        cols.5.push(p.body);
        cols.6.push(p.asset);
    }
    cols
}

fn event_columns(events: Vec<EventRow>) -> EventColumns {
    let mut cols: EventColumns = columns4(events.len());
    for e in events {
        cols.0.push(e.seq);
        cols.1.push(e.payment);
        cols.2.push(e.kind);
        cols.3.push(e.body);
    }
    cols
}

fn bind_payments(q: PgQuery<'_>, c: PaymentColumns) -> PgQuery<'_> {
    q.bind(c.0)
        .bind(c.1)
        .bind(c.2)
        .bind(c.3)
        .bind(c.4)
        .bind(c.5)
        .bind(c.6)
}

/// The arrays [`payments_upsert`] binds.
const PAYMENT_COLUMNS: usize = 7;

fn bind_events(q: PgQuery<'_>, c: EventColumns) -> PgQuery<'_> {
    q.bind(c.0).bind(c.1).bind(c.2).bind(c.3)
}

fn columns4<A, B, C, D>(n: usize) -> (Vec<A>, Vec<B>, Vec<C>, Vec<D>) {
    (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    )
}
