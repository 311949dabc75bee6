//! What is compared.

use super::*;

/// The stream: the scenario's 132 deliveries, then empty blocks.
pub(crate) fn stream() -> Vec<Delivery> {
    let scenario = Scenario::parse(SCENARIO).expect("scenario fixture");
    assert_eq!(scenario.contract_id, CONTRACT_ID);
    let mut out = scenario.deliveries();
    assert_eq!(out.len(), 132, "the recorded scenario's deliveries");
    let top = scenario
        .transactions
        .iter()
        .map(|t| t.block_height)
        .max()
        .expect("transactions");
    for h in top + 1..=top + TAIL_BLOCKS {
        out.push(Delivery {
            route: Route::NewBlock,
            body: serde_json::to_vec(&block_envelope("main", h, "main", &[], &[])).expect("json"),
            label: format!("block {h} (empty tail)"),
        });
    }
    out
}

/// The canonical tip after each delivery (the chain is linear).
pub(crate) fn tips(stream: &[Delivery]) -> Vec<Option<String>> {
    let mut tip = None;
    stream
        .iter()
        .map(|d| {
            if d.route == Route::NewBlock {
                let v: Value = serde_json::from_slice(&d.body).expect("block JSON");
                tip = Some(v["index_block_hash"].as_str().expect("hash").to_string());
            }
            tip.clone()
        })
        .collect()
}

/// Wall-clock timestamps are the only thing allowed to differ.
pub(crate) fn timeless_event(mut e: PaymentEvent) -> PaymentEvent {
    e.at.clear();
    e
}

pub(crate) fn timeless_payment(mut p: Payment) -> Payment {
    p.updated_at.clear();
    p
}

pub(crate) fn strip_times(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.remove("at");
            m.remove("updated_at");
            m.values_mut().for_each(strip_times);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_times),
        _ => {}
    }
}

/// Everything compared at the end of a run.
#[derive(Debug, PartialEq)]
pub(crate) struct Outcome {
    /// The whole event log, read from the history store.
    pub(crate) events: Vec<PaymentEvent>,
    /// Every payment, read from the history store.
    pub(crate) payments: Vec<Payment>,
    /// `GET /api/payments?limit=500` and `GET /api/payments/{id}` of each.
    pub(crate) api: Vec<Value>,
}

/// The API's view, read from the live node before it is stopped.
pub(crate) async fn api_view(client: &reqwest::Client, node: &Node) -> Vec<Value> {
    let get = |path: String| {
        let client = client.clone();
        let url = format!("http://{}{path}", node.api);
        async move {
            let resp = client.get(&url).send().await.expect("GET");
            assert_eq!(resp.status(), 200, "GET {url}");
            let mut v: Value = resp.json().await.expect("JSON");
            strip_times(&mut v);
            v
        }
    };
    let list = get("/api/payments?limit=500".to_string()).await;
    assert!(list["next"].is_null(), "more than one page of payments");
    let mut out = vec![list.clone()];
    for p in list["payments"].as_array().expect("payments") {
        let id = p["payment_id"].as_str().expect("payment_id");
        out.push(get(format!("/api/payments/{id}")).await);
    }
    out
}

/// Read the log and the payments from the stores (node stopped), checking
/// `seq` is 1..N and, in production, that Redis holds what history says.
pub(crate) async fn read_outcome(stores: &Stores, api: Vec<Value>) -> Outcome {
    let history = stores.history().await;
    let events = history.events_since(0, 10_000).await.expect("events");
    let last = history.last_seq().await.expect("last_seq");
    let seqs: Vec<u64> = events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=last).collect::<Vec<_>>(), "seq is 1..=last_seq");
    let payments = history
        .list_payments(&PaymentFilter {
            limit: 500,
            ..Default::default()
        })
        .await
        .expect("payments");
    assert!(payments.len() < 500, "more than one page of payments");
    if let Some(state) = stores.state().await {
        assert_eq!(state.last_seq().await.expect("redis seq"), last);
        let ids: Vec<_> = payments.iter().map(|p| p.payment_id).collect();
        let cached = state.get_many(&ids).await.expect("redis records");
        let expected: Vec<Option<Payment>> = payments.iter().cloned().map(Some).collect();
        assert_eq!(cached, expected, "Redis holds what history says");
    }
    Outcome {
        events: events.into_iter().map(timeless_event).collect(),
        payments: payments.into_iter().map(timeless_payment).collect(),
        api,
    }
}

/// The uninterrupted run.
pub(crate) struct Reference {
    pub(crate) outcome: Outcome,
    /// `last_seq` after each delivery.
    pub(crate) seq_after: Vec<u64>,
    pub(crate) tip_after: Vec<Option<String>>,
}

impl Reference {
    /// `(last_seq, tip)` just before delivery `i`.
    pub(crate) fn before(&self, i: usize) -> (u64, Option<String>) {
        match i.checked_sub(1) {
            Some(j) => self.after(j),
            None => (0, None),
        }
    }

    /// `(last_seq, tip)` just after delivery `i`.
    pub(crate) fn after(&self, i: usize) -> (u64, Option<String>) {
        (self.seq_after[i], self.tip_after[i].clone())
    }
}

pub(crate) async fn reference(
    kind: Kind,
    stream: &[Delivery],
    client: &reqwest::Client,
) -> Reference {
    let stores = Stores::create(kind).await;
    let node = Node::start(&stores, client).await;
    let mut seq = 0;
    let mut seq_after = Vec::with_capacity(stream.len());
    for d in stream {
        let body = post_ok(client, &node, d).await;
        seq += body["events"].as_u64().expect("events count");
        seq_after.push(seq);
    }
    let api = api_view(client, &node).await;
    // Everything is acknowledged, hence durable: a kill loses nothing.
    node.kill().await;
    let outcome = read_outcome(&stores, api).await;
    assert_eq!(outcome.events.len() as u64, seq, "answers' event counts");
    assert!(
        outcome
            .events
            .iter()
            .any(|e| e.event_type.as_str() == "payment:final"),
        "the stream makes payments final"
    );
    Reference {
        outcome,
        seq_after,
        tip_after: tips(stream),
    }
}
