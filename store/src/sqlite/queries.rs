//! [`Queries`] on sqlite: payments, events and dead letters as the API reads them.

use super::*;
use nexus_core::domain::token_contract_of;

#[async_trait]
impl Queries for SqliteHistory {
    async fn dead_letters(&self, limit: u32) -> Result<Vec<DeadLetter>, StoreError> {
        self.run(move |c| {
            let mut s = c
                .prepare_cached("SELECT id, source, reason, payload, at FROM dead_letters ORDER BY id DESC LIMIT ?1")
                .map_err(sq_err)?;
            let rows = s
                .query_map([limit], |r| {
                    Ok(DeadLetter {
                        id: r.get(0)?,
                        source: r.get(1)?,
                        reason: r.get(2)?,
                        payload: r.get(3)?,
                        at: r.get(4)?,
                    })
                })
                .map_err(sq_err)?;
            rows.map(|r| r.map_err(sq_err)).collect()
        })
        .await
    }

    async fn get_payment(&self, id: &PaymentId) -> Result<Option<Payment>, StoreError> {
        let id = id.to_string();
        self.run(move |c| {
            let body: Option<String> = c
                .prepare_cached("SELECT body FROM payments WHERE payment_id = ?1")
                .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
                .map_err(sq_err)?;
            body.as_deref().map(|b| C.read_json(b)).transpose()
        })
        .await
    }

    async fn list_payments(&self, filter: &PaymentFilter) -> Result<Vec<Payment>, StoreError> {
        // Only the filters in use become predicates (values always bound), so
        // SQLite can use the matching (column, payment_id) index.
        let mut sql = String::from("SELECT body FROM payments WHERE 1");
        let mut args: Vec<Value> = Vec::new();
        let mut pred = |column_op: &str, value: String| {
            args.push(Value::Text(value));
            sql.push_str(&format!(" AND {column_op} ?{}", args.len()));
        };
        if let Some(s) = &filter.sender {
            pred("sender =", sanitize_text(s));
        }
        if let Some(r) = &filter.recipient {
            pred("recipient =", sanitize_text(r));
        }
        if let Some(st) = filter.status {
            pred("status =", st.as_str().to_string());
        }
        if let Some(a) = &filter.after {
            pred("payment_id >", sanitize_text(a));
        }
        if let Some(a) = &filter.asset {
            // `IS` matches a bound NULL (STX) as well as a token contract,
            // and SQLite still uses the (asset, payment_id) index for it.
            args.push(token_contract_of(a).map_or(Value::Null, |t| Value::Text(sanitize_text(t))));
            sql.push_str(&format!(" AND asset IS ?{}", args.len()));
        }
        args.push(Value::Integer(i64::from(filter.limit)));
        sql.push_str(&format!(" ORDER BY payment_id LIMIT ?{}", args.len()));
        self.run(move |c| {
            let mut s = c.prepare_cached(&sql).map_err(sq_err)?;
            let bodies = s
                .query_map(params_from_iter(args.iter()), |r| r.get::<_, String>(0))
                .map_err(sq_err)?;
            bodies.map(|b| C.read_json(&b.map_err(sq_err)?)).collect()
        })
        .await
    }

    async fn payments_changed_since(&self, seq: u64) -> Result<Vec<Payment>, StoreError> {
        let seq = C.write_int(seq)?;
        self.run(move |c| {
            bodies(
                c,
                "SELECT body FROM payments WHERE payment_id IN \
                 (SELECT payment_id FROM payment_events WHERE seq > ?1) \
                 ORDER BY updated_seq, payment_id",
                params![seq],
            )
        })
        .await
    }

    async fn events_for_payment(&self, id: &PaymentId) -> Result<Vec<PaymentEvent>, StoreError> {
        let id = id.to_string();
        self.run(move |c| {
            bodies(
                c,
                "SELECT body FROM payment_events WHERE payment_id = ?1 ORDER BY seq",
                params![id],
            )
        })
        .await
    }

    async fn events_since(&self, after: u64, limit: u32) -> Result<Vec<PaymentEvent>, StoreError> {
        let after = C.write_int(after)?;
        self.run(move |c| {
            bodies(
                c,
                "SELECT body FROM payment_events WHERE seq > ?1 ORDER BY seq LIMIT ?2",
                params![after, limit],
            )
        })
        .await
    }

    async fn last_seq(&self) -> Result<u64, StoreError> {
        self.run(|c| {
            let last: i64 = c
                .prepare_cached("SELECT last_seq FROM meta WHERE id = 1")
                .and_then(|mut s| s.query_row([], |r| r.get(0)))
                .map_err(sq_err)?;
            C.read_int(last)
        })
        .await
    }

    async fn ping(&self) -> Result<(), StoreError> {
        self.run(|c| {
            c.prepare_cached("SELECT 1")
                .and_then(|mut s| s.query_row([], |r| r.get::<_, i64>(0)))
                .map(|_| ())
                .map_err(sq_err)
        })
        .await
    }
}

/// Run a `SELECT body ...` and decode each JSON body.
pub(super) fn bodies<T: DeserializeOwned>(
    c: &Connection,
    sql: &str,
    params: &[&dyn rusqlite::ToSql],
) -> Result<Vec<T>, StoreError> {
    let mut s = c.prepare_cached(sql).map_err(sq_err)?;
    let rows = s
        .query_map(params, |r| r.get::<_, String>(0))
        .map_err(sq_err)?;
    rows.map(|b| C.read_json(&b.map_err(sq_err)?)).collect()
}
