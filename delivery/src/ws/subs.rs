//! One connection's subscriptions and their resume cursors. Pure.
//!
//! Each subscription keeps `after`: the highest `seq` it has considered. An
//! event is sent once per connection if any subscription that has not yet
//! considered it matches; every subscription's cursor then moves past it.
//! Replay from the event log and the live stream both go through
//! [`Subscriptions::offer`], so an event seen on both sides of the seam is
//! sent once, and an event is never skipped as long as the caller offers
//! every `seq` above the lowest cursor in order.

use nexus_core::domain::PaymentEvent;

use crate::filter::Filter;

#[derive(Debug, Clone)]
struct Sub {
    filter: Filter,
    /// Highest `seq` this subscription has considered.
    after: u64,
}

/// The subscriptions of one connection, at most `cap`.
#[derive(Debug, Clone)]
pub struct Subscriptions {
    subs: Vec<Sub>,
    cap: usize,
}

/// The connection already holds `cap` subscriptions.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("too many subscriptions on this connection (at most {0})")]
pub struct TooMany(pub usize);

impl Subscriptions {
    pub fn new(cap: usize) -> Self {
        Subscriptions {
            subs: Vec::new(),
            cap,
        }
    }

    /// Subscribe to `filter`, considering events after `after`. Subscribing
    /// to a filter already held moves its cursor (a resume asks for replay).
    pub fn subscribe(&mut self, filter: Filter, after: u64) -> Result<(), TooMany> {
        if let Some(s) = self.subs.iter_mut().find(|s| s.filter == filter) {
            s.after = after;
            return Ok(());
        }
        if self.subs.len() >= self.cap {
            return Err(TooMany(self.cap));
        }
        self.subs.push(Sub { filter, after });
        Ok(())
    }

    /// Remove `filter`; false if it was not subscribed.
    pub fn unsubscribe(&mut self, filter: &Filter) -> bool {
        let before = self.subs.len();
        self.subs.retain(|s| s.filter != *filter);
        self.subs.len() < before
    }

    pub fn len(&self) -> usize {
        self.subs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.subs.is_empty()
    }

    /// Offer `event`: true if it must be sent (some subscription that had not
    /// yet considered it matches). Advances the cursors it passes.
    pub fn offer(&mut self, event: &PaymentEvent) -> bool {
        let mut send = false;
        for s in &mut self.subs {
            if event.seq > s.after {
                send |= s.filter.matches(event);
                s.after = event.seq;
            }
        }
        send
    }

    /// Every subscription has considered every event up to `seq` (none of
    /// them matched, or they were sent): move the cursors there.
    pub fn advance(&mut self, seq: u64) {
        for s in &mut self.subs {
            s.after = s.after.max(seq);
        }
    }

    /// The lowest cursor below `head`: where replay from the log must start
    /// so that every subscription has considered every event up to `head`.
    pub fn behind(&self, head: u64) -> Option<u64> {
        self.subs
            .iter()
            .map(|s| s.after)
            .filter(|&a| a < head)
            .min()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::filter::tests_support::event_of;
    use nexus_core::domain::PaymentId;

    #[test]
    fn replay_then_live_sends_each_event_once() {
        let mut subs = Subscriptions::new(4);
        subs.subscribe(Filter::All, 2).unwrap();
        // Replay 3..=5 from the log; the live stream then repeats 4..=6.
        let mut sent = vec![];
        for seq in (3..=5).chain(4..=6) {
            if subs.offer(&event_of(seq, 1, "A", "B")) {
                sent.push(seq);
            }
        }
        assert_eq!(sent, vec![3, 4, 5, 6]);
    }

    #[test]
    fn an_event_matching_two_subscriptions_is_sent_once() {
        let mut subs = Subscriptions::new(4);
        subs.subscribe(Filter::All, 0).unwrap();
        subs.subscribe(Filter::Principal("A".into()), 0).unwrap();
        assert!(subs.offer(&event_of(1, 1, "A", "B")));
        assert!(!subs.offer(&event_of(1, 1, "A", "B")), "not again");
    }

    #[test]
    fn a_new_resume_replays_only_for_itself() {
        let mut subs = Subscriptions::new(4);
        subs.subscribe(Filter::Principal("A".into()), 10).unwrap();
        subs.subscribe(Filter::Payment(PaymentId([2; 32])), 3)
            .unwrap();
        assert_eq!(subs.behind(10), Some(3));
        let mut sent = vec![];
        for (seq, id, from) in [(4, 2, "X"), (5, 1, "A"), (6, 2, "X"), (11, 1, "A")] {
            if subs.offer(&event_of(seq, id, from, "B")) {
                sent.push(seq);
            }
        }
        // 5 matches the principal filter, but that one had already seen 5.
        assert_eq!(sent, vec![4, 6, 11]);
        assert_eq!(subs.behind(11), None);
    }

    #[test]
    fn advance_moves_trailing_cursors_only() {
        let mut subs = Subscriptions::new(4);
        subs.subscribe(Filter::Principal("A".into()), 3).unwrap();
        subs.subscribe(Filter::All, 9).unwrap();
        subs.advance(7);
        assert_eq!(subs.behind(9), Some(7), "3 moved to 7; 9 stays");
        assert_eq!(subs.behind(7), None);
        assert!(
            !subs.offer(&event_of(6, 1, "A", "B")),
            "considered by the advance"
        );
        assert!(subs.offer(&event_of(8, 1, "A", "B")));
    }

    #[test]
    fn cap_and_unsubscribe() {
        let mut subs = Subscriptions::new(1);
        subs.subscribe(Filter::All, 0).unwrap();
        assert_eq!(
            subs.subscribe(Filter::Principal("A".into()), 0),
            Err(TooMany(1))
        );
        subs.subscribe(Filter::All, 5)
            .expect("same filter again moves the cursor");
        assert!(!subs.unsubscribe(&Filter::Principal("A".into())));
        assert!(subs.unsubscribe(&Filter::All));
        assert!(subs.is_empty());
        assert!(!subs.offer(&event_of(9, 1, "A", "B")), "nothing subscribed");
    }
}
