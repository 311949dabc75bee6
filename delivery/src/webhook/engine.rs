//! The webhook scheduler: turns logged events into persisted deliveries
//! (by a cursor over the event log, so a restart or a dropped broadcast
//! loses nothing), then attempts due deliveries with signed POSTs,
//! rescheduling failures on the [`Backoff`] and dead-lettering the last.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{broadcast, Notify};
use tokio_util::sync::CancellationToken;

use nexus_core::domain::PaymentEvent;
use nexus_store::History;

use super::signature::{sign, EVENT_ID_HEADER, SIGNATURE_HEADER, TIMESTAMP_HEADER};
use super::Endpoint;
use crate::hub::Item;
use crate::metrics::DeliveryMetrics;
use nexus_core::backoff::Backoff;
use nexus_core::clock::Clock;
use nexus_core::error_chain;
use nexus_store::webhooks::{NewDelivery, PendingDelivery, WebhookStore};

/// Events read from the log per enqueue step.
const PAGE: u32 = 500;
/// Deliveries attempted concurrently per round.
const BATCH: u32 = 32;
/// Real-time re-check of the queue (other instances' work, store errors).
const POLL: Duration = Duration::from_secs(1);
/// How often delivered rows past their retention are deleted (real time:
/// the test clock jumps, and must not make this loop spin).
const PRUNE_EVERY: Duration = Duration::from_secs(600);
/// Rows deleted per statement, so that a large backlog never holds one
/// long transaction.
const PRUNE_CHUNK: u32 = 5_000;

/// How the scheduler behaves.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    pub backoff: Backoff,
    /// Per-attempt HTTP timeout.
    pub timeout: Duration,
    /// How long a delivered row is kept; `None`: forever.
    pub retention: Option<Duration>,
}

/// The scheduler of one node.
#[derive(Clone)]
pub struct Engine {
    pub store: Arc<dyn WebhookStore>,
    pub history: Arc<dyn History>,
    pub endpoints: Arc<Vec<Endpoint>>,
    pub settings: Settings,
    pub clock: Arc<dyn Clock>,
    pub metrics: DeliveryMetrics,
    /// Poked when deliveries are queued (here or by a dead-letter retry).
    pub wake: Arc<Notify>,
    pub client: reqwest::Client,
}

impl Engine {
    /// Run until `shutdown`; `events` only says "the log has grown".
    pub async fn run(self, events: broadcast::Receiver<Arc<Item>>, shutdown: CancellationToken) {
        tokio::join!(
            self.enqueue_loop(events, shutdown.clone()),
            self.send_loop(shutdown.clone()),
            self.prune_loop(shutdown)
        );
    }

    /// Delete delivered rows older than the retention, every [`PRUNE_EVERY`]
    /// (the first time right after start). Without it the table grows by
    /// one row per event and endpoint forever.
    async fn prune_loop(&self, shutdown: CancellationToken) {
        let Some(retention) = self.settings.retention else {
            return;
        };
        loop {
            let before = self.clock.now_ms() - retention.as_millis() as i64;
            let mut total = 0u64;
            loop {
                match self.store.prune_delivered(before, PRUNE_CHUNK).await {
                    Ok(n) => {
                        total += n;
                        if n < u64::from(PRUNE_CHUNK) || shutdown.is_cancelled() {
                            break;
                        }
                    }
                    Err(e) => {
                        tracing::warn!(error = %error_chain(&e), "webhooks: cannot prune delivered rows; retrying later");
                        break;
                    }
                }
            }
            if total > 0 {
                tracing::info!(
                    deleted = total,
                    "webhooks: pruned delivered rows past their retention"
                );
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(PRUNE_EVERY) => {}
            }
        }
    }

    async fn enqueue_loop(
        &self,
        mut events: broadcast::Receiver<Arc<Item>>,
        shutdown: CancellationToken,
    ) {
        let mut cursor = None;
        loop {
            match self.enqueue_step(&mut cursor).await {
                Ok(true) => continue,
                Ok(false) => {}
                Err(e) => tracing::warn!(error = %e, "webhooks: cannot queue deliveries; retrying"),
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = events.recv() => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// Queue the deliveries of the next page of events; true if there may be more.
    async fn enqueue_step(&self, cursor: &mut Option<u64>) -> Result<bool, String> {
        let after = match *cursor {
            Some(c) => c,
            None => {
                let head = self.history.last_seq().await.map_err(|e| error_chain(&e))?;
                let c = self.store.cursor(head).await.map_err(|e| error_chain(&e))?;
                *cursor = Some(c);
                c
            }
        };
        let page = self
            .history
            .events_since(after, PAGE)
            .await
            .map_err(|e| error_chain(&e))?;
        let Some(last) = page.last().map(|e| e.seq) else {
            return Ok(false);
        };
        let deliveries = deliveries_for(&self.endpoints, &page);
        self.store
            .enqueue(&deliveries, last, self.clock.now_ms())
            .await
            .map_err(|e| error_chain(&e))?;
        *cursor = Some(last);
        if !deliveries.is_empty() {
            self.wake.notify_one();
        }
        Ok(page.len() == PAGE as usize)
    }

    async fn send_loop(&self, shutdown: CancellationToken) {
        let lease_ms = (self.settings.timeout.as_millis() as i64) * 2 + 5_000;
        loop {
            if shutdown.is_cancelled() {
                return;
            }
            let now = self.clock.now_ms();
            match self.store.claim_due(now, BATCH, lease_ms).await {
                Ok(due) if !due.is_empty() => {
                    let round = futures::future::join_all(due.into_iter().map(|d| self.attempt(d)));
                    tokio::select! {
                        // Unfinished attempts stay leased and are retried after the lease.
                        _ = shutdown.cancelled() => return,
                        _ = round => {}
                    }
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %error_chain(&e), "webhooks: cannot read the queue")
                }
            }
            let next = self.store.next_due_ms().await.ok().flatten();
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = async { match next { Some(t) => tokio::time::sleep(self.clock.until(t)).await, None => std::future::pending().await } } => {}
                _ = tokio::time::sleep(POLL) => {}
            }
        }
    }

    /// One attempt of `d`, and its bookkeeping.
    async fn attempt(&self, d: PendingDelivery) {
        let Some(endpoint) = self.endpoints.iter().find(|e| e.name == d.endpoint) else {
            // Its endpoint was removed from the configuration: dead-letter it
            // so that it is visible and can be retried if the endpoint returns.
            let _ = self
                .store
                .dead(
                    d.id,
                    d.attempts,
                    "endpoint no longer configured",
                    self.clock.now_ms(),
                )
                .await;
            self.metrics.webhook_dead_letters.inc();
            return;
        };
        let attempt = d.attempts + 1;
        if attempt > 1 {
            self.metrics.webhook_retries.inc();
        }
        let ts = self.clock.now_ms().div_euclid(1000);
        let signature = sign(endpoint.secret.as_bytes(), ts, d.body.as_bytes());
        let sent = self
            .client
            .post(endpoint.url.clone())
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .header(SIGNATURE_HEADER, signature)
            .header(TIMESTAMP_HEADER, ts.to_string())
            .header(EVENT_ID_HEADER, &d.event_id)
            .body(d.body.clone())
            .timeout(self.settings.timeout)
            .send()
            .await;
        let now = self.clock.now_ms();
        let error = match sent {
            Ok(resp) if resp.status().is_success() => {
                self.metrics.webhook_deliveries.inc();
                self.metrics
                    .webhook_latency
                    .observe((now - d.created_ms).max(0) as f64 / 1e3);
                if let Err(e) = self.store.delivered(d.id, attempt, now).await {
                    tracing::warn!(error = %error_chain(&e), id = d.id, "webhooks: delivered but not recorded; the receiver may see it again (same event id)");
                }
                return;
            }
            Ok(resp) => format!("HTTP {}", resp.status().as_u16()),
            Err(e) => error_chain(&e),
        };
        self.metrics.webhook_failures.inc();
        let result = match self.settings.backoff.delay(attempt, rand::random::<f64>()) {
            Some(wait) => {
                self.store
                    .failed(d.id, attempt, &error, now + wait.as_millis() as i64)
                    .await
            }
            None => {
                self.metrics.webhook_dead_letters.inc();
                tracing::warn!(endpoint = %d.endpoint, seq = d.event_seq, %error, "webhook dead-lettered after {attempt} attempts");
                self.store.dead(d.id, attempt, &error, now).await.map(drop)
            }
        };
        if let Err(e) = result {
            tracing::warn!(error = %error_chain(&e), id = d.id, "webhooks: cannot record a failed attempt; it is retried after its lease");
        }
    }
}

/// The deliveries `events` make for `endpoints`. Pure.
pub fn deliveries_for(endpoints: &[Endpoint], events: &[PaymentEvent]) -> Vec<NewDelivery> {
    let mut out = Vec::new();
    for e in events {
        let mut body = None;
        for ep in endpoints {
            if ep.filter.matches(e) {
                let body = body
                    .get_or_insert_with(|| serde_json::to_string(e).expect("an event serializes"))
                    .clone();
                out.push(NewDelivery {
                    endpoint: ep.name.clone(),
                    event_seq: e.seq,
                    event_id: event_id(e.seq),
                    body,
                });
            }
        }
    }
    out
}

/// The `x402-nexus-event-id` of the event with `seq`: the same on every
/// attempt and every endpoint, so a receiver can drop repeats.
pub fn event_id(seq: u64) -> String {
    format!("evt_{seq}")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::tests_support::event_of;
    use crate::filter::{Filter, TypedFilter};
    use nexus_core::domain::EventType;

    fn ep(name: &str, filter: Filter, types: Vec<EventType>) -> Endpoint {
        Endpoint {
            name: name.into(),
            url: "http://127.0.0.1:1/".parse().unwrap(),
            secret: "s".into(),
            filter: TypedFilter { filter, types },
        }
    }

    #[test]
    fn each_matching_endpoint_gets_one_delivery_per_event() {
        let eps = [
            ep("all", Filter::All, vec![]),
            ep("a", Filter::Principal("A".into()), vec![]),
            ep("failed", Filter::All, vec![EventType::Failed]),
        ];
        let events = [event_of(1, 1, "A", "B"), event_of(2, 1, "C", "B")];
        let got: Vec<(String, u64)> = deliveries_for(&eps, &events)
            .into_iter()
            .map(|d| (d.endpoint, d.event_seq))
            .collect();
        assert_eq!(
            got,
            vec![("all".into(), 1), ("a".into(), 1), ("all".into(), 2)]
        );
        let d = &deliveries_for(&eps, &events[..1])[0];
        assert_eq!(d.event_id, "evt_1");
        let body: PaymentEvent = serde_json::from_str(&d.body).unwrap();
        assert_eq!(body, events[0], "the body is the event record");
    }
}
