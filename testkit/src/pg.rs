//! A fresh PostgreSQL database per test, on the server at
//! `NEXUS_TEST_PG_URL` (default `postgres://postgres@127.0.0.1:5432/test`),
//! dropped with the [`PgTestDb`] value, also after a failed assertion.

use sqlx::Connection;

/// The admin URL of the test server.
pub fn admin_url() -> String {
    std::env::var("NEXUS_TEST_PG_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".to_string())
}

/// `admin_url` with its database replaced by `db` (query string kept).
pub fn with_database(admin_url: &str, db: &str) -> String {
    let (base, query) = match admin_url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (admin_url, String::new()),
    };
    let authority_end = base.find("://").map_or(0, |i| i + 3);
    let root = match base[authority_end..].find('/') {
        Some(i) => &base[..authority_end + i],
        None => base,
    };
    format!("{root}/{db}{query}")
}

/// An empty database of its own (no migrations run).
pub struct PgTestDb {
    pub url: String,
    pub name: String,
    admin_url: String,
}

impl PgTestDb {
    pub async fn create() -> PgTestDb {
        let admin_url = admin_url();
        let name = create_database(&admin_url).await;
        PgTestDb {
            url: with_database(&admin_url, &name),
            name,
            admin_url,
        }
    }
}

/// Create an empty database named `nexus_t_<hex>` on the server at
/// `admin_url` and return its name. Nothing drops it: for tests whose pools
/// outlive any guard; prefer [`PgTestDb`].
pub async fn create_database(admin_url: &str) -> String {
    let name = format!("nexus_t_{:016x}", rand::random::<u64>());
    let mut admin = sqlx::PgConnection::connect(admin_url)
        .await
        .expect("PostgreSQL for tests (set NEXUS_TEST_PG_URL)");
    // An identifier cannot be a bind parameter; `name` is our own hex.
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut admin)
        .await
        .expect("create the test database");
    admin.close().await.ok();
    name
}

impl Drop for PgTestDb {
    /// Best effort, on a thread of its own: a destructor cannot await.
    fn drop(&mut self) {
        let (admin_url, name) = (self.admin_url.clone(), self.name.clone());
        let _ = std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .ok()?;
            rt.block_on(async {
                let mut admin = sqlx::PgConnection::connect(&admin_url).await.ok()?;
                sqlx::query(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                    .execute(&mut admin)
                    .await
                    .ok()
            })
        })
        .join();
    }
}
