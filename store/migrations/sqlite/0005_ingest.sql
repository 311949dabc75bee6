-- Twin of migrations/postgres/0005_ingest.sql: `updated_seq` is no longer
-- indexed (catching up goes through the event log's `seq` key). SQLite
-- already compares TEXT bytewise and has no fill factor.
DROP INDEX payments_updated_seq;
