//! `nexus-node`: run the node, import an event export, or replay the recorded demo scenario.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use nexus_core::error_chain;
use nexus_node::config::{Config, Overrides};
use nexus_node::{demo, import, server};

#[derive(Parser)]
#[command(
    name = "nexus-node",
    version,
    about = "x402-Nexus payment-reliability node for Stacks escrow payments"
)]
struct Cli {
    /// Configuration file (optional; see node/nexus.example.toml).
    #[arg(long, global = true, default_value = "nexus.toml")]
    config: PathBuf,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run the observer and the HTTP API until Ctrl-C / SIGTERM.
    Run {
        #[arg(long)]
        observer_addr: Option<std::net::SocketAddr>,
        #[arg(long)]
        api_addr: Option<std::net::SocketAddr>,
        /// Full escrow contract identifier, ADDRESS.name.
        #[arg(long)]
        contract_id: Option<String>,
        /// Redis URL; unset = state in memory.
        #[arg(long)]
        redis_url: Option<String>,
        /// PostgreSQL URL; unset = history in SQLite.
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long)]
        sqlite_path: Option<PathBuf>,
    },
    /// Import a stacks-blockchain-api event export (TSV: id, timestamp, path, JSON body)
    /// through the observer's ingest path; idempotent, so re-running resumes.
    Import {
        /// The `.tsv` file, one observer POST per line, in delivery order.
        file: PathBuf,
        /// Full escrow contract identifier, ADDRESS.name.
        #[arg(long)]
        contract_id: Option<String>,
        /// Redis URL; unset = state in memory.
        #[arg(long)]
        redis_url: Option<String>,
        /// PostgreSQL URL; unset = history in SQLite.
        #[arg(long)]
        database_url: Option<String>,
        #[arg(long)]
        sqlite_path: Option<PathBuf>,
        /// No progress bar; a progress line every 5 s instead.
        #[arg(long)]
        quiet: bool,
    },
    /// Replay the recorded escrow scenario through a node on the embedded default.
    Demo {
        /// Print only the summary table.
        #[arg(long)]
        quiet: bool,
    },
}

/// `NEXUS_*` variables that are not ours were ignored: say so once.
fn warn_ignored_env() {
    let ignored = nexus_node::config::ignored_env_vars();
    if !ignored.is_empty() {
        tracing::warn!(
            variables = %ignored.join(", "),
            "ignoring NEXUS_* environment variables that are not configuration keys"
        );
    }
}

fn init_logs(json: bool) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
}

async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing a SIGTERM handler");
        tokio::select! { _ = ctrl_c => {}, _ = term.recv() => {} }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Demo { quiet } => {
            // The demo's own output is the point; keep logs to warnings.
            if std::env::var_os("RUST_LOG").is_none() {
                std::env::set_var("RUST_LOG", "warn");
            }
            init_logs(false);
            match demo::run(quiet).await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    eprintln!("demo failed: {}", error_chain(&e));
                    ExitCode::FAILURE
                }
            }
        }
        Command::Import {
            file,
            contract_id,
            redis_url,
            database_url,
            sqlite_path,
            quiet,
        } => {
            let overrides = Overrides {
                contract_id,
                redis_url,
                database_url,
                sqlite_path,
                ..Overrides::default()
            };
            let cfg = match Config::load(&cli.config, &overrides) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("configuration error: {}", error_chain(&e));
                    return ExitCode::from(2);
                }
            };
            // Per-line warnings (dead letters, reorgs) still show; info would drown the progress.
            if std::env::var_os("RUST_LOG").is_none() {
                std::env::set_var("RUST_LOG", "warn");
            }
            init_logs(cfg.log_format == "json");
            warn_ignored_env();
            match import::run(&cfg, &file, import::ImportOptions { quiet }).await {
                Ok(summary) => {
                    println!("import finished: {summary}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("import of {} stopped: {}", file.display(), error_chain(&e));
                    ExitCode::FAILURE
                }
            }
        }
        Command::Run {
            observer_addr,
            api_addr,
            contract_id,
            redis_url,
            database_url,
            sqlite_path,
        } => {
            let overrides = Overrides {
                observer_addr,
                api_addr,
                contract_id,
                redis_url,
                database_url,
                sqlite_path,
            };
            let cfg = match Config::load(&cli.config, &overrides) {
                Ok(c) => c,
                Err(e) => {
                    eprintln!("configuration error: {}", error_chain(&e));
                    return ExitCode::from(2);
                }
            };
            init_logs(cfg.log_format == "json");
            warn_ignored_env();
            let node = match server::start(cfg).await {
                Ok(n) => n,
                Err(e) => {
                    tracing::error!(error = %error_chain(&e), "failed to start");
                    return ExitCode::FAILURE;
                }
            };
            let token = node.shutdown.clone();
            tokio::spawn(async move {
                shutdown_signal().await;
                tracing::info!("shutting down: finishing in-flight deliveries");
                token.cancel();
            });
            match node.wait().await {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => {
                    tracing::error!(error = %e, "server failed");
                    ExitCode::FAILURE
                }
            }
        }
    }
}
