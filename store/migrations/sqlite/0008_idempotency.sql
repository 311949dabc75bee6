-- Relay idempotency keys in the embedded default (relay/src/idempotency/
-- sqlite.rs), so that a restart keeps them as Redis does in production.
-- `status`/`body` are NULL while the first request is in flight;
-- `expires_ms`: PENDING_TTL after the reservation, KEY_TTL after the answer.
CREATE TABLE idempotency_keys (
    key         TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    status      INTEGER,
    body        TEXT,
    expires_ms  INTEGER NOT NULL
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_ms);
