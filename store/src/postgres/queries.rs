//! [`Queries`] on postgres: payments, events and dead letters as the API reads them.

use super::*;
use nexus_core::domain::token_contract_of;

#[async_trait]
impl Queries for PgHistory {
    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        let rows = sqlx::query(
            "SELECT id, source, reason, payload, at FROM dead_letters ORDER BY id DESC LIMIT $1",
        )
        .bind(i64::from(limit))
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(pg_err)?;
        rows.iter()
            .map(|r| {
                Ok(DeadLetter {
                    id: r.try_get("id").map_err(pg_err)?,
                    source: r.try_get("source").map_err(pg_err)?,
                    reason: r.try_get("reason").map_err(pg_err)?,
                    payload: r.try_get("payload").map_err(pg_err)?,
                    at: r.try_get("at").map_err(pg_err)?,
                })
            })
            .collect()
    }

    async fn get_payment(&self, id: &PaymentId) -> Result<Option<Payment>, StoreError> {
        let body: Option<String> =
            sqlx::query_scalar("SELECT body FROM payments WHERE payment_id = $1")
                .bind(id.to_string())
                .fetch_optional(&mut *self.conn().await?)
                .await
                .map_err(pg_err)?;
        body.as_deref().map(|b| C.read_json(b)).transpose()
    }

    async fn get_payments(&self, ids: &[PaymentId]) -> Result<Vec<Option<Payment>>, StoreError> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let keys: Vec<String> = ids.iter().map(PaymentId::to_string).collect();
        // Planned for each call (an unnamed statement), never from a cached
        // generic plan: one made while `payments` was nearly empty is a
        // sequential scan comparing every row with every id, and it stays
        // that way as the table grows.
        let rows: Vec<(String, String)> =
            sqlx::query_as("SELECT payment_id, body FROM payments WHERE payment_id = ANY($1)")
                .persistent(false)
                .bind(&keys)
                .fetch_all(&mut *self.conn().await?)
                .await
                .map_err(pg_err)?;
        let found: std::collections::HashMap<String, String> = rows.into_iter().collect();
        keys.iter()
            .map(|k| found.get(k).map(|b| C.read_json(b)).transpose())
            .collect()
    }

    async fn list_payments(&self, filter: &PaymentFilter) -> Result<Vec<Payment>, StoreError> {
        // Only the filters in use become predicates (always bound, never
        // spliced), so each shape gets a plan that uses its index.
        let mut q = QueryBuilder::<Postgres>::new("SELECT body FROM payments WHERE TRUE");
        if let Some(s) = &filter.sender {
            q.push(" AND sender = ").push_bind(sanitize_text(s));
        }
        if let Some(r) = &filter.recipient {
            q.push(" AND recipient = ").push_bind(sanitize_text(r));
        }
        if let Some(st) = filter.status {
            q.push(" AND status = ").push_bind(st.as_str());
        }
        if let Some(a) = &filter.asset {
            match token_contract_of(a) {
                None => q.push(" AND asset IS NULL"),
                Some(t) => q.push(" AND asset = ").push_bind(sanitize_text(t)),
            };
        }
        if let Some(a) = &filter.after {
            q.push(" AND payment_id > ").push_bind(sanitize_text(a));
        }
        q.push(" ORDER BY payment_id LIMIT ")
            .push_bind(i64::from(filter.limit));
        let bodies: Vec<String> = q
            .build_query_scalar()
            .fetch_all(&mut *self.conn().await?)
            .await
            .map_err(pg_err)?;
        bodies.iter().map(|b| C.read_json(b)).collect()
    }

    async fn payments_changed_since(&self, seq: u64) -> Result<Vec<Payment>, StoreError> {
        let bodies: Vec<String> = sqlx::query_scalar(
            // Through the event log's key: every change of a payment is an
            // event, and a catch-up after a failed apply is a short range.
            "SELECT body FROM payments WHERE payment_id IN \
             (SELECT payment_id FROM payment_events WHERE seq > $1) \
             ORDER BY updated_seq, payment_id",
        )
        .bind(C.write_int(seq)?)
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(pg_err)?;
        bodies.iter().map(|b| C.read_json(b)).collect()
    }

    async fn events_for_payment(&self, id: &PaymentId) -> Result<Vec<PaymentEvent>, StoreError> {
        let bodies: Vec<String> = sqlx::query_scalar(
            "SELECT body FROM payment_events WHERE payment_id = $1 ORDER BY seq",
        )
        .bind(id.to_string())
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(pg_err)?;
        bodies.iter().map(|b| C.read_json(b)).collect()
    }

    async fn events_since(&self, after: u64, limit: u32) -> Result<Vec<PaymentEvent>, StoreError> {
        let bodies: Vec<String> = sqlx::query_scalar(
            "SELECT body FROM payment_events WHERE seq > $1 ORDER BY seq LIMIT $2",
        )
        .bind(C.write_int(after)?)
        .bind(i64::from(limit))
        .fetch_all(&mut *self.conn().await?)
        .await
        .map_err(pg_err)?;
        bodies.iter().map(|b| C.read_json(b)).collect()
    }

    async fn last_seq(&self) -> Result<u64, StoreError> {
        let last: i64 = sqlx::query_scalar("SELECT last_seq FROM meta")
            .fetch_one(&mut *self.conn().await?)
            .await
            .map_err(pg_err)?;
        C.read_int(last)
    }

    async fn ping(&self) -> Result<(), StoreError> {
        sqlx::query("SELECT 1")
            .execute(&mut *self.conn().await?)
            .await
            .map(|_| ())
            .map_err(pg_err)
    }
}
