-- Twin of migrations/postgres/0007_block_sets.sql (SQLite numbers its
-- migrations by `user_version`, so it comes last here): a block's escrow
-- transactions and its undo records become one row per block, a JSON array,
-- since they are only ever read or replaced a whole block at a time.
--
-- `block_txs.body`: the block's EscrowTx values in `tx_index` order.
-- `block_undo.body`: `[payment_id, before]` pairs in `payment_id` order,
-- `before` being the payment's record before the block changed it (null
-- when the block introduced the payment).
--
-- group_concat follows the order of the ordered subquery it reads.
CREATE TABLE block_tx_sets (
    index_block_hash TEXT PRIMARY KEY,
    body             TEXT NOT NULL
);
INSERT INTO block_tx_sets (index_block_hash, body)
SELECT index_block_hash, '[' || group_concat(body, ',') || ']'
FROM (SELECT index_block_hash, body FROM block_txs ORDER BY index_block_hash, tx_index)
GROUP BY index_block_hash;
DROP TABLE block_txs;
ALTER TABLE block_tx_sets RENAME TO block_txs;

CREATE TABLE block_undo_sets (
    index_block_hash TEXT PRIMARY KEY,
    body             TEXT NOT NULL
);
INSERT INTO block_undo_sets (index_block_hash, body)
SELECT index_block_hash,
       '[' || group_concat('[' || json_quote(payment_id) || ',' || coalesce(before, 'null') || ']', ',') || ']'
FROM (SELECT index_block_hash, payment_id, before FROM block_undo ORDER BY index_block_hash, payment_id)
GROUP BY index_block_hash;
DROP TABLE block_undo;
ALTER TABLE block_undo_sets RENAME TO block_undo;
