//! Escrow blocks from the recorded scenario.

use super::*;

/// p1 of the recorded scenario: its create and its claim, as the real
/// contract ran them.
pub(crate) struct P1 {
    pub(crate) contract_id: String,
    pub(crate) id: String,
    pub(crate) create: RecordedTx,
    pub(crate) claim: RecordedTx,
}

impl P1 {
    pub(crate) fn load() -> P1 {
        let scenario = Scenario::parse(SCENARIO).expect("fixture");
        let find = |function: &str, step: &str| {
            scenario
                .transactions
                .iter()
                .find(|t| t.function == function && t.step.contains(step) && t.success)
                .unwrap_or_else(|| panic!("fixture: no successful {function} {step:?}"))
                .clone()
        };
        let create = find("create-payment", "(p1)");
        let claim = find("claim-payment", "claims p1");
        // The id is create-payment's first argument.
        let raw: Value = serde_json::from_str(SCENARIO).expect("fixture");
        let id = raw["transactions"]
            .as_array()
            .expect("transactions")
            .iter()
            .find(|t| t["txid"] == create.txid.as_str())
            .and_then(|t| t["args"][0]["repr"].as_str())
            .expect("create-payment's id argument")
            .to_string();
        P1 {
            contract_id: scenario.contract_id.clone(),
            id,
            create,
            claim,
        }
    }

    /// `/new_block` at `height` on `fork` (parent on `parent_fork`) mining `mined`
    /// with their recorded results and events (the prints' real `raw_value`s).
    pub(crate) fn block(
        &self,
        fork: &str,
        height: u64,
        parent_fork: &str,
        mined: &[&RecordedTx],
    ) -> String {
        let (txs, events) = block_entries(&self.contract_id, mined);
        block_envelope(fork, height, parent_fork, &txs, &events).to_string()
    }

    /// `/new_block` of an empty block.
    pub(crate) fn empty(&self, fork: &str, height: u64, parent_fork: &str) -> String {
        self.block(fork, height, parent_fork, &[])
    }

    /// `/new_mempool_tx` announcing the create.
    pub(crate) fn announce(&self) -> String {
        json!([self.create.tx_hex]).to_string()
    }
}

/// POST `body` to `path` (200 required); the answer and the events it committed.
pub(crate) async fn deliver(
    node: &TestNode,
    path: &str,
    body: String,
) -> (Value, Vec<PaymentEvent>) {
    let history = node.app().ingestor.history();
    let before = history.last_seq().await.expect("last_seq");
    let answer = node.post_ok(path, body).await;
    let events = history.events_since(before, 10_000).await.expect("events");
    assert_eq!(answer["events"], events.len(), "{answer}");
    (answer, events)
}

/// Deliver a block that must change no payment.
pub(crate) async fn quiet_block(node: &TestNode, body: String) -> Value {
    let (answer, events) = deliver(node, "/new_block", body).await;
    assert!(events.is_empty(), "unexpected events: {events:#?}");
    answer
}

/// The part of a payment event a test can predict.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Ev {
    pub(crate) seq: u64,
    pub(crate) event_type: String,
    pub(crate) status: String,
    pub(crate) txid: Option<String>,
    /// `(height, index_block_hash)` of the event's block.
    pub(crate) block: Option<(u64, String)>,
    pub(crate) confirmations: u64,
    pub(crate) is_final: bool,
    /// `(orphaned index_block_hash, its height, status returned to)`.
    pub(crate) reverted: Option<(String, u64, String)>,
}

impl Ev {
    pub(crate) fn of(e: &PaymentEvent) -> Ev {
        Ev {
            seq: e.seq,
            event_type: e.event_type.as_str().to_string(),
            status: e.status.as_str().to_string(),
            txid: e.txid.clone(),
            block: e
                .block_height
                .map(|h| (h, e.index_block_hash.clone().unwrap_or_default())),
            confirmations: e.confirmations,
            is_final: e.is_final,
            reverted: e.reverted.as_ref().map(|r| {
                (
                    r.index_block_hash.clone(),
                    r.block_height,
                    r.status.as_str().to_string(),
                )
            }),
        }
    }

    pub(crate) fn submitted(seq: u64, txid: &str) -> Ev {
        Ev {
            seq,
            event_type: "payment:submitted".into(),
            status: "submitted".into(),
            txid: Some(txid.into()),
            block: None,
            confirmations: 0,
            is_final: false,
            reverted: None,
        }
    }

    /// A transition mined at `fork`'s `height`, emitted with the tip
    /// `confirmations - 1` blocks above it.
    pub(crate) fn mined(
        seq: u64,
        kind: &str,
        txid: &str,
        fork: &str,
        height: u64,
        confirmations: u64,
    ) -> Ev {
        Ev {
            seq,
            event_type: format!("payment:{kind}"),
            status: kind.into(),
            txid: Some(txid.into()),
            block: Some((height, index_hash(fork, height))),
            confirmations,
            is_final: false,
            reverted: None,
        }
    }

    /// `payment:final` for the transition to `status` mined at `fork`'s `height`.
    pub(crate) fn final_(seq: u64, status: &str, txid: &str, fork: &str, height: u64) -> Ev {
        Ev {
            seq,
            event_type: "payment:final".into(),
            status: status.into(),
            txid: Some(txid.into()),
            block: Some((height, index_hash(fork, height))),
            confirmations: 6,
            is_final: true,
            reverted: None,
        }
    }

    /// `payment:reverted`: the transition `txid` in `fork`'s `height` was
    /// orphaned and the payment went back to `status`.
    pub(crate) fn reverted(seq: u64, status: &str, txid: &str, fork: &str, height: u64) -> Ev {
        Ev {
            seq,
            event_type: "payment:reverted".into(),
            status: status.into(),
            txid: Some(txid.into()),
            block: None,
            confirmations: 0,
            is_final: false,
            reverted: Some((index_hash(fork, height), height, status.into())),
        }
    }
}

pub(crate) fn evs(events: &[PaymentEvent]) -> Vec<Ev> {
    events.iter().map(Ev::of).collect()
}

/// The state store equals history, seqs are gap-free, and the log is `expected`.
pub(crate) async fn assert_log(node: &TestNode, p1: &P1, expected: &[Ev]) -> Snapshot {
    let snap = snapshot(node).await;
    snap.assert_consistent();
    assert_eq!(evs(&snap.events), expected, "the whole event log");
    assert!(snap
        .events
        .iter()
        .all(|e| e.payment_id.to_string() == p1.id));
    snap
}
