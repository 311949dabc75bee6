//! `nexus-node import FILE.tsv`: replay a stacks-blockchain-api event export
//! through the observer's own ingest path.
//!
//! The file is the API's `export-events` / event-replay format
//! (`src/event-replay/` in hirosystems/stacks-blockchain-api; the fixtures in
//! `shared/fixtures/stacks-node-events/` are such files): one POST per line,
//! `id TAB receive_timestamp TAB path TAB raw-json-body`, in delivery order.
//!
//! Every line goes through [`Ingestor::deliver_group`], which handles each
//! line exactly as [`Ingestor::deliver`] (the function behind the HTTP
//! observer) does, so an import commits exactly what a live node would have
//! committed had stacks-node POSTed the same bodies; lines are committed in
//! groups of up to [`GROUP_LINES`], each group atomically. That also makes it
//! idempotent: a block or mempool transaction already in history is a
//! duplicate and changes nothing, so re-running an interrupted or finished
//! import resumes where it stopped.
//!
//! | line | what happens |
//! |---|---|
//! | good | delivered; its effects are committed with its group's, before the next group is read |
//! | not 4 TAB fields, not UTF-8, body not JSON | dead letter with source `import:LINE`; the import goes on |
//! | JSON of the wrong shape for its path | dead-lettered by the ingest path itself (source = the path), as over HTTP |
//! | temporary storage failure | the group (nothing of it committed) is retried with backoff, then the import stops naming its first line |
//! | permanent storage failure | the import stops naming the group's first line |
//!
//! Run it while no node writes to the same stores: a running node keeps its
//! chain cursor in memory and would not see the imported tip until restarted.

use std::fmt;
use std::future::Future;
use std::io::{BufRead, BufReader, IsTerminal};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;
use tokio::sync::mpsc;

use nexus_core::backoff::{Backoff, Jitter};
use nexus_core::clock::SystemClock;
use nexus_core::domain::{EventSource, PaymentEvent};
use nexus_indexer::ingest::{EventBus, IngestError, Ingestor, Outcome, Route};
use nexus_store::types::sanitize_text;
use nexus_store::DeadLetter;

use crate::config::Config;
use crate::server::{open_stores, StartError};
use nexus_core::error_chain;

/// Waits before each retry of a line after a temporary storage failure:
/// 0.1, 0.4, 1.6 and 6.4 s (~8.5 s in all: long enough for a Redis or
/// PostgreSQL restart to finish), then the import stops.
const RETRY: Backoff = Backoff {
    initial: Duration::from_millis(100),
    factor: 4.0,
    max: Duration::from_millis(6_400),
    attempts: 5,
    jitter: Jitter::None,
};
/// How often the progress line is printed when there is no progress bar.
const LOG_EVERY: Duration = Duration::from_secs(5);
/// How often the progress bar's message is rebuilt (drawing is rate-limited by indicatif).
const REDRAW_EVERY: Duration = Duration::from_millis(100);
/// Lines read ahead of the one being delivered: file I/O overlaps the commits.
const READ_AHEAD: usize = 256;
/// Lines committed together (one transaction, one fsync, one state-store
/// write). An empty block is a few hundred bytes: per-line commits would
/// spend nearly all their time waiting for the disk.
const GROUP_LINES: usize = 500;
/// ...or fewer when their bodies add up to this much (a genesis block is ~80 MB).
const GROUP_BYTES: usize = 32 << 20;
/// Read buffer: export lines are ~1 KB (empty blocks) to ~80 MB (genesis).
const READ_BUFFER: usize = 1 << 20;

/// How the import reports.
#[derive(Debug, Clone, Copy, Default)]
pub struct ImportOptions {
    /// No progress bar even on a terminal (a progress line every few seconds instead).
    pub quiet: bool,
}

/// What an import did.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Summary {
    /// Non-empty lines read.
    pub lines: u64,
    /// Bytes of the file read.
    pub bytes: u64,
    /// Blocks committed (canonical, side branch or held).
    pub blocks: u64,
    /// Blocks already in history: nothing changed.
    pub duplicates: u64,
    /// Payment events committed.
    pub payment_events: u64,
    /// Dead letters written: bad lines plus those the ingest path wrote.
    pub dead_letters: u64,
    /// Lines that were not a well-formed `id TAB time TAB path TAB json` record.
    pub bad_lines: u64,
    /// Blocks held because an ancestor is unknown.
    pub gaps: u64,
    /// Blocks that switched the canonical chain.
    pub reorgs: u64,
    /// Blocks rolled back by the deepest of them.
    pub deepest_reorg: u64,
    /// Wall time of the import.
    pub elapsed_secs: f64,
}

impl Summary {
    /// `/new_block` lines processed per second (new and duplicate).
    pub fn blocks_per_sec(&self) -> f64 {
        per_sec(self.blocks + self.duplicates, self.elapsed_secs)
    }

    /// Payment events committed per second.
    pub fn events_per_sec(&self) -> f64 {
        per_sec(self.payment_events, self.elapsed_secs)
    }

    fn tally(&mut self, route: Route, out: &Outcome) {
        self.blocks += u64::from(out.block_committed);
        self.duplicates += u64::from(out.duplicate && route == Route::NewBlock);
        self.payment_events += out.events.len() as u64;
        self.dead_letters += u64::from(out.dead_letters);
        self.gaps += u64::from(out.gap.is_some());
        if let Some(depth) = out.reorg_depth {
            self.reorgs += 1;
            self.deepest_reorg = self.deepest_reorg.max(depth);
        }
    }
}

fn per_sec(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

/// One `key=value` line: readable, and easy to grep or parse.
impl fmt::Display for Summary {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "lines={} blocks={} duplicates={} payment_events={} dead_letters={} bad_lines={} \
             gaps={} reorgs={} deepest_reorg={} elapsed_s={:.3} blocks_per_sec={:.0}",
            self.lines,
            self.blocks,
            self.duplicates,
            self.payment_events,
            self.dead_letters,
            self.bad_lines,
            self.gaps,
            self.reorgs,
            self.deepest_reorg,
            self.elapsed_secs,
            self.blocks_per_sec()
        )
    }
}

/// Why an import stopped. Everything already committed stays committed, and
/// re-running the same import resumes idempotently.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("cannot open {}", .path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot read line {line}")]
    Read {
        line: u64,
        #[source]
        source: std::io::Error,
    },
    #[error("the file reader failed")]
    Reader(#[source] tokio::task::JoinError),
    /// Boxed: `StartError` is large and this is the cold path.
    #[error(transparent)]
    Start(Box<StartError>),
    #[error("could not catch the state store up with history")]
    Catchup(#[source] IngestError),
    #[error("line {line}: storage failed after {attempts} attempt(s); re-run the import to resume from there")]
    Storage {
        line: u64,
        attempts: u32,
        #[source]
        source: IngestError,
    },
}

/// Open the configured stores, start an ingest pipeline on them (events are
/// tagged [`EventSource::Import`]) and import `path`.
pub async fn run(cfg: &Config, path: &Path, opts: ImportOptions) -> Result<Summary, ImportError> {
    let start = |e: StartError| ImportError::Start(Box::new(e));
    let contract = cfg.contract().map_err(|e| start(e.into()))?;
    let (state, history) = open_stores(cfg).await.map_err(start)?;
    let ingestor = Ingestor::start(
        state,
        history,
        Arc::new(NoSubscribers),
        Arc::new(SystemClock),
        contract,
        EventSource::Import,
    )
    .await
    .map_err(ImportError::Catchup)?;
    import_file(&ingestor, path, opts).await
}

/// Events of an import are in the event log (`seq`); a separate process has
/// no live subscribers to hand them to.
struct NoSubscribers;

impl EventBus for NoSubscribers {
    fn publish(&self, _: &PaymentEvent) {}
}

/// Deliver every line of `path` to `ingestor`, in order.
pub async fn import_file(
    ingestor: &Ingestor,
    path: &Path,
    opts: ImportOptions,
) -> Result<Summary, ImportError> {
    let open_err = |source| ImportError::Open {
        path: path.to_path_buf(),
        source,
    };
    let file = std::fs::File::open(path).map_err(open_err)?;
    let total = file.metadata().map_err(open_err)?.len();
    let started = Instant::now();
    let mut progress = Progress::new(total, opts.quiet, started);

    // Reading is blocking I/O: it runs on the blocking pool, READ_AHEAD lines ahead.
    let (tx, mut rx) = mpsc::channel(READ_AHEAD);
    let reader = tokio::task::spawn_blocking(move || read_lines(file, tx));

    let mut sum = Summary::default();
    let mut group = Pending::default();
    let result = async {
        while let Some(raw) = rx.recv().await {
            let RawLine {
                number,
                offset,
                bytes,
            } = raw;
            sum.lines += 1;
            sum.bytes = offset;
            match parse_line(&bytes) {
                Ok(line) => {
                    group.push(number, Route::from_path(line.path), line.body);
                    if group.full() {
                        group.flush(ingestor, &mut sum).await?;
                        progress.update(&sum);
                    }
                }
                Err(reason) => {
                    // Keep the order of the file: what came before is committed first.
                    group.flush(ingestor, &mut sum).await?;
                    tracing::warn!(line = number, %reason, "bad line: dead-lettered");
                    let dl = DeadLetter {
                        id: 0,
                        source: format!("import:{number}"),
                        reason: sanitize_text(&reason),
                        payload: sanitize_text(&String::from_utf8_lossy(&bytes)),
                        at: ingestor.clock().now_rfc3339(),
                    };
                    retry(number, || async {
                        Ok(ingestor.history().dead_letter(dl.clone()).await?)
                    })
                    .await?;
                    sum.bad_lines += 1;
                    sum.dead_letters += 1;
                    progress.update(&sum);
                }
            }
        }
        group.flush(ingestor, &mut sum).await?;
        Ok::<(), ImportError>(())
    }
    .await;
    // On an early stop the reader ends at its next send (the receiver is gone).
    drop(rx);
    let read = reader.await.map_err(ImportError::Reader);
    sum.elapsed_secs = started.elapsed().as_secs_f64();
    progress.finish(&sum);
    result?;
    read??;
    Ok(sum)
}

/// Lines waiting to be delivered as one commit group ([`Ingestor::deliver_group`]).
#[derive(Default)]
struct Pending {
    /// `(line number, route, body)`, in file order.
    lines: Vec<(u64, Route, String)>,
    bytes: usize,
}

impl Pending {
    fn push(&mut self, number: u64, route: Route, body: &str) {
        self.bytes += body.len();
        self.lines.push((number, route, body.to_string()));
    }

    fn full(&self) -> bool {
        self.lines.len() >= GROUP_LINES || self.bytes >= GROUP_BYTES
    }

    /// Deliver and commit the pending lines (retrying the group as a whole:
    /// a failed group left nothing behind), and count what they did.
    async fn flush(&mut self, ingestor: &Ingestor, sum: &mut Summary) -> Result<(), ImportError> {
        let Some(&(first, ..)) = self.lines.first() else {
            return Ok(());
        };
        let items: Vec<(Route, &[u8])> = self
            .lines
            .iter()
            .map(|(_, route, body)| (*route, body.as_bytes()))
            .collect();
        let outs = retry(first, || ingestor.deliver_group(&items)).await?;
        for ((_, route, _), out) in self.lines.iter().zip(&outs) {
            sum.tally(*route, out);
        }
        self.lines.clear();
        self.bytes = 0;
        Ok(())
    }
}

/// Run `op` until it succeeds, retrying temporary failures on [`RETRY`].
async fn retry<T, F, Fut>(line: u64, mut op: F) -> Result<T, ImportError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, IngestError>>,
{
    let mut attempts: u32 = 0;
    loop {
        attempts += 1;
        let err = match op().await {
            Ok(v) => return Ok(v),
            Err(e) => e,
        };
        let delay = RETRY.base(attempts).filter(|_| err.is_temporary());
        let Some(delay) = delay else {
            return Err(ImportError::Storage {
                line,
                attempts,
                source: err,
            });
        };
        tracing::warn!(line, attempts, error = %error_chain(&err), retry_in = ?delay, "storage failed; retrying the line");
        tokio::time::sleep(delay).await;
    }
}

/// One line of the file, without its line ending.
struct RawLine {
    /// 1-based.
    number: u64,
    /// Bytes of the file read up to the end of this line.
    offset: u64,
    bytes: Vec<u8>,
}

/// Send every non-empty line; stop early when the receiver is gone.
fn read_lines(file: std::fs::File, tx: mpsc::Sender<RawLine>) -> Result<(), ImportError> {
    let mut reader = BufReader::with_capacity(READ_BUFFER, file);
    let (mut number, mut offset) = (0u64, 0u64);
    loop {
        number += 1;
        let mut bytes = Vec::new();
        let n = reader
            .read_until(b'\n', &mut bytes)
            .map_err(|source| ImportError::Read {
                line: number,
                source,
            })?;
        if n == 0 {
            return Ok(());
        }
        offset += n as u64;
        while matches!(bytes.last(), Some(b'\n' | b'\r')) {
            bytes.pop();
        }
        if bytes.is_empty() {
            continue;
        }
        if tx
            .blocking_send(RawLine {
                number,
                offset,
                bytes,
            })
            .is_err()
        {
            return Ok(());
        }
    }
}

/// The fields of a well-formed line that matter for delivery.
#[derive(Debug, PartialEq, Eq)]
struct TsvLine<'a> {
    path: &'a str,
    body: &'a str,
}

/// Split a line into its four fields and check the body is JSON. The error
/// is the dead letter's reason.
///
/// The JSON check duplicates the syntax pass `deliver` makes, so that a
/// corrupt body is dead-lettered with its line number rather than only its
/// path; bodies of the wrong shape are still the ingest path's to judge.
fn parse_line(bytes: &[u8]) -> Result<TsvLine<'_>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("line is not UTF-8: {e}"))?;
    let mut fields = text.splitn(4, '\t');
    let (Some(_id), Some(_received), Some(path), Some(body)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        let n = text.split('\t').count();
        return Err(format!(
            "expected 4 TAB-separated fields (id, timestamp, path, body), found {n}"
        ));
    };
    if let Err(e) = serde_json::from_str::<serde::de::IgnoredAny>(body) {
        return Err(format!("body is not JSON: {e}"));
    }
    Ok(TsvLine { path, body })
}

/// The progress bar on a terminal, else a progress line every [`LOG_EVERY`].
struct Progress {
    /// `None`: stderr is not a terminal, or `--quiet`.
    bar: Option<ProgressBar>,
    started: Instant,
    /// Last bar message or progress line.
    last: Instant,
    total: u64,
}

impl Progress {
    fn new(total: u64, quiet: bool, started: Instant) -> Self {
        let bar = (!quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr());
            bar.set_style(
                ProgressStyle::with_template(
                    "{spinner} [{elapsed_precise}] [{bar:30}] {bytes}/{total_bytes} {msg} ETA {eta}",
                )
                .expect("static progress template")
                .progress_chars("=> "),
            );
            bar
        });
        Progress {
            bar,
            started,
            last: started,
            total,
        }
    }

    fn update(&mut self, sum: &Summary) {
        let now = Instant::now();
        let every = if self.bar.is_some() {
            REDRAW_EVERY
        } else {
            LOG_EVERY
        };
        if now.duration_since(self.last) < every {
            return;
        }
        self.last = now;
        let secs = now.duration_since(self.started).as_secs_f64();
        let rate = per_sec(sum.blocks + sum.duplicates, secs);
        match &self.bar {
            Some(bar) => {
                bar.set_position(sum.bytes);
                bar.set_message(format!(
                    "lines {} blocks {} ({rate:.0}/s) events {}",
                    sum.lines,
                    sum.blocks + sum.duplicates,
                    sum.payment_events
                ));
            }
            None => eprintln!(
                "import: {:.1}% ({} of {} bytes) lines={} blocks={} ({rate:.0}/s) events={} dead_letters={}",
                100.0 * sum.bytes as f64 / self.total.max(1) as f64,
                sum.bytes,
                self.total,
                sum.lines,
                sum.blocks + sum.duplicates,
                sum.payment_events,
                sum.dead_letters
            ),
        }
    }

    fn finish(&self, sum: &Summary) {
        if let Some(bar) = &self.bar {
            bar.set_position(sum.bytes);
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_four_fields_and_keeps_tabs_in_the_body() {
        let line = b"7\t2021-08-05 16:38:39+00\t/new_block\t{\"a\":\t1}";
        assert_eq!(
            parse_line(line),
            Ok(TsvLine {
                path: "/new_block",
                body: "{\"a\":\t1}"
            })
        );
    }

    #[test]
    fn rejects_bad_lines_with_a_reason() {
        let e = parse_line(b"1\t2\t/new_block").unwrap_err();
        assert!(e.contains("found 3"), "{e}");
        let e = parse_line(b"1\t2\t/new_block\t{\"a\":").unwrap_err();
        assert!(e.starts_with("body is not JSON"), "{e}");
        let e = parse_line(b"1\t2\t/new_block\t\"\xff\"").unwrap_err();
        assert!(e.starts_with("line is not UTF-8"), "{e}");
    }

    #[test]
    fn summary_is_one_key_value_line() {
        let s = Summary {
            lines: 3,
            blocks: 2,
            elapsed_secs: 1.0,
            ..Default::default()
        };
        let text = s.to_string();
        assert!(text.starts_with("lines=3 blocks=2 "), "{text}");
        assert!(text.ends_with("blocks_per_sec=2"), "{text}");
        assert!(!text.contains('\n'));
    }
}
