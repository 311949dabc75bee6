//! Crash runs.

use super::*;

/// Where a kill landed, judged from the stores afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Landed {
    /// The 200 arrived before the kill: not re-sent.
    Acknowledged,
    /// Committed, but the 200 never arrived: re-sent, must change nothing.
    CommittedUnacknowledged,
    /// Nothing committed: re-sent, must apply.
    NotCommitted,
    /// The delivery changes neither the log nor the tip: cannot tell.
    NoVisibleEffect,
}

/// Where to kill: the block with the most events, the delivery right after
/// the first block with events and the middle of the longest burst of
/// deliveries that each emit events (first run only); then seeded random
/// indices.
pub(crate) fn kill_points(
    reference: &Reference,
    stream: &[Delivery],
    rng: &mut StdRng,
    forced: bool,
) -> Vec<usize> {
    let mut points = BTreeSet::new();
    if forced {
        let events_of = |i: usize| reference.seq_after[i] - reference.before(i).0;
        let blocks_with_events: Vec<usize> = (0..stream.len())
            .filter(|&i| stream[i].route == Route::NewBlock && events_of(i) > 0)
            .collect();
        let busiest = blocks_with_events
            .iter()
            .copied()
            .max_by_key(|&i| (events_of(i), std::cmp::Reverse(i)))
            .expect("a block with events");
        points.insert(busiest);
        points.insert(blocks_with_events[0] + 1);
        // (start, length) of the longest run of event-emitting deliveries.
        let (mut burst, mut start) = ((0, 0), 0);
        for i in 0..stream.len() {
            if events_of(i) == 0 {
                start = i + 1;
            } else if i + 1 - start > burst.1 {
                burst = (start, i + 1 - start);
            }
        }
        assert!(burst.1 >= 3, "the stream has a burst of events");
        points.insert(burst.0 + burst.1 / 2);
    }
    // Half the random points among deliveries that emit events: most of the
    // stream is empty blocks, whose commits are the least interesting.
    let eventful: Vec<usize> = (0..stream.len())
        .filter(|&i| reference.seq_after[i] > reference.before(i).0)
        .collect();
    while points.len() < KILLS_PER_RUN {
        let i = if rng.gen_bool(0.5) {
            eventful[rng.gen_range(0..eventful.len())]
        } else {
            rng.gen_range(0..stream.len())
        };
        points.insert(i);
    }
    points.into_iter().collect()
}

/// `(last_seq, tip)` of the history store, and Redis' `last_seq` in production.
pub(crate) async fn progress(stores: &Stores) -> ((u64, Option<String>), Option<u64>) {
    let history = stores.history().await;
    let seq = history.last_seq().await.expect("last_seq");
    let tip = history
        .tip()
        .await
        .expect("tip")
        .map(|t| t.block.index_block_hash);
    let state = match stores.state().await {
        Some(s) => Some(s.last_seq().await.expect("redis seq")),
        None => None,
    };
    ((seq, tip), state)
}

/// The history log equals the reference's first `n` events.
pub(crate) async fn assert_prefix(stores: &Stores, reference: &Reference, n: u64, what: &str) {
    let events: Vec<PaymentEvent> = stores
        .history()
        .await
        .events_since(0, 10_000)
        .await
        .expect("events")
        .into_iter()
        .map(timeless_event)
        .collect();
    assert_eq!(
        events,
        reference.outcome.events[..n as usize],
        "{what}: the log is not the reference's first {n} events"
    );
}

/// One kill, for the summary.
#[derive(Debug)]
pub(crate) struct Kill {
    pub(crate) index: usize,
    pub(crate) delay_us: u64,
    pub(crate) landed: Landed,
    /// Killed between the history commit and the Redis write.
    pub(crate) state_behind: bool,
    /// Killed a second time while restarting.
    pub(crate) during_restart: bool,
}

pub(crate) async fn crash_run(
    kind: Kind,
    stream: &[Delivery],
    reference: &Reference,
    client: &reqwest::Client,
    seed: u64,
    forced: bool,
) -> Vec<Kill> {
    let mut rng = StdRng::seed_from_u64(seed);
    let points = kill_points(reference, stream, &mut rng, forced);
    let restart_kill = points[rng.gen_range(0..points.len())];
    let stores = Stores::create(kind).await;
    let mut node = Node::start(&stores, client).await;
    let mut kills = Vec::new();
    for (i, d) in stream.iter().enumerate() {
        if !points.contains(&i) {
            post_ok(client, &node, d).await;
            continue;
        }
        let what = format!("{kind:?}, seed {seed:#x}, kill at #{i} ({})", d.label);
        // The POST in flight, then SIGKILL after 0–3 ms (microsecond
        // resolution: tokio's timer only has milliseconds).
        let delay_us = rng.gen_range(0..=MAX_KILL_DELAY_US);
        let in_flight = tokio::spawn({
            let (client, observer, d) = (client.clone(), node.observer, d.clone());
            async move { post(&client, observer, &d).await }
        });
        tokio::task::spawn_blocking(move || std::thread::sleep(Duration::from_micros(delay_us)))
            .await
            .expect("delay");
        node.kill().await;
        stores.quiesce().await;
        let answer = in_flight.await.expect("POST task");
        let acknowledged = matches!(answer, Ok((200, _)));

        // The stores hold the state before or after this delivery, never a mix.
        let (before, after) = (reference.before(i), reference.after(i));
        let (seen, state_seq) = progress(&stores).await;
        let landed = if acknowledged {
            assert_eq!(seen, after, "{what}: acknowledged but not durable");
            Landed::Acknowledged
        } else if before == after {
            assert_eq!(seen, before, "{what}: a no-op delivery changed the stores");
            Landed::NoVisibleEffect
        } else if seen == after {
            Landed::CommittedUnacknowledged
        } else if seen == before {
            Landed::NotCommitted
        } else {
            panic!("{what}: partial commit: (last_seq, tip) = {seen:?}, expected {before:?} or {after:?}");
        };
        assert_prefix(&stores, reference, seen.0, &what).await;
        let state_behind = state_seq.is_some_and(|s| s < seen.0);
        if let Some(s) = state_seq {
            assert!(
                s <= seen.0,
                "{what}: Redis seq {s} ahead of history {}",
                seen.0
            );
        }

        // Sometimes die again while starting up (catching Redis up, warming).
        let during_restart = i == restart_kill;
        if during_restart {
            let early = Node::spawn(&stores);
            let wait = Duration::from_millis(rng.gen_range(0..=40));
            tokio::time::sleep(wait).await;
            early.kill().await;
            stores.quiesce().await;
            let (again, _) = progress(&stores).await;
            assert_eq!(again, seen, "{what}: a killed restart changed history");
        }

        // stacks-node re-sends what was not acknowledged.
        node = Node::start(&stores, client).await;
        if !acknowledged {
            post_ok(client, &node, d).await;
        }
        assert_prefix(&stores, reference, reference.seq_after[i], &what).await;
        kills.push(Kill {
            index: i,
            delay_us,
            landed,
            state_behind,
            during_restart,
        });
    }
    let api = api_view(client, &node).await;
    node.kill().await;
    let outcome = read_outcome(&stores, api).await;
    let what = format!("{kind:?}, seed {seed:#x}, kills at {points:?}");
    assert_eq!(
        outcome.events, reference.outcome.events,
        "{what}: event log"
    );
    assert_eq!(
        outcome.payments, reference.outcome.payments,
        "{what}: payments"
    );
    assert_eq!(outcome.api, reference.outcome.api, "{what}: API");
    kills
}

pub(crate) async fn crash_safety(kind: Kind) {
    let started = Instant::now();
    let seed = std::env::var("NEXUS_CRASH_SEED")
        .ok()
        .map(|s| {
            let s = s.trim_start_matches("0x");
            u64::from_str_radix(s, 16).expect("NEXUS_CRASH_SEED: hex")
        })
        .unwrap_or(DEFAULT_SEED);
    let client = reqwest::Client::builder()
        // A hang must fail the test, not block it.
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    let stream = stream();
    let reference = reference(kind, &stream, &client).await;
    let mut kills = Vec::new();
    for run in 0..CRASH_RUNS {
        kills.extend(
            crash_run(
                kind,
                &stream,
                &reference,
                &client,
                seed.wrapping_add(run),
                run == 0,
            )
            .await,
        );
    }
    for k in &kills {
        println!(
            "{kind:?}: kill at #{:3} ({}) after {:4} µs: {:?}{}{}",
            k.index,
            stream[k.index].label,
            k.delay_us,
            k.landed,
            if k.state_behind {
                ", Redis behind history"
            } else {
                ""
            },
            if k.during_restart {
                ", killed again while restarting"
            } else {
                ""
            },
        );
    }
    println!(
        "{kind:?}: seed {seed:#x}, {} kills, {} events each run, {:.1} s",
        kills.len(),
        reference.outcome.events.len(),
        started.elapsed().as_secs_f64()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_anywhere_embedded() {
    crash_safety(Kind::Embedded).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill_9_anywhere_production() {
    crash_safety(Kind::Production).await;
}

/// The node restarts while PostgreSQL is still committing what the killed
/// process sent: a "ghost" commit that lands after the new process read its
/// starting point (tip, `last_seq`) from history.
///
/// A one-shot deferred constraint trigger (test-only, in this test's own
/// database) makes the `COMMIT` of one block sleep at the server, standing in
/// for a slow fsync; the node is killed during that sleep and restarted at
/// once, stacks-node re-sends the block, then the stream carries on.
///
/// Regression: the restarted node used to read its starting point without
/// waiting for that transaction, so the re-sent block was committed twice
/// (or, when the ghost landed later, Redis missed its changes and the next
/// block looped in `Ingestor::plan`). `History::settle` now waits out other
/// writers at start-up, a commit that finds history moved marks the view
/// stale, and `plan` re-reads the view instead of looping.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn ghost_commit_after_restart() {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .expect("client");
    let stream = stream();
    let reference = reference(Kind::Production, &stream, &client).await;
    // Block 4: confirms p2 (events, a payment change).
    let at = stream
        .iter()
        .position(|d| d.label.starts_with("block 4:"))
        .expect("block 4");
    let stores = Stores::create(Kind::Production).await;
    let mut node = Node::start(&stores, &client).await;
    for d in &stream[..at] {
        post_ok(&client, &node, d).await;
    }
    let pool = stores
        .pg_reader(&stores.database_url().expect("production"))
        .await
        .pool()
        .clone();
    for sql in [
        "CREATE TABLE slow_commit (armed bool)",
        "INSERT INTO slow_commit VALUES (true)",
        "CREATE FUNCTION slow_commit() RETURNS trigger LANGUAGE plpgsql AS $$ \
         BEGIN DELETE FROM slow_commit; IF FOUND THEN PERFORM pg_sleep(2); END IF; \
         RETURN NULL; END $$",
        "CREATE CONSTRAINT TRIGGER slow_commit AFTER INSERT ON blocks \
         DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION slow_commit()",
    ] {
        sqlx::query(sql).execute(&pool).await.expect(sql);
    }
    let in_flight = tokio::spawn({
        let (client, observer, d) = (client.clone(), node.observer, stream[at].clone());
        async move { post(&client, observer, &d).await }
    });
    // Kill once the node's COMMIT sleeps at the server.
    let started = Instant::now();
    loop {
        let sleeping: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM pg_stat_activity \
             WHERE datname = current_database() AND wait_event = 'PgSleep'",
        )
        .fetch_one(&pool)
        .await
        .expect("pg_stat_activity");
        if sleeping > 0 {
            break;
        }
        assert!(
            started.elapsed() < READY_DEADLINE,
            "the commit never started"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    node.kill().await;
    assert!(in_flight.await.expect("POST task").is_err(), "no 200 yet");
    node = Node::start(&stores, &client).await;
    // stacks-node re-sends the block at once, while the ghost still sleeps:
    // the block is not visible yet, so the node applies it again; its commit
    // waits for the ghost's lock on `meta`, then must not add anything.
    post_ok(&client, &node, &stream[at]).await;
    assert_prefix(&stores, &reference, reference.seq_after[at], "ghost commit").await;
    assert_eq!(progress(&stores).await.0, reference.after(at));
    let history = stores.history().await;
    let payments = history
        .list_payments(&PaymentFilter {
            limit: 500,
            ..Default::default()
        })
        .await
        .expect("payments");
    let ids: Vec<_> = payments.iter().map(|p| p.payment_id).collect();
    let cached = stores
        .state()
        .await
        .expect("redis")
        .get_many(&ids)
        .await
        .expect("redis records");
    assert_eq!(
        cached,
        payments.into_iter().map(Some).collect::<Vec<_>>(),
        "after a ghost commit, Redis holds what history says"
    );
    for d in &stream[at + 1..] {
        post_ok(&client, &node, d).await;
    }
    let api = api_view(&client, &node).await;
    node.kill().await;
    let outcome = read_outcome(&stores, api).await;
    assert_eq!(outcome.events, reference.outcome.events, "event log");
    assert_eq!(outcome.payments, reference.outcome.payments, "payments");
    assert_eq!(outcome.api, reference.outcome.api, "API");
}
