//! Which WebSocket connections want an event, indexed by what they filter
//! on, so that emitting an event touches only the connections it matches.
//!
//! Why not one broadcast channel that every connection reads and filters:
//! with 10,000 connections each subscribed to one principal, every event
//! woke 10,000 tasks to deliver it to two of them, and at 1,000 events/s
//! that wake-up storm was the node's whole CPU (`make bench-ws` (b) sustained
//! ~230 events/s). Here an event costs one lookup per filter kind plus one
//! queue push per matching connection.
//!
//! A connection's queue is bounded. When it is full the event is not
//! queued and the connection is marked lagged; it then reads what it missed
//! from the event log (as a lagging broadcast receiver did), so nothing is
//! lost and the emitter never waits.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use tokio::sync::mpsc;

use nexus_core::domain::{PaymentEvent, PaymentId};

use super::filter::Filter;

/// Connection id, unique per hub.
pub type ConnId = u64;

/// Why [`Inbox::recv`] returned no event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Missed {
    /// The queue overflowed: events were not queued; read them from the log.
    Lagged,
    /// The hub is gone (node shutting down).
    Closed,
}

/// The emitting side of one connection's queue.
#[derive(Debug)]
pub struct Outbox<T> {
    tx: mpsc::Sender<T>,
    lagged: Arc<AtomicBool>,
}

/// The receiving side of one connection's queue.
#[derive(Debug)]
pub struct Inbox<T> {
    rx: mpsc::Receiver<T>,
    lagged: Arc<AtomicBool>,
}

/// A connection's queue of `capacity` events.
pub fn queue<T>(capacity: usize) -> (Outbox<T>, Inbox<T>) {
    let (tx, rx) = mpsc::channel(capacity.max(1));
    let lagged = Arc::new(AtomicBool::new(false));
    (
        Outbox {
            tx,
            lagged: lagged.clone(),
        },
        Inbox { rx, lagged },
    )
}

impl<T> Outbox<T> {
    /// Queue `item` without waiting; a full queue marks the connection lagged.
    fn push(&self, item: T) {
        if let Err(mpsc::error::TrySendError::Full(_)) = self.tx.try_send(item) {
            self.lagged.store(true, Ordering::Release);
        }
    }
}

impl<T> Inbox<T> {
    /// Nothing queued and no lag pending: every event routed here so far
    /// has been received.
    pub fn idle(&self) -> bool {
        self.rx.is_empty() && !self.lagged.load(Ordering::Acquire)
    }

    /// The next queued event, or why there is none. A lag is reported as soon
    /// as it is noticed, before the queue is drained: the caller reads the log
    /// up to the hub's head, which covers the dropped events, and the queued
    /// ones are then older than its cursors.
    pub async fn recv(&mut self) -> Result<T, Missed> {
        if self.lagged.swap(false, Ordering::AcqRel) {
            return Err(Missed::Lagged);
        }
        match self.rx.recv().await {
            Some(item) => Ok(item),
            None => Err(Missed::Closed),
        }
    }
}

/// The routing table: for each filter, the connections holding it.
pub struct Routes<T> {
    outboxes: HashMap<ConnId, Outbox<T>>,
    all: Vec<ConnId>,
    payments: HashMap<PaymentId, Vec<ConnId>>,
    principals: HashMap<String, Vec<ConnId>>,
    /// By [`crate::filter::asset_key`].
    assets: HashMap<String, Vec<ConnId>>,
    next: ConnId,
    /// Reused by [`Routes::route`] to dedupe a connection matched twice.
    scratch: Vec<ConnId>,
}

impl<T> Default for Routes<T> {
    fn default() -> Self {
        Routes {
            outboxes: HashMap::new(),
            all: Vec::new(),
            payments: HashMap::new(),
            principals: HashMap::new(),
            assets: HashMap::new(),
            next: 1,
            scratch: Vec::new(),
        }
    }
}

fn remove_id(v: &mut Vec<ConnId>, id: ConnId) {
    if let Some(i) = v.iter().position(|&c| c == id) {
        v.swap_remove(i);
    }
}

impl<T: Clone> Routes<T> {
    /// Register a connection (with no filters yet).
    pub fn connect(&mut self, outbox: Outbox<T>) -> ConnId {
        let id = self.next;
        self.next += 1;
        self.outboxes.insert(id, outbox);
        id
    }

    /// Route events matching `filter` to `conn` (the caller keeps each
    /// filter once per connection).
    pub fn add(&mut self, conn: ConnId, filter: &Filter) {
        let list = match filter {
            Filter::All => &mut self.all,
            Filter::Payment(id) => self.payments.entry(*id).or_default(),
            Filter::Principal(p) => self.principals.entry(p.clone()).or_default(),
            Filter::Asset(a) => self.assets.entry(a.clone()).or_default(),
        };
        if !list.contains(&conn) {
            list.push(conn);
        }
    }

    /// Stop routing `filter`'s events to `conn`.
    pub fn remove(&mut self, conn: ConnId, filter: &Filter) {
        match filter {
            Filter::All => remove_id(&mut self.all, conn),
            Filter::Payment(id) => {
                if let Some(v) = self.payments.get_mut(id) {
                    remove_id(v, conn);
                    if v.is_empty() {
                        self.payments.remove(id);
                    }
                }
            }
            Filter::Principal(p) => {
                if let Some(v) = self.principals.get_mut(p) {
                    remove_id(v, conn);
                    if v.is_empty() {
                        self.principals.remove(p);
                    }
                }
            }
            Filter::Asset(a) => {
                if let Some(v) = self.assets.get_mut(a) {
                    remove_id(v, conn);
                    if v.is_empty() {
                        self.assets.remove(a);
                    }
                }
            }
        }
    }

    /// Forget `conn` and the `filters` it held.
    pub fn disconnect(&mut self, conn: ConnId, filters: &[Filter]) {
        for f in filters {
            self.remove(conn, f);
        }
        self.outboxes.remove(&conn);
    }

    /// Connections registered.
    pub fn len(&self) -> usize {
        self.outboxes.len()
    }

    pub fn is_empty(&self) -> bool {
        self.outboxes.is_empty()
    }

    /// Queue `item` (which carries `event`) for every connection with a
    /// matching filter, once each. Returns how many it was queued for or
    /// found lagging.
    pub fn route(&mut self, event: &PaymentEvent, item: &T) -> usize {
        let mut ids = std::mem::take(&mut self.scratch);
        ids.clear();
        ids.extend_from_slice(&self.all);
        let mut sources = usize::from(!self.all.is_empty());
        let mut take = |list: Option<&Vec<ConnId>>| {
            if let Some(l) = list {
                sources += 1;
                ids.extend_from_slice(l);
            }
        };
        take(self.payments.get(&event.payment_id));
        if !self.assets.is_empty() {
            take(self.assets.get(crate::filter::asset_key(event)));
        }
        if let Some(s) = &event.sender {
            take(self.principals.get(s));
        }
        if let Some(r) = &event.recipient {
            if event.sender.as_ref() != Some(r) {
                take(self.principals.get(r));
            }
        }
        // One list: its ids are distinct. Several: a connection may be on
        // more than one (its `all` and its principal, say).
        if sources > 1 {
            ids.sort_unstable();
            ids.dedup();
        }
        for id in &ids {
            if let Some(o) = self.outboxes.get(id) {
                o.push(item.clone());
            }
        }
        let n = ids.len();
        self.scratch = ids;
        n
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::tests_support::event_of;

    /// Everything a connection would receive now, without waiting.
    fn drain(inbox: &mut Inbox<u64>) -> Vec<Result<u64, Missed>> {
        let mut out = vec![];
        loop {
            if inbox.lagged.swap(false, Ordering::AcqRel) {
                out.push(Err(Missed::Lagged));
            }
            match inbox.rx.try_recv() {
                Ok(v) => out.push(Ok(v)),
                Err(_) => return out,
            }
        }
    }

    #[test]
    fn events_reach_only_matching_connections_once_each() {
        let mut routes = Routes::default();
        let (oa, mut a) = queue(16);
        let (ob, mut b) = queue(16);
        let (oc, mut c) = queue(16);
        let ca = routes.connect(oa);
        let cb = routes.connect(ob);
        let cc = routes.connect(oc);
        routes.add(ca, &Filter::All);
        routes.add(ca, &Filter::Principal("SP_A".into()));
        routes.add(cb, &Filter::Principal("SP_B".into()));
        routes.add(cc, &Filter::Payment(PaymentId([7; 32])));

        assert_eq!(routes.route(&event_of(1, 1, "SP_A", "SP_B"), &1), 2);
        assert_eq!(routes.route(&event_of(2, 7, "SP_X", "SP_Y"), &2), 2);
        assert_eq!(routes.route(&event_of(3, 2, "SP_B", "SP_B"), &3), 2);
        assert_eq!(
            drain(&mut a),
            vec![Ok(1), Ok(2), Ok(3)],
            "all + principal: once each"
        );
        assert_eq!(
            drain(&mut b),
            vec![Ok(1), Ok(3)],
            "sender or recipient; self-payment once"
        );
        assert_eq!(drain(&mut c), vec![Ok(2)]);
    }

    #[test]
    fn asset_routes_reach_only_that_assets_subscribers() {
        let mut routes = Routes::default();
        let (oa, mut a) = queue(16);
        let (ob, mut b) = queue(16);
        let (ca, cb) = (routes.connect(oa), routes.connect(ob));
        let token = "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM.test-sbtc";
        routes.add(ca, &Filter::asset("STX"));
        routes.add(ca, &Filter::Principal("SP_A".into()));
        routes.add(cb, &Filter::asset(token));
        let stx = event_of(1, 1, "SP_A", "SP_B");
        let tok = PaymentEvent {
            asset: Some(format!("{token}::test-sbtc")),
            ..event_of(2, 2, "SP_A", "SP_B")
        };
        assert_eq!(
            routes.route(&stx, &1),
            1,
            "STX: a once (asset and principal)"
        );
        assert_eq!(routes.route(&tok, &2), 2);
        assert_eq!(drain(&mut a), vec![Ok(1), Ok(2)]);
        assert_eq!(drain(&mut b), vec![Ok(2)]);
        routes.remove(cb, &Filter::asset(token));
        assert_eq!(routes.route(&tok, &3), 1);
        assert!(drain(&mut b).is_empty());
    }

    #[test]
    fn remove_and_disconnect_stop_routing() {
        let mut routes = Routes::default();
        let (oa, mut a) = queue(16);
        let ca = routes.connect(oa);
        let p = Filter::Principal("SP_A".into());
        routes.add(ca, &p);
        routes.add(ca, &p);
        assert_eq!(
            routes.route(&event_of(1, 1, "SP_A", "SP_B"), &1),
            1,
            "added twice, routed once"
        );
        routes.remove(ca, &p);
        assert_eq!(routes.route(&event_of(2, 1, "SP_A", "SP_B"), &2), 0);
        assert!(routes.principals.is_empty(), "empty lists are dropped");
        routes.add(ca, &Filter::All);
        routes.disconnect(ca, &[Filter::All]);
        assert!(routes.is_empty() && routes.all.is_empty());
        assert_eq!(routes.route(&event_of(3, 1, "SP_A", "SP_B"), &3), 0);
        assert_eq!(drain(&mut a), vec![Ok(1)]);
    }

    #[test]
    fn a_full_queue_marks_the_connection_lagged_and_never_blocks() {
        let mut routes = Routes::default();
        let (oa, mut a) = queue(2);
        let ca = routes.connect(oa);
        routes.add(ca, &Filter::All);
        for seq in 1..=5 {
            routes.route(&event_of(seq, 1, "SP_A", "SP_B"), &seq);
        }
        // The lag is reported first; the two queued events follow.
        assert_eq!(drain(&mut a), vec![Err(Missed::Lagged), Ok(1), Ok(2)]);
    }

    #[tokio::test]
    async fn recv_reports_lag_then_events_then_close() {
        let (o, mut i) = queue(1);
        o.push(1u64);
        o.push(2u64);
        assert_eq!(i.recv().await, Err(Missed::Lagged));
        assert_eq!(i.recv().await, Ok(1));
        drop(o);
        assert_eq!(i.recv().await, Err(Missed::Closed));
    }
}
