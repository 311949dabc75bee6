//! The node's one ordered, gap-free stream of committed events, which every
//! WebSocket connection subscribes to.
//!
//! Sources: the in-process bus (events this node committed) and, with Redis,
//! the fan-out channel (events any instance committed). Both may lose or
//! repeat events (a lagging broadcast receiver, a dropped pub/sub
//! connection, our own events arriving twice), so the hub keeps `head`, the
//! highest `seq` it has emitted, drops anything at or below it, and reads
//! the event log for anything missing before it emits a later event. A
//! periodic check of the log's last `seq` closes a gap that no later event
//! reveals (the last message lost on a pub/sub reconnect).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{broadcast, mpsc};
use tokio_util::sync::CancellationToken;

use nexus_core::domain::PaymentEvent;
use nexus_store::{History, StoreError};

use super::filter::Filter;
use super::jsonrpc::notification_text;
use super::metrics::DeliveryMetrics;
use super::routes::{self, ConnId, Inbox, Missed, Routes};

/// Events read from the log per query when filling a gap.
const PAGE: u32 = 1000;

/// One emitted event with its notification text, serialized once for every connection.
#[derive(Debug)]
pub struct Item {
    pub event: PaymentEvent,
    /// The JSON-RPC notification (see [`notification_text`]).
    pub frame: String,
}

/// Handle to the stream; cheap to clone.
#[derive(Clone)]
pub struct Hub {
    inner: Arc<Inner>,
}

struct Inner {
    /// Every event, for consumers that want them all (webhooks).
    tx: broadcast::Sender<Arc<Item>>,
    /// WebSocket connections, by what they filter on. Emitting holds this
    /// lock while it moves `head` and routes, so a connection that
    /// registers a filter and reads `head` under it gets every later event
    /// routed to it and finds every earlier one in the log: no gap at the seam.
    routes: Mutex<Routes<Arc<Item>>>,
    /// Events a connection's queue holds before it must read the log.
    capacity: usize,
    /// Highest `seq` emitted: every event up to it has gone out, in order.
    head: AtomicU64,
    /// The event log, for gap fill here and for replay on the connections.
    history: Arc<dyn History>,
    metrics: DeliveryMetrics,
}

impl Hub {
    /// A hub whose stream starts after `head` (the log's last `seq` when the
    /// node starts: earlier events are only available by replay). Each
    /// connection may lag `capacity` events before it falls back to the log.
    pub fn new(
        history: Arc<dyn History>,
        head: u64,
        capacity: usize,
        metrics: DeliveryMetrics,
    ) -> Self {
        Hub {
            inner: Arc::new(Inner {
                tx: broadcast::channel(capacity).0,
                routes: Mutex::new(Routes::default()),
                capacity,
                head: AtomicU64::new(head),
                history,
                metrics,
            }),
        }
    }

    /// Highest `seq` emitted so far.
    pub fn head(&self) -> u64 {
        self.inner.head.load(Ordering::Acquire)
    }

    /// Every event emitted from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Item>> {
        self.inner.tx.subscribe()
    }

    /// A connection's feed: the events matching the filters it adds.
    pub fn connect(&self) -> Feed {
        let (outbox, inbox) = routes::queue(self.inner.capacity);
        let id = self.routes().connect(outbox);
        Feed {
            hub: self.clone(),
            id,
            filters: Vec::new(),
            inbox,
        }
    }

    fn routes(&self) -> MutexGuard<'_, Routes<Arc<Item>>> {
        // A panic while routing leaves the table consistent (every method
        // completes its edits before it can panic), so poisoning is ignored.
        self.inner.routes.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub fn history(&self) -> &Arc<dyn History> {
        &self.inner.history
    }

    pub fn metrics(&self) -> &DeliveryMetrics {
        &self.inner.metrics
    }

    fn emit(&self, event: PaymentEvent) {
        let frame = notification_text(&event);
        let item = Arc::new(Item { event, frame });
        {
            let mut routes = self.routes();
            self.inner.head.store(item.event.seq, Ordering::Release);
            routes.route(&item.event, &item);
        }
        // No receivers: nobody is connected; the log keeps the event.
        let _ = self.inner.tx.send(item);
    }

    /// Take `event` from a source: emit it unless already emitted, after
    /// whatever the log holds between `head` and it.
    async fn offer(&self, event: PaymentEvent) {
        let head = self.head();
        if event.seq <= head {
            return;
        }
        if event.seq > head + 1 {
            if let Err(e) = self.fill().await {
                tracing::warn!(error = %nexus_core::error_chain(&e), "hub: cannot read the event log to fill a gap; retrying on the next check");
                return;
            }
            if event.seq <= self.head() {
                return;
            }
            if event.seq > self.head() + 1 {
                // The log does not hold the events before it yet (another
                // writer's commit not visible here): emit nothing out of
                // order; the periodic check picks it up from the log.
                return;
            }
        }
        self.emit(event);
    }

    /// Emit everything the log holds after `head`.
    async fn fill(&self) -> Result<(), StoreError> {
        loop {
            let page = self.inner.history.events_since(self.head(), PAGE).await?;
            let full = page.len() == PAGE as usize;
            let mut moved = false;
            for e in page {
                if e.seq == self.head() + 1 {
                    self.inner.metrics.hub_filled.inc();
                    self.emit(e);
                    moved = true;
                }
            }
            // `moved` guards against a log that is not gap-free: never spin on it.
            if !full || !moved {
                return Ok(());
            }
        }
    }

    /// Run until `shutdown`: take events from `local` (this node's bus) and
    /// `remote` (other instances, through Redis), and check the log every
    /// `check` for events no source delivered.
    pub async fn run(
        self,
        mut local: broadcast::Receiver<PaymentEvent>,
        mut remote: Option<mpsc::Receiver<PaymentEvent>>,
        check: Duration,
        shutdown: CancellationToken,
    ) {
        let mut tick = tokio::time::interval(check);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut local_open = true;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                r = local.recv(), if local_open => match r {
                    Ok(e) => self.offer(e).await,
                    Err(broadcast::error::RecvError::Lagged(n)) => {
                        tracing::debug!(missed = n, "hub lagged behind the bus; reading the log");
                        if let Err(e) = self.fill().await {
                            tracing::warn!(error = %nexus_core::error_chain(&e), "hub: cannot read the event log");
                        }
                    }
                    Err(broadcast::error::RecvError::Closed) => local_open = false,
                },
                Some(e) = async { match remote.as_mut() { Some(r) => r.recv().await, None => None } }, if remote.is_some() => {
                    self.offer(e).await;
                }
                _ = tick.tick() => {
                    let behind = match self.inner.history.last_seq().await {
                        Ok(last) => last > self.head(),
                        Err(_) => false,
                    };
                    if behind {
                        if let Err(e) = self.fill().await {
                            tracing::warn!(error = %nexus_core::error_chain(&e), "hub: cannot read the event log");
                        }
                    }
                }
            }
        }
    }
}

/// One WebSocket connection's view of the hub: the events matching its
/// filters, in `seq` order. Dropping it unregisters the connection.
pub struct Feed {
    hub: Hub,
    id: ConnId,
    filters: Vec<Filter>,
    inbox: Inbox<Arc<Item>>,
}

impl Feed {
    /// Route `filter`'s events here from now on. Returns the hub's head at
    /// that moment (every later event matching `filter` will be received,
    /// every earlier one is in the log) and whether the feed was idle then
    /// (see [`Inbox::idle`]): if so, the connection's other filters have
    /// received every matching event up to that head.
    pub fn add(&mut self, filter: &Filter) -> (u64, bool) {
        let mut routes = self.hub.routes();
        routes.add(self.id, filter);
        if !self.filters.contains(filter) {
            self.filters.push(filter.clone());
        }
        (self.hub.head(), self.inbox.idle())
    }

    /// Stop routing `filter`'s events here.
    pub fn remove(&mut self, filter: &Filter) {
        self.hub.routes().remove(self.id, filter);
        self.filters.retain(|f| f != filter);
    }

    /// The next event, or [`Missed::Lagged`] when the queue overflowed (read
    /// the log up to [`Hub::head`]), or [`Missed::Closed`].
    pub async fn recv(&mut self) -> Result<Arc<Item>, Missed> {
        self.inbox.recv().await
    }
}

impl Drop for Feed {
    fn drop(&mut self) {
        self.hub.routes().disconnect(self.id, &self.filters);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::tests_support::event_of;
    use nexus_store::sqlite::SqliteHistory;

    fn hub(capacity: usize) -> Hub {
        let history = SqliteHistory::open_in_memory().expect("SQLite in memory");
        Hub::new(Arc::new(history), 0, capacity, DeliveryMetrics::default())
    }

    /// A filter added while another task emits: exactly the matching events
    /// after the head it was given arrive, in order (none before: those
    /// are the log's), whatever the interleaving.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_filter_added_mid_stream_gets_every_later_event_once() {
        for _ in 0..20 {
            let hub = hub(100_000);
            let emitter = {
                let hub = hub.clone();
                tokio::spawn(async move {
                    for seq in 1..=2_000u64 {
                        let from = if seq % 2 == 0 { "SP_A" } else { "SP_X" };
                        hub.offer(event_of(seq, 1, from, "SP_B")).await;
                        if seq % 64 == 0 {
                            tokio::task::yield_now().await;
                        }
                    }
                })
            };
            tokio::task::yield_now().await;
            let mut feed = hub.connect();
            let (head, idle) = feed.add(&Filter::Principal("SP_A".into()));
            assert!(idle, "nothing was routed here before");
            emitter.await.expect("emitter");
            assert_eq!(hub.head(), 2_000);
            let mut got = vec![];
            while let Ok(Ok(item)) =
                tokio::time::timeout(Duration::from_millis(20), feed.recv()).await
            {
                got.push(item.event.seq);
            }
            let want: Vec<u64> = (head + 1..=2_000).filter(|s| s % 2 == 0).collect();
            assert_eq!(got, want, "head {head}");
        }
    }

    #[tokio::test]
    async fn an_overflowing_feed_reports_a_lag_and_a_dropped_feed_is_unrouted() {
        let hub = hub(4);
        let mut feed = hub.connect();
        feed.add(&Filter::All);
        for seq in 1..=10 {
            hub.offer(event_of(seq, 1, "SP_A", "SP_B")).await;
        }
        assert!(matches!(feed.recv().await, Err(Missed::Lagged)));
        assert_eq!(feed.recv().await.expect("queued").event.seq, 1);
        assert_eq!(hub.routes().len(), 1);
        drop(feed);
        assert!(hub.routes().is_empty(), "dropping the feed unregisters it");
    }
}
