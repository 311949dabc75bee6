use std::time::Duration;

/// Why a stacks-node RPC call failed. Whether a retry can help is part of
/// the value ([`RpcError::is_temporary`], [`RpcError::retry_after`]), never a
/// string to parse. The relay reuses the same type for broadcasts.
#[derive(Debug, thiserror::Error)]
pub enum RpcError {
    /// A provider URL is unusable, or the HTTP client could not be built.
    #[error("invalid RPC configuration: {0}")]
    Config(String),
    /// No answer: timeout, connection refused or reset, body cut short.
    #[error("{provider}: request to {url} failed")]
    Transport {
        provider: String,
        url: String,
        #[source]
        source: reqwest::Error,
    },
    /// The node answered with an error status.
    #[error("{provider}: {url} answered HTTP {status}: {body}")]
    Status {
        provider: String,
        url: String,
        status: u16,
        /// `Retry-After` in seconds, when the node sent one (429, 503).
        retry_after: Option<Duration>,
        /// The start of the answer, for the log.
        body: String,
    },
    /// The answer is not the documented shape (JSON or Clarity value).
    #[error("{provider}: could not read the answer of {url}: {detail}")]
    Decode {
        provider: String,
        url: String,
        detail: String,
    },
    /// A read-only call the node refused to evaluate (`{"okay": false, "cause"}`):
    /// no such contract or function at that tip, a runtime error, a cost limit.
    #[error("{provider}: read-only call refused: {cause}")]
    CallRefused { provider: String, cause: String },
    /// Every provider's circuit breaker is open: nobody is asked until the
    /// first one half-opens, in `retry_after`.
    #[error("every RPC provider is unavailable (circuit open); next probe in {retry_after:?}")]
    AllOpen { retry_after: Duration },
    /// Every provider was tried and failed; the last failure is the source.
    #[error("every RPC provider failed ({tried} tried)")]
    Exhausted {
        tried: usize,
        #[source]
        last: Box<RpcError>,
    },
}

impl RpcError {
    /// A later retry of the same request may succeed: no answer at all, a 5xx,
    /// 408, 429, every breaker open, or every provider down for such a
    /// reason. 4xx (a request the node will never accept), refused calls and
    /// unreadable answers need someone to change something.
    pub fn is_temporary(&self) -> bool {
        match self {
            RpcError::Transport { source, .. } => !source.is_builder(),
            RpcError::Status { status, .. } => *status >= 500 || matches!(status, 408 | 429),
            RpcError::AllOpen { .. } => true,
            RpcError::Exhausted { last, .. } => last.is_temporary(),
            RpcError::Config(_) | RpcError::Decode { .. } | RpcError::CallRefused { .. } => false,
        }
    }

    /// How long to wait before asking again, when the node (`Retry-After`)
    /// or the breakers said so.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            RpcError::Status { retry_after, .. } => *retry_after,
            RpcError::AllOpen { retry_after } => Some(*retry_after),
            RpcError::Exhausted { last, .. } => last.retry_after(),
            _ => None,
        }
    }

    /// Does this failure say the provider is unhealthy (counts against its
    /// circuit breaker and makes the call fall over to the next provider)?
    /// A permanent answer is the node's considered reply: another provider
    /// would give the same one.
    pub fn is_provider_failure(&self) -> bool {
        match self {
            RpcError::Transport { .. } | RpcError::Status { .. } => self.is_temporary(),
            // A garbled answer is the provider's fault, not the request's.
            RpcError::Decode { .. } => true,
            _ => false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn status(status: u16, retry_after: Option<u64>) -> RpcError {
        RpcError::Status {
            provider: "a".into(),
            url: String::new(),
            status,
            retry_after: retry_after.map(Duration::from_secs),
            body: String::new(),
        }
    }

    #[test]
    fn temporary_and_permanent() {
        for s in [500, 502, 503, 504, 408, 429] {
            assert!(status(s, None).is_temporary(), "{s}");
            assert!(status(s, None).is_provider_failure(), "{s}");
        }
        for s in [400, 401, 403, 404, 405, 413] {
            assert!(!status(s, None).is_temporary(), "{s}");
            assert!(!status(s, None).is_provider_failure(), "{s}");
        }
        let refused = RpcError::CallRefused {
            provider: "a".into(),
            cause: "NoSuchContract".into(),
        };
        assert!(!refused.is_temporary() && !refused.is_provider_failure());
        assert!(RpcError::AllOpen {
            retry_after: Duration::from_secs(3)
        }
        .is_temporary());
        let exhausted = RpcError::Exhausted {
            tried: 2,
            last: Box::new(status(429, Some(7))),
        };
        assert!(exhausted.is_temporary());
        assert_eq!(exhausted.retry_after(), Some(Duration::from_secs(7)));
        assert!(!RpcError::Config("x".into()).is_temporary());
    }
}
