//! x402-Nexus node: configuration, the observer and API listeners, metrics,
//! and the demo. A thin layer over `nexus-indexer` and `nexus-verifier`.

pub mod api;
pub mod config;
pub mod delivery;
pub mod demo;
pub mod import;
pub mod metrics;
pub mod observer;
pub mod openapi;
pub mod relay;
pub mod server;
pub mod verifier;
