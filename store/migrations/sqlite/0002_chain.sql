-- Chain following: what a rollback needs, and fast lookups of a block's children.
-- `before` is the payment's record (serde_json TEXT) before the block changed
-- it; NULL when the block introduced the payment.
CREATE TABLE block_undo (
    index_block_hash TEXT NOT NULL,
    payment_id       TEXT NOT NULL,
    before           TEXT,
    PRIMARY KEY (index_block_hash, payment_id)
);
CREATE INDEX blocks_parent ON blocks (parent_index_block_hash);
