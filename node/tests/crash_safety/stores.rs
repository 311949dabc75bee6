//! Stores that outlive the process.

use super::*;

/// The stores of one run, kept across kills; dropped (database, Redis keys,
/// temp dir) when this value is, also after a failed assertion.
pub(crate) struct Stores {
    /// SQLite file and the node's stderr log.
    pub(crate) dir: tempfile::TempDir,
    /// `(admin_url, database)` of the fresh PostgreSQL database.
    pub(crate) pg: Option<(String, String)>,
    /// `(redis_url, prefix)`.
    pub(crate) redis: Option<(String, String)>,
    /// The test's own reader of PostgreSQL, opened after the node created the schema.
    pub(crate) pg_history: OnceCell<PgHistory>,
    /// The test's own reader of Redis.
    pub(crate) redis_state: OnceCell<RedisState>,
}

pub(crate) fn pg_admin_url() -> String {
    std::env::var("NEXUS_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

pub(crate) fn redis_url() -> String {
    std::env::var("NEXUS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string())
}

pub(crate) fn random_hex() -> String {
    format!("{:016x}", rand::random::<u64>())
}

impl Stores {
    pub(crate) async fn create(kind: Kind) -> Stores {
        let dir = tempfile::tempdir().expect("temp dir");
        let (pg, redis) = match kind {
            Kind::Embedded => (None, None),
            Kind::Production => {
                let admin = pg_admin_url();
                let name = nexus_testkit::pg::create_database(&admin).await;
                let prefix = format!("nexus-crash-test:{}:", random_hex());
                (Some((admin, name)), Some((redis_url(), prefix)))
            }
        };
        Stores {
            dir,
            pg,
            redis,
            pg_history: OnceCell::new(),
            redis_state: OnceCell::new(),
        }
    }

    pub(crate) fn sqlite_path(&self) -> PathBuf {
        self.dir.path().join("history.sqlite")
    }

    pub(crate) fn log_path(&self) -> PathBuf {
        self.dir.path().join("node.log")
    }

    pub(crate) fn database_url(&self) -> Option<String> {
        let (admin, name) = self.pg.as_ref()?;
        let mut u = reqwest::Url::parse(admin).expect("database URL");
        u.set_path(&format!("/{name}"));
        Some(u.to_string())
    }

    /// A reader of the history store, straight from disk / the database.
    /// SQLite: opened for this call only (recovering the WAL a kill left, as
    /// the node itself does on restart); the node may be running or dead.
    pub(crate) async fn history(&self) -> Arc<dyn History> {
        match self.database_url() {
            Some(url) => Arc::new(self.pg_reader(&url).await.clone()),
            None => {
                let path = self.sqlite_path();
                let h = tokio::task::spawn_blocking(move || SqliteHistory::open(&path))
                    .await
                    .expect("open task")
                    .expect("test reader of SQLite");
                Arc::new(h)
            }
        }
    }

    /// The test's own pool on the node's database, named so that
    /// [`Stores::quiesce`] can tell its connections from the node's.
    pub(crate) async fn pg_reader(&self, url: &str) -> &PgHistory {
        self.pg_history
            .get_or_init(|| async {
                let mut u = reqwest::Url::parse(url).expect("database URL");
                u.query_pairs_mut()
                    .append_pair("application_name", READER_APP);
                PgHistory::connect(u.as_str())
                    .await
                    .expect("test reader of PostgreSQL")
            })
            .await
    }

    /// Wait until PostgreSQL has finished with a killed node's connections.
    ///
    /// A SIGKILL does not stop the server: a `COMMIT` the node sent just
    /// before dying still completes afterwards (a "ghost" commit), so the
    /// stores are only settled once the dead node's backends are gone.
    /// Restarting only after that keeps the kill runs deterministic; a
    /// restart during a ghost commit is [`ghost_commit_after_restart`].
    pub(crate) async fn quiesce(&self) {
        let Some(url) = self.database_url() else {
            return; // SQLite commits in-process: nothing outlives the kill.
        };
        let pool = self.pg_reader(&url).await.pool().clone();
        let started = Instant::now();
        loop {
            let others: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity \
                 WHERE datname = current_database() AND pid <> pg_backend_pid() \
                 AND application_name <> $1",
            )
            .bind(READER_APP)
            .fetch_one(&pool)
            .await
            .expect("pg_stat_activity");
            if others == 0 {
                return;
            }
            assert!(
                started.elapsed() < READY_DEADLINE,
                "a killed node's PostgreSQL sessions still run after {READY_DEADLINE:?}"
            );
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// The Redis state store (production only).
    pub(crate) async fn state(&self) -> Option<&RedisState> {
        let (url, prefix) = self.redis.as_ref()?;
        Some(
            self.redis_state
                .get_or_init(|| async {
                    RedisState::connect(url, prefix)
                        .await
                        .expect("test reader of Redis")
                })
                .await,
        )
    }

    /// The last lines the node wrote, for failure messages.
    pub(crate) fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }
}

impl Drop for Stores {
    /// Best effort: drop the database and the Redis keys on a separate thread
    /// with its own runtime (a destructor cannot await).
    fn drop(&mut self) {
        let (pg, redis) = (self.pg.take(), self.redis.take());
        if pg.is_none() && redis.is_none() {
            return;
        }
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                if let Some((url, prefix)) = redis {
                    // SCAN + UNLINK of this prefix only.
                    if let Ok(s) = RedisState::connect(&url, &prefix).await {
                        let _ = s.flush_prefix().await;
                    }
                }
                if let Some((admin, name)) = pg {
                    let mut con = sqlx::PgConnection::connect(&admin).await.ok()?;
                    sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .execute(&mut con)
                        .await
                        .ok()?;
                }
                Some(())
            })
        })
        .join();
    }
}
