//! A bench's own Redis prefix and PostgreSQL database on the servers at
//! `NEXUS_TEST_REDIS_URL` and `NEXUS_TEST_PG_URL`, removed afterwards: by
//! [`Stores::cleanup`], or on drop when the bench panics.

use nexus_store::redis::RedisState;
use nexus_testkit::pg::{admin_url, create_database, with_database};

pub struct Stores {
    pub redis_url: String,
    pub redis_prefix: String,
    pub pg_admin_url: String,
    pub pg_name: String,
    /// The database's own URL.
    pub pg_url: String,
    /// Names the bench in what cleaning up prints.
    bench: &'static str,
    cleaned: bool,
}

impl Stores {
    /// Fresh stores for bench `bench` (the Redis prefix is `nexus-bench-{bench}:<hex>:`).
    pub async fn create(bench: &'static str) -> Stores {
        let pg_admin_url = admin_url();
        let redis_url = std::env::var("NEXUS_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_string());
        let pg_name = create_database(&pg_admin_url).await;
        Stores {
            pg_url: with_database(&pg_admin_url, &pg_name),
            redis_prefix: format!("nexus-bench-{bench}:{:016x}:", rand::random::<u64>()),
            redis_url,
            pg_admin_url,
            pg_name,
            bench,
            cleaned: false,
        }
    }

    pub async fn cleanup(mut self) {
        drop_stores(
            self.bench,
            &self.redis_url,
            &self.redis_prefix,
            &self.pg_admin_url,
            &self.pg_name,
        )
        .await;
        self.cleaned = true;
        eprintln!(
            "bench-{}: dropped {} and the redis prefix",
            self.bench, self.pg_name
        );
    }
}

impl Drop for Stores {
    fn drop(&mut self) {
        if self.cleaned {
            return;
        }
        // A destructor cannot await: clean up on a thread with its own runtime.
        let (b, r, p, a, n) = (
            self.bench,
            self.redis_url.clone(),
            self.redis_prefix.clone(),
            self.pg_admin_url.clone(),
            self.pg_name.clone(),
        );
        let _ = std::thread::spawn(move || {
            if let Ok(rt) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                rt.block_on(drop_stores(b, &r, &p, &a, &n));
            }
        })
        .join();
    }
}

async fn drop_stores(
    bench: &str,
    redis_url: &str,
    prefix: &str,
    pg_admin_url: &str,
    pg_name: &str,
) {
    use sqlx::Connection;
    match RedisState::connect(redis_url, prefix).await {
        Ok(s) => {
            if let Err(e) = s.flush_prefix().await {
                eprintln!("bench-{bench}: could not delete redis prefix {prefix}: {e}");
            }
        }
        Err(e) => eprintln!("bench-{bench}: could not reach redis to clean up: {e}"),
    }
    match sqlx::PgConnection::connect(pg_admin_url).await {
        Ok(mut admin) => {
            if let Err(e) = sqlx::query(&format!("DROP DATABASE IF EXISTS {pg_name} WITH (FORCE)"))
                .execute(&mut admin)
                .await
            {
                eprintln!("bench-{bench}: could not drop {pg_name}: {e}");
            }
        }
        Err(e) => eprintln!("bench-{bench}: could not reach postgres to drop {pg_name}: {e}"),
    }
}
