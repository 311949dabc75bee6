-- History schema (SQLite). The PostgreSQL twin is migrations/postgres/0001_init.sql:
-- keep the two logically identical. Applied once, guarded by PRAGMA user_version.

-- Every block we committed, canonical or not. Insertion order is the rowid
-- (blocks are never deleted, so it only grows).
CREATE TABLE blocks (
    index_block_hash        TEXT PRIMARY KEY,
    parent_index_block_hash TEXT NOT NULL,
    block_hash              TEXT NOT NULL,
    height                  INTEGER NOT NULL,
    burn_height             INTEGER NOT NULL,
    burn_hash               TEXT NOT NULL,
    time                    INTEGER NOT NULL,
    canonical               INTEGER NOT NULL
);
CREATE INDEX blocks_tip ON blocks (canonical, height);

CREATE TABLE burn_blocks (
    height INTEGER PRIMARY KEY,
    hash   TEXT NOT NULL
);

-- Escrow transactions of each block (an EscrowTx as JSON), to re-apply or roll back.
CREATE TABLE block_txs (
    index_block_hash TEXT NOT NULL,
    tx_index         INTEGER NOT NULL,
    txid             TEXT NOT NULL,
    body             TEXT NOT NULL,
    PRIMARY KEY (index_block_hash, tx_index)
);
CREATE INDEX block_txs_txid ON block_txs (txid);

CREATE TABLE mempool_txs (
    txid       TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL,
    function   TEXT NOT NULL,
    first_seen TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
);
CREATE INDEX mempool_txs_payment ON mempool_txs (payment_id);

-- Current record of each payment (a Payment as JSON). TEXT compares bytewise
-- (BINARY collation), which keyset pagination over hex ids relies on.
CREATE TABLE payments (
    payment_id  TEXT PRIMARY KEY,
    status      TEXT NOT NULL,
    sender      TEXT,
    recipient   TEXT,
    updated_seq INTEGER NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX payments_sender ON payments (sender, payment_id);
CREATE INDEX payments_recipient ON payments (recipient, payment_id);
CREATE INDEX payments_status ON payments (status, payment_id);
CREATE INDEX payments_updated_seq ON payments (updated_seq);

-- The append-only event log (a PaymentEvent as JSON); seq is gap-free.
CREATE TABLE payment_events (
    seq        INTEGER PRIMARY KEY,
    payment_id TEXT NOT NULL,
    type       TEXT NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX payment_events_payment ON payment_events (payment_id, seq);

CREATE TABLE dead_letters (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    source  TEXT NOT NULL,
    reason  TEXT NOT NULL,
    payload TEXT NOT NULL,
    at      TEXT NOT NULL
);

-- Exactly one row: the seq of the last committed event.
CREATE TABLE meta (
    id       INTEGER PRIMARY KEY CHECK (id = 1),
    last_seq INTEGER NOT NULL
);
INSERT INTO meta (id, last_seq) VALUES (1, 0);
