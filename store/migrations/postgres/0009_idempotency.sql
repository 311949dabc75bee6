-- Relay idempotency keys for a node with PostgreSQL and no Redis
-- (relay/src/idempotency/postgres.rs), so that a restart keeps them as
-- Redis does. `status`/`body` are NULL while the first request is in
-- flight; `expires_ms`: PENDING_TTL after the reservation, KEY_TTL after
-- the answer (Unix milliseconds).
CREATE TABLE idempotency_keys (
    key         TEXT COLLATE "C" PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status      INTEGER,
    body        TEXT,
    expires_ms  BIGINT NOT NULL
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_ms);
