//! Generation: raw numbers, interpreted into a valid case. Every raw value is.

use super::*;

// meaningful whatever the others are, so proptest shrinks freely; zero means
// "the simplest choice" (extend the last block, fresh create, first
// deliverable block), so shrunk cases read as straight chains.

#[derive(Debug, Clone)]
pub(crate) struct RawBlock {
    /// `% 4 == 3`: attach to a random block within reach; else to the last one made.
    pub(crate) parent: u8,
    /// `(kind, pick)` per transaction; see [`Case::build`].
    pub(crate) txs: Vec<(u8, u16)>,
}

pub(crate) fn raw_block() -> impl Strategy<Value = RawBlock> {
    let txs = prop_oneof![
        3 => Just(Vec::new()),
        2 => vec((any::<u8>(), any::<u16>()), 1..4),
    ];
    (any::<u8>(), txs).prop_map(|(parent, txs)| RawBlock { parent, txs })
}

pub(crate) fn case_strategy() -> impl Strategy<Value = Case> {
    // Skewed to small trees: most bugs need few blocks, and the big ones are costly.
    let blocks = prop_oneof![
        85 => vec(raw_block(), 1..10),
        13 => vec(raw_block(), 10..50),
        2 => vec(raw_block(), 50..=200),
    ];
    (
        blocks,
        vec(any::<u16>(), 0..200),
        vec((any::<u16>(), any::<u16>()), 0..4),
        1u64..=12,
    )
        .prop_map(|(blocks, order, dups, depth)| Case::build(&blocks, &order, &dups, depth))
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Create,
    Claim,
    Refund,
}

/// One escrow transaction: its print names `payment`, its txid is `txid(tx)`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Op {
    pub(crate) kind: Kind,
    pub(crate) payment: usize,
    pub(crate) tx: usize,
}

#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub(crate) parent: Option<usize>,
    pub(crate) height: u64,
    pub(crate) ops: Vec<Op>,
}

/// A block tree, the order it is delivered in and the confirmation depth.
#[derive(Clone)]
pub(crate) struct Case {
    pub(crate) nodes: Vec<Node>,
    /// Node indices; every node appears after its parent, some more than once.
    pub(crate) deliveries: Vec<usize>,
    pub(crate) depth: u64,
    pub(crate) payments: usize,
}

impl Case {
    pub(crate) fn build(raw: &[RawBlock], order: &[u16], dups: &[(u16, u16)], depth: u64) -> Case {
        let mut nodes: Vec<Node> = Vec::with_capacity(raw.len());
        // Per node, on its ancestry (itself included): payment -> its create's tx, and settled payments.
        let mut created: Vec<BTreeMap<usize, usize>> = Vec::new();
        let mut settled: Vec<BTreeSet<usize>> = Vec::new();
        // Every create and settlement made so far, anywhere: re-mining candidates.
        let mut creates: Vec<Op> = Vec::new();
        let mut settles: Vec<Op> = Vec::new();
        let (mut payments, mut txs) = (0, 0);
        for (i, rb) in raw.iter().enumerate() {
            let parent = match i {
                0 => None,
                _ if rb.parent % 4 == 3 => {
                    let deepest = nodes.iter().map(|n| n.height).max().unwrap_or(0);
                    let reach: Vec<usize> = (0..i)
                        .filter(|&j| nodes[j].height + MAX_FORK >= deepest)
                        .collect();
                    Some(reach[usize::from(rb.parent / 4) % reach.len()])
                }
                // The last block made is always within reach of the deepest.
                _ => Some(i - 1),
            };
            let height = parent.map_or(1, |p| nodes[p].height + 1);
            let (mut c, mut s) = match parent {
                Some(p) => (created[p].clone(), settled[p].clone()),
                None => Default::default(),
            };
            let mut ops = Vec::new();
            for &(kind, pick) in &rb.txs {
                let pick = usize::from(pick);
                let open: Vec<usize> = c.keys().filter(|p| !s.contains(p)).copied().collect();
                let remine_create: Vec<Op> = creates
                    .iter()
                    .filter(|o| !c.contains_key(&o.payment))
                    .copied()
                    .collect();
                let remine_settle: Vec<Op> = settles
                    .iter()
                    .filter(|o| open.contains(&o.payment))
                    .copied()
                    .collect();
                let op = match kind % 8 {
                    3 if !remine_create.is_empty() => remine_create[pick % remine_create.len()],
                    4..=6 if !open.is_empty() => {
                        txs += 1;
                        Op {
                            kind: if kind % 8 == 6 {
                                Kind::Refund
                            } else {
                                Kind::Claim
                            },
                            payment: open[pick % open.len()],
                            tx: txs - 1,
                        }
                    }
                    7 if !remine_settle.is_empty() => remine_settle[pick % remine_settle.len()],
                    _ => {
                        payments += 1;
                        txs += 1;
                        Op {
                            kind: Kind::Create,
                            payment: payments - 1,
                            tx: txs - 1,
                        }
                    }
                };
                match op.kind {
                    Kind::Create => {
                        c.insert(op.payment, op.tx);
                        if !creates.iter().any(|o| o.tx == op.tx) {
                            creates.push(op);
                        }
                    }
                    Kind::Claim | Kind::Refund => {
                        s.insert(op.payment);
                        if !settles.iter().any(|o| o.tx == op.tx) {
                            settles.push(op);
                        }
                    }
                }
                ops.push(op);
            }
            created.push(c);
            settled.push(s);
            nodes.push(Node {
                parent,
                height,
                ops,
            });
        }

        let mut children: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
        for (i, n) in nodes.iter().enumerate() {
            if let Some(p) = n.parent {
                children[p].push(i);
            }
        }
        let mut frontier = vec![0];
        let mut first: Vec<usize> = Vec::with_capacity(nodes.len());
        let mut deliveries = Vec::new();
        for k in 0..nodes.len() {
            let pick = usize::from(order.get(k).copied().unwrap_or(0)) % frontier.len();
            let b = frontier.remove(pick);
            first.push(b);
            deliveries.push(b);
            frontier.extend(&children[b]);
            for &(at, which) in dups {
                if usize::from(at) % nodes.len() == k {
                    deliveries.push(first[usize::from(which) % first.len()]);
                }
            }
        }
        Case {
            nodes,
            deliveries,
            depth,
            payments,
        }
    }
}

impl fmt::Debug for Case {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "confirmation depth {}", self.depth)?;
        for (i, n) in self.nodes.iter().enumerate() {
            let parent = n.parent.map_or("genesis".to_string(), |p| format!("b{p}"));
            let ops: Vec<String> = n
                .ops
                .iter()
                .map(|o| format!("{:?} p{} (tx{})", o.kind, o.payment, o.tx).to_lowercase())
                .collect();
            writeln!(f, "  b{i} h{} <- {parent}: {}", n.height, ops.join(", "))?;
        }
        let order: Vec<String> = self.deliveries.iter().map(|b| format!("b{b}")).collect();
        write!(f, "delivered: {}", order.join(" "))
    }
}
