-- Webhook delivery state (node/src/delivery/webhook). Times are unix milliseconds.

-- The last event seq turned into deliveries (one row, created when webhooks first start).
CREATE TABLE webhook_cursor (
    id SMALLINT PRIMARY KEY CHECK (id = 1),
    seq BIGINT NOT NULL
);

-- One event to one endpoint, until it is answered 2xx or dead-lettered.
CREATE TABLE webhook_deliveries (
    id BIGSERIAL PRIMARY KEY,
    endpoint TEXT NOT NULL,
    event_seq BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    next_attempt_ms BIGINT NOT NULL,
    -- A sender is attempting it until then (another instance skips it).
    lease_until_ms BIGINT NOT NULL DEFAULT 0,
    last_error TEXT,
    created_ms BIGINT NOT NULL,
    delivered_ms BIGINT,
    UNIQUE (endpoint, event_seq)
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (next_attempt_ms) WHERE delivered_ms IS NULL;

-- Deliveries that failed every attempt. A retry puts a copy back into
-- webhook_deliveries and records when.
CREATE TABLE webhook_dead_letters (
    id BIGSERIAL PRIMARY KEY,
    endpoint TEXT NOT NULL,
    event_seq BIGINT NOT NULL,
    event_id TEXT NOT NULL,
    body TEXT NOT NULL,
    attempts INTEGER NOT NULL,
    last_error TEXT,
    created_ms BIGINT NOT NULL,
    failed_ms BIGINT NOT NULL,
    retried_ms BIGINT
);
