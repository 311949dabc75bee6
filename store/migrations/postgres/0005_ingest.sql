-- Ingest throughput (BENCHMARKS.md "ingest"): most of a 1,000-event block's
-- commit went into maintaining indexes, chiefly on `payments`.
--
-- 1. Every key here is ASCII (hex hashes and ids, c32 principals, status
--    names): compare bytewise ("C") instead of through the database's locale,
--    which in PostgreSQL 15 calls strcoll for every comparison of C.UTF-8.
ALTER TABLE blocks
    ALTER COLUMN index_block_hash TYPE TEXT COLLATE "C",
    ALTER COLUMN parent_index_block_hash TYPE TEXT COLLATE "C";
ALTER TABLE block_txs
    ALTER COLUMN index_block_hash TYPE TEXT COLLATE "C",
    ALTER COLUMN txid TYPE TEXT COLLATE "C";
ALTER TABLE block_undo
    ALTER COLUMN index_block_hash TYPE TEXT COLLATE "C",
    ALTER COLUMN payment_id TYPE TEXT COLLATE "C";
ALTER TABLE mempool_txs
    ALTER COLUMN txid TYPE TEXT COLLATE "C",
    ALTER COLUMN payment_id TYPE TEXT COLLATE "C";
ALTER TABLE payment_events
    ALTER COLUMN payment_id TYPE TEXT COLLATE "C";
ALTER TABLE payments
    ALTER COLUMN status TYPE TEXT COLLATE "C",
    ALTER COLUMN sender TYPE TEXT COLLATE "C",
    ALTER COLUMN recipient TYPE TEXT COLLATE "C";

-- 2. `updated_seq` is no longer indexed (the state store catches up through
--    the event log's `seq` key instead), so an update that leaves status,
--    sender and recipient alone -- a payment becoming final, the commonest
--    update -- touches no index at all (a HOT update), given free room on
--    the row's page: hence the fill factor.
DROP INDEX payments_updated_seq;
ALTER TABLE payments SET (fillfactor = 70);
