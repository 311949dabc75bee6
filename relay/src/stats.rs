//! What recent broadcasts say about the providers and the reasons: the
//! relay's adaptive part, kept to arithmetic a person can check.
//!
//! * Per provider (and per outcome reason at that provider): attempts,
//!   successes, and exponentially weighted moving averages (EWMA) of the
//!   success rate and the latency. [`ProviderStats::order`] turns them into
//!   the order a broadcast tries the providers in.
//! * Per rejection reason: how many more attempts a transaction needed to get
//!   in after the node first gave that reason. [`ProviderStats::slowness`]
//!   turns it into the factor the backoff stretches its waits by.
//!
//! Thread-safe: one `std` mutex, held for a few arithmetic operations and
//! never across an `.await` (every method is synchronous).

use std::collections::HashMap;
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use serde::Serialize;

use crate::backoff::MAX_SLOWNESS;

/// Weight of the newest sample in every average: about the last ten
/// outcomes matter, so a provider that recovers is trusted again soon.
pub const DEFAULT_ALPHA: f64 = 0.2;

/// What a provider we know nothing about is assumed to do: succeed. It is
/// tried before a provider whose record is merely good, which is how it gets
/// a record at all.
const PRIOR_SUCCESS: f64 = 1.0;

/// Success rates closer than this are a tie, decided by latency: noise in
/// the fourth decimal must not reorder the providers on every call.
const SUCCESS_BUCKET: f64 = 0.05;

/// Resolutions needed before a reason's history stretches the backoff.
const MIN_RESOLUTIONS: u64 = 3;

/// Retries a reason may take to clear at the normal spacing before its
/// waits are stretched; `slowness` is the average over this, in `[1, 8]`.
const BASELINE_RETRIES: f64 = 2.0;

/// Outcome reasons kept per provider; beyond, they are counted as `Other`
/// (reasons come from the nodes; a buggy one must not grow our memory).
const MAX_REASONS: usize = 64;

/// The statistics; share one behind an `Arc`.
#[derive(Debug)]
pub struct ProviderStats {
    alpha: f64,
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    providers: HashMap<String, ProviderRecord>,
    resolutions: HashMap<String, Resolution>,
}

/// Counts and averages of some attempts.
#[derive(Debug, Clone, Copy)]
struct Record {
    attempts: u64,
    successes: u64,
    /// EWMA of 1 (success) / 0 (failure), starting at the prior.
    success: f64,
    /// EWMA of the latency in milliseconds; `None` before the first sample.
    latency_ms: Option<f64>,
}

impl Default for Record {
    fn default() -> Self {
        Record {
            attempts: 0,
            successes: 0,
            success: PRIOR_SUCCESS,
            latency_ms: None,
        }
    }
}

impl Record {
    fn add(&mut self, alpha: f64, ok: bool, latency: Duration) {
        self.attempts += 1;
        self.successes += u64::from(ok);
        self.success = ewma(self.success, if ok { 1.0 } else { 0.0 }, alpha);
        let ms = latency.as_secs_f64() * 1000.0;
        self.latency_ms = Some(self.latency_ms.map_or(ms, |l| ewma(l, ms, alpha)));
    }
}

/// A provider's record, and one per outcome reason there.
#[derive(Debug, Default)]
struct ProviderRecord {
    all: Record,
    reasons: HashMap<String, Record>,
}

/// How long one reason took to clear.
#[derive(Debug, Clone, Copy, Default)]
struct Resolution {
    samples: u64,
    /// EWMA of the attempts after the reason was first given.
    attempts: f64,
    /// EWMA of the seconds from the reason to the mempool.
    seconds: f64,
}

fn ewma(old: f64, sample: f64, alpha: f64) -> f64 {
    old + alpha * (sample - old)
}

impl Default for ProviderStats {
    fn default() -> Self {
        ProviderStats::new(DEFAULT_ALPHA)
    }
}

impl ProviderStats {
    /// Statistics weighting each new sample by `alpha` (clamped to `(0, 1]`).
    pub fn new(alpha: f64) -> Self {
        let alpha = if alpha.is_nan() {
            DEFAULT_ALPHA
        } else {
            alpha.clamp(f64::EPSILON, 1.0)
        };
        ProviderStats {
            alpha,
            inner: Mutex::new(Inner::default()),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Nothing panics while holding it; a poisoned one is still consistent.
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One attempt at `provider` that ended with `outcome_reason` (the
    /// classified reason: `Accepted`, `BadNonce`, `Timeout`, ...) after
    /// `latency`. `ok`: the provider did its job, i.e. the outcome was not
    /// its fault (`!Classified::provider_fault`): a node that answers "fee
    /// too low" promptly is a good node.
    pub fn record(&self, provider: &str, outcome_reason: &str, ok: bool, latency: Duration) {
        let alpha = self.alpha;
        let mut inner = self.lock();
        let p = inner.providers.entry(provider.to_string()).or_default();
        p.all.add(alpha, ok, latency);
        let key = if p.reasons.contains_key(outcome_reason) || p.reasons.len() < MAX_REASONS {
            outcome_reason
        } else {
            "Other"
        };
        p.reasons
            .entry(key.to_string())
            .or_default()
            .add(alpha, ok, latency);
    }

    /// A transaction the node had refused with `reason` got into a mempool
    /// `attempts` attempts and `took` after that refusal.
    pub fn record_resolution(&self, reason: &str, attempts: u32, took: Duration) {
        let alpha = self.alpha;
        let mut inner = self.lock();
        if !inner.resolutions.contains_key(reason) && inner.resolutions.len() >= MAX_REASONS {
            return;
        }
        let r = inner.resolutions.entry(reason.to_string()).or_default();
        let (a, s) = (f64::from(attempts), took.as_secs_f64());
        if r.samples == 0 {
            (r.attempts, r.seconds) = (a, s);
        } else {
            r.attempts = ewma(r.attempts, a, alpha);
            r.seconds = ewma(r.seconds, s, alpha);
        }
        r.samples += 1;
    }

    /// Indices into `providers`, best first: the highest recent success rate
    /// (in 5 % steps), then the lowest recent latency, then configuration
    /// order. A provider without a record counts as perfect and instant, so
    /// it is tried. Every index appears once (feed it to
    /// `Providers::with_order`).
    pub fn order(&self, providers: &[String]) -> Vec<usize> {
        let inner = self.lock();
        let mut keyed: Vec<(i64, u64, usize)> = providers
            .iter()
            .enumerate()
            .map(|(i, name)| {
                let r = inner.providers.get(name).map(|p| p.all).unwrap_or_default();
                let bucket = (r.success / SUCCESS_BUCKET).round() as i64;
                let latency = r.latency_ms.unwrap_or(0.0).round() as u64;
                (-bucket, latency, i)
            })
            .collect();
        keyed.sort_unstable();
        keyed.into_iter().map(|(_, _, i)| i).collect()
    }

    /// How much longer than normal to wait when the node gave `reason`: the
    /// average attempts it took to clear over [`BASELINE_RETRIES`], in
    /// `[1, 8]`; 1 until [`MIN_RESOLUTIONS`] transactions cleared it.
    /// Attempts rather than seconds: the schedule is exponential, so attempts
    /// say how far up it a reason usually climbs; spacing the attempts
    /// wider gets there in fewer of them.
    pub fn slowness(&self, reason: &str) -> f64 {
        self.lock().resolutions.get(reason).map_or(1.0, slowness_of)
    }

    /// Everything, for `GET /api/stats/providers`; sorted by name.
    pub fn snapshot(&self) -> StatsSnapshot {
        let inner = self.lock();
        let mut providers: Vec<ProviderSnapshot> = inner
            .providers
            .iter()
            .map(|(name, p)| {
                let mut outcomes: Vec<OutcomeSnapshot> = p
                    .reasons
                    .iter()
                    .map(|(reason, r)| OutcomeSnapshot {
                        reason: reason.clone(),
                        counts: r.into(),
                    })
                    .collect();
                outcomes.sort_by(|a, b| a.reason.cmp(&b.reason));
                ProviderSnapshot {
                    provider: name.clone(),
                    counts: (&p.all).into(),
                    outcomes,
                }
            })
            .collect();
        providers.sort_by(|a, b| a.provider.cmp(&b.provider));
        let mut reasons: Vec<ResolutionSnapshot> = inner
            .resolutions
            .iter()
            .map(|(reason, r)| ResolutionSnapshot {
                reason: reason.clone(),
                samples: r.samples,
                attempts: r.attempts,
                seconds: r.seconds,
                slowness: slowness_of(r),
            })
            .collect();
        reasons.sort_by(|a, b| a.reason.cmp(&b.reason));
        StatsSnapshot { providers, reasons }
    }
}

fn slowness_of(r: &Resolution) -> f64 {
    if r.samples < MIN_RESOLUTIONS {
        return 1.0;
    }
    (r.attempts / BASELINE_RETRIES).clamp(1.0, MAX_SLOWNESS)
}

/// `GET /api/stats/providers`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct StatsSnapshot {
    pub providers: Vec<ProviderSnapshot>,
    /// How long each rejection reason took to clear.
    pub reasons: Vec<ResolutionSnapshot>,
}

/// Attempts, successes and the recent averages.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Counts {
    pub attempts: u64,
    pub successes: u64,
    /// EWMA of success (1) / failure (0).
    pub success_rate: f64,
    /// EWMA of the latency; `None` before the first attempt.
    pub latency_ms: Option<f64>,
}

impl From<&Record> for Counts {
    fn from(r: &Record) -> Self {
        Counts {
            attempts: r.attempts,
            successes: r.successes,
            success_rate: r.success,
            latency_ms: r.latency_ms,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProviderSnapshot {
    pub provider: String,
    #[serde(flatten)]
    pub counts: Counts,
    /// The same, per outcome reason at this provider.
    pub outcomes: Vec<OutcomeSnapshot>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutcomeSnapshot {
    pub reason: String,
    #[serde(flatten)]
    pub counts: Counts,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ResolutionSnapshot {
    pub reason: String,
    pub samples: u64,
    /// EWMA of the attempts it took to clear.
    pub attempts: f64,
    /// EWMA of the seconds it took to clear.
    pub seconds: f64,
    /// What [`ProviderStats::slowness`] answers for it.
    pub slowness: f64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    const MS: fn(u64) -> Duration = Duration::from_millis;

    #[test]
    fn unknown_providers_keep_configuration_order_and_are_tried_first() {
        let s = ProviderStats::default();
        let p = names(&["a", "b", "c"]);
        assert_eq!(s.order(&p), vec![0, 1, 2]);
        // b has a good but non-zero-latency record: the unknowns a and c go first.
        s.record("b", "Accepted", true, MS(40));
        assert_eq!(s.order(&p), vec![0, 2, 1]);
    }

    #[test]
    fn failures_sink_a_provider_and_latency_breaks_ties() {
        let s = ProviderStats::default();
        let p = names(&["a", "b", "c"]);
        for _ in 0..5 {
            s.record("a", "Timeout", false, MS(5000));
            s.record("b", "Accepted", true, MS(80));
            s.record("c", "Accepted", true, MS(20));
        }
        assert_eq!(s.order(&p), vec![2, 1, 0]);
        // A rejection the provider gave promptly is not its fault.
        s.record("c", "FeeTooLow", true, MS(20));
        assert_eq!(s.order(&p), vec![2, 1, 0]);
        // Recent failures at c: b is preferred now.
        for _ in 0..3 {
            s.record("c", "Http503", false, MS(20));
        }
        assert_eq!(s.order(&p), vec![1, 2, 0]);
        // And a recovers after a run of successes (EWMA, not lifetime).
        for _ in 0..30 {
            s.record("a", "Accepted", true, MS(10));
        }
        assert_eq!(s.order(&p)[0], 0);
    }

    #[test]
    fn order_is_a_permutation_even_with_duplicate_names() {
        let s = ProviderStats::default();
        s.record("x", "Timeout", false, MS(1));
        let p = names(&["x", "y", "x"]);
        let mut o = s.order(&p);
        assert_eq!(o, vec![1, 0, 2]);
        o.sort();
        assert_eq!(o, vec![0, 1, 2]);
        assert!(s.order(&[]).is_empty());
    }

    #[test]
    fn ewmas_move_by_alpha() {
        let s = ProviderStats::new(0.5);
        s.record("a", "Accepted", true, MS(100));
        s.record("a", "Timeout", false, MS(300));
        let snap = s.snapshot();
        let a = &snap.providers[0];
        assert_eq!((a.counts.attempts, a.counts.successes), (2, 1));
        assert_eq!(a.counts.success_rate, 0.5, "1 → 1, then halfway to 0");
        assert_eq!(a.counts.latency_ms, Some(200.0), "100, then halfway to 300");
        let reasons: Vec<_> = a.outcomes.iter().map(|o| o.reason.as_str()).collect();
        assert_eq!(reasons, ["Accepted", "Timeout"]);
        assert_eq!(a.outcomes[1].counts.success_rate, 0.5);
    }

    #[test]
    fn slowness_follows_how_long_a_reason_took_to_clear() {
        let s = ProviderStats::default();
        assert_eq!(s.slowness("NotEnoughFunds"), 1.0, "no history");
        s.record_resolution("NotEnoughFunds", 12, Duration::from_secs(600));
        s.record_resolution("NotEnoughFunds", 12, Duration::from_secs(600));
        assert_eq!(s.slowness("NotEnoughFunds"), 1.0, "too few samples");
        s.record_resolution("NotEnoughFunds", 12, Duration::from_secs(600));
        assert_eq!(s.slowness("NotEnoughFunds"), 6.0, "12 retries / 2");
        for _ in 0..3 {
            s.record_resolution("Http503", 1, MS(500));
            s.record_resolution("TemporarilyBlacklisted", 100, Duration::from_secs(1800));
        }
        assert_eq!(s.slowness("Http503"), 1.0, "never below 1");
        assert_eq!(s.slowness("TemporarilyBlacklisted"), MAX_SLOWNESS);
        // Recent resolutions pull it down again.
        for _ in 0..20 {
            s.record_resolution("NotEnoughFunds", 1, Duration::from_secs(1));
        }
        assert!(s.slowness("NotEnoughFunds") < 1.1);
        let snap = s.snapshot();
        let r: Vec<_> = snap.reasons.iter().map(|r| r.reason.as_str()).collect();
        assert_eq!(r, ["Http503", "NotEnoughFunds", "TemporarilyBlacklisted"]);
        assert_eq!(snap.reasons[2].slowness, MAX_SLOWNESS);
        assert_eq!(snap.reasons[2].seconds, 1800.0);
    }

    #[test]
    fn reasons_are_bounded() {
        let s = ProviderStats::default();
        for i in 0..(MAX_REASONS + 10) {
            s.record("a", &format!("R{i}"), true, MS(1));
            s.record_resolution(&format!("R{i}"), 1, MS(1));
        }
        let snap = s.snapshot();
        assert_eq!(snap.providers[0].outcomes.len(), MAX_REASONS + 1, "+ Other");
        assert_eq!(snap.providers[0].counts.attempts, (MAX_REASONS + 10) as u64);
        assert_eq!(snap.reasons.len(), MAX_REASONS);
    }

    #[test]
    fn snapshot_serializes_flat() {
        let s = ProviderStats::default();
        s.record("http://a:20443", "Accepted", true, MS(12));
        let v = serde_json::to_value(s.snapshot()).unwrap();
        let p = &v["providers"][0];
        assert_eq!(p["provider"], "http://a:20443");
        assert_eq!(p["attempts"], 1);
        assert_eq!(p["success_rate"], 1.0);
        assert_eq!(p["outcomes"][0]["reason"], "Accepted");
        assert_eq!(v["reasons"], serde_json::json!([]));
    }

    #[test]
    fn shared_across_threads() {
        let s = std::sync::Arc::new(ProviderStats::default());
        let handles: Vec<_> = (0..4)
            .map(|t| {
                let s = s.clone();
                std::thread::spawn(move || {
                    for i in 0..250 {
                        s.record(&format!("p{}", t % 2), "Accepted", i % 2 == 0, MS(1));
                    }
                })
            })
            .collect();
        for h in handles {
            h.join().unwrap();
        }
        let total: u64 = s
            .snapshot()
            .providers
            .iter()
            .map(|p| p.counts.attempts)
            .sum();
        assert_eq!(total, 1000);
    }
}
