//! Real stacks-node payloads replayed through the real HTTP observer, into
//! both store kinds: every stacks-blockchain-api event-replay dump in file
//! order (never a 5xx, never a panic), plus the stacks-node mocknet captures.
//! See `SOURCES.md` in the captured folder for what each holds; every test
//! here needs that folder (`nexus_testkit`) and passes without running when
//! it is absent.

mod common;

use common::{read_mocknet, read_tsv, snapshot, start_node, Stores, TestNode};

/// POST every line of `file` in order; every answer must be 200. Returns the
/// answers' JSON bodies.
async fn replay(node: &TestNode, file: &str) -> Vec<serde_json::Value> {
    let lines = read_tsv(file);
    assert!(!lines.is_empty(), "{file} is empty");
    let mut answers = Vec::with_capacity(lines.len());
    for (i, ev) in lines.iter().enumerate() {
        let (code, body) = node.post(&ev.path, ev.body.clone()).await;
        assert_eq!(
            code,
            200,
            "{file} line {} (id {}, {}): {body}",
            i + 1,
            ev.id,
            ev.path
        );
        answers.push(body);
    }
    answers
}

/// Replay a whole dump: all 200, the node still healthy, and nothing
/// inconsistent between the state store and history.
async fn replays_cleanly(stores: Stores, file: &str) {
    nexus_testkit::needs_captured!();
    let node = start_node(stores, |_| {}).await;
    replay(&node, file).await;
    let (code, health) = node.get("/health").await;
    assert_eq!(code, 200, "{health}");
    snapshot(&node).await.assert_consistent();
    node.stop().await;
}

/// One `#[tokio::test]` per dump and store kind.
macro_rules! replay_tests {
    ($($name:ident => $file:literal),* $(,)?) => {
        mod embedded {
            $(
                #[tokio::test]
                async fn $name() {
                    super::replays_cleanly(super::Stores::Embedded, $file).await;
                }
            )*
        }
        mod production {
            $(
                #[tokio::test]
                async fn $name() {
                    super::replays_cleanly(super::Stores::Production, $file).await;
                }
            )*
        }
    };
}

replay_tests!(
    epoch_3_transition => "epoch-3-transition.tsv",
    fuzzed_transactions_1 => "fuzzed-transactions-1.tsv",
    mainnet_reorg_scenario1 => "mainnet-reorg-scenario1.tsv",
    mainnet_reorg_scenario2 => "mainnet-reorg-scenario2.tsv",
    poisonmicroblock => "poisonmicroblock.tsv",
);

/// `poisonmicroblock.tsv` delivers the same block twice: the second answer
/// says `duplicate`, and it changes nothing.
async fn poisonmicroblock_duplicate_is_idempotent(stores: Stores) {
    nexus_testkit::needs_captured!();
    let node = start_node(stores, |_| {}).await;
    let lines = read_tsv("poisonmicroblock.tsv");
    assert_eq!(lines.len(), 2);
    assert_eq!(
        lines[0].body, lines[1].body,
        "the fixture repeats one delivery"
    );
    let mut bus = node.app().bus.subscribe();

    let first = node.post_ok(&lines[0].path, lines[0].body.clone()).await;
    assert_eq!(first["duplicate"], false, "{first}");
    let before = snapshot(&node).await;
    let second = node.post_ok(&lines[1].path, lines[1].body.clone()).await;
    assert_eq!(second["duplicate"], true, "{second}");
    assert_eq!(second["events"], 0, "{second}");
    assert_eq!(
        snapshot(&node).await,
        before,
        "the duplicate changed stored state"
    );
    assert!(bus.try_recv().is_err(), "the duplicate published an event");
    assert_eq!(node.metric("nexus_blocks_ingested_total").await, 1.0);

    let body: serde_json::Value = serde_json::from_str(&lines[0].body).unwrap();
    let hash = body["index_block_hash"].as_str().unwrap();
    let history = node.app().ingestor.history();
    assert!(history.block_known(hash).await.unwrap());
    assert_eq!(
        history.tip().await.unwrap().unwrap().block.index_block_hash,
        hash
    );
    node.stop().await;
}

/// `fuzzed-transactions-1.tsv`: the newest payload format, a `vm_error` full
/// of control characters and `\u0000` (PostgreSQL TEXT rejects NUL), and a
/// `/drop_mempool_tx`. Every block is committed, the drop acknowledged.
async fn fuzzed_transactions_are_committed(stores: Stores) {
    nexus_testkit::needs_captured!();
    let node = start_node(stores, |_| {}).await;
    let lines = read_tsv("fuzzed-transactions-1.tsv");
    let nul_line = lines
        .iter()
        .position(|l| l.path == "/new_block" && l.body.contains("\\u0000"))
        .expect("the fixture has a block with a NUL in vm_error");
    let answers = replay(&node, "fuzzed-transactions-1.tsv").await;

    let history = node.app().ingestor.history();
    let mut blocks = 0;
    for (line, answer) in lines.iter().zip(&answers) {
        match line.path.as_str() {
            "/new_block" => {
                let b: serde_json::Value = serde_json::from_str(&line.body).unwrap();
                let hash = b["index_block_hash"].as_str().unwrap();
                assert!(
                    history.block_known(hash).await.unwrap(),
                    "block {hash} not committed"
                );
                blocks += 1;
            }
            "/drop_mempool_tx" => assert_eq!(answer["result"], "ok", "{answer}"),
            _ => {}
        }
    }
    assert_eq!(blocks, 13);
    assert_eq!(
        answers[nul_line]["dead_letters"], 0,
        "{}",
        answers[nul_line]
    );
    assert_eq!(node.metric("nexus_blocks_ingested_total").await, 13.0);
    assert!(
        node.dead_letters().await.is_empty(),
        "no payload of this file is poison"
    );
    // No escrow activity: nothing to emit.
    let snap = snapshot(&node).await;
    assert!(snap.events.is_empty() && snap.payments.is_empty());
    node.stop().await;
}

/// The stacks-node 4.x mocknet captures: three blocks and a mempool tx. The
/// mocknet escrow is another contract, so our state stays empty.
async fn mocknet_captures(stores: Stores) {
    nexus_testkit::needs_captured!();
    let node = start_node(stores, |_| {}).await;
    for (path, file) in [
        ("/new_block", "new_block_empty_coinbase_only.json"),
        ("/new_block", "new_block_contract_deploy.json"),
        ("/new_mempool_tx", "new_mempool_tx_contract_call.json"),
        ("/new_block", "new_block_escrow_create_print_event.json"),
    ] {
        let answer = node.post_ok(path, read_mocknet(file)).await;
        assert_eq!(answer["dead_letters"], 0, "{file}: {answer}");
        assert_eq!(answer["events"], 0, "{file}: {answer}");
    }
    assert_eq!(node.metric("nexus_blocks_ingested_total").await, 3.0);
    let snap = snapshot(&node).await;
    assert!(snap.payments.is_empty(), "{:?}", snap.payments);
    assert!(snap.events.is_empty(), "{:?}", snap.events);
    assert_eq!((snap.history_seq, snap.state_seq), (0, 0));
    assert!(node.dead_letters().await.is_empty());
    node.stop().await;
}

common::both_stores!(
    poisonmicroblock_duplicate_is_idempotent,
    fuzzed_transactions_are_committed,
    mocknet_captures,
);
