//! x402-Nexus node: configuration, the observer and API listeners, metrics,
//! and the demo. A thin layer over `nexus-indexer` and `nexus-verifier`.

pub mod analytics;
pub mod app;
pub mod config;
pub mod delivery;
pub mod demo;
pub mod forwarded;
pub mod http;
pub mod import;
pub mod metrics;
pub mod relay;
pub mod server;
pub mod stall;
pub mod verifier;

/// The allocator of every program built on this crate (the node, its tests
/// and benchmarks). The hot paths allocate many short-lived buffers on both
/// worker threads (JSON bodies, decoded transactions, Redis and PostgreSQL
/// frames); glibc's malloc spent ~12% of all CPU of `make bench-relay` in
/// its own code and arena locks (perf, 2026-11-23), mimalloc's thread-local
/// free lists avoid most of that.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;
