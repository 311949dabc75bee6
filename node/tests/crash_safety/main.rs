//! Crash safety of the real `nexus-node` process (issue #4, "Crash safety").
//!
//! stacks-node retries a POST until it gets a 200 ([`event_dispatcher.rs`]),
//! so a `kill -9` of the node at any moment, a restart on the same stores and
//! the re-sent unacknowledged payload must give exactly what an uninterrupted
//! run gives: the same event log (`seq` 1..N, nothing lost, nothing twice)
//! and the same payments.
//!
//! For each deployment the recorded escrow scenario (plus empty blocks, so
//! every payment becomes final) is POSTed once without interruption: the
//! reference. Then crash runs, each on fresh stores, SIGKILL the process while
//! one POST is in flight (after a random 0–3 ms, so kills land before, during
//! and after the commit), restart it, re-send that POST unless its 200 had
//! arrived, and carry on. After every kill the stores must hold the state of
//! the reference either just before or just after that delivery (never a
//! mix), and after the re-send exactly the reference's log up to it; at the
//! end, the whole log, the payments and the API must equal the reference's
//! (ignoring only wall-clock timestamps).
//!
//! `NEXUS_CRASH_SEED` (printed) replays the same kill points and delays;
//! `NEXUS_TEST_PG_URL` / `NEXUS_TEST_REDIS_URL` name the services.
//!
//! [`event_dispatcher.rs`]: https://github.com/stacks-network/stacks-core/blob/master/testnet/stacks-node/src/event_dispatcher.rs

use std::collections::BTreeSet;
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nexus_core::domain::{Payment, PaymentEvent};
use nexus_core::observer::Route;
use nexus_core::simnet::{block_envelope, Delivery, Scenario};
use nexus_store::postgres::PgHistory;
use nexus_store::redis::RedisState;
use nexus_store::sqlite::SqliteHistory;
use nexus_store::{History, PaymentFilter, StateStore};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::Value;
use sqlx::Connection;
use tokio::process::{Child, Command};
use tokio::sync::OnceCell;

mod compare;
mod process;
// The crash runs and the tests.
mod runs;
mod stores;

use compare::*;
use process::*;
use stores::*;

/// The escrow the recorded scenario calls.
const CONTRACT_ID: &str = "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM.x402-nexus-escrow";

const SCENARIO: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../tests/fixtures/escrow-simnet.json"
));

/// Empty blocks after the scenario: enough for the last transition to reach
/// the default confirmation depth (6), so `payment:final` events fire late too.
const TAIL_BLOCKS: u64 = 6;

/// Crash runs per deployment, and kills in each.
const CRASH_RUNS: u64 = 4;
const KILLS_PER_RUN: usize = 5;

/// Upper bound of the random delay between starting a POST and the SIGKILL.
const MAX_KILL_DELAY_US: u64 = 3_000;

/// Default seed; `NEXUS_CRASH_SEED` overrides it.
const DEFAULT_SEED: u64 = 0x4e58_5553_0004;

/// `application_name` of the test's own PostgreSQL connections.
const READER_APP: &str = "nexus-crash-test";

/// How long a node may take to answer `GET /health`.
const READY_DEADLINE: Duration = Duration::from_secs(20);

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// Memory state + SQLite history (rebuilt from the file on restart).
    Embedded,
    /// Redis state + PostgreSQL history.
    Production,
}
