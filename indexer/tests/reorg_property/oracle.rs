//! Envelopes and the oracle..

use super::*;

pub(crate) fn contract() -> ContractId {
    CONTRACT.parse().expect("contract id")
}

pub(crate) fn payment_id(n: usize) -> PaymentId {
    let mut id = [0x5a; 32];
    id[24..].copy_from_slice(&(n as u64).to_be_bytes());
    PaymentId(id)
}

pub(crate) fn txid(n: usize) -> String {
    format!("0x{:064x}", 0x7700_0000_0000u64 + n as u64)
}

pub(crate) fn label(node: usize) -> String {
    format!("n{node}")
}

/// The contract's print for `op` mined at `height` (contracts/EVENTS.md).
pub(crate) fn print_hex(op: &Op, height: u64) -> String {
    let name = |s: &str| ClarityName::try_from(s.to_string()).expect("clarity name");
    let person = |i: usize| {
        Value::Principal(PrincipalData::parse(PEOPLE[i % PEOPLE.len()]).expect("principal"))
    };
    let event = match op.kind {
        Kind::Create => "payment-created",
        Kind::Claim => "payment-claimed",
        Kind::Refund => "payment-refunded",
    };
    let p = op.payment;
    let tuple = TupleData::from_data(vec![
        (
            name("event"),
            Value::string_ascii_from_bytes(event.as_bytes().to_vec()).expect("ascii"),
        ),
        (
            name("payment-id"),
            Value::buff_from(payment_id(p).0.to_vec()).expect("buff"),
        ),
        (name("sender"), person(p)),
        (name("recipient"), person(p + 1)),
        (name("amount"), Value::UInt(1_000 + p as u128)),
        (
            name("memo"),
            Value::buff_from(vec![p as u8; p % 3]).expect("buff"),
        ),
        (name("expires-at"), Value::UInt(500)),
        (name("block-height"), Value::UInt(u128::from(height))),
    ])
    .expect("tuple");
    let bytes = Value::Tuple(tuple).serialize_to_vec().expect("serialize");
    format!("0x{}", hex::encode(bytes))
}

/// A `/new_block` body for `node`. Its index hash is unique per node:
/// `block_envelope` derives it from the fork label (`n{node}`) and height.
pub(crate) fn envelope(case: &Case, node: usize) -> Vec<u8> {
    let n = &case.nodes[node];
    let mut txs = Vec::new();
    let mut events = Vec::new();
    for (k, op) in n.ops.iter().enumerate() {
        let id = txid(op.tx);
        // `(ok true)`. No raw_tx: a successful call is decoded from its print.
        let mut tx = tx_entry(&id, k as u32, true, "", "0x0703");
        tx.as_object_mut().expect("object").remove("raw_tx");
        txs.push(tx);
        events.push(print_entry(
            &id,
            k as u32,
            CONTRACT,
            &print_hex(op, n.height),
        ));
    }
    let parent = n.parent.map_or("genesis".to_string(), label);
    let body = block_envelope(&label(node), n.height, &parent, &txs, &events);
    serde_json::to_vec(&body).expect("json")
}

pub(crate) fn ctx(tip_height: u64) -> Ctx {
    Ctx {
        tip_height,
        now: NOW.to_string(),
        source: EventSource::Observer,
    }
}

/// Everything about a case computed without the ingest path.
pub(crate) struct Oracle {
    pub(crate) bodies: Vec<Vec<u8>>,
    pub(crate) hashes: Vec<String>,
    pub(crate) by_hash: HashMap<String, usize>,
    /// Payments after applying each node's whole ancestry, root first (not finalized).
    pub(crate) after: Vec<HashMap<PaymentId, Payment>>,
    pub(crate) pids: Vec<PaymentId>,
}

impl Oracle {
    pub(crate) fn new(case: &Case) -> Result<Oracle, TestCaseError> {
        let contract = contract();
        let mut o = Oracle {
            bodies: Vec::new(),
            hashes: Vec::new(),
            by_hash: HashMap::new(),
            after: Vec::new(),
            pids: (0..case.payments).map(payment_id).collect(),
        };
        for (i, n) in case.nodes.iter().enumerate() {
            let body = envelope(case, i);
            let nb: NewBlock = serde_json::from_slice(&body).expect("own envelope parses");
            let decoded = decode_block(&nb, &contract);
            prop_assert!(decoded.problems.is_empty(), "b{i}: {:?}", decoded.problems);
            prop_assert_eq!(decoded.txs.len(), n.ops.len(), "b{}: escrow txs decoded", i);
            let hash = index_hash(&label(i), n.height);
            prop_assert_eq!(&decoded.block.index_block_hash, &hash);
            let mut state = n.parent.map(|p| o.after[p].clone()).unwrap_or_default();
            apply_block(&mut state, &decoded, &ctx(n.height));
            o.after.push(state);
            o.by_hash.insert(hash.clone(), i);
            o.hashes.push(hash);
            o.bodies.push(body);
        }
        Ok(o)
    }

    pub(crate) fn node(&self, hash: &str) -> Result<usize, TestCaseError> {
        self.by_hash
            .get(hash)
            .copied()
            .ok_or_else(|| TestCaseError::fail(format!("unknown block {hash}")))
    }
}

/// Which nodes are on the chain ending at `tip`.
pub(crate) fn chain_of(case: &Case, tip: usize) -> Vec<bool> {
    let mut on = vec![false; case.nodes.len()];
    let mut at = Some(tip);
    while let Some(b) = at {
        on[b] = true;
        at = case.nodes[b].parent;
    }
    on
}

/// What the property compares of a payment record.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct View {
    pub(crate) status: PaymentStatus,
    pub(crate) created_in: Option<ChainPos>,
    pub(crate) settled_in: Option<ChainPos>,
    pub(crate) is_final: bool,
    pub(crate) sender: Option<String>,
    pub(crate) recipient: Option<String>,
    pub(crate) amount: Option<String>,
}

impl View {
    pub(crate) fn of(p: &Payment) -> View {
        View {
            status: p.status,
            created_in: p.created_in.clone(),
            settled_in: p.settled_in.clone(),
            is_final: p.is_final,
            sender: p.sender.clone(),
            recipient: p.recipient.clone(),
            amount: p.amount.clone(),
        }
    }
}

/// Records the `seq` of every published event.
#[derive(Default)]
pub(crate) struct RecordingBus(pub(crate) Mutex<Vec<u64>>);

impl EventBus for RecordingBus {
    fn publish(&self, event: &PaymentEvent) {
        self.0.lock().expect("bus lock").push(event.seq);
    }
}

pub(crate) fn io<T, E: fmt::Display>(r: Result<T, E>, what: &str) -> Result<T, TestCaseError> {
    r.map_err(|e| TestCaseError::fail(format!("{what}: {e}")))
}
