//! Test support shared by the workspace's crates (a dev-dependency only).
//!
//! Captured stacks-node payloads are third-party data and are not in the
//! repository: stacks-blockchain-api's event-replay TSVs, a mocknet
//! stacks-node's observer POSTs, stacks-core's RPC examples (see
//! `SOURCES.md` in that folder). Tests that replay them find the folder
//! through [`VAR`], which defaults to `../shared/fixtures/stacks-node-events`
//! beside the repository. Without the folder those tests pass without
//! running (`make test` says so once); with [`REQUIRE`] set to `1`, as
//! `.ci/run` does, an absent folder fails them instead.
//!
//! Also: a fresh PostgreSQL database ([`pg`]) or Redis key prefix
//! ([`redis`]) per test, and a local TLS server whose test CA is made per
//! run ([`tls`]), for the https calls.

pub mod pg;
pub mod redis;
pub mod tls;

use std::path::PathBuf;

/// The folder of captured payloads.
pub const VAR: &str = "NEXUS_CAPTURED_FIXTURES";
/// `1`: an absent folder is a failure, not a skip.
pub const REQUIRE: &str = "NEXUS_REQUIRE_CAPTURED";

/// `$NEXUS_CAPTURED_FIXTURES`, else `../shared/fixtures/stacks-node-events`
/// beside the workspace.
pub fn captured_dir() -> PathBuf {
    match std::env::var_os(VAR) {
        Some(dir) if !dir.is_empty() => PathBuf::from(dir),
        _ => PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("../../shared/fixtures/stacks-node-events"),
    }
}

/// Are the captured payloads here? Call it first in a test that needs them
/// and return when it says no. Panics instead when [`REQUIRE`] is `1`.
pub fn captured_available() -> bool {
    let dir = captured_dir();
    if dir.is_dir() {
        return true;
    }
    if std::env::var(REQUIRE).as_deref() == Ok("1") {
        panic!(
            "{REQUIRE}=1 but the captured stacks-node payloads are not at {} (set {VAR})",
            dir.display()
        );
    }
    false
}

/// A file under the captured folder (check [`captured_available`] first).
pub fn captured(rel: &str) -> PathBuf {
    captured_dir().join(rel)
}

/// The text of a captured file; panics with the path when it cannot be read.
pub fn read_captured(rel: &str) -> String {
    let path = captured(rel);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Skip the calling test (return from it) when the captured payloads are absent.
#[macro_export]
macro_rules! needs_captured {
    () => {
        if !$crate::captured_available() {
            return;
        }
    };
}
