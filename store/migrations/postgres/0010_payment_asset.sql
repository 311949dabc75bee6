-- The token a payment moves, for `GET /api/payments?asset=`: the SIP-010
-- contract (`ADDR.contract`, the record's `asset` without `::name`), NULL for
-- STX. Records written before it existed are filled from their JSON body.
ALTER TABLE payments ADD COLUMN asset TEXT COLLATE "C";
UPDATE payments SET asset = split_part(body::json->>'asset', '::', 1)
WHERE body::json->>'asset' IS NOT NULL AND upper(body::json->>'asset') <> 'STX';
CREATE INDEX payments_asset ON payments (asset, payment_id);
