//! [`Proofs`] on postgres: proofs of settlement, fenced by the verifier's lease.

use super::*;

#[async_trait]
impl Proofs for PgHistory {
    async fn put_proofs(&self, proofs: &[Proof], fence: Option<&Fence>) -> Result<(), StoreError> {
        if proofs.is_empty() {
            return Ok(());
        }
        let mut ids = Vec::with_capacity(proofs.len());
        let mut bodies = Vec::with_capacity(proofs.len());
        let mut seen = HashMap::with_capacity(proofs.len());
        // One upsert may not touch a row twice: the last proof of an id wins.
        for p in proofs {
            match seen.get(&p.payment_id) {
                Some(&i) => bodies[i] = C.write_json(p)?,
                None => {
                    seen.insert(p.payment_id, ids.len());
                    ids.push(p.payment_id.to_string());
                    bodies.push(C.write_json(p)?);
                }
            }
        }
        let mut tx = self.pool.begin().await.map_err(pg_err)?;
        if let Some(f) = fence {
            check_fence(&mut tx, f).await?;
        }
        sqlx::query(
            "INSERT INTO proofs (payment_id, body) SELECT * FROM UNNEST($1::text[], $2::text[]) \
             ON CONFLICT (payment_id) DO UPDATE SET body = EXCLUDED.body",
        )
        .bind(ids)
        .bind(bodies)
        .execute(&mut *tx)
        .await
        .map_err(pg_err)?;
        tx.commit().await.map_err(pg_err)
    }

    async fn get_proof(&self, id: &PaymentId) -> Result<Option<Proof>, StoreError> {
        let body: Option<String> =
            sqlx::query_scalar("SELECT body FROM proofs WHERE payment_id = $1")
                .bind(id.to_string())
                .fetch_optional(&self.pool)
                .await
                .map_err(pg_err)?;
        body.as_deref().map(|b| C.read_json(b)).transpose()
    }
}
