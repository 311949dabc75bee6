-- Relay broadcast schedule (relay/src/store). Times are unix milliseconds.
-- A restart resumes from here: scheduled broadcasts keep their attempt
-- count and next time.

-- One client-signed transaction, until the node has it or it failed for good.
CREATE TABLE relay_broadcasts (
    txid TEXT PRIMARY KEY,
    payment_id TEXT NOT NULL,
    function TEXT NOT NULL,
    -- The signed transaction, exactly as the client sent it.
    tx BLOB NOT NULL,
    request_id TEXT,
    idempotency_key TEXT NOT NULL,
    -- scheduled | submitted | failed
    state TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms INTEGER NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    last_reason TEXT,
    -- JSON, as the node sent it.
    reason_data TEXT,
    -- The provider that last answered.
    provider TEXT
);
CREATE INDEX relay_broadcasts_due ON relay_broadcasts (next_attempt_ms) WHERE state = 'scheduled';
CREATE INDEX relay_broadcasts_payment ON relay_broadcasts (payment_id);

-- Every broadcast attempt and how it ended (shown by GET /api/payments/{id}).
CREATE TABLE relay_attempts (
    txid TEXT NOT NULL,
    attempt INTEGER NOT NULL,
    at_ms INTEGER NOT NULL,
    provider TEXT,
    -- accepted | already_known | retry | failed
    outcome TEXT NOT NULL,
    reason TEXT,
    latency_ms INTEGER NOT NULL,
    next_delay_ms INTEGER,
    PRIMARY KEY (txid, attempt)
);
