//! The durable floor of `/new_block` ingest on this machine.
//!
//! stacks-node sends block N+1 only after the 200 for block N, and the 200
//! may only leave once the block's effects are durable. So whatever the
//! design, each block costs at least: parsing its JSON, then writing its
//! payment events, its payments' current records and its block rows to
//! PostgreSQL and committing, and writing the records to Redis.
//!
//! This replays exactly the rows the node wrote during the run, block by
//! block, in the cheapest way there is: a `serde_json::Value` parse (no
//! decoding of transactions or Clarity values), then `COPY` in text format
//! into fresh tables of the node's shape and indexes (inserts only; the node
//! upserts) with one COMMIT, while the same records go to Redis as one plain
//! pipeline (no MULTI), concurrently with the database. The undo rows, the
//! read of current state and the HTTP transfer that the node also needs are
//! left out.
//!
//! Two scopes: [`Scope::Log`] writes only what the spine issue asks history
//! to hold (event log, blocks, escrow transactions), so no design that
//! answers 200 after a durable commit can beat it on this machine;
//! [`Scope::LogAndPayments`] adds the node's `payments` rows, the floor of
//! the node's own schema.

use std::time::{Duration, Instant};

use futures::TryStreamExt;
use sqlx::{Connection, PgConnection};

/// What one block wrote, as `COPY` text and Redis pairs.
pub struct Rows {
    /// `(table, COPY text)` in insertion order.
    copies: Vec<(String, Vec<u8>)>,
    /// `(payment_id, record JSON)`.
    records: Vec<(String, String)>,
}

/// Which of the node's rows a floor writes.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// What the spine issue asks history to hold: the payment event log, the
    /// blocks and their escrow transactions (records in Redis).
    Log,
    /// The log plus the node's `payments` table (the current record per
    /// payment, indexed for the API's `sender`, `recipient` and `status`).
    LogAndPayments,
}

impl Scope {
    fn schema(self) -> &'static str {
        match self {
            Scope::Log => "floor_log",
            Scope::LogAndPayments => "floor_all",
        }
    }
}

/// Where the floor's time went, over the measured blocks.
pub struct Floor {
    pub latencies: Vec<Duration>,
    pub wall: Duration,
    pub parse: Duration,
    pub store: Duration,
    pub postgres: Duration,
    pub redis: Duration,
}

/// Read back what the node committed for each block: `seq_ranges[i]` is the
/// block's `(first, last)` event seq and `heights[i]` its height. A payment
/// the floor has already written goes to the next of several tables of the
/// same shape instead (a claim, a finality mark), so every write stays an
/// insert into a table no larger than the node's.
pub async fn read_rows(pg_url: &str, seq_ranges: &[(u64, u64)], heights: &[u64]) -> Vec<Rows> {
    let mut pg = PgConnection::connect(pg_url).await.expect("bench database");
    // The seq ranges come from the node's answers; the log must agree.
    let (count, max): (i64, Option<i64>) =
        sqlx::query_as("SELECT count(*), max(seq) FROM payment_events")
            .fetch_one(&mut pg)
            .await
            .expect("event count");
    let last = seq_ranges.last().map_or(0, |r| r.1);
    assert_eq!(
        (count as u64, max.unwrap_or(0) as u64),
        (last, last),
        "the event log does not match the blocks' answers"
    );
    // seen[k]: the payment ids already in `payments_{k}`.
    let mut seen: Vec<std::collections::HashSet<String>> = Vec::new();
    let mut out = Vec::with_capacity(seq_ranges.len());
    for (i, &(first, last)) in seq_ranges.iter().enumerate() {
        let in_block =
            format!("SELECT payment_id FROM payment_events WHERE seq BETWEEN {first} AND {last}");
        let block = format!(
            "SELECT index_block_hash FROM blocks WHERE height = {}",
            heights[i]
        );
        let mut copies = Vec::new();
        let events = format!(
            "SELECT * FROM payment_events WHERE seq BETWEEN {first} AND {last} ORDER BY seq"
        );
        copies.push((
            "payment_events".to_string(),
            copy_out(&mut pg, &events).await,
        ));
        let payments = format!("SELECT * FROM payments WHERE payment_id IN ({in_block})");
        let mut levels: Vec<Vec<u8>> = Vec::new();
        for line in copy_out(&mut pg, &payments)
            .await
            .split_inclusive(|b| *b == b'\n')
        {
            let id = line.split(|b| *b == b'\t').next().unwrap_or_default();
            let id = String::from_utf8_lossy(id).into_owned();
            let k = seen
                .iter()
                .position(|s| !s.contains(&id))
                .unwrap_or_else(|| {
                    seen.push(Default::default());
                    seen.len() - 1
                });
            seen[k].insert(id);
            if levels.len() <= k {
                levels.resize(k + 1, Vec::new());
            }
            levels[k].extend_from_slice(line);
        }
        for (k, data) in levels.into_iter().enumerate() {
            if !data.is_empty() {
                copies.push((format!("payments_{k}"), data));
            }
        }
        for (table, select) in [
            (
                "blocks",
                format!("SELECT * FROM blocks WHERE index_block_hash IN ({block})"),
            ),
            (
                "block_txs",
                format!("SELECT * FROM block_txs WHERE index_block_hash IN ({block})"),
            ),
        ] {
            copies.push((table.to_string(), copy_out(&mut pg, &select).await));
        }
        let records: Vec<(String, String)> = sqlx::query_as(&format!(
            "SELECT payment_id, body FROM payments WHERE payment_id IN ({in_block})"
        ))
        .fetch_all(&mut pg)
        .await
        .expect("payment records");
        out.push(Rows { copies, records });
    }
    for scope in [Scope::Log, Scope::LogAndPayments] {
        let schema = scope.schema();
        let mut ddl = vec![format!("CREATE SCHEMA {schema}")];
        for table in ["payment_events", "blocks", "block_txs"] {
            ddl.push(format!(
                "CREATE TABLE {schema}.{table} (LIKE public.{table} INCLUDING ALL)"
            ));
        }
        if scope == Scope::LogAndPayments {
            for k in 0..seen.len() {
                ddl.push(format!(
                    "CREATE TABLE {schema}.payments_{k} (LIKE public.payments INCLUDING ALL) \
                     WITH (fillfactor = 70)"
                ));
            }
        }
        for statement in ddl {
            sqlx::query(&statement)
                .execute(&mut pg)
                .await
                .expect("floor table");
        }
    }
    pg.close().await.ok();
    out
}

async fn copy_out(pg: &mut PgConnection, select: &str) -> Vec<u8> {
    let mut stream = pg
        .copy_out_raw(&format!("COPY ({select}) TO STDOUT"))
        .await
        .expect("COPY TO");
    let mut buf = Vec::new();
    while let Some(chunk) = stream.try_next().await.expect("COPY data") {
        buf.extend_from_slice(&chunk);
    }
    buf
}

/// Replay `rows` (one per payload) block by block, the tables of `scope`
/// only; the first `warmup` are not counted.
pub async fn measure(
    scope: Scope,
    pg_url: &str,
    redis_url: &str,
    redis_prefix: &str,
    payloads: &[Vec<u8>],
    rows: &[Rows],
    warmup: usize,
) -> Floor {
    let mut pg = PgConnection::connect(pg_url).await.expect("bench database");
    let client = redis::Client::open(redis_url).expect("redis url");
    let redis = client
        .get_multiplexed_tokio_connection()
        .await
        .expect("redis");
    let mut floor = Floor {
        latencies: Vec::new(),
        wall: Duration::ZERO,
        parse: Duration::ZERO,
        store: Duration::ZERO,
        postgres: Duration::ZERO,
        redis: Duration::ZERO,
    };
    for (i, (payload, block)) in payloads.iter().zip(rows).enumerate() {
        let t0 = Instant::now();
        let v: serde_json::Value = serde_json::from_slice(payload).expect("valid JSON");
        std::hint::black_box(&v);
        drop(v);
        let parsed = t0.elapsed();

        let mut pipe = redis::pipe();
        for (id, json) in &block.records {
            pipe.set(
                format!("{redis_prefix}{}:payment:{id}", scope.schema()),
                json,
            )
            .ignore();
        }
        let mut con = redis.clone();
        let redis_write = async {
            let t = Instant::now();
            pipe.query_async::<()>(&mut con)
                .await
                .expect("redis pipeline");
            t.elapsed()
        };
        let pg_write = async {
            let t = Instant::now();
            let mut tx = pg.begin().await.expect("BEGIN");
            for (table, data) in &block.copies {
                if scope == Scope::Log && table.starts_with("payments_") {
                    continue;
                }
                let mut copy = tx
                    .copy_in_raw(&format!("COPY {}.{table} FROM STDIN", scope.schema()))
                    .await
                    .expect("COPY FROM");
                copy.send(data.as_slice()).await.expect("COPY data");
                copy.finish().await.expect("COPY end");
            }
            tx.commit().await.expect("COMMIT");
            t.elapsed()
        };
        let t1 = Instant::now();
        let (pg_took, redis_took) = tokio::join!(pg_write, redis_write);
        let stored = t1.elapsed();
        let took = t0.elapsed();
        if i >= warmup {
            floor.latencies.push(took);
            floor.wall += took;
            floor.parse += parsed;
            floor.store += stored;
            floor.postgres += pg_took;
            floor.redis += redis_took;
        }
    }
    pg.close().await.ok();
    floor
}
