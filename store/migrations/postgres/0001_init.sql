-- History schema (PostgreSQL). The SQLite twin is migrations/sqlite/0001_init.sql:
-- keep the two logically identical. Bodies are serde_json TEXT, not JSONB:
-- JSONB rejects the \u0000 escape that a node's vm_error can carry.

-- Every block we committed, canonical or not (forks are kept for rollbacks).
CREATE TABLE blocks (
    index_block_hash        TEXT PRIMARY KEY,
    parent_index_block_hash TEXT NOT NULL,
    block_hash              TEXT NOT NULL,
    height                  BIGINT NOT NULL,
    burn_height             BIGINT NOT NULL,
    burn_hash               TEXT NOT NULL,
    time                    BIGINT NOT NULL,
    canonical               BOOLEAN NOT NULL,
    -- Insertion order: breaks ties between blocks at the same height.
    inserted                BIGSERIAL NOT NULL
);
CREATE INDEX blocks_tip ON blocks (canonical, height, inserted);

CREATE TABLE burn_blocks (
    height BIGINT PRIMARY KEY,
    hash   TEXT NOT NULL
);

-- Escrow transactions of each block (an EscrowTx as JSON), to re-apply or roll back.
CREATE TABLE block_txs (
    index_block_hash TEXT NOT NULL,
    tx_index         BIGINT NOT NULL,
    txid             TEXT NOT NULL,
    body             TEXT NOT NULL,
    PRIMARY KEY (index_block_hash, tx_index)
);
CREATE INDEX block_txs_txid ON block_txs (txid);

CREATE TABLE mempool_txs (
    txid       TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL,
    function   TEXT NOT NULL,
    first_seen TIMESTAMPTZ NOT NULL DEFAULT now()
);
CREATE INDEX mempool_txs_payment ON mempool_txs (payment_id);

-- Current record of each payment (a Payment as JSON). "C" collation: payment
-- ids are lowercase hex, and keyset pagination must order them bytewise.
CREATE TABLE payments (
    payment_id  TEXT COLLATE "C" PRIMARY KEY,
    status      TEXT NOT NULL,
    sender      TEXT,
    recipient   TEXT,
    updated_seq BIGINT NOT NULL,
    body        TEXT NOT NULL
);
CREATE INDEX payments_sender ON payments (sender, payment_id);
CREATE INDEX payments_recipient ON payments (recipient, payment_id);
CREATE INDEX payments_status ON payments (status, payment_id);
CREATE INDEX payments_updated_seq ON payments (updated_seq);

-- The append-only event log (a PaymentEvent as JSON); seq is gap-free.
CREATE TABLE payment_events (
    seq        BIGINT PRIMARY KEY,
    payment_id TEXT NOT NULL,
    type       TEXT NOT NULL,
    body       TEXT NOT NULL
);
CREATE INDEX payment_events_payment ON payment_events (payment_id, seq);

CREATE TABLE dead_letters (
    id      BIGSERIAL PRIMARY KEY,
    source  TEXT NOT NULL,
    reason  TEXT NOT NULL,
    payload TEXT NOT NULL,
    at      TEXT NOT NULL
);

-- Exactly one row: the seq of the last committed event. Commits lock it.
CREATE TABLE meta (
    id       BOOLEAN PRIMARY KEY DEFAULT TRUE CHECK (id),
    last_seq BIGINT NOT NULL
);
INSERT INTO meta (id, last_seq) VALUES (TRUE, 0);
