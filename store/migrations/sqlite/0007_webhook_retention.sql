-- Webhook deliveries answered 2xx are kept `webhook_retention_hours`
-- (node/src/delivery/webhook/engine.rs prunes them). This index finds the
-- oldest ones without scanning the table; undelivered rows are not in it.
CREATE INDEX webhook_deliveries_delivered ON webhook_deliveries (delivered_ms)
    WHERE delivered_ms IS NOT NULL;
