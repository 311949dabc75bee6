/// A storage failure. The variant says whether retrying can help: the observer
/// answers 5xx for temporary failures (stacks-node retries) and never for
/// permanent ones.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The backend is unreachable or failed in a way a retry may fix.
    #[error("{backend} unavailable")]
    Unavailable {
        backend: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// Stored data could not be read back (corruption or a schema mismatch).
    #[error("{backend} returned data we cannot read")]
    Corrupt {
        backend: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    /// The store refused the write for a reason a retry will not fix.
    #[error("{backend} rejected the write")]
    Rejected {
        backend: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

impl StoreError {
    /// Can a retry of the same operation succeed?
    pub fn is_temporary(&self) -> bool {
        matches!(self, StoreError::Unavailable { .. })
    }

    pub fn unavailable(
        backend: &'static str,
        e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError::Unavailable {
            backend,
            source: e.into(),
        }
    }

    pub fn corrupt(
        backend: &'static str,
        e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError::Corrupt {
            backend,
            source: e.into(),
        }
    }

    pub(crate) fn rejected(
        backend: &'static str,
        e: impl Into<Box<dyn std::error::Error + Send + Sync>>,
    ) -> Self {
        StoreError::Rejected {
            backend,
            source: e.into(),
        }
    }
}
