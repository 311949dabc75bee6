-- Verifier: proofs of settlement and fencing tokens. The SQLite twin is
-- migrations/sqlite/0003_verifier.sql: keep the two logically identical.

-- One proof per payment (a Proof as JSON), replaced on each check until final.
CREATE TABLE proofs (
    payment_id TEXT COLLATE "C" PRIMARY KEY,
    body       TEXT NOT NULL
);

-- The highest fencing token seen per lease name. A fenced write (the
-- reconciler's corrections and proofs) first raises this row to its own
-- token and is refused if the row is already higher: a leader that lost its
-- lease without knowing it cannot write over its successor.
CREATE TABLE fences (
    name  TEXT PRIMARY KEY,
    token BIGINT NOT NULL
);
