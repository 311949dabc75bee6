//! `nexus-node import`: the real binary on real TSV files.
//!
//! * the real mainnet reorg capture (`mainnet-reorg-scenario2.tsv`) into SQLite;
//! * the recorded escrow scenario written out as a TSV export, with bad lines
//!   mixed in, into SQLite and into the real Redis + PostgreSQL;
//!
//! each imported twice: the second import must change nothing.

mod common;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use nexus_core::simnet::Scenario;
use nexus_store::redis::RedisState;
use nexus_store::sqlite::SqliteHistory;
use nexus_store::Queries;
use nexus_store::StateStore;
use sqlx::Connection;

/// A captured mainnet reorg (not in the repository: `nexus_testkit`).
fn mainnet_reorg(n: u8) -> std::path::PathBuf {
    nexus_testkit::captured(&format!(
        "stacks-blockchain-api/mainnet-reorg-scenario{n}.tsv"
    ))
}
const ESCROW: &str = include_str!("../../tests/fixtures/escrow-simnet.json");

/// Run `nexus-node import` with `args`; the config file is absent on purpose
/// so only flags and `env` count.
fn import(file: &Path, args: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_nexus-node"));
    cmd.arg("--config")
        .arg("/nonexistent/nexus.toml")
        .arg("import")
        .arg(file)
        .arg("--quiet")
        .args(args);
    for (k, v) in env {
        cmd.env(k, v);
    }
    // Ambient NEXUS_* variables must not redirect the import.
    for (k, _) in std::env::vars() {
        if k.starts_with("NEXUS_") && !env.iter().any(|(e, _)| *e == k) {
            cmd.env_remove(k);
        }
    }
    cmd.output().expect("run nexus-node import")
}

/// The `key=value` pairs of the `import finished:` line on stdout; panics
/// (showing stderr) unless the import exited 0.
fn summary(out: &Output) -> BTreeMap<String, String> {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "import failed ({}):\n{stdout}\n{stderr}",
        out.status
    );
    let line = stdout
        .lines()
        .find_map(|l| l.strip_prefix("import finished: "))
        .unwrap_or_else(|| panic!("no summary line in:\n{stdout}"));
    line.split_whitespace()
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn count(s: &BTreeMap<String, String>, key: &str) -> u64 {
    s.get(key)
        .unwrap_or_else(|| panic!("{key} missing from {s:?}"))
        .parse()
        .expect("a count")
}

/// Row counts of the tables an import writes to.
fn sqlite_rows(path: &Path) -> BTreeMap<&'static str, i64> {
    let conn = rusqlite::Connection::open(path).expect("open history");
    ["blocks", "payment_events", "payments", "dead_letters"]
        .into_iter()
        .map(|t| {
            let n = conn
                .query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))
                .expect("count rows");
            (t, n)
        })
        .collect()
}

/// The escrow scenario as an export file, with bad lines at known numbers.
/// Returns the path and the line numbers that must be dead-lettered.
fn escrow_tsv(dir: &Path) -> (PathBuf, Vec<u64>) {
    let scenario = Scenario::parse(ESCROW).expect("scenario fixture");
    let mut lines: Vec<Vec<u8>> = scenario
        .deliveries()
        .iter()
        .enumerate()
        .map(|(i, d)| {
            let mut l =
                format!("{}\t2026-01-01 00:00:00+00\t{}\t", i + 1, d.route.path()).into_bytes();
            l.extend_from_slice(&d.body);
            l
        })
        .collect();
    let good = lines.len();
    // 1-based numbers once inserted (each insert shifts the ones after it).
    let bad: Vec<(usize, Vec<u8>)> = vec![
        (2, b"17\t2026-01-01 00:00:00+00\t/new_block".to_vec()),
        (
            4,
            b"18\t2026-01-01 00:00:00+00\t/new_block\t{\"block_height\": 3,".to_vec(),
        ),
        (
            6,
            b"19\t2026-01-01 00:00:00+00\t/new_burn_block\t{\"x\": \"\xff\xfe\"}".to_vec(),
        ),
        (good + 4, b"just some text".to_vec()),
    ];
    for (at, l) in &bad {
        lines.insert(at - 1, l.clone());
    }
    let path = dir.join("escrow.tsv");
    let mut f = std::fs::File::create(&path).expect("create tsv");
    for l in &lines {
        f.write_all(l).expect("write");
        f.write_all(b"\n").expect("write");
    }
    // A blank line at the end is not a record.
    f.write_all(b"\n").expect("write");
    (path, bad.iter().map(|(n, _)| *n as u64).collect())
}

#[test]
fn mainnet_reorg_capture_imports_once() {
    nexus_testkit::needs_captured!();
    let dir = tempfile::tempdir().expect("tmp");
    let db = dir.path().join("history.sqlite");
    let db_arg = db.to_str().expect("utf-8 path");
    let scenario2 = mainnet_reorg(2);
    let file = scenario2.as_path();

    let first = summary(&import(file, &["--sqlite-path", db_arg], &[]));
    // 5 × /new_block (two siblings at height 2; height 3 builds on the later one) + 1 × /new_microblocks.
    assert_eq!(count(&first, "lines"), 6, "{first:?}");
    assert_eq!(count(&first, "blocks"), 5, "{first:?}");
    assert_eq!(count(&first, "duplicates"), 0, "{first:?}");
    assert_eq!(count(&first, "reorgs"), 1, "{first:?}");
    assert_eq!(count(&first, "deepest_reorg"), 1, "{first:?}");
    assert_eq!(count(&first, "gaps"), 0, "{first:?}");
    assert_eq!(count(&first, "dead_letters"), 0, "{first:?}");
    let rows = sqlite_rows(&db);
    assert_eq!(rows["blocks"], 5);

    let second = summary(&import(file, &["--sqlite-path", db_arg], &[]));
    assert_eq!(count(&second, "blocks"), 0, "{second:?}");
    assert_eq!(count(&second, "duplicates"), 5, "{second:?}");
    assert_eq!(count(&second, "reorgs"), 0, "{second:?}");
    assert_eq!(sqlite_rows(&db), rows, "a second import changes nothing");
}

#[tokio::test]
async fn bad_lines_are_dead_lettered_with_their_line_number() {
    let dir = tempfile::tempdir().expect("tmp");
    let (file, bad) = escrow_tsv(dir.path());
    let db = dir.path().join("history.sqlite");
    let db_arg = db.to_str().expect("utf-8 path");

    let first = summary(&import(&file, &["--sqlite-path", db_arg], &[]));
    let events = count(&first, "payment_events");
    assert!(events > 0, "the scenario has escrow events: {first:?}");
    assert_eq!(count(&first, "bad_lines"), bad.len() as u64, "{first:?}");
    assert_eq!(count(&first, "dead_letters"), bad.len() as u64, "{first:?}");
    assert!(count(&first, "blocks") > 0, "{first:?}");

    let history = SqliteHistory::open(&db).expect("open history");
    assert_eq!(history.last_seq().await.expect("seq"), events);
    let mut sources: Vec<String> = history
        .dead_letters(100)
        .await
        .expect("dead letters")
        .into_iter()
        .map(|d| d.source)
        .collect();
    sources.sort();
    let mut want: Vec<String> = bad.iter().map(|n| format!("import:{n}")).collect();
    want.sort();
    assert_eq!(sources, want);
    let letters = history.dead_letters(100).await.expect("dead letters");
    let reason = |n: u64| {
        letters
            .iter()
            .find(|d| d.source == format!("import:{n}"))
            .map(|d| d.reason.clone())
            .expect("dead letter")
    };
    assert!(
        reason(bad[0]).contains("4 TAB-separated fields"),
        "{}",
        reason(bad[0])
    );
    assert!(reason(bad[1]).contains("not JSON"), "{}", reason(bad[1]));
    assert!(reason(bad[2]).contains("not UTF-8"), "{}", reason(bad[2]));
    drop(history);
    let rows = sqlite_rows(&db);

    let second = summary(&import(&file, &["--sqlite-path", db_arg], &[]));
    assert_eq!(count(&second, "blocks"), 0, "{second:?}");
    assert_eq!(
        count(&second, "duplicates"),
        count(&first, "blocks"),
        "{second:?}"
    );
    assert_eq!(count(&second, "payment_events"), 0, "{second:?}");
    let again = sqlite_rows(&db);
    assert_eq!(again["blocks"], rows["blocks"]);
    assert_eq!(again["payment_events"], rows["payment_events"]);
    assert_eq!(again["payments"], rows["payments"]);
    // Dead letters are a log of what was rejected: the bad lines are logged again.
    assert_eq!(
        again["dead_letters"],
        rows["dead_letters"] + bad.len() as i64
    );
}

/// A fresh `nexus_t_<hex>` database and Redis prefix, removed on drop (also after a failed assertion).
struct Services {
    admin_url: String,
    db: String,
    redis_url: String,
    prefix: String,
}

impl Services {
    async fn create() -> Services {
        let hex = format!("{:016x}", rand::random::<u64>());
        let admin_url = common::pg_admin_url();
        let db = nexus_testkit::pg::create_database(&admin_url).await;
        Services {
            admin_url,
            db,
            redis_url: common::redis_url(),
            prefix: format!("nexus-import-test:{hex}:"),
        }
    }

    fn database_url(&self) -> String {
        common::with_database(&self.admin_url, &self.db)
    }

    async fn rows(&self) -> BTreeMap<&'static str, i64> {
        let mut conn = sqlx::PgConnection::connect(&self.database_url())
            .await
            .expect("connect");
        let mut out = BTreeMap::new();
        for t in ["blocks", "payment_events", "payments", "dead_letters"] {
            let (n,): (i64,) = sqlx::query_as(&format!("SELECT count(*) FROM {t}"))
                .fetch_one(&mut conn)
                .await
                .expect("count rows");
            out.insert(t, n);
        }
        conn.close().await.ok();
        out
    }
}

impl Drop for Services {
    fn drop(&mut self) {
        let (redis_url, prefix, admin_url, db) = (
            self.redis_url.clone(),
            self.prefix.clone(),
            self.admin_url.clone(),
            self.db.clone(),
        );
        // A destructor cannot await: clean up on a thread with its own runtime.
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                if let Ok(s) = RedisState::connect(&redis_url, &prefix).await {
                    let _ = s.flush_prefix().await;
                }
                let mut admin = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {db} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .ok()
            })
        })
        .join();
    }
}

#[tokio::test]
async fn imports_into_redis_and_postgres() {
    let services = Services::create().await;
    let dir = tempfile::tempdir().expect("tmp");
    let (file, bad) = escrow_tsv(dir.path());
    let db_url = services.database_url();
    let args = [
        "--redis-url",
        &services.redis_url,
        "--database-url",
        &db_url,
    ];
    let env = [("NEXUS_REDIS_PREFIX", services.prefix.as_str())];

    let first = summary(&import(&file, &args, &env));
    let events = count(&first, "payment_events");
    assert!(events > 0, "{first:?}");
    assert_eq!(count(&first, "bad_lines"), bad.len() as u64, "{first:?}");
    let rows = services.rows().await;
    assert_eq!(rows["payment_events"], events as i64);
    assert_eq!(rows["dead_letters"], bad.len() as i64);
    // The state store (under our prefix only) reflects every committed event.
    let state = RedisState::connect(&services.redis_url, &services.prefix)
        .await
        .expect("redis");
    assert_eq!(state.last_seq().await.expect("seq"), events);

    let second = summary(&import(&file, &args, &env));
    assert_eq!(count(&second, "blocks"), 0, "{second:?}");
    assert_eq!(count(&second, "payment_events"), 0, "{second:?}");
    let again = services.rows().await;
    assert_eq!(again["blocks"], rows["blocks"]);
    assert_eq!(again["payment_events"], rows["payment_events"]);
    assert_eq!(again["payments"], rows["payments"]);
    assert_eq!(state.last_seq().await.expect("seq"), events);
}

/// A dropped escrow create is resubmittable by the same txid (right for a
/// live re-broadcast), so the import path skips mempool txs it already
/// recorded: replaying `mempool tx → drop` must not emit `submitted`,
/// `dropped` again.
#[test]
fn dropped_mempool_tx_reimports_idempotently() {
    let scenario = Scenario::parse(ESCROW).expect("scenario fixture");
    let create = scenario
        .transactions
        .iter()
        .find(|t| t.function == "create-payment")
        .expect("a create in the fixture");
    let drop = serde_json::json!({"dropped_txids": [create.txid], "new_txid": null, "reason": "StaleGarbageCollect"});
    let dir = tempfile::tempdir().expect("tmp");
    let file = dir.path().join("drop.tsv");
    let text = format!(
        "1\tt\t/new_mempool_tx\t{}\n2\tt\t/drop_mempool_tx\t{drop}\n",
        serde_json::json!([create.tx_hex])
    );
    std::fs::write(&file, text).expect("write tsv");
    let db = dir.path().join("history.sqlite");
    let db_arg = db.to_str().expect("utf-8 path");
    let first = summary(&import(&file, &["--sqlite-path", db_arg], &[]));
    assert_eq!(count(&first, "payment_events"), 2, "{first:?}");
    let second = summary(&import(&file, &["--sqlite-path", db_arg], &[]));
    assert_eq!(count(&second, "payment_events"), 0, "{second:?}");
}

/// An import commits lines in groups ([`Ingestor::deliver_group`]); that must
/// end in exactly what delivering the same lines one by one (the live
/// observer's path) ends in: the same event log, payments, tip and dead
/// letters. Mixed in: the escrow scenario, a real mainnet reorg, poison, and
/// re-deliveries.
#[tokio::test]
async fn grouped_delivery_commits_exactly_what_single_delivery_commits() {
    use nexus_core::clock::FixedClock;
    use nexus_indexer::ingest::{BroadcastBus, Ingestor, Route};
    use nexus_store::memory::MemoryState;
    use nexus_store::PaymentFilter;
    use std::sync::Arc;

    let scenario = Scenario::parse(ESCROW).expect("scenario fixture");
    let mut items: Vec<(Route, Vec<u8>)> = scenario
        .deliveries()
        .into_iter()
        .map(|d| (d.route, d.body))
        .collect();
    // A real mainnet reorg too, where the captured payloads are at hand.
    if nexus_testkit::captured_available() {
        let reorg = std::fs::read_to_string(mainnet_reorg(1)).expect("mainnet reorg capture");
        for line in reorg.lines().filter(|l| !l.is_empty()) {
            let f: Vec<&str> = line.splitn(4, '\t').collect();
            items.push((Route::from_path(f[2]), f[3].as_bytes().to_vec()));
        }
    }
    items.push((Route::NewBlock, b"{\"block_height\": ".to_vec()));
    let again: Vec<(Route, Vec<u8>)> = items[..6].to_vec();
    items.extend(again);

    let contract: nexus_core::decode::ContractId = nexus_node::config::DEFAULT_CONTRACT_ID
        .parse()
        .expect("contract id");
    let start = || async {
        let history = Arc::new(SqliteHistory::open_in_memory().expect("sqlite"));
        Ingestor::start(
            Arc::new(MemoryState::new()),
            history,
            Arc::new(BroadcastBus::new(16)),
            Arc::new(FixedClock("2026-01-01T00:00:00.000Z".into())),
            contract.clone(),
            nexus_core::domain::EventSource::Import,
        )
        .await
        .expect("ingestor")
    };
    let single = start().await;
    for (route, body) in &items {
        single.deliver(*route, body).await.expect("deliver");
    }
    let grouped = start().await;
    for chunk in items.chunks(5) {
        let refs: Vec<(Route, &[u8])> = chunk.iter().map(|(r, b)| (*r, b.as_slice())).collect();
        let outs = grouped.deliver_group(&refs).await.expect("deliver group");
        assert_eq!(outs.len(), chunk.len());
    }

    let (a, b) = (single.history(), grouped.history());
    let events = a.events_since(0, 100_000).await.expect("events");
    assert!(
        events.len() > 10,
        "the scenario has events: {}",
        events.len()
    );
    assert_eq!(events, b.events_since(0, 100_000).await.expect("events"));
    let all = PaymentFilter {
        limit: 10_000,
        ..Default::default()
    };
    let payments = a.list_payments(&all).await.expect("payments");
    assert_eq!(payments, b.list_payments(&all).await.expect("payments"));
    assert_eq!(a.tip().await.expect("tip"), b.tip().await.expect("tip"));
    let reasons = |d: Vec<nexus_store::DeadLetter>| {
        d.into_iter()
            .map(|d| (d.source, d.reason))
            .collect::<Vec<_>>()
    };
    assert_eq!(
        reasons(a.dead_letters(100).await.expect("dl")),
        reasons(b.dead_letters(100).await.expect("dl"))
    );
    // The state store got the same records.
    for p in &payments {
        assert_eq!(
            single.state().get(&p.payment_id).await.expect("state"),
            grouped.state().get(&p.payment_id).await.expect("state")
        );
    }
}
