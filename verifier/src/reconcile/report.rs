//! What the reconciler tells the rest of the node: one report per cycle
//! (logs, metrics), discrepancies as they are corrected, and the loop's
//! state for `/health`.

use serde::Serialize;

use nexus_core::domain::PaymentStatus;

/// What one cycle did (logged, exported as metrics, shown on `/health`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct CycleReport {
    pub tip_height: Option<u64>,
    pub tip: Option<String>,
    /// Payments watched.
    pub open: usize,
    /// RPC calls made (`/v2/info` included).
    pub rpc_calls: u64,
    /// Payments decided from this tip's cached answer, without a call.
    pub cached: usize,
    /// Payments left for the next cycle (budget exhausted or their call failed).
    pub carried_over: usize,
    pub rpc_errors: u64,
    pub corrections: usize,
    /// Corrections skipped because the payment changed meanwhile.
    pub stale: usize,
    pub proofs: usize,
    /// Why the cycle could not read the chain (RPC down, not synced).
    pub degraded: Option<String>,
    pub duration_ms: u64,
}

/// Seen by the node's metrics.
pub trait ReconcileObserver: Send + Sync + 'static {
    fn cycle(&self, report: &CycleReport, slow: bool);
    /// A mismatch corrected: stored status `from`, now `to`.
    fn discrepancy(&self, from: PaymentStatus, to: PaymentStatus);
}

/// Observes nothing.
#[derive(Debug, Default, Clone, Copy)]
pub struct NoReconcileObserver;

impl ReconcileObserver for NoReconcileObserver {
    fn cycle(&self, _: &CycleReport, _: bool) {}
    fn discrepancy(&self, _: PaymentStatus, _: PaymentStatus) {}
}

/// The loop's state as `/health` shows it.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ReconcileStatus {
    /// This node holds the lease (or runs alone) and reconciles.
    pub leader: bool,
    pub degraded: bool,
    pub last_cycle: Option<CycleReport>,
    /// A storage failure of the last cycle.
    pub last_error: Option<String>,
    pub cycles: u64,
}
