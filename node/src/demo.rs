//! `nexus-node demo`: the recorded escrow scenario, replayed through a real
//! node on the embedded default, over real HTTP, printing every payment event.

use std::time::Instant;

use nexus_core::domain::PaymentEvent;
use nexus_core::simnet::Scenario;
use serde_json::Value;

use crate::config::Config;
use crate::server;

/// Recorded from the real contract by `npm run fixtures`; embedded so the
/// demo needs nothing outside the binary.
const SCENARIO: &str = include_str!("../../tests/fixtures/escrow-simnet.json");

/// Why the demo failed.
#[derive(Debug, thiserror::Error)]
pub enum DemoError {
    #[error("the embedded scenario does not parse")]
    Scenario(#[source] serde_json::Error),
    #[error("the node did not start")]
    Start(#[source] server::StartError),
    #[error("HTTP request to the node failed")]
    Http(#[source] reqwest::Error),
    #[error("the node answered {0} to {1}")]
    Status(u16, String),
}

fn short(s: &str) -> String {
    if s.len() > 14 {
        format!("{}…{}", &s[..8], &s[s.len() - 4..])
    } else {
        s.to_string()
    }
}

fn line(e: &PaymentEvent) -> String {
    let place = match (e.block_height, &e.txid) {
        (Some(h), _) => format!("block {h}"),
        (None, Some(_)) => "mempool".to_string(),
        _ => String::new(),
    };
    format!(
        "  seq {:>3}  {:<18} {}  {:<9} {} -> {} {:>9} uSTX  {}{}",
        e.seq,
        e.event_type.as_str(),
        short(&e.payment_id.to_string()),
        e.status.as_str(),
        short(e.sender.as_deref().unwrap_or("?")),
        short(e.recipient.as_deref().unwrap_or("?")),
        e.amount.as_deref().unwrap_or("?"),
        place,
        e.reason
            .as_deref()
            .map(|r| format!("  reason: {r}"))
            .unwrap_or_default(),
    )
}

/// Run the demo; `quiet` prints only the summary.
pub async fn run(quiet: bool) -> Result<(), DemoError> {
    let scenario = Scenario::parse(SCENARIO).map_err(DemoError::Scenario)?;
    let dir = std::env::temp_dir().join(format!("nexus-demo-{}", std::process::id()));
    let _ = std::fs::create_dir_all(&dir);
    let cfg = Config {
        observer_addr: "127.0.0.1:0".parse().expect("static"),
        api_addr: "127.0.0.1:0".parse().expect("static"),
        contract_id: scenario.contract_id.clone(),
        sqlite_path: dir.join("history.sqlite"),
        ..Config::default()
    };
    let node = server::start(cfg).await.map_err(DemoError::Start)?;
    let mut events = node.app.bus.subscribe();
    let client = reqwest::Client::new();
    let deliveries = scenario.deliveries();
    println!(
        "x402-Nexus demo: {} recorded escrow transactions from the Clarinet simnet, {} observer POSTs to {} (embedded: memory + SQLite)\n",
        scenario.transactions.len(),
        deliveries.len(),
        node.observer_addr
    );
    let started = Instant::now();
    let mut total = 0usize;
    for d in &deliveries {
        let url = format!("http://{}{}", node.observer_addr, d.route.path());
        let resp = client
            .post(&url)
            .body(d.body.clone())
            .send()
            .await
            .map_err(DemoError::Http)?;
        if !resp.status().is_success() {
            return Err(DemoError::Status(resp.status().as_u16(), d.label.clone()));
        }
        let mut printed_label = false;
        while let Ok(ev) = events.try_recv() {
            total += 1;
            if quiet {
                continue;
            }
            if !printed_label {
                println!("{}", d.label);
                printed_label = true;
            }
            println!("{}", line(&ev));
        }
    }
    let elapsed = started.elapsed();
    let url = format!("http://{}/api/payments?limit=500", node.api_addr);
    let list: Value = client
        .get(&url)
        .send()
        .await
        .map_err(DemoError::Http)?
        .json()
        .await
        .map_err(DemoError::Http)?;
    println!(
        "\nSummary ({total} payment events from {} POSTs in {:.0?}):\n",
        deliveries.len(),
        elapsed
    );
    println!(
        "  {:<15} {:<9} {:<15} {:<15} {:>10} {:>8} {:>8}  reason",
        "payment", "status", "sender", "recipient", "uSTX", "created", "settled"
    );
    for p in list["payments"].as_array().into_iter().flatten() {
        let s = |k: &str| p[k].as_str().unwrap_or("-").to_string();
        let h = |k: &str| {
            p[k]["block_height"]
                .as_u64()
                .map(|h| h.to_string())
                .unwrap_or("-".into())
        };
        println!(
            "  {:<15} {:<9} {:<15} {:<15} {:>10} {:>8} {:>8}  {}",
            short(&s("payment_id")),
            s("status"),
            short(&s("sender")),
            short(&s("recipient")),
            s("amount"),
            h("created_in"),
            h("settled_in"),
            p["reason"].as_str().unwrap_or(""),
        );
    }
    println!(
        "\nAPI was at http://{} (GET /api/payments, /health, /metrics).",
        node.api_addr
    );
    node.shutdown.cancel();
    let _ = node.wait().await;
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
