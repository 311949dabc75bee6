//! [`Proofs`] on sqlite: proofs of settlement, fenced by the verifier's lease.

use super::*;

#[async_trait]
impl Proofs for SqliteHistory {
    async fn put_proofs(&self, proofs: &[Proof], fence: Option<&Fence>) -> Result<(), StoreError> {
        if proofs.is_empty() {
            return Ok(());
        }
        let rows = proofs
            .iter()
            .map(|p| Ok((p.payment_id.to_string(), C.write_json(p)?)))
            .collect::<Result<Vec<_>, StoreError>>()?;
        let fence = fence.cloned();
        self.run(move |c| {
            let tx = c
                .transaction_with_behavior(TransactionBehavior::Immediate)
                .map_err(sq_err)?;
            if let Some(f) = &fence {
                check_fence(&tx, f)?;
            }
            {
                let mut s = tx
                    .prepare_cached(
                        "INSERT INTO proofs (payment_id, body) VALUES (?1, ?2) \
                         ON CONFLICT (payment_id) DO UPDATE SET body = excluded.body",
                    )
                    .map_err(sq_err)?;
                for (id, body) in &rows {
                    s.execute(params![id, body]).map_err(sq_err)?;
                }
            }
            tx.commit().map_err(sq_err)
        })
        .await
    }

    async fn get_proof(&self, id: &PaymentId) -> Result<Option<Proof>, StoreError> {
        let id = id.to_string();
        self.run(move |c| {
            let body: Option<String> = c
                .prepare_cached("SELECT body FROM proofs WHERE payment_id = ?1")
                .and_then(|mut s| s.query_row([id], |r| r.get(0)).optional())
                .map_err(sq_err)?;
            body.as_deref().map(|b| C.read_json(b)).transpose()
        })
        .await
    }
}
