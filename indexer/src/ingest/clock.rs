/// Wall-clock time, behind a trait so tests can pin it.
pub trait Clock: Send + Sync + 'static {
    /// Now, RFC 3339 with milliseconds, UTC.
    fn now_rfc3339(&self) -> String;
}

/// The real clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_rfc3339(&self) -> String {
        chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    }
}

/// A clock that always says the same time (tests, deterministic replays).
#[derive(Debug, Clone)]
pub struct FixedClock(pub String);

impl Clock for FixedClock {
    fn now_rfc3339(&self) -> String {
        self.0.clone()
    }
}
