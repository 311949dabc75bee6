-- Ingest throughput (BENCHMARKS.md "ingest"): a block's escrow transactions
-- and its undo records were one row each, with their own index entries
-- (and an index on `txid` that nothing reads). They are only ever read or
-- replaced a whole block at a time (to re-apply or roll back a block), so
-- each block now keeps one row of each: a JSON array.
--
-- `block_txs.body`: the block's EscrowTx values in `tx_index` order.
-- `block_undo.body`: `[payment_id, before]` pairs in `payment_id` order,
-- `before` being the payment's record before the block changed it (null
-- when the block introduced the payment).
--
-- STORAGE EXTERNAL: a 1,000-transaction block's array is ~1 MB and goes
-- out of line anyway; compressing it cost more than writing it.
CREATE TABLE block_tx_sets (
    index_block_hash TEXT COLLATE "C" PRIMARY KEY,
    body             TEXT NOT NULL
);
ALTER TABLE block_tx_sets ALTER COLUMN body SET STORAGE EXTERNAL;
INSERT INTO block_tx_sets (index_block_hash, body)
SELECT index_block_hash, '[' || string_agg(body, ',' ORDER BY tx_index) || ']'
FROM block_txs
GROUP BY index_block_hash;
DROP TABLE block_txs;
ALTER TABLE block_tx_sets RENAME TO block_txs;
ALTER INDEX block_tx_sets_pkey RENAME TO block_txs_pkey;

CREATE TABLE block_undo_sets (
    index_block_hash TEXT COLLATE "C" PRIMARY KEY,
    body             TEXT NOT NULL
);
ALTER TABLE block_undo_sets ALTER COLUMN body SET STORAGE EXTERNAL;
INSERT INTO block_undo_sets (index_block_hash, body)
SELECT index_block_hash,
       '[' || string_agg('[' || to_json(payment_id)::text || ',' || coalesce(before, 'null') || ']',
                         ',' ORDER BY payment_id) || ']'
FROM block_undo
GROUP BY index_block_hash;
DROP TABLE block_undo;
ALTER TABLE block_undo_sets RENAME TO block_undo;
ALTER INDEX block_undo_sets_pkey RENAME TO block_undo_pkey;
