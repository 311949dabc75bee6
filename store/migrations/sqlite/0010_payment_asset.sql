-- Twin of migrations/postgres/0010_payment_asset.sql: the token a payment
-- moves (`ADDR.contract`), NULL for STX, filled for older records from
-- their JSON body.
ALTER TABLE payments ADD COLUMN asset TEXT;
UPDATE payments SET asset = CASE
    WHEN instr(json_extract(body, '$.asset'), '::') > 0
    THEN substr(json_extract(body, '$.asset'), 1, instr(json_extract(body, '$.asset'), '::') - 1)
    ELSE json_extract(body, '$.asset') END
WHERE json_extract(body, '$.asset') IS NOT NULL AND upper(json_extract(body, '$.asset')) <> 'STX';
CREATE INDEX payments_asset ON payments (asset, payment_id);
