-- Verifier: proofs of settlement and fencing tokens (twin of
-- migrations/postgres/0003_verifier.sql).

-- One proof per payment (a Proof as JSON), replaced on each check until final.
CREATE TABLE proofs (
    payment_id TEXT PRIMARY KEY,
    body       TEXT NOT NULL
);

-- The highest fencing token seen per lease name (see the PostgreSQL twin).
CREATE TABLE fences (
    name  TEXT PRIMARY KEY,
    token INTEGER NOT NULL
);
