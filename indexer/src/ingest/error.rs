use nexus_store::StoreError;

/// Why a delivery could not be committed. Malformed payloads are not errors
/// (they become dead letters); only storage failures are, so the observer
/// can answer 5xx and stacks-node retries the same payload.
#[derive(Debug, thiserror::Error)]
pub enum IngestError {
    #[error("storage failed while ingesting")]
    Store(#[from] StoreError),
    /// A store stopped answering; the delivery was abandoned part-way.
    #[error("delivery took longer than {0:?}; abandoned")]
    Timeout(std::time::Duration),
}

impl IngestError {
    /// A retry of the same delivery may succeed.
    pub fn is_temporary(&self) -> bool {
        match self {
            IngestError::Store(e) => e.is_temporary(),
            IngestError::Timeout(_) => true,
        }
    }
}
