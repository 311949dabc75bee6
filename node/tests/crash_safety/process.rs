//! The real process.

use super::*;

/// A running `nexus-node`; SIGKILLed when dropped (a failed assertion must
/// not leave it behind).
pub(crate) struct Node {
    pub(crate) child: Child,
    pub(crate) observer: SocketAddr,
    pub(crate) api: SocketAddr,
}

/// Two free local ports (both bound at once so they differ, then released).
pub(crate) fn free_ports() -> (SocketAddr, SocketAddr) {
    let a = TcpListener::bind("127.0.0.1:0").expect("free port");
    let b = TcpListener::bind("127.0.0.1:0").expect("free port");
    (a.local_addr().expect("addr"), b.local_addr().expect("addr"))
}

impl Node {
    /// Start the binary on `stores` (fresh ports) without waiting for it.
    pub(crate) fn spawn(stores: &Stores) -> Node {
        let (observer, api) = free_ports();
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(stores.log_path())
            .expect("node log");
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nexus-node"));
        // Only our flags: no nexus.toml from the working directory, no
        // NEXUS_* from the environment (the config rejects unknown keys).
        cmd.arg("--config")
            .arg(stores.dir.path().join("absent.toml"))
            .arg("run")
            .args(["--observer-addr", &observer.to_string()])
            .args(["--api-addr", &api.to_string()])
            .args(["--contract-id", CONTRACT_ID]);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("NEXUS_") {
                cmd.env_remove(key);
            }
        }
        match (stores.database_url(), &stores.redis) {
            (Some(db), Some((url, prefix))) => {
                cmd.args(["--redis-url", url, "--database-url", &db])
                    .env("NEXUS_REDIS_PREFIX", prefix);
            }
            _ => {
                cmd.arg("--sqlite-path").arg(stores.sqlite_path());
            }
        }
        let child = cmd
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .expect("spawn nexus-node");
        Node {
            child,
            observer,
            api,
        }
    }

    /// Start and wait until `GET /health` answers 200.
    pub(crate) async fn start(stores: &Stores, client: &reqwest::Client) -> Node {
        let mut node = Node::spawn(stores);
        let started = Instant::now();
        let url = format!("http://{}/health", node.api);
        loop {
            if let Some(status) = node.child.try_wait().expect("child status") {
                panic!(
                    "nexus-node exited before it was ready ({status}):\n{}",
                    stores.log_tail()
                );
            }
            if let Ok(r) = client.get(&url).send().await {
                if r.status() == 200 {
                    return node;
                }
            }
            assert!(
                started.elapsed() < READY_DEADLINE,
                "nexus-node not healthy after {READY_DEADLINE:?}:\n{}",
                stores.log_tail()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// `kill -9` and reap it: afterwards nothing of it runs.
    pub(crate) async fn kill(mut self) {
        self.child.start_kill().expect("SIGKILL");
        self.child.wait().await.expect("reap nexus-node");
    }
}

/// POST one delivery; `Err` when the connection failed or was cut.
pub(crate) async fn post(
    client: &reqwest::Client,
    observer: SocketAddr,
    d: &Delivery,
) -> Result<(u16, Value), reqwest::Error> {
    let resp = client
        .post(format!("http://{observer}{}", d.route.path()))
        .header("content-type", "application/json")
        .body(d.body.clone())
        .send()
        .await?;
    let code = resp.status().as_u16();
    let text = resp.text().await?;
    Ok((
        code,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    ))
}

/// POST and require a 200 (an uninterrupted node acknowledges everything).
pub(crate) async fn post_ok(client: &reqwest::Client, node: &Node, d: &Delivery) -> Value {
    let (code, body) = post(client, node.observer, d)
        .await
        .unwrap_or_else(|e| panic!("POST {}: {e}", d.label));
    assert_eq!(code, 200, "{}: {body}", d.label);
    body
}
