use tokio::sync::broadcast;

use nexus_core::domain::PaymentEvent;

/// Where committed payment events go (WebSocket, webhooks, other instances).
pub trait EventBus: Send + Sync + 'static {
    /// Called once per committed event, in `seq` order. Must not block.
    fn publish(&self, event: &PaymentEvent);
}

/// In-process fan-out for the embedded default. Slow receivers lag and
/// resume from the event log by `seq`; the ingest path never waits on them.
#[derive(Debug, Clone)]
pub struct BroadcastBus {
    tx: broadcast::Sender<PaymentEvent>,
}

impl BroadcastBus {
    /// `capacity` events are buffered per receiver before it lags.
    pub fn new(capacity: usize) -> Self {
        BroadcastBus {
            tx: broadcast::channel(capacity).0,
        }
    }

    /// A new receiver of every event published from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<PaymentEvent> {
        self.tx.subscribe()
    }
}

impl EventBus for BroadcastBus {
    fn publish(&self, event: &PaymentEvent) {
        // No receivers is fine: nobody is listening yet.
        let _ = self.tx.send(event.clone());
    }
}
