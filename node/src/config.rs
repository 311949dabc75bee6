//! Configuration: defaults → `nexus.toml` → `NEXUS_*` environment variables →
//! command-line flags, later layers winning. Every key is listed with its
//! default in `node/nexus.example.toml`.

use std::net::SocketAddr;
use std::path::PathBuf;

use figment::providers::{Env, Format, Serialized, Toml};
use figment::Figment;
use serde::{Deserialize, Serialize};

/// The devnet deployer's escrow: the default so `nexus-node run` works against Clarinet devnet.
pub const DEFAULT_CONTRACT_ID: &str = "ST1PQHQKV0RJXZFY1DGX8MNSNYVE3VGZJSRTPGZGM.x402-nexus-escrow";

/// The node's configuration. Env var names are `NEXUS_` + the upper-cased key.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Where stacks-node's `[[events_observer]]` POSTs (`NEXUS_OBSERVER_ADDR`).
    pub observer_addr: SocketAddr,
    /// HTTP API, health and metrics (`NEXUS_API_ADDR`).
    pub api_addr: SocketAddr,
    /// The escrow contract followed; prints of any other contract are ignored (`NEXUS_CONTRACT_ID`).
    pub contract_id: String,
    /// Redis for current state; unset = in memory (`NEXUS_REDIS_URL`).
    pub redis_url: Option<String>,
    /// Prefix of every Redis key, so several deployments can share a server (`NEXUS_REDIS_PREFIX`).
    pub redis_prefix: String,
    /// PostgreSQL for history; unset = SQLite at `sqlite_path` (`NEXUS_DATABASE_URL`).
    pub database_url: Option<String>,
    /// SQLite history file of the embedded default (`NEXUS_SQLITE_PATH`).
    pub sqlite_path: PathBuf,
    /// Largest observer body accepted; a genesis `/new_block` is ~80 MB (`NEXUS_BODY_LIMIT_BYTES`).
    pub body_limit_bytes: usize,
    /// `text` or `json` logs (`NEXUS_LOG_FORMAT`); the level comes from `RUST_LOG`.
    pub log_format: String,
    /// Blocks (the transition's own included) before a payment is `final` (`NEXUS_CONFIRMATION_DEPTH`).
    pub confirmation_depth: u64,
    /// A delivery still not committed after this many seconds is abandoned and
    /// answered 503, so a stalled store cannot block ingestion forever
    /// (`NEXUS_DELIVERY_TIMEOUT_SECS`).
    pub delivery_timeout_secs: u64,
    /// stacks-node RPC (`http://host:20443`, or `https://`) when `rpc_urls` is empty: the
    /// blocks of a gap are read from it, the verifier reads and the relay
    /// broadcasts through it; no RPC at all = gaps stay open until the
    /// blocks are delivered (`NEXUS_RPC_URL`).
    pub rpc_url: Option<String>,
    /// The node's `connection_options.auth_token`, required by the block replay
    /// endpoint the gap fill reads (`NEXUS_RPC_AUTH_TOKEN`).
    pub rpc_auth_token: Option<String>,
    /// Open `/ws` connections at most; more are refused with 503 (`NEXUS_WS_MAX_CONNECTIONS`).
    pub ws_max_connections: usize,
    /// Subscriptions per WebSocket connection (`NEXUS_WS_MAX_SUBSCRIPTIONS`).
    pub ws_max_subscriptions: usize,
    /// Largest WebSocket message a client may send (`NEXUS_WS_MAX_MESSAGE_BYTES`).
    pub ws_max_message_bytes: usize,
    /// Frames queued per connection for a client that reads slowly (`NEXUS_WS_SEND_QUEUE`).
    pub ws_send_queue: usize,
    /// A frame that waits this long for room in a full queue closes the
    /// connection with code 4008 (`NEXUS_WS_SEND_TIMEOUT_MS`).
    pub ws_send_timeout_ms: u64,
    /// Server ping interval (`NEXUS_WS_PING_INTERVAL_MS`).
    pub ws_ping_interval_ms: u64,
    /// A client silent (no pong, no frame) this long is dropped with code 4000 (`NEXUS_WS_PING_TIMEOUT_MS`).
    pub ws_ping_timeout_ms: u64,
    /// Webhook endpoints (`[[webhooks]]` tables: name, url, secret, events,
    /// principal, payment_id); set them in `nexus.toml`.
    pub webhooks: Vec<nexus_delivery::webhook::EndpointConfig>,
    /// Attempts per webhook delivery before it is dead-lettered (`NEXUS_WEBHOOK_MAX_ATTEMPTS`).
    pub webhook_max_attempts: u32,
    /// Wait after the first failed attempt (`NEXUS_WEBHOOK_INITIAL_BACKOFF_MS`).
    pub webhook_initial_backoff_ms: u64,
    /// Wait before the last attempt; the waits grow geometrically in
    /// between, each ±20% (`NEXUS_WEBHOOK_MAX_BACKOFF_MS`).
    pub webhook_max_backoff_ms: u64,
    /// Per-attempt HTTP timeout (`NEXUS_WEBHOOK_TIMEOUT_MS`).
    pub webhook_timeout_ms: u64,
    /// Deliveries answered 2xx are deleted this many hours later; 0 keeps
    /// them forever (`NEXUS_WEBHOOK_RETENTION_HOURS`). Dead letters stay.
    pub webhook_retention_hours: u64,
    /// stacks-node RPC providers in preference order, each behind a circuit
    /// breaker, shared by the verifier, the relay and the gap fill; empty =
    /// `rpc_url` alone; both unset = no reconciliation, relay or gap fill (`NEXUS_RPC_URLS`, e.g. `["http://a:20443","http://b:20443"]`).
    pub rpc_urls: Vec<String>,
    /// Bound on one RPC request (reads, broadcasts; a block replay gets at
    /// least 10 s), milliseconds (`NEXUS_RPC_TIMEOUT_MS`).
    pub rpc_timeout_ms: u64,
    /// Seconds between reconcile cycle starts; a slow cycle delays the next,
    /// never overlaps it (`NEXUS_RECONCILE_INTERVAL_SECS`).
    pub reconcile_interval_secs: u64,
    /// `get-payment` calls in flight at once (`NEXUS_RECONCILE_CONCURRENCY`).
    pub reconcile_concurrency: usize,
    /// `get-payment` calls per cycle at most; the rest carry over to the next
    /// cycle, least recently checked first (`NEXUS_RECONCILE_BUDGET`).
    pub reconcile_budget: usize,
    /// A `pending`/`submitted` payment the chain still does not know after this
    /// many seconds is marked `dropped` (`NEXUS_RECONCILE_DROP_AFTER_SECS`).
    pub reconcile_drop_after_secs: u64,
    /// Time to live of the reconciler's leader lease in Redis, milliseconds;
    /// renewed every third of it (`NEXUS_LEASE_TTL_MS`).
    pub lease_ttl_ms: u64,
    /// Chain id relayed transactions must carry; unset = from the contract's
    /// address (`SP`/`SM`: mainnet 0x00000001, else testnet 0x80000000) (`NEXUS_CHAIN_ID`).
    pub chain_id: Option<u32>,
    /// Broadcast attempts per relayed transaction before it fails (`NEXUS_RELAY_MAX_ATTEMPTS`).
    pub relay_max_attempts: u32,
    /// Cap of the first backoff; each later cap doubles (full jitter) (`NEXUS_RELAY_INITIAL_BACKOFF_MS`).
    pub relay_initial_backoff_ms: u64,
    /// Longest wait between two attempts (`NEXUS_RELAY_MAX_BACKOFF_MS`).
    pub relay_max_backoff_ms: u64,
    /// A broadcast still failing this long after it was accepted fails for
    /// good (`NEXUS_RELAY_MAX_RETRY_SECS`).
    pub relay_max_retry_secs: u64,
    /// Broadcasts in flight at once (`NEXUS_RELAY_CONCURRENCY`).
    pub relay_concurrency: usize,
    /// Concurrent `POST /api/payments` committed together at most (`NEXUS_RELAY_BATCH_MAX`).
    pub relay_batch_max: usize,
    /// Bearer tokens. When set, write endpoints (`POST /api/payments`)
    /// require one; admin endpoints (webhook dead letters) always do
    /// (`NEXUS_API_KEYS`, e.g. `["k1","k2"]`).
    pub api_keys: Vec<String>,
    /// Per client IP, on `/api/*` (`NEXUS_RATE_LIMIT_PER_IP`, e.g.
    /// `{per_second=50,burst=100}`); `per_second = 0` turns it off.
    pub rate_limit_per_ip: Option<nexus_relay::ratelimit::Quota>,
    /// Per API key, on `/api/*` requests that carry one (`NEXUS_RATE_LIMIT_PER_KEY`).
    pub rate_limit_per_key: Option<nexus_relay::ratelimit::Quota>,
    /// Reverse proxies (CIDRs, or single addresses) whose `X-Forwarded-For`
    /// / `Forwarded: for=` name the client for the per-IP rate limit and the
    /// request logs; from any other peer those headers are ignored
    /// (`NEXUS_TRUSTED_PROXIES`, e.g. `["127.0.0.1/32","10.0.0.0/8"]`).
    pub trusted_proxies: Vec<crate::forwarded::Cidr>,
    /// PEM certificate(s) trusted, besides the platform's roots, by every
    /// outbound call (RPC providers, webhooks): a private CA; unset = the
    /// platform's roots only (`NEXUS_CA_CERT_PATH`).
    pub ca_cert_path: Option<PathBuf>,
    /// Longest `/x402/settle` waits for the confirming block before it answers
    /// `transaction_pending` (x402-stacks' middleware gives up at 50 s), also
    /// bounded by the requirements' `maxTimeoutSeconds` (`NEXUS_X402_SETTLE_WAIT_SECS`).
    pub x402_settle_wait_secs: u64,
    /// SIP-010 tokens accepted in x402 `exact` payments, as
    /// `ADDR.contract::token`; empty = sBTC and USDCx of the chain
    /// (`NEXUS_X402_TOKENS`, e.g. `["ST1….test-token::test-token"]`).
    pub x402_tokens: Vec<String>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            observer_addr: "127.0.0.1:8403".parse().expect("static addr"),
            api_addr: "127.0.0.1:8402".parse().expect("static addr"),
            contract_id: DEFAULT_CONTRACT_ID.to_string(),
            redis_url: None,
            redis_prefix: "nexus:".to_string(),
            database_url: None,
            sqlite_path: PathBuf::from("nexus.sqlite"),
            body_limit_bytes: 256 * 1024 * 1024,
            log_format: "text".to_string(),
            confirmation_depth: nexus_indexer::ingest::DEFAULT_CONFIRMATION_DEPTH,
            delivery_timeout_secs: nexus_indexer::ingest::DEFAULT_DELIVERY_TIMEOUT.as_secs(),
            rpc_url: None,
            rpc_auth_token: None,
            ws_max_connections: 20_000,
            ws_max_subscriptions: 64,
            ws_max_message_bytes: 64 * 1024,
            ws_send_queue: 1024,
            ws_send_timeout_ms: 2_000,
            ws_ping_interval_ms: 5_000,
            ws_ping_timeout_ms: 15_000,
            webhooks: Vec::new(),
            webhook_max_attempts: 5,
            webhook_initial_backoff_ms: 1_000,
            webhook_max_backoff_ms: 300_000,
            webhook_timeout_ms: 10_000,
            webhook_retention_hours: 168,
            rpc_urls: Vec::new(),
            rpc_timeout_ms: 5_000,
            reconcile_interval_secs: 10,
            reconcile_concurrency: 32,
            reconcile_budget: 20_000,
            reconcile_drop_after_secs: 600,
            lease_ttl_ms: 15_000,
            chain_id: None,
            relay_max_attempts: 12,
            relay_initial_backoff_ms: 500,
            relay_max_backoff_ms: 60_000,
            relay_max_retry_secs: 1_800,
            relay_concurrency: 32,
            relay_batch_max: 256,
            x402_settle_wait_secs: 45,
            x402_tokens: Vec::new(),
            api_keys: Vec::new(),
            rate_limit_per_ip: Some(nexus_relay::ratelimit::Quota {
                per_second: 50.0,
                burst: 100,
            }),
            rate_limit_per_key: Some(nexus_relay::ratelimit::Quota {
                per_second: 500.0,
                burst: 1_000,
            }),
            trusted_proxies: Vec::new(),
            ca_cert_path: None,
        }
    }
}

/// A configuration that cannot be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("invalid configuration")]
    Invalid(#[source] Box<figment::Error>),
    #[error("invalid contract_id")]
    Contract(#[source] nexus_core::decode::ContractIdError),
    #[error("x402_tokens: {0:?} is not ADDR.contract::token")]
    X402Token(String),
    /// `ca_cert_path` names no usable PEM certificate (the message names the file).
    #[error(transparent)]
    CaCert(nexus_outbound::OutboundError),
}

/// The prefix of the node's environment variables.
const ENV_PREFIX: &str = "NEXUS_";

/// Every configuration key (the fields of [`Config`]), lowercase.
fn known_keys() -> Vec<String> {
    match serde_json::to_value(Config::default()) {
        Ok(serde_json::Value::Object(m)) => m.into_iter().map(|(k, _)| k).collect(),
        _ => unreachable!("Config serializes to an object"),
    }
}

/// `NEXUS_*` environment variables that are not configuration keys: ignored
/// by [`Config::load`], named once in a warning at start-up.
pub fn ignored_env_vars() -> Vec<String> {
    let known = known_keys();
    let mut names: Vec<String> = std::env::vars_os()
        .filter_map(|(k, _)| k.into_string().ok())
        .filter(|k| {
            k.strip_prefix(ENV_PREFIX)
                .is_some_and(|rest| !known.contains(&rest.to_ascii_lowercase()))
        })
        .collect();
    names.sort();
    names
}

impl Config {
    /// Layer defaults, the TOML file (if it exists), `NEXUS_*` env vars and `overrides`.
    pub fn load(file: &std::path::Path, overrides: &Overrides) -> Result<Config, ConfigError> {
        let known = known_keys();
        let cfg: Config = Figment::from(Serialized::defaults(Config::default()))
            .merge(Toml::file(file))
            // Only our keys: NEXUS_BIN, or the NEXUS_HOME of a Sonatype Nexus
            // on the same host, is not a typo of ours and must not stop the
            // node (`ignored_env_vars` names them for a warning). A typo in
            // nexus.toml is still refused.
            .merge(
                Env::prefixed(ENV_PREFIX)
                    .filter(move |k| known.iter().any(|n| n.eq_ignore_ascii_case(k.as_str()))),
            )
            .merge(Serialized::defaults(overrides))
            .extract()
            .map_err(|e| ConfigError::Invalid(Box::new(e)))?;
        cfg.contract().map_err(ConfigError::Contract)?;
        // Read now, so a bad file is a configuration error (exit 2), not a
        // start failure that a supervisor retries forever.
        cfg.outbound()?;
        Ok(cfg)
    }

    /// What every outbound HTTP client trusts: the platform's roots, plus
    /// `ca_cert_path`'s certificates.
    pub fn outbound(&self) -> Result<nexus_outbound::Outbound, ConfigError> {
        nexus_outbound::Outbound::new(self.ca_cert_path.as_deref()).map_err(ConfigError::CaCert)
    }

    /// The parsed contract id.
    pub fn contract(
        &self,
    ) -> Result<nexus_core::decode::ContractId, nexus_core::decode::ContractIdError> {
        self.contract_id.parse()
    }

    /// The RPC providers: `rpc_urls`, else `rpc_url`, else none.
    pub fn rpc_provider_urls(&self) -> Vec<String> {
        if !self.rpc_urls.is_empty() {
            return self.rpc_urls.clone();
        }
        self.rpc_url.iter().cloned().collect()
    }

    /// The chain id relayed transactions must carry.
    pub fn relay_chain_id(&self) -> u32 {
        self.chain_id.unwrap_or_else(|| {
            if self.contract_id.starts_with("SP") || self.contract_id.starts_with("SM") {
                0x0000_0001
            } else {
                0x8000_0000
            }
        })
    }

    /// What the x402 facilitator settles: this chain, our escrow, the
    /// configured tokens (or sBTC and USDCx).
    pub fn x402_policy(&self) -> Result<nexus_core::x402::Policy, ConfigError> {
        let chain_id = self.relay_chain_id();
        let mainnet = chain_id == nexus_core::validate::MAINNET_CHAIN_ID;
        let tokens = if self.x402_tokens.is_empty() {
            nexus_core::x402::Token::defaults(mainnet)
        } else {
            self.x402_tokens
                .iter()
                .map(|t| {
                    nexus_core::x402::Token::parse(t)
                        .ok_or_else(|| ConfigError::X402Token(t.clone()))
                })
                .collect::<Result<_, _>>()?
        };
        Ok(nexus_core::x402::Policy {
            chain_id,
            mainnet,
            escrow: self.contract().map_err(ConfigError::Contract)?,
            escrow_timeout_blocks: nexus_core::x402::ESCROW_TIMEOUT_BLOCKS,
            tokens,
        })
    }

    /// Runs without external services.
    pub fn is_embedded(&self) -> bool {
        self.redis_url.is_none() && self.database_url.is_none()
    }
}

/// Command-line values that override the file and the environment.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Overrides {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub observer_addr: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_addr: Option<SocketAddr>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub contract_id: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub redis_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database_url: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sqlite_path: Option<PathBuf>,
}

// figment::Jail's closures return figment::Error, which is large; that is its API, not ours.
#[allow(clippy::result_large_err)]
#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layers_defaults_file_env_flags() {
        figment::Jail::expect_with(|jail| {
            jail.create_file(
                "nexus.toml",
                "api_addr = \"127.0.0.1:9000\"\nredis_prefix = \"file:\"\n",
            )?;
            jail.set_env("NEXUS_REDIS_PREFIX", "env:");
            let flags = Overrides {
                sqlite_path: Some("flag.sqlite".into()),
                ..Default::default()
            };
            let cfg = Config::load("nexus.toml".as_ref(), &flags).expect("loads");
            assert_eq!(cfg.api_addr.port(), 9000, "file beats default");
            assert_eq!(cfg.redis_prefix, "env:", "env beats file");
            assert_eq!(
                cfg.sqlite_path,
                PathBuf::from("flag.sqlite"),
                "flag beats all"
            );
            assert_eq!(cfg.observer_addr.port(), 8403, "default kept");
            assert!(cfg.is_embedded());
            Ok(())
        });
    }

    #[test]
    fn rpc_settings_come_from_the_environment() {
        figment::Jail::expect_with(|jail| {
            let cfg = Config::load("absent.toml".as_ref(), &Overrides::default()).expect("loads");
            assert_eq!(
                (cfg.rpc_url, cfg.rpc_auth_token),
                (None, None),
                "off by default"
            );
            jail.set_env("NEXUS_RPC_URL", "http://127.0.0.1:20443");
            jail.set_env("NEXUS_RPC_AUTH_TOKEN", "s3cret");
            let cfg = Config::load("absent.toml".as_ref(), &Overrides::default()).expect("loads");
            assert_eq!(cfg.rpc_url.as_deref(), Some("http://127.0.0.1:20443"));
            assert_eq!(cfg.rpc_auth_token.as_deref(), Some("s3cret"));
            assert_eq!(
                cfg.rpc_provider_urls(),
                vec!["http://127.0.0.1:20443"],
                "rpc_urls defaults to rpc_url"
            );
            jail.set_env("NEXUS_RPC_URLS", r#"["http://a:20443","http://b:20443"]"#);
            let cfg = Config::load("absent.toml".as_ref(), &Overrides::default()).expect("loads");
            assert_eq!(
                cfg.rpc_provider_urls(),
                vec!["http://a:20443", "http://b:20443"]
            );
            Ok(())
        });
    }

    #[test]
    fn trusted_proxies_are_cidrs_checked_at_load() {
        figment::Jail::expect_with(|jail| {
            let cfg = Config::load("absent.toml".as_ref(), &Overrides::default()).expect("loads");
            assert!(cfg.trusted_proxies.is_empty(), "none by default");
            jail.set_env(
                "NEXUS_TRUSTED_PROXIES",
                r#"["127.0.0.1/8","fd00::/8","10.1.2.3"]"#,
            );
            let cfg = Config::load("absent.toml".as_ref(), &Overrides::default()).expect("loads");
            let shown: Vec<String> = cfg.trusted_proxies.iter().map(|c| c.to_string()).collect();
            assert_eq!(shown, ["127.0.0.0/8", "fd00::/8", "10.1.2.3/32"]);
            jail.set_env("NEXUS_TRUSTED_PROXIES", r#"["10.0.0.0/8","10.0.0.0/33"]"#);
            let err = Config::load("absent.toml".as_ref(), &Overrides::default()).unwrap_err();
            let text = nexus_core::error_chain(&err);
            assert!(
                text.contains("10.0.0.0/33") && text.to_lowercase().contains("trusted_proxies"),
                "{text}"
            );
            Ok(())
        });
    }

    #[test]
    fn a_bad_ca_cert_path_stops_the_load_naming_the_file() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("not-a-cert.pem", "hello\n")?;
            for path in ["missing.pem", "not-a-cert.pem"] {
                jail.set_env("NEXUS_CA_CERT_PATH", path);
                let err = Config::load("absent.toml".as_ref(), &Overrides::default()).unwrap_err();
                assert!(matches!(err, ConfigError::CaCert(_)), "{err:?}");
                let text = nexus_core::error_chain(&err);
                assert!(text.contains(path), "{text}");
            }
            Ok(())
        });
    }

    #[test]
    fn unknown_environment_variables_are_ignored_and_named() {
        figment::Jail::expect_with(|jail| {
            jail.set_env("NEXUS_BIN", "/usr/local/bin/nexus-node");
            jail.set_env("NEXUS_HOME", "/opt/sonatype/nexus");
            jail.set_env("NEXUS_REDIS_PREFIX", "env:");
            let cfg = Config::load("absent.toml".as_ref(), &Overrides::default())
                .expect("unknown NEXUS_* variables do not stop the node");
            assert_eq!(cfg.redis_prefix, "env:", "known ones still apply");
            let ignored = ignored_env_vars();
            assert!(ignored.contains(&"NEXUS_BIN".to_string()), "{ignored:?}");
            assert!(ignored.contains(&"NEXUS_HOME".to_string()), "{ignored:?}");
            assert!(!ignored.contains(&"NEXUS_REDIS_PREFIX".to_string()));
            Ok(())
        });
    }

    #[test]
    fn rejects_bad_contract_and_unknown_keys() {
        figment::Jail::expect_with(|jail| {
            jail.create_file("nexus.toml", "contract_id = \"nope\"\n")?;
            assert!(matches!(
                Config::load("nexus.toml".as_ref(), &Overrides::default()),
                Err(ConfigError::Contract(_))
            ));
            jail.create_file("nexus.toml", "typo_key = 1\n")?;
            assert!(matches!(
                Config::load("nexus.toml".as_ref(), &Overrides::default()),
                Err(ConfigError::Invalid(_))
            ));
            Ok(())
        });
    }
}

#[cfg(test)]
mod example_file {
    use super::*;

    /// The documented example must stay loadable and equal to the defaults.
    #[test]
    fn example_toml_matches_defaults() {
        let text = include_str!("../nexus.example.toml");
        let cfg: Config = Figment::from(Toml::string(text))
            .extract()
            .expect("example parses");
        assert_eq!(cfg, Config::default());
    }
}
